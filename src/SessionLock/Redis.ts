/**
 * A `SessionLock` in Redis, on `ioredis` (an optional peer dependency), for several server
 * processes sharing one Redis (standalone, Sentinel or Cluster: one key per lock).
 *
 * - Taking the lock is `SET <prefix><key> <owner> NX PX <lease>`, where `owner` is a random
 *   value of this holder; a waiter polls with capped exponential backoff until its timeout.
 * - Only the owner releases it: a Lua script deletes the key only if it still holds `owner`,
 *   so a holder whose lease ran out can never delete the lock someone else took since.
 * - While the lock is held, a fiber extends the lease every third of it (again only if the key
 *   still holds `owner`), so a long request keeps its lock; a holder that crashes stops
 *   extending it and the lock frees itself at most one lease later.
 * - Waiters in one process queue on an in-process mutex first, so only one of them per
 *   session polls Redis.
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import type { Cluster, Redis, RedisOptions } from "ioredis"
import { randomBytes } from "node:crypto"
import { pollUntil } from "../internal/lock.js"
import * as InternalRedis from "../internal/redis.js"
import * as SessionLock from "../SessionLock.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface LockOptions {
  /** Prepended to every lock key. Default `"session-lock:"`. */
  readonly prefix?: string | undefined
  /**
   * How long a lock lives without being extended: how long a crashed holder can block a
   * session. Extended every third of it while held. Default `"10 seconds"`.
   */
  readonly lease?: Duration.DurationInput | undefined
  /** First pause between two polls of a waiter; it doubles up to `maxPollInterval`. Default `"5 millis"`. */
  readonly pollInterval?: Duration.DurationInput | undefined
  /** Longest pause between two polls. Default `"100 millis"`. */
  readonly maxPollInterval?: Duration.DurationInput | undefined
  /** How long building the lock waits for the connection. Default `"10 seconds"`. */
  readonly openTimeout?: Duration.DurationInput | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Options extends LockOptions {
  /**
   * ioredis options for a client the lock creates and closes (merged over the store's
   * fail-fast defaults), or a function that creates one (for example a `Cluster`) that the lock
   * then owns. Default: `localhost:6379`.
   */
  readonly client?: RedisOptions | (() => Redis | Cluster) | undefined
  /** A `redis://` / `rediss://` URL, used with `client` options when given. */
  readonly url?: string | Redacted.Redacted<string> | undefined
}

const RELEASE_SCRIPT = `
if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) end
return 0
`

const RENEW_SCRIPT = `
if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("PEXPIRE", KEYS[1], ARGV[2]) end
return 0
`

interface ScriptCommands {
  effectSessionLockRelease(key: string, owner: string): Promise<number>
  effectSessionLockRenew(key: string, owner: string, leaseMillis: number): Promise<number>
}

