import { describe, expect, it } from "@effect/vitest"
import { ClassicLevel } from "classic-level"
import * as Config from "effect/Config"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as TestClock from "effect/TestClock"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { SessionStore, SessionStoreError } from "../src/SessionStore.js"
import * as LevelDbStore from "../src/SessionStore/LevelDb.js"
import { START, storeConformance } from "../src/testing/StoreConformance.js"

/** A fresh directory under the OS temp dir, removed when the scope closes. */
const tempDir = Effect.acquireRelease(
  Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "effect-session-leveldb-"))),
  (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
)

/** Every key/value pair in a closed database directory, read with a raw `classic-level` handle. */
const rawEntries = (dir: string) =>
  Effect.acquireUseRelease(
    Effect.promise(async () => {
      const db = new ClassicLevel<string, string>(dir)
      await db.open()
      return db
    }),
    (db) => Effect.promise(() => db.iterator().all()),
    (db) => Effect.promise(() => db.close())
  )

/** A store on a fresh directory: LevelDB lets one handle at a time open a directory. */
const onFreshDirectory = (options: Omit<LevelDbStore.Options, "path">) =>
  Layer.unwrapScoped(Effect.map(tempDir, (dir) => LevelDbStore.layer({ path: dir, ...options })))

storeConformance({
  name: "leveldb",
  layer: onFreshDirectory({ cleanupInterval: "1 minute" }),
  enumerable: true,
  owners: true,
  paging: { layer: (pageSize) => onFreshDirectory({ cleanupInterval: 0, pageSize }) },
  durable: { storage: Effect.map(tempDir, (dir) => LevelDbStore.layer({ path: dir, cleanupInterval: 0 })) },
  sweep: {
    interval: "1 minute",
    // The case's database holds only the case's keys; `size` counts the raw entries, expired ones included.
    physicalCount: () => Effect.flatMap(LevelDbStore.LevelDbStore, (store) => store.size)
  }
})

describe("LevelDbStore", () => {
  it.scoped("the sweep deletes in bounded batches and only what has expired; no stale index key is left", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(START)
      const dir = yield* tempDir
      yield* Effect.scoped(Effect.gen(function*() {
        const store = yield* LevelDbStore.make({ path: dir, cleanupInterval: 0, sweepBatchSize: 3 })
        for (let i = 0; i < 10; i++) yield* store.commit(`dead-${i}`, "x", START + 1000 + i, "create")
        for (let i = 0; i < 4; i++) yield* store.commit(`alive-${i}`, "y", START + 60_000, "create")
        // A dead entry renewed before it expired must survive.
        yield* store.commit("dead-0", "renewed", START + 60_000, "update")
        // A touch moves the index key with the expiry: the old one must not be left behind.
        expect(yield* store.touch("alive-1", START + 120_000)).toBe("written")
        yield* TestClock.adjust("30 seconds")
        expect(yield* store.sweep).toBe(9)
        expect(yield* store.size).toBe(5)
        expect(yield* store.find("dead-0")).toEqual(Option.some({ data: "renewed", expiresAt: START + 60_000 }))
        expect(yield* store.sweep).toBe(0)
      }))
      const raw = yield* rawEntries(dir)
      expect(raw.filter(([key]) => key.startsWith("!sessions!")).length).toBe(5)
      expect(raw.filter(([key]) => key.startsWith("!expiry!")).length).toBe(5)
    }))

  it.scoped("the owner index survives a reopen, and the sweep drops its records past their until", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(START)
      const dir = yield* tempDir
      yield* Effect.scoped(Effect.gen(function*() {
        const owners = (yield* LevelDbStore.make({ path: dir, cleanupInterval: 0 })).owners
        yield* owners.link("ada", "laptop", "k1", START + 60_000)
        yield* owners.link("ada", "phone", "k2", START + 1_000)
        expect(yield* owners.revoke("ada", ["phone"])).toEqual(["k2"])
      }))
      const owned = (raw: ReadonlyArray<[string, string]>) => raw.filter(([key]) => key.startsWith("!owners"))
      // Two records and their two `until` index keys.
      expect(owned(yield* rawEntries(dir)).length).toBe(4)
      yield* Effect.scoped(Effect.gen(function*() {
        const store = yield* LevelDbStore.make({ path: dir, cleanupInterval: 0 })
        expect(yield* store.owners.list("ada")).toEqual([{ handle: "laptop", key: "k1" }])
        expect(yield* store.owners.link("ada", "phone", "k3", START + 1_000)).toBe("revoked")
        yield* TestClock.adjust("1 minute")
        yield* store.sweep
        expect(yield* store.size).toBe(0)
      }))
      expect(owned(yield* rawEntries(dir))).toEqual([])
    }))

  it.scoped("cleanupInterval 0 runs no sweep", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(START)
      const dir = yield* tempDir
      const store = yield* LevelDbStore.make({ path: dir, cleanupInterval: 0 })
      yield* store.commit("k", "v", START + 1000, "create")
      yield* TestClock.adjust("1 hour")
      expect(yield* store.size).toBe(1)
      expect(yield* store.find("k")).toEqual(Option.none())
    }))

  it.scoped("the database is closed with the scope; a second open of a held database is a typed error", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(START)
      const dir = yield* tempDir
      const held = yield* Effect.scoped(Effect.gen(function*() {
        const store = yield* LevelDbStore.make({ path: dir, cleanupInterval: 0 })
        const second = yield* Effect.flip(Effect.scoped(LevelDbStore.make({ path: dir })))
        expect(second).toBeInstanceOf(SessionStoreError)
        expect(second).toMatchObject({ operation: "open", reason: "Unavailable" })
        return store
      }))
      const error = yield* Effect.flip(held.find("k"))
      expect(error.reason).toBe("Unavailable")
      expect(error.operation).toBe("find")
      // Released: the directory can be opened again.
      const reopened = yield* LevelDbStore.make({ path: dir, cleanupInterval: 0 })
      expect(yield* reopened.find("k")).toEqual(Option.none())
    }))
  it.scoped("layerConfig reads the path and the sweep interval from Config", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(START)
      const dir = yield* tempDir
      const config = ConfigProvider.fromMap(new Map([["SESSION_DB_PATH", dir], ["SESSION_SWEEP", "0 millis"]]))
      const context = yield* Layer.build(
        LevelDbStore.layerConfig({
          path: Config.string("SESSION_DB_PATH"),
          cleanupInterval: Config.duration("SESSION_SWEEP")
        }).pipe(Layer.provide(Layer.setConfigProvider(config)))
      )
      const store = Context.get(context, SessionStore)
      yield* store.commit("k", "v", START + 60_000, "create")
      expect(yield* store.find("k")).toEqual(Option.some({ data: "v", expiresAt: START + 60_000 }))
      expect(fs.readdirSync(dir)).toContain("LOCK")
    }))
})
