import * as HttpApi from "@effect/platform/HttpApi"
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServer from "@effect/platform/HttpServer"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { describe, expect, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as TestClock from "effect/TestClock"
import { Session, Tag as SessionTag } from "../src/Session.js"
import type * as SessionType from "../src/Session.js"
import * as SessionManager from "../src/SessionManager.js"
import * as Sealed from "../src/SessionManager/Sealed.js"
import * as SessionMiddleware from "../src/SessionMiddleware.js"
import { SessionStore, SessionStoreError } from "../src/SessionStore.js"
import * as MemoryStore from "../src/SessionStore/Memory.js"
import * as SessionTransport from "../src/SessionTransport.js"
import { START } from "./conformance.js"
import { call, cookieFrom, jar, serve, type Served } from "./http.js"

const router = HttpRouter.empty.pipe(
  HttpRouter.get(
    "/put",
    Effect.gen(function*() {
      const session = yield* Session
      yield* session.put("message", "Hello from a session!")
      return HttpServerResponse.empty({ status: 200 })
    })
  ),
  HttpRouter.get(
    "/get",
    Effect.gen(function*() {
      const session = yield* Session
      return HttpServerResponse.text(yield* session.getString("message"))
    })
  ),
  HttpRouter.get("/destroy", Effect.flatMap(Session, (s) => s.destroy).pipe(Effect.as(HttpServerResponse.text("bye")))),
  HttpRouter.get(
    "/renew",
    Effect.gen(function*() {
      const session = yield* Session
      yield* session.renewToken
      return HttpServerResponse.text("renewed")
    })
  ),
  HttpRouter.get(
    "/remember",
    Effect.gen(function*() {
      const session = yield* Session
      yield* session.rememberMe(true)
      return HttpServerResponse.text("ok")
    })
  ),
  HttpRouter.get(
    "/put-then-fail",
    Effect.gen(function*() {
      const session = yield* Session
      yield* session.put("message", "written before the failure")
      return yield* Effect.fail(new Error("handler failed"))
    })
  ),
  HttpRouter.get(
    "/put-then-die",
    Effect.gen(function*() {
      const session = yield* Session
      yield* session.put("message", "written before the defect")
      return yield* Effect.die("boom")
    })
  ),
  HttpRouter.get(
    "/vary",
    Effect.succeed(HttpServerResponse.text("x", { headers: { vary: "Accept-Encoding" } }))
  ),
  HttpRouter.get(
    "/touch",
    Effect.flatMap(Session, (s) => s.keys).pipe(Effect.map((keys) => HttpServerResponse.text(keys.join(","))))
  )
)

const app = SessionMiddleware.loadAndSave(router)

const managerWith = (
  options: SessionManager.Options = {},
  store: Layer.Layer<SessionStore, unknown> = MemoryStore.layer()
) => SessionManager.layer(options).pipe(Layer.provideMerge(store))

/**
 * The two ways to keep sessions, which the same HTTP behaviour tests run against: a store (the
 * memory store) and sealed cookies. Where they must differ, the mode says how.
 */
interface Mode {
  readonly name: string
  readonly manager: (options: SessionManager.Options) => Layer.Layer<SessionManager.SessionManager, unknown>
  /** The session cookie's value. */
  readonly value: RegExp
  /** A store keeps the token across writes; a sealed cookie is sealed anew on each. */
  readonly stableToken: boolean
  /**
   * A store forgets a destroyed or renewed session at once; a sealed cookie copied before still
   * opens until it expires (the documented limit of sealed cookies).
   */
  readonly revocable: boolean
}

const MODES: ReadonlyArray<Mode> = [
  {
    name: "memory store",
    manager: (options) => managerWith(options),
    value: /^[A-Za-z0-9_-]{43}$/,
    stableToken: true,
    revocable: true
  },
  {
    name: "sealed cookies",
    manager: (options) =>
      Sealed.layer({
        ...options,
        secrets: [{ id: "test", secret: Redacted.make("a test secret of at least 32 bytes") }]
      }),
    value: /^test\.[A-Za-z0-9_-]{60,}$/,
    stableToken: false,
    revocable: false
  }
]

interface Settings {
  readonly manager?: SessionManager.Options
  /** Cookie settings, provided as the `SessionTransport` the middleware finds in context. */
  readonly cookie?: SessionTransport.CookieOptions
}

/** Runs a test with the clock at START and a server for `app` over a fresh session layer of `mode`. */
const httpIn = (mode: Mode) =>
<A, E>(
  name: string,
  body: (
    served: Effect.Effect.Success<ReturnType<typeof serve>>
  ) => Effect.Effect<A, E, SessionManager.SessionManager | Scope.Scope>,
  settings: Settings = {}
) =>
  it.scoped(name, () =>
    // The clock is set before the store (and its sweep schedule) exists.
    TestClock.setTime(START).pipe(
      Effect.zipRight(Effect.provide(
        Effect.flatMap(serve(app), body),
        Layer.merge(
          mode.manager(settings.manager ?? {}),
          settings.cookie === undefined ? Layer.empty : SessionTransport.layerCookie(settings.cookie)
        )
      ))
    ))

for (const mode of MODES) {
  const http = httpIn(mode)
  const sessionCookie = (reply: Parameters<typeof cookieFrom>[0], name = "session") => {
    const cookie = cookieFrom(reply, name)
    expect(cookie.slice(name.length + 1)).toMatch(mode.value)
    return cookie
  }

  describe(`loadAndSave over real HTTP (${mode.name}): the scs README session`, () => {
    http("/put sets the session cookie with scs's attributes, Secure, and headers", (served) =>
      Effect.gen(function*() {
        const put = yield* call(served, "/put")
        expect(put.status).toBe(200)
        expect(put.setCookies).toHaveLength(1)
        const [cookie] = put.setCookies
        const parts = cookie.split("; ")
        expect(sessionCookie(put)).toBe(parts[0])
        expect(parts.slice(1).sort()).toEqual(
          ["Path=/", "Expires=Fri, 02 Jan 2026 12:00:00 GMT", "Max-Age=86400", "HttpOnly", "SameSite=Lax", "Secure"]
            .sort()
        )
        expect(put.headers.get("vary")).toBe("Cookie")
        expect(put.headers.get("cache-control")).toBe("private, no-cache=\"Set-Cookie\"")

        const get = yield* call(served, "/get", { headers: { cookie: cookieFrom(put) } })
        expect(get.status).toBe(200)
        expect(get.body).toBe("Hello from a session!")
        expect(get.setCookies).toEqual([])
        expect(get.headers.get("vary")).toBe("Cookie")
        expect(get.headers.get("cache-control")).toBeNull()
      }))

    http("a request that changes nothing gets no cookie and creates nothing", (served) =>
      Effect.gen(function*() {
        const reply = yield* call(served, "/get")
        expect(reply.body).toBe("")
        expect(reply.setCookies).toEqual([])
        expect(reply.headers.get("vary")).toBe("Cookie")
      }))

    http(
      mode.stableToken
        ? "the token is stable across requests that modify the session"
        : "each write seals the cookie anew",
      (served) =>
        Effect.gen(function*() {
          const first = yield* call(served, "/put")
          const second = yield* call(served, "/put", { headers: { cookie: cookieFrom(first) } })
          if (mode.stableToken) expect(cookieFrom(second)).toBe(cookieFrom(first))
          else expect(sessionCookie(second)).not.toBe(cookieFrom(first))
          const get = yield* call(served, "/get", { headers: { cookie: cookieFrom(second) } })
          expect(get.body).toBe("Hello from a session!")
        })
    )

    http(
      `destroy sends scs's deletion cookie${mode.revocable ? " and the session is gone" : ""}`,
      (served) =>
        Effect.gen(function*() {
          const put = yield* call(served, "/put")
          const destroyed = yield* call(served, "/destroy", { headers: { cookie: cookieFrom(put) } })
          expect(destroyed.setCookies).toHaveLength(1)
          const parts = destroyed.setCookies[0].split("; ")
          expect(parts[0]).toBe("session=")
          expect(parts.slice(1).sort()).toEqual(
            ["Path=/", "Expires=Thu, 01 Jan 1970 00:00:01 GMT", "Max-Age=0", "HttpOnly", "SameSite=Lax", "Secure"]
              .sort()
          )
          expect(destroyed.headers.get("cache-control")).toBe("private, no-cache=\"Set-Cookie\"")
          // A sealed cookie copied before the logout still opens until it expires: the documented limit.
          const after = yield* call(served, "/get", { headers: { cookie: cookieFrom(put) } })
          expect(after.body).toBe(mode.revocable ? "" : "Hello from a session!")
        })
    )

    http(
      `renewToken sends a new token${mode.revocable ? "; the old one no longer works" : ""}, the data moved`,
      (served) =>
        Effect.gen(function*() {
          const put = yield* call(served, "/put")
          const renewed = yield* call(served, "/renew", { headers: { cookie: cookieFrom(put) } })
          expect(sessionCookie(renewed)).not.toBe(cookieFrom(put))
          expect((yield* call(served, "/get", { headers: { cookie: cookieFrom(renewed) } })).body).toBe(
            "Hello from a session!"
          )
          expect((yield* call(served, "/get", { headers: { cookie: cookieFrom(put) } })).body).toBe(
            mode.revocable ? "" : "Hello from a session!"
          )
        })
    )

    http("an unknown or malformed token is never adopted: a new one is issued", (served) =>
      Effect.gen(function*() {
        const put = yield* call(served, "/put")
        const [name, value] = cookieFrom(put).split("=")
        const forged = [
          "session=" + "A".repeat(43),
          "session=not-a-token",
          "session=",
          "session=test." + "A".repeat(80),
          `${name}=${value.slice(0, -1)}${value.endsWith("A") ? "B" : "A"}`
        ]
        for (const sent of forged) {
          const reply = yield* call(served, "/put", { headers: { cookie: sent } })
          expect(sessionCookie(reply)).not.toBe(sent)
          // Not adopted: the new session has only what this request put, never an edited cookie's data.
          const get = yield* call(served, "/get", { headers: { cookie: sent } })
          expect(get.body).toBe("")
        }
      }))

    http("a session cookie sent twice is no session at all (cookie tossing)", (served) =>
      Effect.gen(function*() {
        const put = yield* call(served, "/put")
        const good = cookieFrom(put)
        const first = yield* call(served, "/get", { headers: { cookie: `${good}; session=${"B".repeat(43)}` } })
        expect(first.body).toBe("")
        const second = yield* call(served, "/get", { headers: { cookie: `session=${"B".repeat(43)}; ${good}` } })
        expect(second.body).toBe("")
      }))

    http("the commit runs for failing handlers too: their 500 carries the cookie", (served) =>
      Effect.gen(function*() {
        const failed = yield* call(served, "/put-then-fail")
        expect(failed.status).toBe(500)
        const died = yield* call(served, "/put-then-die")
        expect(died.status).toBe(500)
        for (const reply of [failed, died]) {
          expect(reply.headers.get("vary")).toBe("Cookie")
          sessionCookie(reply)
        }
        const get = yield* call(served, "/get", { headers: { cookie: cookieFrom(failed) } })
        expect(get.body).toBe("written before the failure")
      }))

    http("404s pass through the middleware too (Vary: Cookie)", (served) =>
      Effect.gen(function*() {
        const reply = yield* call(served, "/nowhere")
        expect(reply.status).toBe(404)
        expect(reply.headers.get("vary")).toBe("Cookie")
      }))

    http("an existing Vary header is kept and Cookie appended", (served) =>
      Effect.gen(function*() {
        const reply = yield* call(served, "/vary")
        expect(reply.headers.get("vary")).toBe("Accept-Encoding, Cookie")
      }))

    http(
      "time passes: the cookie's Max-Age counts down with the absolute lifetime",
      (served) =>
        Effect.gen(function*() {
          const put = yield* call(served, "/put")
          yield* TestClock.adjust("1 hour")
          const again = yield* call(served, "/put", { headers: { cookie: cookieFrom(put) } })
          expect(again.setCookies[0]).toContain("Max-Age=82800")
          expect(again.setCookies[0]).toContain("Expires=Fri, 02 Jan 2026 12:00:00 GMT")
          yield* TestClock.adjust("23 hours")
          expect((yield* call(served, "/get", { headers: { cookie: cookieFrom(put) } })).body).toBe("")
        })
    )
  })

  describe(`cookie settings (${mode.name})`, () => {
    http("domain, path, secure, strict, partitioned, name", (served) =>
      Effect.gen(function*() {
        const reply = yield* call(served, "/put")
        const line = reply.setCookies[0]
        sessionCookie(reply, "__Host-sid")
        const attributes = line.split("; ").slice(1).filter((a) =>
          !a.startsWith("Expires=") && !a.startsWith("Max-Age=")
        )
        expect(attributes.sort()).toEqual(["HttpOnly", "Partitioned", "Path=/", "SameSite=Strict", "Secure"].sort())
      }), { cookie: { name: "__Host-sid", secure: true, sameSite: "strict", partitioned: true } })

    http("domain, a sub-path, no HttpOnly", (served) =>
      Effect.gen(function*() {
        const line = (yield* call(served, "/put")).setCookies[0]
        const attributes = line.split("; ").slice(1).filter((a) =>
          !a.startsWith("Expires=") && !a.startsWith("Max-Age=")
        )
        expect(attributes.sort()).toEqual(["Domain=example.com", "Path=/app", "SameSite=Lax", "Secure"].sort())
      }), { cookie: { domain: "example.com", path: "/app", httpOnly: false } })

    http(
      "persist: false gives a browser-session cookie, made persistent by rememberMe(true)",
      (served) =>
        Effect.gen(function*() {
          const put = yield* call(served, "/put")
          expect(put.setCookies[0]).not.toMatch(/Expires=|Max-Age=/)
          const remembered = yield* call(served, "/remember", { headers: { cookie: cookieFrom(put) } })
          expect(remembered.setCookies[0]).toMatch(/Max-Age=86400/)
          expect(remembered.setCookies[0]).toMatch(/Expires=/)
        }),
      { cookie: { persist: false } }
    )

    http(
      "an idle timeout: Max-Age is the idle window; read-only requests refresh it only past half",
      (served) =>
        Effect.gen(function*() {
          const put = yield* call(served, "/put")
          expect(put.setCookies[0]).toContain("Max-Age=1200")
          yield* TestClock.adjust("5 minutes")
          const early = yield* call(served, "/get", { headers: { cookie: cookieFrom(put) } })
          expect(early.setCookies).toEqual([])
          yield* TestClock.adjust("6 minutes")
          const late = yield* call(served, "/get", { headers: { cookie: cookieFrom(put) } })
          expect(late.body).toBe("Hello from a session!")
          expect(late.setCookies[0]).toContain("Max-Age=1200")
          if (mode.stableToken) expect(cookieFrom(late)).toBe(cookieFrom(put))
          // Idle past the window since the last request: gone.
          yield* TestClock.adjust("20 minutes")
          expect((yield* call(served, "/get", { headers: { cookie: cookieFrom(late) } })).body).toBe("")
        }),
      { manager: { idleTimeout: "20 minutes" } }
    )
  })
}

describe("failures", () => {
  const failingStore = (operation: "find" | "commit") =>
    Layer.succeed(SessionStore, {
      find: () =>
        operation === "find"
          ? Effect.fail(new SessionStoreError({ reason: "Unavailable", operation, detail: "secret-host:5432 refused" }))
          : Effect.succeed(Option.none()),
      commit: () =>
        operation === "commit"
          ? Effect.fail(new SessionStoreError({ reason: "Timeout", operation, detail: "secret-host:5432 timed out" }))
          : Effect.succeed("written" as const),
      take: () => Effect.succeed(Option.none()),
      touch: () => Effect.succeed("gone" as const),
      delete: () => Effect.void,
      all: undefined,
      owners: undefined
    })

  const withStore = (
    name: string,
    operation: "find" | "commit",
    body: (served: Effect.Effect.Success<ReturnType<typeof serve>>, handlerRuns: () => number) => Effect.Effect<void>,
    onError?: SessionMiddleware.ErrorHandler
  ) =>
    it.scoped(name, () => {
      let runs = 0
      const counted = SessionMiddleware.make({ onError })(HttpRouter.empty.pipe(
        HttpRouter.get(
          "/put",
          Effect.gen(function*() {
            runs++
            yield* (yield* Session).put("a", 1)
            return HttpServerResponse.text("handler ran")
          })
        )
      ))
      return Effect.flatMap(serve(counted), (served) => body(served, () => runs)).pipe(
        Effect.provide(managerWith({}, failingStore(operation)))
      )
    })

  withStore(
    "a store error at load: the handler does not run; a bare 500 without internals",
    "find",
    (served, runs) =>
      Effect.gen(function*() {
        const reply = yield* call(served, "/put", { headers: { cookie: `session=${"A".repeat(43)}` } })
        expect(reply.status).toBe(500)
        expect(reply.body).toBe("Internal Server Error")
        expect(reply.body).not.toContain("secret-host")
        expect(reply.setCookies).toEqual([])
        expect(runs()).toBe(0)
      })
  )

  withStore(
    "a store error at commit: the error handler's response replaces the handler's",
    "commit",
    (served, runs) =>
      Effect.gen(function*() {
        const reply = yield* call(served, "/put")
        expect(runs()).toBe(1)
        expect(reply.status).toBe(503)
        expect(reply.body).toBe("try again (Timeout)")
        expect(reply.setCookies).toEqual([])
        expect(reply.headers.get("vary")).toBe("Cookie")
      }),
    (error) =>
      Effect.succeed(
        HttpServerResponse.text(`try again (${error._tag === "SessionStoreError" ? error.reason : "codec"})`, {
          status: 503
        })
      )
  )

  it.scoped("a stored session that no longer decodes: a fresh session, not a 500", () =>
    Effect.gen(function*() {
      const store = yield* SessionStore
      const token = "Q".repeat(43)
      yield* store.commit(token, "\"garbage\"", START + 3_600_000, "create")
      const served = yield* serve(app)
      const reply = yield* call(served, "/put", { headers: { cookie: `session=${token}` } })
      expect(reply.status).toBe(200)
      expect(cookieFrom(reply)).not.toBe(`session=${token}`)
    }).pipe(Effect.provide(managerWith()), (self) => TestClock.setTime(START).pipe(Effect.zipRight(self))))
})

describe("transports", () => {
  const headerApp = (transport: SessionTransport.SessionTransport) => SessionMiddleware.make({ transport })(router)

  it.scoped("Authorization: Bearer in, X-Session-Token out", () =>
    Effect.gen(function*() {
      const served = yield* serve(headerApp(SessionTransport.header()))
      const put = yield* call(served, "/put")
      const token = put.headers.get("x-session-token") ?? ""
      expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/)
      expect(put.headers.get("x-session-expires")).toBe("Fri, 02 Jan 2026 12:00:00 GMT")
      expect(put.headers.get("cache-control")).toBe("no-store")
      expect(put.headers.get("vary")).toBe("Authorization")
      expect(put.setCookies).toEqual([])
      const get = yield* call(served, "/get", { headers: { authorization: `Bearer ${token}` } })
      expect(get.body).toBe("Hello from a session!")
      expect(get.headers.get("x-session-token")).toBeNull()
      // Another scheme, or the cookie, is not a token for this transport.
      expect((yield* call(served, "/get", { headers: { authorization: `Basic ${token}` } })).body).toBe("")
      expect((yield* call(served, "/get", { headers: { cookie: `session=${token}` } })).body).toBe("")
      const destroyed = yield* call(served, "/destroy", { headers: { authorization: `bearer ${token}` } })
      expect(destroyed.headers.get("x-session-token")).toBe("")
      expect((yield* call(served, "/get", { headers: { authorization: `Bearer ${token}` } })).body).toBe("")
    }).pipe(Effect.provide(managerWith()), (self) => TestClock.setTime(START).pipe(Effect.zipRight(self))))

  it.scoped("sealed cookies travel in headers too: Authorization: Bearer in, X-Session-Token out", () =>
    Effect.gen(function*() {
      const served = yield* serve(headerApp(SessionTransport.header()))
      const put = yield* call(served, "/put")
      const sealed = put.headers.get("x-session-token") ?? ""
      expect(sealed).toMatch(MODES[1].value)
      const get = yield* call(served, "/get", { headers: { authorization: `Bearer ${sealed}` } })
      expect(get.body).toBe("Hello from a session!")
      const edited = `${sealed.slice(0, -1)}${sealed.endsWith("A") ? "B" : "A"}`
      expect((yield* call(served, "/get", { headers: { authorization: `Bearer ${edited}` } })).body).toBe("")
    }).pipe(Effect.provide(MODES[1].manager({})), (self) => TestClock.setTime(START).pipe(Effect.zipRight(self))))

  it.scoped("a custom request header carries the bare token", () =>
    Effect.gen(function*() {
      const served = yield* serve(headerApp(SessionTransport.header({ requestHeader: "X-Session-Token" })))
      const put = yield* call(served, "/put")
      const token = put.headers.get("x-session-token") ?? ""
      expect(put.headers.get("vary")).toBe("X-Session-Token")
      const get = yield* call(served, "/get", { headers: { "x-session-token": token } })
      expect(get.body).toBe("Hello from a session!")
    }).pipe(Effect.provide(managerWith())))

  it.scoped("a body transport: the token in a JSON request and response body", () =>
    Effect.gen(function*() {
      const { bodyTransport, bodyRouter } = yield* Effect.promise(() => import("../examples/body-transport.js"))
      const served = yield* serve(SessionMiddleware.make({ transport: bodyTransport })(bodyRouter))
      const post = (body: unknown) =>
        call(served, "/message", {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify(body)
        })
      const put = JSON.parse((yield* post({ message: "kept in the session" })).body)
      expect(put.token).toMatch(/^[A-Za-z0-9_-]{43}$/)
      const get = JSON.parse((yield* post({ token: put.token })).body)
      expect(get).toEqual({ message: "kept in the session" })
    }).pipe(Effect.provide(managerWith())))
})

