import { afterAll, describe, expect, layer } from "@effect/vitest"
import * as Config from "effect/Config"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import { Redis } from "ioredis"
import { randomUUID } from "node:crypto"
import * as RedisStore from "../src/SessionStore/Redis.js"
import { storeConformance } from "../src/testing/StoreConformance.js"
import { requireBackend } from "./conformance.js"
import { isReachable, redis, service } from "./services.js"

const available = await isReachable(redis.host, redis.port)
const skip = requireBackend("Redis", available, "run `bash scripts/services/redis.sh start`")

// Every run uses its own prefix, and removes its keys afterwards.
const prefix = `test:${randomUUID()}:session:`
const client = { host: redis.host, port: redis.port }

afterAll(async () => {
  if (!available) return
  const admin = new Redis({ ...client, lazyConnect: true })
  await admin.connect()
  for await (const keys of admin.scanStream({ match: `test:${prefix.split(":")[1]}:*`, count: 500 })) {
    if ((keys as Array<string>).length > 0) await admin.del(...(keys as Array<string>))
  }
  await admin.quit()
})

storeConformance({
  name: "redis",
  layer: RedisStore.layer({ client, prefix }),
  enumerable: true,
  owners: true,
  skip
})

/** A plain client on the same Redis, for reading and writing past the store; one for the whole file. */
class Admin extends Context.Tag("test/RedisStore/Admin")<Admin, Redis>() {}
const AdminLive = Layer.scoped(
  Admin,
  Effect.acquireRelease(
    Effect.promise(async () => {
      const admin = new Redis({ ...client, lazyConnect: true })
      await admin.connect()
      return admin
    }),
    (admin) => Effect.promise(() => admin.quit())
  )
)

