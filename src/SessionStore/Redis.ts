/**
 * The Redis store, on `ioredis` (an optional peer dependency: install it to use this module).
 * Works with a standalone server, with Sentinel (ioredis's `sentinels` + `name` options) and
 * with Redis Cluster (one key per session, every command on one key).
 *
 * Each session is one Redis string, `<prefix><key>`, holding `<expiresAt>:<length>:<payload>` and
 * carrying the same expiry as its TTL: Redis drops expired sessions by itself, so this store
 * needs no sweep. The expiry kept in the value is what `find`, `take`, `touch` and updates check
 * against `Clock`, so an entry is never returned at or after its expiry even if Redis has not
 * dropped it yet (clocks of app servers and Redis may differ by a little). Updates, `take` and
 * `touch` are Lua scripts on the session's one key, so they are atomic and work on a Cluster.
 *
 * The owner index keeps each owner in one Redis hash, `<prefix>owner:<ownerId>`: field = handle,
 * value = `<until>:<key>` for a link or `<until>` alone for a revoked handle's tombstone. Every
 * index operation is one Lua script on that one key (atomic per owner, fine on a Cluster), given
 * the `Clock` time; the hash's TTL follows the largest `until` it has held, so an owner nobody
 * touches again disappears by itself. Session keys are base64url (no `:`), so an owner key is
 * never a session key, and enumeration scans strings only.
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type { Cluster, Redis, RedisOptions } from "ioredis"
import * as Envelope from "../internal/envelope.js"
import * as Errors from "../internal/errors.js"
import * as InternalOptions from "../internal/options.js"
import { promiseWithTimeout } from "../internal/promiseTimeout.js"
import * as Redact from "../internal/redact.js"
import * as InternalRedis from "../internal/redis.js"
import { provideBoth } from "../internal/storeLayer.js"
import * as Telemetry from "../internal/telemetry.js"
import type { SessionConfigError } from "../SessionConfigError.js"
import type { OwnerIndex, OwnerLink, SessionStore, StoredSession } from "../SessionStore.js"
import { SessionStoreError } from "../SessionStore.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /**
   * ioredis options for a client the store creates and closes (host, port, password, db, tls,
   * `sentinels` + `name` for Sentinel, ...), merged over `failFastOptions`; or a function that
   * creates the client (for example a `new Cluster(...)`), which the store then owns and closes.
   * Default: `localhost:6379`. Not used by `makeWithClient` / `layerWithClient`.
   */
  readonly client?: RedisOptions | (() => Redis | Cluster) | undefined
  /**
   * A `redis://` / `rediss://` URL (user, password, host, port, database, TLS), used with `client`
   * options when given. Not used by `makeWithClient` / `layerWithClient`.
   */
  readonly url?: string | Redacted.Redacted<string> | undefined
  /** Prepended to every store key. Default `"session:"`. */
  readonly prefix?: string | undefined
  /** Keys asked for per `SCAN` step (its `COUNT` hint) and read per page while enumerating. Default `100`. */
  readonly pageSize?: number | undefined
  /** How long building the store waits for the connection. Default `"10 seconds"`. */
  readonly openTimeout?: Duration.DurationInput | undefined
  /**
   * Longest wait for one Redis call before it fails with a `Timeout` store error, whatever the
   * client's own `commandTimeout`. Default `"5 seconds"`; `0` leaves it to the client.
   */
  readonly timeout?: Duration.DurationInput | undefined
}

/**
 * The Redis store, with what it offers besides the contract: it always enumerates, and it
 * tells its key prefix.
 *
 * @since 0.2.0
 * @category models
 */
export interface RedisStore extends SessionStore {
  readonly all: Stream.Stream<StoredSession, SessionStoreError>
  readonly owners: OwnerIndex
  /** What the store prepends to every key (after the client's own `keyPrefix`); owners live under `<prefix>owner:`. */
  readonly prefix: string
}

/**
 * The Redis store built by `layer`, `layerWithClient` or `layerConfig`.
 *
 * @since 0.2.0
 * @category tags
 */
export const RedisStore: Context.Tag<RedisStore, RedisStore> = Context.GenericTag<RedisStore>(
  "effect-session/SessionStore/Redis"
)

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