// A second manager's session under a tag of the app's: made with `Session.Tag` (filed under the
// request, found by the request) or with `Context.Tag` (provided in the context).
class FiledAdminSession extends SessionTag("test/FiledAdminSession")<FiledAdminSession>() {}
class ProvidedAdminSession
  extends Context.Tag("test/ProvidedAdminSession")<ProvidedAdminSession, SessionType.Session>()
{}

describe.each(
  [
    { kind: "Session.Tag", AdminSession: FiledAdminSession, inContext: false },
    { kind: "Context.Tag", AdminSession: ProvidedAdminSession, inContext: true }
  ] as const
)("several managers in one request, the second one's tag made by $kind", ({ AdminSession, inContext }) => {
  class AdminManager extends Context.Tag("test/AdminManager")<AdminManager, SessionManager.SessionManager>() {}
  class AdminCookie extends Context.Tag("test/AdminCookie")<AdminCookie, SessionTransport.SessionTransport>() {}
  const adminSession = AdminSession as Context.Tag<FiledAdminSession | ProvidedAdminSession, SessionType.Session>

  const both = HttpRouter.empty.pipe(
    HttpRouter.get(
      "/login",
      Effect.gen(function*() {
        const user = yield* Session
        const admin = yield* adminSession
        yield* user.put("role", "visitor")
        yield* admin.put("role", "admin")
        return HttpServerResponse.text("ok")
      })
    ),
    HttpRouter.get(
      "/whoami",
      Effect.gen(function*() {
        const user = yield* Session
        const admin = yield* adminSession
        return HttpServerResponse.text(`${yield* user.getString("role")}/${yield* admin.getString("role")}`)
      })
    ),
    HttpRouter.get(
      "/forked",
      Effect.gen(function*() {
        const admin = yield* adminSession
        yield* Effect.fork(admin.put("role", "forked admin")).pipe(Effect.flatMap(Fiber.join))
        return HttpServerResponse.text("ok")
      })
    ),
    HttpRouter.get(
      "/in-context",
      Effect.map(
        Effect.context<never>(),
        (context) =>
          HttpServerResponse.text(`${context.unsafeMap.has(Session.key)}/${context.unsafeMap.has(adminSession.key)}`)
      )
    ),
    HttpRouter.get(
      "/store-keys",
      Effect.gen(function*() {
        const userKey = (yield* SessionManager.SessionManager).storeKey(yield* Session)
        const adminKey = (yield* AdminManager).storeKey(yield* adminSession)
        return HttpServerResponse.text(
          Option.isSome(userKey) && Option.isSome(adminKey) && userKey.value !== adminKey.value ? "two keys" : "not two"
        )
      })
    )
  ).pipe(
    SessionMiddleware.make({ manager: AdminManager, session: adminSession, transport: AdminCookie }),
    SessionMiddleware.loadAndSave
  )

  const AdminLive = Layer.mergeAll(
    Layer.effect(AdminManager, SessionManager.make({ lifetime: "10 minutes" })).pipe(
      Layer.provide(MemoryStore.layer())
    ),
    Layer.effect(AdminCookie, SessionTransport.cookie({ name: "admin", path: "/" }))
  )
  const test = (name: string, body: (served: Served) => Effect.Effect<void, never, Scope.Scope>) =>
    it.scoped(name, () =>
      Effect.flatMap(serve(both), body).pipe(
        Effect.provide(Layer.merge(managerWith(), AdminLive)),
        (self) => TestClock.setTime(START).pipe(Effect.zipRight(self))
      ))

  test("each manager has its own cookie, lifetime and store", (served) =>
    Effect.gen(function*() {
      const cookies = jar()
      const login = yield* call(served, "/login")
      cookies.keep(login)
      expect(login.setCookies.map((c) => c.split("=")[0]).sort()).toEqual(["admin", "session"])
      expect(login.setCookies.find((c) => c.startsWith("admin="))).toContain("Max-Age=600")
      expect(login.setCookies.find((c) => c.startsWith("session="))).toContain("Max-Age=86400")
      expect((yield* call(served, "/whoami", { headers: cookies.header() })).body).toBe("visitor/admin")
      yield* TestClock.adjust("11 minutes")
      expect((yield* call(served, "/whoami", { headers: cookies.header() })).body).toBe("visitor/")
    }))

  test(`the middleware ${inContext ? "provides" : "files"} the second manager's session`, (served) =>
    Effect.gen(function*() {
      // A `Session.Tag` tag's session is filed under the request: the request's context is not copied to add it.
      expect((yield* call(served, "/in-context")).body).toBe(`false/${inContext}`)
    }))

  test("a fiber the handler forks works on the second manager's session", (served) =>
    Effect.gen(function*() {
      const cookies = jar()
      cookies.keep(yield* call(served, "/login"))
      cookies.keep(yield* call(served, "/forked", { headers: cookies.header() }))
      expect((yield* call(served, "/whoami", { headers: cookies.header() })).body).toBe("visitor/forked admin")
    }))

  test("each manager's storeKey takes the session its tag yields", (served) =>
    Effect.gen(function*() {
      const cookies = jar()
      cookies.keep(yield* call(served, "/login"))
      expect((yield* call(served, "/store-keys", { headers: cookies.header() })).body).toBe("two keys")
    }))
})

