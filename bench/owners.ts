/**
 * Listing and revoking one owner's sessions on a full store: run as `node bench/owners.js --store
 * memory|redis|pg [--sessions 1000000] [--samples 500]` (compiled by the runner). Prints one JSON
 * object; exits with 3 when the store is unavailable (a skip, not a failure).
 *
 * The store is filled with `--sessions` sessions bound to a tenth as many owners, 10 each, written
 * the way the manager and the store write them (records from the JSON codec, 43-character
 * base64url keys like a hashed token, 22-character handles, each linked in the owner index until
 * its deadline) but in bulk: the memory store through its own API, Redis in pipelines of what its
 * commands and scripts write, PostgreSQL with multi-row inserts into the tables the store created.
 * One owner is then listed through the manager: it must show 10 sessions, or the run fails.
 *
 * Measured, one call at a time on an otherwise idle store: `manager.ownerSessions(owner)` and
 * `manager.revokeOwnerSessions(owner)` for `--samples` randomly chosen owners each, in turn, after
 * a discarded warm-up. Every revoked owner is replaced by a new one with 10 sessions (not timed),
 * so the store keeps its size and every sampled owner has exactly 10 live sessions.
 *
 * Bench data lives under its own Redis prefix and in its own PostgreSQL tables, removed at the
 * start (a crashed run's leftovers) and at the end; Redis keys also carry the sessions' 24-hour TTL.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import { randomBytes, randomInt } from "node:crypto"
import { performance } from "node:perf_hooks"
import * as Envelope from "../src/internal/envelope.js"
import * as SessionCodec from "../src/SessionCodec.js"
import * as SessionManager from "../src/SessionManager.js"
import { SessionStore } from "../src/SessionStore.js"
import * as MemoryStore from "../src/SessionStore/Memory.js"
import { argValue, userValue } from "./shared.js"
import { isReachable, pgAddress, redisAddress } from "./stores.js"

const storeName = argValue("store", "memory")
const sessions = Number(argValue("sessions", "1000000"))
const samples = Number(argValue("samples", "500"))

const PER_OWNER = 10
const LIFETIME_MS = 24 * 60 * 60 * 1000
const WARMUP = 20
// Owners written per bulk step (a pipeline, a pair of inserts).
const BATCH_OWNERS = 1_000
const REDIS_PREFIX = "effect-session-bench-owners:"
const PG_TABLE = "bench_owner_sessions"
// What an application would attach at `bindOwner`: a short device summary.
const LABEL = "Firefox 128 on Linux"

class Unavailable extends Error {}

// Progress on stderr: the runner shows its tail when a run fails.
const processStarted = performance.now()
const progress = (message: string): void => {
  process.stderr.write(
    `owners ${storeName} ${sessions}: ${message} at ${Math.round(performance.now() - processStarted)} ms\n`
  )
}

/** One session as the manager stores it, and its link in the owner index. */
interface Owned {
  readonly owner: string
  readonly handle: string
  readonly key: string
  readonly data: string
  readonly expiresAt: number
  readonly until: number
}

const ownerId = (i: number): string => `owner-${String(i).padStart(7, "0")}`

/** The sessions of `owners`, as the manager writes a session right after `bindOwner` (default options). */
const sessionsOf = (owners: ReadonlyArray<string>, now: number): Array<Owned> => {
  // 32 bytes of key (a SHA-256 with `hashTokenInStore`) and 16 of handle per session.
  const random = randomBytes(owners.length * PER_OWNER * 48)
  const result: Array<Owned> = []
  for (const owner of owners) {
    for (let j = 0; j < PER_OWNER; j++) {
      const at = result.length * 48
      const handle = random.toString("base64url", at + 32, at + 48)
      const deadline = now + LIFETIME_MS
      const encoded = SessionCodec.json.encode({
        createdAt: now,
        deadline,
        owner: { id: owner, handle, label: LABEL, seenAt: now },
        values: { user: userValue(result.length), count: 0 }
      })
      if (Either.isLeft(encoded)) throw new Error(`encode: ${encoded.left.message}`)
      result.push({
        owner,
        handle,
        key: random.toString("base64url", at, at + 32),
        data: encoded.right,
        expiresAt: deadline,
        // The manager links until `createdAt + maxLifetime`, which defaults to the lifetime.
        until: deadline
      })
    }
  }
  return result
}

/** A store under test, how to fill it in bulk, and what to do once it is full. */
interface Target {
  readonly store: SessionStore
  readonly fill: (owned: ReadonlyArray<Owned>) => Effect.Effect<void, unknown>
  readonly filled: Effect.Effect<void, unknown>
}

