import * as Reactivity from "@effect/experimental/Reactivity"
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import * as SqlClient from "@effect/sql/SqlClient"
import { afterAll, describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import * as Tracer from "effect/Tracer"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { SessionStore } from "../src/SessionStore.js"
import * as SqlStore from "../src/SessionStore/Sql.js"
import * as SqliteStore from "../src/SessionStore/Sqlite.js"
import { START, storeConformance } from "./conformance.js"

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "effect-session-sqlite-"))
const filename = path.join(dir, "sessions.db")
const TABLE = "sessions_conformance"

// A second connection to the same file: reads the table past the store's expiry checks.
const admin = ManagedRuntime.make(SqliteClient.layer({ filename }))
afterAll(async () => {
  await admin.dispose()
  fs.rmSync(dir, { recursive: true, force: true })
})
const adminSql = <A, E>(f: (sql: SqlClient.SqlClient) => Effect.Effect<A, E>) =>
  Effect.promise(() => admin.runPromise(Effect.flatMap(SqlClient.SqlClient, f)))

const countRows = (table: string, keys: ReadonlyArray<string>) =>
  adminSql((sql) => sql<{ n: number }>`SELECT COUNT(*) AS n FROM ${sql(table)} WHERE ${sql.in("token", keys)}`).pipe(
    Effect.map((rows) => Number(rows[0].n))
  )

storeConformance({
  name: "sqlite (file, ready layer)",
  layer: SqliteStore.layer({ client: { filename }, table: TABLE, cleanupInterval: "1 minute" }),
  enumerable: true,
  sweep: { interval: "1 minute", physicalCount: (keys) => countRows(TABLE, keys) }
})

// `:memory:` through the generic store over an application's client: the test keeps the client
// next to the store, since a second connection would see another (empty) database.
interface WithClient extends SqlStore.SqlStore {
  readonly sql: SqlClient.SqlClient
}
const memoryLayer = (options: SqlStore.Options) =>
  Layer.scoped(
    SessionStore,
    Effect.gen(function*() {
      const store = yield* SqlStore.make(options)
      const sql = yield* SqlClient.SqlClient
      const withClient: WithClient = { ...store, sql }
      return withClient
    })
  ).pipe(Layer.provide(SqliteClient.layer({ filename: ":memory:" })))
const memoryClient = Effect.map(SessionStore, (store) => (store as WithClient).sql)

storeConformance({
  name: "sqlite (:memory:, SqlStore over SqliteClient)",
  layer: memoryLayer({ cleanupInterval: "1 minute" }),
  enumerable: true,
  sweep: {
    interval: "1 minute",
    physicalCount: (keys) =>
      Effect.flatMap(memoryClient, (sql) =>
        Effect.map(
          sql<{ n: number }>`SELECT COUNT(*) AS n FROM sessions WHERE ${sql.in("token", keys)}`,
          (rows) => Number(rows[0].n)
        ))
  }
})

storeConformance({
  name: "sqlite (:memory:, ready layer)",
  layer: SqliteStore.layer({ client: { filename: ":memory:" } }),
  enumerable: true
})

const key = (label: string) => `${label}_${Math.random().toString(36).slice(2)}`.padEnd(43, "x").slice(0, 43)

// Records the text of every SQL statement the effect runs (from @effect/sql's spans).
const recordingStatements = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const base = yield* Effect.tracer
    const statements: Array<string> = []
    const tracer = Tracer.make({
      span: (...args) => {
        const span = base.span(...args)
        const attribute = span.attribute.bind(span)
        span.attribute = (name, value) => {
          if (name === "db.query.text") statements.push(String(value))
          attribute(name, value)
        }
        return span
      },
      context: (f, fiber) => base.context(f, fiber)
    })
    const result = yield* Effect.withTracer(effect, tracer)
    return { result, statements }
  })

