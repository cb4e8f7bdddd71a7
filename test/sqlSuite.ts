/**
 * The SQL store's own suite: the cases every SQL dialect shares (table options, sweep batches,
 * paging, update semantics, timeouts, outages), written once and called from each dialect's test
 * file with what differs (its layer, catalog queries, server name). It also runs the store
 * conformance suite on the dialect. Cases only one database has stay in that database's file.
 */
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as Cookies from "@effect/platform/Cookies"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServer from "@effect/platform/HttpServer"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as SqlClient from "@effect/sql/SqlClient"
import type * as SqlError from "@effect/sql/SqlError"
import * as Statement from "@effect/sql/Statement"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import { createHash } from "node:crypto"
import { Session } from "../src/Session.js"
import type { SessionConfigError } from "../src/SessionConfigError.js"
import * as SessionManager from "../src/SessionManager.js"
import * as SessionMiddleware from "../src/SessionMiddleware.js"
import { SessionStore } from "../src/SessionStore.js"
import type { SessionStoreError } from "../src/SessionStore.js"
import * as SqlStore from "../src/SessionStore/Sql.js"
import { START, storeConformance } from "../src/testing/StoreConformance.js"
import { requireBackend } from "./conformance.js"
import { isReachable, service } from "./services.js"

// The owner id as the MySQL/MariaDB owner table is keyed (see SessionStore/Sql).
const ownerHash = (owner: string): Uint8Array => createHash("sha256").update(owner).digest()

/** The table the conformance suite and the cases without a table of their own use. */
export const TABLE = "sessions_conformance"

/** The longest table name the store takes (52 characters): every name derived from it must fit. */
const LONGEST_TABLE = `longest_${"x".repeat(44)}`

/**
 * Every table the suite writes, with the owner table beside each: dropped before the file runs,
 * so each run starts clean.
 */
const OWN_TABLES = [
  TABLE,
  "custom_named_sessions",
  "qualified_sessions",
  "app_owned_sessions",
  "never_created_sessions",
  "sweep_batches",
  "owner_sweep",
  "paging_sessions",
  LONGEST_TABLE
].flatMap((table) => [table, `${table}_owners`])

/** A store layer as the dialect's `layer` returns it. */
export type StoreLayer = Layer.Layer<SqlStore.SqlStore | SessionStore, SessionStoreError | SessionConfigError>

/** Runs `f` on the suite's admin client (a separate pool that reads past the store's expiry checks). */
export type AdminSql = <A, E>(f: (sql: SqlClient.SqlClient) => Effect.Effect<A, E>) => Effect.Effect<A>