// Every script reads the envelope (internal/envelope.ts) with `envelope`: the expiry, where the
// length starts, or nil for a value that is not one (absent, foreign or torn). The length
// counts UTF-16 code units: one per UTF-8 sequence, two for a four-byte one.
const ENVELOPE = `
local function envelope(value)
  if not value then return nil end
  local expiresAt, lengthStart, length, payloadStart = string.match(value, "^(%d+):()(%d+):()")
  if not expiresAt or #expiresAt > 16 or #length > 16 then return nil end
  local payload = string.sub(value, payloadStart)
  local _, continuations = string.gsub(payload, "[\\128-\\191]", "")
  local _, fourByteLeads = string.gsub(payload, "[\\240-\\247]", "")
  if #payload - continuations + fourByteLeads ~= tonumber(length) then return nil end
  return tonumber(expiresAt), lengthStart
end
`

// KEYS[1], ARGV: value, now, ttl. Replaces a live entry (an expiry already past deletes it): 1, or 0.
const UPDATE_SCRIPT = `${ENVELOPE}
local current = redis.call("GET", KEYS[1])
local expiresAt = envelope(current)
if not expiresAt or expiresAt <= tonumber(ARGV[2]) then return 0 end
if tonumber(ARGV[3]) <= 0 then
  redis.call("DEL", KEYS[1])
else
  redis.call("SET", KEYS[1], ARGV[1], "PX", ARGV[3], "XX")
end
return 1
`

// KEYS[1], ARGV: now. Deletes an entry of ours and returns it if it was live; an expired one
// Redis has not dropped yet is deleted and not returned, a foreign value is left alone.
const TAKE_SCRIPT = `${ENVELOPE}
local current = redis.call("GET", KEYS[1])
local expiresAt = envelope(current)
if not expiresAt then return false end
redis.call("DEL", KEYS[1])
if expiresAt <= tonumber(ARGV[1]) then return false end
return current
`

// KEYS[1], ARGV: now, new expiry, ttl. Rewrites only the expiry in front of a live entry (the
// length and payload bytes are kept as they are) and its PX (an expiry already past deletes
// it): 1, or 0 when there is no live entry.
const TOUCH_SCRIPT = `${ENVELOPE}
local current = redis.call("GET", KEYS[1])
local expiresAt, lengthStart = envelope(current)
if not expiresAt or expiresAt <= tonumber(ARGV[1]) then return 0 end
if tonumber(ARGV[3]) <= 0 then
  redis.call("DEL", KEYS[1])
else
  redis.call("SET", KEYS[1], ARGV[2] .. ":" .. string.sub(current, lengthStart), "PX", ARGV[3], "XX")
end
return 1
`

// The owner index scripts read a hash field (see the module's documentation) with `entry`: its
// until as written and as a number, and its key (false for a tombstone); nil for anything else.
const OWNER_ENTRY = `
local function entry(value)
  if not value then return nil end
  local untilText, key = string.match(value, "^(%d+):(.*)$")
  if not untilText then untilText, key = string.match(value, "^(%d+)$"), false end
  if not untilText or #untilText > 16 then return nil end
  return untilText, tonumber(untilText), key
end
`

// KEYS[1], ARGV: now, handle, key, until. Points the handle at the key and lengthens the hash's
// TTL to the until (never shortens it): 1; or 0, nothing written, when the handle is revoked.
// A link already past its until only removes the handle's old link.
const OWNER_LINK_SCRIPT = `${OWNER_ENTRY}
local now, deadline = tonumber(ARGV[1]), tonumber(ARGV[4])
local _, currentUntil, currentKey = entry(redis.call("HGET", KEYS[1], ARGV[2]))
if currentUntil and currentUntil > now and currentKey == false then return 0 end
if deadline <= now then
  redis.call("HDEL", KEYS[1], ARGV[2])
  return 1
end
redis.call("HSET", KEYS[1], ARGV[2], ARGV[4] .. ":" .. ARGV[3])
local ttl = math.ceil(deadline - now)
local pttl = redis.call("PTTL", KEYS[1])
if pttl < ttl then redis.call("PEXPIRE", KEYS[1], ttl) end
return 1
`

