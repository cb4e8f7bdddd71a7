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
 * - Every wait counts against the acquire `timeout` and is interruptible: the queue in this
 *   process, each command (a command cannot outlive the wait) and the pauses between polls.
 *   While the client is not connected, `acquire` fails at once with `Unavailable` instead of
 *   queueing commands until Redis is back.
 * - The lock has a client of its own by default (`layer`, created with the store's fail-fast
 *   settings); `layerWithClient` shares one you own, for example the store's.
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import type * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import type { Cluster, Redis, RedisOptions } from "ioredis"
import { randomBytes } from "node:crypto"
import * as KeyedMutex from "../internal/keyedMutex.js"
import * as InternalLock from "../internal/lock.js"
import * as Options_ from "../internal/options.js"
import * as Redact from "../internal/redact.js"
import * as InternalRedis from "../internal/redis.js"
import * as Telemetry from "../internal/telemetry.js"
import type { SessionConfigError } from "../SessionConfigError.js"
import * as SessionLock from "../SessionLock.js"

/**
 * The options of the Redis lock. An invalid one fails `make`/`layer` with `SessionConfigError`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** Prepended to every lock key. Default `"session-lock:"`. */
  readonly prefix?: string | undefined
  /**
   * How long a lock lives without being extended: how long a crashed holder can block a
   * session. Extended every third of it while held. At least 1 millisecond. Default `"10 seconds"`.
   */
  readonly lease?: Duration.DurationInput | undefined
  /** First pause between two polls of a waiter; it doubles up to `maxPollInterval`. Default `"5 millis"`. */
  readonly pollInterval?: Duration.DurationInput | undefined
  /** Longest pause between two polls, not shorter than `pollInterval`. Default `"100 millis"`. */
  readonly maxPollInterval?: Duration.DurationInput | undefined
  /** How long building the lock waits for the connection. Default `"10 seconds"`. */
  readonly openTimeout?: Duration.DurationInput | undefined
  /**
   * ioredis options for a client the lock creates and closes (merged over the store's
   * fail-fast defaults), or a function that creates one (for example a `Cluster`) that the lock
   * then owns. Default: `localhost:6379`. Not used by `makeWithClient`/`layerWithClient`.
   */
  readonly client?: RedisOptions | (() => Redis | Cluster) | undefined
  /** A `redis://` / `rediss://` URL, used with `client` options when given. Not used by `makeWithClient`. */
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

// The command's arguments (the lock key holds the store key) never leave the driver error.
const unavailable = (cause: unknown) => {
  const scrubbed = Redact.scrub(cause)
  return new SessionLock.SessionLockError({ reason: "Unavailable", cause: scrubbed, detail: Redact.describe(scrubbed) })
}

const resolveOptions = (options: Options) =>
  Either.gen(function*() {
    const lease = yield* Options_.duration("lease", options.lease, "10 seconds")
    const leaseMillis = Math.round(Duration.toMillis(lease))
    if (leaseMillis < 1) return yield* Options_.invalid("lease", "must be at least 1 millisecond")
    const openTimeout = yield* Options_.duration("openTimeout", options.openTimeout, "10 seconds")
    const poll = yield* InternalLock.pollIntervals(options)
    return { prefix: options.prefix ?? "session-lock:", leaseMillis, openTimeout, ...poll }
  })

