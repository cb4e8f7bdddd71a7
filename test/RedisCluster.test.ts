import { afterAll, describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { Cluster } from "ioredis"
import { randomUUID } from "node:crypto"
import * as RedisLock from "../src/SessionLock/Redis.js"
import * as RedisStore from "../src/SessionStore/Redis.js"
import { storeConformance } from "../src/testing/StoreConformance.js"
import { requireBackend } from "./conformance.js"
import { isReachable } from "./services.js"

// Started by scripts/services/redis-cluster.sh: three masters, no replicas.
const nodes = [7101, 7102, 7103].map((port) => ({ host: "127.0.0.1", port }))
const reachable = await Promise.all(nodes.map((node) => isReachable(node.host, node.port)))
const available = reachable.every(Boolean)
const skip = requireBackend("Redis Cluster", available, "run `bash scripts/services/redis-cluster.sh start`")

const prefix = `test:${randomUUID()}:session:`
const newCluster = () => new Cluster(nodes, RedisStore.failFastClusterOptions)

afterAll(async () => {
  if (!available) return
  const admin = newCluster()
  await new Promise((resolve) => admin.once("ready", resolve))
  for (const node of admin.nodes("master")) {
    for await (const keys of node.scanStream({ match: `${prefix}*`, count: 500 })) {
      for (const key of keys as Array<string>) await admin.del(key)
    }
  }
  await admin.quit()
})

storeConformance({
  name: "redis cluster (3 masters, ioredis Cluster)",
  layer: RedisStore.layer({ client: newCluster, prefix }),
  enumerable: true,
  owners: true,
  skip
})

const describeOrSkip = skip === undefined ? describe : describe.skip

describeOrSkip("RedisStore on a cluster", () => {
  it.scopedLive("sessions spread over every master and are all enumerated", () =>
    Effect.gen(function*() {
      const store = yield* RedisStore.make({ client: newCluster, prefix })
      const expiresAt = Date.now() + 60_000
      const keys = Array.from({ length: 60 }, (_, i) => `spread-${i}-${randomUUID()}`)
      yield* Effect.forEach(keys, (key) => store.commit(key, key, expiresAt, "create"), { concurrency: 10 })
      const admin = newCluster()
      yield* Effect.addFinalizer(() => Effect.promise(() => admin.quit()))
      yield* Effect.promise(() => new Promise((resolve) => admin.once("ready", resolve)))
      const masters = admin.nodes("master")
      expect(masters.length).toBe(3)
      const perNode = yield* Effect.forEach(masters, (node) =>
        Effect.promise(async () => {
          let count = 0
          for await (const batch of node.scanStream({ match: `${prefix}spread-*`, count: 100 })) {
            count += (batch as Array<string>).length
          }
          return count
        }))
      for (const count of perNode) expect(count).toBeGreaterThan(0)
      const seen = new Set(Chunk.toReadonlyArray(yield* Stream.runCollect(store.all)).map((entry) => entry.key))
      for (const key of keys) expect(seen.has(key)).toBe(true)
      expect(yield* store.find(keys[0]!)).toEqual(Option.some({ data: keys[0], expiresAt }))
    }))

  it.scopedLive("take and touch run as scripts through the Cluster client, on every master", () =>
    Effect.gen(function*() {
      const store = yield* RedisStore.make({ client: newCluster, prefix })
      const other = yield* RedisStore.make({ client: newCluster, prefix })
      // Thirty random keys: spread over the three masters, as the case above shows.
      const keys = Array.from({ length: 30 }, (_, i) => `scripts-${i}-${randomUUID()}`)
      const expiresAt = Date.now() + 60_000
      const later = expiresAt + 60_000
      yield* Effect.forEach(keys, (key) => store.commit(key, `v:${key}`, expiresAt, "create"), { concurrency: 10 })
      const touched = yield* Effect.forEach(keys, (key) => store.touch(key, later), { concurrency: 10 })
      expect(touched).toEqual(keys.map(() => "written"))
      for (const key of keys) {
        expect(yield* other.find(key)).toEqual(Option.some({ data: `v:${key}`, expiresAt: later }))
      }
      const taken = yield* Effect.forEach(
        keys,
        (key) => Effect.all([store.take(key), other.take(key)], { concurrency: "unbounded" }),
        { concurrency: 10 }
      )
      keys.forEach((key, i) =>
        expect(taken[i]!.filter(Option.isSome)).toEqual([Option.some({ data: `v:${key}`, expiresAt: later })])
      )
      for (const key of keys) {
        expect(yield* store.touch(key, later)).toBe("gone")
        expect(yield* other.commit(key, "stale", later, "update")).toBe("gone")
        expect(yield* store.find(key)).toEqual(Option.none())
      }
    }))

  it.scopedLive("owner indexes live on every master and enumeration skips them", () =>
    Effect.gen(function*() {
      const store = yield* RedisStore.make({ client: newCluster, prefix })
      const other = yield* RedisStore.make({ client: newCluster, prefix })
      const until = Date.now() + 60_000
      // Thirty owners spread over the masters, some with a hash tag of their own.
      const owners = Array.from({ length: 30 }, (_, i) => i % 3 === 0 ? `{${randomUUID()}}` : `user:${randomUUID()}`)
      yield* Effect.forEach(owners, (owner) => store.owners.link(owner, "h", `k:${owner}`, until), { concurrency: 10 })
      yield* store.commit("beside-owners", "x", until, "create")
      for (const owner of owners) {
        expect(yield* other.owners.list(owner)).toEqual([{ handle: "h", key: `k:${owner}` }])
      }
      const keys = Chunk.toReadonlyArray(yield* Stream.runCollect(Stream.map(store.all, (entry) => entry.key)))
      expect(keys).toContain("beside-owners")
      expect(keys.filter((key) => key.startsWith("owner:"))).toEqual([])
      for (const owner of owners) expect(yield* other.owners.revoke(owner, "all")).toEqual([`k:${owner}`])
    }))

  it.scopedLive("the Redis lock works through the Cluster client too", () =>
    Effect.gen(function*() {
      const lock = yield* RedisLock.make({ client: newCluster, prefix: `${prefix}lock:` })
      const other = yield* RedisLock.make({ client: newCluster, prefix: `${prefix}lock:` })
      const keys = Array.from({ length: 6 }, (_, i) => `cluster-lock-${i}`)
      const holder = yield* Scope.make()
      for (const key of keys) yield* Scope.extend(lock.acquire(key), holder)
      for (const key of keys) {
        const blocked = yield* Effect.either(Effect.scoped(other.acquire(key, { timeout: "50 millis" })))
        expect(Either.isLeft(blocked) && blocked.left.reason).toBe("Timeout")
      }
      yield* Scope.close(holder, Exit.void)
      for (const key of keys) yield* Effect.scoped(other.acquire(key, { timeout: "1 second" }))
    }))
})