describe("a tag made by Session.Tag", () => {
  it.scoped("without its own middleware, its operations die rather than reach another tag's session", () =>
    Effect.gen(function*() {
      // Only the default tag's middleware runs: the handler reaches the other tag's default value,
      // which the compiler would refuse without the cast.
      const handler = Effect.flatMap(
        FiledAdminSession as unknown as Effect.Effect<SessionType.Session>,
        (admin) => admin.put("role", "admin")
      ).pipe(Effect.as(HttpServerResponse.text("unreachable")))
      const served = yield* serve(SessionMiddleware.loadAndSave(handler))
      const reply = yield* call(served, "/")
      expect(reply.status).toBe(500)
      expect(reply.setCookies).toEqual([])
      const admin = Option.getOrThrow(yield* Effect.serviceOption(FiledAdminSession))
      const exit = yield* Effect.exit(admin.get("role"))
      expect(String(exit)).toContain("no session middleware loaded a session for this request")
    }).pipe(Effect.provide(managerWith()), (self) => TestClock.setTime(START).pipe(Effect.zipRight(self))))

  it.effect("a value provided for it is used as provided", () =>
    Effect.gen(function*() {
      const manager = yield* SessionManager.SessionManager
      const session = yield* manager.load(undefined)
      yield* session.put("role", "provided")
      const role = yield* Effect.flatMap(FiledAdminSession, (admin) => admin.getString("role")).pipe(
        Effect.provideService(FiledAdminSession, session)
      )
      expect(role).toBe("provided")
    }).pipe(Effect.provide(managerWith())))
})

