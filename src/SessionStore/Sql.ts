/**
 * The SQL store: one `SessionStore` over `@effect/sql`'s `SqlClient`, correct on PostgreSQL,
 * MySQL/MariaDB and SQLite. It works with whatever driver layer the application already has
 * (`PgClient`, `MysqlClient`, `SqliteClient`); `SessionStore/Pg`, `SessionStore/Mysql` and
 * `SessionStore/Sqlite` are ready layers that bring their own client.
 *
 * One row per session: `token` (the store key, primary key), `data` (the encoded session) and
 * `expiry` (epoch milliseconds, indexed). Expiry is compared with the time from `Clock`, never
 * the database's `NOW()`, so application and database clocks need not agree.
 *
 * An `"update"` and a `touch` change only a row that is present and unexpired, in one `UPDATE`.
 * A `take` is one `DELETE … RETURNING` on PostgreSQL, SQLite (3.35+) and MariaDB; MySQL has no
 * `RETURNING`, so there it locks the row (`SELECT … FOR UPDATE`) and deletes it in a transaction.
 * Which of the two servers answers the `mysql` dialect is asked once (`SELECT VERSION()`).
 *
 * The owner index (`SessionStore.OwnerIndex`) is a second table, `<table>_owners`: one row per
 * handle of an owner, with `token` (the store key of the handle's session, `NULL` once revoked: a
 * tombstone) and `until` (epoch milliseconds, indexed for the sweep), keyed by owner and handle.
 * MySQL/MariaDB key it by the SHA-256 of the owner id (`owner_hash`, with the id itself beside it
 * for people reading the table): an index there holds at most 3,072 bytes, and its string
 * collations ignore trailing spaces, while an owner id may be long and is compared exactly.
 * A `link` is one upsert that leaves a live tombstone alone (`ON CONFLICT … DO UPDATE … WHERE …
 * RETURNING` on PostgreSQL and SQLite; on MySQL/MariaDB `ON DUPLICATE KEY UPDATE` and a read of
 * the row, in one transaction). A `revoke` reads the owner's live rows with `SELECT … FOR UPDATE`
 * (SQLite, which writes one transaction at a time, needs no row lock) and turns them into
 * tombstones in the same transaction: a link of one of them waits for it, then finds the
 * tombstone. (`UPDATE … RETURNING` would report the new `NULL`, not the key it replaced.)
 *
 * @since 0.1.0
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type * as SqlError from "@effect/sql/SqlError"
import type * as Statement from "@effect/sql/Statement"
import * as Arr from "effect/Array"
import * as Chunk from "effect/Chunk"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import type * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { createHash } from "node:crypto"
import * as Errors from "../internal/errors.js"
import { yieldToEventLoop } from "../internal/eventLoop.js"
import * as InternalOptions from "../internal/options.js"
import { provideBoth } from "../internal/storeLayer.js"
import * as Sweeper from "../internal/sweeper.js"
import * as Telemetry from "../internal/telemetry.js"
import type { SessionConfigError } from "../SessionConfigError.js"
import type {
  CommitMode,
  CommitResult,
  LinkResult,
  OwnerIndex,
  OwnerLink,
  StoredEntry,
  StoredSession
} from "../SessionStore.js"
import { SessionStore, SessionStoreError } from "../SessionStore.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /**
   * The table, optionally schema-qualified (`"auth.sessions"`); the owner index lives beside it in
   * `<table>_owners`. Letters, digits and `_`, not starting with a digit, at most 52 characters
   * per part (so that the longest derived names, `<table>_expiry_idx` and `<table>_owners_idx`,
   * fit every database's identifier limit: 63 characters on PostgreSQL). Used as is: the
   * client's name transforms do not apply. Default `"sessions"`.
   */
  readonly table?: string | undefined
  /**
   * Create the tables (`<table>` and `<table>_owners`) and their indexes on start when missing
   * (`CREATE TABLE IF NOT EXISTS`). Set `false` when your migrations own the schema (see the DDL
   * in the README). Default `true`.
   */
  readonly createTable?: boolean | undefined
  /** How often expired rows are deleted. Default `"5 minutes"`; `0` disables the sweep. */
  readonly cleanupInterval?: Duration.DurationInput | undefined
  /** Rows deleted per statement by the sweep; each batch is its own short statement. Default 1,000. */
  readonly sweepBatchSize?: number | undefined
  /** Rows read per query when enumerating sessions (`all`). Default 1,000. */
  readonly pageSize?: number | undefined
  /**
   * Longest wait for one database call before it fails with a `Timeout` store error (so a hung
   * connection cannot hold a request forever). Default `"10 seconds"`; `0` disables it. What a
   * call that timed out did is unknown: PostgreSQL cancels its statement, but MySQL/MariaDB may
   * still run it once it gets its row lock (a timed-out `take` may still remove the entry).
   */
  readonly timeout?: Duration.DurationInput | undefined
}

