/**
 * The store conformance suite: the cases every `SessionStore` of this library passes, for
 * authors of a store of their own. Call `storeConformance` at the top level of a test file run
 * by `vitest` with `@effect/vitest` (both optional peer dependencies of this package):
 *
 * ```ts
 * import { storeConformance } from "effect-session/testing"
 * import * as MyStore from "./MyStore.js"
 *
 * storeConformance({ name: "my store", layer: MyStore.layer(), enumerable: true })
 * ```
 *
 * Every case runs on `TestClock`, starting at `START`: a store must read the time from `Clock`
 * (see the contract written on `SessionStore`).
 *
 * @since 0.2.0
 */
import { describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Encoding from "effect/Encoding"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import * as SessionManager from "../SessionManager.js"
import { SessionStore, SessionStoreError } from "../SessionStore.js"
import type { StoredEntry, StoredSession } from "../SessionStore.js"
import { ownerIndexCases, ownerManagerCases, unsupportedOwnerCases } from "./OwnerIndexCases.js"
import * as SpanAudit from "./SpanAudit.js"

/**
 * What `storeConformance` needs to know about a store. `R` is whatever else the store's layer
 * provides beside `SessionStore` (typically the backend's own tag), so that `sweep.physicalCount`
 * can reach it without a cast.
 *
 * @since 0.2.0
 * @category models
 */
export interface StoreConformanceOptions<R = never> {
  /** Shown in the test names. */
  readonly name: string
  /**
   * The store, built afresh for each case (cases may share a backend, such as one database
   * table: they only ever look at keys they wrote themselves).
   */
  readonly layer: Layer.Layer<SessionStore | R, unknown>
  /**
   * Whether the store enumerates. `true`: `all` is a stream of the live entries and
   * `SessionManager.iterate` visits them. `false`: `all` must be `undefined`, and the manager's
   * `iterate` then fails with `SessionStoreError` (reason `Unsupported`); both are checked.
   */
  readonly enumerable: boolean
  /**
   * Whether the store keeps an owner index. `true`: `owners` passes the `OwnerIndex` cases and
   * the manager's owner operations (bind, list, revoke, their races with renewal) work on it.
   * `false`: `owners` must be `undefined`, and those operations fail with `SessionStoreError`
   * (reason `Unsupported`).
   */
  readonly owners: boolean
  /**
   * For stores whose `all` reads the backend in pages: the store with the given page size, so
   * that the suite can check that paging emits every live entry exactly once.
   */
  readonly paging?: {
    readonly layer: (pageSize: number) => Layer.Layer<SessionStore, unknown>
  } | undefined
  /**
   * For stores that keep their data when closed (files, a database): an effect that sets up a
   * storage place for one case in its scope (a temporary directory, say) and returns a layer
   * that opens the store on it. The suite builds that layer, writes, closes it, lets time pass,
   * builds it again and reads: live sessions survive, expired ones are never found.
   */
  readonly durable?: {
    readonly storage: Effect.Effect<Layer.Layer<SessionStore, unknown>, unknown, Scope.Scope>
  } | undefined
  /**
   * For stores with a background sweep of expired entries (started by the layer, stopped with
   * its scope): the sweep interval the `layer` was given, and how many entries the backend
   * physically holds for `keys`, expired ones included, read past the store's expiry checks.
   * The suite checks that the sweep removes expired entries and keeps live ones, and that a
   * `TestClock` jump over many intervals wakes it a bounded number of times rather than once
   * per missed interval. The sweeper must wait through `Clock` (`Effect.sleep`, a `Schedule`):
   * the suite knows a sweep run is over when the store's fibers go back to sleep.
   */
  readonly sweep?: {
    readonly interval: Duration.DurationInput
    readonly physicalCount: (
      keys: ReadonlyArray<string>
    ) => Effect.Effect<number, unknown, SessionStore | R | Scope.Scope>
  } | undefined
  /** Skips the whole suite, shown with this reason (when the backend is not available). */
  readonly skip?: string | undefined
}

/**
 * The `TestClock` time every case starts at, before the store is built: a realistic date, so
 * that stores see plausible epoch milliseconds.
 *
 * @since 0.2.0
 * @category constants
 */
export const START: number = Date.UTC(2026, 0, 1, 12, 0, 0)

// How long a jump the sweep case makes, and how often the sweeper may wake during it (the
// timers of a sweep's own statements included); one wake-up per missed interval is a failure.
const JUMP = Duration.days(30)
const MAX_WAKE_UPS_PER_JUMP = 25

const randomBytes = (length: number): Uint8Array => crypto.getRandomValues(new Uint8Array(length))

// A fresh key shaped like the manager's tokens (32 random bytes, base64url).
const newKey = (): string => Encoding.encodeBase64Url(randomBytes(32))

// The key the manager stores a token under with `hashTokenInStore`: base64url(SHA-256(token)).
const hashed = (token: string): Effect.Effect<string> =>
  Effect.map(
    Effect.promise(() => crypto.subtle.digest("SHA-256", new TextEncoder().encode(token))),
    (digest) => Encoding.encodeBase64Url(new Uint8Array(digest))
  )

const tokenOf = (outcome: SessionManager.CommitOutcome): Effect.Effect<Redacted.Redacted<string>> =>
  outcome._tag === "Written"
    ? Effect.succeed(outcome.token)
    : Effect.dieMessage(`expected the commit to be Written, got ${outcome._tag}`)

const collectAll = (store: SessionStore): Effect.Effect<ReadonlyArray<StoredSession>, SessionStoreError> =>
  store.all === undefined
    ? Effect.dieMessage("the store was declared enumerable, but its all is undefined")
    : Effect.map(Stream.runCollect(store.all), Chunk.toReadonlyArray)

// What `find` and `take` return for a live entry.
const found = (data: string, expiresAt: number): Option.Option<StoredEntry> => Option.some({ data, expiresAt })

const managerOn = (store: SessionStore, options: SessionManager.Options = {}) =>
  Effect.map(Effect.provideService(SessionManager.make(options), SessionStore, store), SpanAudit.recordingManager)

// Every store a case builds, from any of the layers it is given, records the keys and payloads it
// sees for the span audit of that case.
const recordingOptions = <R>(options: StoreConformanceOptions<R>): StoreConformanceOptions<R> => {
  const { durable, paging } = options
  return {
    ...options,
    layer: SpanAudit.recordingStoreLayer(options.layer),
    paging: paging === undefined
      ? undefined
      : { layer: (pageSize) => SpanAudit.recordingStoreLayer(paging.layer(pageSize)) },
    durable: durable === undefined
      ? undefined
      : { storage: Effect.map(durable.storage, SpanAudit.recordingStoreLayer) }
  }
}

/**
 * A store built in the current scope under a `Clock` that reports every sleep its fibers start.
 * A sweeper goes back to sleep when a run is over, so a case can wait for that instead of
 * polling: `nextSleep` waits for the next sleep (buffered), `tooManySleeps` completes once more
 * than `more` sleeps have started since `watch(more)`.
 */
const buildObserved = <R>(layer: Layer.Layer<SessionStore | R, unknown>) =>
  Effect.gen(function*() {
    const clock = yield* Effect.clock
    const sleeps = yield* Queue.unbounded<void>()
    const tooManySleeps = yield* Deferred.make<void>()
    let count = 0
    let limit = Infinity
    const observed: Clock.Clock = {
      [Clock.ClockTypeId]: Clock.ClockTypeId,
      unsafeCurrentTimeMillis: () => clock.unsafeCurrentTimeMillis(),
      unsafeCurrentTimeNanos: () => clock.unsafeCurrentTimeNanos(),
      currentTimeMillis: clock.currentTimeMillis,
      currentTimeNanos: clock.currentTimeNanos,
      sleep: (duration) =>
        Effect.suspend(() => {
          count++
          sleeps.unsafeOffer(undefined)
          if (count > limit) Deferred.unsafeDone(tooManySleeps, Effect.void)
          return clock.sleep(duration)
        })
    }
    // Fibers the layer forks inherit this clock; the case itself keeps the TestClock.
    const context = yield* Effect.withClock(Layer.build(layer), observed)
    return {
      context,
      watch: (more: number) => {
        limit = count + more
      },
      nextSleep: Queue.take(sleeps),
      tooManySleeps: Deferred.await(tooManySleeps)
    }
  })

// Checks `done` each time the store's fibers go to sleep, a bounded number of times.
const untilAsleep = <E, R>(done: Effect.Effect<boolean, E, R>, nextSleep: Effect.Effect<void>, what: string) =>
  Effect.gen(function*() {
    for (let sleeps = 0; sleeps < 100; sleeps++) {
      if (yield* done) return
      yield* nextSleep
    }
    return yield* Effect.dieMessage(`${what}: still not done after the store slept 100 times`)
  })

/**
 * Registers the conformance cases for one store with `vitest`, in a `describe` block named after
 * it. Call it at the top level of a test file, once per store configuration.
 *
 * The cases cover the contract written on `SessionStore`: `find`/`commit`/`delete` (`find`
 * reporting the expiry last given), expiry read from `Clock` (never found at or after it),
 * `"create"` versus `"update"` (an update of a missing, deleted or expired key is `"gone"` and
 * writes nothing, even racing a delete), `take` (read-and-remove: of concurrent takes one gets the
 * entry, and no update after it brings it back), `touch` (moves the expiry of a live entry only,
 * never revives one, even racing a delete), payloads kept byte for byte, concurrent commits,
 * enumeration or its absence, and a `SessionManager` on top (hashed tokens, a late commit never
 * bringing back a destroyed or renewed session). The optional
 * `paging`, `durable` and `sweep` options add the cases of those capabilities.
 *
 * Every case also runs under the span audit (see `SpanAudit`): the keys and payloads its stores
 * see and the tokens its managers hand out are recorded, and the case fails if one of them shows
 * in any span made meanwhile (the library's, the store's, its driver's), a failure's rendered
 * cause included.
 *
 * @since 0.2.0
 * @category conformance
 */
export const storeConformance = <R = never>(given: StoreConformanceOptions<R>): void => {
  const options = recordingOptions(given)
  const describeOrSkip = options.skip === undefined ? describe : describe.skip
  const title = `SessionStore conformance: ${options.name}${
    options.skip === undefined ? "" : ` (skipped: ${options.skip})`
  }`
  describeOrSkip(title, () => {
    // The clock is set before the store exists, so that a sweep schedule starts from START; the
    // span audit's tracer too, so that the spans of building the store and of its sweep count.
    const bare = <A, E>(name: string, body: Effect.Effect<A, E, Scope.Scope>) =>
      it.scoped(name, () => Effect.zipRight(TestClock.setTime(START), SpanAudit.audited(body)), 30_000)
    const test = <A, E>(name: string, body: Effect.Effect<A, E, SessionStore | R | Scope.Scope>) =>
      bare(name, Effect.provide(body, options.layer))
    const hour = Duration.toMillis("1 hour")

    test(
      "find of an unknown key is none",
      Effect.gen(function*() {
        const store = yield* SessionStore
        expect(yield* store.find(newKey())).toEqual(Option.none())
      })
    )

    test(
      "create, then find returns the payload",
      Effect.gen(function*() {
        const store = yield* SessionStore
        const key = newKey()
        expect(yield* store.commit(key, "{\"a\":1}", START + hour, "create")).toBe("written")
        expect(yield* store.find(key)).toEqual(found("{\"a\":1}", START + hour))
      })
    )

    test(
      "create over an existing key replaces it (upsert)",
      Effect.gen(function*() {
        const store = yield* SessionStore
        const key = newKey()
        yield* store.commit(key, "one", START + hour, "create")
        yield* store.commit(key, "two", START + 2 * hour, "create")
        expect(yield* store.find(key)).toEqual(found("two", START + 2 * hour))
      })
    )

    test(
      "update of a live key replaces payload and expiry",
      Effect.gen(function*() {
        const store = yield* SessionStore
        const key = newKey()
        yield* store.commit(key, "one", START + hour, "create")
        expect(yield* store.commit(key, "two", START + 3 * hour, "update")).toBe("written")
        yield* TestClock.adjust("2 hours")
        expect(yield* store.find(key)).toEqual(found("two", START + 3 * hour))
      })
    )

    test(
      "update of an unknown key is gone and creates nothing",
      Effect.gen(function*() {
        const store = yield* SessionStore
        const key = newKey()
        expect(yield* store.commit(key, "late", START + hour, "update")).toBe("gone")
        expect(yield* store.find(key)).toEqual(Option.none())
      })
    )

    test(
      "update after delete is gone: a logout stays a logout",
      Effect.gen(function*() {
        const store = yield* SessionStore
        const key = newKey()
        yield* store.commit(key, "alive", START + hour, "create")
        yield* store.delete(key)
        expect(yield* store.commit(key, "stale", START + hour, "update")).toBe("gone")
        expect(yield* store.find(key)).toEqual(Option.none())
      })
    )

    /**
     * For 20 fresh keys: five `write`s race a delete; whatever order they ran in, the delete is the
     * last word, and nothing is left behind (an index entry, a row the sweep would have to find).
     */
    const racingADelete = (write: (store: SessionStore, key: string, i: number) => Effect.Effect<unknown, unknown>) =>
      Effect.gen(function*() {
        const store = yield* SessionStore
        const keys = Array.from({ length: 20 }, newKey)
        for (const key of keys) {
          yield* store.commit(key, "seed", START + hour, "create")
          const results = yield* Effect.all([
            ...Array.from({ length: 5 }, (_, i) => write(store, key, i)),
            Effect.as(store.delete(key), "deleted" as const)
          ], { concurrency: "unbounded" })
          expect(results).toContain("deleted")
          expect(yield* store.find(key)).toEqual(Option.none())
          expect(yield* store.touch(key, START + 3 * hour)).toBe("gone")
          expect(yield* store.find(key)).toEqual(Option.none())
        }
        if (options.sweep !== undefined) expect(yield* options.sweep.physicalCount(keys)).toBe(0)
      })

    test(
      "concurrent updates racing a delete never re-create the entry",
      racingADelete((store, key, i) => store.commit(key, `late-${i}`, START + hour, "update"))
    )

    test(
      "update of an expired entry is gone and does not revive it",
      Effect.gen(function*() {
        const store = yield* SessionStore
        const key = newKey()
        yield* store.commit(key, "short", START + 1000, "create")
        yield* TestClock.adjust("2 seconds")
        expect(yield* store.commit(key, "revived", START + hour, "update")).toBe("gone")
        expect(yield* store.find(key)).toEqual(Option.none())
      })
    )

    test(
      "an entry is found until its expiry and never at or after it",
      Effect.gen(function*() {
        const store = yield* SessionStore
        const key = newKey()
        yield* store.commit(key, "x", START + 5000, "create")
        yield* TestClock.adjust("4999 millis")
        expect(yield* store.find(key)).toEqual(found("x", START + 5000))
        yield* TestClock.adjust("1 millis")
        expect(yield* store.find(key)).toEqual(Option.none())
      })
    )

    test(
      "an expiry in the past is never found",
      Effect.gen(function*() {
        const store = yield* SessionStore
        const key = newKey()
        yield* store.commit(key, "x", START - 1000, "create")
        expect(yield* store.find(key)).toEqual(Option.none())
      })
    )

    test(
      "delete removes an entry; deleting an unknown key is a no-op",
      Effect.gen(function*() {
        const store = yield* SessionStore
        const key = newKey()
        yield* store.commit(key, "x", START + hour, "create")
        yield* store.delete(key)
        yield* store.delete(key)
        yield* store.delete(newKey())
        expect(yield* store.find(key)).toEqual(Option.none())
      })
    )

    test(
      "take of an unknown key is none and removes nothing",
      Effect.gen(function*() {
        const store = yield* SessionStore
        const other = newKey()
        yield* store.commit(other, "other", START + hour, "create")
        expect(yield* store.take(newKey())).toEqual(Option.none())
        expect(yield* store.find(other)).toEqual(found("other", START + hour))
      })
    )

    test(
      "take of an expired entry is none and does not revive it",
      Effect.gen(function*() {
        const store = yield* SessionStore
        const key = newKey()
        yield* store.commit(key, "short", START + 1000, "create")
        yield* TestClock.adjust("1 second")
        expect(yield* store.take(key)).toEqual(Option.none())
        expect(yield* store.find(key)).toEqual(Option.none())
        expect(yield* store.commit(key, "revived", START + hour, "update")).toBe("gone")
        expect(yield* store.find(key)).toEqual(Option.none())
      })
    )

    test(
      "take returns the entry and removes it: a second take, a find and an update find it gone",
      Effect.gen(function*() {
        const store = yield* SessionStore
        const key = newKey()
        const payload = "{\"user\":\"ada\",\"note\":\"é 🎉\"}"
        yield* store.commit(key, payload, START + hour, "create")
        expect(yield* store.take(key)).toEqual(found(payload, START + hour))
        expect(yield* store.take(key)).toEqual(Option.none())
        expect(yield* store.find(key)).toEqual(Option.none())
        expect(yield* store.commit(key, "stale", START + hour, "update")).toBe("gone")
        expect(yield* store.touch(key, START + 2 * hour)).toBe("gone")
        expect(yield* store.find(key)).toEqual(Option.none())
      })
    )

    test(
      "of concurrent takes of one key exactly one gets the entry",
      Effect.gen(function*() {
        const store = yield* SessionStore
        for (let round = 0; round < 10; round++) {
          const key = newKey()
          yield* store.commit(key, `v${round}`, START + hour, "create")
          const taken = yield* Effect.all(Array.from({ length: 8 }, () => store.take(key)), {
            concurrency: "unbounded"
          })
          expect(taken.filter(Option.isSome)).toEqual([found(`v${round}`, START + hour)])
          expect(yield* store.find(key)).toEqual(Option.none())
        }
      })
    )

    test(
      "take racing updates: the take gets the entry, and no update after it brings it back",
      Effect.gen(function*() {
        const store = yield* SessionStore
        const keys = Array.from({ length: 20 }, newKey)
        for (const key of keys) {
          yield* store.commit(key, "seed", START + hour, "create")
          const { taken, updates } = yield* Effect.all({
            taken: store.take(key),
            updates: Effect.all(
              Array.from({ length: 5 }, (_, i) => store.commit(key, `late-${i}`, START + hour, "update")),
              { concurrency: "unbounded" }
            )
          }, { concurrency: "unbounded" })
          // The entry was live until taken, so the take got it: the seed or an update written before it.
          if (Option.isNone(taken)) return yield* Effect.dieMessage("the take found no entry")
          const written = updates.flatMap((result, i) => result === "written" ? [`late-${i}`] : [])
          expect(["seed", ...written]).toContain(taken.value.data)
          expect(taken.value.expiresAt).toBe(START + hour)
          // Whatever order they ran in, an update after the take answered gone and wrote nothing.
          expect(yield* store.find(key)).toEqual(Option.none())
          expect(yield* store.take(key)).toEqual(Option.none())
        }
        if (options.sweep !== undefined) expect(yield* options.sweep.physicalCount(keys)).toBe(0)
      })
    )

    test(
      "touch moves the expiry of a live entry and leaves its payload byte for byte",
      Effect.gen(function*() {
        const store = yield* SessionStore
        const key = newKey()
        const payload = "{\"quote\":\"\\\"\",\"nul\":\"\\u0000\"} emoji 🎉 漢字 עברית"
        yield* store.commit(key, payload, START + hour, "create")
        expect(yield* store.touch(key, START + 3 * hour)).toBe("written")
        expect(yield* store.find(key)).toEqual(found(payload, START + 3 * hour))
        // Past the expiry it was committed with, it lives on until the one it was touched to.
        yield* TestClock.adjust("2 hours")
        expect(yield* store.find(key)).toEqual(found(payload, START + 3 * hour))
        // A touch may also shorten the lifetime.
        expect(yield* store.touch(key, START + 2 * hour + 1000)).toBe("written")
        expect(yield* store.find(key)).toEqual(found(payload, START + 2 * hour + 1000))
        yield* TestClock.adjust("1 second")
        expect(yield* store.find(key)).toEqual(Option.none())
      })
    )

    test(
      "take returns the expiry last given to touch",
      Effect.gen(function*() {
        const store = yield* SessionStore
        const key = newKey()
        yield* store.commit(key, "moved", START + hour, "create")
        yield* store.touch(key, START + 4 * hour)
        expect(yield* store.take(key)).toEqual(found("moved", START + 4 * hour))
      })
    )

    test(
      "touch of an unknown, deleted or expired key is gone and writes nothing",
      Effect.gen(function*() {
        const store = yield* SessionStore
        const unknown = newKey()
        expect(yield* store.touch(unknown, START + hour)).toBe("gone")
        expect(yield* store.find(unknown)).toEqual(Option.none())

        const deleted = newKey()
        yield* store.commit(deleted, "alive", START + hour, "create")
        yield* store.delete(deleted)
        expect(yield* store.touch(deleted, START + 2 * hour)).toBe("gone")
        expect(yield* store.find(deleted)).toEqual(Option.none())

        const expired = newKey()
        yield* store.commit(expired, "short", START + 1000, "create")
        yield* TestClock.adjust("1 second")
        expect(yield* store.touch(expired, START + hour)).toBe("gone")
        // Never revived: not by the touch, and not for an update after it either.
        expect(yield* store.find(expired)).toEqual(Option.none())
        expect(yield* store.commit(expired, "revived", START + hour, "update")).toBe("gone")
        expect(yield* store.find(expired)).toEqual(Option.none())
      })
    )

    test(
      "concurrent touches racing a delete never re-create the entry",
      racingADelete((store, key, i) => store.touch(key, START + 2 * hour + i))
    )

    test(
      "touch to an expiry at or before now makes the entry unfound",
      Effect.gen(function*() {
        const store = yield* SessionStore
        for (const expiresAt of [START, START - 1000]) {
          const key = newKey()
          yield* store.commit(key, "x", START + hour, "create")
          expect(yield* store.touch(key, expiresAt)).toBe("written")
          expect(yield* store.find(key)).toEqual(Option.none())
          expect(yield* store.take(key)).toEqual(Option.none())
          expect(yield* store.touch(key, START + hour)).toBe("gone")
          expect(yield* store.find(key)).toEqual(Option.none())
        }
      })
    )

    test(
      "payloads round-trip byte for byte",
      Effect.gen(function*() {
        const store = yield* SessionStore
        const payloads = [
          "",
          "{\"quote\":\"\\\"\",\"backslash\":\"\\\\\",\"nul\":\"\\u0000\"}",
          "emoji 🎉, accents éàü, CJK 漢字, RTL עברית",
          "x".repeat(64 * 1024),
          Encoding.encodeBase64(randomBytes(3000))
        ]
        for (const payload of payloads) {
          const key = newKey()
          yield* store.commit(key, payload, START + hour, "create")
          expect(yield* store.find(key)).toEqual(found(payload, START + hour))
        }
      })
    )

    test(
      "100 concurrent commits on different keys all land",
      Effect.gen(function*() {
        const store = yield* SessionStore
        const keys = Array.from({ length: 100 }, newKey)
        yield* Effect.forEach(keys, (key, i) => store.commit(key, `v${i}`, START + hour, "create"), {
          concurrency: "unbounded"
        })
        const entries = yield* Effect.forEach(keys, (key) => store.find(key), { concurrency: "unbounded" })
        expect(entries).toEqual(keys.map((_, i) => found(`v${i}`, START + hour)))
      })
    )

    if (options.enumerable) {
      test(
        "all emits every live entry and no expired one",
        Effect.gen(function*() {
          const store = yield* SessionStore
          const live = Array.from({ length: 5 }, newKey)
          const expired = Array.from({ length: 3 }, newKey)
          for (const key of live) yield* store.commit(key, `live:${key}`, START + hour, "create")
          for (const key of expired) yield* store.commit(key, "dead", START + 1000, "create")
          yield* TestClock.adjust("1 second")
          const all = yield* collectAll(store)
          const byKey = new Map(all.map((entry) => [entry.key, entry]))
          for (const key of live) {
            expect(byKey.get(key)?.data).toBe(`live:${key}`)
            expect(byKey.get(key)?.expiresAt).toBe(START + hour)
          }
          for (const key of expired) expect(byKey.has(key)).toBe(false)
          for (const entry of all) expect(entry.expiresAt).toBeGreaterThan(START + 1000)
        })
      )
    } else {
      test(
        "a store that cannot enumerate says so: all is undefined and iterate fails with Unsupported",
        Effect.gen(function*() {
          const store = yield* SessionStore
          expect(store.all).toBeUndefined()
          const manager = yield* managerOn(store)
          const error = yield* Effect.flip(manager.iterate(() => Effect.void))
          expect(error).toBeInstanceOf(SessionStoreError)
          expect(error).toMatchObject({ reason: "Unsupported", operation: "all" })
        })
      )
    }

    if (options.owners) {
      ownerIndexCases(test, START)
      ownerManagerCases(test, START)
    } else {
      unsupportedOwnerCases(test)
    }

    const paging = options.paging
    if (paging !== undefined) {
      for (const pageSize of [1, 7]) {
        bare(
          `all pages through the store (page size ${pageSize}): every live entry exactly once`,
          Effect.gen(function*() {
            const store = Context.get(yield* Layer.build(paging.layer(pageSize)), SessionStore)
            const live = Array.from({ length: 30 }, newKey)
            const expired = Array.from({ length: 2 }, newKey)
            for (const key of live) yield* store.commit(key, `v:${key}`, START + hour, "create")
            for (const key of expired) yield* store.commit(key, "dead", START + 1000, "create")
            yield* TestClock.adjust("1 second")
            // The backend may hold other cases' entries: look at this case's keys only.
            const ours = new Set([...live, ...expired])
            const seen = (yield* collectAll(store)).filter((entry) => ours.has(entry.key))
            expect(seen.map((entry) => entry.key).sort()).toEqual([...live].sort())
            for (const entry of seen) {
              expect(entry).toEqual({ key: entry.key, data: `v:${entry.key}`, expiresAt: START + hour })
            }
          })
        )
      }
    }

    const durable = options.durable
    if (durable !== undefined) {
      bare(
        "durability: live sessions are found after closing and reopening; expired ones are not",
        Effect.gen(function*() {
          const layer = yield* durable.storage
          const live = Array.from({ length: 3 }, newKey)
          const expired = newKey()
          const withStore = <A, E>(f: (store: SessionStore) => Effect.Effect<A, E>) =>
            Effect.scoped(Effect.flatMap(Layer.build(layer), (context) => f(Context.get(context, SessionStore))))

          const token = yield* withStore((store) =>
            Effect.gen(function*() {
              for (const key of live) yield* store.commit(key, `payload:${key}`, START + hour, "create")
              yield* store.commit(expired, "soon gone", START + 1000, "create")
              const manager = yield* managerOn(store)
              const session = yield* manager.load(undefined)
              yield* session.put("user", "ada")
              return yield* tokenOf(yield* manager.commit(session))
            })
          )
          // The store is closed; time passes while the process is down.
          yield* TestClock.adjust("2 seconds")
          yield* withStore((store) =>
            Effect.gen(function*() {
              for (const key of live) expect(yield* store.find(key)).toEqual(found(`payload:${key}`, START + hour))
              expect(yield* store.find(expired)).toEqual(Option.none())
              const manager = yield* managerOn(store)
              expect(yield* (yield* manager.load(token)).getString("user")).toBe("ada")
            })
          )
        })
      )
    }

    const sweep = options.sweep
    if (sweep !== undefined) {
      bare(
        "the background sweep physically removes expired entries and keeps live ones",
        Effect.gen(function*() {
          const observed = yield* buildObserved(options.layer)
          const store = Context.get(observed.context, SessionStore)
          const physicalCount = (keys: ReadonlyArray<string>) =>
            Effect.provide(sweep.physicalCount(keys), observed.context)
          const expired = Array.from({ length: 20 }, newKey)
          const live = Array.from({ length: 5 }, newKey)
          for (const key of expired) yield* store.commit(key, "dead", START + 1000, "create")
          for (const key of live) {
            yield* store.commit(key, "alive", START + 10 * Duration.toMillis(sweep.interval), "create")
          }
          expect(yield* physicalCount([...expired, ...live])).toBe(25)
          yield* TestClock.adjust(sweep.interval)
          yield* untilAsleep(
            Effect.map(physicalCount([...expired, ...live]), (count) => count === live.length),
            observed.nextSleep,
            "the sweep after one interval"
          )
          for (const key of live) {
            expect(yield* store.find(key)).toEqual(found("alive", START + 10 * Duration.toMillis(sweep.interval)))
          }
        })
      )

      bare(
        "a touched entry outlives a sweep past its old expiry and is swept after its new one",
        Effect.gen(function*() {
          const observed = yield* buildObserved(options.layer)
          const store = Context.get(observed.context, SessionStore)
          const physicalCount = (keys: ReadonlyArray<string>) =>
            Effect.provide(sweep.physicalCount(keys), observed.context)
          const interval = Duration.toMillis(sweep.interval)
          const touched = newKey()
          // Expires with the touched entry's old expiry: once it is gone, a sweep has run.
          const marker = newKey()
          yield* store.commit(touched, "kept", START + 1000, "create")
          yield* store.commit(marker, "dead", START + 1000, "create")
          expect(yield* store.touch(touched, START + 3 * interval)).toBe("written")
          const both = [touched, marker]
          yield* TestClock.adjust(sweep.interval)
          // The marker swept, the touched entry kept.
          yield* untilAsleep(
            Effect.map(physicalCount(both), (count) => count === 1),
            observed.nextSleep,
            "the sweep after one interval"
          )
          expect(yield* store.find(marker)).toEqual(Option.none())
          expect(yield* store.find(touched)).toEqual(found("kept", START + 3 * interval))
          yield* TestClock.adjust(Duration.times(sweep.interval, 3))
          yield* untilAsleep(
            Effect.map(physicalCount(both), (count) => count === 0),
            observed.nextSleep,
            "the sweep after the new expiry"
          )
        })
      )

      bare(
        `a clock jump of ${Duration.format(JUMP)} wakes the sweeper a bounded number of times, not once per interval`,
        Effect.gen(function*() {
          const observed = yield* buildObserved(options.layer)
          const store = Context.get(observed.context, SessionStore)
          const expired = Array.from({ length: 5 }, newKey)
          const live = Array.from({ length: 5 }, newKey)
          for (const key of expired) yield* store.commit(key, "dead", START + 1000, "create")
          for (const key of live) yield* store.commit(key, "alive", START + 2 * Duration.toMillis(JUMP), "create")
          observed.watch(MAX_WAKE_UPS_PER_JUMP)
          const jump = yield* Effect.raceFirst(
            Effect.as(TestClock.adjust(JUMP), "over" as const),
            Effect.as(observed.tooManySleeps, "replaying every missed interval" as const)
          )
          expect(jump).toBe("over")
          yield* untilAsleep(
            Effect.map(
              Effect.provide(sweep.physicalCount([...expired, ...live]), observed.context),
              (count) => count === live.length
            ),
            observed.nextSleep,
            "the sweep after the jump"
          )
          for (const key of live) {
            expect(yield* store.find(key)).toEqual(found("alive", START + 2 * Duration.toMillis(JUMP)))
          }
        })
      )
    }

    test(
      "manager round trip, with the token hashed at rest",
      Effect.gen(function*() {
        const store = yield* SessionStore
        const manager = yield* managerOn(store, { hashTokenInStore: true })
        const first = yield* manager.load(undefined)
        yield* first.put("user", "ada")
        const token = yield* tokenOf(yield* manager.commit(first))
        expect(yield* store.find(Redacted.value(token))).toEqual(Option.none())
        expect(Option.isSome(yield* store.find(yield* hashed(Redacted.value(token))))).toBe(true)
        const again = yield* manager.load(token)
        expect(yield* again.getString("user")).toBe("ada")
      })
    )

    test(
      "a late commit does not bring back a destroyed session",
      Effect.gen(function*() {
        const manager = yield* managerOn(yield* SessionStore)
        const seed = yield* manager.load(undefined)
        yield* seed.put("n", 1)
        const token = yield* tokenOf(yield* manager.commit(seed))
        const slow = yield* manager.load(token)
        const logout = yield* manager.load(token)
        yield* logout.destroy
        expect((yield* manager.commit(logout))._tag).toBe("Destroyed")
        yield* slow.put("n", 2)
        expect((yield* manager.commit(slow))._tag).toBe("Gone")
        const after = yield* manager.load(token)
        expect(yield* after.keys).toEqual([])
        expect(yield* after.token).toEqual(Option.none())
      })
    )

    test(
      "a late commit does not bring back a session renewed away",
      Effect.gen(function*() {
        const manager = yield* managerOn(yield* SessionStore)
        const seed = yield* manager.load(undefined)
        yield* seed.put("n", 1)
        const token = yield* tokenOf(yield* manager.commit(seed))
        const slow = yield* manager.load(token)
        const login = yield* manager.load(token)
        yield* login.renewToken
        const renewed = yield* tokenOf(yield* manager.commit(login))
        expect(Redacted.value(renewed)).not.toBe(Redacted.value(token))
        yield* slow.put("n", 2)
        expect((yield* manager.commit(slow))._tag).toBe("Gone")
        expect(yield* (yield* manager.load(token)).keys).toEqual([])
        expect(yield* (yield* manager.load(renewed)).getInt("n")).toBe(1)
      })
    )

    if (options.enumerable) {
      test(
        "manager iterate visits live sessions and commits changes",
        Effect.gen(function*() {
          const manager = yield* managerOn(yield* SessionStore)
          const tokens: Array<Redacted.Redacted<string>> = []
          const markers = Array.from({ length: 3 }, () => `iterate-${newKey()}`)
          for (const marker of markers) {
            const session = yield* manager.load(undefined)
            yield* session.put("marker", marker)
            tokens.push(yield* tokenOf(yield* manager.commit(session)))
          }
          // The backend may hold other cases' sessions: count this case's markers only.
          const seen = new Set<string>()
          yield* manager.iterate((session) =>
            Effect.gen(function*() {
              const marker = yield* session.getString("marker")
              if (!markers.includes(marker)) return
              seen.add(marker)
              yield* session.put("visited", true)
            })
          )
          expect([...seen].sort()).toEqual([...markers].sort())
          for (const token of tokens) expect(yield* (yield* manager.load(token)).getBoolean("visited")).toBe(true)
        })
      )
    }
  })
}
