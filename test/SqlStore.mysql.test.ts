import * as MysqlClient from "@effect/sql-mysql2/MysqlClient"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as MysqlStore from "../src/SessionStore/Mysql.js"
import type * as SqlStore from "../src/SessionStore/Sql.js"
import { mysql } from "./services.js"
import { requireServer, sqlStoreSuite } from "./sqlSuite.js"

const skip = await requireServer("MariaDB", mysql)
const client: MysqlClient.MysqlClientConfig = { ...mysql }
const layer = (options: SqlStore.Options) => MysqlStore.layer({ client, ...options })

// The CI server is MariaDB, which takes with DELETE … RETURNING; MySQL has no RETURNING and takes
// in a transaction. The server says which it is.
const take = skip !== undefined ? "returning" : await Effect.runPromise(
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ version: string }>`SELECT VERSION() AS version`).pipe(
    Effect.map((rows) => /mariadb/i.test(String(rows[0]?.version)) ? "returning" as const : "transaction" as const),
    Effect.provide(MysqlClient.layer(client))
  )
)

sqlStoreSuite({
  name: "SqlStore on MySQL/MariaDB",
  conformanceName: "mariadb",
  layer,
  admin: MysqlClient.layer(client),
  schema: mysql.database,
  indexesOn: (sql, table, column) =>
    Effect.map(
      sql<{ name: string }>`SELECT INDEX_NAME AS name FROM information_schema.STATISTICS
        WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ${table} AND COLUMN_NAME = ${column}`,
      (rows) => rows.map((row) => row.name)
    ),
  tableExists: (sql, table) =>
    Effect.map(
      sql`SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ${table}`,
      (rows) => rows.length > 0
    ),
  createApplicationTable: (sql, table) =>
    Effect.all([
      sql`CREATE TABLE ${sql(table)} (
        token VARCHAR(128) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
        data LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
        expiry BIGINT NOT NULL,
        PRIMARY KEY (token),
        KEY ${sql(`${table}_expiry_idx`)} (expiry)
      ) ENGINE=InnoDB`,
      sql`CREATE TABLE ${sql(`${table}_owners`)} (
        owner_hash BINARY(32) NOT NULL,
        owner TEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
        handle VARCHAR(128) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
        token VARCHAR(128) CHARACTER SET ascii COLLATE ascii_bin,
        until BIGINT NOT NULL,
        PRIMARY KEY (owner_hash, handle),
        KEY ${sql(`${table}_owners_idx`)} (until)
      ) ENGINE=InnoDB`
    ]),
  // Port 9 (discard) on loopback: nothing listens, the connection is refused.
  unreachable: { why: "nothing listens on its port", layer: MysqlStore.layer({ client: { ...client, port: 9 } }) },
  // MySQL counts changed rows unless the client sets CLIENT_FOUND_ROWS (mysql2 does by default):
  // both ways, an update that changes nothing must still be "written", and a missing row "gone".
  updateVariants: [
    { label: "default client flags", layer },
    {
      label: "without CLIENT_FOUND_ROWS",
      layer: (options) =>
        MysqlStore.layer({ client: { ...client, poolConfig: { flags: ["-FOUND_ROWS"] } }, ...options })
    }
  ],
  take,
  rowLocks: true,
  outage: { service: "mariadb" },
  skip
})
