/**
 * The PostgreSQL store, ready to use: the SQL store (`SessionStore/Sql`) over its own
 * `@effect/sql-pg` connection pool. Needs the optional peer dependency `@effect/sql-pg`.
 *
 * ```ts
 * import * as PgStore from "effect-session/SessionStore/Pg"
 *
 * const StoreLive = PgStore.layerConfig({ client: { url: Config.redacted("DATABASE_URL") } })
 * ```
 *
 * To share the application's own `PgClient` instead, use `SessionStore/Sql`'s `layer` and
 * provide the client to it.
 *
 * @since 0.1.0
 */
import * as PgClient from "@effect/sql-pg/PgClient"
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Errors from "../internal/errors.js"
import type { SessionConfigError } from "../SessionConfigError.js"
import type { SessionStore, SessionStoreError } from "../SessionStore.js"
import * as SqlStore from "./Sql.js"

/**
 * The store's options and, under `client`, the connection (`url`, or `host`, `port`,
 * `database`, `username`, `password` as `Redacted`, pool sizes and timeouts: see
 * `@effect/sql-pg`'s `PgClientConfig`).
 *
 * @since 0.1.0
 * @category models
 */
export interface Options extends SqlStore.Options {
  readonly client: PgClient.PgClientConfig
}

/**
 * A `SessionStore` (and `SqlStore.SqlStore`) on PostgreSQL with its own connection pool, closed
 * with the layer. The pool's `SqlClient` stays inside the layer. Fails with a `SessionStoreError` (operation `"open"`) when
 * the database cannot be reached at start; later outages fail single calls, and the pool
 * reconnects by itself once the database is back.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options: Options
): Layer.Layer<SqlStore.SqlStore | SessionStore, SessionStoreError | SessionConfigError> => {
  const { client, ...storeOptions } = options
  return SqlStore.layer(storeOptions).pipe(
    Layer.provide(Layer.mapError(PgClient.layer(client), Errors.fromSql("open")))
  )
}

/**
 * Like `layer`, with the options read from `Config` (environment variables by default):
 *
 * ```ts
 * PgStore.layerConfig({
 *   client: { url: Config.redacted("DATABASE_URL") },
 *   table: Config.string("SESSION_TABLE").pipe(Config.withDefault("sessions"))
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
