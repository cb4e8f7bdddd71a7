/**
 * The Redis store through Redis Sentinel: ioredis's Sentinel options, unchanged, against a real
 * Sentinel (scripts/services/redis-sentinel.sh) that watches the standalone Redis.
 */
import { afterAll, describe, expect, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { Redis } from "ioredis"
import { randomUUID } from "node:crypto"
import * as SessionManager from "../src/SessionManager.js"
import { SessionStore } from "../src/SessionStore.js"
import * as RedisStore from "../src/SessionStore/Redis.js"
import { storeConformance } from "../src/testing/StoreConformance.js"
import { requireBackend } from "./conformance.js"
import { isReachable, redis, sentinel } from "./services.js"

const available = await isReachable(sentinel.host, sentinel.port)
const skip = requireBackend("Redis Sentinel", available, "run `bash scripts/services/redis-sentinel.sh start`")

const prefix = `test:${randomUUID()}:sentinel:`
const client = { sentinels: [{ host: sentinel.host, port: sentinel.port }], name: sentinel.masterName }

afterAll(async () => {
  if (!available) return
  const admin = new Redis({ host: redis.host, port: redis.port, lazyConnect: true })
  await admin.connect()
  for await (const keys of admin.scanStream({ match: `${prefix}*`, count: 500 })) {
    if ((keys as Array<string>).length > 0) await admin.del(...(keys as Array<string>))
  }
  await admin.quit()
})

storeConformance({
  name: "redis through sentinel",
  layer: RedisStore.layer({ client, prefix }),
  enumerable: true,
  owners: true,
  skip
})

describe.skipIf(skip !== undefined)("RedisStore through Sentinel", () => {
  it.scoped("writes land on the master the Sentinel names", () =>
    Effect.gen(function*() {
      // Built in the test's scope: the store's client stays open until the test ends.
      const store = Context.get(yield* Layer.build(RedisStore.layer({ client, prefix })), SessionStore)
      const manager = yield* Effect.provideService(SessionManager.make(), SessionStore, store)
      const session = yield* manager.load(undefined)
      yield* session.put("via", "sentinel")
      const outcome = yield* manager.commit(session)
      if (outcome._tag !== "Written") return yield* Effect.dieMessage(`expected Written, got ${outcome._tag}`)
      // The key the manager stores under (the token's hash by default), not the token.
      const key = Option.getOrThrow(manager.storeKey(session))
      const direct = new Redis({ host: redis.host, port: redis.port })
      yield* Effect.addFinalizer(() => Effect.promise(() => direct.quit()))
      const raw = yield* Effect.promise(() => direct.get(`${prefix}${key}`))
      expect(raw).toContain("\"via\":\"sentinel\"")
      expect(yield* (yield* manager.load(outcome.token)).getString("via")).toBe("sentinel")
      expect(Option.isSome(yield* store.find(key))).toBe(true)
    }))

  it.scopedLive("take and touch run on the master the Sentinel names", () =>
    Effect.gen(function*() {
      const store = yield* RedisStore.make({ client, prefix })
      const direct = new Redis({ host: redis.host, port: redis.port })
      yield* Effect.addFinalizer(() => Effect.promise(() => direct.quit()))
      const expiresAt = Date.now() + 60_000
      yield* store.commit("scripts", "v", expiresAt, "create")
      expect(yield* store.touch("scripts", expiresAt + 1_000)).toBe("written")
      expect(yield* Effect.promise(() => direct.get(`${prefix}scripts`))).toBe(`${expiresAt + 1_000}:1:v`)
      expect(yield* store.take("scripts")).toEqual(Option.some({ data: "v", expiresAt: expiresAt + 1_000 }))
      expect(yield* Effect.promise(() => direct.exists(`${prefix}scripts`))).toBe(0)
    }))
})
