/**
 * The SQLite store, ready to use: the SQL store (`SessionStore/Sql`) over its own
 * `@effect/sql-sqlite-node` (better-sqlite3) database. Needs the optional peer dependency
 * `@effect/sql-sqlite-node`.
 *
 * ```ts
 * import * as SqliteStore from "effect-session/SessionStore/Sqlite"
 *
 * const StoreLive = SqliteStore.layer({ client: { filename: "sessions.db" } })
 * ```
 *
 * The client holds a single connection, so `filename: ":memory:"` gives one in-memory database
 * for the layer's lifetime (each layer its own; it is gone when the layer is released).
 *
 * @since 0.1.0
 */
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import * as Cause from "effect/Cause"
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redact from "../internal/redact.js"
import type { SessionConfigError } from "../SessionConfigError.js"
import type { SessionStore } from "../SessionStore.js"
import { SessionStoreError } from "../SessionStore.js"
import * as SqlStore from "./Sql.js"

/**
 * The store's options and, under `client`, the database (`filename`, a path or `":memory:"`;
 * `disableWAL`, `readonly`: see `@effect/sql-sqlite-node`'s `SqliteClientConfig`).
 *
 * @since 0.1.0
 * @category models
 */
export interface Options extends SqlStore.Options {
  readonly client: SqliteClient.SqliteClientConfig
}

/**
 * A `SessionStore` (and `SqlStore.SqlStore`) on a SQLite database file (or `:memory:`), opened
 * with the layer and closed with it. The client's `SqlClient` stays inside the layer. Fails with a `SessionStoreError`
 * (operation `"open"`) when the file cannot be opened.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options: Options
): Layer.Layer<SqlStore.SqlStore | SessionStore, SessionStoreError | SessionConfigError> => {
  const { client, ...storeOptions } = options
  // better-sqlite3 throws when the file cannot be opened; the client lets that through as a defect.
  const database = Layer.catchAllCause(SqliteClient.layer(client), (cause) =>
    Layer.fail(
      new SessionStoreError({
        reason: "Unavailable",
        operation: "open",
        cause: Redact.scrub(Cause.squash(cause)),
        detail: `could not open the SQLite database ${JSON.stringify(client.filename)}`
      })
    ))
  return SqlStore.layer(storeOptions).pipe(Layer.provide(database))
}

/**
 * Like `layer`, with the options read from `Config` (environment variables by default):
 *
 * ```ts
 * SqliteStore.layerConfig({ client: { filename: Config.string("SESSION_DB").pipe(Config.withDefault("sessions.db")) } })
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (
  options: Config.Config.Wrap<Options>
): Layer.Layer<SqlStore.SqlStore | SessionStore, SessionStoreError | SessionConfigError | ConfigError.ConfigError> =>
  Layer.unwrapEffect(Effect.map(Config.unwrap(options), layer))
