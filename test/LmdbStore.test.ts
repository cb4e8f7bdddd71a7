import { describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Config from "effect/Config"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import * as Lmdb from "lmdb"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { SessionStore, SessionStoreError } from "../src/SessionStore.js"
import * as LmdbStore from "../src/SessionStore/Lmdb.js"
import { durability, START, storeConformance } from "./conformance.js"

/** A fresh directory under the OS temp dir, removed when the scope closes. */
const tempDir = Effect.acquireRelease(
  Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "effect-session-lmdb-"))),
  (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
)

/** How many of `keys` the database file holds, read with a second LMDB handle past every expiry check. */
const physicalCount = (dir: string, keys: ReadonlyArray<string>) =>
  Effect.acquireUseRelease(
    Effect.sync(() => Lmdb.open({ path: dir })),
    (root) =>
      Effect.sync(() => {
        const entries = root.openDB({ name: "effect-session", encoding: "msgpack" })
        return keys.filter((key) => entries.doesExist(key)).length
      }),
    (root) => Effect.promise(() => root.close())
  )

const lmdbStore = Effect.map(SessionStore, (store) => store as LmdbStore.LmdbStore)

storeConformance({
  name: "lmdb",
  layer: Layer.unwrapScoped(Effect.map(tempDir, (dir) => LmdbStore.layer({ path: dir, cleanupInterval: "1 minute" }))),
  enumerable: true,
  sweep: {
    interval: "1 minute",
    physicalCount: (keys) => Effect.flatMap(lmdbStore, (store) => physicalCount(store.path, keys))
  }
})

describe("LmdbStore", () => {
  it.scoped("durability: committed sessions are found after closing and reopening; expired ones are gone", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(START)
      const dir = yield* tempDir
      const token = yield* Effect.scoped(
        Effect.flatMap(LmdbStore.make({ path: dir, cleanupInterval: 0 }), durability.seed)
      )

      // The database is closed; time passes while the process is down.
      yield* TestClock.adjust("2 seconds")

      yield* Effect.scoped(Effect.gen(function*() {
        const store = yield* LmdbStore.make({ path: dir, cleanupInterval: 0 })
        yield* durability.verify(store, token)
        // Expired but not yet swept: still on disk, never returned; the sweep removes it for good.
        expect(yield* store.size).toBe(5)
        expect(yield* store.sweep).toBe(1)
      }))
      expect(yield* physicalCount(dir, [...durability.live, durability.expired])).toBe(3)
    }))

  it.scoped("two handles on one database (as two processes would have): a logout on one is final for the other", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(START)
      const dir = yield* tempDir
      const first = yield* LmdbStore.make({ path: dir, cleanupInterval: 0 })
      const second = yield* LmdbStore.make({ path: dir, cleanupInterval: 0 })
      yield* first.commit("k", "v1", START + 60_000, "create")
      expect(yield* second.find("k")).toEqual(Option.some("v1"))
      expect(yield* second.commit("k", "v2", START + 60_000, "update")).toBe("written")
      expect(yield* first.find("k")).toEqual(Option.some("v2"))
      yield* first.delete("k")
      expect(yield* second.commit("k", "stale", START + 60_000, "update")).toBe("gone")
      expect(yield* first.find("k")).toEqual(Option.none())
    }))

  it.scoped("concurrent updates racing a delete never re-create the entry", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(START)
      const dir = yield* tempDir
      const store = yield* LmdbStore.make({ path: dir, cleanupInterval: 0 })
      for (let round = 0; round < 20; round++) {
        const key = `race-${round}`
        yield* store.commit(key, "seed", START + 60_000, "create")
        const results = yield* Effect.all([
          ...Array.from({ length: 5 }, (_, i) => store.commit(key, `late-${i}`, START + 60_000, "update")),
          Effect.as(store.delete(key), "deleted" as const)
        ], { concurrency: "unbounded" })
        expect(results).toContain("deleted")
        // Whatever order they ran in, the delete is the last word.
        expect(yield* store.find(key)).toEqual(Option.none())
      }
    }))

  it.scoped("all pages through the database: every live entry exactly once, whatever the page size", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(START)
      const dir = yield* tempDir
      const store = yield* LmdbStore.make({ path: dir, cleanupInterval: 0, iterateBatchSize: 2 })
      const keys = Array.from({ length: 7 }, (_, i) => `key-${i}`)
      for (const key of keys) yield* store.commit(key, key, START + 60_000, "create")
      yield* store.commit("expired", "x", START + 10, "create")
      yield* TestClock.adjust("1 second")
      const all = Chunk.toReadonlyArray(yield* Stream.runCollect(store.all))
      expect(all.map((entry) => entry.key)).toEqual(keys)
      expect(all.every((entry) => entry.data === entry.key && entry.expiresAt === START + 60_000)).toBe(true)
    }))

  it.scoped("the sweep deletes in bounded batches and only what has expired", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(START)
      const dir = yield* tempDir
      const store = yield* LmdbStore.make({ path: dir, cleanupInterval: 0, sweepBatchSize: 3 })
      for (let i = 0; i < 10; i++) yield* store.commit(`dead-${i}`, "x", START + 1000 + i, "create")
      for (let i = 0; i < 4; i++) yield* store.commit(`alive-${i}`, "y", START + 60_000, "create")
      // A dead entry renewed before it expired must survive (its old index key is gone).
      yield* store.commit("dead-0", "renewed", START + 60_000, "update")
      yield* TestClock.adjust("30 seconds")
      expect(yield* store.sweep).toBe(9)
      expect(yield* store.size).toBe(5)
      expect(yield* store.find("dead-0")).toEqual(Option.some("renewed"))
      expect(yield* store.sweep).toBe(0)
    }))

  it.scoped("cleanupInterval 0 runs no sweep", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(START)
      const dir = yield* tempDir
      const store = yield* LmdbStore.make({ path: dir, cleanupInterval: 0 })
      yield* store.commit("k", "v", START + 1000, "create")
      yield* TestClock.adjust("1 hour")
      expect(yield* physicalCount(dir, ["k"])).toBe(1)
      expect(yield* store.find("k")).toEqual(Option.none())
    }))

  it.scoped("a closed store fails with a typed SessionStoreError, and so does an unusable path", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(START)
      const dir = yield* tempDir
      const store = yield* Effect.scoped(LmdbStore.make({ path: dir, cleanupInterval: 0 }))
      const error = yield* Effect.flip(store.find("k"))
      expect(error.reason).toBe("Unavailable")
      expect(error.operation).toBe("find")

      const file = path.join(dir, "not-a-directory")
      fs.writeFileSync(file, "")
      const openError = yield* Effect.flip(Effect.scoped(LmdbStore.make({ path: path.join(file, "db") })))
      expect(openError).toBeInstanceOf(SessionStoreError)
      expect(openError.operation).toBe("open")
    }))
  it.scoped("layerConfig reads the path and the sweep interval from Config", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(START)
      const dir = yield* tempDir
      const config = ConfigProvider.fromMap(new Map([["SESSION_DB_PATH", dir], ["SESSION_SWEEP", "0 millis"]]))
      const context = yield* Layer.build(
        LmdbStore.layerConfig({
          path: Config.string("SESSION_DB_PATH"),
          cleanupInterval: Config.duration("SESSION_SWEEP")
        }).pipe(Layer.provide(Layer.setConfigProvider(config)))
      )
      const store = Context.get(context, SessionStore)
      yield* store.commit("k", "v", START + 60_000, "create")
      expect(yield* store.find("k")).toEqual(Option.some("v"))
      expect(fs.readdirSync(dir)).toContain("data.mdb")
    }))
})