const memoryTarget: Effect.Effect<Target, unknown, Scope.Scope> = Effect.map(
  // No background sweep: it would land in some samples. Room for the replacement owners' sessions.
  MemoryStore.make({ cleanupInterval: 0, maxEntries: sessions + 100_000 }),
  (store) => ({
    store,
    fill: (owned) =>
      Effect.forEach(owned, (s) =>
        Effect.zipRight(
          store.commit(s.key, s.data, s.expiresAt, "create"),
          store.owners.link(s.owner, s.handle, s.key, s.until)
        ), { discard: true }),
    filled: Effect.void
  })
)

const redisTarget: Effect.Effect<Target, unknown, Scope.Scope> = Effect.gen(function*() {
  if (!(yield* Effect.promise(() => isReachable(redisAddress.host, redisAddress.port)))) {
    return yield* Effect.fail(new Unavailable(`no Redis at ${redisAddress.host}:${redisAddress.port}`))
  }
  const { Redis } = yield* Effect.tryPromise(() => import("ioredis"))
  const RedisStore = yield* Effect.tryPromise(() => import("../src/SessionStore/Redis.js"))
  const client = yield* Effect.acquireRelease(
    Effect.sync(() => new Redis({ ...RedisStore.failFastOptions, host: redisAddress.host, port: redisAddress.port })),
    (client) => Effect.promise(() => client.quit().catch(() => client.disconnect()))
  )
  // Waits until the client is ready.
  const store = yield* RedisStore.makeWithClient(client, { prefix: REDIS_PREFIX })
  const removeBenchKeys = Effect.tryPromise(async () => {
    const stream = client.scanStream({ match: `${REDIS_PREFIX}*`, count: 10_000 })
    for await (const keys of stream as AsyncIterable<Array<string>>) {
      if (keys.length > 0) await client.unlink(...keys)
    }
  })
  yield* removeBenchKeys
  yield* Effect.addFinalizer(() => Effect.orDie(removeBenchKeys))
  return {
    store,
    // What `commit` ("create") and the link script write: the session string with its PX, and
    // per owner one hash (field handle, value `<until>:<key>`) whose PEXPIRE follows the largest until.
    fill: (owned) =>
      Effect.tryPromise(async () => {
        const now = Date.now()
        const pipeline = client.pipeline()
        const byOwner = new Map<string, Array<Owned>>()
        for (const s of owned) {
          pipeline.set(REDIS_PREFIX + s.key, Envelope.encode(s.data, s.expiresAt), "PX", Math.ceil(s.expiresAt - now))
          const links = byOwner.get(s.owner)
          if (links === undefined) byOwner.set(s.owner, [s])
          else links.push(s)
        }
        for (const [owner, links] of byOwner) {
          const key = `${REDIS_PREFIX}owner:${owner}`
          const fields = links.flatMap((s) => [s.handle, `${Envelope.storedExpiry(s.until)}:${s.key}`])
          pipeline.hset(key, ...fields)
          pipeline.pexpire(key, Math.ceil(Math.max(...links.map((s) => s.until)) - now))
        }
        for (const [error] of (await pipeline.exec()) ?? []) if (error !== null) throw error
      }),
    filled: Effect.void
  }
})

const pgTarget: Effect.Effect<Target, unknown, Scope.Scope> = Effect.gen(function*() {
  if (!(yield* Effect.promise(() => isReachable(pgAddress.host, pgAddress.port)))) {
    return yield* Effect.fail(new Unavailable(`no PostgreSQL at ${pgAddress.host}:${pgAddress.port}`))
  }
  const PgClient = yield* Effect.tryPromise(() => import("@effect/sql-pg/PgClient"))
  const SqlStore = yield* Effect.tryPromise(() => import("../src/SessionStore/Sql.js"))
  const pg = yield* Layer.build(PgClient.layer(pgAddress))
  const sql = Context.get(pg, SqlClient.SqlClient).withoutTransforms()
  const dropTables = sql`DROP TABLE IF EXISTS ${sql(PG_TABLE)}, ${sql(`${PG_TABLE}_owners`)}`
  yield* dropTables
  yield* Effect.addFinalizer(() => Effect.orDie(dropTables))
  // The store creates its tables (`<table>` and `<table>_owners`) and their indexes.
  const store = yield* Effect.provide(SqlStore.make({ table: PG_TABLE, cleanupInterval: 0 }), pg)
  return {
    store,
    // The rows `commit` ("create") and `link` insert, many per statement: one array per column.
    fill: (owned) =>
      Effect.zipRight(
        sql.unsafe(
          `INSERT INTO ${PG_TABLE} (token, data, expiry) SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[])`,
          [owned.map((s) => s.key), owned.map((s) => s.data), owned.map((s) => s.expiresAt)]
        ),
        sql.unsafe(
          `INSERT INTO ${PG_TABLE}_owners (owner, handle, token, until)
            SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[])`,
          [owned.map((s) => s.owner), owned.map((s) => s.handle), owned.map((s) => s.key), owned.map((s) => s.until)]
        )
      ),
    // What autovacuum soon does after a bulk load (statistics, hint bits, visibility map), so that
    // the first samples do not pay for the load by writing back every page they read.
    filled: sql`VACUUM (ANALYZE) ${sql(PG_TABLE)}, ${sql(`${PG_TABLE}_owners`)}`
  }
})

