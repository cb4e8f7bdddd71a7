/**
 * The Redis store, on `ioredis` (an optional peer dependency: install it to use this module).
 * Works with a standalone server, with Sentinel (ioredis's `sentinels` + `name` options) and
 * with Redis Cluster (one key per session, every command on one key).
 *
 * Each session is one Redis string, `<prefix><key>`, holding `<expiresAt>:<payload>` and
 * carrying the same expiry as its TTL: Redis drops expired sessions by itself, so this store
 * needs no sweep. The expiry kept in the value is what `find` and updates check against
 * `Clock`, so an entry is never returned at or after its expiry even if Redis has not dropped
 * it yet (clocks of app servers and Redis may differ by a little).
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type { Cluster, Redis, RedisOptions } from "ioredis"
import * as InternalRedis from "../internal/redis.js"
import type * as SessionStore from "../SessionStore.js"
import { SessionStore as SessionStoreTag, SessionStoreError } from "../SessionStore.js"

/**
 * The options that do not depend on how the client is made.
 *
 * @since 0.1.0
 * @category models
 */
export interface StoreOptions {
  /** Prepended to every store key. Default `"session:"`. */
  readonly prefix?: string | undefined
  /** The `COUNT` hint of each `SCAN` step while enumerating. Default `100`. */
  readonly scanCount?: number | undefined
  /** How long building the store waits for the connection. Default `"10 seconds"`. */
  readonly openTimeout?: Duration.DurationInput | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Options extends StoreOptions {
  /**
   * ioredis options for a client the store creates and closes (host, port, password, db, tls,
   * `sentinels` + `name` for Sentinel, ...), merged over `failFastOptions`; or a function that
   * creates the client (for example a `new Cluster(...)`), which the store then owns and closes.
   * Default: `localhost:6379`.
   */
  readonly client?: RedisOptions | (() => Redis | Cluster) | undefined
  /** A `redis://` / `rediss://` URL, used with `client` options when given. */
  readonly url?: string | Redacted.Redacted<string> | undefined
}

/**
 * What the store sets on a client it creates, unless overridden in `client`: commands fail at
 * once with `SessionStoreError` (`Unavailable`) while Redis is down instead of queueing until it
 * is back (`enableOfflineQueue: false`), an interrupted command is retried once after a
 * reconnect (`maxRetriesPerRequest: 1`), and none waits more than five seconds
 * (`commandTimeout: 5000`, then `Timeout`). The client reconnects by itself when Redis is back.
 * Spread it into a client you make yourself.
 *
 * @since 0.1.0
 * @category constants
 */
export const failFastOptions: RedisOptions = InternalRedis.failFastOptions

/**
 * `failFastOptions` for a `Cluster` client: `new Cluster(nodes, failFastClusterOptions)`.
 *
 * @since 0.1.0
 * @category constants
 */
export const failFastClusterOptions = InternalRedis.failFastClusterOptions

const UPDATE_SCRIPT = `
local current = redis.call("GET", KEYS[1])
if not current then return 0 end
local separator = string.find(current, ":", 1, true)
if not separator then return 0 end
local expiresAt = tonumber(string.sub(current, 1, separator - 1))
if not expiresAt or expiresAt <= tonumber(ARGV[2]) then return 0 end
if tonumber(ARGV[3]) <= 0 then
  redis.call("DEL", KEYS[1])
else
  redis.call("SET", KEYS[1], ARGV[1], "PX", ARGV[3], "XX")
end
return 1
`

interface ScriptCommands {
  effectSessionUpdate(key: string, value: string, now: number, ttl: number): Promise<number>
}

const ENTRY = /^(\d{1,16}):/

const parseEntry = (raw: string | null): { readonly data: string; readonly expiresAt: number } | undefined => {
  if (raw === null) return undefined
  const match = ENTRY.exec(raw)
  if (match === null) return undefined
  return { expiresAt: Number(match[1]), data: raw.slice(match[0].length) }
}

/**
 * Makes a store on a client the caller owns: the store defines one Lua command on it
 * (`effectSessionUpdate`) and never closes it. For commands to fail fast while Redis is down,
 * create the client with `failFastOptions` (or `failFastClusterOptions`).
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeWithClient = (
  client: Redis | Cluster,
  options: StoreOptions = {}
): Effect.Effect<SessionStore.SessionStore, SessionStoreError, Scope.Scope> =>
  Effect.gen(function*() {
    const prefix = options.prefix ?? "session:"
    const scanCount = Math.max(1, options.scanCount ?? 100)
    const keyPrefix = InternalRedis.clientKeyPrefix(client)
    const pattern = `${InternalRedis.escapeGlob(keyPrefix + prefix)}*`
    const cluster = InternalRedis.isCluster(client)

    yield* InternalRedis.logConnectionEvents(client, "the Redis session store")
    yield* InternalRedis.awaitReady(client, options.openTimeout ?? "10 seconds").pipe(
      Effect.mapError(({ cause, reason }) =>
        new SessionStoreError({ reason, operation: "open", cause, detail: InternalRedis.describe(cause) })
      )
    )
    if (!("effectSessionUpdate" in client)) {
      client.defineCommand("effectSessionUpdate", { numberOfKeys: 1, lua: UPDATE_SCRIPT })
    }
    const scripts = client as unknown as ScriptCommands

    const run = <A>(operation: SessionStoreError["operation"], evaluate: () => Promise<A>) =>
      Effect.tryPromise({
        try: evaluate,
        catch: (cause) =>
          new SessionStoreError({
            reason: InternalRedis.reasonOf(cause),
            operation,
            cause,
            detail: InternalRedis.describe(cause)
          })
      })

    const find: SessionStore.SessionStore["find"] = (key) =>
      Effect.flatMap(run("find", () => client.get(prefix + key)), (raw) =>
        Effect.map(Clock.currentTimeMillis, (now) => {
          const entry = parseEntry(raw)
          return entry === undefined || entry.expiresAt <= now ? Option.none() : Option.some(entry.data)
        }))

    const commit: SessionStore.SessionStore["commit"] = (key, data, expiresAt, mode) =>
      Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        const ttl = Math.ceil(expiresAt - now)
        const value = `${Math.trunc(expiresAt)}:${data}`
        if (mode === "update") {
          // Atomic: the entry must still exist and be unexpired by our clock, or nothing is written.
          const written = yield* run("commit", () => scripts.effectSessionUpdate(prefix + key, value, now, ttl))
          return written === 1 ? "written" : "gone"
        }
        if (ttl <= 0) {
          yield* run("commit", () => client.del(prefix + key))
        } else {
          yield* run("commit", () => client.set(prefix + key, value, "PX", ttl))
        }
        return "written"
      })

    const del: SessionStore.SessionStore["delete"] = (key) =>
      Effect.asVoid(run("delete", () => client.del(prefix + key)))

    const scanNode = (node: Redis): Stream.Stream<ReadonlyArray<string>, SessionStoreError> =>
      Stream.fromAsyncIterable(
        node.scanStream({ match: pattern, count: scanCount }) as AsyncIterable<Array<string>>,
        (cause) =>
          new SessionStoreError({
            reason: InternalRedis.reasonOf(cause),
            operation: "all",
            cause,
            detail: InternalRedis.describe(cause)
          })
      )

    // Keys in one SCAN batch may live in different hash slots: MGET only works on one server.
    const values = (keys: ReadonlyArray<string>): Effect.Effect<ReadonlyArray<string | null>, SessionStoreError> =>
      keys.length === 0
        ? Effect.succeed([])
        : cluster
        ? Effect.forEach(keys, (key) => run("all", () => client.get(key)), { concurrency: 16 })
        : run("all", () => client.mget(...keys))

    const all: Stream.Stream<SessionStore.StoredSession, SessionStoreError> = Stream.suspend(() => {
      if (!cluster) return Stream.make(client as Redis)
      // A cluster that is not ready may know no masters yet: that is an outage, not an empty store.
      if (client.status !== "ready") {
        return Stream.fail(
          new SessionStoreError({ reason: "Unavailable", operation: "all", detail: `cluster is ${client.status}` })
        )
      }
      return Stream.fromIterable((client as Cluster).nodes("master"))
    }).pipe(
      Stream.flatMap(scanNode),
      Stream.mapEffect((rawKeys) =>
        Effect.gen(function*() {
          // SCAN returns full keys; ioredis adds its own keyPrefix again on GET.
          const keys = rawKeys.map((rawKey) => rawKey.slice(keyPrefix.length))
          const found = yield* values(keys)
          const now = yield* Clock.currentTimeMillis
          const sessions: Array<SessionStore.StoredSession> = []
          keys.forEach((key, i) => {
            const entry = parseEntry(found[i] ?? null)
            if (entry !== undefined && entry.expiresAt > now) {
              sessions.push({ key: key.slice(prefix.length), data: entry.data, expiresAt: entry.expiresAt })
            }
          })
          return sessions
        })
      ),
      Stream.flattenIterables
    )

    return { find, commit, delete: del, all }
  })

/**
 * Makes a store with a client of its own, closed when the scope closes. Fails with
 * `SessionStoreError` (operation `open`) when Redis cannot be reached within `openTimeout`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options = {}): Effect.Effect<SessionStore.SessionStore, SessionStoreError, Scope.Scope> =>
  Effect.flatMap(
    InternalRedis.acquireClient(options.client, options.url),
    (client) => makeWithClient(client, options)
  )

/**
 * The Redis store as the `SessionStore`, with a client of its own.
 *
 * ```ts
 * RedisStore.layer({ client: { host: "127.0.0.1", port: 6379 }, prefix: "myapp:session:" })
 * RedisStore.layer({ client: () => new Cluster(nodes, RedisStore.failFastClusterOptions) })
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options?: Options): Layer.Layer<SessionStore.SessionStore, SessionStoreError> =>
  Layer.scoped(SessionStoreTag, make(options))

/**
 * The Redis store on a client you own (it is not closed with the layer).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerWithClient = (
  client: Redis | Cluster,
  options?: StoreOptions
): Layer.Layer<SessionStore.SessionStore, SessionStoreError> =>
  Layer.scoped(SessionStoreTag, makeWithClient(client, options))

/**
 * What `layerConfig` reads.
 *
 * @since 0.1.0
 * @category models
 */
export interface ConfigOptions extends StoreOptions {
  readonly url?: Redacted.Redacted<string> | undefined
  readonly host?: string | undefined
  readonly port?: number | undefined
  readonly username?: string | undefined
  readonly password?: Redacted.Redacted<string> | undefined
  readonly db?: number | undefined
  readonly tls?: boolean | undefined
}

/**
 * Like `layer`, with the connection read from `Config`:
 *
 * ```ts
 * RedisStore.layerConfig({ url: Config.redacted("REDIS_URL"), prefix: Config.string("SESSION_PREFIX") })
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (
  config: Config.Config.Wrap<ConfigOptions>
): Layer.Layer<SessionStore.SessionStore, SessionStoreError | ConfigError.ConfigError> =>
  Layer.scoped(
    SessionStoreTag,
    Effect.flatMap(Config.unwrap(config), (options) =>
      make({
        prefix: options.prefix,
        scanCount: options.scanCount,
        openTimeout: options.openTimeout,
        url: options.url,
        client: {
          ...(options.host === undefined ? {} : { host: options.host }),
          ...(options.port === undefined ? {} : { port: options.port }),
          ...(options.username === undefined ? {} : { username: options.username }),
          ...(options.password === undefined ? {} : { password: Redacted.value(options.password) }),
          ...(options.db === undefined ? {} : { db: options.db }),
          ...(options.tls === true ? { tls: {} } : {})
        }
      }))
  )