/**
 * The SQL store, with a sweep on demand.
 *
 * @since 0.1.0
 * @category models
 */
export interface SqlStore extends SessionStore {
  readonly all: Stream.Stream<StoredSession, SessionStoreError>
  readonly owners: OwnerIndex
  /**
   * Deletes every expired session and every owner-index row past its `until` now, in batches of
   * `sweepBatchSize`; returns how many sessions it deleted.
   */
  readonly sweep: Effect.Effect<number, SessionStoreError>
}

/**
 * The SQL store built by `layer` (and by the `Pg`, `Mysql` and `Sqlite` layers), with its `sweep`.
 *
 * @since 0.2.0
 * @category tags
 */
export const SqlStore: Context.Tag<SqlStore, SqlStore> = Context.GenericTag<SqlStore>("effect-session/SessionStore/Sql")

type Dialect = "pg" | "mysql" | "sqlite"

type Operation = SessionStoreError["operation"]

// The store's keys are the manager's tokens or their SHA-256, both 43 characters of base64url;
// the owner index's handles are random base64url too. Anything else is malformed for this
// backend: never found, never written.
const KEY = /^[A-Za-z0-9_-]{1,128}$/

const IDENTIFIER_PART = /^[A-Za-z_][A-Za-z0-9_]{0,51}$/

const tableParts = (table: string) => {
  const parts = table.split(".")
  return parts.length <= 2 && parts.every((part) => IDENTIFIER_PART.test(part))
    ? Either.right(parts)
    : InternalOptions.invalid(
      "table",
      `must be a name or schema.name of letters, digits and _ (at most 52 each), got ${JSON.stringify(table)}`
    )
}

const field = (value: unknown, name: string): unknown =>
  typeof value === "object" && value !== null && name in value ? (value as Record<string, unknown>)[name] : undefined

interface Row {
  readonly token: string
  readonly data: unknown
  readonly expiry: number | string | bigint
}

const decoder = new TextDecoder()

// Drivers differ: pg returns BIGINT as a string, mysql2 a number, SQLite a number (or bigint
// with safe integers); a binary collation may come back as bytes.
const text = (value: unknown): string =>
  typeof value === "string" ? value : value instanceof Uint8Array ? decoder.decode(value) : String(value)

const affectedRowsOf = (raw: unknown): number | undefined => {
  const affected = field(raw, "affectedRows")
  return typeof affected === "number" ? affected : undefined
}

// The owner id as MySQL/MariaDB's owner table is keyed: SHA-256 of its UTF-8 bytes.
const ownerHash = (owner: string): Uint8Array => createHash("sha256").update(owner).digest()

interface LinkRow {
  readonly handle: unknown
  readonly token: unknown
}