// KEYS[1], ARGV: now. The live links as handle, key, handle, key, ...; drops entries past their until.
const OWNER_LIST_SCRIPT = `${OWNER_ENTRY}
local now = tonumber(ARGV[1])
local fields = redis.call("HGETALL", KEYS[1])
local links = {}
for i = 1, #fields, 2 do
  local _, deadline, key = entry(fields[i + 1])
  if deadline and deadline <= now then
    redis.call("HDEL", KEYS[1], fields[i])
  elseif key then
    links[#links + 1] = fields[i]
    links[#links + 1] = key
  end
end
return links
`

// KEYS[1], ARGV: now, "all" or "some", "1" when there is an exception, the exception, the handles
// (with "some"). Turns each live link revoked (but the exception) into a tombstone with the
// same until and returns the keys they pointed at; drops the entries past their until it sees.
const OWNER_REVOKE_SCRIPT = `${OWNER_ENTRY}
local now = tonumber(ARGV[1])
local revoked = {}
local function revoke(handle, value)
  local untilText, deadline, key = entry(value)
  if not deadline then return end
  if deadline <= now then
    redis.call("HDEL", KEYS[1], handle)
  elseif key and not (ARGV[3] == "1" and handle == ARGV[4]) then
    redis.call("HSET", KEYS[1], handle, untilText)
    revoked[#revoked + 1] = key
  end
end
if ARGV[2] == "all" then
  local fields = redis.call("HGETALL", KEYS[1])
  for i = 1, #fields, 2 do revoke(fields[i], fields[i + 1]) end
else
  for i = 5, #ARGV do revoke(ARGV[i], redis.call("HGET", KEYS[1], ARGV[i])) end
end
return revoked
`

// KEYS[1], ARGV: handle, key. Removes the handle while it is a link to the key.
const OWNER_UNLINK_SCRIPT = `${OWNER_ENTRY}
local _, _, key = entry(redis.call("HGET", KEYS[1], ARGV[1]))
if key == ARGV[2] then redis.call("HDEL", KEYS[1], ARGV[1]) end
return 0
`

// Defined on the client with `defineCommand` (EVALSHA, falling back to EVAL on every node).
const SCRIPTS = {
  effectSessionUpdate: UPDATE_SCRIPT,
  effectSessionTake: TAKE_SCRIPT,
  effectSessionTouch: TOUCH_SCRIPT,
  effectSessionOwnerLink: OWNER_LINK_SCRIPT,
  effectSessionOwnerList: OWNER_LIST_SCRIPT,
  effectSessionOwnerRevoke: OWNER_REVOKE_SCRIPT,
  effectSessionOwnerUnlink: OWNER_UNLINK_SCRIPT
} as const

interface ScriptCommands {
  effectSessionUpdate(key: string, value: string, now: number, ttl: number): Promise<number>
  effectSessionTake(key: string, now: number): Promise<string | null>
  effectSessionTouch(key: string, now: number, expiresAt: number, ttl: number): Promise<number>
  effectSessionOwnerLink(ownerKey: string, now: number, handle: string, key: string, until: number): Promise<number>
  effectSessionOwnerList(ownerKey: string, now: number): Promise<Array<string>>
  effectSessionOwnerRevoke(
    ownerKey: string,
    now: number,
    scope: "all" | "some",
    hasException: "1" | "0",
    exception: string,
    ...handles: Array<string>
  ): Promise<Array<string>>
  effectSessionOwnerUnlink(ownerKey: string, handle: string, key: string): Promise<number>
}

// An unpaired surrogate would reach Redis as U+FFFD (UTF-8 has no encoding for it), so two such
// owner ids could share one key; with the `u` flag this class matches unpaired surrogates only.
const UNPAIRED_SURROGATE = /[\uD800-\uDFFF]/u