describe("SqlStore on SQLite", () => {
  const store = (options: SqliteStore.Options["client"] | undefined, storeOptions: SqlStore.Options = {}) =>
    Effect.flatMap(
      Layer.build(SqliteStore.layer({ client: options ?? { filename }, cleanupInterval: 0, ...storeOptions })),
      (context) => Effect.succeed(Context.get(context, SessionStore) as SqlStore.SqlStore)
    )

  it.scoped("the table option names the table the store creates and uses", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(START)
      const named = yield* store(undefined, { table: "custom_named_sessions" })
      const k = key("named")
      yield* named.commit(k, "here", START + 60_000, "create")
      expect(yield* countRows("custom_named_sessions", [k])).toBe(1)
      expect(yield* named.find(k)).toEqual(Option.some("here"))
    }))

  it.scoped("a schema-qualified table name works (main.sessions_qualified)", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(START)
      const qualified = yield* store(undefined, { table: "main.sessions_qualified" })
      const k = key("qualified")
      yield* qualified.commit(k, "q", START + 60_000, "create")
      expect(yield* countRows("sessions_qualified", [k])).toBe(1)
    }))

  it.scoped("a table name that is not an identifier is refused", () =>
    Effect.gen(function*() {
      for (const table of ["sessions; DROP TABLE x", "a.b.c", "1abc", "", "x".repeat(53), "sess\"ions"]) {
        const error = yield* Effect.flip(store(undefined, { table }))
        expect(error._tag).toBe("SessionConfigError")
      }
    }))

  it.scoped("createTable: false uses a table the application created, and creates none", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(START)
      yield* adminSql((sql) =>
        sql`CREATE TABLE IF NOT EXISTS app_owned_sessions (
          token TEXT NOT NULL PRIMARY KEY,
          data TEXT NOT NULL,
          expiry INTEGER NOT NULL
        )`
      )
      const owned = yield* store(undefined, { table: "app_owned_sessions", createTable: false })
      const k = key("owned")
      expect(yield* owned.commit(k, "mine", START + 60_000, "create")).toBe("written")
      expect(yield* owned.find(k)).toEqual(Option.some("mine"))
      expect(yield* countRows("app_owned_sessions", [k])).toBe(1)

      const missing = yield* store(undefined, { table: "never_created_sessions", createTable: false })
      const error = yield* Effect.flip(missing.find(key("missing")))
      expect(error._tag).toBe("SessionStoreError")
      expect(error.operation).toBe("find")
      const tables = yield* adminSql((sql) =>
        sql`SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'never_created_sessions'`
      )
      expect(tables).toEqual([])
    }))

  it.scoped("an update that writes identical data and expiry is written, not gone", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(START)
      const s = yield* store(undefined)
      const k = key("same")
      yield* s.commit(k, "same", START + 60_000, "create")
      expect(yield* s.commit(k, "same", START + 60_000, "update")).toBe("written")
      expect(yield* s.find(k)).toEqual(Option.some("same"))
    }))

  it.scoped("the sweep deletes 2,500 expired rows in batches of 1,000 and keeps live rows", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(START)
      const table = "sweep_batches"
      yield* adminSql((sql) => sql`DROP TABLE IF EXISTS ${sql(table)}`)
      const s = yield* store(undefined, { table, sweepBatchSize: 1000 })
      const expired = Array.from({ length: 2500 }, (_, i) => ({ token: `expired${i}`, data: "d", expiry: START - 1 }))
      const live = Array.from({ length: 10 }, (_, i) => ({ token: `live${i}`, data: "l", expiry: START + 60_000 }))
      yield* adminSql((sql) => sql`INSERT INTO ${sql(table)} ${sql.insert([...expired, ...live])}`)
      const { result, statements } = yield* recordingStatements(s.sweep)
      expect(result).toBe(2500)
      expect(statements.filter((statement) => statement.trimStart().startsWith("DELETE"))).toHaveLength(3)
      expect(yield* adminSql((sql) => sql<{ n: number }>`SELECT COUNT(*) AS n FROM ${sql(table)}`)).toEqual([{ n: 10 }])
      expect(yield* s.sweep).toBe(0)
    }))

  it.scoped("keys that are not base64url are never found and never written", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(START)
      const s = yield* store(undefined)
      expect(yield* s.find("not a key")).toEqual(Option.none())
      expect(yield* s.commit("é", "x", START + 60_000, "update")).toBe("gone")
      const error = yield* Effect.flip(s.commit("x".repeat(129), "x", START + 60_000, "create"))
      expect(error.operation).toBe("commit")
      yield* s.delete("not a key")
    }))

  it.scoped("all pages through the table by token, one bounded query per page, live rows only", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(START)
      const s = yield* store({ filename: ":memory:" }, { pageSize: 7 })
      const keys = Array.from({ length: 30 }, (_, i) => key(`page${String(i).padStart(2, "0")}`))
      for (const k of keys) yield* s.commit(k, `v:${k}`, START + 60_000, "create")
      yield* s.commit(key("expired"), "expired", START - 1, "create")
      const { result, statements } = yield* recordingStatements(Stream.runCollect(s.all!))
      const all = Chunk.toReadonlyArray(result)
      expect(all.map((entry) => entry.key)).toEqual([...keys].sort())
      expect(all.every((entry) => entry.data === `v:${entry.key}` && entry.expiresAt === START + 60_000)).toBe(true)
      // 30 live rows in pages of 7: four full pages and a short one that ends the stream.
      expect(statements.filter((statement) => statement.trimStart().startsWith("SELECT"))).toHaveLength(5)
    }))

  it.scoped("a busy SQLite file fails with a Timeout store error", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(START)
      const s = yield* store(undefined)
      const k = key("busy")
      yield* s.commit(k, "x", START + 60_000, "create")
      // Another connection holds the write lock past better-sqlite3's busy timeout.
      const locker = yield* SqliteClient.make({ filename }).pipe(Effect.provide(Reactivity.layer))
      yield* locker`BEGIN IMMEDIATE`
      yield* Effect.addFinalizer(() => Effect.ignore(locker`ROLLBACK`))
      const error = yield* Effect.flip(s.commit(k, "y", START + 60_000, "update"))
      expect(error.reason).toBe("Timeout")
      yield* locker`ROLLBACK`
      expect(yield* s.commit(k, "y", START + 60_000, "update")).toBe("written")
    }), 30_000)

  it.scoped("a database file that cannot be opened fails the layer with an open error", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(store({ filename: path.join(dir, "missing", "dir", "x.db") }))
      expect(error._tag).toBe("SessionStoreError")
      if (error._tag === "SessionStoreError") {
        expect(error.operation).toBe("open")
        expect(error.reason).toBe("Unavailable")
      }
    }))
})
