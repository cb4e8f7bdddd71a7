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
 *   one pooled connection per process, however many requests wait for it. Size the pool for
 *   the number of sessions in use at once plus what the application needs.
 *
 * @since 0.1.0
 */
import * as PgClient from "@effect/sql-pg/PgClient"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import { createHash } from "node:crypto"
import { pollUntil } from "../internal/lock.js"
import * as SessionLock from "../SessionLock.js"

/**
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
  /** Longest pause between two polls. Default `"100 millis"`. */
  readonly maxPollInterval?: Duration.DurationInput | undefined
}

/**
 * The advisory lock id of a key: the first 8 bytes of SHA-256(namespace, key) as a signed
 * 64-bit integer, in decimal.
 *
 * @since 0.1.0
 * @category utils
 */
export const lockId = (namespace: string, key: string): string =>
  createHash("sha256").update(namespace).update("\u0000").update(key).digest().readBigInt64BE(0).toString()

/**
 * Makes the lock over the `PgClient` in context.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  options: Options = {}
): Effect.Effect<SessionLock.SessionLock, never, PgClient.PgClient | Scope.Scope> =>
  Effect.gen(function*() {
    const sql = yield* PgClient.PgClient
    const namespace = options.namespace ?? "effect-session"
    const initialDelayMillis = Math.max(1, Duration.toMillis(Duration.decode(options.pollInterval ?? "5 millis")))
    const maxDelayMillis = Math.max(
      initialDelayMillis,
      Duration.toMillis(Duration.decode(options.maxPollInterval ?? "100 millis"))
    )
    const local = yield* SessionLock.makeInProcess()

    const unavailable = (cause: unknown) =>
      new SessionLock.SessionLockError({
        reason: "Unavailable",
        cause,
        detail: cause instanceof Error ? cause.message : String(cause)
      })

    const acquire: SessionLock.SessionLock["acquire"] = (key, acquireOptions) =>
      Effect.gen(function*() {
        const timeout = SessionLock.timeoutMillis(acquireOptions)
        const deadline = (yield* Clock.currentTimeMillis) + timeout
        yield* local.acquire(key, { timeout })
        // Not interruptible: a connection handed out after an interruption would never return
        // to the pool. The pool's own `connectTimeout` bounds this wait.
        const connection = yield* Effect.uninterruptible(sql.reserve).pipe(Effect.mapError(unavailable))
        const id = lockId(namespace, key)
        const take = connection.executeValues("SELECT pg_try_advisory_lock($1::bigint)", [id]).pipe(
          Effect.map((rows) => rows[0]?.[0] === true),
          Effect.mapError(unavailable)
        )
        const unlock = connection.executeValues("SELECT pg_advisory_unlock($1::bigint)", [id]).pipe(
          Effect.flatMap((rows) =>
            rows[0]?.[0] === true
              ? Effect.void
              : Effect.logWarning("effect-session: a PostgreSQL session lock was not held at its release")
          ),
          Effect.catchAll((error) =>
            Effect.logWarning("effect-session: could not release a PostgreSQL session lock", error)
          )
        )
        yield* Effect.uninterruptibleMask((restore) =>
          restore(
            pollUntil(take, { deadline, timeoutMillis: timeout, initialDelayMillis, maxDelayMillis })
          ).pipe(
            // Added after the reservation's finalizer, so it runs first: unlock, then give the connection back.
            Effect.zipRight(Effect.addFinalizer(() => unlock))
          )
        )
      })

    return { acquire }
  })

/**
 * The PostgreSQL lock as the `SessionLock`, over the `PgClient` the layer is given.
 *
 * ```ts
 * PgLock.layer().pipe(Layer.provide(PgClient.layer({ url: Redacted.make(process.env.DATABASE_URL!) })))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options?: Options): Layer.Layer<SessionLock.SessionLock, never, PgClient.PgClient> =>
  Layer.scoped(SessionLock.SessionLock, make(options))