/**
 * Makes the lock on a client the caller owns (never closed by the lock). Create the client
 * with `failFastOptions` from `effect-session/SessionStore/Redis` so that waits end while Redis
 * is down. The same client can serve the store and the lock.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeWithClient = (
  client: Redis | Cluster,
  options: LockOptions = {}
): Effect.Effect<SessionLock.SessionLock, SessionLock.SessionLockError, Scope.Scope> =>
  Effect.gen(function*() {
    const prefix = options.prefix ?? "session-lock:"
    const leaseMillis = Math.max(1, Math.round(Duration.toMillis(Duration.decode(options.lease ?? "10 seconds"))))
    const initialDelayMillis = Math.max(1, Duration.toMillis(Duration.decode(options.pollInterval ?? "5 millis")))
    const maxDelayMillis = Math.max(
      initialDelayMillis,
      Duration.toMillis(Duration.decode(options.maxPollInterval ?? "100 millis"))
    )

    yield* InternalRedis.logConnectionEvents(client, "the Redis session lock")
    yield* InternalRedis.awaitReady(client, options.openTimeout ?? "10 seconds").pipe(
      Effect.mapError(({ cause }) =>
        new SessionLock.SessionLockError({ reason: "Unavailable", cause, detail: InternalRedis.describe(cause) })
      )
    )
    if (!("effectSessionLockRelease" in client)) {
      client.defineCommand("effectSessionLockRelease", { numberOfKeys: 1, lua: RELEASE_SCRIPT })
      client.defineCommand("effectSessionLockRenew", { numberOfKeys: 1, lua: RENEW_SCRIPT })
    }
    const scripts = client as unknown as ScriptCommands
    const local = yield* SessionLock.makeInProcess()

    const run = <A>(evaluate: () => Promise<A>) =>
      Effect.tryPromise({
        try: evaluate,
        catch: (cause) =>
          new SessionLock.SessionLockError({
            reason: "Unavailable",
            cause,
            detail: InternalRedis.describe(cause)
          })
      })

    const release = (lockKey: string, owner: string) =>
      run(() => scripts.effectSessionLockRelease(lockKey, owner)).pipe(
        Effect.catchAll((error) =>
          Effect.logWarning("effect-session: could not release a Redis session lock; it ends with its lease", error)
        ),
        Effect.asVoid
      )

    const keepAlive = (lockKey: string, owner: string): Effect.Effect<void> =>
      Effect.gen(function*() {
        while (true) {
          yield* Effect.sleep(Math.max(1, Math.floor(leaseMillis / 3)))
          const renewed = yield* Effect.either(run(() => scripts.effectSessionLockRenew(lockKey, owner, leaseMillis)))
          if (Either.isLeft(renewed)) {
            yield* Effect.logWarning("effect-session: could not extend a Redis session lock; retrying", renewed.left)
          } else if (renewed.right === 0) {
            // The lease ran out (a pause longer than the lease) and someone else may hold it now.
            return yield* Effect.logWarning("effect-session: a Redis session lock was lost before its release")
          }
        }
      })

    const acquire: SessionLock.SessionLock["acquire"] = (key, acquireOptions) =>
      Effect.gen(function*() {
        const timeout = SessionLock.timeoutMillis(acquireOptions)
        const deadline = (yield* Clock.currentTimeMillis) + timeout
        yield* local.acquire(key, { timeout })
        const lockKey = prefix + key
        const owner = randomBytes(16).toString("base64url")
        const take = Effect.map(
          run(() => client.set(lockKey, owner, "PX", leaseMillis, "NX")),
          (reply) => reply === "OK"
        )
        yield* Effect.uninterruptibleMask((restore) =>
          restore(
            pollUntil(take, { deadline, timeoutMillis: timeout, initialDelayMillis, maxDelayMillis })
          ).pipe(
            // A SET whose reply was lost (timeout, dropped connection) may still have taken it.
            Effect.onError(() => release(lockKey, owner)),
            Effect.zipRight(Effect.addFinalizer(() => release(lockKey, owner)))
          )
        )
        // Added after the release, so it is stopped before the release runs.
        yield* Effect.forkScoped(Effect.interruptible(keepAlive(lockKey, owner)))
      })

    return { acquire }
  })

/**
 * Makes the lock with a client of its own, closed when the scope closes.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  options: Options = {}
): Effect.Effect<SessionLock.SessionLock, SessionLock.SessionLockError, Scope.Scope> =>
  Effect.flatMap(
    InternalRedis.acquireClient(options.client, options.url),
    (client) => makeWithClient(client, options)
  )

/**
 * The Redis lock as the `SessionLock`, with a client of its own.
 *
 * ```ts
 * RedisLock.layer({ client: { host: "127.0.0.1", port: 6379 }, lease: "10 seconds" })
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options?: Options): Layer.Layer<SessionLock.SessionLock, SessionLock.SessionLockError> =>
  Layer.scoped(SessionLock.SessionLock, make(options))

/**
 * The Redis lock on a client you own (not closed with the layer).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerWithClient = (
  client: Redis | Cluster,
  options?: LockOptions
): Layer.Layer<SessionLock.SessionLock, SessionLock.SessionLockError> =>
  Layer.scoped(SessionLock.SessionLock, makeWithClient(client, options))
