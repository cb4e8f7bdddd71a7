/**
 * Session lifecycle events (created, renewed, destroyed, revoked, expired, owner bound and
 * unbound) as a service an application subscribes to, for audit logs and security alerts.
 *
 * Provide `layer` beneath the manager and the store (`Layer.provideMerge(SessionEvents.layer)` on
 * the session layer): the manager publishes every event but the sweep's, the store's sweep
 * publishes `Expired` with `source: "sweep"`. Without the layer, nothing is built or published.
 *
 * Events never carry a token, a store key or session data. A session is named by its `ref`: a
 * one-way hash of its store key (so it changes when the token is renewed; `Renewed` links the
 * two), and an owned session also by its owner id and handle (stable across renewals).
 *
 * @since 0.2.0
 */
import type * as Context from "effect/Context"
import * as Data from "effect/Data"
import type * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Option from "effect/Option"
import type * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"
import type * as Stream from "effect/Stream"
import * as InternalEvents from "./internal/events.js"

/**
 * The owner of a session, as events name it: the id given to `bindOwner` and the session's handle.
 *
 * @since 0.2.0
 * @category models
 */
export interface EventOwner {
  readonly id: string
  readonly handle: string
}

/**
 * What happened to a session. Every event has `at`, the `Clock`'s time it happened.
 *
 * - `Created`: a new session was stored for the first time.
 * - `Renewed`: a stored session got a new token (`renewToken`, `bindOwner`, `unbindOwner`,
 *   `mergeSession`); `from` and `to` are its refs before and after.
 * - `Destroyed`: `destroy` removed a stored session.
 * - `Revoked`: sessions of `owner` were revoked through its index; `handles` are those that were
 *   listed when revoking, `count` how many the index held.
 * - `Expired`: a load found the session past its expiry or deadline (`source: "load"`, with its
 *   `ref` and owner), or a store's sweep removed `count` expired sessions (`source: "sweep"`,
 *   naming no session: the sweep never decodes what it removes).
 * - `OwnerBound` / `OwnerUnbound`: `bindOwner` / `unbindOwner`; `ref` is the session's new ref.
 *
 * @since 0.2.0
 * @category models
 */
export type SessionEvent = Data.TaggedEnum<{
  Created: {
    readonly at: DateTime.Utc
    readonly ref: string
    readonly owner: Option.Option<EventOwner>
  }
  Renewed: {
    readonly at: DateTime.Utc
    readonly from: string
    readonly to: string
    readonly owner: Option.Option<EventOwner>
  }
  Destroyed: {
    readonly at: DateTime.Utc
    readonly ref: string
    readonly owner: Option.Option<EventOwner>
  }
  Revoked: {
    readonly at: DateTime.Utc
    readonly owner: string
    readonly handles: ReadonlyArray<string>
    readonly count: number
  }
  Expired: {
    readonly at: DateTime.Utc
    readonly source: "load" | "sweep"
    readonly count: number
    readonly ref: Option.Option<string>
    readonly owner: Option.Option<EventOwner>
  }
  OwnerBound: {
    readonly at: DateTime.Utc
    readonly ref: string
    readonly owner: EventOwner
  }
  OwnerUnbound: {
    readonly at: DateTime.Utc
    readonly ref: string
    readonly owner: EventOwner
  }
}>

/**
 * @since 0.2.0
 * @category constructors
 */
export const SessionEvent = Data.taggedEnum<SessionEvent>()

/**
 * @since 0.2.0
 * @category models
 */
export interface SubscribeOptions {
  /**
   * How many events may wait for this subscriber. Default 4,096. Once it is that far behind, newer
   * events are dropped for it alone (counted by `SessionMetrics.eventsDropped`); requests never wait.
   */
  readonly capacity?: number | undefined
}

/**
 * @since 0.2.0
 * @category models
 */
export interface SessionEvents {
  /**
   * A queue of the events published from now until the scope closes. Publishing never waits for
   * a subscriber: each one has a bounded queue of its own (see `SubscribeOptions.capacity`).
   */
  readonly subscribe: (options?: SubscribeOptions) => Effect.Effect<Queue.Dequeue<SessionEvent>, never, Scope.Scope>
  /** The events published from when the stream starts, as a `Stream` (one subscription per run). */
  readonly stream: (options?: SubscribeOptions) => Stream.Stream<SessionEvent>
}

/**
 * @since 0.2.0
 * @category tags
 */
export const SessionEvents: Context.Tag<SessionEvents, SessionEvents> = InternalEvents.tag

/**
 * A fresh events service.
 *
 * @since 0.2.0
 * @category constructors
 */
export const make: Effect.Effect<SessionEvents> = Effect.sync(() => new InternalEvents.Hub())

/**
 * The events service, for the manager and the store beneath it:
 *
 * ```ts
 * const SessionLive = SessionManager.layer().pipe(
 *   Layer.provide(MemoryStore.layer()),
 *   Layer.provideMerge(SessionEvents.layer)
 * )
 * ```
 *
 * @since 0.2.0
 * @category layers
 */
export const layer: Layer.Layer<SessionEvents> = Layer.effect(SessionEvents, make)
