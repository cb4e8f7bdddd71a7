/**
 * A `SessionLock` on PostgreSQL advisory locks, through `@effect/sql-pg` (an optional peer
 * dependency), for several server processes sharing one PostgreSQL database.
 *
 * - The lock key is hashed (SHA-256, with a namespace) to a 64-bit advisory lock id.
 * - An advisory lock belongs to a connection: each held lock reserves a connection from the
 *   `PgClient` pool (`sql.reserve`), takes the lock with `pg_try_advisory_lock` on it (polling
 *   with capped exponential backoff until the timeout), and unlocks on that same connection
 *   before returning it to the pool. If the process dies, PostgreSQL drops its connections and
 *   so its locks.
 * - Waiters in one process queue on an in-process mutex first, so one session costs at most
 *   one pooled connection per process, however many requests wait for it.
 * - Every wait counts against the acquire `timeout` and is interruptible: the queue in this
 *   process, the wait for a pooled connection (a connection handed out after the caller gave up
 *   goes straight back to the pool), each query and the pauses between polls.
 *
 * **The pool.** A held lock keeps its connection for the whole request, so locks must not
 * compete with the store's queries for one pool: when they do, requests holding locks can take
 * every connection while the store's `find`/`commit` wait for one. `layer` therefore builds a
 * pool of its own, `maxConnections` 10 by default (pg's own default): at most 10 sessions are
 * locked at once by one process, and more wait (within their timeout) for a connection rather
 * than for the database. Its connections are named `effect-session/SessionLock` in
 * `pg_stat_activity`. Count `maxConnections` per server process against PostgreSQL's
 * `max_connections`. `layerWithClient` uses the `PgClient` in context instead: give it a
 * separate `PgClient.layer` unless you have sized a shared pool for both.
 *
 * @since 0.1.0
 */
import * as PgClient from "@effect/sql-pg/PgClient"
import type * as SqlError from "@effect/sql/SqlError"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Scope from "effect/Scope"
import { createHash } from "node:crypto"
import * as KeyedMutex from "../internal/keyedMutex.js"
import * as InternalLock from "../internal/lock.js"
import * as Options_ from "../internal/options.js"
import * as Redact from "../internal/redact.js"
import * as Telemetry from "../internal/telemetry.js"
import type { SessionConfigError } from "../SessionConfigError.js"
import * as SessionLock from "../SessionLock.js"

/**
 * The options of the PostgreSQL lock. An invalid one fails `make`/`layer` with `SessionConfigError`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /**
   * Mixed into the hash of every key, so that two applications (or a manager per tenant)
   * sharing a database do not contend for each other's ids. Default `"effect-session"`.
   */
  readonly namespace?: string | undefined
  /** First pause between two polls of a waiter; it doubles up to `maxPollInterval`. Default `"5 millis"`. */
  readonly pollInterval?: Duration.DurationInput | undefined
  /** Longest pause between two polls, not shorter than `pollInterval`. Default `"100 millis"`. */
  readonly maxPollInterval?: Duration.DurationInput | undefined
  /**
   * The connection of the lock's own pool (`layer` only): `PgClient` options. Defaults that
   * differ from `PgClient`'s: `maxConnections` 10 (the most sessions this process holds locked
   * at once), `connectTimeout` `"5 seconds"` (also the longest a detached wait for a pooled
   * connection lingers), `applicationName` `"effect-session/SessionLock"`.
   */
  readonly client?: PgClient.PgClientConfig | undefined
}

/**
 * The default size of the pool `layer` builds for the lock.
 *
 * @since 0.2.0
 * @category constants
 */
export const DEFAULT_MAX_CONNECTIONS = 10

/**
 * The advisory lock id of a key: the first 8 bytes of SHA-256(namespace, key) as a signed
 * 64-bit integer, in decimal.
 *
 * @since 0.1.0
 * @category utils
 */
export const lockId = (namespace: string, key: string): string =>
  createHash("sha256").update(namespace).update("\u0000").update(key).digest().readBigInt64BE(0).toString()

// A driver error can quote what it was given: only its scrubbed summary is kept.
const unavailable = (cause: unknown) => {
  const scrubbed = Redact.scrub(cause)
  return new SessionLock.SessionLockError({ reason: "Unavailable", cause: scrubbed, detail: Redact.describe(scrubbed) })
}

// pg-pool's own wait for a free connection ran out: the pool is busy, not the database down.
const fromReserveError = (error: SqlError.SqlError, timeout: Duration.Duration) =>
  /timeout exceeded when trying to connect/i.test(String((error.cause as Error | undefined)?.message))
    ? InternalLock.timeoutError(timeout)
    : unavailable(error)

