/**
 * The in-memory store: the embedded default. Fast and needs no setup; sessions are lost when
 * the process stops and are not shared between processes.
 *
 * Every operation on one key is a single synchronous step (JavaScript runs one at a time), so
 * `"update"`, `take` and `touch` are atomic without locks.
 *
 * **The entry cap** (`maxEntries`) bounds memory against a flood of new sessions, and cannot be
 * turned against sessions that already exist: only a `"create"` of a key not held counts against
 * it. When the store is full, such a create first drops the expired entries (a sweep, shared by
 * concurrent creates and run only when some entry may have expired), and if the store is still
 * full it fails with `SessionStoreError` (reason `Unavailable`, detail `"memory store full"`).
 * Nothing is ever evicted to make room: eviction would let whoever creates sessions fastest log
 * everyone else out. Existing sessions keep being read, updated, touched, taken and deleted.
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
import * as OwnerLinks from "../internal/ownerLinks.js"
import { provideBoth } from "../internal/storeLayer.js"
import * as Sweeper from "../internal/sweeper.js"
import * as Telemetry from "../internal/telemetry.js"
import type { SessionConfigError } from "../SessionConfigError.js"
import * as SessionMetrics from "../SessionMetrics.js"
import type { OwnerIndex, SessionStore, StoredEntry, StoredSession } from "../SessionStore.js"
import { SessionStoreError } from "../SessionStore.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** How often expired entries are swept. Default `"1 minute"`; `0` disables the sweep. */
  readonly cleanupInterval?: Duration.DurationInput | undefined
  /** Entries examined per sweep step before the event loop gets a turn. Default 10,000. */
  readonly sweepBatchSize?: number | undefined
  /**
   * The most entries held (expired ones until swept included); a `"create"` of a new key beyond
   * it fails with `Unavailable` (see the module's documentation). Default 1,000,000: at a few
   * hundred bytes per session (43-character key, map slot, entry, encoded payload) that is well
   * under a gigabyte, inside Node's default heap limit on 64-bit systems, so a flood of new
   * sessions is refused with a typed error instead of crashing the process (which would log
   * every user out). Raise it with the heap (`--max-old-space-size`), or use a shared store.
   */
  readonly maxEntries?: number | undefined
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
  readonly owners: OwnerIndex
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
// `find` and `take` hand out the entry itself (no copy on the hot path): it is never mutated,
// a write replaces it.
class Entry implements StoredEntry {
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
    const maxEntries = yield* InternalOptions.positiveInteger("maxEntries", options.maxEntries, 1_000_000)
    const interval = yield* InternalOptions.duration("cleanupInterval", options.cleanupInterval, "1 minute", {
      allowZero: true
    })

    const count = (): number => {
      let size = 0
      for (const shard of shards) size += shard.size
      return size
    }

    // Owner id → handle → link. Links past their `until` are dropped by the sweep and skipped on reads.
    const owners = new Map<string, Map<string, OwnerLinks.Link>>()

    const liveLinks = (owner: string, now: number): Map<string, OwnerLinks.Link> | undefined => {
      const links = owners.get(owner)
      if (links === undefined) return undefined
      for (const [handle, link] of links) if (link.until <= now) links.delete(handle)
      return links
    }

    // Each method is one synchronous step on the owner's links.
    const withLinks = <A>(owner: string, change: (links: Map<string, OwnerLinks.Link>) => OwnerLinks.Changed<A>) =>
      Effect.clockWith((clock) => {
        const links = liveLinks(owner, clock.unsafeCurrentTimeMillis()) ?? new Map()
        const { result } = change(links)
        if (links.size === 0) owners.delete(owner)
        else owners.set(owner, links)
        return Effect.succeed(result)
      })

    const index: OwnerIndex = {
      link: (owner, handle, key, until) => withLinks(owner, (links) => OwnerLinks.linkIn(links, handle, key, until)),
      list: (owner) => withLinks(owner, (links) => ({ result: OwnerLinks.listIn(links), changed: false })),
      revoke: (owner, handles, except) => withLinks(owner, (links) => OwnerLinks.revokeIn(links, handles, except)),
      unlink: (owner, handle, key) => withLinks(owner, (links) => OwnerLinks.unlinkIn(links, handle, key))
    }

    // No entry held expires before `earliestExpiry` (a lower bound: every write lowers it, a
    // completed sweep sets it exactly), so a full store knows without a scan whether a sweep
    // could make room, and a flood of creates against a full store costs no sweeps.
    let earliestExpiry = Infinity
    // Writes during a sweep, which may land in shards the sweep has already passed.
    let sweeping = false
    let earliestWrittenDuringSweep = Infinity
    const noteExpiry = (expiresAt: number): void => {
      if (expiresAt < earliestExpiry) earliestExpiry = expiresAt
      if (sweeping && expiresAt < earliestWrittenDuringSweep) earliestWrittenDuringSweep = expiresAt
    }

    // `SessionMetrics.memoryEntries` follows every change in the number of entries held; what is
    // still held when the store closes is taken off it then.
    const held = (delta: number): void => {
      if (delta !== 0) SessionMetrics.memoryEntries.unsafeModify(delta, [])
    }
    yield* Effect.addFinalizer(() => Effect.sync(() => held(-count())))