/**
 * Makes a store on a client the caller owns: the store defines its Lua commands on it (their
 * names start with `effectSession`) and never closes it. For
 * commands to fail fast while Redis is down, create the client with `failFastOptions` (or
 * `failFastClusterOptions`).
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeWithClient = (
  client: Redis | Cluster,
  options: Omit<Options, "client" | "url"> = {}
): Effect.Effect<RedisStore, SessionStoreError | SessionConfigError, Scope.Scope> =>
  Effect.gen(function*() {
    const prefix = options.prefix ?? "session:"
    const pageSize = yield* InternalOptions.positiveInteger("pageSize", options.pageSize, 100)
    const openTimeout = yield* InternalOptions.duration("openTimeout", options.openTimeout, "10 seconds")
    const timeout = yield* InternalOptions.duration("timeout", options.timeout, "5 seconds", { allowZero: true })
    const keyPrefix = InternalRedis.clientKeyPrefix(client)
    const pattern = `${InternalRedis.escapeGlob(keyPrefix + prefix)}*`
    const cluster = InternalRedis.isCluster(client)

    yield* InternalRedis.logConnectionEvents(client, "the Redis session store")
    yield* InternalRedis.awaitReady(client, openTimeout).pipe(
      Effect.mapError(({ cause, reason }) =>
        new SessionStoreError({
          reason,
          operation: "open",
          cause: Redact.scrub(cause),
          detail: InternalRedis.describe(cause)
        })
      )
    )
    for (const [name, lua] of Object.entries(SCRIPTS)) {
      if (!(name in client)) client.defineCommand(name, { numberOfKeys: 1, lua })
    }
    const scripts = client as unknown as ScriptCommands

    // A command past its timeout is harmless: ioredis still reads its reply, in order, and drops it.
    const timeoutMillis = Duration.toMillis(timeout)
    const run = <A>(operation: SessionStoreError["operation"], evaluate: () => Promise<A>) =>
      promiseWithTimeout(evaluate, {
        timeoutMillis,
        onTimeout: () => Errors.timeoutError(operation, timeout),
        onError: Errors.fromRedis(operation)
      })

    const find: RedisStore["find"] = (key) =>
      Effect.flatMap(
        run("find", () => client.get(prefix + key)),
        (raw) => Effect.map(Clock.currentTimeMillis, (now) => Envelope.liveEntry(Envelope.decode(raw), now))
      )

    // Atomic: of concurrent takes, updates and deletes of the key, one take at most gets the entry.
    // A take cut short by the timeout may still have removed it: the session is lost, never doubled.
    const take: RedisStore["take"] = (key) =>
      Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        const raw = yield* run("take", () => scripts.effectSessionTake(prefix + key, now))
        return Envelope.liveEntry(Envelope.decode(raw), now)
      })

    const touch: RedisStore["touch"] = (key, expiresAt) =>
      Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        const ttl = Math.ceil(expiresAt - now)
        const stored = Envelope.storedExpiry(expiresAt)
        const written = yield* run("touch", () => scripts.effectSessionTouch(prefix + key, now, stored, ttl))
        return written === 1 ? "written" : "gone"
      })

    const commit: RedisStore["commit"] = (key, data, expiresAt, mode) =>
      Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        const ttl = Math.ceil(expiresAt - now)
        const value = Envelope.encode(data, expiresAt)
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

    const del: RedisStore["delete"] = (key) => Effect.asVoid(run("delete", () => client.del(prefix + key)))

    const scanNode = (node: Redis): Stream.Stream<ReadonlyArray<string>, SessionStoreError> =>
      Stream.fromAsyncIterable(
        // Sessions are strings: `TYPE string` leaves out the owner index's hashes under the same prefix.
        node.scanStream({ match: pattern, type: "string", count: pageSize }) as AsyncIterable<Array<string>>,
        Errors.fromRedis("all")
      )

    // Keys in one SCAN batch may live in different hash slots: MGET only works on one server.
    const values = (keys: ReadonlyArray<string>): Effect.Effect<ReadonlyArray<string | null>, SessionStoreError> =>
      keys.length === 0
        ? Effect.succeed([])
        : cluster
        ? Effect.forEach(keys, (key) => run("all", () => client.get(key)), { concurrency: 16 })
        : run("all", () => client.mget(...keys))

    const all: Stream.Stream<StoredSession, SessionStoreError> = Stream.suspend(() => {
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
          const sessions: Array<StoredSession> = []
          keys.forEach((key, i) => {
            const entry = Envelope.decode(found[i])
            if (Envelope.isLive(entry, now)) {
              sessions.push({ key: key.slice(prefix.length), data: entry.data, expiresAt: entry.expiresAt })
            }
          })
          return sessions
        })
      ),
      Stream.flattenIterables
    )

    // The owner's one key. Owner ids are arbitrary: a `{…}` in one only picks that key's slot.
    const ownerKey = (
      operation: SessionStoreError["operation"],
      owner: string
    ): Effect.Effect<string, SessionStoreError> =>
      UNPAIRED_SURROGATE.test(owner)
        ? Effect.fail(
          new SessionStoreError({ reason: "Unsupported", operation, detail: "owner id is not well-formed Unicode" })
        )
        : Effect.succeed(`${prefix}owner:${owner}`)

    const owners: OwnerIndex = {
      link: (owner, handle, key, until) =>
        Effect.gen(function*() {
          const index = yield* ownerKey("link", owner)
          const now = yield* Clock.currentTimeMillis
          const stored = Envelope.storedExpiry(until)
          const linked = yield* run("link", () => scripts.effectSessionOwnerLink(index, now, handle, key, stored))
          return linked === 1 ? "linked" : "revoked"
        }),
      list: (owner) =>
        Effect.gen(function*() {
          const index = yield* ownerKey("list", owner)
          const now = yield* Clock.currentTimeMillis
          const flat = yield* run("list", () => scripts.effectSessionOwnerList(index, now))
          const links: Array<OwnerLink> = []
          for (let i = 0; i + 1 < flat.length; i += 2) links.push({ handle: flat[i], key: flat[i + 1] })
          return links
        }),
      revoke: (owner, handles, except) =>
        Effect.gen(function*() {
          const index = yield* ownerKey("revoke", owner)
          const now = yield* Clock.currentTimeMillis
          const scope = handles === "all" ? "all" : "some"
          const listed = handles === "all" ? [] : handles
          const hasException = except === undefined ? "0" : "1"
          return yield* run(
            "revoke",
            () => scripts.effectSessionOwnerRevoke(index, now, scope, hasException, except ?? "", ...listed)
          )
        }),
      unlink: (owner, handle, key) =>
        Effect.flatMap(
          ownerKey("unlink", owner),
          (index) => Effect.asVoid(run("unlink", () => scripts.effectSessionOwnerUnlink(index, handle, key)))
        )
    }

    return Telemetry.instrumentStore("redis", { find, commit, take, touch, delete: del, all, owners, prefix })
  })

/**
 * Makes a store with a client of its own, closed when the scope closes. Fails with
 * `SessionStoreError` (operation `open`) when Redis cannot be reached within `openTimeout`, and
 * with `SessionConfigError` for invalid options.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  options: Options = {}
): Effect.Effect<RedisStore, SessionStoreError | SessionConfigError, Scope.Scope> =>
  Effect.flatMap(
    InternalRedis.acquireClient(options.client, options.url),
    (client) => makeWithClient(client, options)
  )

/**
 * The Redis store as the `SessionStore` and as `RedisStore`, with a client of its own.
 *
 * ```ts
 * RedisStore.layer({ client: { host: "127.0.0.1", port: 6379 }, prefix: "myapp:session:" })
 * RedisStore.layer({ client: () => new Cluster(nodes, RedisStore.failFastClusterOptions) })
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options?: Options
): Layer.Layer<RedisStore | SessionStore, SessionStoreError | SessionConfigError> =>
  provideBoth(RedisStore, make(options))

/**
 * The Redis store on a client you own (it is not closed with the layer).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerWithClient = (
  client: Redis | Cluster,
  options?: Omit<Options, "client" | "url">
): Layer.Layer<RedisStore | SessionStore, SessionStoreError | SessionConfigError> =>
  provideBoth(RedisStore, makeWithClient(client, options))

/**
 * Like `layer`, with the options read from `Config` (the connection as a URL):
 *
 * ```ts
 * RedisStore.layerConfig({ url: Config.redacted("REDIS_URL"), prefix: Config.string("SESSION_PREFIX") })
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (
  options: Config.Config.Wrap<Options>
): Layer.Layer<RedisStore | SessionStore, SessionStoreError | SessionConfigError | ConfigError.ConfigError> =>
  Layer.unwrapEffect(Effect.map(Config.unwrap(options), layer))
