/**
 * Regression: a flood of random, well-formed session cookies must not starve a logged-in user
 * when the middleware holds the PostgreSQL lock. Each unknown token may cost a `find`, never a
 * lock (nor a pooled connection of the lock): real PostgreSQL, the lock's default pool.
 */
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as Cookies from "@effect/platform/Cookies"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServer from "@effect/platform/HttpServer"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as PgClient from "@effect/sql-pg/PgClient"
import { describe, expect, it } from "@effect/vitest"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { randomBytes, randomUUID } from "node:crypto"
import { Session } from "../src/Session.js"
import * as PgLock from "../src/SessionLock/Postgres.js"
import * as SessionManager from "../src/SessionManager.js"
import * as SessionMiddleware from "../src/SessionMiddleware.js"
import * as PgStore from "../src/SessionStore/Pg.js"
import { requireBackend } from "./conformance.js"
import { isReachable, postgres } from "./services.js"

const skip = requireBackend(
  "PostgreSQL",
  await isReachable(postgres.host, postgres.port),
  "run `bash scripts/services/postgres.sh start`"
)

const run = randomUUID().replaceAll("-", "")
const table = `flood_${run.slice(0, 16)}`
const namespace = `flood-${run}`
const connection: PgClient.PgClientConfig = { ...postgres }
/** The middleware's default lock timeout: the user's requests must answer well within it. */
const LOCK_TIMEOUT_MILLIS = 5_000
const FLOOD = 200
const USER_REQUESTS = 20

const routes = HttpRouter.empty.pipe(
  HttpRouter.post(
    "/login",
    Effect.flatMap(Session, (session) => session.put("userId", "ada")).pipe(
      Effect.as(HttpServerResponse.text("welcome"))
    )
  ),
  HttpRouter.get(
    "/me",
    Effect.flatMap(Session, (session) => session.getString("userId")).pipe(
      Effect.map((userId) =>
        userId === "" ? HttpServerResponse.text("who?", { status: 401 }) : HttpServerResponse.text(userId)
      )
    )
  )
)

const ServerLive = HttpServer.serve(SessionMiddleware.make({ lock: true })(routes)).pipe(
  Layer.provideMerge(NodeHttpServer.layerTest),
  Layer.provide(
    SessionManager.layer().pipe(Layer.provide(PgStore.layer({ client: connection, table, cleanupInterval: 0 })))
  ),
  // The lock with the pool it builds by default (its own, PgLock.DEFAULT_MAX_CONNECTIONS).
  Layer.provide(PgLock.layer({ namespace, client: connection }))
)

/** Advisory locks held right now by the lock's pool (its connections are named by the lock). */
const advisoryLocksHeld = (sql: PgClient.PgClient) =>
  Effect.map(
    sql<{ held: string }>`SELECT count(*)::text AS held FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
      WHERE l.locktype = 'advisory' AND l.granted AND a.application_name = 'effect-session/SessionLock'`,
    (rows) => Number(rows[0]!.held)
  )

const randomCookie = () => `session=${randomBytes(32).toString("base64url")}`

describe.skipIf(skip !== undefined)(`Lock flood on PostgreSQL${skip ? ` (skipped: ${skip})` : ""}`, () => {
  it.scopedLive(
    `${FLOOD} requests with random cookies in flight do not delay a logged-in user's requests`,
    () =>
      Effect.gen(function*() {
        const admin = Context.get(
          yield* Layer.build(PgClient.layer({ ...connection, maxConnections: 2 })),
          PgClient.PgClient
        )
        yield* Effect.addFinalizer(() => Effect.ignore(admin`DROP TABLE IF EXISTS ${admin(table)}`))
        const client = Context.get(yield* Layer.build(ServerLive), HttpClient.HttpClient)

        const login = yield* client.post("/login")
        expect(login.status).toBe(200)
        const cookie = Cookies.toCookieHeader(login.cookies)
        expect(yield* Effect.flatMap(client.get("/me", { headers: { cookie } }), (r) => r.text)).toBe("ada")

        let userDone = false
        const floodStatuses = new Map<number, number>()
        // Each flood worker keeps one request in flight until the user is done (bounded).
        const flood = yield* Effect.fork(Effect.forEach(
          Array.from({ length: FLOOD }),
          () =>
            Effect.gen(function*() {
              for (let i = 0; i < 100 && !userDone; i++) {
                const response = yield* client.get("/me", { headers: { cookie: randomCookie() } })
                floodStatuses.set(response.status, (floodStatuses.get(response.status) ?? 0) + 1)
              }
            }),
          { concurrency: "unbounded", discard: true }
        ))
        let mostLocksHeld = 0
        const sampler = yield* Effect.fork(Effect.gen(function*() {
          for (let i = 0; i < 10_000 && !userDone; i++) {
            mostLocksHeld = Math.max(mostLocksHeld, yield* advisoryLocksHeld(admin))
            yield* Effect.sleep("5 millis")
          }
        }))
        // Let the flood reach the server before the user asks.
        while (floodStatuses.size === 0) yield* Effect.sleep("5 millis")

        const userTimings: Array<{ readonly status: number; readonly millis: number }> = []
        for (let i = 0; i < USER_REQUESTS; i++) {
          const start = yield* Clock.currentTimeMillis
          const response = yield* client.get("/me", { headers: { cookie } })
          const body = yield* response.text
          userTimings.push({ status: response.status, millis: (yield* Clock.currentTimeMillis) - start })
          expect(body).toBe("ada")
        }
        userDone = true
        yield* Effect.all([flood.await, sampler.await])

        const seen = `locks held at once: ${mostLocksHeld}, flood statuses: ${JSON.stringify([...floodStatuses])}, ` +
          `user timings (ms): ${userTimings.map((timing) => timing.millis).join(",")}`
        // The lock's pool was never exhausted: at most the user's own session was locked at once.
        expect(mostLocksHeld, seen).toBeLessThanOrEqual(1)
        expect(mostLocksHeld, seen).toBeLessThan(PgLock.DEFAULT_MAX_CONNECTIONS)
        // Unknown tokens are answered as strangers, never with a 503 (a lock or pool wait that ran out).
        expect(floodStatuses.get(503) ?? 0, seen).toBe(0)
        expect([...floodStatuses.keys()], seen).toEqual([401])
        expect(userTimings.filter((timing) => timing.status !== 200), seen).toEqual([])
        // Within the lock timeout with room to spare: the user never queued behind strangers' locks. The
        // margin covers queueing behind the flood itself (one Node process serves and floods, on a busy CI box).
        expect(Math.max(...userTimings.map((timing) => timing.millis)), seen).toBeLessThan(LOCK_TIMEOUT_MILLIS * 0.8)
      }),
    120_000
  )
})
