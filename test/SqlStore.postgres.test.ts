import * as PgClient from "@effect/sql-pg/PgClient"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as PgStore from "../src/SessionStore/Pg.js"
import type * as SqlStore from "../src/SessionStore/Sql.js"
import { postgres } from "./services.js"
import { buildStore, key, requireServer, sqlStoreSuite, TABLE, untilServerSays } from "./sqlSuite.js"

const skip = await requireServer("PostgreSQL", postgres)
const client: PgClient.PgClientConfig = { ...postgres }
const layer = (options: SqlStore.Options) => PgStore.layer({ client, ...options })

const { adminSql, holdRowLock, store } = sqlStoreSuite({
  name: "SqlStore on PostgreSQL",
  conformanceName: "postgres",
  layer,
  admin: PgClient.layer(client),
  schema: "public",
  indexesOn: (sql, table, column) =>
    Effect.map(
      sql<{ indexname: string }>`SELECT indexname FROM pg_indexes
        WHERE tablename = ${table} AND indexdef LIKE ${`%(${column})%`}`,
      (rows) => rows.map((row) => row.indexname)
    ),
  tableExists: (sql, table) =>
    Effect.map(sql<{ t: string | null }>`SELECT to_regclass(${table}) AS t`, (rows) => rows[0].t !== null),
  createApplicationTable: (sql, table) =>
    Effect.all([
      sql`CREATE TABLE ${sql(table)} (
        token TEXT NOT NULL PRIMARY KEY,
        data TEXT NOT NULL,
        expiry BIGINT NOT NULL
      )`,
      sql`CREATE INDEX ${sql(`${table}_expiry_idx`)} ON ${sql(table)} (expiry)`,
      sql`CREATE TABLE ${sql(`${table}_owners`)} (
        owner TEXT NOT NULL,
        handle TEXT NOT NULL,
        token TEXT,
        until BIGINT NOT NULL,
        PRIMARY KEY (owner, handle)
      )`,
      sql`CREATE INDEX ${sql(`${table}_owners_idx`)} ON ${sql(`${table}_owners`)} (until)`
    ]),
  // Port 9 (discard) on loopback: nothing listens, the connection is refused.
  unreachable: { why: "nothing listens on its port", layer: PgStore.layer({ client: { ...client, port: 9 } }) },
  rowLocks: true,
  outage: {
    service: "postgres",
    down: "crash",
    // A statement waiting on a row lock is in flight when the server goes down.
    inFlight: (s, tools) =>
      Effect.gen(function*() {
        const k = key("inflight")
        yield* s.commit(k, "x", Date.now() + 60_000, "create")
        yield* tools.holdRowLock(TABLE, k)
        const inFlight = yield* Effect.fork(s.commit(k, "y", Date.now() + 60_000, "update"))
        yield* untilServerSays(tools.adminSql((sql) =>
          Effect.map(
            sql`SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'UPDATE%'`,
            (rows) => rows.length > 0
          )
        ))
        return inFlight
      })
  },
  skip
})

describe.skipIf(skip !== undefined)("SqlStore on PostgreSQL", () => {
  it.scopedLive("a call stuck behind a lock fails with a Timeout store error (the server's statement_timeout)", () =>
    Effect.gen(function*() {
      const s = yield* store()
      const now = Date.now()
      const k = key("statement")
      yield* s.commit(k, "x", now + 60_000, "create")
      const release = yield* holdRowLock(TABLE, k)
      // The server's own statement_timeout (SQLSTATE 57014) is a Timeout too.
      const serverTimeout = yield* buildStore(PgStore.layer({
        client: {
          url: Redacted.make(
            `postgres://${postgres.username}@${postgres.host}:${postgres.port}/${postgres.database}?options=-c%20statement_timeout%3D200`
          )
        },
        table: TABLE,
        cleanupInterval: 0,
        timeout: 0
      }))
      const fromServer = yield* Effect.flip(serverTimeout.commit(k, "z", now + 60_000, "update"))
      expect(fromServer.reason).toBe("Timeout")
      expect(fromServer.operation).toBe("commit")
      expect(fromServer.detail).toContain("57014")
      yield* release
      expect(yield* s.commit(k, "y", now + 60_000, "update")).toBe("written")
      expect(yield* adminSql((sql) => sql`SELECT data FROM ${sql(TABLE)} WHERE token = ${k}`)).toEqual([{ data: "y" }])
    }))
})