// Live services: the TTLs Redis holds are relative to the real time.
describe.skipIf(skip !== undefined)("RedisStore", () => {
  layer(AdminLive, { excludeTestServices: true })((it) => {
    it.scoped("a session is one key with the expiry as its TTL, under the prefix", () =>
      Effect.gen(function*() {
        const store = yield* RedisStore.make({ client, prefix })
        const admin = yield* Admin
        // Live clock here: the TTL Redis holds is relative to now.
        const expiresAt = Date.now() + 60_000
        yield* store.commit("ttl-key", "payload", expiresAt, "create")
        const pttl = yield* Effect.promise(() => admin.pttl(`${prefix}ttl-key`))
        expect(pttl).toBeGreaterThan(50_000)
        expect(pttl).toBeLessThanOrEqual(60_000)
        // The value starts with the expiry: the update script reads it from there.
        expect(yield* Effect.promise(() => admin.get(`${prefix}ttl-key`))).toMatch(
          new RegExp(`^${expiresAt}:.*payload$`)
        )
        // A commit whose expiry has passed removes the key rather than storing a dead entry.
        yield* store.commit("ttl-key", "payload", Date.now() - 1, "create")
        expect(yield* Effect.promise(() => admin.exists(`${prefix}ttl-key`))).toBe(0)
      }))

    it.scoped("a value that is not one of ours is not a session", () =>
      Effect.gen(function*() {
        const store = yield* RedisStore.make({ client, prefix })
        const admin = yield* Admin
        yield* Effect.promise(() => admin.set(`${prefix}foreign`, "not-an-entry", "PX", 60_000))
        expect(yield* store.find("foreign")).toEqual(Option.none())
        expect(yield* store.commit("foreign", "x", Date.now() + 60_000, "update")).toBe("gone")
        expect(yield* store.take("foreign")).toEqual(Option.none())
        expect(yield* store.touch("foreign", Date.now() + 60_000)).toBe("gone")
        expect(yield* Effect.promise(() => admin.get(`${prefix}foreign`))).toBe("not-an-entry")
        // A torn envelope (its length does not match): the scripts check it as the store does.
        const torn = `${Date.now() + 60_000}:10:short`
        yield* Effect.promise(() => admin.set(`${prefix}torn`, torn, "PX", 60_000))
        expect(yield* store.find("torn")).toEqual(Option.none())
        expect(yield* store.commit("torn", "x", Date.now() + 60_000, "update")).toBe("gone")
        expect(yield* store.take("torn")).toEqual(Option.none())
        expect(yield* store.touch("torn", Date.now() + 60_000)).toBe("gone")
        expect(yield* Effect.promise(() => admin.get(`${prefix}torn`))).toBe(torn)
      }))

    it.scoped("touch rewrites only the expiry in front of the value, and the TTL with it", () =>
      Effect.gen(function*() {
        const store = yield* RedisStore.make({ client, prefix })
        const admin = yield* Admin
        // Colons and two-, three- and four-byte characters: the scripts count the length as the envelope does.
        const data = "a:1:é€😀:z"
        const first = Date.now() + 60_000
        yield* store.commit("touched", data, first, "create")
        const bytes = Effect.promise(() => admin.getBuffer(`${prefix}touched`)).pipe(
          Effect.map((raw) => raw ?? Buffer.alloc(0))
        )
        const before = yield* bytes
        const later = Date.now() + 600_000
        expect(yield* store.touch("touched", later)).toBe("written")
        const after = yield* bytes
        expect(after.subarray(0, String(later).length).toString()).toBe(String(later))
        expect(after.subarray(String(later).length)).toEqual(before.subarray(String(first).length))
        const pttl = yield* Effect.promise(() => admin.pttl(`${prefix}touched`))
        expect(pttl).toBeGreaterThan(590_000)
        expect(pttl).toBeLessThanOrEqual(600_000)
        expect(yield* store.find("touched")).toEqual(Option.some({ data, expiresAt: later }))
        // An expiry already past removes the entry, as a commit does; then there is nothing to touch.
        expect(yield* store.touch("touched", Date.now() - 1)).toBe("written")
        expect(yield* Effect.promise(() => admin.exists(`${prefix}touched`))).toBe(0)
        expect(yield* store.touch("touched", later)).toBe("gone")
        expect(yield* Effect.promise(() => admin.exists(`${prefix}touched`))).toBe(0)
      }))

    it.scoped("take returns the entry once, removes the key, and a later update finds it gone", () =>
      Effect.gen(function*() {
        const store = yield* RedisStore.make({ client, prefix })
        const other = yield* RedisStore.make({ client, prefix })
        const admin = yield* Admin
        const data = "a:1:é€😀:z"
        const expiresAt = Date.now() + 60_000
        yield* store.commit("taken", data, expiresAt, "create")
        // Two clients, ten takes each, all at once: one take gets the entry.
        const takes = yield* Effect.all(
          Array.from({ length: 20 }, (_, i) => (i % 2 === 0 ? store : other).take("taken")),
          { concurrency: "unbounded" }
        )
        expect(takes.filter(Option.isSome)).toEqual([Option.some({ data, expiresAt })])
        expect(yield* Effect.promise(() => admin.exists(`${prefix}taken`))).toBe(0)
        expect(yield* store.commit("taken", "stale", expiresAt, "update")).toBe("gone")
        expect(yield* other.touch("taken", expiresAt)).toBe("gone")
        expect(yield* Effect.promise(() => admin.exists(`${prefix}taken`))).toBe(0)
      }))

    it.scoped("an entry past its own expiry that Redis still holds is neither taken nor touched", () =>
      Effect.gen(function*() {
        const store = yield* RedisStore.make({ client, prefix })
        const admin = yield* Admin
        // As if this app server's clock ran ahead of Redis's: the value says expired, the TTL does not.
        const stale = `${Date.now() - 1_000}:4:data`
        yield* Effect.promise(() => admin.set(`${prefix}stale`, stale, "PX", 60_000))
        expect(yield* store.find("stale")).toEqual(Option.none())
        expect(yield* store.touch("stale", Date.now() + 60_000)).toBe("gone")
        expect(yield* Effect.promise(() => admin.get(`${prefix}stale`))).toBe(stale)
        expect(yield* store.take("stale")).toEqual(Option.none())
        // The take drops it: it was dead anyway.
        expect(yield* Effect.promise(() => admin.exists(`${prefix}stale`))).toBe(0)
      }))

    it.scoped("take and touch honour ioredis's own keyPrefix", () =>
      Effect.gen(function*() {
        const store = yield* RedisStore.make({ client: { ...client, keyPrefix: `${prefix}ioredis:` }, prefix: "tt:" })
        const admin = yield* Admin
        const expiresAt = Date.now() + 60_000
        yield* store.commit("k", "v", expiresAt, "create")
        expect(yield* store.touch("k", expiresAt + 1_000)).toBe("written")
        expect(yield* Effect.promise(() => admin.get(`${prefix}ioredis:tt:k`))).toBe(`${expiresAt + 1_000}:1:v`)
        expect(yield* store.take("k")).toEqual(Option.some({ data: "v", expiresAt: expiresAt + 1_000 }))
        expect(yield* Effect.promise(() => admin.exists(`${prefix}ioredis:tt:k`))).toBe(0)
      }))

    it.scoped("glob characters in the prefix are matched literally by SCAN", () =>
      Effect.gen(function*() {
        const star = `${prefix}*[x]?:`
        const store = yield* RedisStore.make({ client, prefix: star })
        const other = yield* RedisStore.make({ client, prefix: `${prefix}zz:` })
        yield* store.commit("a", "A", Date.now() + 60_000, "create")
        yield* other.commit("b", "B", Date.now() + 60_000, "create")
        const keys = yield* Stream.runCollect(Stream.map(store.all, (entry) => entry.key))
        expect([...keys]).toEqual(["a"])
      }))

    it.scoped("an owner is one hash under <prefix>owner:, its TTL the largest until it holds; enumeration skips it", () =>
      Effect.gen(function*() {
        const store = yield* RedisStore.make({ client, prefix })
        const admin = yield* Admin
        const owner = `{user}:${randomUUID()}`
        const ownerKey = `${prefix}owner:${owner}`
        const now = Date.now()
        const [long, short] = [now + 600_000, now + 60_000]
        yield* store.owners.link(owner, "h1", "k1", long)
        // A smaller until does not shorten the key's TTL: h1 must outlive h2.
        yield* store.owners.link(owner, "h2", "k2", short)
        expect(yield* Effect.promise(() => admin.type(ownerKey))).toBe("hash")
        const pttl = yield* Effect.promise(() => admin.pttl(ownerKey))
        expect(pttl).toBeGreaterThan(590_000)
        expect(pttl).toBeLessThanOrEqual(600_000)
        expect(yield* store.owners.revoke(owner, ["h1"])).toEqual(["k1"])
        expect(yield* Effect.promise(() => admin.hgetall(ownerKey))).toEqual({ h1: `${long}`, h2: `${short}:k2` })
        // Enumeration reads strings only: the hash is neither emitted nor an error.
        yield* store.commit("beside-owner", "x", now + 60_000, "create")
        const keys = [...yield* Stream.runCollect(Stream.map(store.all, (entry) => entry.key))]
        expect(keys).toContain("beside-owner")
        expect(keys.filter((key) => key.startsWith("owner:"))).toEqual([])
        // A foreign value under an owner key fails as a store error that does not name the owner.
        yield* Effect.promise(() => admin.set(`${prefix}owner:foreign-${owner}`, "x", "PX", 60_000))
        const failed = yield* Effect.flip(store.owners.list(`foreign-${owner}`))
        expect(failed).toMatchObject({ _tag: "SessionStoreError", operation: "list", reason: "Unknown" })
        expect(`${failed.message} ${JSON.stringify(failed.cause)}`).not.toContain(owner)
        // An unpaired surrogate would reach Redis as U+FFFD, sharing a key with another owner.
        const malformed = yield* Effect.flip(store.owners.link("\uD800", "h", "k", long))
        expect(malformed).toMatchObject({ operation: "link", reason: "Unsupported" })
      }))

    it.scoped("building the store fails with SessionStoreError when Redis cannot be reached", () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(
          RedisStore.make({
            client: { host: "127.0.0.1", port: 1, retryStrategy: () => null },
            openTimeout: "2 seconds"
          })
        )
        expect(error).toMatchObject({ _tag: "SessionStoreError", operation: "open", reason: "Unavailable" })
      }))

    it.scoped(
      "an outage fails calls with SessionStoreError, and the same store works again when Redis is back",
      () =>
        Effect.gen(function*() {
          const store = yield* RedisStore.make({ client, prefix })
          const expiresAt = Date.now() + 600_000
          yield* store.commit("outage", "before", expiresAt, "create")
          yield* Effect.acquireRelease(
            Effect.sync(() => service("redis", "stop")),
            // Leave Redis running whatever happens in between.
            () => Effect.sync(() => service("redis", "start"))
          )
          const failed = yield* Effect.either(store.find("outage"))
          expect(Either.isLeft(failed)).toBe(true)
          if (Either.isLeft(failed)) {
            expect(failed.left._tag).toBe("SessionStoreError")
            expect(failed.left.operation).toBe("find")
            expect(["Unavailable", "Timeout"]).toContain(failed.left.reason)
          }
          const commitFailed = yield* Effect.either(store.commit("outage", "during", expiresAt, "create"))
          expect(Either.isLeft(commitFailed) && commitFailed.left.reason).toBe("Unavailable")
          service("redis", "start")
          // The client reconnects by itself; no new layer. (Redis runs without persistence here.)
          yield* store.commit("outage", "after", expiresAt, "create").pipe(
            Effect.retry(Schedule.spaced("50 millis").pipe(Schedule.intersect(Schedule.recurs(200))))
          )
          expect(yield* store.find("outage")).toEqual(Option.some({ data: "after", expiresAt }))
        }),
      60_000
    )

    it.scoped("a client you own (makeWithClient) is shared, not closed with the store", () =>
      Effect.gen(function*() {
        const shared = new Redis({ ...client, ...RedisStore.failFastOptions, lazyConnect: true })
        const expiresAt = Date.now() + 60_000
        yield* Effect.addFinalizer(() => Effect.promise(() => shared.quit()))
        yield* Effect.scoped(
          Effect.gen(function*() {
            const store = yield* RedisStore.makeWithClient(shared, { prefix })
            yield* store.commit("shared", "x", expiresAt, "create")
          })
        )
        expect(shared.status).toBe("ready")
        const again = yield* RedisStore.makeWithClient(shared, { prefix })
        expect(yield* again.find("shared")).toEqual(Option.some({ data: "x", expiresAt }))
      }))

    it.scoped("ioredis's own keyPrefix and the store's prefix together: find, commit and enumeration agree", () =>
      Effect.gen(function*() {
        const store = yield* RedisStore.make({
          client: { ...client, keyPrefix: `${prefix}ioredis:` },
          prefix: "store:"
        })
        yield* store.commit("k1", "v1", Date.now() + 60_000, "create")
        expect(yield* store.commit("k1", "v2", Date.now() + 60_000, "update")).toBe("written")
        const admin = yield* Admin
        expect(yield* Effect.promise(() => admin.exists(`${prefix}ioredis:store:k1`))).toBe(1)
        const all = yield* Stream.runCollect(store.all)
        expect([...all].map((entry) => [entry.key, entry.data])).toEqual([["k1", "v2"]])
      }))

    it.scoped("layerConfig reads the connection and prefix from Config", () =>
      Effect.gen(function*() {
        const layer = RedisStore.layerConfig({
          url: Config.redacted("REDIS_URL"),
          prefix: Config.string("SESSION_PREFIX")
        })
        const provider = ConfigProvider.fromMap(
          new Map([["REDIS_URL", `redis://${redis.host}:${redis.port}/0`], ["SESSION_PREFIX", `${prefix}config:`]])
        )
        const context = yield* Layer.build(layer).pipe(Effect.withConfigProvider(provider))
        const store = Context.get(context, RedisStore.RedisStore)
        yield* store.commit("configured", "yes", Date.now() + 60_000, "create")
        const admin = yield* Admin
        expect(yield* Effect.promise(() => admin.get(`${prefix}config:configured`))).toMatch(/:yes$/)
      }))

    it("ioredis's Sentinel options pass through unchanged (type level)", () => {
      const sentinel = RedisStore.layer({
        client: {
          sentinels: [{ host: "127.0.0.1", port: 26379 }],
          name: "mymaster",
          sentinelPassword: "secret",
          role: "master"
        },
        prefix: "app:session:"
      })
      expect(Layer.isLayer(sentinel)).toBe(true)
    })
  })
})
