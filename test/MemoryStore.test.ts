import { describe, expect, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as TestClock from "effect/TestClock"
import * as SessionManager from "../src/SessionManager.js"
import { SessionStore } from "../src/SessionStore.js"
import * as MemoryStore from "../src/SessionStore/Memory.js"
import { START, storeConformance } from "../src/testing/StoreConformance.js"

storeConformance({
  name: "memory",
  layer: MemoryStore.layer({ cleanupInterval: "1 minute" }),
  enumerable: true,
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
      expect(yield* store.find("k")).toEqual(Option.some("v"))
      expect(yield* memory.size).toBe(1)
    }))
})