/**
 * Makes the lock over the `PgClient` in context (see the module notes on the pool).
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  options: Options = {}
): Effect.Effect<SessionLock.SessionLock, SessionConfigError, PgClient.PgClient | Scope.Scope> =>
  Effect.gen(function*() {
    const sql = yield* PgClient.PgClient
    const namespace = options.namespace ?? "effect-session"
    const { initialDelayMillis, maxDelayMillis } = yield* InternalLock.pollIntervals(options)
    const local = yield* KeyedMutex.make()

    const acquire: SessionLock.SessionLock["acquire"] = (key, acquireOptions) =>
      Effect.gen(function*() {
        const timeout = yield* InternalLock.timeoutOf(acquireOptions)
        const deadline = (yield* Clock.currentTimeMillis) + Duration.toMillis(timeout)
        yield* local.acquire(key, { duration: timeout, onTimeout: () => InternalLock.timeoutError(timeout) })
        const id = lockId(namespace, key)
        // The waits are interruptible even when the caller is not (the contract); the rest is not.
        yield* Effect.uninterruptible(
          Effect.gen(function*() {
            const connectionScope = yield* Scope.make()
            const giveBack = Scope.close(connectionScope, Exit.void)
            // Detached: a connection handed out after the caller stopped waiting goes straight back.
            const reserving = yield* Effect.forkDaemon(
              Effect.uninterruptible(Scope.extend(sql.reserve, connectionScope))
            )
            const connection = yield* Effect.interruptible(
              InternalLock.withinDeadline(Fiber.join(reserving), deadline, timeout)
            ).pipe(
              Effect.catchTag("SqlError", (error) => Effect.fail(fromReserveError(error, timeout))),
              Effect.onError(() => Effect.forkDaemon(Effect.zipRight(Fiber.await(reserving), giveBack)))
            )
            const take = connection.executeValues("SELECT pg_try_advisory_lock($1::bigint)", [id]).pipe(
              Effect.map((rows) => rows[0]?.[0] === true),
              Effect.mapError(unavailable)
            )
            const unlock = connection.executeValues("SELECT pg_advisory_unlock($1::bigint)", [id])
            const unlockHeld = unlock.pipe(
              Effect.flatMap((rows) =>
                rows[0]?.[0] === true
                  ? Effect.void
                  : Effect.logWarning("effect-session: a PostgreSQL session lock was not held at its release")
              ),
              Effect.catchAll((error) =>
                Effect.logWarning("effect-session: could not release a PostgreSQL session lock", unavailable(error))
              )
            )
            yield* Effect.interruptible(
              InternalLock.pollUntil(take, { deadline, timeout, initialDelayMillis, maxDelayMillis })
            ).pipe(
              // An attempt still in flight may yet take it: unlock after it (queries on one
              // connection run in order), then give the connection back.
              Effect.onError(() => Effect.forkDaemon(Effect.ensuring(Effect.ignore(unlock), giveBack))),
              Effect.zipRight(Effect.addFinalizer(() => Effect.ensuring(unlockHeld, giveBack)))
            )
          })
        )
      })

    return Telemetry.instrumentLock("postgresql", { acquire })
  })

/**
 * The PostgreSQL lock as the `SessionLock`, over the `PgClient` in context. Give it a pool of its
 * own (not the store's) unless that pool is sized for both:
 *
 * ```ts
 * PgLock.layerWithClient().pipe(Layer.provide(PgClient.layer({ url, maxConnections: 10 })))
 * ```
 *
 * @since 0.2.0
 * @category layers
 */
export const layerWithClient = (
  options?: Options
): Layer.Layer<SessionLock.SessionLock, SessionConfigError, PgClient.PgClient> =>
  Layer.scoped(SessionLock.SessionLock, make(options))

/**
 * The PostgreSQL lock as the `SessionLock`, with a pool of its own (`options.client`, 10
 * connections by default), closed with the layer. Fails with `Unavailable` when the database
 * cannot be reached at start.
 *
 * ```ts
 * PgLock.layer({ client: { url: Redacted.make(process.env.DATABASE_URL!), maxConnections: 10 } })
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options: Options = {}
): Layer.Layer<SessionLock.SessionLock, SessionLock.SessionLockError | SessionConfigError> =>
  Layer.unwrapEffect(Effect.gen(function*() {
    const client = options.client ?? {}
    const maxConnections = yield* Options_.positiveInteger(
      "client.maxConnections",
      client.maxConnections,
      DEFAULT_MAX_CONNECTIONS
    )
    const connectTimeout = yield* Options_.duration("client.connectTimeout", client.connectTimeout, "5 seconds")
    // The lock's own options too, before the pool connects: invalid ones fail as such, not as Unavailable.
    yield* InternalLock.pollIntervals(options)
    const pool = PgClient.layer({
      ...client,
      maxConnections,
      connectTimeout,
      applicationName: client.applicationName ?? "effect-session/SessionLock"
    }).pipe(Layer.mapError(unavailable))
    return Layer.provide(layerWithClient(options), pool)
  }))
