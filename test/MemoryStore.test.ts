import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as TestClock from "effect/TestClock"
import { SessionStore } from "../src/SessionStore.js"
import * as MemoryStore from "../src/SessionStore/Memory.js"
import { eventually, START, storeConformance } from "./conformance.js"

const memory = Effect.map(SessionStore, (store) => store as MemoryStore.MemoryStore)

storeConformance({
  name: "memory",
  layer: MemoryStore.layer({ cleanupInterval: "1 minute" }),
  enumerable: true,
  sweep: { interval: "1 minute", physicalCount: () => Effect.flatMap(memory, (store) => store.size) }
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
      const store = yield* MemoryStore.make()
      yield* store.commit("k", "{\"a\":1}", START + 1000, "create")
      const found = yield* store.find("k")
      expect(found).toEqual(Option.some("{\"a\":1}"))
      expect(typeof Option.getOrThrow(found)).toBe("string")
    }))

  it.effect("the layer is a SessionStore that needs nothing", () =>
    Effect.gen(function*() {
      const store = yield* Effect.provide(SessionStore, Layer.fresh(MemoryStore.layer()))
      expect(store.all).toBeDefined()
      yield* eventually(Effect.succeed(true))
    }))
})