/** What a dialect's test file tells the suite. */
export interface SqlDialectUnderTest {
  /** The describe name of the SQL cases, e.g. `SqlStore on PostgreSQL`. */
  readonly name: string
  /** The name of the conformance run, e.g. `postgres`. */
  readonly conformanceName: string
  /** The dialect's store layer on the test database, with these store options. */
  readonly layer: (options: SqlStore.Options) => StoreLayer
  /** A client on the same database, for the tests' own reads and writes past the store. */
  readonly admin: Layer.Layer<SqlClient.SqlClient, unknown>
  /** The schema a qualified table name uses (`public`, the MySQL database, `main`). */
  readonly schema: string
  /** The names of the indexes on `table`'s `column` alone (its primary key aside), from the catalog. */
  readonly indexesOn: (
    sql: SqlClient.SqlClient,
    table: string,
    column: string
  ) => Effect.Effect<ReadonlyArray<string>, SqlError.SqlError>
  /** Whether `table` exists, from the catalog. */
  readonly tableExists: (sql: SqlClient.SqlClient, table: string) => Effect.Effect<boolean, SqlError.SqlError>
  /**
   * Creates `table` and `<table>_owners` the way an application would, in the documented shape,
   * for `createTable: false`.
   */
  readonly createApplicationTable: (
    sql: SqlClient.SqlClient,
    table: string
  ) => Effect.Effect<unknown, SqlError.SqlError>
  /** A layer whose database cannot be reached at start, and why (shown in the test name). */
  readonly unreachable: { readonly why: string; readonly layer: StoreLayer }
  /**
   * The client configurations the identical-update case runs under, labelled in the test name
   * (default: the dialect's `layer`, unlabelled).
   */
  readonly updateVariants?: ReadonlyArray<
    { readonly label: string; readonly layer: (options: SqlStore.Options) => StoreLayer }
  >
  /**
   * How the server takes an entry: one `DELETE … RETURNING` (PostgreSQL, SQLite, MariaDB: the
   * default) or `SELECT … FOR UPDATE` and `DELETE` in a transaction (MySQL, which has no `RETURNING`).
   */
  readonly take?: "returning" | "transaction"
  /** The database has row locks (`SELECT … FOR UPDATE`): runs the store-timeout case. */
  readonly rowLocks: boolean
  /**
   * The server, by its `scripts/services/<name>.sh`: runs the outage case. `inFlight` starts a
   * call that is in flight when the server stops; it must then fail with `Unavailable`.
   */
  readonly outage?: {
    readonly service: string
    /**
     * How the server goes down. `"crash"` (an immediate stop) where a call is in flight: a fast
     * stop ends the backends in no set order, so a statement waiting on a lock held by another
     * backend may get it, and commit, before its own backend ends.
     */
    readonly down?: "stop" | "crash" | undefined
    readonly inFlight?: (
      store: SessionStore,
      tools: SqlSuiteTools
    ) => Effect.Effect<Fiber.Fiber<unknown, SessionStoreError>, unknown, Scope.Scope>
  }
  /** Skip everything with this reason (only when the server is missing locally; never in CI). */
  readonly skip?: string | undefined
}

/** What the suite hands back for the dialect's own cases. */
export interface SqlSuiteTools {
  /** A store on `TABLE` without a sweep fiber, built in the test's scope; `options` override. */
  readonly store: (
    options?: SqlStore.Options,
    layer?: (options: SqlStore.Options) => StoreLayer
  ) => Effect.Effect<SqlStore.SqlStore, SessionStoreError | SessionConfigError, Scope.Scope>
  readonly adminSql: AdminSql
  /** How many rows `table` physically holds for `keys`, expired ones included. */
  readonly countRows: (table: string, keys: ReadonlyArray<string>) => Effect.Effect<number>
  /**
   * Locks the row of `key` in `table` from another connection (`BEGIN; SELECT … FOR UPDATE`),
   * and returns the effect that releases it (`ROLLBACK`). The connection lives as long as the scope.
   */
  readonly holdRowLock: (
    table: string,
    key: string
  ) => Effect.Effect<Effect.Effect<void, unknown>, unknown, Scope.Scope>
}

/**
 * The skip reason for a database server's suites: undefined when it accepts connections; locally
 * a reason to skip, in CI (`CI=true`) a failure.
 */
export const requireServer = async (
  name: string,
  server: { readonly host: string; readonly port: number }
): Promise<string | undefined> =>
  requireBackend(
    name,
    await isReachable(server.host, server.port),
    `start it with \`bash scripts/start-services.sh\` (expects ${server.host}:${server.port})`
  )

/** A valid 43-character store key, unique per call, starting with `label`. */
export const key = (label: string): string =>
  `${label}_${Math.random().toString(36).slice(2)}`.padEnd(43, "x").slice(0, 43)

/**
 * Checks `done` until it holds, at most `attempts` times: for state only the server knows (a
 * statement waiting on a lock), where each check is itself a round trip to the server.
 */
export const untilServerSays = <E, R>(done: Effect.Effect<boolean, E, R>, attempts = 1000): Effect.Effect<void, E, R> =>
  Effect.gen(function*() {
    for (let attempt = 0; attempt < attempts; attempt++) {
      if (yield* done) return
      yield* Effect.yieldNow()
    }
    return yield* Effect.dieMessage(`the server did not reach the expected state in ${attempts} checks`)
  })

