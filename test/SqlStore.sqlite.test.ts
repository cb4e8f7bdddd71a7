import * as Reactivity from "@effect/experimental/Reactivity"
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import * as SqlClient from "@effect/sql/SqlClient"
import { afterAll, describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as TestClock from "effect/TestClock"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as SqlStore from "../src/SessionStore/Sql.js"
import * as SqliteStore from "../src/SessionStore/Sqlite.js"
import { START, storeConformance } from "../src/testing/StoreConformance.js"
import { key, sqlStoreSuite } from "./sqlSuite.js"

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "effect-session-sqlite-"))
const filename = path.join(dir, "sessions.db")
// Registered first, so it runs last: after the suite has closed its connection to the file.
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))

const layer = (options: SqlStore.Options) => SqliteStore.layer({ client: { filename }, ...options })

const { store } = sqlStoreSuite({
  name: "SqlStore on SQLite",
  conformanceName: "sqlite (file, ready layer)",
  layer,
  // A second connection to the same file.
  admin: SqliteClient.layer({ filename }),
  schema: "main",
  indexesOn: (sql, table, column) =>
    Effect.map(
      sql<{ name: string }>`SELECT name FROM sqlite_master
        WHERE type = 'index' AND tbl_name = ${table} AND sql LIKE ${`%(${column})%`}`,
      (rows) => rows.map((row) => row.name)
    ),
  tableExists: (sql, table) =>
    Effect.map(
      sql`SELECT name FROM sqlite_master WHERE type = 'table' AND name = ${table}`,
      (rows) => rows.length > 0
    ),
  createApplicationTable: (sql, table) =>
    Effect.all([
      sql`CREATE TABLE ${sql(table)} (
        token TEXT NOT NULL PRIMARY KEY,
        data TEXT NOT NULL,
        expiry INTEGER NOT NULL
      )`,
      sql`CREATE INDEX ${sql(`${table}_expiry_idx`)} ON ${sql(table)} (expiry)`,
      sql`CREATE TABLE ${sql(`${table}_owners`)} (
        owner TEXT NOT NULL,
        handle TEXT NOT NULL,
        token TEXT,
        until INTEGER NOT NULL,
        PRIMARY KEY (owner, handle)
      )`,
      sql`CREATE INDEX ${sql(`${table}_owners_idx`)} ON ${sql(`${table}_owners`)} (until)`
    ]),
  unreachable: {
    why: "its directory does not exist",
    layer: SqliteStore.layer({ client: { filename: path.join(dir, "missing", "dir", "x.db") } })
  },
  // SQLite locks the whole file, and its busy wait blocks: see the busy-file case below.
  rowLocks: false
})

// `:memory:` through the generic store over an application's client: the layer keeps the client
// in its output, since a second connection would see another (empty) database.
const memoryLayer = (options: SqlStore.Options) =>
  SqlStore.layer(options).pipe(Layer.provideMerge(SqliteClient.layer({ filename: ":memory:" })))

storeConformance({
  name: "sqlite (:memory:, SqlStore over SqliteClient)",
  layer: memoryLayer({ cleanupInterval: "1 minute" }),
  enumerable: true,
  owners: true,
  paging: { layer: (pageSize) => memoryLayer({ cleanupInterval: 0, pageSize }) },
  sweep: {
    interval: "1 minute",
    physicalCount: (keys) =>
      Effect.flatMap(SqlClient.SqlClient, (sql) =>
        Effect.map(
          sql<{ n: number }>`SELECT COUNT(*) AS n FROM sessions WHERE ${sql.in("token", keys)}`,
          (rows) => Number(rows[0].n)
        ))
  }
})

storeConformance({
  name: "sqlite (:memory:, ready layer)",
  layer: SqliteStore.layer({ client: { filename: ":memory:" } }),
  enumerable: true,
  owners: true
})

describe("SqlStore on SQLite", () => {
  it.scoped("a busy SQLite file fails with a Timeout store error", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(START)
      const s = yield* store()
      const k = key("busy")
      yield* s.commit(k, "x", START + 60_000, "create")
      // Another connection holds the write lock past better-sqlite3's busy timeout.
      const locker = yield* SqliteClient.make({ filename }).pipe(Effect.provide(Reactivity.layer))
      yield* locker`BEGIN IMMEDIATE`
      yield* Effect.addFinalizer(() => Effect.ignore(locker`ROLLBACK`))
      const error = yield* Effect.flip(s.commit(k, "y", START + 60_000, "update"))
      expect(error.reason).toBe("Timeout")
      expect(error.operation).toBe("commit")
      yield* locker`ROLLBACK`
      expect(yield* s.commit(k, "y", START + 60_000, "update")).toBe("written")
    }), 30_000)
})
