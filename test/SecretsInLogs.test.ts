/**
 * No log line the library writes, and no store error a user can print, holds a token, a store key
 * or session data — whatever the driver put on its error. Real servers answer with real errors
 * (a read-only Redis replica, PostgreSQL rejecting a row), over real HTTP, and every line is
 * captured as each of Effect's loggers prints it. The same operations run once more under a real OpenTelemetry
 * pipeline (`test/otel.ts`), and no exported span (its name, attributes, events — log lines become span events, and a
 * failure's `exception.stacktrace` renders the error with its causes — or status) may hold one either.
 */
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as SqlClient from "@effect/sql/SqlClient"
import { afterAll, describe, expect, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import type * as Console from "effect/Console"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import type * as Scope from "effect/Scope"
import { Redis } from "ioredis"
import { Console as NodeConsole } from "node:console"
import { createHash, randomBytes, randomUUID } from "node:crypto"
import { Writable } from "node:stream"
import { inspect } from "node:util"
import { Session } from "../src/Session.js"
import * as SessionManager from "../src/SessionManager.js"
import * as SessionMiddleware from "../src/SessionMiddleware.js"
import type { SessionStore, SessionStoreError } from "../src/SessionStore.js"
import * as PgStore from "../src/SessionStore/Pg.js"
import * as RedisStore from "../src/SessionStore/Redis.js"
import { requireBackend } from "./conformance.js"
import { call, cookieFrom, serve } from "./http.js"
import { makeOtel, spanStrings } from "./otel.js"
import type { ReadableSpan } from "./otel.js"
import { isReachable, postgres, redis, redisReplica } from "./services.js"

const redisSkip = requireBackend(
  "Redis and its read-only replica",
  (await isReachable(redis.host, redis.port)) && (await isReachable(redisReplica.host, redisReplica.port)),
  `run \`bash scripts/services/redis-replica.sh start\` (expects ${redis.port} and ${redisReplica.port})`
)
const pgSkip = requireBackend(
  "PostgreSQL",
  await isReachable(postgres.host, postgres.port),
  `run \`bash scripts/start-services.sh\` (expects ${postgres.host}:${postgres.port})`
)

const prefix = `test:${randomUUID()}:secrets:`
// Put in every session: it must never be printed.
const marker = `SECRET${randomBytes(6).toString("hex")}`

// A token (43 characters of base64url) or a hashed key, printed anywhere.
const TOKEN_LIKE = /[A-Za-z0-9_-]{43}/

/** What the store sees for `token` with `hashTokenInStore` (the default). */
const hashed = (token: string) => createHash("sha256").update(token).digest("base64url")

const tokenOf = (cookie: string) => cookie.slice(cookie.indexOf("=") + 1)

const loggers = {
  default: Logger.defaultLogger,
  logfmt: Logger.withConsoleLog(Logger.logfmtLogger),
  json: Logger.withConsoleLog(Logger.jsonLogger),
  pretty: Logger.prettyLogger({ colors: false })
} as const

type LoggerName = keyof typeof loggers

/**
 * Runs `effect` with `logger` as the only logger (every level), printing into a console whose
 * output is recorded: the lines exactly as the logger would print them.
 */
const capturing = <A, E, R>(logger: Logger.Logger<unknown, void>, effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const lines: Array<string> = []
    const sink = new Writable({
      write(chunk, _encoding, done) {
        lines.push(String(chunk))
        done()
      }
    })
    const unsafe = new NodeConsole({ stdout: sink, stderr: sink })
    const recording: Console.Console = { ...(yield* Effect.console), unsafe }
    const result = yield* effect.pipe(
      Effect.withConsole(recording),
      Logger.withMinimumLogLevel(LogLevel.All),
      Effect.provide(Logger.replace(Logger.defaultLogger, logger))
    )
    return { result, lines }
  })

/** Every secret absent from every line. */
const expectNoSecrets = (lines: ReadonlyArray<string>, secrets: ReadonlyArray<string>) => {
  for (const line of lines) {
    for (const secret of secrets) expect(line).not.toContain(secret)
    expect(line).not.toMatch(TOKEN_LIKE)
  }
}

