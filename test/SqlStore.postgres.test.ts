import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as Cookies from "@effect/platform/Cookies"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServer from "@effect/platform/HttpServer"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as SqlClient from "@effect/sql/SqlClient"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Ref from "effect/Ref"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import * as Tracer from "effect/Tracer"
import { Session } from "../src/Session.js"
import * as SessionManager from "../src/SessionManager.js"
import * as SessionMiddleware from "../src/SessionMiddleware.js"
import { SessionStore } from "../src/SessionStore.js"
import * as PgStore from "../src/SessionStore/Pg.js"
import type * as SqlStore from "../src/SessionStore/Sql.js"
import { eventually, requireBackend, START, storeConformance } from "./conformance.js"
import { isReachable, postgres, service } from "./services.js"

const skip = requireBackend(
  "PostgreSQL",
  await isReachable(postgres.host, postgres.port),
  `start it with \`bash scripts/start-services.sh\` (expects ${postgres.host}:${postgres.port})`
)

const client: PgClient.PgClientConfig = {
  host: postgres.host,
  port: postgres.port,
  database: postgres.database,
  username: postgres.username
}
const TABLE = "sessions_conformance"
const OWN_TABLES = [
  TABLE,
  "custom_named_sessions",
  "app_owned_sessions",
  "never_created_sessions",
  "sweep_batches",
  "paging_sessions"
]

// A separate pool for the tests: reads and prepares tables past the store's expiry checks.
const admin = ManagedRuntime.make(PgClient.layer(client))
const adminSql = <A, E>(f: (sql: SqlClient.SqlClient) => Effect.Effect<A, E>) =>
  Effect.promise(() => admin.runPromise(Effect.flatMap(SqlClient.SqlClient, f)))

if (skip === undefined) {
  beforeAll(() =>
    admin.runPromise(
      Effect.flatMap(SqlClient.SqlClient, (sql) =>
        Effect.forEach(OWN_TABLES, (table) => sql`DROP TABLE IF EXISTS ${sql(table)}`, { discard: true }))
    )
  )
}
afterAll(() => admin.dispose())

const countRows = (table: string, keys: ReadonlyArray<string>) =>
  adminSql((sql) => sql<{ n: string }>`SELECT COUNT(*) AS n FROM ${sql(table)} WHERE ${sql.in("token", keys)}`).pipe(
    Effect.map((rows) => Number(rows[0].n))
  )

