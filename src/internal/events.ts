/**
 * The publishing side of `SessionEvents`: a set of bounded subscriber queues that an event is
 * handed to synchronously, where it happens, so publishing costs nothing when nobody listens.
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type { SessionEvent, SessionEvents, SubscribeOptions } from "../SessionEvents.js"
import * as SessionMetrics from "../SessionMetrics.js"
import * as InternalOptions from "./options.js"
import * as Token from "./token.js"

/** The tag `SessionEvents` exports (here, so this module needs only types from there). */
export const tag: Context.Tag<SessionEvents, SessionEvents> = Context.GenericTag<SessionEvents>(
  "effect-session/SessionEvents"
)

/** The events service and its publishing side, which only the library uses. */
export class Hub implements SessionEvents {
  readonly #subscribers = new Set<Queue.Queue<SessionEvent>>()

  /**
   * Hands the event `make` builds to every subscriber's queue, at once, dropping it for full ones;
   * with no subscriber, `make` is not called.
   */
  publish(make: () => SessionEvent): void {
    if (this.#subscribers.size === 0) return
    const event = make()
    for (const queue of this.#subscribers) {
      if (!queue.unsafeOffer(event)) SessionMetrics.eventsDropped.unsafeUpdate(1, [])
    }
  }

  readonly subscribe = (options?: SubscribeOptions): Effect.Effect<Queue.Dequeue<SessionEvent>, never, Scope.Scope> =>
    Either.match(InternalOptions.positiveInteger("capacity", options?.capacity, 4_096), {
      onLeft: Effect.die,
      onRight: (capacity) =>
        Effect.acquireRelease(
          Effect.tap(
            Queue.dropping<SessionEvent>(capacity),
            (queue) => Effect.sync(() => this.#subscribers.add(queue))
          ),
          (queue) => Effect.zipRight(Effect.sync(() => this.#subscribers.delete(queue)), Queue.shutdown(queue))
        )
    })

  readonly stream = (options?: SubscribeOptions): Stream.Stream<SessionEvent> =>
    Stream.unwrapScoped(Effect.map(this.subscribe(options), (queue) => Stream.fromQueue(queue)))
}

/** The publishing side of the events service in context, if there is one. */
export const hub: Effect.Effect<Hub | undefined> = Effect.map(
  Effect.serviceOption(tag),
  (events) => events._tag === "Some" && events.value instanceof Hub ? events.value : undefined
)

/**
 * A session's name in events: the first 132 bits of SHA-256 over its store key, domain-separated,
 * so it names the session without revealing the key (or, without hashing at rest, the token).
 */
export const refOf = (key: string): string => Token.hash(`effect-session/ref\u0000${key}`).slice(0, 22)