/**
 * Every secret absent from every string of every exported span; a failure lists the span, the string and the
 * secret's kind (the secret itself is not printed).
 */
const expectNoSecretsInSpans = (spans: ReadonlyArray<ReadableSpan>, secrets: Readonly<Record<string, string>>) => {
  const leaks: Array<string> = []
  for (const span of spans) {
    for (const text of spanStrings(span)) {
      for (const [what, secret] of Object.entries(secrets)) {
        if (text.includes(secret)) leaks.push(`${span.name} carries the ${what} in: ${text.slice(0, 2_000)}`)
      }
      if (TOKEN_LIKE.test(text)) leaks.push(`${span.name} carries a token-like run in: ${text.slice(0, 2_000)}`)
    }
  }
  expect(leaks).toEqual([])
}

/** Names the secrets a scenario returned, for `expectNoSecretsInSpans`. */
const named = (prefix: string, values: ReadonlyArray<string>): Record<string, string> =>
  Object.fromEntries(values.map((value, i) => [`${prefix} ${i}`, value]))

/**
 * Runs `effect` under a fresh OpenTelemetry pipeline (closed when it ends: the spans are flushed) and returns its
 * result with every span exported.
 */
const traced = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const otel = makeOtel({ serviceName: "effect-session-secrets" })
    const result = yield* Effect.provide(effect, otel.layer)
    return { result, spans: otel.spans() }
  })

const router = HttpRouter.empty.pipe(
  HttpRouter.get(
    "/put",
    Effect.gen(function*() {
      const session = yield* Session
      yield* session.put("marker", marker)
      return HttpServerResponse.text("ok")
    })
  ),
  HttpRouter.get(
    "/change",
    Effect.gen(function*() {
      const session = yield* Session
      yield* session.put("marker", `${marker}-changed`)
      return HttpServerResponse.text("ok")
    })
  ),
  HttpRouter.get("/read", Effect.as(Session, HttpServerResponse.text("ok")))
)

/** The app over `store`, on a real loopback port. */
const app = (store: Layer.Layer<SessionStore, unknown>) =>
  Effect.flatMap(
    Layer.build(SessionManager.layer().pipe(Layer.provide(store), Layer.orDie)),
    (context) => Effect.provide(serve(SessionMiddleware.loadAndSave(router)), context)
  )

const primaryStore = RedisStore.layer({ client: { ...redis }, prefix })
const replicaStore = RedisStore.layer({ client: { ...redisReplica }, prefix })

/** Until the replica has every write the primary took so far. */
const replicated = Effect.acquireUseRelease(
  Effect.sync(() => new Redis({ ...redis })),
  (admin) => Effect.promise(() => admin.wait(1, 5_000)),
  (admin) => Effect.promise(() => admin.quit())
)

const everyLogger = (
  scenario: (name: LoggerName) => Effect.Effect<ReadonlyArray<string>, unknown, Scope.Scope>,
  options: { readonly note?: string } = {}
) => {
  for (const name of Object.keys(loggers) as Array<LoggerName>) {
    it.scopedLive(`with the ${name} logger`, () =>
      Effect.gen(function*() {
        const { lines, result } = yield* capturing(loggers[name], scenario(name))
        expect(lines.join("")).toContain("effect-session:")
        expectNoSecrets(lines, [prefix, marker, ...result])
      }))
  }
  // The same operations with a tracer installed: the store call's span failed, and no span says with what.
  const title = `in the exported OpenTelemetry spans${options.note === undefined ? "" : ` (${options.note})`}`
  it.scopedLive(title, () =>
    Effect.gen(function*() {
      const { result, spans } = yield* traced(scenario("default"))
      const failed = spans.filter((span) => span.name.startsWith("session.store.") && span.status.code === 2)
      expect(failed.length).toBeGreaterThan(0)
      expect(failed.every((span) => span.events.some((event) => event.name === "exception"))).toBe(true)
      expectNoSecretsInSpans(spans, { prefix, marker, ...named("token or key", result) })
    }))
}

