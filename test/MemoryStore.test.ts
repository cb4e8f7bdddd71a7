import { describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Runtime from "effect/Runtime"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import * as SessionManager from "../src/SessionManager.js"
import * as SessionMetrics from "../src/SessionMetrics.js"
import { SessionStore, SessionStoreError } from "../src/SessionStore.js"
import * as MemoryStore from "../src/SessionStore/Memory.js"
import { START, storeConformance } from "../src/testing/StoreConformance.js"

storeConformance({
  name: "memory",
  layer: MemoryStore.layer({ cleanupInterval: "1 minute" }),
  enumerable: true,
  owners: true,
  // Each case has a store of its own, so every entry it holds is the case's.
  sweep: { interval: "1 minute", physicalCount: () => Effect.flatMap(MemoryStore.MemoryStore, (store) => store.size) }
})

describe("MemoryStore", () => {
  it.scoped("cleanupInterval 0 runs no sweep: expired entries stay until read or swept by hand", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(START)
      const store = yield* MemoryStore.make({ cleanupInterval: 0 })
      yield* store.commit("k", "v", START + 1000, "create")
      yield* TestClock.adjust("1 hour")
      expect(yield* store.size).toBe(1)
      expect(yield* store.find("k")).toEqual(Option.none())
      expect(yield* store.sweep).toBe(1)
      expect(yield* store.size).toBe(0)
    }))

  it.scoped("the sweep fiber ends with the layer's scope", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(START)
      const store = yield* Effect.scoped(
        Effect.gen(function*() {
          const store = yield* MemoryStore.make({ cleanupInterval: "1 minute" })
          yield* store.commit("k", "v", START + 1000, "create")
          return store
        })
      )
      // The scope is closed: advancing past many intervals sweeps nothing.
      yield* TestClock.adjust("10 minutes")
      expect(yield* store.size).toBe(1)
    }))

  it.scoped("a large sweep hands the event loop back between batches", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(START)
      const store = yield* MemoryStore.make({ cleanupInterval: 0, sweepBatchSize: 1000 })
      for (let i = 0; i < 20_000; i++) yield* store.commit(`k${i}`, "v", START + 1, "create")
      yield* TestClock.adjust("1 second")
      // Count how often other macrotasks got to run while the sweep was in progress.
      let turns = 0
      let sweeping = true
      const tick = (): void => {
        if (!sweeping) return
        turns++
        setImmediate(tick)
      }
      setImmediate(tick)
      const deleted = yield* store.sweep
      sweeping = false
      expect(deleted).toBe(20_000)
      expect(turns).toBeGreaterThanOrEqual(10)
    }))

  it.scoped("a sweep after a flood keeps every live session as it is, with writes between its steps", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(START)
      const store = yield* MemoryStore.make({ cleanupInterval: 0, sweepBatchSize: 50 })
      // Keys are spread over the store by their first characters. Where the flood's keys land,
      // most entries expire (a shard compacted at once); the zz keys' few shards keep most of
      // theirs (their expired entries removed one by one).
      for (let i = 0; i < 6000; i++) yield* store.commit(`${i}flood`, `f${i}`, START + 1000, "create")
      for (let i = 0; i < 600; i++) yield* store.commit(`${i}live`, `l${i}`, START + 60_000 + i, "create")
      for (let i = 0; i < 300; i++) yield* store.commit(`zz${i}`, `z${i}`, START + 60_000, "create")
      for (let i = 0; i < 20; i++) yield* store.commit(`zz${i}-gone`, "x", START + 1000, "create")
      yield* TestClock.adjust("1 second")
      // Between the sweep's steps (each a turn of the event loop), requests go on.
      const run = Runtime.runSync(yield* Effect.runtime<never>())
      let turns = 0
      let sweeping = true
      const between = (): void => {
        if (!sweeping) return
        turns++
        if (turns === 3) {
          run(store.commit("late", "new", START + 60_000, "create"))
          run(store.commit("7live", "l7 updated", START + 90_000, "update"))
          run(store.commit("5999flood", "again", START + 60_000, "create"))
          run(store.delete("8live"))
          run(store.touch("zz1", START + 120_000))
        }
        setImmediate(between)
      }
      setImmediate(between)
      const deleted = yield* store.sweep
      sweeping = false
      expect(turns).toBeGreaterThan(3)
      expect(deleted).toBe(5999 + 20)
      expect(yield* store.size).toBe(600 + 300 + 1)
      for (let i = 0; i < 600; i++) {
        const expected = i === 7
          ? Option.some({ data: "l7 updated", expiresAt: START + 90_000 })
          : i === 8
          ? Option.none()
          : Option.some({ data: `l${i}`, expiresAt: START + 60_000 + i })
        expect(yield* store.find(`${i}live`)).toEqual(expected)
      }
      for (let i = 0; i < 300; i++) {
        expect(yield* store.find(`zz${i}`)).toEqual(
          Option.some({ data: `z${i}`, expiresAt: START + (i === 1 ? 120_000 : 60_000) })
        )
      }
      expect(yield* store.find("late")).toEqual(Option.some({ data: "new", expiresAt: START + 60_000 }))
      expect(yield* store.find("5999flood")).toEqual(Option.some({ data: "again", expiresAt: START + 60_000 }))
      expect(yield* store.find("0flood")).toEqual(Option.none())
      expect(yield* store.find("zz3-gone")).toEqual(Option.none())
      // The store goes on as before: new keys, and a later sweep of what expires next.
      for (let i = 0; i < 100; i++) yield* store.commit(`next${i}`, `n${i}`, START + 2000, "create")
      yield* TestClock.adjust("1 second")
      expect(yield* store.sweep).toBe(100)
      expect(yield* store.find("599live")).toEqual(Option.some({ data: "l599", expiresAt: START + 60_599 }))
      expect(yield* store.size).toBe(901)
    }))

  it.scoped("a sweep after most sessions were deleted, none expired, keeps the rest as they are", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(START)
      const store = yield* MemoryStore.make({ cleanupInterval: 0 })
      for (let i = 0; i < 4000; i++) yield* store.commit(`${i}k`, `d${i}`, START + 60_000 + i, "create")
      for (let i = 0; i < 4000; i++) if (i % 10 !== 0) yield* store.delete(`${i}k`)
      expect(yield* store.sweep).toBe(0)
      expect(yield* store.size).toBe(400)
      for (let i = 0; i < 4000; i++) {
        expect(yield* store.find(`${i}k`)).toEqual(
          i % 10 === 0 ? Option.some({ data: `d${i}`, expiresAt: START + 60_000 + i }) : Option.none()
        )
      }
      // New keys after it, and updates of the kept ones, land where they should.
      for (let i = 0; i < 200; i++) yield* store.commit(`${i}new`, `n${i}`, START + 60_000, "create")
      expect(yield* store.commit("10k", "d10 again", START + 90_000, "update")).toBe("written")
      expect(yield* store.find("10k")).toEqual(Option.some({ data: "d10 again", expiresAt: START + 90_000 }))
      expect(yield* store.find("199new")).toEqual(Option.some({ data: "n199", expiresAt: START + 60_000 }))
      expect(yield* store.size).toBe(600)
    }))

  it.scoped("all reads each session as it is when its turn comes, across a sweep that compacts", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(START)
      const store = yield* MemoryStore.make({ cleanupInterval: 0 })
      for (let i = 0; i < 20_000; i++) {
        yield* store.commit(`key${i}`, `data${i}`, i % 4 === 0 ? START + 60_000 : START + 1000, "create")
      }
      yield* TestClock.adjust("1 second")
      const pull = yield* Stream.toPull(store.all)
      // The stream reads in chunks: the first is read before the sweep, the rest after it.
      const first = yield* pull
      expect(Chunk.size(first)).toBeLessThan(5000)
      expect(yield* store.sweep).toBe(15_000)
      const rest = yield* Stream.runCollect(Stream.fromPull(Effect.succeed(pull)))
      const read = [...first, ...rest]
      expect(read).toHaveLength(5000)
      for (const { data, key } of read) expect(data).toBe(key.replace("key", "data"))
      expect(new Set(read.map(({ key }) => key)).size).toBe(5000)
    }))

  it.scoped("stored values are encoded: changing an object after put does not change what was committed", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(START)
      const store = yield* MemoryStore.make({ cleanupInterval: 0 })
      const manager = yield* Effect.provideService(SessionManager.make(), SessionStore, store)
      const profile = { name: "ada", roles: ["admin"] }
      const session = yield* manager.load(undefined)
      yield* session.put("profile", profile)
      const outcome = yield* manager.commit(session)
      if (outcome._tag !== "Written") return yield* Effect.dieMessage(`expected Written, got ${outcome._tag}`)
      // The handler keeps its object and changes it after the request committed.
      profile.name = "mallory"
      profile.roles.push("root")
      const again = yield* manager.load(outcome.token)
      expect(yield* again.get("profile")).toEqual(Option.some({ name: "ada", roles: ["admin"] }))
    }))

  it.scoped("the layer is a SessionStore that needs nothing, and provides the MemoryStore tag too", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(START)
      // `never` requirements: this line does not compile if the layer comes to need a service.
      const layer: Layer.Layer<SessionStore | MemoryStore.MemoryStore, unknown, never> = MemoryStore.layer()
      const context = yield* Layer.build(layer)
      const store = Context.get(context, SessionStore)
      const memory = Context.get(context, MemoryStore.MemoryStore)
      expect(memory).toBe(store)
      expect(yield* store.commit("k", "v", START + 60_000, "create")).toBe("written")
      expect(yield* store.find("k")).toEqual(Option.some({ data: "v", expiresAt: START + 60_000 }))
      expect(yield* memory.size).toBe(1)
    }))

  it.scoped("an entry handed out never changes: later writes, touches, takes and reused slots leave it as it was", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(START)
      const store = yield* MemoryStore.make({ cleanupInterval: 0 })
      yield* store.commit("k", "v", START + 60_000, "create")
      const found = Option.getOrThrow(yield* store.find("k"))
      yield* store.commit("k", "v2", START + 120_000, "update")
      yield* store.touch("k", START + 180_000)
      expect(found).toEqual({ data: "v", expiresAt: START + 60_000 })
      const taken = Option.getOrThrow(yield* store.take("k"))
      expect(taken).toEqual({ data: "v2", expiresAt: START + 180_000 })
      // The freed place is reused by the next keys, and the key itself is created again.
      yield* store.commit("other", "o", START + 1000, "create")
      yield* store.commit("k", "v3", START + 240_000, "create")
      yield* TestClock.adjust("1 second")
      expect(yield* store.sweep).toBe(1)
      expect(found).toEqual({ data: "v", expiresAt: START + 60_000 })
      expect(taken).toEqual({ data: "v2", expiresAt: START + 180_000 })
      expect(yield* store.find("k")).toEqual(Option.some({ data: "v3", expiresAt: START + 240_000 }))
    }))

  it.scoped("maxEntries must be a positive integer", () =>
    Effect.gen(function*() {
      for (const maxEntries of [0, -1, 1.5, Number.NaN]) {
        const error = yield* Effect.flip(MemoryStore.make({ maxEntries }))
        expect(error).toMatchObject({ _tag: "SessionConfigError", option: "maxEntries" })
      }
    }))

  it.scoped("a full store refuses new sessions with Unavailable; existing sessions keep working", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(START)
      const store = yield* MemoryStore.make({ cleanupInterval: 0, maxEntries: 3 })
      for (const key of ["a", "b", "c"]) yield* store.commit(key, key, START + 60_000, "create")
      const error = yield* Effect.flip(store.commit("d", "d", START + 60_000, "create"))
      expect(error).toBeInstanceOf(SessionStoreError)
      expect(error).toMatchObject({ reason: "Unavailable", operation: "commit", detail: "memory store full" })
      // Neither the key nor the payload is in the message.
      expect(error.message).toBe("Session store commit failed (Unavailable): memory store full")
      expect(yield* store.find("d")).toEqual(Option.none())
      expect(yield* store.size).toBe(3)
      // Nothing was evicted, and the sessions already held are read, updated, re-created, touched.
      expect(yield* store.find("a")).toEqual(Option.some({ data: "a", expiresAt: START + 60_000 }))
      expect(yield* store.commit("a", "a2", START + 60_000, "update")).toBe("written")
      expect(yield* store.commit("b", "b2", START + 60_000, "create")).toBe("written")
      expect(yield* store.touch("c", START + 120_000)).toBe("written")
      expect(yield* store.find("c")).toEqual(Option.some({ data: "c", expiresAt: START + 120_000 }))
      // A take or delete makes room (as a renewal does: take the old key, create the new one).
      expect(yield* store.take("a")).toEqual(Option.some({ data: "a2", expiresAt: START + 60_000 }))
      expect(yield* store.commit("d", "d", START + 60_000, "create")).toBe("written")
      expect((yield* Effect.flip(store.commit("e", "e", START + 60_000, "create"))).reason).toBe("Unavailable")
    }))

  it.scoped("a full store drops expired entries to make room for a new session, without a sweep fiber", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(START)
      const store = yield* MemoryStore.make({ cleanupInterval: 0, maxEntries: 3 })
      yield* store.commit("short", "s", START + 1000, "create")
      yield* store.commit("long1", "l", START + 60_000, "create")
      yield* store.commit("long2", "l", START + 60_000, "create")
      // Nothing has expired yet: no room, and nothing is dropped.
      expect((yield* Effect.flip(store.commit("new1", "n", START + 60_000, "create"))).reason).toBe("Unavailable")
      expect(yield* store.size).toBe(3)
      yield* TestClock.adjust("1 second")
      expect(yield* store.commit("new1", "n", START + 60_000, "create")).toBe("written")
      expect(yield* store.size).toBe(3)
      expect(yield* store.find("short")).toEqual(Option.none())
      expect(yield* store.find("long1")).toEqual(Option.some({ data: "l", expiresAt: START + 60_000 }))
      // Full of live sessions again: refused until they expire.
      expect((yield* Effect.flip(store.commit("new2", "n", START + 120_000, "create"))).reason).toBe("Unavailable")
      yield* TestClock.adjust("1 minute")
      expect(yield* store.commit("new2", "n", START + 120_000, "create")).toBe("written")
      expect(yield* store.size).toBe(1)
    }))

  it.scoped("every call feeds the store metrics, answered at once or after a sweep", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(START)
      const store = yield* MemoryStore.make({ cleanupInterval: 0, maxEntries: 1 })
      const memory = <Type, In, Out>(metric: Metric.Metric<Type, In, Out>, operation: string) =>
        metric.pipe(Metric.tagged("store", "memory"), Metric.tagged("operation", operation))
      const readings = Effect.all({
        finds: Effect.map(Metric.value(memory(SessionMetrics.storeDuration, "find")), (state) => state.count),
        commits: Effect.map(Metric.value(memory(SessionMetrics.storeDuration, "commit")), (state) => state.count),
        refused: Effect.map(
          Metric.value(memory(SessionMetrics.storeErrors, "commit").pipe(Metric.tagged("reason", "Unavailable"))),
          (state) => state.count
        )
      })
      const before = yield* readings
      expect(yield* store.commit("a", "a", START + 1000, "create")).toBe("written")
      expect(Option.isSome(yield* store.find("a"))).toBe(true)
      // Full of a live entry: the create is refused without a sweep.
      expect((yield* Effect.flip(store.commit("b", "b", START + 1000, "create"))).reason).toBe("Unavailable")
      // Full of an expired one: swept first, then written.
      yield* TestClock.adjust("1 second")
      expect(yield* store.commit("b", "b", START + 60_000, "create")).toBe("written")
      const after = yield* readings
      expect({
        finds: after.finds - before.finds,
        commits: after.commits - before.commits,
        refused: after.refused - before.refused
      }).toEqual({ finds: 1, commits: 3, refused: 1 })
    }))

  it.scoped("concurrent creates against a full store never exceed the cap", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(START)
      const store = yield* MemoryStore.make({ cleanupInterval: 0, maxEntries: 10, sweepBatchSize: 2 })
      for (let i = 0; i < 4; i++) yield* store.commit(`expired${i}`, "x", START + 1000, "create")
      for (let i = 0; i < 6; i++) yield* store.commit(`live${i}`, "x", START + 60_000, "create")
      yield* TestClock.adjust("1 second")
      const results = yield* Effect.all(
        Array.from({ length: 8 }, (_, i) => Effect.either(store.commit(`new${i}`, "n", START + 60_000, "create"))),
        { concurrency: "unbounded" }
      )
      expect(results.filter((result) => result._tag === "Right")).toHaveLength(4)
      expect(results.filter((result) => result._tag === "Left")).toHaveLength(4)
      expect(yield* store.size).toBe(10)
      for (let i = 0; i < 6; i++) expect(Option.isSome(yield* store.find(`live${i}`))).toBe(true)
    }))
})
