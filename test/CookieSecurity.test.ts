/**
 * The cookie's security findings over real HTTP: cookie tossing (a second cookie of the session's
 * name), shared caches (a `public` response that sets the cookie) and `Secure` by default.
 */
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import type * as Scope from "effect/Scope"
import * as TestClock from "effect/TestClock"
import * as http from "node:http"
import { Session } from "../src/Session.js"
import * as SessionManager from "../src/SessionManager.js"
import * as SessionMiddleware from "../src/SessionMiddleware.js"
import * as MemoryStore from "../src/SessionStore/Memory.js"
import * as SessionTransport from "../src/SessionTransport.js"
import { START } from "./conformance.js"
import { call, cookieFrom, serve } from "./http.js"
import type { Served } from "./http.js"

// What an app may say about its own responses: any cache may keep them for ten minutes.
const APP_CACHE_CONTROL = "public, max-age=600, s-maxage=3600"

const cacheable = <E, R>(handler: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>) =>
  Effect.map(handler, (response) => HttpServerResponse.setHeader(response, "Cache-Control", APP_CACHE_CONTROL))

const putOwner = Effect.gen(function*() {
  const { owner } = yield* HttpRouter.params
  yield* (yield* Session).put("owner", owner ?? "")
  return HttpServerResponse.text("ok")
})
const getOwner = Effect.map(Effect.flatMap(Session, (session) => session.getString("owner")), HttpServerResponse.text)
const destroy = Effect.as(Effect.flatMap(Session, (session) => session.destroy), HttpServerResponse.text("bye"))
const renew = Effect.as(Effect.flatMap(Session, (session) => session.renewToken), HttpServerResponse.text("renewed"))

const router = HttpRouter.empty.pipe(
  HttpRouter.get("/put/:owner", putOwner),
  HttpRouter.get("/get", getOwner),
  HttpRouter.get("/cacheable/put/:owner", cacheable(putOwner)),
  HttpRouter.get("/cacheable/get", cacheable(getOwner)),
  HttpRouter.get("/cacheable/destroy", cacheable(destroy)),
  HttpRouter.get("/cacheable/renew", cacheable(renew))
)

interface Settings {
  readonly manager?: SessionManager.Options
  readonly transport?: SessionTransport.SessionTransport
}

/** Runs a test with the clock at START, a server for `router`, and every log line kept in `logs`. */
const withServer = <E>(
  name: string,
  body: (served: Served, logs: ReadonlyArray<string>) => Effect.Effect<void, E, Scope.Scope>,
  settings: Settings = {}
) =>
  it.scoped(name, () => {
    const logs: Array<string> = []
    const capture = Logger.make((options) => {
      logs.push(Logger.logfmtLogger.log(options))
    })
    const app = SessionMiddleware.make({ transport: settings.transport })(router)
    return TestClock.setTime(START).pipe(
      Effect.zipRight(Effect.provide(
        Effect.flatMap(serve(app), (served) => body(served, logs)),
        Layer.mergeAll(
          SessionManager.layer(settings.manager).pipe(Layer.provide(MemoryStore.layer())),
          Logger.add(capture)
        )
      ))
    )
  })

/**
 * A GET with each of `cookies` in a `Cookie` header of its own: several header lines on the wire,
 * which the server joins. Headers given as a list get no `Host` from Node, so it is sent here.
 */
const getWithCookieLines = (served: Served, path: string, cookies: ReadonlyArray<string>) =>
  Effect.async<{ readonly status: number; readonly body: string }>((resume) => {
    const url = new URL(path, served.url)
    const headers = ["Host", url.host, ...cookies.flatMap((cookie) => ["Cookie", cookie])]
    const request = http.request(url, { headers })
    request.on("response", (response) => {
      let body = ""
      response.setEncoding("utf8")
      response.on("data", (chunk: string) => (body += chunk))
      response.on("end", () => resume(Effect.succeed({ status: response.statusCode ?? 0, body })))
    })
    request.on("error", (error) => resume(Effect.die(error)))
    request.end()
  })

const valueOf = (cookie: string) => cookie.slice(cookie.indexOf("=") + 1)

describe("cookie tossing: the session cookie sent twice", () => {
  withServer("is no session: the handler sees neither, both sessions stay as they were, a warning is logged", (
    served,
    logs
  ) =>
    Effect.gen(function*() {
      const real = cookieFrom(yield* call(served, "/put/victim"))
      // The strongest plant: a live session of the attacker's own, set for a more specific path or
      // a parent domain so that the browser sends it beside (and before) the real one.
      const planted = cookieFrom(yield* call(served, "/put/attacker"))
      const unknown = `session=${"P".repeat(43)}`
      for (const [first, second] of [[real, planted], [planted, real], [real, unknown], [unknown, real]]) {
        const both = { cookie: `${first}; ${second}` }
        const read = yield* call(served, "/get", { headers: both })
        expect(read.body).toBe("")
        expect(read.setCookies).toEqual([])
        // A write starts a session of its own: neither cookie is adopted.
        const written = yield* call(served, "/put/someone", { headers: both })
        expect(cookieFrom(written)).not.toBe(real)
        expect(cookieFrom(written)).not.toBe(planted)
        // Two Cookie header lines (Node joins them with "; ") and a fetch-style ", " join.
        expect(yield* getWithCookieLines(served, "/get", [first, second])).toEqual({ status: 200, body: "" })
        expect((yield* call(served, "/get", { headers: { cookie: `${first}, ${second}` } })).body).toBe("")
      }
      expect((yield* call(served, "/get", { headers: { cookie: real } })).body).toBe("victim")
      expect((yield* call(served, "/get", { headers: { cookie: planted } })).body).toBe("attacker")
      expect(yield* getWithCookieLines(served, "/get", ["theme=dark", real])).toEqual({ status: 200, body: "victim" })

      const warnings = logs.filter((line) => line.includes("level=WARN") && line.includes("more than once"))
      expect(warnings.length).toBeGreaterThanOrEqual(4 * 4)
      for (const line of logs) {
        for (const secret of [real, planted, unknown].map(valueOf)) expect(line).not.toContain(secret)
      }
    }))
})