afterAll(async () => {
  if (redisSkip !== undefined) return
  const admin = new Redis({ ...redis })
  for await (const keys of admin.scanStream({ match: `${prefix}*`, count: 500 })) {
    if ((keys as Array<string>).length > 0) await admin.del(...(keys as Array<string>))
  }
  await admin.quit()
})

describe.skipIf(redisSkip !== undefined)("no secret in logs: Redis answers READONLY", () => {
  describe("a new session's SET on the replica", () => {
    everyLogger(() =>
      Effect.gen(function*() {
        const served = yield* app(replicaStore)
        const reply = yield* call(served, "/put")
        expect(reply.status).toBe(500)
        // The token never reached the client; the token-like pattern covers it.
        return []
      })
    )
  })

  describe("a change's update script on the replica", () => {
    everyLogger(() =>
      Effect.gen(function*() {
        const primary = yield* app(primaryStore)
        const cookie = cookieFrom(yield* call(primary, "/put"))
        expect(yield* replicated).toBe(1)
        const replica = yield* app(replicaStore)
        // Replicas serve reads: the session is found there.
        expect((yield* call(replica, "/read", { headers: { cookie } })).status).toBe(200)
        const reply = yield* call(replica, "/change", { headers: { cookie } })
        expect(reply.status).toBe(500)
        const token = tokenOf(cookie)
        return [token, hashed(token)]
      })
    )
  })

  it.scoped("the store error prints no key and no payload, however it is printed", () =>
    Effect.gen(function*() {
      const primary = yield* RedisStore.make({ client: { ...redis }, prefix })
      const store = yield* RedisStore.make({ client: { ...redisReplica }, prefix })
      const key = hashed(randomBytes(32).toString("base64url"))
      const payload = JSON.stringify({ marker })
      const errors: Array<SessionStoreError> = [
        yield* Effect.flip(store.commit(key, payload, Date.now() + 60_000, "create"))
      ]
      // The update script writes only over a live entry: there has to be one on the replica.
      yield* primary.commit(key, payload, Date.now() + 60_000, "create")
      expect(yield* replicated).toBe(1)
      errors.push(yield* Effect.flip(store.commit(key, `${payload}!`, Date.now() + 60_000, "update")))
      for (const error of errors) {
        expect(error.reason).toBe("Unavailable")
        expect(error.detail).toMatch(/READONLY/)
        const printed = [
          String(error),
          JSON.stringify(error),
          JSON.stringify(error.toJSON()),
          inspect(error, { depth: 20, showHidden: true }),
          Cause.pretty(Cause.fail(error), { renderErrorCause: true }),
          error.stack ?? ""
        ]
        expectNoSecrets(printed, [prefix, key, payload, marker])
      }
      // The same two failures under a tracer: the failed store spans record the error, with its causes.
      const { spans } = yield* traced(
        Effect.gen(function*() {
          const replica = yield* RedisStore.make({ client: { ...redisReplica }, prefix })
          const other = hashed(randomBytes(32).toString("base64url"))
          yield* Effect.flip(replica.commit(other, payload, Date.now() + 60_000, "create"))
          yield* Effect.flip(replica.commit(key, `${payload}!`, Date.now() + 60_000, "update"))
          return other
        }).pipe(Effect.scoped)
      )
      const failed = spans.filter((span) => span.name === "session.store.commit")
      expect(failed.map((span) => [span.status.code, span.attributes["error.type"]])).toEqual([
        [2, "Unavailable"],
        [2, "Unavailable"]
      ])
      expect(failed.every((span) => span.events.some((event) => event.name === "exception"))).toBe(true)
      expectNoSecretsInSpans(spans, { prefix, key, payload, marker })
    }))
})