    const sweepOnce: Effect.Effect<number> = yield* Sweeper.observe(
      "memory",
      Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        sweeping = true
        earliestWrittenDuringSweep = Infinity
        let earliestKept = Infinity
        let deleted = 0
        let examined = 0
        // Map iterators tolerate deletion and insertion while iterating. Iterating keys, not
        // [key, entry] pairs, allocates nothing per entry (less garbage-collector work mid-sweep).
        for (const shard of shards) {
          for (const key of shard.keys()) {
            const entry = shard.get(key)
            if (entry !== undefined) {
              if (entry.expiresAt <= now) {
                shard.delete(key)
                deleted++
              } else if (entry.expiresAt < earliestKept) {
                earliestKept = entry.expiresAt
              }
            }
            if (++examined % batchSize === 0) yield* yieldToEventLoop
          }
        }
        held(-deleted)
        earliestExpiry = Math.min(earliestKept, earliestWrittenDuringSweep)
        for (const [owner, links] of owners) {
          for (const [handle, link] of links) {
            if (link.until <= now) links.delete(handle)
            if (++examined % batchSize === 0) yield* yieldToEventLoop
          }
          if (links.size === 0) owners.delete(owner)
        }
        return deleted
      }).pipe(Effect.ensuring(Effect.sync(() => {
        sweeping = false
      })))
    )

    // One sweep at a time: the background one and those of creates that found the store full.
    const sweepLock = yield* Effect.makeSemaphore(1)
    const sweep: Effect.Effect<number> = sweepLock.withPermits(1)(sweepOnce)

    yield* Sweeper.start("memory store", interval, sweep)

    const full = () =>
      new SessionStoreError({ reason: "Unavailable", operation: "commit", detail: "memory store full" })

    // A create of a new key while the store is full: sweep if some entry may have expired (a
    // create that waited for another's sweep finds nothing left to sweep), then check again.
    const createWhenFull = (key: string, data: string, expiresAt: number) =>
      Effect.zipRight(
        sweepLock.withPermits(1)(
          Effect.clockWith((clock) =>
            earliestExpiry <= clock.unsafeCurrentTimeMillis() && count() >= maxEntries ? sweepOnce : Effect.void
          )
        ),
        Effect.suspend(() => {
          const shard = shardOf(key)
          if (!shard.has(key) && count() >= maxEntries) return Effect.fail(full())
          const before = shard.size
          shard.set(key, new Entry(data, expiresAt))
          held(shard.size - before)
          noteExpiry(expiresAt)
          return Effect.succeed("written" as const)
        })
      )

    // The live entry under `key` at `now`, or undefined.
    const live = (shard: Map<string, Entry>, key: string, now: number): Entry | undefined => {
      const entry = shard.get(key)
      return entry === undefined || entry.expiresAt <= now ? undefined : entry
    }

    const store: MemoryStore = {
      // `clockWith` + `unsafeCurrentTimeMillis`: the Clock service's time in one step (hot path).
      find: (key) =>
        Effect.clockWith((clock) => {
          const entry = live(shardOf(key), key, clock.unsafeCurrentTimeMillis())
          return Effect.succeed(entry === undefined ? Option.none() : Option.some(entry))
        }),
      commit: (key, data, expiresAt, mode) =>
        Effect.clockWith((clock) => {
          const shard = shardOf(key)
          if (mode === "update") {
            if (live(shard, key, clock.unsafeCurrentTimeMillis()) === undefined) return Effect.succeed("gone" as const)
          } else if (!shard.has(key) && count() >= maxEntries) {
            return createWhenFull(key, data, expiresAt)
          }
          const before = shard.size
          shard.set(key, new Entry(data, expiresAt))
          held(shard.size - before)
          noteExpiry(expiresAt)
          return Effect.succeed("written" as const)
        }),
      take: (key) =>
        Effect.clockWith((clock) => {
          const shard = shardOf(key)
          const entry = live(shard, key, clock.unsafeCurrentTimeMillis())
          if (entry === undefined) return Effect.succeed(Option.none())
          shard.delete(key)
          held(-1)
          return Effect.succeed(Option.some(entry))
        }),
      touch: (key, expiresAt) =>
        Effect.clockWith((clock) => {
          const shard = shardOf(key)
          const entry = live(shard, key, clock.unsafeCurrentTimeMillis())
          if (entry === undefined) return Effect.succeed("gone" as const)
          shard.set(key, new Entry(entry.data, expiresAt))
          noteExpiry(expiresAt)
          return Effect.succeed("written" as const)
        }),
      delete: (key) =>
        Effect.sync(() => {
          if (shardOf(key).delete(key)) held(-1)
        }),
      all: Stream.unwrap(
        Effect.map(Clock.currentTimeMillis, (now) =>
          Stream.fromIterable({ [Symbol.iterator]: allEntries }).pipe(
            Stream.filter(([, entry]) => entry.expiresAt > now),
            Stream.map(([key, entry]) => ({ key, data: entry.data, expiresAt: entry.expiresAt }))
          ))
      ),
      owners: index,
      size: Effect.sync(count),
      sweep
    }
    return Telemetry.instrumentStore("memory", store)
  })

/**
 * The memory store as the `SessionStore` and as `MemoryStore`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options?: Options): Layer.Layer<MemoryStore | SessionStore, SessionConfigError> =>
  provideBoth(MemoryStore, make(options))
