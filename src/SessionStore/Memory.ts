/**
 * The in-memory store: the embedded default. Fast and needs no setup; sessions are lost when
 * the process stops and are not shared between processes.
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { yieldToEventLoop } from "../internal/eventLoop.js"
import * as InternalOptions from "../internal/options.js"
import { provideBoth } from "../internal/storeLayer.js"
import * as Sweeper from "../internal/sweeper.js"
import type { SessionConfigError } from "../SessionConfigError.js"
import type { SessionStore, StoredSession } from "../SessionStore.js"

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
export interface MemoryStore extends SessionStore {
  readonly all: Stream.Stream<StoredSession>
  readonly size: Effect.Effect<number>
  /** Deletes every expired entry now, in batches; returns how many it deleted. */
  readonly sweep: Effect.Effect<number>
}

/**
 * The memory store built by `layer`, with its `size` and `sweep`.
 *
 * @since 0.2.0
 * @category tags
 */
export const MemoryStore: Context.Tag<MemoryStore, MemoryStore> = Context.GenericTag<MemoryStore>(
  "effect-session/SessionStore/Memory"
)

// Payloads are stored encoded (strings), so nothing a handler holds can change stored state.
class Entry {
  constructor(readonly data: string, readonly expiresAt: number) {}
}

// Entries are spread over many small maps rather than one big one: a JavaScript Map rehashes
// all of its entries at once when it grows or shrinks, which at a million sessions blocks the
// event loop for tens of milliseconds (during a request's insert or the sweep's deletes); a
// shard rehashes only its own share. Power of two, so a shard is picked with a mask.
const SHARDS = 64

// Tokens and their hashes are random base64url, so their first two characters spread them
// evenly; any other string still lands in some shard (NaN & mask is 0).
const shardIndex = (key: string): number => (key.charCodeAt(0) * 31 + key.charCodeAt(1)) & (SHARDS - 1)

/**
 * Makes a memory store whose sweep fiber lives as long as the scope. Fails with
 * `SessionConfigError` for invalid options.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options = {}): Effect.Effect<MemoryStore, SessionConfigError, Scope.Scope> =>
  Effect.gen(function*() {
    const shards: ReadonlyArray<Map<string, Entry>> = Array.from({ length: SHARDS }, () => new Map<string, Entry>())
    const shardOf = (key: string): Map<string, Entry> => shards[shardIndex(key)]
    const allEntries = function*(): Generator<[string, Entry]> {
      for (const shard of shards) yield* shard
    }
    const batchSize = yield* InternalOptions.positiveInteger("sweepBatchSize", options.sweepBatchSize, 10_000)
    const interval = yield* InternalOptions.duration("cleanupInterval", options.cleanupInterval, "1 minute", {
      allowZero: true
    })

    const sweep: Effect.Effect<number> = Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      let deleted = 0
      let examined = 0
      // Map iterators tolerate deletion and insertion while iterating. Iterating keys, not
      // [key, entry] pairs, allocates nothing per entry (less garbage-collector work mid-sweep).
      for (const shard of shards) {
        for (const key of shard.keys()) {
          const entry = shard.get(key)
          if (entry !== undefined && entry.expiresAt <= now) {
            shard.delete(key)
            deleted++
          }
          if (++examined % batchSize === 0) yield* yieldToEventLoop
        }
      }
      return deleted
    })

    yield* Sweeper.start("memory store", interval, sweep)

    const store: MemoryStore = {
      // `clockWith` + `unsafeCurrentTimeMillis`: the Clock service's time in one step (hot path).
      find: (key) =>
        Effect.clockWith((clock) => {
          const entry = shardOf(key).get(key)
          return Effect.succeed(
            entry === undefined || entry.expiresAt <= clock.unsafeCurrentTimeMillis()
              ? Option.none()
              : Option.some(entry.data)
          )
        }),
      commit: (key, data, expiresAt, mode) =>
        Effect.clockWith((clock) => {
          const shard = shardOf(key)
          if (mode === "update") {
            const current = shard.get(key)
            if (current === undefined || current.expiresAt <= clock.unsafeCurrentTimeMillis()) {
              return Effect.succeed("gone" as const)
            }
          }
          shard.set(key, new Entry(data, expiresAt))
          return Effect.succeed("written" as const)
        }),
      delete: (key) =>
        Effect.sync(() => {
          shardOf(key).delete(key)
        }),
      all: Stream.unwrap(
        Effect.map(Clock.currentTimeMillis, (now) =>
          Stream.fromIterable({ [Symbol.iterator]: allEntries }).pipe(
            Stream.filter(([, entry]) => entry.expiresAt > now),
            Stream.map(([key, entry]) => ({ key, data: entry.data, expiresAt: entry.expiresAt }))
          ))
      ),
      size: Effect.sync(() => {
        let size = 0
        for (const shard of shards) {
          size += shard.size
        }
        return size
      }),
      sweep
    }
    return store
  })

/**
 * The memory store as the `SessionStore` and as `MemoryStore`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options?: Options): Layer.Layer<MemoryStore | SessionStore, SessionConfigError> =>
  provideBoth(MemoryStore, make(options))