describe("the default Session tag finds the request's session by the request", () => {
  class InnerCookie extends Context.Tag("test/InnerCookie")<InnerCookie, SessionTransport.SessionTransport>() {}

  // A second middleware on the same tag, run from inside the first one's handler.
  const inner = Effect.gen(function*() {
    const session = yield* Session
    yield* session.put("inner", 1)
    return HttpServerResponse.text((yield* session.keys).join(","))
  }).pipe(SessionMiddleware.make({ manager: SessionManager.SessionManager, session: Session, transport: InnerCookie }))

  const fake: SessionType.Session = {
    ...Effect.runSync(Effect.serviceOption(Session)).pipe(Option.getOrThrow),
    getString: () => Effect.succeed("a provided session")
  }

  const app = HttpRouter.empty.pipe(
    HttpRouter.get(
      "/nested",
      Effect.gen(function*() {
        const outer = yield* Session
        yield* outer.put("outer", 1)
        const response = yield* inner
        yield* outer.put("after", 1)
        return HttpServerResponse.setHeader(response, "x-outer-keys", (yield* outer.keys).join(","))
      })
    ),
    HttpRouter.get(
      "/forked",
      Effect.gen(function*() {
        const session = yield* Session
        yield* Effect.fork(session.put("from", "a forked fiber")).pipe(Effect.flatMap(Fiber.join))
        return HttpServerResponse.text("ok")
      })
    ),
    HttpRouter.get(
      "/from",
      Effect.map(
        Effect.flatMap(Session, (session) => session.getString("from")),
        (from) => HttpServerResponse.text(from)
      )
    ),
    HttpRouter.get(
      "/store-key",
      Effect.gen(function*() {
        const manager = yield* SessionManager.SessionManager
        const key = manager.storeKey(yield* Session)
        return HttpServerResponse.text(Option.isSome(key) ? "stored" : "not stored")
      })
    ),
    HttpRouter.get(
      "/another-request",
      Effect.flatMap(Session, (session) => session.put("lost", 1)).pipe(
        Effect.provideService(HttpServerRequest.HttpServerRequest, HttpServerRequest.fromWeb(new Request("http://x/"))),
        Effect.as(HttpServerResponse.text("unreachable"))
      )
    )
  )

  const live = Layer.merge(
    managerWith(),
    Layer.effect(InnerCookie, SessionTransport.cookie({ name: "inner", path: "/" }))
  )
  const test = (name: string, body: (served: Served) => Effect.Effect<void, never, SessionManager.SessionManager>) =>
    it.scoped(name, () =>
      Effect.flatMap(serve(SessionMiddleware.loadAndSave(app)), body).pipe(
        Effect.provide(live),
        (self) => TestClock.setTime(START).pipe(Effect.zipRight(self))
      ))

  test("a middleware inside another gets its own session, and the outer one its own back", (served) =>
    Effect.gen(function*() {
      const reply = yield* call(served, "/nested")
      expect(reply.body).toBe("inner")
      expect(reply.headers.get("x-outer-keys")).toBe("after,outer")
      expect(reply.setCookies.map((c) => c.split("=")[0]).sort()).toEqual(["inner", "session"])
    }))

  test("a fiber the handler forks works on the request's session", (served) =>
    Effect.gen(function*() {
      const cookies = jar()
      cookies.keep(yield* call(served, "/forked"))
      expect((yield* call(served, "/from", { headers: cookies.header() })).body).toBe("a forked fiber")
    }))

  test("the manager's storeKey takes the Session a handler yields", (served) =>
    Effect.gen(function*() {
      const cookies = jar()
      cookies.keep(yield* call(served, "/forked"))
      expect((yield* call(served, "/store-key", { headers: cookies.header() })).body).toBe("stored")
      expect((yield* call(served, "/store-key")).body).toBe("not stored")
    }))

  test("with another request in context, an operation dies (a 500) rather than reach another session", (served) =>
    Effect.gen(function*() {
      const reply = yield* call(served, "/another-request")
      expect(reply.status).toBe(500)
      expect(reply.setCookies).toEqual([])
    }))

  it.scoped("a value provided for the tag around the middleware does not hide the loaded session", () =>
    Effect.gen(function*() {
      const served = yield* serve(SessionMiddleware.loadAndSave(router).pipe(Effect.provideService(Session, fake)))
      const cookies = jar()
      cookies.keep(yield* call(served, "/put"))
      expect((yield* call(served, "/get", { headers: cookies.header() })).body).toBe("Hello from a session!")
    }).pipe(Effect.provide(managerWith()), (self) => TestClock.setTime(START).pipe(Effect.zipRight(self))))

  it.effect("outside any session middleware the tag has a value whose operations die, saying why", () =>
    Effect.gen(function*() {
      const session = Option.getOrThrow(yield* Effect.serviceOption(Session))
      const exit = yield* Effect.exit(session.put("key", 1))
      expect(exit._tag).toBe("Failure")
      expect(String(exit)).toContain("no session middleware loaded a session for this request")
      const manager = yield* SessionManager.SessionManager
      expect(() => manager.storeKey(session)).toThrow("no session middleware loaded a session for this request")
    }).pipe(Effect.provide(managerWith())))
})