describe("shared caches never store a response that sets or clears the cookie", () => {
  const PRIVATE = "max-age=600, private, no-cache=\"Set-Cookie\""

  withServer(
    "set, renew and clear are private; a response that leaves the cookie alone keeps the app's",
    (served) =>
      Effect.gen(function*() {
        const set = yield* call(served, "/cacheable/put/victim")
        expect(set.setCookies).toHaveLength(1)
        expect(set.headers.get("cache-control")).toBe(PRIVATE)

        const read = yield* call(served, "/cacheable/get", { headers: { cookie: cookieFrom(set) } })
        expect(read.body).toBe("victim")
        expect(read.setCookies).toEqual([])
        expect(read.headers.get("cache-control")).toBe(APP_CACHE_CONTROL)

        const renewed = yield* call(served, "/cacheable/renew", { headers: { cookie: cookieFrom(set) } })
        expect(cookieFrom(renewed)).not.toBe(cookieFrom(set))
        expect(renewed.headers.get("cache-control")).toBe(PRIVATE)

        const cleared = yield* call(served, "/cacheable/destroy", { headers: { cookie: cookieFrom(renewed) } })
        expect(cleared.setCookies[0]).toMatch(/^session=;/)
        expect(cleared.headers.get("cache-control")).toBe(PRIVATE)

        // Without a session to touch, nothing is set: the app's header goes out as it was.
        const anonymous = yield* call(served, "/cacheable/get")
        expect(anonymous.setCookies).toEqual([])
        expect(anonymous.headers.get("cache-control")).toBe(APP_CACHE_CONTROL)
      })
  )

  withServer(
    "an idle refresh (a read-only request past half the idle window) is private too",
    (served) =>
      Effect.gen(function*() {
        const set = yield* call(served, "/cacheable/put/victim")
        yield* TestClock.adjust("5 minutes")
        const early = yield* call(served, "/cacheable/get", { headers: { cookie: cookieFrom(set) } })
        expect(early.setCookies).toEqual([])
        expect(early.headers.get("cache-control")).toBe(APP_CACHE_CONTROL)
        yield* TestClock.adjust("6 minutes")
        const refreshed = yield* call(served, "/cacheable/get", { headers: { cookie: cookieFrom(set) } })
        expect(refreshed.body).toBe("victim")
        expect(refreshed.setCookies).toHaveLength(1)
        expect(refreshed.headers.get("cache-control")).toBe(PRIVATE)
      }),
    { manager: { idleTimeout: "20 minutes" } }
  )

  withServer(
    "the header transport: no-store, and the app's public and s-maxage removed",
    (served) =>
      Effect.gen(function*() {
        const set = yield* call(served, "/cacheable/put/victim")
        const token = set.headers.get("x-session-token") ?? ""
        expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/)
        expect(set.headers.get("cache-control")).toBe("max-age=600, no-store")
        const read = yield* call(served, "/cacheable/get", { headers: { authorization: `Bearer ${token}` } })
        expect(read.body).toBe("victim")
        expect(read.headers.get("cache-control")).toBe(APP_CACHE_CONTROL)
        const cleared = yield* call(served, "/cacheable/destroy", { headers: { authorization: `Bearer ${token}` } })
        expect(cleared.headers.get("x-session-token")).toBe("")
        expect(cleared.headers.get("cache-control")).toBe("max-age=600, no-store")
      }),
    { transport: SessionTransport.header() }
  )
})

describe("Secure by default", () => {
  withServer("the default cookie is Secure", (served) =>
    Effect.gen(function*() {
      const set = yield* call(served, "/put/victim")
      expect(set.setCookies[0].split("; ")).toContain("Secure")
      const cleared = yield* call(served, "/cacheable/destroy", { headers: { cookie: cookieFrom(set) } })
      expect(cleared.setCookies[0].split("; ")).toContain("Secure")
    }))

  it.scoped("secure: false opts out, for plain-HTTP deployments that are not localhost", () =>
    Effect.gen(function*() {
      const transport = yield* SessionTransport.cookie({ secure: false })
      const served = yield* serve(SessionMiddleware.make({ transport })(router))
      const set = yield* call(served, "/put/victim")
      expect(set.setCookies[0].split("; ")).not.toContain("Secure")
    }).pipe(Effect.provide(SessionManager.layer().pipe(Layer.provide(MemoryStore.layer())))))
})