/**
 * Makes the lock on a client the caller owns (never closed by the lock). Create the client
 * with `failFastOptions` from `effect-session/SessionStore/Redis` so that commands fail while
 * Redis is down instead of queueing. The same client can serve the store and the lock.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeWithClient = (
  client: Redis | Cluster,
  options: Options = {}
): Effect.Effect<SessionLock.SessionLock, SessionLock.SessionLockError | SessionConfigError, Scope.Scope> =>
  Effect.gen(function*() {
    const { initialDelayMillis, leaseMillis, maxDelayMillis, openTimeout, prefix } = yield* resolveOptions(options)

    yield* InternalRedis.logConnectionEvents(client, "the Redis session lock")
    yield* InternalRedis.awaitReady(client, openTimeout).pipe(
      Effect.mapError(({ cause }) => unavailable(cause))
    )
    if (!("effectSessionLockRelease" in client)) {
      client.defineCommand("effectSessionLockRelease", { numberOfKeys: 1, lua: RELEASE_SCRIPT })
      client.defineCommand("effectSessionLockRenew", { numberOfKeys: 1, lua: RENEW_SCRIPT })
    }
    const scripts = client as unknown as ScriptCommands
    const local = yield* KeyedMutex.make()

    const run = <A>(evaluate: () => Promise<A>) =>
      Effect.tryPromise({
        try: evaluate,
        catch: unavailable
      })

    // Not connected: fail now rather than queue a command until Redis is back.
    const connected = Effect.suspend(() =>
      client.status === "ready"
        ? Effect.void
        : Effect.fail(
          new SessionLock.SessionLockError({ reason: "Unavailable", detail: `Redis connection is ${client.status}` })
        )
    )

    // Bounded by the lease: after it, the lock has expired anyway.
    const release = (lockKey: string, owner: string) =>
      run(() => scripts.effectSessionLockRelease(lockKey, owner)).pipe(
        Effect.timeoutFail({
          duration: leaseMillis,
          onTimeout: () => new SessionLock.SessionLockError({ reason: "Timeout", detail: "release not answered" })
        }),
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
        const timeout = yield* InternalLock.timeoutOf(acquireOptions)
        const deadline = (yield* Clock.currentTimeMillis) + Duration.toMillis(timeout)
        yield* connected
        yield* local.acquire(key, { duration: timeout, onTimeout: () => InternalLock.timeoutError(timeout) })
        const lockKey = prefix + key
        const owner = randomBytes(16).toString("base64url")
        const take = Effect.zipRight(
          connected,
          Effect.map(run(() => client.set(lockKey, owner, "PX", leaseMillis, "NX")), (reply) => reply === "OK")
        )
        // The wait is interruptible even when the caller is not (the contract); the rest is not.
        yield* Effect.uninterruptible(
          Effect.interruptible(pollUntil(take, deadline, timeout)).pipe(
            // A SET whose reply was lost or not awaited may still have taken it; the release is
            // sent after it on the same connection, so it runs after it.
            Effect.onError(() => Effect.forkDaemon(release(lockKey, owner))),
            Effect.zipRight(Effect.addFinalizer(() => release(lockKey, owner)))
          )
        )
        // Added after the release, so it is stopped before the release runs.
        yield* Effect.forkScoped(Effect.interruptible(keepAlive(lockKey, owner)))
      })

    const pollUntil = (
      take: Effect.Effect<boolean, SessionLock.SessionLockError>,
      deadline: number,
      timeout: Duration.Duration
    ) => InternalLock.pollUntil(take, { deadline, timeout, initialDelayMillis, maxDelayMillis })

    return Telemetry.instrumentLock("redis", { acquire })
  })

/**
 * Makes the lock with a client of its own, closed when the scope closes.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  options: Options = {}
): Effect.Effect<SessionLock.SessionLock, SessionLock.SessionLockError | SessionConfigError, Scope.Scope> =>
  // Invalid options fail before a connection is tried: a typed SessionConfigError, not Unavailable.
  Effect.zipRight(
    resolveOptions(options),
    Effect.flatMap(
      InternalRedis.acquireClient(options.client, options.url),
      (client) => makeWithClient(client, options)
    )
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
export const layer = (
  options?: Options
): Layer.Layer<SessionLock.SessionLock, SessionLock.SessionLockError | SessionConfigError> =>
  Layer.scoped(SessionLock.SessionLock, make(options))

/**
 * The Redis lock on a client you own (not closed with the layer).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerWithClient = (
  client: Redis | Cluster,
  options?: Options
): Layer.Layer<SessionLock.SessionLock, SessionLock.SessionLockError | SessionConfigError> =>
  Layer.scoped(SessionLock.SessionLock, makeWithClient(client, options))
