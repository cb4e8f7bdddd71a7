/**
 * The in-memory store: the embedded default. Fast and needs no setup; sessions are lost when
 * the process stops and are not shared between processes.
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { yieldToEventLoop } from "../internal/eventLoop.js"
import type * as SessionStore from "../SessionStore.js"
import { SessionStore as SessionStoreTag } from "../SessionStore.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** How often expired entries are swept. Default `"1 minute"`; `0` disables the sweep. */
  readonly cleanupInterval?: Duration.DurationInput | undefined
  /** Entries examined per sweep step before the event loop gets a turn. Default 10,000. */
  readonly sweepBatchSize?: number | undefined
}

/**
 * The memory store, with what only it can offer: the number of entries held (expired ones
 * included until swept) and a sweep on demand.
 *
 * @since 0.1.0
 * @category models
 */
export interface MemoryStore extends SessionStore.SessionStore {
  readonly size: Effect.Effect<number>
  /** Deletes every expired entry now, in batches; returns how many it deleted. */
  readonly sweep: Effect.Effect<number>
}

// Payloads are stored encoded (strings), so nothing a handler holds can change stored state.
class Entry {
  constructor(readonly data: string, readonly expiresAt: number) {}
}

/**
 * Makes a memory store whose sweep fiber lives as long as the scope.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options = {}): Effect.Effect<MemoryStore, never, Scope.Scope> =>
  Effect.gen(function*() {
    const entries = new Map<string, Entry>()
    const batchSize = Math.max(1, options.sweepBatchSize ?? 10_000)
    const interval = Duration.decode(options.cleanupInterval ?? "1 minute")

    const sweep: Effect.Effect<number> = Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      let deleted = 0
      let examined = 0
      // Map iterators tolerate deletion and insertion while iterating.
      for (const [key, entry] of entries) {
        if (entry.expiresAt <= now) {
          entries.delete(key)
          deleted++
        }
        if (++examined % batchSize === 0) yield* yieldToEventLoop
      }
      return deleted
    })

    if (Duration.greaterThan(interval, Duration.zero)) {
      yield* Effect.sleep(interval).pipe(Effect.zipRight(sweep), Effect.forever, Effect.forkScoped)
    }

    const store: MemoryStore = {
      find: (key) =>
        Effect.map(Clock.currentTimeMillis, (now) => {
          const entry = entries.get(key)
          return entry === undefined || entry.expiresAt <= now ? Option.none() : Option.some(entry.data)
        }),
      commit: (key, data, expiresAt, mode) =>
        Effect.map(Clock.currentTimeMillis, (now) => {
          if (mode === "update") {
            const current = entries.get(key)
            if (current === undefined || current.expiresAt <= now) return "gone"
          }
          entries.set(key, new Entry(data, expiresAt))
          return "written"
        }),
      delete: (key) =>
        Effect.sync(() => {
          entries.delete(key)
        }),
      all: Stream.unwrap(Effect.map(Clock.currentTimeMillis, (now) =>
        Stream.fromIterable(entries).pipe(
          Stream.filter(([, entry]) => entry.expiresAt > now),
          Stream.map(([key, entry]) => ({ key, data: entry.data, expiresAt: entry.expiresAt }))
        ))),
      size: Effect.sync(() => entries.size),
      sweep
    }
    return store
  })

/**
 * The memory store as the `SessionStore`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options?: Options): Layer.Layer<SessionStore.SessionStore> =>
  Layer.scoped(SessionStoreTag, make(options))
