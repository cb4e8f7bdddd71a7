/**
 * A store's timeout must hold inside a request. `@effect/platform` runs the whole app
 * uninterruptibly, where `Effect.timeout` alone cannot stop a stuck call: these tests stall a
 * real server behind a real HTTP server and expect the middleware's error answer in time.
 */
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServer from "@effect/platform/HttpServer"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as SqlClient from "@effect/sql/SqlClient"
import { describe, expect, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import { Redis } from "ioredis"
import { randomUUID } from "node:crypto"
import { Session } from "../src/Session.js"
import * as SessionManager from "../src/SessionManager.js"
import * as SessionMiddleware from "../src/SessionMiddleware.js"
import type { SessionStore } from "../src/SessionStore.js"
import * as PgStore from "../src/SessionStore/Pg.js"
import * as RedisStore from "../src/SessionStore/Redis.js"
import { eventually, requireBackend } from "./conformance.js"
import { isReachable, postgres, redis } from "./services.js"

const TIMEOUT = Duration.seconds(1)
// The answer may take the store's timeout plus this much (connection setup, the HTTP round trip).
const SLACK_MILLIS = 1_000

const pgSkip = requireBackend(
  "PostgreSQL",
  await isReachable(postgres.host, postgres.port),
  `start it with \`bash scripts/start-services.sh\` (expects ${postgres.host}:${postgres.port})`
)
const redisSkip = requireBackend(
  "Redis",
  await isReachable(redis.host, redis.port),
  `start it with \`bash scripts/start-services.sh\` (expects ${redis.host}:${redis.port})`
)

const router = HttpRouter.empty.pipe(
  HttpRouter.get(
    "/write",
    Effect.gen(function*() {
      const session = yield* Session
      // A new value every time, so every request commits.
      yield* session.put("written", randomUUID())
      return HttpServerResponse.text("ok")
    })
  )
)

/** The app over `store`, served on a random loopback port, with a client pointed at it. */
const served = (store: Layer.Layer<SessionStore, unknown>) =>
  HttpServer.serve(SessionMiddleware.loadAndSave(router)).pipe(
    Layer.provideMerge(NodeHttpServer.layerTest),
    // The test reaches the stored row by the raw token.
    Layer.provide(SessionManager.layer({ hashTokenInStore: false }).pipe(Layer.provide(store)))
  )

interface Answer {
  readonly status: number
  readonly cookie: string | undefined
  readonly millis: number
}

/** GET /write with `cookie`, timed with the wall clock (this is about real I/O). */
const write = (cookie?: string): Effect.Effect<Answer, unknown, HttpClient.HttpClient> =>
  Effect.gen(function*() {
    const client = yield* HttpClient.HttpClient
    const started = Date.now()
    const request = HttpClientRequest.get("/write").pipe(
      cookie === undefined ? (r) => r : HttpClientRequest.setHeader("cookie", `session=${cookie}`)
    )
    const response = yield* client.execute(request)
    yield* response.text
    const line = response.headers["set-cookie"]
    const first = Array.isArray(line) ? line[0] : line
    const match = typeof first === "string" ? /^session=([^;]*)/.exec(first) : null
    return { status: response.status, cookie: match?.[1], millis: Date.now() - started }
  })

const expectErrorAnswerInTime = (answer: Answer) => {
  expect(answer.status).toBe(500)
  expect(answer.millis).toBeGreaterThanOrEqual(Duration.toMillis(TIMEOUT) - 50)
  expect(answer.millis).toBeLessThan(Duration.toMillis(TIMEOUT) + SLACK_MILLIS)
}

describe.skipIf(pgSkip !== undefined)("store timeouts inside a request: PostgreSQL", () => {
  const table = "store_timeout_sessions"
  const client: PgClient.PgClientConfig = { ...postgres }

  /** Locks the session's row from another connection until the scope closes (or `release`). */
  const holdRowLock = (token: string): Effect.Effect<Effect.Effect<void, unknown>, unknown, Scope.Scope> =>
    Effect.gen(function*() {
      const sql = Context.get(yield* Layer.build(PgClient.layer(client)), SqlClient.SqlClient)
      const connection = yield* sql.reserve
      yield* connection.executeRaw("BEGIN", [])
      const [text, params] = sql`SELECT * FROM ${sql(table)} WHERE token = ${token} FOR UPDATE`.compile()
      expect(yield* connection.execute(text, params, undefined)).toHaveLength(1)
      const release = Effect.asVoid(connection.executeRaw("ROLLBACK", []))
      yield* Effect.addFinalizer(() => Effect.ignore(release))
      return release
    })

  const waitingUpdates = Effect.gen(function*() {
    const sql = Context.get(yield* Layer.build(PgClient.layer(client)), SqlClient.SqlClient)
    return yield* Effect.map(
      sql<{ n: string }>`SELECT count(*) AS n FROM pg_stat_activity
        WHERE wait_event_type = 'Lock' AND query LIKE ${`UPDATE ${table}%`}`,
      (rows) => Number(rows[0].n)
    )
  })

  it.live("a commit stuck behind a row lock gets the error answer within the store's timeout", () =>
    Effect.gen(function*() {
      const created = yield* write()
      expect(created.status).toBe(200)
      const token = created.cookie!
      const release = yield* holdRowLock(token)

      expectErrorAnswerInTime(yield* write(token))
      // The statement was cancelled on the server, not left waiting to apply later.
      yield* eventually(Effect.map(Effect.scoped(waitingUpdates), (n) => n === 0))

      yield* release
      // The pool's connections are fine afterwards: the same session commits again.
      const after = yield* write(token)
      expect(after.status).toBe(200)
    }).pipe(
      Effect.scoped,
      Effect.provide(served(PgStore.layer({ client, table, cleanupInterval: 0, timeout: TIMEOUT })))
    ))
})

describe.skipIf(redisSkip !== undefined)("store timeouts inside a request: Redis", () => {
  const prefix = `test:${randomUUID()}:timeout:`

  /** Pauses every write on the server from another connection; unpaused when the scope closes. */
  const pauseWrites = (millis: number): Effect.Effect<Effect.Effect<void>, unknown, Scope.Scope> =>
    Effect.gen(function*() {
      const admin = yield* Effect.acquireRelease(
        Effect.sync(() => new Redis({ ...redis, lazyConnect: true })),
        (admin) => Effect.promise(() => admin.quit())
      )
      yield* Effect.promise(() => admin.connect())
      const unpause = Effect.asVoid(Effect.promise(() => admin.call("CLIENT", "UNPAUSE")))
      yield* Effect.addFinalizer(() => unpause)
      yield* Effect.promise(() => admin.call("CLIENT", "PAUSE", String(millis), "WRITE"))
      return unpause
    })

  it.live("a commit to a paused Redis gets the error answer within the store's timeout", () =>
    Effect.gen(function*() {
      const created = yield* write()
      expect(created.status).toBe(200)
      const token = created.cookie!
      // Longer than the store's timeout plus the slack: only the store's timeout can end the wait.
      const unpause = yield* pauseWrites(Duration.toMillis(TIMEOUT) + SLACK_MILLIS + 3_000)

      expectErrorAnswerInTime(yield* write(token))

      yield* unpause
      // The client is fine afterwards: the late reply of the abandoned command was read and dropped.
      const after = yield* write(token)
      expect(after.status).toBe(200)
    }).pipe(
      Effect.scoped,
      Effect.provide(served(RedisStore.layer({ client: { ...redis }, prefix, timeout: TIMEOUT })))
    ))
})