storeConformance({
  name: "postgres",
  layer: PgStore.layer({ client, table: TABLE, cleanupInterval: "1 minute" }),
  enumerable: true,
  sweep: { interval: "1 minute", physicalCount: (keys) => countRows(TABLE, keys) },
  skip
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

const store = (options: Partial<PgStore.Options> = {}) =>
  Effect.map(
    Layer.build(PgStore.layer({ client, table: TABLE, cleanupInterval: 0, ...options })),
    (context) => Context.get(context, SessionStore) as SqlStore.SqlStore
  )

describe.skipIf(skip !== undefined)("SqlStore on PostgreSQL", () => {
  it.scoped("the table option names the table the store creates and uses", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(START)
      const named = yield* store({ table: "custom_named_sessions" })
      const k = key("named")
      yield* named.commit(k, "here", START + 60_000, "create")
      expect(yield* countRows("custom_named_sessions", [k])).toBe(1)
      expect(yield* named.find(k)).toEqual(Option.some("here"))
      const index = yield* adminSql((sql) =>
        sql`SELECT indexname FROM pg_indexes WHERE tablename = 'custom_named_sessions' AND indexdef LIKE '%(expiry)%'`
      )
      expect(index).toEqual([{ indexname: "custom_named_sessions_expiry_idx" }])
    }))

  it.scoped("a schema-qualified table name works (public.custom_named_sessions)", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(START)
      const qualified = yield* store({ table: "public.custom_named_sessions" })
      const k = key("qualified")
      yield* qualified.commit(k, "q", START + 60_000, "create")
      expect(yield* countRows("custom_named_sessions", [k])).toBe(1)
    }))

  it.scoped("instances starting together create the table once without failing", () =>
    Effect.gen(function*() {
      yield* adminSql((sql) => sql`DROP TABLE IF EXISTS custom_named_sessions`)
      const stores = yield* Effect.all(Array.from({ length: 4 }, () => store({ table: "custom_named_sessions" })), {
        concurrency: "unbounded"
      })
      expect(stores).toHaveLength(4)
    }))

  it.scoped("a table name that is not an identifier is refused", () =>
    Effect.gen(function*() {
      for (const table of ["sessions; DROP TABLE x", "a.b.c", "1abc", "", "x".repeat(53), "sess\"ions"]) {
        const error = yield* Effect.flip(store({ table }))
        expect(error._tag).toBe("SessionConfigError")
      }
    }))

  it.scoped("createTable: false uses a table the application created, and creates none", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(START)
      yield* adminSql((sql) =>
        sql`CREATE TABLE app_owned_sessions (
          token TEXT NOT NULL PRIMARY KEY,
          data TEXT NOT NULL,
          expiry BIGINT NOT NULL
        )`
      )
      const owned = yield* store({ table: "app_owned_sessions", createTable: false })
      const k = key("owned")
      expect(yield* owned.commit(k, "mine", START + 60_000, "create")).toBe("written")
      expect(yield* owned.commit(k, "mine too", START + 60_000, "update")).toBe("written")
      expect(yield* owned.find(k)).toEqual(Option.some("mine too"))
      expect(yield* countRows("app_owned_sessions", [k])).toBe(1)

      const missing = yield* store({ table: "never_created_sessions", createTable: false })
      const error = yield* Effect.flip(missing.find(key("missing")))
      expect(error._tag).toBe("SessionStoreError")
      expect(error.operation).toBe("find")
      expect(error.reason).toBe("Unknown")
      expect(yield* adminSql((sql) => sql`SELECT to_regclass('never_created_sessions') AS t`)).toEqual([{ t: null }])
    }))

  it.scoped("an update that writes identical data and expiry is written, not gone", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(START)
      const s = yield* store()
      const k = key("same")
      yield* s.commit(k, "same", START + 60_000, "create")
      expect(yield* s.commit(k, "same", START + 60_000, "update")).toBe("written")
      expect(yield* s.find(k)).toEqual(Option.some("same"))
    }))

  it.scoped("the sweep deletes 2,500 expired rows in batches of 1,000 and keeps live rows", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(START)
      const table = "sweep_batches"
      const s = yield* store({ table, sweepBatchSize: 1000 })
      const expired = Array.from({ length: 2500 }, (_, i) => ({ token: `expired${i}`, data: "d", expiry: START - 1 }))
      const live = Array.from({ length: 10 }, (_, i) => ({ token: `live${i}`, data: "l", expiry: START + 60_000 }))
      yield* adminSql((sql) => sql`INSERT INTO ${sql(table)} ${sql.insert([...expired, ...live])}`)
      const { result, statements } = yield* recordingStatements(s.sweep)
      expect(result).toBe(2500)
      expect(statements.filter((statement) => statement.trimStart().startsWith("DELETE"))).toHaveLength(3)
      expect(yield* adminSql((sql) => sql`SELECT COUNT(*)::int AS n FROM ${sql(table)}`)).toEqual([{ n: 10 }])
      expect(yield* s.sweep).toBe(0)
    }))

  it.scoped("all pages through the table by token, one bounded query per page, live rows only", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(START)
      yield* adminSql((sql) => sql`DROP TABLE IF EXISTS paging_sessions`)
      const s = yield* store({ table: "paging_sessions", pageSize: 7 })
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

  it.scopedLive("a database that cannot be reached at start fails the layer with Unavailable", () =>
    Effect.gen(function*() {
      // Port 9 (discard) on loopback: nothing listens, the connection is refused.
      const error = yield* Effect.flip(Layer.build(PgStore.layer({ client: { ...client, port: 9 } })))
      expect(error._tag).toBe("SessionStoreError")
      if (error._tag === "SessionStoreError") {
        expect(error.operation).toBe("open")
        expect(error.reason).toBe("Unavailable")
      }
    }))

  it.scopedLive("a call stuck behind a lock fails with a Timeout store error (the store's timeout, the server's statement_timeout)", () =>
    Effect.gen(function*() {
      const s = yield* store({ timeout: "300 millis" })
      const now = Date.now()
      const k = key("locked")
      yield* s.commit(k, "x", now + 60_000, "create")
      const sql = Context.get(yield* Layer.build(PgClient.layer(client)), SqlClient.SqlClient)
      const connection = yield* sql.reserve
      yield* connection.executeRaw("BEGIN", [])
      yield* connection.executeRaw(`SELECT * FROM ${TABLE} WHERE token = $1 FOR UPDATE`, [k])
      const error = yield* Effect.flip(s.commit(k, "y", now + 60_000, "update"))
      expect(error.reason).toBe("Timeout")
      expect(error.operation).toBe("commit")
      // The server's own statement_timeout (SQLSTATE 57014) is a Timeout too.
      const serverTimeout = yield* store({
        client: {
          url: Redacted.make(
            `postgres://${postgres.username}@${postgres.host}:${postgres.port}/${postgres.database}?options=-c%20statement_timeout%3D200`
          )
        },
        timeout: 0
      })
      const fromServer = yield* Effect.flip(serverTimeout.commit(k, "z", now + 60_000, "update"))
      expect(fromServer.reason).toBe("Timeout")
      expect(fromServer.detail).toContain("57014")
      yield* connection.executeRaw("ROLLBACK", [])
      expect(yield* s.commit(k, "y", now + 60_000, "update")).toBe("written")
    }))

  it.scopedLive(
    "outage: calls fail with Unavailable, requests get the error response, and the store recovers",
    () =>
      Effect.gen(function*() {
        const router = HttpRouter.empty.pipe(
          HttpRouter.get(
            "/visit",
            Effect.gen(function*() {
              const session = yield* Session
              const visits = (yield* session.getInt("visits")) + 1
              yield* session.put("visits", visits)
              return HttpServerResponse.text(String(visits))
            })
          )
        )
        const AppLive = HttpServer.serve(SessionMiddleware.loadAndSave(router)).pipe(
          Layer.provide(SessionManager.layer()),
          Layer.provideMerge(PgStore.layer({ client, table: TABLE })),
          Layer.provideMerge(NodeHttpServer.layerTest)
        )
        const context = yield* Layer.build(AppLive)
        const s = Context.get(context, SessionStore)
        const jar = yield* Ref.make(Cookies.empty)
        const http = HttpClient.withCookiesRef(Context.get(context, HttpClient.HttpClient), jar)
        const visit = http.get("/visit").pipe(
          Effect.flatMap((response) => Effect.map(response.text, (text) => ({ status: response.status, text }))),
          Effect.scoped
        )
        expect(yield* visit).toEqual({ status: 200, text: "1" })

        // A statement waiting on a row lock is in flight when the server goes down.
        const holder = Context.get(yield* Layer.build(PgClient.layer(client)), SqlClient.SqlClient)
        const held = yield* holder.reserve
        const k = key("inflight")
        yield* s.commit(k, "x", Date.now() + 60_000, "create")
        yield* held.executeRaw("BEGIN", [])
        yield* held.executeRaw(`SELECT * FROM ${TABLE} WHERE token = $1 FOR UPDATE`, [k])
        const inFlight = yield* Effect.fork(s.commit(k, "y", Date.now() + 60_000, "update"))
        yield* eventually(adminSql((sql) =>
          Effect.map(
            sql`SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'UPDATE%'`,
            (rows) => rows.length > 0
          )
        ))

        // Whatever happens below, the server is running again afterwards.
        yield* Effect.addFinalizer(() => Effect.sync(() => service("postgres", "start")))
        service("postgres", "stop")

        const lost = yield* Effect.flip(Fiber.join(inFlight))
        expect(lost._tag).toBe("SessionStoreError")
        expect(lost.reason).toBe("Unavailable")
        const error = yield* Effect.flip(s.find(key("outage")))
        expect(error._tag).toBe("SessionStoreError")
        expect(error.reason).toBe("Unavailable")
        expect(error.operation).toBe("find")
        const during = yield* visit
        expect(during.status).toBe(500)

        service("postgres", "start")

        // The same layer, not rebuilt: the pool reconnects and the session survived the outage.
        expect(yield* s.find(key("after"))).toEqual(Option.none())
        expect(yield* visit).toEqual({ status: 200, text: "2" })
      }),
    120_000
  )
})
