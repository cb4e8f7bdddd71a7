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
import * as EventLoop from "../internal/eventLoop.js"
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
  /**
   * The most entries a sweep examines in one step before the event loop gets a turn. Default
   * 1,000 (well under a millisecond). A step also ends after 2 ms, however many it has examined:
   * on a busy machine, or before V8 has optimized the sweep, 1,000 entries can take longer. One
   * step is not cut short: a share of the store (1/256 of its entries) whose live sessions fill
   * at most half of its slots is compacted at once, about 4,000 entries at the default
   * `maxEntries`.
   */
  readonly sweepBatchSize?: number | undefined
  /**
   * The most entries held (expired ones until swept included); a `"create"` of a new key beyond
   * it fails with `Unavailable` (see the module's documentation). Default 1,000,000: at a few
   * hundred bytes per session (43-character key, encoded payload, map and array slots) that is well
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

// Entries are spread over many small maps rather than one big one: a JavaScript Map rehashes
// all of its entries at once when it grows or shrinks, which at a million sessions blocks the
// event loop for tens of milliseconds (during a request's insert or the sweep's deletes); a
// shard rehashes only its own share. The sweep's deletes shrink each shard's map several times:
// at 64 shards and a million sessions a shrink took 0.5–2 ms (5 ms and more on a busy machine);
// 256 shards make each a quarter of that. Power of two, so a shard is picked with a mask.
const SHARDS = 256

// The longest a sweep step runs before the event loop gets a turn (see `sweepBatchSize`).
const SWEEP_STEP_MILLIS = 2

// Tokens and their hashes are random base64url, so their first three characters spread them
// evenly (each shard within 5 % of its share); any other string still lands in some shard (NaN
// & mask is 0).
const shardIndex = (key: string): number =>
  ((key.charCodeAt(0) * 31 + key.charCodeAt(1)) * 31 + key.charCodeAt(2)) & (SHARDS - 1)

// One shard's sessions, laid out for the garbage collector: a stored session is two heap objects,
// its key and its payload (strings, stored encoded so that nothing a handler holds can change
// stored state), and nothing else. The map gives a key's slot (a small integer, not an object);
// the slot indexes arrays of keys, payloads and expiries, the expiries unboxed in a
// `Float64Array`, and freed slots are kept in an `Int32Array`. An entry object with its boxed
// expiry made it four objects per session, all marked by every full collection at a million
// sessions; and a sweep that leaves no garbage behind triggers fewer young-generation collections,
// each a pause added to the batch it lands in. `find` and `take` build a fresh
// `{ data, expiresAt }`: short-lived, collected young and cheaply.
class Shard {
  slots = new Map<string, number>()
  keys: Array<string | undefined> = []
  payloads: Array<string | undefined> = []
  // A freed slot's expiry is Infinity, so a scan of the expiries passes over it.
  expiries = new Float64Array(16)
  // Freed slots, reused by the next new keys: a stack of `freeCount`, as long as `expiries`.
  free = new Int32Array(16)
  freeCount = 0

  get size(): number {
    return this.slots.size
  }

  // The slot of the live session under `key` at `now`, or -1.
  live(key: string, now: number): number {
    const slot = this.slots.get(key)
    return slot === undefined || this.expiries[slot] <= now ? -1 : slot
  }

  entry(slot: number): StoredEntry {
    return { data: this.payloads[slot]!, expiresAt: this.expiries[slot] }
  }

  write(slot: number, data: string, expiresAt: number): void {
    this.payloads[slot] = data
    this.expiries[slot] = expiresAt
  }

  // Stores `data` under `key`, in the key's slot if it has one; answers how many entries it added.
  set(key: string, data: string, expiresAt: number): number {
    const existing = this.slots.get(key)
    if (existing !== undefined) {
      this.write(existing, data, expiresAt)
      return 0
    }
    const slot = this.freeCount > 0 ? this.free[--this.freeCount] : this.keys.length
    if (slot === this.expiries.length) {
      const expiries = new Float64Array(slot * 2)
      expiries.set(this.expiries)
      this.expiries = expiries
      // No slot is free when the arrays are full.
      this.free = new Int32Array(slot * 2)
    }
    this.slots.set(key, slot)
    this.keys[slot] = key
    this.write(slot, data, expiresAt)
    return 1
  }

  remove(slot: number): void {
    this.slots.delete(this.keys[slot]!)
    this.keys[slot] = undefined
    this.payloads[slot] = undefined
    this.expiries[slot] = Infinity
    this.free[this.freeCount++] = slot
  }

  // Keeps the sessions live at `now`, packed into the first slots of a new map and new arrays
  // sized for them, and lets every other entry go at once; answers how many it dropped. The
  // sweep's way with a shard whose live sessions fill at most half of its slots (after a flood of
  // sessions expired, or was deleted): removing them one by one would shrink the map, a rehash of
  // what remains, each time it fell to a quarter of its capacity. That was 30 MB allocated while
  // sweeping a million sessions, and it left the arrays at their largest.
  compact(now: number): number {
    let live = 0
    for (let slot = 0; slot < this.keys.length; slot++) {
      if (this.keys[slot] !== undefined && this.expiries[slot] > now) live++
    }
    let capacity = 16
    while (capacity < live) capacity *= 2
    const slots = new Map<string, number>()
    const keys: Array<string | undefined> = []
    const payloads: Array<string | undefined> = []
    const expiries = new Float64Array(capacity)
    for (let slot = 0; slot < this.keys.length; slot++) {
      const key = this.keys[slot]
      if (key === undefined || this.expiries[slot] <= now) continue
      expiries[keys.length] = this.expiries[slot]
      slots.set(key, keys.length)
      keys.push(key)
      payloads.push(this.payloads[slot])
    }
    const dropped = this.slots.size - live
    this.slots = slots
    this.keys = keys
    this.payloads = payloads
    this.expiries = expiries
    this.free = new Int32Array(capacity)
    this.freeCount = 0
    return dropped
  }
}

/**
 * Makes a memory store whose sweep fiber lives as long as the scope. Fails with
 * `SessionConfigError` for invalid options.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options = {}): Effect.Effect<MemoryStore, SessionConfigError, Scope.Scope> =>
  Effect.gen(function*() {
    const shards: ReadonlyArray<Shard> = Array.from({ length: SHARDS }, () => new Shard())
    const shardOf = (key: string): Shard => shards[shardIndex(key)]
    // Read as the stream is pulled, so each session is read as it is when its turn comes: its
    // slot is looked up again, since a sweep may have compacted the shard (a new map and arrays)
    // while the stream waited.
    const liveSessions = function*(now: number): Generator<StoredSession> {
      for (const shard of shards) {
        for (const key of shard.slots.keys()) {
          const slot = shard.live(key, now)
          if (slot >= 0) yield { key, data: shard.payloads[slot]!, expiresAt: shard.expiries[slot] }
        }
      }
    }
    const sweepBudget: EventLoop.TurnBudget = {
      items: yield* InternalOptions.positiveInteger("sweepBatchSize", options.sweepBatchSize, 1_000),
      millis: SWEEP_STEP_MILLIS
    }
    const maxEntries = yield* InternalOptions.positiveInteger("maxEntries", options.maxEntries, 1_000_000)
    const interval = yield* InternalOptions.duration("cleanupInterval", options.cleanupInterval, "1 minute", {
      allowZero: true
    })

    // The number of entries held, kept as it changes (a create checks it against `maxEntries`).
    // `SessionMetrics.memoryEntries` follows it; what is still held when the store closes is
    // taken off it then.
    let entries = 0
    const count = (): number => entries
    const held = (delta: number): void => {
      if (delta === 0) return
      entries += delta
      SessionMetrics.memoryEntries.unsafeModify(delta, [])
    }
    yield* Effect.addFinalizer(() => Effect.sync(() => SessionMetrics.memoryEntries.unsafeModify(-entries, [])))

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

    // The sweep scans each shard's expiries, then the owner links, one step per turn of the event
    // loop (`inTurns`: no effect run per turn, so the sweep leaves almost no garbage behind to be
    // collected while it runs). A step ends after `sweepBatchSize` entries or `SWEEP_STEP_MILLIS`,
    // whichever comes first; a shard whose live sessions fill at most half of its slots is
    // compacted in one step (some 4,000 entries at the default cap: under a millisecond once
    // optimized). Writes between steps may fill freed
    // slots behind the scan (noted in `earliestWrittenDuringSweep`) or add slots ahead of it
    // (scanned).
    const sweepOnce: Effect.Effect<number> = yield* Sweeper.observe(
      "memory",
      Effect.clockWith((clock) => {
        const now = clock.unsafeCurrentTimeMillis()
        sweeping = true
        earliestWrittenDuringSweep = Infinity
        let earliestKept = Infinity
        let deleted = 0
        let shardAt = 0
        let slotAt = 0
        // A shard is swept in two passes. The first counts its expired entries. If the live ones
        // would fill at most half of its slots (the others expired, or freed by deletes), the
        // shard is compacted at once (`Shard.compact`); otherwise the second pass removes the
        // expired ones one by one.
        let removing = false
        let expiredInShard = 0
        const sweepSessions = (spent: EventLoop.Spent): boolean => {
          const deletedBefore = deleted
          for (; shardAt < SHARDS; shardAt++, slotAt = 0, removing = false) {
            const shard = shards[shardAt]
            if (!removing) {
              if (slotAt === 0) expiredInShard = 0
              while (slotAt < shard.keys.length) {
                const expiresAt = shard.expiries[slotAt++]
                if (expiresAt <= now) expiredInShard++
                else if (expiresAt < earliestKept) earliestKept = expiresAt
                if (spent()) {
                  held(deletedBefore - deleted)
                  return true
                }
              }
              // The count is as the shard was when it was taken: writes since may have changed
              // it, which `compact` (one step) does not rely on.
              const live = shard.size - expiredInShard
              if (live * 2 <= shard.keys.length && live < shard.keys.length) {
                const walked = shard.keys.length
                deleted += shard.compact(now)
                // A compaction walks every slot of the shard in one step.
                if (spent(walked)) {
                  shardAt++
                  slotAt = 0
                  held(deletedBefore - deleted)
                  return true
                }
                continue
              }
              if (expiredInShard === 0) continue
              removing = true
              slotAt = 0
            }
            while (slotAt < shard.keys.length) {
              const slot = slotAt++
              if (shard.expiries[slot] <= now) {
                shard.remove(slot)
                deleted++
              }
              if (spent()) {
                held(deletedBefore - deleted)
                return true
              }
            }
          }
          held(deletedBefore - deleted)
          earliestExpiry = Math.min(earliestKept, earliestWrittenDuringSweep)
          return false
        }
        // Owners are swept whole (an owner's links are few); the step ends between owners.
        const ownersLeft = owners.keys()
        const sweepOwners = (spent: EventLoop.Spent): boolean => {
          for (let next = ownersLeft.next(); !next.done; next = ownersLeft.next()) {
            const links = owners.get(next.value)
            if (links === undefined) continue
            const examined = links.size
            for (const [handle, link] of links) if (link.until <= now) links.delete(handle)
            if (links.size === 0) owners.delete(next.value)
            if (spent(examined)) return true
          }
          return false
        }
        return EventLoop.inTurns(sweepBudget, sweepSessions).pipe(
          Effect.zipRight(EventLoop.inTurns(sweepBudget, sweepOwners)),
          Effect.map(() => deleted)
        )
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
          if (!shard.slots.has(key) && count() >= maxEntries) return Effect.fail(full())
          held(shard.set(key, data, expiresAt))
          noteExpiry(expiresAt)
          return Effect.succeed("written" as const)
        })
      )

    // The calls that do their work at once on the `Clock`'s time: the store's `find`, `commit`,
    // `take` and `touch`, each timed in the step that reads the time (`Telemetry.instrumentStore`).
    const immediate: Telemetry.Immediate = {
      find: (now, key) => {
        const shard = shardOf(key)
        const slot = shard.live(key, now)
        return Effect.succeed(slot < 0 ? Option.none() : Option.some(shard.entry(slot)))
      },
      commit: (now, key, data, expiresAt, mode) => {
        const shard = shardOf(key)
        if (mode === "update") {
          const slot = shard.live(key, now)
          if (slot < 0) return Effect.succeed("gone" as const)
          shard.write(slot, data, expiresAt)
        } else if (!shard.slots.has(key) && count() >= maxEntries) {
          return createWhenFull(key, data, expiresAt)
        } else {
          held(shard.set(key, data, expiresAt))
        }
        noteExpiry(expiresAt)
        return Effect.succeed("written" as const)
      },
      take: (now, key) => {
        const shard = shardOf(key)
        const slot = shard.live(key, now)
        if (slot < 0) return Effect.succeed(Option.none())
        const entry = shard.entry(slot)
        shard.remove(slot)
        held(-1)
        return Effect.succeed(Option.some(entry))
      },
      touch: (now, key, expiresAt) => {
        const shard = shardOf(key)
        const slot = shard.live(key, now)
        if (slot < 0) return Effect.succeed("gone" as const)
        shard.expiries[slot] = expiresAt
        noteExpiry(expiresAt)
        return Effect.succeed("written" as const)
      }
    }

    const store: MemoryStore = {
      ...Telemetry.onClock(immediate),
      delete: (key) =>
        Effect.sync(() => {
          const shard = shardOf(key)
          const slot = shard.slots.get(key)
          if (slot === undefined) return
          shard.remove(slot)
          held(-1)
        }),
      all: Stream.unwrap(
        Effect.map(
          Clock.currentTimeMillis,
          (now) => Stream.fromIterable({ [Symbol.iterator]: () => liveSessions(now) })
        )
      ),
      owners: index,
      size: Effect.sync(count),
      sweep
    }
    return Telemetry.instrumentStore("memory", store, immediate)
  })

/**
 * The memory store as the `SessionStore` and as `MemoryStore`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options?: Options): Layer.Layer<MemoryStore | SessionStore, SessionConfigError> =>
  provideBoth(MemoryStore, make(options))