/** Records the text of every SQL statement the effect runs. */
export const recordingStatements = <A, E, R>(
  effect: Effect.Effect<A, E, R>
): Effect.Effect<{ readonly result: A; readonly statements: ReadonlyArray<string> }, E, R> =>
  Effect.gen(function*() {
    const statements: Array<string> = []
    // A statement transformer sees every statement the client runs, traced or not (the store runs
    // its calls with tracing off below its own span).
    const result = yield* Statement.withTransformer(effect, (statement) =>
      Effect.sync(() => {
        statements.push(statement.compile()[0])
        return statement
      }))
    return { result, statements }
  })

/** Builds a store layer in the current scope and returns its store. */
export const buildStore = (
  layer: StoreLayer
): Effect.Effect<SqlStore.SqlStore, SessionStoreError | SessionConfigError, Scope.Scope> =>
  Effect.map(Layer.build(layer), (context) => Context.get(context, SqlStore.SqlStore))

const statementsStartingWith = (statements: ReadonlyArray<string>, verb: string) =>
  statements.filter((statement) => statement.trimStart().startsWith(verb))

/**
 * Runs the conformance suite and the shared SQL cases on one dialect; returns the tools for the
 * dialect's own cases (written in its file, under the same describe name).
 */
export const sqlStoreSuite = (dialect: SqlDialectUnderTest): SqlSuiteTools => {
  const { skip } = dialect
  const admin = ManagedRuntime.make(dialect.admin)
  const adminSql: AdminSql = (f) => Effect.promise(() => admin.runPromise(Effect.flatMap(SqlClient.SqlClient, f)))
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
    adminSql((sql) => sql<{ n: unknown }>`SELECT COUNT(*) AS n FROM ${sql(table)} WHERE ${sql.in("token", keys)}`).pipe(
      Effect.map((rows) => Number(rows[0].n))
    )
  const countAll = (table: string) =>
    adminSql((sql) => sql<{ n: unknown }>`SELECT COUNT(*) AS n FROM ${sql(table)}`).pipe(
      Effect.map((rows) => Number(rows[0].n))
    )
  const expiryIndexes = (table: string) => adminSql((sql) => dialect.indexesOn(sql, table, "expiry"))
  const untilIndexes = (table: string) => adminSql((sql) => dialect.indexesOn(sql, `${table}_owners`, "until"))
  const countOwnerRows = (table: string, owner: string) =>
    adminSql((sql) =>
      sql<{ n: unknown }>`SELECT COUNT(*) AS n FROM ${sql(`${table}_owners`)} WHERE ${
        sql.onDialectOrElse({ mysql: () => sql`owner_hash = ${ownerHash(owner)}`, orElse: () => sql`owner = ${owner}` })
      }`
    ).pipe(Effect.map((rows) => Number(rows[0].n)))

  const store: SqlSuiteTools["store"] = (options = {}, layer = dialect.layer) =>
    buildStore(layer({ table: TABLE, cleanupInterval: 0, ...options }))

  const holdRowLock: SqlSuiteTools["holdRowLock"] = (table, k) =>
    Effect.gen(function*() {
      const sql = Context.get(yield* Layer.build(dialect.admin), SqlClient.SqlClient)
      const connection = yield* sql.reserve
      yield* connection.executeRaw("BEGIN", [])
      const [text, params] = sql`SELECT * FROM ${sql(table)} WHERE token = ${k} FOR UPDATE`.compile()
      yield* connection.executeRaw(text, params)
      return Effect.asVoid(connection.executeRaw("ROLLBACK", []))
    })

  const tools: SqlSuiteTools = { store, adminSql, countRows, holdRowLock }

  // No store timeout in the conformance cases: they run on TestClock, and a jump of the clock would
  // time out a statement still in flight (a sweep's, say); PostgreSQL's driver then cancels it with
  // `pg_cancel_backend`, which on a loaded machine can land on the connection's next statement.
  // The timeout has cases of its own, on the live clock.
  storeConformance({
    name: dialect.conformanceName,
    layer: dialect.layer({ table: TABLE, cleanupInterval: "1 minute", timeout: 0 }),
    enumerable: true,
    owners: true,
    paging: { layer: (pageSize) => dialect.layer({ table: TABLE, cleanupInterval: 0, pageSize, timeout: 0 }) },
    sweep: { interval: "1 minute", physicalCount: (keys) => countRows(TABLE, keys) },
    skip
  })

  describe.skipIf(skip !== undefined)(dialect.name, () => {
    it.scoped("the table option names the table the store creates and uses", () =>
      Effect.gen(function*() {
        yield* TestClock.setTime(START)
        const named = yield* store({ table: "custom_named_sessions" })
        const k = key("named")
        yield* named.commit(k, "here", START + 60_000, "create")
        expect(yield* countRows("custom_named_sessions", [k])).toBe(1)
        expect(yield* named.find(k)).toEqual(Option.some({ data: "here", expiresAt: START + 60_000 }))
        expect(yield* expiryIndexes("custom_named_sessions")).toEqual(["custom_named_sessions_expiry_idx"])
        // The owner index lives beside it, in <table>_owners.
        expect(yield* named.owners.link("named owner", "handle", k, START + 60_000)).toBe("linked")
        expect(yield* countOwnerRows("custom_named_sessions", "named owner")).toBe(1)
        expect(yield* untilIndexes("custom_named_sessions")).toEqual(["custom_named_sessions_owners_idx"])
      }))

    it.scoped("a table name of 52 characters fits, with every name derived from it", () =>
      Effect.gen(function*() {
        yield* TestClock.setTime(START)
        const longest = yield* store({ table: LONGEST_TABLE })
        const k = key("longest")
        yield* longest.commit(k, "long", START + 60_000, "create")
        expect(yield* longest.find(k)).toEqual(Option.some({ data: "long", expiresAt: START + 60_000 }))
        expect(yield* longest.owners.link("owner", "handle", k, START + 60_000)).toBe("linked")
        expect(yield* longest.owners.list("owner")).toEqual([{ handle: "handle", key: k }])
        // Exactly these names: none cut short by an identifier limit.
        expect(yield* expiryIndexes(LONGEST_TABLE)).toEqual([`${LONGEST_TABLE}_expiry_idx`])
        expect(yield* untilIndexes(LONGEST_TABLE)).toEqual([`${LONGEST_TABLE}_owners_idx`])
      }))

    it.scoped(`a schema-qualified table name works (${dialect.schema}.qualified_sessions)`, () =>
      Effect.gen(function*() {
        yield* TestClock.setTime(START)
        // Created through the qualified name, read back through the plain one: the same table.
        const qualified = yield* store({ table: `${dialect.schema}.qualified_sessions` })
        const k = key("qualified")
        yield* qualified.commit(k, "q", START + 60_000, "create")
        expect(yield* countRows("qualified_sessions", [k])).toBe(1)
        expect(yield* qualified.find(k)).toEqual(Option.some({ data: "q", expiresAt: START + 60_000 }))
        expect(yield* expiryIndexes("qualified_sessions")).toEqual(["qualified_sessions_expiry_idx"])
        expect(yield* qualified.owners.link("qualified owner", "handle", k, START + 60_000)).toBe("linked")
        expect(yield* countOwnerRows("qualified_sessions", "qualified owner")).toBe(1)
        expect(yield* untilIndexes("qualified_sessions")).toEqual(["qualified_sessions_owners_idx"])
      }))

    it.scoped("instances starting together create the table once without failing", () =>
      Effect.gen(function*() {
        yield* adminSql((sql) => sql`DROP TABLE IF EXISTS custom_named_sessions`)
        const stores = yield* Effect.all(Array.from({ length: 4 }, () => store({ table: "custom_named_sessions" })), {
          concurrency: "unbounded"
        })
        expect(stores).toHaveLength(4)
        expect(yield* adminSql((sql) => dialect.tableExists(sql, "custom_named_sessions"))).toBe(true)
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
        yield* adminSql((sql) => dialect.createApplicationTable(sql, "app_owned_sessions"))
        const owned = yield* store({ table: "app_owned_sessions", createTable: false })
        const k = key("owned")
        expect(yield* owned.commit(k, "mine", START + 60_000, "create")).toBe("written")
        expect(yield* owned.find(k)).toEqual(Option.some({ data: "mine", expiresAt: START + 60_000 }))
        expect(yield* owned.commit(k, "mine too", START + 60_000, "update")).toBe("written")
        expect(yield* owned.find(k)).toEqual(Option.some({ data: "mine too", expiresAt: START + 60_000 }))
        expect(yield* countRows("app_owned_sessions", [k])).toBe(1)
        const [handle, other] = ["owned_handle", "other_handle"]
        expect(yield* owned.owners.link("app owner", handle, k, START + 60_000)).toBe("linked")
        expect(yield* owned.owners.link("app owner", other, key("other"), START + 60_000)).toBe("linked")
        expect(yield* owned.owners.revoke("app owner", "all", other)).toEqual([k])
        expect(yield* owned.owners.link("app owner", handle, k, START + 60_000)).toBe("revoked")
        expect((yield* owned.owners.list("app owner")).map((link) => link.handle)).toEqual([other])

        const missing = yield* store({ table: "never_created_sessions", createTable: false })
        const error = yield* Effect.flip(missing.find(key("missing")))
        expect(error._tag).toBe("SessionStoreError")
        expect(error.operation).toBe("find")
        expect(error.reason).toBe("Unknown")
        expect(yield* Effect.flip(missing.owners.list("owner"))).toMatchObject({ operation: "list", reason: "Unknown" })
        expect(yield* adminSql((sql) => dialect.tableExists(sql, "never_created_sessions"))).toBe(false)
        expect(yield* adminSql((sql) => dialect.tableExists(sql, "never_created_sessions_owners"))).toBe(false)
      }))

    // An update that changes nothing must still be "written", and a missing or expired row "gone".
    for (const variant of dialect.updateVariants ?? [{ label: undefined, layer: dialect.layer }]) {
      const label = variant.label === undefined ? "" : ` (${variant.label})`
      it.scoped(`an update that writes identical data and expiry is written, not gone${label}`, () =>
        Effect.gen(function*() {
          yield* TestClock.setTime(START)
          const s = yield* store({}, variant.layer)
          const k = key("same")
          yield* s.commit(k, "same", START + 60_000, "create")
          expect(yield* s.commit(k, "same", START + 60_000, "update")).toBe("written")
          expect(yield* s.find(k)).toEqual(Option.some({ data: "same", expiresAt: START + 60_000 }))
          expect(yield* s.commit(k, "other", START + 60_000, "update")).toBe("written")
          expect(yield* s.find(k)).toEqual(Option.some({ data: "other", expiresAt: START + 60_000 }))
          yield* s.delete(k)
          expect(yield* s.commit(k, "other", START + 60_000, "update")).toBe("gone")
          yield* s.commit(k, "dying", START + 1000, "create")
          yield* TestClock.adjust("1 second")
          expect(yield* s.commit(k, "dying", START + 1000, "update")).toBe("gone")
          expect(yield* s.find(k)).toEqual(Option.none())
        }))

      it.scoped(`a touch to the expiry the row already has is written, not gone${label}`, () =>
        Effect.gen(function*() {
          yield* TestClock.setTime(START)
          const s = yield* store({}, variant.layer)
          const k = key("touch")
          yield* s.commit(k, "kept", START + 60_000, "create")
          expect(yield* s.touch(k, START + 60_000)).toBe("written")
          expect(yield* s.find(k)).toEqual(Option.some({ data: "kept", expiresAt: START + 60_000 }))
          expect(yield* s.touch(k, START + 120_000)).toBe("written")
          expect(yield* s.find(k)).toEqual(Option.some({ data: "kept", expiresAt: START + 120_000 }))
          yield* s.delete(k)
          expect(yield* s.touch(k, START + 120_000)).toBe("gone")
          expect(yield* countRows(TABLE, [k])).toBe(0)
          yield* s.commit(k, "dying", START + 1000, "create")
          yield* TestClock.adjust("1 second")
          expect(yield* s.touch(k, START + 1000)).toBe("gone")
          expect(yield* s.touch(k, START + 120_000)).toBe("gone")
          expect(yield* s.find(k)).toEqual(Option.none())
        }))
    }

    const takeWith = dialect.take ?? "returning"
    it.scoped(
      takeWith === "returning"
        ? "take is one DELETE … RETURNING"
        : "take locks the row (SELECT … FOR UPDATE) and deletes it in a transaction",
      () =>
        Effect.gen(function*() {
          yield* TestClock.setTime(START)
          const s = yield* store()
          const k = key("take")
          yield* s.commit(k, "taken", START + 60_000, "create")
          // The first take may ask the server which one it is; the second shows the steady state.
          yield* s.take(key("warmup"))
          const { result, statements } = yield* recordingStatements(s.take(k))
          expect(result).toEqual(Option.some({ data: "taken", expiresAt: START + 60_000 }))
          const deletes = statementsStartingWith(statements, "DELETE")
          expect(deletes).toHaveLength(1)
          if (takeWith === "returning") {
            expect(deletes[0]).toContain("RETURNING")
            expect(statements).toHaveLength(1)
          } else {
            expect(statements.some((statement) => statement.includes("FOR UPDATE"))).toBe(true)
          }
          expect(yield* countRows(TABLE, [k])).toBe(0)
        })
    )

    it.scoped("keys that are not base64url are never found and never written", () =>
      Effect.gen(function*() {
        yield* TestClock.setTime(START)
        const s = yield* store()
        expect(yield* s.find("not a key")).toEqual(Option.none())
        expect(yield* s.commit("é", "x", START + 60_000, "update")).toBe("gone")
        expect(yield* s.take("not a key")).toEqual(Option.none())
        expect(yield* s.touch("not a key", START + 60_000)).toBe("gone")
        const error = yield* Effect.flip(s.commit("x".repeat(129), "x", START + 60_000, "create"))
        expect(error.operation).toBe("commit")
        yield* s.delete("not a key")
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
        const deletes = statementsStartingWith(statements, "DELETE")
        // Three batches of sessions, then one of owner rows (there are none).
        expect(deletes.filter((statement) => !statement.includes("sweep_batches_owners"))).toHaveLength(3)
        expect(deletes.filter((statement) => statement.includes("sweep_batches_owners"))).toHaveLength(1)
        expect(yield* countAll(table)).toBe(10)
        expect(yield* countRows(table, live.map((row) => row.token))).toBe(10)
        expect(yield* s.sweep).toBe(0)
      }))

    it.scoped("the sweep deletes 2,500 owner rows past their until in batches of 1,000 and keeps the others", () =>
      Effect.gen(function*() {
        yield* TestClock.setTime(START)
        const table = "owner_sweep"
        const s = yield* store({ table, sweepBatchSize: 1000 })
        const owner = "sweep owner"
        // Past their until: links and tombstones alike. Before it: a link and a tombstone.
        const lapsed = Array.from({ length: 2500 }, (_, i) => ({
          owner,
          handle: `lapsed${i}`,
          token: i % 2 === 0 ? key("lapsed") : null,
          until: START - i % 3
        }))
        const kept = [
          { owner, handle: "live", token: key("live"), until: START + 60_000 },
          { owner, handle: "revoked", token: null, until: START + 60_000 }
        ]
        yield* adminSql((sql) =>
          sql`INSERT INTO ${sql(`${table}_owners`)} ${
            sql.insert(
              sql.onDialectOrElse({
                mysql: () => [...lapsed, ...kept].map((row) => ({ ...row, owner_hash: ownerHash(row.owner) })),
                orElse: () => [...lapsed, ...kept]
              })
            )
          }`
        )
        const { result, statements } = yield* recordingStatements(s.sweep)
        // It counts sessions (there are none here), not owner rows.
        expect(result).toBe(0)
        const deletes = statementsStartingWith(statements, "DELETE")
        expect(deletes.filter((statement) => statement.includes("owner_sweep_owners"))).toHaveLength(3)
        expect(yield* countOwnerRows(table, owner)).toBe(2)
        expect(yield* s.owners.list(owner)).toEqual([{ handle: "live", key: kept[0].token }])
        expect(yield* s.owners.link(owner, "revoked", key("again"), START + 60_000)).toBe("revoked")
      }))

    it.scoped("owner ids are compared exactly: case, trailing spaces, normalization and length all count", () =>
      Effect.gen(function*() {
        yield* TestClock.setTime(START)
        const s = yield* store()
        const suffix = key("owner").slice(0, 12)
        const long = `${"🔑".repeat(200)}${"x".repeat(599)}${suffix}`
        const owners = [
          `alice${suffix}`,
          `alice${suffix} `,
          `Alice${suffix}`,
          `ALICE${suffix}`,
          `\u00e9${suffix}`,
          `e\u0301${suffix}`,
          long,
          `${long}y`,
          long.slice(0, -1)
        ]
        const keys = owners.map(() => key("exact"))
        for (const [i, owner] of owners.entries()) {
          expect(yield* s.owners.link(owner, "handle", keys[i], START + 60_000)).toBe("linked")
        }
        for (const [i, owner] of owners.entries()) {
          expect(yield* s.owners.list(owner)).toEqual([{ handle: "handle", key: keys[i] }])
        }
        expect(yield* s.owners.revoke(owners[0], "all")).toEqual([keys[0]])
        expect(yield* s.owners.revoke(long, "all")).toEqual([keys[6]])
        for (const [i, owner] of owners.entries()) {
          expect(yield* s.owners.list(owner)).toEqual(i === 0 || i === 6 ? [] : [{ handle: "handle", key: keys[i] }])
        }
      }))

    it.scoped("a link moves the handle's until: over a live link, and over a tombstone past its until", () =>
      Effect.gen(function*() {
        yield* TestClock.setTime(START)
        const s = yield* store()
        const owner = `until ${key("owner")}`
        const [kept, revoked] = [key("kept"), key("revoked")]
        yield* s.owners.link(owner, "kept", kept, START + 1000)
        expect(yield* s.owners.link(owner, "kept", kept, START + 60_000)).toBe("linked")
        yield* s.owners.link(owner, "revoked", key("old"), START + 1000)
        yield* s.owners.revoke(owner, ["revoked"])
        yield* TestClock.adjust("1 second")
        expect(yield* s.owners.link(owner, "revoked", revoked, START + 60_000)).toBe("linked")
        yield* TestClock.adjust("10 seconds")
        const links = [...(yield* s.owners.list(owner))].sort((a, b) => a.handle < b.handle ? -1 : 1)
        expect(links).toEqual([{ handle: "kept", key: kept }, { handle: "revoked", key: revoked }])
      }))

    it.scoped("owner handles and keys that are not base64url are never linked, listed or revoked", () =>
      Effect.gen(function*() {
        yield* TestClock.setTime(START)
        const s = yield* store()
        const owner = `malformed ${key("owner")}`
        const k = key("handles")
        const error = yield* Effect.flip(s.owners.link(owner, "not a handle", k, START + 60_000))
        expect(error).toMatchObject({ _tag: "SessionStoreError", operation: "link", reason: "Unknown" })
        expect(error.detail).not.toContain(k)
        expect(yield* Effect.flip(s.owners.link(owner, "handle", "not a key", START + 60_000))).toMatchObject({
          operation: "link"
        })
        yield* s.owners.link(owner, "handle", k, START + 60_000)
        expect(yield* s.owners.revoke(owner, ["not a handle", "é"])).toEqual([])
        yield* s.owners.unlink(owner, "handle", "not a key")
        expect(yield* s.owners.list(owner)).toEqual([{ handle: "handle", key: k }])
      }))

    it.scoped("all reads one bounded query per page, ordered by token", () =>
      Effect.gen(function*() {
        yield* TestClock.setTime(START)
        yield* adminSql((sql) => sql`DROP TABLE IF EXISTS paging_sessions`)
        const s = yield* store({ table: "paging_sessions", pageSize: 7 })
        const keys = Array.from({ length: 30 }, (_, i) => key(`page${String(i).padStart(2, "0")}`))
        for (const k of keys) yield* s.commit(k, `v:${k}`, START + 60_000, "create")
        yield* s.commit(key("expired"), "expired", START - 1, "create")
        const { result, statements } = yield* recordingStatements(Stream.runCollect(s.all))
        const all = Chunk.toReadonlyArray(result)
        expect(all.map((entry) => entry.key)).toEqual([...keys].sort())
        expect(all.every((entry) => entry.data === `v:${entry.key}` && entry.expiresAt === START + 60_000)).toBe(true)
        // 30 live rows in pages of 7: four full pages and a short one that ends the stream.
        expect(statementsStartingWith(statements, "SELECT")).toHaveLength(5)
      }))

    it.scopedLive(`a database that cannot be reached at start fails the layer with Unavailable (${dialect.unreachable.why})`, () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(Layer.build(dialect.unreachable.layer))
        expect(error._tag).toBe("SessionStoreError")
        if (error._tag === "SessionStoreError") {
          expect(error.operation).toBe("open")
          expect(error.reason).toBe("Unavailable")
        }
      }))

    if (dialect.rowLocks) {
      it.scopedLive("a call stuck behind a lock fails with a Timeout store error (the store's timeout)", () =>
        Effect.gen(function*() {
          const s = yield* store({ timeout: "300 millis" })
          const now = Date.now()
          const k = key("locked")
          yield* s.commit(k, "x", now + 60_000, "create")
          const release = yield* holdRowLock(TABLE, k)
          const error = yield* Effect.flip(s.commit(k, "y", now + 60_000, "update"))
          expect(error.reason).toBe("Timeout")
          expect(error.operation).toBe("commit")
          yield* release
          expect(yield* s.commit(k, "y", now + 60_000, "update")).toBe("written")
          expect(yield* s.take(k)).toEqual(Option.some({ data: "y", expiresAt: now + 60_000 }))
          // take and touch are bounded the same way. Each on a row of its own: what a timed-out
          // call did is unknown (MariaDB, unlike PostgreSQL, still runs the statement once the
          // lock is free), so those rows are not looked at again.
          for (const operation of ["touch", "take"] as const) {
            const locked = key(operation)
            yield* s.commit(locked, "x", now + 60_000, "create")
            yield* holdRowLock(TABLE, locked)
            const call: Effect.Effect<unknown, SessionStoreError> = operation === "take"
              ? s.take(locked)
              : s.touch(locked, now + 120_000)
            expect(yield* Effect.flip(call)).toMatchObject({ reason: "Timeout", operation })
          }
          // So are the owner index's: a link and a revocation waiting on a locked owner row.
          for (const operation of ["link", "revoke"] as const) {
            const owner = `locked ${key(operation)}`
            const locked = key(operation)
            yield* s.owners.link(owner, "handle", locked, now + 60_000)
            // MySQL locks every row its search reads (the owner table has no index on token).
            const releaseOwner = yield* holdRowLock(`${TABLE}_owners`, locked)
            const call: Effect.Effect<unknown, SessionStoreError> = operation === "link"
              ? s.owners.link(owner, "handle", key("relinked"), now + 60_000)
              : s.owners.revoke(owner, "all")
            expect(yield* Effect.flip(call)).toMatchObject({ reason: "Timeout", operation })
            yield* releaseOwner
          }
        }))
    }

    const outage = dialect.outage
    if (outage !== undefined) {
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
              Layer.provideMerge(dialect.layer({ table: TABLE })),
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

            const inFlight = outage.inFlight === undefined ? undefined : yield* outage.inFlight(s, tools)

            // Whatever happens below, the server is running again afterwards.
            yield* Effect.addFinalizer(() => Effect.sync(() => service(outage.service, "start")))
            service(outage.service, outage.down ?? "stop")

            if (inFlight !== undefined) {
              const lost = yield* Effect.flip(Fiber.join(inFlight))
              expect(lost._tag).toBe("SessionStoreError")
              expect(lost.reason).toBe("Unavailable")
            }
            const error = yield* Effect.flip(s.find(key("outage")))
            expect(error._tag).toBe("SessionStoreError")
            expect(error.reason).toBe("Unavailable")
            expect(error.operation).toBe("find")
            const during = yield* visit
            expect(during.status).toBe(500)

            service(outage.service, "start")

            // The same layer, not rebuilt: the pool reconnects and the session survived the outage.
            expect(yield* s.find(key("after"))).toEqual(Option.none())
            expect(yield* visit).toEqual({ status: 200, text: "2" })
          }),
        120_000
      )
    }
  })

  return tools
}
