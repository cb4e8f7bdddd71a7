import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as Cookies from "@effect/platform/Cookies"
import * as HttpApi from "@effect/platform/HttpApi"
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as HttpClient from "@effect/platform/HttpClient"
import type * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServer from "@effect/platform/HttpServer"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as PgClient from "@effect/sql-pg/PgClient"
import { afterAll, describe, expect, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Chunk from "effect/Chunk"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Queue from "effect/Queue"
import * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"
import * as TestClock from "effect/TestClock"
import { Redis } from "ioredis"
import type { ChildProcess } from "node:child_process"
import { createHash, randomUUID } from "node:crypto"
import { Session } from "../src/Session.js"
import { SessionConfigError } from "../src/SessionConfigError.js"
import * as SessionLock from "../src/SessionLock.js"
import * as PgLock from "../src/SessionLock/Postgres.js"
import * as RedisLock from "../src/SessionLock/Redis.js"
import * as SessionManager from "../src/SessionManager.js"
import * as SessionMiddleware from "../src/SessionMiddleware.js"
import * as MemoryStore from "../src/SessionStore/Memory.js"
import { lockConformance } from "../src/testing/LockConformance.js"
import { requireBackend } from "./conformance.js"
import { counterRoutes } from "./fixtures/locks-counter.js"
import { spawnFixture } from "./processes.js"
import { isReachable, postgres, redis, service } from "./services.js"

const redisUp = await isReachable(redis.host, redis.port)
const postgresUp = await isReachable(postgres.host, postgres.port)
const skipRedis = requireBackend("Redis", redisUp, "run `bash scripts/services/redis.sh start`")
const skipPostgres = requireBackend("PostgreSQL", postgresUp, "run `bash scripts/services/postgres.sh start`")

const run = randomUUID()
const lockPrefix = `test:${run}:lock:`
const storePrefix = `test:${run}:session:`
const redisClient = { host: redis.host, port: redis.port }

afterAll(async () => {
  if (!redisUp) return
  const admin = new Redis({ ...redisClient, lazyConnect: true })
  await admin.connect()
  for await (const keys of admin.scanStream({ match: `test:${run}:*`, count: 500 })) {
    if ((keys as Array<string>).length > 0) await admin.del(...(keys as Array<string>))
  }
  await admin.quit()
})

// ---------------------------------------------------------------------------------------------
// Helpers: an in-process server with a counter, real HTTP through NodeHttpServer.layerTest.

/** The store key (and so the lock key) of a `session=<token>` cookie: base64url(SHA-256(token)). */
const storeKeyOf = (cookie: string): string =>
  createHash("sha256").update(cookie.slice("session=".length)).digest("base64url")

const SessionLive = SessionManager.layer().pipe(Layer.provide(MemoryStore.layer({ cleanupInterval: 0 })))

/** Starts `app` behind the middleware on a random loopback port; returns a client for it. */
const serve = <E>(
  app: HttpRouter.HttpRouter<E, Session>,
  middleware: SessionMiddleware.SessionMiddleware<SessionManager.SessionManager | SessionLock.SessionLock, Session>,
  lockLayer: Layer.Layer<SessionLock.SessionLock, unknown>
) =>
  Effect.map(
    Layer.build(
      HttpServer.serve(middleware(app)).pipe(
        Layer.provideMerge(NodeHttpServer.layerTest),
        Layer.provide(SessionLive),
        Layer.provide(lockLayer)
      )
    ),
    (context) => Context.get(context, HttpClient.HttpClient)
  )

const cookieOf = (response: HttpClientResponse.HttpClientResponse) => Cookies.toCookieHeader(response.cookies)

const startSession = (client: HttpClient.HttpClient) =>
  Effect.map(client.get("/start"), (response) => {
    expect(response.status).toBe(200)
    return cookieOf(response)
  })

const countOf = (client: HttpClient.HttpClient, cookie: string) =>
  Effect.flatMap(client.get("/count", { headers: { cookie } }), (response) => response.text)

/** The in-process lock, telling `acquiring` about every acquire as it starts. */
const observedInProcess = (acquiring: Queue.Queue<string>) =>
  Layer.scoped(
    SessionLock.SessionLock,
    Effect.map(SessionLock.makeInProcess(), (lock): SessionLock.SessionLock => ({
      acquire: (key, options) => Effect.zipRight(Queue.offer(acquiring, key), lock.acquire(key, options))
    }))
  )

/** Gives other fibers turns (a bounded number) until `TestClock` has `count` sleeps scheduled. */
const timersScheduled = (count: number) =>
  Effect.gen(function*() {
    for (let turn = 0; turn < 10_000; turn++) {
      if (Chunk.size(yield* TestClock.sleeps()) >= count) return
      yield* Effect.yieldNow()
    }
    return yield* Effect.dieMessage(`${count} sleeps never scheduled`)
  })

// ---------------------------------------------------------------------------------------------
// The contract, on every lock.

const pgConnection = {
  host: postgres.host,
  port: postgres.port,
  database: postgres.database,
  username: postgres.username
}

lockConformance({ name: "layerNone", layer: SessionLock.layerNone, excludes: false })
lockConformance({ name: "layerInProcess", layer: SessionLock.layerInProcess(), excludes: true, fair: true })
lockConformance({
  name: "Redis",
  layer: RedisLock.layer({ client: redisClient, prefix: lockPrefix }),
  crossProcess: RedisLock.layer({ client: redisClient, prefix: lockPrefix }),
  excludes: true,
  fair: true,
  clock: "live",
  skip: skipRedis
})
lockConformance({
  name: "PostgreSQL (its own default pool)",
  layer: PgLock.layer({ namespace: `test-${run}`, client: pgConnection }),
  crossProcess: PgLock.layer({ namespace: `test-${run}`, client: pgConnection }),
  excludes: true,
  fair: true,
  clock: "live",
  skip: skipPostgres
})

// ---------------------------------------------------------------------------------------------

describe("SessionLock (in process)", () => {
  it.scoped("idle keys are evicted: memory follows the sessions in use, not every session ever seen", () =>
    Effect.gen(function*() {
      const lock = yield* SessionLock.makeInProcess()
      for (let i = 0; i < 200; i++) yield* Effect.scoped(lock.acquire(`key-${i}`))
      expect(yield* lock.size).toBe(0)
      const held = yield* Scope.make()
      yield* Scope.extend(lock.acquire("held"), held)
      expect(yield* lock.size).toBe(1)
      yield* Scope.close(held, Exit.void)
      expect(yield* lock.size).toBe(0)

      const lingering = yield* SessionLock.makeInProcess({ idleTimeToLive: "1 minute" })
      for (let i = 0; i < 20; i++) yield* Effect.scoped(lingering.acquire(`key-${i}`))
      expect(yield* lingering.size).toBe(20)
      yield* TestClock.adjust("1 minute")
      // The evictions run on the fibers the adjustment woke: give them turns, a bounded number.
      for (let turn = 0; turn < 1_000 && (yield* lingering.size) > 0; turn++) yield* Effect.yieldNow()
      expect(yield* lingering.size).toBe(0)
    }))

  it.scoped("invalid options fail with SessionConfigError, never a silent clamp", () =>
    Effect.gen(function*() {
      const configError = (effect: Effect.Effect<unknown, unknown, Scope.Scope>) =>
        Effect.map(Effect.flip(effect), (error) => {
          expect(error).toBeInstanceOf(SessionConfigError)
          return (error as SessionConfigError).option
        })
      expect(yield* configError(SessionLock.makeInProcess({ idleTimeToLive: -1 }))).toBe("idleTimeToLive")
      expect(yield* configError(RedisLock.make({ client: redisClient, lease: 0 }))).toBe("lease")
      expect(yield* configError(RedisLock.make({ client: redisClient, pollInterval: "1 second" }))).toBe(
        "maxPollInterval"
      )
      expect(yield* configError(Layer.build(PgLock.layer({ client: { ...pgConnection, maxConnections: 0 } }))))
        .toBe("client.maxConnections")
      expect(yield* configError(Layer.build(PgLock.layer({ client: pgConnection, maxPollInterval: -5 }))))
        .toBe("maxPollInterval")
      // A per-call timeout that makes no sense is a programming error.
      const lock = yield* SessionLock.makeInProcess()
      const died = yield* Effect.exit(Effect.scoped(lock.acquire("k", { timeout: -1 })))
      expect(Exit.isFailure(died) && Cause.isDie(died.cause)).toBe(true)
    }))
})

describe("SessionMiddleware with a lock (in process, over HTTP)", () => {
  it.scopedLive("200 concurrent increments on one session end at exactly 200", () =>
    Effect.gen(function*() {
      const client = yield* serve(
        counterRoutes,
        SessionMiddleware.make({ lock: { timeout: "60 seconds" } }),
        SessionLock.layerInProcess()
      )
      const cookie = yield* startSession(client)
      const statuses = yield* Effect.forEach(
        Array.from({ length: 200 }),
        () => Effect.map(client.post("/increment", { headers: { cookie } }), (response) => response.status),
        { concurrency: "unbounded" }
      )
      expect(statuses.every((status) => status === 200)).toBe(true)
      expect(yield* countOf(client, cookie)).toBe("200")
    }), 60_000)

  /** Routes whose handler waits for the test, and counts its runs. */
  const gated = () => {
    const state = {
      entered: 0,
      gate: Effect.runSync(Deferred.make<void>()),
      firstEntered: Effect.runSync(Deferred.make<void>()),
      bothEntered: Effect.runSync(Deferred.make<void>())
    }
    const routes = counterRoutes.pipe(
      HttpRouter.post(
        "/gated-increment",
        Effect.gen(function*() {
          const session = yield* Session
          const count = yield* session.getInt("count")
          state.entered++
          if (state.entered === 1) yield* Deferred.succeed(state.firstEntered, undefined)
          if (state.entered === 2) yield* Deferred.succeed(state.bothEntered, undefined)
          yield* Deferred.await(state.gate)
          yield* session.put("count", count + 1)
          return HttpServerResponse.text(String(count + 1))
        })
      )
    )
    return { state, routes }
  }

  it.scopedLive("without a lock, two overlapping requests lose an update (last writer wins, as in scs)", () =>
    Effect.gen(function*() {
      const { routes, state } = gated()
      const client = yield* serve(routes, SessionMiddleware.make({ lock: true }), SessionLock.layerNone)
      const cookie = yield* startSession(client)
      const requests = yield* Effect.fork(Effect.all([
        client.post("/gated-increment", { headers: { cookie } }),
        client.post("/gated-increment", { headers: { cookie } })
      ], { concurrency: 2 }))
      // Both handlers loaded count = 0 before either committed.
      yield* Deferred.await(state.bothEntered)
      yield* Deferred.succeed(state.gate, undefined)
      const responses = yield* Fiber.join(requests)
      expect(yield* Effect.forEach(responses, (response) => response.text)).toEqual(["1", "1"])
      expect(yield* countOf(client, cookie)).toBe("1")
    }))

  it.scoped("with the lock, the second request waits for the first one's commit and sees its write (TestClock)", () =>
    Effect.gen(function*() {
      const { routes, state } = gated()
      const acquiring = yield* Queue.unbounded<string>()
      const client = yield* serve(
        routes,
        SessionMiddleware.make({ lock: { timeout: "1 hour" } }),
        observedInProcess(acquiring)
      )
      const cookie = yield* startSession(client)
      const first = yield* Effect.fork(client.post("/gated-increment", { headers: { cookie } }))
      yield* Deferred.await(state.firstEntered)
      const second = yield* Effect.fork(client.post("/gated-increment", { headers: { cookie } }))
      yield* Queue.take(acquiring)
      yield* Queue.take(acquiring)
      // The second request is parked on the lock: its timeout timer is the only sleep.
      yield* timersScheduled(1)
      expect(state.entered).toBe(1)
      yield* Deferred.succeed(state.gate, undefined)
      expect(yield* (yield* Fiber.join(first)).text).toBe("1")
      expect(yield* (yield* Fiber.join(second)).text).toBe("2")
      expect(yield* countOf(client, cookie)).toBe("2")
    }))

  it.scoped("a lock wait past its timeout answers 503 with Retry-After and the handler does not run (TestClock)", () =>
    Effect.gen(function*() {
      const { routes, state } = gated()
      const acquiring = yield* Queue.unbounded<string>()
      const client = yield* serve(
        routes,
        SessionMiddleware.make({ lock: { timeout: "10 seconds", retryAfter: "7 seconds" } }),
        observedInProcess(acquiring)
      )
      const cookie = yield* startSession(client)
      const first = yield* Effect.fork(client.post("/gated-increment", { headers: { cookie } }))
      yield* Deferred.await(state.firstEntered)
      const second = yield* Effect.fork(client.post("/gated-increment", { headers: { cookie } }))
      yield* Queue.take(acquiring)
      yield* Queue.take(acquiring)
      yield* timersScheduled(1)
      yield* TestClock.adjust("10 seconds")
      const busy = yield* Fiber.join(second)
      expect(busy.status).toBe(503)
      expect(busy.headers["retry-after"]).toBe("7")
      expect(state.entered).toBe(1)
      yield* Deferred.succeed(state.gate, undefined)
      expect((yield* Fiber.join(first)).status).toBe(200)
      expect(yield* countOf(client, cookie)).toBe("1")
    }))

  it.scopedLive(
    "the lock is released after a failing handler, a dying handler and a client that went away",
    () =>
      Effect.gen(function*() {
        const entered = yield* Deferred.make<void>()
        const routes = counterRoutes.pipe(
          HttpRouter.post("/fail", Effect.fail(new Error("handler failed"))),
          HttpRouter.post("/die", Effect.die("handler died")),
          HttpRouter.post("/hang", Effect.zipRight(Deferred.succeed(entered, undefined), Effect.never))
        )
        // A lock left behind would turn the next request into a 503 after the timeout.
        const client = yield* serve(
          routes,
          SessionMiddleware.make({ lock: { timeout: "10 seconds" } }),
          SessionLock.layerInProcess()
        )
        const cookie = yield* startSession(client)
        const increment = Effect.map(client.post("/increment", { headers: { cookie } }), (response) => response.status)

        expect((yield* client.post("/fail", { headers: { cookie } })).status).toBe(500)
        expect(yield* increment).toBe(200)
        expect((yield* client.post("/die", { headers: { cookie } })).status).toBe(500)
        expect(yield* increment).toBe(200)
        // The client gives up while the handler holds the lock.
        const hanging = yield* Effect.fork(client.post("/hang", { headers: { cookie } }))
        yield* Deferred.await(entered)
        yield* Fiber.interrupt(hanging)
        expect(yield* increment).toBe(200)
        expect(yield* countOf(client, cookie)).toBe("3")
      }),
    30_000
  )

  it.scopedLive("a lock backend that is down answers 503 + Retry-After, or what onError says; the handler does not run", () =>
    Effect.gen(function*() {
      let ran = 0
      const routes = counterRoutes.pipe(
        HttpRouter.post("/counted", Effect.sync(() => ++ran).pipe(Effect.as(HttpServerResponse.empty())))
      )
      const down = Layer.succeed(SessionLock.SessionLock, {
        acquire: () => Effect.fail(new SessionLock.SessionLockError({ reason: "Unavailable", detail: "backend down" }))
      })
      const client = yield* serve(routes, SessionMiddleware.make({ lock: true }), down)
      const cookie = yield* startSession(client)
      const busy = yield* client.post("/counted", { headers: { cookie } })
      expect(busy.status).toBe(503)
      expect(busy.headers["retry-after"]).toBe("1")
      const custom = yield* serve(
        routes,
        SessionMiddleware.make({
          lock: true,
          onError: (error) =>
            Effect.succeed(
              HttpServerResponse.text(error._tag === "SessionLockError" ? error.reason : "?", { status: 429 })
            )
        }),
        down
      )
      const answered = yield* custom.post("/counted", { headers: { cookie: yield* startSession(custom) } })
      expect(answered.status).toBe(429)
      expect(yield* answered.text).toBe("Unavailable")
      expect(ran).toBe(0)
    }))

  it.scopedLive("requests without a session (or with a malformed token) take no lock", () =>
    Effect.gen(function*() {
      const acquired: Array<string> = []
      const spy: SessionLock.SessionLock = {
        acquire: (key) => Effect.sync(() => acquired.push(key))
      }
      const client = yield* serve(
        counterRoutes,
        SessionMiddleware.make({ lock: true }),
        Layer.succeed(SessionLock.SessionLock, spy)
      )
      yield* client.get("/count")
      yield* client.get("/count", { headers: { cookie: "session=not-a-token" } })
      expect(acquired).toEqual([])
      const cookie = yield* startSession(client)
      yield* client.get("/count", { headers: { cookie } })
      // The lock key is the store key: the token's hash (hashTokenInStore is on by default).
      expect(acquired).toEqual([storeKeyOf(cookie)])
    }))

  it.scopedLive("with hashTokenInStore the lock key is the store key (the hash), never the token", () =>
    Effect.gen(function*() {
      const acquired: Array<string> = []
      const spy: SessionLock.SessionLock = { acquire: (key) => Effect.sync(() => acquired.push(key)) }
      const client = yield* Effect.map(
        Layer.build(
          HttpServer.serve(SessionMiddleware.make({ lock: true })(counterRoutes)).pipe(
            Layer.provideMerge(NodeHttpServer.layerTest),
            Layer.provide(
              SessionManager.layer({ hashTokenInStore: true }).pipe(
                Layer.provide(MemoryStore.layer({ cleanupInterval: 0 }))
              )
            ),
            Layer.provide(Layer.succeed(SessionLock.SessionLock, spy))
          )
        ),
        (context) => Context.get(context, HttpClient.HttpClient)
      )
      const cookie = yield* startSession(client)
      const token = cookie.slice("session=".length)
      yield* client.get("/count", { headers: { cookie } })
      expect(acquired.length).toBe(1)
      expect(acquired[0]).not.toBe(token)
      expect(acquired[0]).toBe(createHash("sha256").update(token).digest("base64url"))
    }))
})

// ---------------------------------------------------------------------------------------------
// Child processes: the counter server and a lock holder that gets killed.

const killed = (child: ChildProcess) =>
  Effect.async<void>((resume) => {
    child.once("exit", () => resume(Effect.void))
    child.kill("SIGKILL")
  })

const post = (port: number, route: string, cookie: string) =>
  Effect.tryPromise(async () => {
    const response = await fetch(`http://127.0.0.1:${port}${route}`, { method: "POST", headers: { cookie } })
    return { status: response.status, body: await response.text() }
  })

const get = (port: number, route: string, cookie?: string) =>
  Effect.tryPromise(async () => {
    const response = await fetch(
      `http://127.0.0.1:${port}${route}`,
      cookie === undefined ? {} : { headers: { cookie } }
    )
    const setCookie = response.headers.get("set-cookie")
    return { status: response.status, body: await response.text(), cookie: setCookie?.split(";")[0] }
  })

const acrossProcesses = (lock: "redis" | "postgres") =>
  Effect.gen(function*() {
    const env = { LOCK: lock, STORE_PREFIX: storePrefix, LOCK_PREFIX: lockPrefix, LOCK_NAMESPACE: `test-${run}` }
    const servers = yield* Effect.all([
      spawnFixture("locks-counter-server.ts", env, /^listening (\d+)$/),
      spawnFixture("locks-counter-server.ts", env, /^listening (\d+)$/)
    ], { concurrency: 2 })
    const ports = servers.map((server) => Number(server.match[1]))
    expect(new Set(ports).size).toBe(2)
    const started = yield* get(ports[0]!, "/start")
    const cookie = started.cookie!
    expect(cookie).toMatch(/^session=/)
    const responses = yield* Effect.forEach(
      Array.from({ length: 200 }, (_, i) => ports[i % 2]!),
      (port) => post(port, "/increment", cookie),
      { concurrency: "unbounded" }
    )
    expect(responses.filter((response) => response.status !== 200)).toEqual([])
    // Every increment saw a different value: none was lost, none was applied twice.
    expect(new Set(responses.map((response) => response.body)).size).toBe(200)
    expect((yield* get(ports[0]!, "/count", cookie)).body).toBe("200")
    expect((yield* get(ports[1]!, "/count", cookie)).body).toBe("200")
  })

// ---------------------------------------------------------------------------------------------

describe.skipIf(skipRedis !== undefined)(`SessionLock/Redis${skipRedis ? ` (skipped: ${skipRedis})` : ""}`, () => {
  const admin = Effect.acquireRelease(
    Effect.promise(async () => {
      const client = new Redis({ ...redisClient, lazyConnect: true })
      await client.connect()
      return client
    }),
    (client) => Effect.promise(() => client.quit())
  )
  const makeLock = (options: RedisLock.Options = {}) =>
    RedisLock.make({ client: redisClient, prefix: lockPrefix, ...options })

  it.scopedLive("only the owner releases: a holder whose lease ran out does not free the next holder's lock", () =>
    Effect.gen(function*() {
      const first = yield* makeLock()
      const second = yield* makeLock()
      const redis = yield* admin
      const firstScope = yield* Scope.make()
      yield* Scope.extend(first.acquire("owned"), firstScope)
      // The first holder's lease runs out (as after a long pause) ...
      yield* Effect.promise(() => redis.del(`${lockPrefix}owned`))
      // ... and someone else takes the lock.
      const secondScope = yield* Scope.make()
      yield* Scope.extend(second.acquire("owned", { timeout: "1 second" }), secondScope)
      const owner = yield* Effect.promise(() => redis.get(`${lockPrefix}owned`))
      yield* Scope.close(firstScope, Exit.void)
      expect(yield* Effect.promise(() => redis.get(`${lockPrefix}owned`))).toBe(owner)
      const blocked = yield* Effect.either(Effect.scoped(first.acquire("owned", { timeout: "100 millis" })))
      expect(Either.isLeft(blocked) && blocked.left.reason).toBe("Timeout")
      yield* Scope.close(secondScope, Exit.void)
      expect(yield* Effect.promise(() => redis.exists(`${lockPrefix}owned`))).toBe(0)
    }))

  it.scoped("the lease is extended while the lock is held (TestClock drives the renewal)", () =>
    Effect.gen(function*() {
      const lock = yield* makeLock({ lease: "45 seconds" })
      const redis = yield* admin
      yield* lock.acquire("renewed")
      const key = `${lockPrefix}renewed`
      expect(yield* Effect.promise(() => redis.pttl(key))).toBeGreaterThan(40_000)
      // As if most of the lease had passed.
      yield* Effect.promise(() => redis.pexpire(key, 10_000))
      // The renewal fiber sleeps a third of the lease on the TestClock (which starts at 0).
      for (let turn = 0; turn < 10_000; turn++) {
        if (Chunk.some(yield* TestClock.sleeps(), (wakeAt) => wakeAt === 15_000)) break
        yield* Effect.yieldNow()
      }
      yield* TestClock.adjust("15 seconds")
      // The renewal is a round trip to Redis: each check is one too (a bounded number, no timer).
      let pttl = 0
      for (let trip = 0; trip < 500 && pttl <= 40_000; trip++) pttl = yield* Effect.promise(() => redis.pttl(key))
      expect(pttl).toBeGreaterThan(40_000)
    }))

  it.scopedLive("a crashed holder's lock frees itself after its lease", () =>
    Effect.gen(function*() {
      const key = `crashed-${randomUUID()}`
      const holder = yield* spawnFixture("locks-holder.ts", {
        LOCK: "redis",
        KEY: key,
        LEASE: "3 seconds",
        LOCK_PREFIX: lockPrefix
      }, /^locked$/)
      const redis = yield* admin
      yield* killed(holder.child)
      // Nobody released it: it is still there, with its lease running.
      expect(yield* Effect.promise(() => redis.pttl(`${lockPrefix}${key}`))).toBeGreaterThan(0)
      const lock = yield* makeLock()
      yield* Effect.scoped(lock.acquire(key, { timeout: "15 seconds" }))
    }), 60_000)

  it.scopedLive(
    "Redis down: acquire fails with Unavailable at once, and works again when Redis is back",
    () =>
      Effect.gen(function*() {
        const lock = yield* makeLock()
        yield* Effect.acquireRelease(
          Effect.sync(() => service("redis", "stop")),
          () => Effect.sync(() => service("redis", "start"))
        )
        const failed = yield* Effect.either(Effect.scoped(lock.acquire("outage", { timeout: "30 seconds" })))
        expect(Either.isLeft(failed) && failed.left.reason).toBe("Unavailable")
        service("redis", "start")
        let recovered = false
        for (let attempt = 0; attempt < 200 && !recovered; attempt++) {
          recovered = Either.isRight(
            yield* Effect.either(Effect.scoped(lock.acquire("outage", { timeout: "1 second" })))
          )
          if (!recovered) yield* Effect.sleep("50 millis")
        }
        expect(recovered).toBe(true)
      }),
    60_000
  )

  it.scopedLive("over HTTP: a lock held elsewhere turns the request into 503 + Retry-After after the timeout", () =>
    Effect.gen(function*() {
      const lockLayer = RedisLock.layer({ client: redisClient, prefix: lockPrefix })
      const client = yield* serve(
        counterRoutes,
        SessionMiddleware.make({ lock: { timeout: "300 millis", retryAfter: "2 seconds" } }),
        Layer.orDie(lockLayer)
      )
      const cookie = yield* startSession(client)
      // Another process holds this session's lock.
      const other = yield* makeLock()
      yield* other.acquire(storeKeyOf(cookie))
      const response = yield* client.post("/increment", { headers: { cookie } })
      expect(response.status).toBe(503)
      expect(response.headers["retry-after"]).toBe("2")
    }))

  it.scopedLive(
    "200 concurrent increments through two server processes sharing Redis end at exactly 200",
    () => acrossProcesses("redis"),
    120_000
  )
})

describe.skipIf(skipPostgres !== undefined || skipRedis !== undefined)(
  `SessionLock/Postgres${skipPostgres ?? skipRedis ? ` (skipped: ${skipPostgres ?? skipRedis})` : ""}`,
  () => {
    const PgLive = PgClient.layer({ ...pgConnection, maxConnections: 3 })
    const makeLock = Effect.flatMap(
      Layer.build(PgLive),
      (context) => Effect.provide(PgLock.make({ namespace: `test-${run}` }), context)
    )
    const lockOf = (layer: Layer.Layer<SessionLock.SessionLock, unknown>) =>
      Effect.map(Layer.build(layer), Context.get(SessionLock.SessionLock))

    it.scopedLive("the wait for a pooled connection counts against the timeout and can be interrupted", () =>
      Effect.gen(function*() {
        // A pool of one connection, held by the first lock.
        const lock = yield* lockOf(
          PgLock.layer({ namespace: `test-${run}`, client: { ...pgConnection, maxConnections: 1 } })
        )
        const holder = yield* Scope.make()
        yield* Scope.extend(lock.acquire("first", { timeout: "5 seconds" }), holder)
        const start = yield* Clock.currentTimeMillis
        const waited = yield* Effect.either(Effect.scoped(lock.acquire("second", { timeout: "300 millis" })))
        expect(Either.isLeft(waited) && waited.left.reason).toBe("Timeout")
        expect((yield* Clock.currentTimeMillis) - start).toBeLessThan(5_000)
        // A client that went away stops waiting for the connection, even from an uninterruptible region.
        const gone = yield* Effect.fork(
          Effect.uninterruptible(Effect.scoped(lock.acquire("second", { timeout: "1 minute" })))
        )
        yield* Effect.sleep("50 millis")
        expect(Exit.isInterrupted(yield* Fiber.interrupt(gone))).toBe(true)
        // Neither waiter kept the connection once it came back.
        yield* Scope.close(holder, Exit.void)
        for (let i = 0; i < 5; i++) yield* Effect.scoped(lock.acquire(`second-${i}`, { timeout: "5 seconds" }))
      }))

    it.scopedLive("each release unlocks on its own connection and gives it back to the pool", () =>
      Effect.gen(function*() {
        const lock = yield* makeLock
        // More acquisitions than the pool has connections: a connection kept would block.
        for (let i = 0; i < 20; i++) yield* Effect.scoped(lock.acquire(`pool-${i % 4}`, { timeout: "5 seconds" }))
        const sql = Context.get(yield* Layer.build(PgLive), PgClient.PgClient)
        for (let i = 0; i < 4; i++) {
          // A bigint advisory lock shows in pg_locks as its high and low 32 bits.
          const id = BigInt(PgLock.lockId(`test-${run}`, `pool-${i}`))
          const high = String((id >> 32n) & 0xffffffffn)
          const low = String(id & 0xffffffffn)
          const rows = yield* sql<{ count: string }>`SELECT count(*)::text AS count FROM pg_locks
            WHERE locktype = 'advisory' AND classid = ${high}::oid AND objid = ${low}::oid AND objsubid = 1`
          expect(rows[0]!.count).toBe("0")
        }
      }))

    it.scopedLive("a crashed holder's lock is freed with its connection", () =>
      Effect.gen(function*() {
        const key = `crashed-${randomUUID()}`
        const holder = yield* spawnFixture("locks-holder.ts", {
          LOCK: "postgres",
          KEY: key,
          LOCK_NAMESPACE: `test-${run}`
        }, /^locked$/)
        const lock = yield* makeLock
        const blocked = yield* Effect.either(Effect.scoped(lock.acquire(key, { timeout: "100 millis" })))
        expect(Either.isLeft(blocked) && blocked.left.reason).toBe("Timeout")
        yield* killed(holder.child)
        yield* Effect.scoped(lock.acquire(key, { timeout: "15 seconds" }))
      }), 60_000)

    it.scopedLive(
      "200 concurrent increments through two server processes sharing PostgreSQL locks end at exactly 200",
      () => acrossProcesses("postgres"),
      120_000
    )
  }
)

describe("SessionMiddleware.layerApi with a lock (HttpApi)", () => {
  const gate = Effect.runSync(Deferred.make<void>())
  const firstEntered = Effect.runSync(Deferred.make<void>())
  let entered = 0
  class Api extends HttpApi.make("api").add(
    HttpApiGroup.make("counter")
      .add(HttpApiEndpoint.get("start", "/start").addSuccess(Schema.String))
      .add(HttpApiEndpoint.post("gated", "/gated").addSuccess(Schema.String))
      .middleware(SessionMiddleware.SessionApi)
  ) {}
  const CounterLive = HttpApiBuilder.group(Api, "counter", (handlers) =>
    handlers
      .handle("start", () =>
        Effect.flatMap(Session, (session) => session.put("count", 0)).pipe(Effect.orDie, Effect.as("0")))
      .handle("gated", () =>
        Effect.gen(function*() {
          const session = yield* Session
          const count = yield* session.getInt("count")
          entered++
          yield* Deferred.succeed(firstEntered, undefined)
          yield* Deferred.await(gate)
          yield* Effect.orDie(session.put("count", count + 1))
          return String(count + 1)
        })))

  it.scoped("a lock wait past its timeout fails with SessionBusy: 503 with Retry-After (TestClock)", () =>
    Effect.gen(function*() {
      const acquiring = yield* Queue.unbounded<string>()
      const context = yield* Layer.build(
        HttpApiBuilder.serve().pipe(
          Layer.provide(HttpApiBuilder.api(Api)),
          Layer.provide(CounterLive),
          Layer.provide(SessionMiddleware.layerApi({ lock: { timeout: "10 seconds", retryAfter: "4 seconds" } })),
          Layer.provideMerge(NodeHttpServer.layerTest),
          Layer.provide(SessionLive),
          Layer.provide(observedInProcess(acquiring))
        )
      )
      const client = Context.get(context, HttpClient.HttpClient)
      const cookie = yield* startSession(client)
      const first = yield* Effect.fork(client.post("/gated", { headers: { cookie } }))
      yield* Deferred.await(firstEntered)
      const second = yield* Effect.fork(client.post("/gated", { headers: { cookie } }))
      yield* Queue.take(acquiring)
      yield* Queue.take(acquiring)
      yield* timersScheduled(1)
      yield* TestClock.adjust("10 seconds")
      const busy = yield* Fiber.join(second)
      expect(busy.status).toBe(503)
      expect(busy.headers["retry-after"]).toBe("4")
      expect(yield* busy.json).toEqual({ _tag: "SessionBusy" })
      expect(entered).toBe(1)
      yield* Deferred.succeed(gate, undefined)
      const done = yield* Fiber.join(first)
      expect(done.status).toBe(200)
      expect(yield* done.json).toBe("1")
    }))
})
