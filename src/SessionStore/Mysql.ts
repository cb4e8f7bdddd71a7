/**
 * The MySQL / MariaDB store, ready to use: the SQL store (`SessionStore/Sql`) over its own
 * `@effect/sql-mysql2` connection pool. Needs the optional peer dependency `@effect/sql-mysql2`.
 *
 * ```ts
 * import * as MysqlStore from "effect-session/SessionStore/Mysql"
 *
 * const StoreLive = MysqlStore.layerConfig({ client: { url: Config.redacted("DATABASE_URL") } })
 * ```
 *
 * To share the application's own `MysqlClient` instead, use `SessionStore/Sql`'s `layer` and
 * provide the client to it.
 *
 * @since 0.1.0
 */
import * as MysqlClient from "@effect/sql-mysql2/MysqlClient"
import { SqlError } from "@effect/sql/SqlError"
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Errors from "../internal/errors.js"
import * as Redact from "../internal/redact.js"
import type { SessionConfigError } from "../SessionConfigError.js"
import type { SessionStore } from "../SessionStore.js"
import { SessionStoreError } from "../SessionStore.js"
import * as SqlStore from "./Sql.js"

/**
 * The store's options and, under `client`, the connection (`url`, or `host`, `port`,
 * `database`, `username`, `password` as `Redacted`, `maxConnections`, `poolConfig`: see
 * `@effect/sql-mysql2`'s `MysqlClientConfig`).
 *
 * @since 0.1.0
 * @category models
 */
export interface Options extends SqlStore.Options {
  readonly client: MysqlClient.MysqlClientConfig
}

/**
 * A `SessionStore` (and `SqlStore.SqlStore`) on MySQL or MariaDB with its own connection pool,
 * closed with the layer. The pool's `SqlClient` stays inside the layer. Fails with a `SessionStoreError` (operation
 * `"open"`) when the database cannot be reached at start; later outages fail single calls, and
 * the pool reconnects by itself once the database is back.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options: Options
): Layer.Layer<SqlStore.SqlStore | SessionStore, SessionStoreError | SessionConfigError> => {
  const { client, ...storeOptions } = options
  return SqlStore.layer(storeOptions).pipe(
    Layer.provide(Layer.mapError(MysqlClient.layer(client), (error) =>
      error instanceof SqlError
        ? Errors.fromSql("open")(error)
        : new SessionStoreError({
          reason: "Unknown",
          operation: "open",
          cause: Redact.scrub(error),
          detail: Redact.describe(Redact.scrub(error))
        })))
  )
}

/**
 * Like `layer`, with the options read from `Config` (environment variables by default):
 *
 * ```ts
 * MysqlStore.layerConfig({
 *   client: {
 *     host: Config.string("MYSQL_HOST"),
 *     database: Config.string("MYSQL_DATABASE"),
 *     username: Config.string("MYSQL_USER"),
 *     password: Config.redacted("MYSQL_PASSWORD")
 *   }
 * })
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (
  options: Config.Config.Wrap<Options>
): Layer.Layer<SqlStore.SqlStore | SessionStore, SessionStoreError | SessionConfigError | ConfigError.ConfigError> =>
  Layer.unwrapEffect(Effect.map(Config.unwrap(options), layer))