/**
 * Makes a SQL store over the `SqlClient` in context. Creates its tables unless `createTable` is
 * `false`, and starts the expiry sweep, which lives as long as the scope. Fails with
 * `SessionConfigError` for invalid options and with `SessionStoreError` (operation `"open"`) when
 * the tables cannot be created or the dialect is not PostgreSQL, MySQL/MariaDB or SQLite.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  options: Options = {}
): Effect.Effect<SqlStore, SessionStoreError | SessionConfigError, SqlClient.SqlClient | Scope.Scope> =>
  Effect.gen(function*() {
    // The store's SQL is exact: the client's name transforms (camelCase and so on) stay out of it.
    const sql = (yield* SqlClient.SqlClient).withoutTransforms()
    const tableName = options.table ?? "sessions"
    const parts = yield* tableParts(tableName)
    const batchSize = yield* InternalOptions.positiveInteger("sweepBatchSize", options.sweepBatchSize, 1000)
    const pageSize = yield* InternalOptions.positiveInteger("pageSize", options.pageSize, 1000)
    const interval = yield* InternalOptions.duration("cleanupInterval", options.cleanupInterval, "5 minutes", {
      allowZero: true
    })
    const timeout = yield* InternalOptions.duration("timeout", options.timeout, "10 seconds", { allowZero: true })
    const dialect: Dialect | undefined = sql.onDialectOrElse({
      pg: () => "pg",
      mysql: () => "mysql",
      sqlite: () => "sqlite",
      orElse: () => undefined
    })
    if (dialect === undefined) {
      return yield* new SessionStoreError({
        reason: "Unsupported",
        operation: "open",
        detail: "the SQL store supports PostgreSQL, MySQL/MariaDB and SQLite"
      })
    }
    // Spans' and metrics' name for the backend, as `@effect/sql`'s `db.system.name` has it.
    const system = dialect === "pg" ? "postgresql" : dialect

    const table = sql(tableName)
    const owners = sql(`${tableName}_owners`)
    const name = parts[parts.length - 1]
    const schema = parts.length === 2 ? parts[0] : undefined
    // SQLite puts the schema on an index's name and takes its table unqualified.
    const indexName = (index: string) =>
      dialect === "sqlite" && schema !== undefined ? sql(`${schema}.${index}`) : sql(index)
    const batchLimit = sql.literal(String(batchSize))
    const pageLimit = sql.literal(String(pageSize))

    const run = <A>(operation: Operation, effect: Effect.Effect<A, SqlError.SqlError>) =>
      Errors.withTimeout(operation, timeout)(Effect.mapError(effect, Errors.fromSql(operation)))

    // A store call's transaction. One that times out is rolled back in the background: MySQL
    // cannot cancel the statement it is waiting on, so the rollback waits for that statement
    // (up to the server's lock wait timeout), and the caller must not.
    const transaction = <A>(effect: Effect.Effect<A, SqlError.SqlError>) =>
      Effect.disconnect(sql.withTransaction(effect))

    if (options.createTable !== false) {
      const create = dialect === "pg"
        ? sql.withTransaction(
          Effect.all([
            // Instances starting together would race on CREATE TABLE IF NOT EXISTS in PostgreSQL.
            sql`SELECT pg_advisory_xact_lock(hashtext(${`effect-session:${tableName}`}))`,
            sql`CREATE TABLE IF NOT EXISTS ${table} (
              token TEXT NOT NULL PRIMARY KEY,
              data TEXT NOT NULL,
              expiry BIGINT NOT NULL
            )`,
            sql`CREATE INDEX IF NOT EXISTS ${sql(`${name}_expiry_idx`)} ON ${table} (expiry)`,
            sql`CREATE TABLE IF NOT EXISTS ${owners} (
              owner TEXT NOT NULL,
              handle TEXT NOT NULL,
              token TEXT,
              until BIGINT NOT NULL,
              PRIMARY KEY (owner, handle)
            )`,
            sql`CREATE INDEX IF NOT EXISTS ${sql(`${name}_owners_idx`)} ON ${owners} (until)`
          ], { discard: true })
        )
        : dialect === "mysql"
        ? Effect.all([
          sql`CREATE TABLE IF NOT EXISTS ${table} (
            token VARCHAR(128) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
            data LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
            expiry BIGINT NOT NULL,
            PRIMARY KEY (token),
            KEY ${sql(`${name}_expiry_idx`)} (expiry)
          ) ENGINE=InnoDB`,
          sql`CREATE TABLE IF NOT EXISTS ${owners} (
            owner_hash BINARY(32) NOT NULL,
            owner TEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
            handle VARCHAR(128) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
            token VARCHAR(128) CHARACTER SET ascii COLLATE ascii_bin,
            until BIGINT NOT NULL,
            PRIMARY KEY (owner_hash, handle),
            KEY ${sql(`${name}_owners_idx`)} (until)
          ) ENGINE=InnoDB`
        ], { discard: true })
        : Effect.all([
          sql`CREATE TABLE IF NOT EXISTS ${table} (
            token TEXT NOT NULL PRIMARY KEY,
            data TEXT NOT NULL,
            expiry INTEGER NOT NULL
          )`,
          sql`CREATE INDEX IF NOT EXISTS ${indexName(`${name}_expiry_idx`)} ON ${sql(name)} (expiry)`,
          sql`CREATE TABLE IF NOT EXISTS ${owners} (
            owner TEXT NOT NULL,
            handle TEXT NOT NULL,
            token TEXT,
            until INTEGER NOT NULL,
            PRIMARY KEY (owner, handle)
          )`,
          sql`CREATE INDEX IF NOT EXISTS ${indexName(`${name}_owners_idx`)} ON ${sql(`${name}_owners`)} (until)`
        ], { discard: true })
      yield* run("open", create)
    }

    const entryOf = (row: Pick<Row, "data" | "expiry">): StoredEntry => ({
      data: text(row.data),
      expiresAt: Number(row.expiry)
    })

    const find = (key: string): Effect.Effect<Option.Option<StoredEntry>, SessionStoreError> =>
      KEY.test(key)
        ? Effect.flatMap(Clock.currentTimeMillis, (now) =>
          run(
            "find",
            Effect.map(
              sql<Pick<Row, "data" | "expiry">>`SELECT data, expiry FROM ${table}
                WHERE token = ${key} AND expiry > ${now}`,
              (rows) => rows.length === 0 ? Option.none() : Option.some(entryOf(rows[0]))
            )
          ))
        : Effect.succeed(Option.none())

    const create = (key: string, data: string, expiresAt: number) =>
      run(
        "commit",
        dialect === "mysql"
          ? sql`INSERT INTO ${table} (token, data, expiry) VALUES (${key}, ${data}, ${expiresAt})
              ON DUPLICATE KEY UPDATE data = VALUES(data), expiry = VALUES(expiry)`
          : sql`INSERT INTO ${table} (token, data, expiry) VALUES (${key}, ${data}, ${expiresAt})
              ON CONFLICT (token) DO UPDATE SET data = excluded.data, expiry = excluded.expiry`
      ).pipe(Effect.as<CommitResult>("written"))

    // MySQL counts changed rows, not matched ones, unless the client sets CLIENT_FOUND_ROWS
    // (mysql2 does by default): an update that writes what is already there may report 0. Then
    // `unchanged` (a select of the row as the update would have left it) tells that apart from
    // a missing or expired row.
    const mysqlUpdate = (
      operation: Operation,
      statement: Effect.Effect<unknown, SqlError.SqlError>,
      unchanged: Effect.Effect<ReadonlyArray<unknown>, SqlError.SqlError>
    ): Effect.Effect<CommitResult, SessionStoreError> =>
      Effect.gen(function*() {
        const affected = affectedRowsOf(yield* run(operation, statement))
        if (affected !== undefined && affected > 0) return "written" as const
        return (yield* run(operation, unchanged)).length > 0 ? "written" as const : "gone" as const
      })

    // Only a row that is present and unexpired is updated, in one statement: a session deleted
    // or renewed away meanwhile is never re-created.
    const update = (key: string, data: string, expiresAt: number) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) =>
        dialect === "mysql"
          ? mysqlUpdate(
            "commit",
            sql`UPDATE ${table} SET data = ${data}, expiry = ${expiresAt}
              WHERE token = ${key} AND expiry > ${now}`.raw,
            sql`SELECT 1 AS found FROM ${table}
              WHERE token = ${key} AND expiry > ${now} AND expiry = ${expiresAt} AND data = ${data}`
          )
          : Effect.map(
            run(
              "commit",
              sql`UPDATE ${table} SET data = ${data}, expiry = ${expiresAt}
                WHERE token = ${key} AND expiry > ${now} RETURNING token`
            ),
            (rows) => rows.length > 0 ? "written" as const : "gone" as const
          ))

    // The same guard as `update`, on the expiry alone: the payload is never rewritten.
    const touch = (key: string, expiresAt: number): Effect.Effect<CommitResult, SessionStoreError> =>
      KEY.test(key)
        ? Effect.flatMap(Clock.currentTimeMillis, (now) =>
          dialect === "mysql"
            ? mysqlUpdate(
              "touch",
              sql`UPDATE ${table} SET expiry = ${expiresAt} WHERE token = ${key} AND expiry > ${now}`.raw,
              sql`SELECT 1 AS found FROM ${table} WHERE token = ${key} AND expiry > ${now} AND expiry = ${expiresAt}`
            )
            : Effect.map(
              run(
                "touch",
                sql`UPDATE ${table} SET expiry = ${expiresAt} WHERE token = ${key} AND expiry > ${now} RETURNING token`
              ),
              (rows) => rows.length > 0 ? "written" as const : "gone" as const
            ))
        : Effect.succeed("gone")

    // Read-and-delete in one statement where the database has `DELETE … RETURNING` (PostgreSQL,
    // SQLite 3.35+, MariaDB): of concurrent takes the row lock lets one have the row. MySQL has
    // no `RETURNING`: there the row is locked with `SELECT … FOR UPDATE` and deleted in one
    // transaction. MySQL and MariaDB share a dialect, so the server is asked once which it is.
    const takeReturning = (key: string, now: number) =>
      Effect.map(
        sql<Pick<Row, "data" | "expiry">>`DELETE FROM ${table}
          WHERE token = ${key} AND expiry > ${now} RETURNING data, expiry`,
        (rows) => rows.length === 0 ? Option.none() : Option.some(entryOf(rows[0]))
      )
    const takeInTransaction = (key: string, now: number) =>
      transaction(Effect.gen(function*() {
        const rows = yield* sql<Pick<Row, "data" | "expiry">>`SELECT data, expiry FROM ${table}
          WHERE token = ${key} AND expiry > ${now} FOR UPDATE`
        if (rows.length === 0) return Option.none<StoredEntry>()
        yield* sql`DELETE FROM ${table} WHERE token = ${key}`
        return Option.some(entryOf(rows[0]))
      }))
    let isMariaDb: boolean | undefined
    const mariaDb: Effect.Effect<boolean, SqlError.SqlError> = Effect.suspend(() =>
      isMariaDb !== undefined
        ? Effect.succeed(isMariaDb)
        : Effect.map(sql<{ readonly version: unknown }>`SELECT VERSION() AS version`, (rows) => {
          isMariaDb = rows.length > 0 && /mariadb/i.test(text(rows[0].version))
          return isMariaDb
        })
    )

    const take = (key: string): Effect.Effect<Option.Option<StoredEntry>, SessionStoreError> =>
      KEY.test(key)
        ? Effect.flatMap(Clock.currentTimeMillis, (now) =>
          run(
            "take",
            sql.onDialectOrElse({
              mysql: () =>
                Effect.flatMap(
                  mariaDb,
                  (returning) => returning ? takeReturning(key, now) : takeInTransaction(key, now)
                ),
              orElse: () => takeReturning(key, now)
            })
          ))
        : Effect.succeed(Option.none())

    const commit = (
      key: string,
      data: string,
      expiresAt: number,
      mode: CommitMode
    ): Effect.Effect<CommitResult, SessionStoreError> => {
      if (!KEY.test(key)) {
        return mode === "update" ? Effect.succeed("gone") : Effect.fail(
          new SessionStoreError({
            reason: "Unknown",
            operation: "commit",
            detail: "the SQL store takes base64url keys of at most 128 characters"
          })
        )
      }
      return mode === "create" ? create(key, data, expiresAt) : update(key, data, expiresAt)
    }

    const remove = (key: string): Effect.Effect<void, SessionStoreError> =>
      KEY.test(key) ? run("delete", Effect.asVoid(sql`DELETE FROM ${table} WHERE token = ${key}`)) : Effect.void

    // Keyset pagination by token: each page is one short query, whatever the table's size.
    const all: Stream.Stream<StoredSession, SessionStoreError> = Stream.paginateChunkEffect(
      "",
      (after: string) =>
        Effect.flatMap(Clock.currentTimeMillis, (now) =>
          run(
            "all",
            sql<Row>`SELECT token, data, expiry FROM ${table}
              WHERE token > ${after} AND expiry > ${now} ORDER BY token LIMIT ${pageLimit}`
          )).pipe(
            Effect.map((rows) => {
              const page = rows.map((row) => ({
                key: text(row.token),
                data: text(row.data),
                expiresAt: Number(row.expiry)
              }))
              const next = rows.length < pageSize ? Option.none<string>() : Option.some(page[page.length - 1].key)
              return [Chunk.unsafeFromArray(page), next] as const
            })
          )
    )

    // The owner index. On MySQL/MariaDB an owner is matched by its hash (see the module doc).
    const ownerIs = (owner: string): Statement.Fragment =>
      dialect === "mysql" ? sql`owner_hash = ${ownerHash(owner)}` : sql`owner = ${owner}`
    const live = (now: number) => sql`token IS NOT NULL AND until > ${now}`
    // SQLite has no row locks: it writes one transaction at a time.
    const forUpdate = sql.literal(dialect === "sqlite" ? "" : "FOR UPDATE")

    // One upsert that leaves a tombstone alone: a row comes back only when it was written.
    const linkReturning = (owner: string, handle: string, key: string, until: number, now: number) =>
      Effect.map(
        sql`INSERT INTO ${owners} AS existing (owner, handle, token, until)
          VALUES (${owner}, ${handle}, ${key}, ${until})
          ON CONFLICT (owner, handle) DO UPDATE SET token = excluded.token, until = excluded.until
          WHERE existing.token IS NOT NULL OR existing.until <= ${now}
          RETURNING handle`,
        (rows): LinkResult => rows.length > 0 ? "linked" : "revoked"
      )
    // MySQL's upsert reports no row, and its row counts cannot tell "kept the tombstone" from
    // "wrote what was there": the row is read back in the same transaction, under the upsert's
    // row lock. Its assignments run left to right, each seeing the ones before: `token` keeps a
    // live tombstone's NULL, then `until` moves only where `token` took the new key.
    const linkInTransaction = (owner: string, handle: string, key: string, until: number, now: number) =>
      transaction(Effect.gen(function*() {
        yield* sql`INSERT INTO ${owners} (owner_hash, owner, handle, token, until)
          VALUES (${ownerHash(owner)}, ${owner}, ${handle}, ${key}, ${until})
          ON DUPLICATE KEY UPDATE
            token = IF(token IS NULL AND until > ${now}, NULL, VALUES(token)),
            until = IF(token <=> VALUES(token), VALUES(until), until)`
        const rows = yield* sql<Pick<LinkRow, "token">>`SELECT token FROM ${owners}
          WHERE ${ownerIs(owner)} AND handle = ${handle}`
        return rows.length > 0 && rows[0].token !== null && text(rows[0].token) === key ? "linked" : "revoked"
      }))

    // The owner's live rows, locked, then made tombstones (their `until` kept) in one transaction.
    // It starts with a write, dropping the owner's rows past `until`, so that SQLite holds its
    // write lock before it reads: a deferred transaction that read first could fail to write
    // after another process's write.
    const revokeInTransaction = (
      owner: string,
      handles: ReadonlyArray<string> | undefined,
      except: string | undefined,
      now: number
    ) =>
      transaction(Effect.gen(function*() {
        yield* sql`DELETE FROM ${owners} WHERE ${ownerIs(owner)} AND until <= ${now}`
        const revoked = sql.and([
          ownerIs(owner),
          live(now),
          ...(handles === undefined ? [] : [sql.in("handle", handles)]),
          ...(except === undefined ? [] : [sql`handle <> ${except}`])
        ])
        const rows = yield* sql<LinkRow>`SELECT handle, token FROM ${owners} WHERE ${revoked} ${forUpdate}`
        // In pieces, well within every database's limit on bound parameters.
        for (const batch of Arr.chunksOf(rows, 1000)) {
          yield* sql`UPDATE ${owners} SET token = NULL
            WHERE ${ownerIs(owner)} AND ${sql.in("handle", batch.map((row) => text(row.handle)))}`
        }
        return rows.map((row) => text(row.token))
      }))

    const ownerIndex: OwnerIndex = {
      link: (owner, handle, key, until) =>
        KEY.test(handle) && KEY.test(key)
          ? Effect.flatMap(Clock.currentTimeMillis, (now) =>
            run(
              "link",
              dialect === "mysql"
                ? linkInTransaction(owner, handle, key, until, now)
                : linkReturning(owner, handle, key, until, now)
            ))
          : Effect.fail(
            new SessionStoreError({
              reason: "Unknown",
              operation: "link",
              detail: "the SQL store takes base64url handles and keys of at most 128 characters"
            })
          ),
      list: (owner) =>
        Effect.flatMap(Clock.currentTimeMillis, (now) =>
          run(
            "list",
            Effect.map(
              sql<LinkRow>`SELECT handle, token FROM ${owners} WHERE ${ownerIs(owner)} AND ${live(now)}`,
              (rows) => rows.map((row): OwnerLink => ({ handle: text(row.handle), key: text(row.token) }))
            )
          )),
      revoke: (owner, handles, except) => {
        // Handles this store could not have linked are unknown, and so ignored.
        const named = handles === "all" ? undefined : handles.filter((handle) => KEY.test(handle) && handle !== except)
        if (named?.length === 0) return Effect.succeed([])
        return Effect.flatMap(
          Clock.currentTimeMillis,
          (now) => run("revoke", revokeInTransaction(owner, named, except, now))
        )
      },
      unlink: (owner, handle, key) =>
        KEY.test(handle) && KEY.test(key)
          ? run(
            "unlink",
            Effect.asVoid(sql`DELETE FROM ${owners} WHERE ${ownerIs(owner)} AND handle = ${handle} AND token = ${key}`)
          )
          : Effect.void
    }

    // One batch of the sweep: at most `batchSize` rows of `target` (keyed by `keyColumns`) whose
    // `column` is at or before `now`.
    const deletePast = (
      target: Statement.Identifier,
      keyColumns: string,
      column: string,
      now: number
    ): Effect.Effect<number, SqlError.SqlError> => {
      const key = sql.literal(keyColumns)
      const time = sql.literal(column)
      return dialect === "pg"
        ? Effect.map(
          sql`DELETE FROM ${target}
            WHERE (${key}) IN (SELECT ${key} FROM ${target} WHERE ${time} <= ${now} LIMIT ${batchLimit} FOR UPDATE SKIP LOCKED)
            AND ${time} <= ${now} RETURNING 1`,
          (rows) => rows.length
        )
        : dialect === "mysql"
        // MySQL cannot LIMIT a subquery on the table it deletes from; a single-table DELETE can.
        ? Effect.map(
          sql`DELETE FROM ${target} WHERE ${time} <= ${now} LIMIT ${batchLimit}`.raw,
          (raw) => affectedRowsOf(raw) ?? 0
        )
        : Effect.map(
          sql`DELETE FROM ${target}
            WHERE (${key}) IN (SELECT ${key} FROM ${target} WHERE ${time} <= ${now} LIMIT ${batchLimit})
            RETURNING 1`,
          (rows) => rows.length
        )
    }

    // Many short statements, not one long one: no batch holds locks or a transaction for long,
    // and the event loop gets a turn between batches.
    const inBatches = (deleteBatch: (now: number) => Effect.Effect<number, SqlError.SqlError>) =>
      Effect.gen(function*() {
        let total = 0
        while (true) {
          const now = yield* Clock.currentTimeMillis
          const deleted = yield* run("sweep", deleteBatch(now))
          total += deleted
          if (deleted < batchSize) return total
          yield* yieldToEventLoop
        }
      })

    const sweep: Effect.Effect<number, SessionStoreError> = yield* Sweeper.observe(
      system,
      Effect.gen(function*() {
        const sessions = yield* inBatches((now) => deletePast(table, "token", "expiry", now))
        yield* inBatches((now) => deletePast(owners, "owner, handle", "until", now))
        return sessions
      })
    )

    yield* Sweeper.start("SQL store", interval, sweep)

    const store: SqlStore = { find, commit, take, touch, delete: remove, all, owners: ownerIndex, sweep }
    return Telemetry.instrumentStore(system, store)
  })

/**
 * The SQL store as the `SessionStore` and as `SqlStore`, over the application's `SqlClient`:
 *
 * ```ts
 * SqlStore.layer({ table: "sessions" }).pipe(Layer.provide(PgClient.layer({ url })))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options?: Options
): Layer.Layer<SqlStore | SessionStore, SessionStoreError | SessionConfigError, SqlClient.SqlClient> =>
  provideBoth(SqlStore, make(options))
