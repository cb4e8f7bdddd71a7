/**
 * Accounts across processes: two server processes (`fixtures/accounts-server.ts`) share one
 * real store, a user is signed in on both, and "log out everywhere" on one process lands while a
 * request on the other has loaded its session and not yet committed. That request must not bring
 * the session back, whether it writes a value or renews its token. Real HTTP, real processes;
 * every wait is on a signal from a server, never on a timer.
 */
import * as PgClient from "@effect/sql-pg/PgClient"
import * as SqlClient from "@effect/sql/SqlClient"
import { afterAll, describe, expect, layer } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import { Redis } from "ioredis"
import { randomUUID } from "node:crypto"
import { requireBackend } from "./conformance.js"
import { call, cookieFrom, type Reply, type Served } from "./http.js"
import { spawnFixture } from "./processes.js"
import { isReachable, postgres, redis } from "./services.js"

const redisUp = await isReachable(redis.host, redis.port)
const postgresUp = await isReachable(postgres.host, postgres.port)
const skipRedis = requireBackend("Redis", redisUp, "run `bash scripts/services/redis.sh start`")
const skipPostgres = requireBackend("PostgreSQL", postgresUp, "run `bash scripts/services/postgres.sh start`")

// Each run has its own Redis prefix and PostgreSQL table, so runs never see each other's sessions.
const run = randomUUID()
const redisPrefix = `test:${run}:session:`
const pgTable = `cross_process_${run.replaceAll("-", "").slice(0, 16)}`

afterAll(async () => {
  if (redisUp) {
    const admin = new Redis({ host: redis.host, port: redis.port, lazyConnect: true })
    await admin.connect()
    for await (const keys of admin.scanStream({ match: `test:${run}:*`, count: 500 })) {
      if ((keys as Array<string>).length > 0) await admin.del(...(keys as Array<string>))
    }
    await admin.quit()
  }
  if (postgresUp) {
    await Effect.runPromise(
      Effect.flatMap(
        SqlClient.SqlClient,
        (sql) => sql`DROP TABLE IF EXISTS ${sql(pgTable)}, ${sql(`${pgTable}_owners`)}`
      ).pipe(Effect.provide(PgClient.layer(postgres)), Effect.orDie)
    )
  }
})

/** Starts an accounts server process, which prints `listening <port>` once it serves. */
const spawnServer = (name: string, env: Record<string, string>) =>
  Effect.map(spawnFixture("accounts-server.ts", { SERVER_NAME: name, ...env }, /^listening (\d+)$/), ({ match }) => {
    const url = `http://127.0.0.1:${match[1]}`
    const served: Served = { url, fetch: (route, init) => Effect.promise(() => fetch(url + route, init)) }
    return served
  })

const post = (server: Served, route: string, cookie?: string) =>
  call(server, route, { method: "POST", headers: cookie === undefined ? {} : { cookie } })

const get = (server: Served, route: string, cookie?: string) =>
  call(server, route, { headers: cookie === undefined ? {} : { cookie } })

/** The `session` cookies of a reply that a browser would keep (a deletion is not one). */
const liveSessionCookies = (reply: Reply) =>
  reply.setCookies.filter((line) =>
    line.startsWith("session=") && !line.startsWith("session=;") && !/;\s*Max-Age=0\b/i.test(line)
  )

interface Device {
  readonly handle: string
  readonly label: string | null
  readonly current: boolean
}

/** The two server processes of one store, shared by its tests (each test signs in its own user). */
class Servers extends Context.Tag("test/CrossProcess/Servers")<Servers, {
  readonly a: Served
  readonly b: Served
}>() {}

const layerServers = (env: Record<string, string>) =>
  Layer.scoped(
    Servers,
    Effect.map(Effect.all([spawnServer("A", env), spawnServer("B", env)], { concurrency: 2 }), ([a, b]) => ({ a, b }))
  )

const logOutEverywhereWhileHeld = (change: "put" | "renew") =>
  Effect.gen(function*() {
    const { a, b } = yield* Servers
    const user = `ada-${change}`
    const signIn = (server: Served) => Effect.map(post(server, `/login/${user}`), (reply) => cookieFrom(reply))
    const onA = yield* signIn(a)
    const onB = yield* signIn(b)
    expect(onA).not.toBe(onB)
    // Who each cookie is, asked of each process.
    const everyView = Effect.forEach(
      [[a, onA], [a, onB], [b, onA], [b, onB]] as const,
      ([server, cookie]) => Effect.map(get(server, "/me", cookie), (reply) => reply.body)
    )
    expect(yield* everyView).toEqual([user, user, user, user])

    // B's request loads its session, then waits for the test.
    const id = randomUUID()
    const held = yield* Effect.fork(post(b, `/held/${id}/${change}`, onB))
    // Should the test fail before releasing it, the server would wait for it before stopping.
    yield* Effect.addFinalizer(() => Effect.exit(post(b, `/held/${id}/release`)))
    const loaded = yield* Effect.raceFirst(
      get(b, `/held/${id}/loaded`),
      Effect.flatMap(Fiber.join(held), (reply) =>
        Effect.dieMessage(`the held request answered before it loaded: ${reply.status} ${reply.body}`))
    )
    expect(loaded.body).toBe("loaded")

    const logout = yield* post(a, "/logout-everywhere", onA)
    expect(logout.body).toBe("2")
    expect(liveSessionCookies(logout)).toEqual([])

    expect((yield* post(b, `/held/${id}/release`)).body).toBe("released")
    const reply = yield* Fiber.join(held)
    expect(reply.status).toBe(200)
    // It had loaded the signed-in session ...
    expect(reply.body).toBe(user)
    // ... and its commit neither resurrects it nor hands out a new one.
    expect(liveSessionCookies(reply)).toEqual([])
    expect(yield* everyView).toEqual(["nobody", "nobody", "nobody", "nobody"])

    // The owner's index holds only a login made after the revocation, on either process.
    const fresh = yield* signIn(a)
    for (const server of [a, b]) {
      const devices = JSON.parse((yield* get(server, "/devices", fresh)).body) as ReadonlyArray<Device>
      expect(devices.map(({ current, label }) => ({ label, current }))).toEqual([{ label: "A", current: true }])
    }
    expect((yield* get(b, "/me", fresh)).body).toBe(user)
  })

const stores = [
  { name: "Redis", skip: skipRedis, env: { STORE: "redis", STORE_PREFIX: redisPrefix } },
  { name: "PostgreSQL", skip: skipPostgres, env: { STORE: "postgres", STORE_TABLE: pgTable } }
]

for (const store of stores) {
  describe.skipIf(store.skip !== undefined)(
    `accounts across two processes on ${store.name}${store.skip ? ` (skipped: ${store.skip})` : ""}`,
    () =>
      layer(layerServers(store.env), { excludeTestServices: true })((it) => {
        it.scoped(
          "log out everywhere on A while B holds a loaded write: the write does not resurrect the session",
          () => logOutEverywhereWhileHeld("put")
        )
        it.scoped(
          "log out everywhere on A while B holds a loaded renewal: the renewal does not resurrect the session",
          () => logOutEverywhereWhileHeld("renew")
        )
      })
  )
}
