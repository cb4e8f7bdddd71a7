import { describe, expect, it } from "@effect/vitest"
import * as Config from "effect/Config"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as TestClock from "effect/TestClock"
import * as Lmdb from "lmdb"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { SessionStore, SessionStoreError } from "../src/SessionStore.js"
import * as LmdbStore from "../src/SessionStore/Lmdb.js"
import { START, storeConformance } from "../src/testing/StoreConformance.js"

/** A fresh directory under the OS temp dir, removed when the scope closes. */
const tempDir = Effect.acquireRelease(
  Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "effect-session-lmdb-"))),
  (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
)

/**
 * A second, read-only LMDB handle on the store's file, to read it past every expiry check. Read-only,
 * so that opening its databases takes no write lock: a write lock taken on the main thread while
 * the store's sweep holds the lock (waiting for the main thread to run its transaction) deadlocks.
 */
const openReadOnly = (dir: string) => Effect.sync(() => Lmdb.open({ path: dir, readOnly: true }))

/** How many of `keys` the database file holds. */
const physicalCount = (dir: string, keys: ReadonlyArray<string>) =>
  Effect.acquireUseRelease(
    openReadOnly(dir),
    (root) =>
      Effect.sync(() => {
        const entries = root.openDB({ name: "effect-session", encoding: "msgpack" })
        return keys.filter((key) => entries.doesExist(key)).length
      }),
    (root) => Effect.promise(() => root.close())
  )

/** How many owner records and `until` index keys the database file holds. */
const ownerRecordCount = (dir: string) =>
  Effect.acquireUseRelease(
    openReadOnly(dir),
    (root) =>
      Effect.sync(() =>
        ["effect-session:owners", "effect-session:owners:until"].reduce(
          (count, name) => count + root.openDB({ name, keyEncoding: "binary" }).getKeysCount(),
          0
        )
      ),
    (root) => Effect.promise(() => root.close())
  )

/** A store on a fresh directory. */
const onFreshDirectory = (options: Omit<LmdbStore.Options, "path">) =>
  Layer.unwrapScoped(Effect.map(tempDir, (dir) => LmdbStore.layer({ path: dir, ...options })))

storeConformance({
  name: "lmdb",
  layer: onFreshDirectory({ cleanupInterval: "1 minute" }),
  enumerable: true,
  owners: true,
  paging: { layer: (pageSize) => onFreshDirectory({ cleanupInterval: 0, pageSize }) },
  durable: { storage: Effect.map(tempDir, (dir) => LmdbStore.layer({ path: dir, cleanupInterval: 0 })) },
  sweep: {
    interval: "1 minute",
    physicalCount: (keys) => Effect.flatMap(LmdbStore.LmdbStore, (store) => physicalCount(store.path, keys))
  }
})

describe("LmdbStore", () => {
  it.scoped("two handles on one database (as two processes would have): a logout on one is final for the other", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(START)
      const dir = yield* tempDir
      const first = yield* LmdbStore.make({ path: dir, cleanupInterval: 0 })
      const second = yield* LmdbStore.make({ path: dir, cleanupInterval: 0 })
      yield* first.commit("k", "v1", START + 60_000, "create")
      expect(yield* second.find("k")).toEqual(Option.some({ data: "v1", expiresAt: START + 60_000 }))
      expect(yield* second.commit("k", "v2", START + 60_000, "update")).toBe("written")
      expect(yield* first.find("k")).toEqual(Option.some({ data: "v2", expiresAt: START + 60_000 }))
      yield* first.delete("k")
      expect(yield* second.commit("k", "stale", START + 60_000, "update")).toBe("gone")
      expect(yield* first.find("k")).toEqual(Option.none())
    }))

  it.scoped("two handles on one database: one take gets the entry, and a touch on the other then finds it gone", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(START)
      const dir = yield* tempDir
      const first = yield* LmdbStore.make({ path: dir, cleanupInterval: 0 })
      const second = yield* LmdbStore.make({ path: dir, cleanupInterval: 0 })
      yield* first.commit("k", "v", START + 60_000, "create")
      expect(yield* second.touch("k", START + 120_000)).toBe("written")
      const takes = yield* Effect.all(
        Array.from({ length: 10 }, (_, i) => (i % 2 === 0 ? first : second).take("k")),
        { concurrency: "unbounded" }
      )
      expect(takes.filter(Option.isSome)).toEqual([Option.some({ data: "v", expiresAt: START + 120_000 })])
      expect(yield* second.touch("k", START + 180_000)).toBe("gone")
      expect(yield* physicalCount(dir, ["k"])).toBe(0)
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
      expect(yield* store.find("dead-0")).toEqual(Option.some({ data: "renewed", expiresAt: START + 60_000 }))
      expect(yield* store.sweep).toBe(0)
    }))

  it.scoped("the owner index survives a reopen, and the sweep drops its records past their until", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(START)
      const dir = yield* tempDir
      yield* Effect.scoped(Effect.gen(function*() {
        const owners = (yield* LmdbStore.make({ path: dir, cleanupInterval: 0 })).owners
        yield* owners.link("ada", "laptop", "k1", START + 60_000)
        yield* owners.link("ada", "phone", "k2", START + 1_000)
        expect(yield* owners.revoke("ada", ["phone"])).toEqual(["k2"])
      }))
      const store = yield* LmdbStore.make({ path: dir, cleanupInterval: 0 })
      expect(yield* store.owners.list("ada")).toEqual([{ handle: "laptop", key: "k1" }])
      expect(yield* store.owners.link("ada", "phone", "k3", START + 1_000)).toBe("revoked")
      expect(yield* ownerRecordCount(dir)).toBe(4)
      yield* TestClock.adjust("1 minute")
      yield* store.sweep
      expect(yield* ownerRecordCount(dir)).toBe(0)
      expect(yield* store.size).toBe(0)
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
      expect(openError).toMatchObject({ operation: "open" })
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
      expect(yield* store.find("k")).toEqual(Option.some({ data: "v", expiresAt: START + 60_000 }))
      expect(fs.readdirSync(dir)).toContain("data.mdb")
    }))
})