describe.skipIf(pgSkip !== undefined)("no secret in logs: PostgreSQL rejects the row", () => {
  const client: PgClient.PgClientConfig = { ...postgres }
  const adminSql = <A, E>(f: (sql: SqlClient.SqlClient) => Effect.Effect<A, E>) =>
    Effect.scoped(
      Effect.flatMap(Layer.build(PgClient.layer(client)), (context) => f(Context.get(context, SqlClient.SqlClient)))
    ).pipe(
      // The test's own statements are never traced: the CHECK constraint below quotes the marker.
      Effect.withTracerEnabled(false)
    )

  /** A sessions table of the store's shape with `data` declared as `dataType`, dropped with the scope. */
  const table = (dataType: string) =>
    Effect.gen(function*() {
      const name = `secrets_${randomBytes(6).toString("hex")}`
      yield* adminSql((sql) =>
        sql`CREATE TABLE ${sql(name)} (token TEXT NOT NULL PRIMARY KEY, data ${
          sql.literal(dataType)
        }, expiry BIGINT NOT NULL)`
      )
      yield* Effect.addFinalizer(() => Effect.ignore(adminSql((sql) => sql`DROP TABLE IF EXISTS ${sql(name)}`)))
      return name
    })

  // pg's `detail` quotes the whole row ("Failing row contains (<key>, <payload>, ...)").
  describe("a CHECK constraint violation", () => {
    everyLogger(() =>
      Effect.gen(function*() {
        const name = yield* table(`TEXT NOT NULL CHECK (data NOT LIKE '%${marker}%')`)
        const served = yield* app(PgStore.layer({ client, table: name, cleanupInterval: 0 }))
        expect((yield* call(served, "/put")).status).toBe(500)
        return []
      })
    )
  })

  // The message itself quotes the value: `invalid input syntax for type integer: "<payload>"`.
  //
  // With a tracer installed, @effect/sql would make its own `sql.execute` span under `session.store.commit`, ending
  // with the raw `SqlError`, which @effect/opentelemetry renders with its causes into `exception.stacktrace`: pg's
  // message quotes the whole encoded session. The library runs store calls with no span below its own (the span
  // test below failed before that).
  describe("a value of the wrong type", () => {
    everyLogger(
      () =>
        Effect.gen(function*() {
          const name = yield* table("INTEGER NOT NULL")
          const served = yield* app(PgStore.layer({ client, table: name, cleanupInterval: 0 }))
          expect((yield* call(served, "/put")).status).toBe(500)
          return []
        }),
      { note: "no driver span below the store's, whose error would quote the payload" }
    )
  })
})

// A codec's `ParseError` quotes the stored value: the warning must say where it failed, not what was there.
describe.skipIf(redisSkip !== undefined)("no secret in logs: a stored session that no longer decodes", () => {
  for (const name of Object.keys(loggers) as Array<LoggerName>) {
    it.scopedLive(`with the ${name} logger`, () =>
      Effect.gen(function*() {
        const token = randomBytes(32).toString("base64url")
        const key = hashed(token)
        const store = yield* RedisStore.make({ client: { ...redis }, prefix })
        yield* store.commit(key, `${marker} is not a session`, Date.now() + 60_000, "create")
        const { lines, result } = yield* capturing(
          loggers[name],
          Effect.flatMap(app(primaryStore), (served) =>
            call(served, "/read", { headers: { cookie: `session=${token}` } }))
        )
        expect(result.status).toBe(200)
        expect(lines.join("")).toContain("no longer decodes")
        expectNoSecrets(lines, [prefix, marker, token, key])
      }))
  }

  it.scopedLive("in the exported OpenTelemetry spans", () =>
    Effect.gen(function*() {
      const token = randomBytes(32).toString("base64url")
      const key = hashed(token)
      const store = yield* RedisStore.make({ client: { ...redis }, prefix })
      yield* store.commit(key, `${marker} is not a session`, Date.now() + 60_000, "create")
      const { result, spans } = yield* traced(
        Effect.flatMap(
          app(primaryStore),
          (served) => call(served, "/read", { headers: { cookie: `session=${token}` } })
        )
      )
      expect(result.status).toBe(200)
      const load = spans.find((span) => span.name === "session.load")
      expect(load?.attributes["session.outcome"]).toBe("decode_reset")
      // The warning is a span event (the default tracer logger), with its cause rendered.
      expect(spans.some((span) => span.events.some((event) => event.name.includes("no longer decodes")))).toBe(true)
      expectNoSecretsInSpans(spans, { prefix, marker, token, key })
    }))
})