const targets: Record<string, Effect.Effect<Target, unknown, Scope.Scope>> = {
  memory: memoryTarget,
  redis: redisTarget,
  pg: pgTarget
}

interface Latency {
  readonly p50Ms: number
  readonly p99Ms: number
  readonly maxMs: number
}

const latencyOf = (millis: ReadonlyArray<number>): Latency => {
  const sorted = [...millis].sort((a, b) => a - b)
  const at = (p: number) => sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)]
  const round = (ms: number) => Math.round(ms * 1000) / 1000
  return { p50Ms: round(at(0.5)), p99Ms: round(at(0.99)), maxMs: round(sorted[sorted.length - 1]) }
}

const run = Effect.gen(function*() {
  const target = targets[storeName]
  if (target === undefined) return yield* Effect.fail(new Unavailable(`unknown store ${storeName}`))
  const { fill, filled, store } = yield* target
  progress("opened")
  const manager = yield* Effect.provideService(SessionManager.make(), SessionStore, store)
  const ownerCount = Math.max(1, Math.floor(sessions / PER_OWNER))
  const owners = Array.from({ length: ownerCount }, (_, i) => ownerId(i))
  let nextOwner = ownerCount

  const fillStarted = performance.now()
  for (let i = 0; i < ownerCount; i += BATCH_OWNERS) {
    yield* fill(sessionsOf(owners.slice(i, i + BATCH_OWNERS), Date.now()))
  }
  yield* filled
  progress("filled")
  const fillSeconds = Math.round((performance.now() - fillStarted) / 100) / 10

  // A layout the manager does not read back would measure empty owners: every call is checked.
  const expectTen = (what: string, owner: string, count: number) =>
    count === PER_OWNER
      ? Effect.void
      : Effect.fail(new Error(`${what}(${owner}) saw ${count} sessions, expected ${PER_OWNER}: the fill is wrong`))
  const list = (owner: string) =>
    Effect.flatMap(manager.ownerSessions(owner), (listed) => expectTen("ownerSessions", owner, listed.length))
  const revoke = (owner: string) =>
    Effect.flatMap(manager.revokeOwnerSessions(owner), (revoked) => expectTen("revokeOwnerSessions", owner, revoked))
  yield* list(owners[randomInt(ownerCount)])

  progress("verified")

  // One owner listed, then one revoked, in turn, so that drift of the machine (or of the database's
  // background work) hits both alike. A revoked owner is replaced, untimed, by a new one.
  const listMillis: Array<number> = []
  const revokeMillis: Array<number> = []
  const time = <E>(effect: Effect.Effect<void, E>, into: Array<number>) =>
    Effect.suspend(() => {
      const started = performance.now()
      return Effect.tap(effect, () => {
        into.push(performance.now() - started)
      })
    })
  for (let i = 0; i < WARMUP + samples; i++) {
    const warm = i < WARMUP
    yield* time(list(owners[randomInt(ownerCount)]), warm ? [] : listMillis)
    const index = randomInt(ownerCount)
    yield* time(revoke(owners[index]), warm ? [] : revokeMillis)
    owners[index] = ownerId(nextOwner++)
    yield* fill(sessionsOf([owners[index]], Date.now()))
  }
  progress("measured")
  return {
    store: storeName,
    sessions: ownerCount * PER_OWNER,
    owners: ownerCount,
    sessionsPerOwner: PER_OWNER,
    samples,
    fillSeconds,
    list: latencyOf(listMillis),
    revoke: latencyOf(revokeMillis)
  }
})

const exit = await Effect.runPromiseExit(Effect.scoped(run))
progress("closed")
if (exit._tag === "Success") {
  console.log(JSON.stringify(exit.value))
} else {
  const failure = exit.cause._tag === "Fail" ? exit.cause.error : undefined
  console.error(failure instanceof Unavailable ? failure.message : Cause.pretty(exit.cause))
  process.exitCode = failure instanceof Unavailable ? 3 : 1
}
// The runner's IPC channel would keep this process alive.
if (process.connected) process.disconnect()