describe("HttpApi", () => {
  const api = HttpApi.make("api").add(
    HttpApiGroup.make("counter").add(HttpApiEndpoint.post("increment", "/increment").addSuccess(Schema.Number)).add(
      HttpApiEndpoint.get("read", "/read").addSuccess(Schema.Number)
    ).middleware(SessionMiddleware.SessionApi)
  )
  const CounterLive = HttpApiBuilder.group(
    api,
    "counter",
    (handlers) =>
      handlers.handle("increment", () =>
        Effect.gen(function*() {
          const session = yield* Session
          const next = (yield* session.getInt("count")) + 1
          yield* Effect.orDie(session.put("count", next))
          return next
        })).handle("read", () => Effect.flatMap(Session, (session) => session.getInt("count")))
  )

  const ApiLive = HttpApiBuilder.api(api).pipe(
    Layer.provide(CounterLive),
    Layer.provide(SessionMiddleware.layerApi()),
    Layer.provide(managerWith())
  )

  it.scoped("SessionApi provides Session to HttpApi handlers with the same cookie semantics", () =>
    Effect.gen(function*() {
      const { handler, dispose } = HttpApiBuilder.toWebHandler(
        Layer.mergeAll(ApiLive, HttpServer.layerContext)
      )
      yield* Effect.addFinalizer(() => Effect.promise(dispose))
      const request = (path: string, init?: RequestInit) =>
        Effect.promise(() => handler(new Request(`http://localhost${path}`, init)))
      const first = yield* request("/increment", { method: "POST" })
      expect(yield* Effect.promise(() => first.json())).toBe(1)
      const setCookie = first.headers.getSetCookie()
      expect(setCookie[0]).toMatch(/^session=[A-Za-z0-9_-]{43}; /)
      expect(first.headers.get("vary")).toBe("Cookie")
      const cookie = setCookie[0].split(";")[0]
      const second = yield* request("/increment", { method: "POST", headers: { cookie } })
      expect(yield* Effect.promise(() => second.json())).toBe(2)
      const read = yield* request("/read", { headers: { cookie } })
      expect(yield* Effect.promise(() => read.json())).toBe(2)
      expect(read.headers.getSetCookie()).toEqual([])
    }))
})
