/**
 * CSRF protection over real HTTP: every branch of the header check with crafted headers, the
 * synchronizer token, and the three integrations (HttpApp, HttpLayerRouter, HttpApi).
 */
import * as HttpApi from "@effect/platform/HttpApi"
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as HttpApiMiddleware from "@effect/platform/HttpApiMiddleware"
import type * as HttpApp from "@effect/platform/HttpApp"
import * as HttpLayerRouter from "@effect/platform/HttpLayerRouter"
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServer from "@effect/platform/HttpServer"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as OpenApi from "@effect/platform/OpenApi"
import * as UrlParams from "@effect/platform/UrlParams"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import { request as httpRequest } from "node:http"
import * as Csrf from "../src/Csrf.js"
import { Session } from "../src/Session.js"
import { SessionConfigError } from "../src/SessionConfigError.js"
import * as SessionManager from "../src/SessionManager.js"
import * as Sealed from "../src/SessionManager/Sealed.js"
import * as SessionMetrics from "../src/SessionMetrics.js"
import * as SessionMiddleware from "../src/SessionMiddleware.js"
import * as MemoryStore from "../src/SessionStore/Memory.js"
import * as SessionTransport from "../src/SessionTransport.js"
import { call, cookieFrom, serve, type Served, serveLayer } from "./http.js"
import { makeOtel, spanStrings } from "./otel.js"

const SessionLive = SessionManager.layer({ lifetime: "1 hour" }).pipe(Layer.provide(MemoryStore.layer()))

const ok = HttpServerResponse.text("done")

const routes = HttpRouter.empty.pipe(
  HttpRouter.get("/page", Effect.succeed(ok)),
  HttpRouter.head("/page", Effect.succeed(ok)),
  HttpRouter.options("/page", Effect.succeed(ok)),
  HttpRouter.post("/action", Effect.succeed(ok)),
  HttpRouter.put("/action", Effect.succeed(ok)),
  HttpRouter.del("/action", Effect.succeed(ok)),
  HttpRouter.patch("/action", Effect.succeed(ok)),
  HttpRouter.post("/hooks", Effect.succeed(ok)),
  HttpRouter.post("/hooks/:name", Effect.succeed(ok)),
  HttpRouter.put("/hooks/:name", Effect.succeed(ok)),
  HttpRouter.post("/admin", Effect.succeed(ok))
)

/** The app answers a refusal with its reason, so each branch is seen, not just a 403. */
const withReason = <E, R>(app: HttpApp.Default<E, R>): HttpApp.Default<E, R> =>
  Effect.catchIf(
    app,
    (error): error is Csrf.CsrfError & E => error instanceof Csrf.CsrfError,
    (error) => Effect.succeed(HttpServerResponse.text(error.reason, { status: 403 }))
  )

/** Serves an app (the request it reads is the server's to give). */
const serveApp = <E, R>(app: HttpApp.Default<E, R>) =>
  serve(app as HttpApp.Default<E, Exclude<R, HttpServerRequest.HttpServerRequest>>)

const post = (served: Served, path: string, headers: Record<string, string>, method = "POST") =>
  call(served, path, { method, headers })

/** A request with its path exactly as written: `fetch` would resolve dot segments first. */
const raw = (served: Served, method: string, path: string, headers: Record<string, string>) =>
  Effect.async<number>((resume) => {
    const url = new URL(served.url)
    const request = httpRequest({ host: url.hostname, port: url.port, method, path, headers }, (response) => {
      response.resume()
      response.on("end", () => resume(Effect.succeed(response.statusCode ?? 0)))
    })
    request.on("error", (error) => resume(Effect.die(error)))
    request.end()
  })

describe("the header check (Go 1.25 CrossOriginProtection), over real HTTP", () => {
  const served = serveApp(withReason(Csrf.protect()(routes)))

  it.scoped("safe methods pass whatever their headers say", () =>
    Effect.gen(function*() {
      const app = yield* served
      for (const method of ["GET", "HEAD", "OPTIONS"]) {
        const reply = yield* post(
          app,
          "/page",
          { "sec-fetch-site": "cross-site", origin: "https://evil.example" },
          method
        )
        expect(reply.status, method).toBe(200)
      }
    }))

  it.scoped("Sec-Fetch-Site: same-origin and none pass; same-site, cross-site and anything else are refused", () =>
    Effect.gen(function*() {
      const app = yield* served
      for (const method of ["POST", "PUT", "DELETE", "PATCH"]) {
        for (const site of ["same-origin", "none"]) {
          const reply = yield* post(app, "/action", { "sec-fetch-site": site }, method)
          expect(reply.status, `${method} ${site}`).toBe(200)
        }
        for (const site of ["same-site", "cross-site", "something-new"]) {
          const reply = yield* post(app, "/action", { "sec-fetch-site": site }, method)
          expect([reply.status, reply.body], `${method} ${site}`).toEqual([403, "CrossOriginRequest"])
        }
      }
      // Sec-Fetch-Site decides when present: a matching Origin does not rescue a cross-site request.
      const host = new URL(app.url).host
      const withOrigin = yield* post(app, "/action", { "sec-fetch-site": "cross-site", origin: `http://${host}` })
      expect(withOrigin.status).toBe(403)
    }))

  it.scoped("without Sec-Fetch-Site: no Origin passes (not a browser), Origin must otherwise name the host", () =>
    Effect.gen(function*() {
      const app = yield* served
      const host = new URL(app.url).host
      expect((yield* post(app, "/action", {})).status).toBe(200)
      expect((yield* post(app, "/action", { origin: `http://${host}` })).status).toBe(200)
      for (const origin of [`http://${host}.evil.example`, "https://evil.example", "null", "not a url"]) {
        const reply = yield* post(app, "/action", { origin })
        expect([reply.status, reply.body], origin).toEqual([403, "OriginMismatch"])
      }
      // The host is compared as sent, port included.
      const otherPort = yield* post(app, "/action", { origin: `http://127.0.0.1:1` })
      expect(otherPort.status).toBe(403)
    }))

  it.scoped("a refusal the app does not handle is an empty 403 that says nothing", () =>
    Effect.gen(function*() {
      const app = yield* serveApp(Csrf.protect()(routes))
      const reply = yield* post(app, "/action", { "sec-fetch-site": "cross-site" })
      expect(reply.status).toBe(403)
      expect(reply.body).toBe("")
      expect(reply.setCookies).toEqual([])
    }))

  it.scoped("trusted origins pass, exactly as written", () =>
    Effect.gen(function*() {
      const app = yield* serveApp(withReason(Csrf.protect({ trustedOrigins: ["https://sso.example.com"] })(routes)))
      const trusted = { origin: "https://sso.example.com" }
      expect((yield* post(app, "/action", { ...trusted, "sec-fetch-site": "cross-site" })).status).toBe(200)
      expect((yield* post(app, "/action", trusted)).status).toBe(200)
      for (const origin of ["https://sso.example.com:8443", "http://sso.example.com", "https://evil.sso.example.com"]) {
        expect((yield* post(app, "/action", { origin, "sec-fetch-site": "cross-site" })).status, origin).toBe(403)
        expect((yield* post(app, "/action", { origin })).status, origin).toBe(403)
      }
    }))

  it.scoped("exempt routes pass: by method and path, below a prefix, or by a predicate", () =>
    Effect.gen(function*() {
      const app = yield* serveApp(withReason(Csrf.protect({ exempt: ["POST /hooks/*", "/admin"] })(routes)))
      const cross = { "sec-fetch-site": "cross-site" }
      expect((yield* post(app, "/hooks/github", cross)).status).toBe(200)
      expect((yield* post(app, "/hooks/github?delivery=1", cross)).status).toBe(200)
      expect((yield* post(app, "/admin", cross)).status).toBe(200)
      // "/hooks/*" is below /hooks, not /hooks itself; the method is part of the rule.
      expect((yield* post(app, "/hooks", cross)).status).toBe(403)
      expect((yield* post(app, "/hooks/github", cross, "PUT")).status).toBe(403)
      expect((yield* post(app, "/action", cross)).status).toBe(403)
      // A path a router may read another way is never exempt.
      for (const path of ["/hooks/../action", "/hooks/%2e%2e/action", "/hooks//x", "/hooks/.%2E/admin"]) {
        expect(yield* raw(app, "POST", path, cross), path).not.toBe(200)
      }
      const byPredicate = yield* serveApp(withReason(
        Csrf.protect({
          exempt: (request) => request.headers["x-signature"] === "valid"
        })(routes)
      ))
      expect((yield* post(byPredicate, "/action", { ...cross, "x-signature": "valid" })).status).toBe(200)
      expect((yield* post(byPredicate, "/action", cross)).status).toBe(403)
    }))

  it("invalid options fail when the middleware is made, with the option named", () => {
    const invalid: ReadonlyArray<[string, Csrf.ProtectOptions]> = [
      ["trustedOrigins", { trustedOrigins: ["https://example.com/"] }],
      ["trustedOrigins", { trustedOrigins: ["example.com"] }],
      ["trustedOrigins", { trustedOrigins: ["https://example.com/path"] }],
      ["trustedOrigins", { trustedOrigins: ["https://EXAMPLE.com"] }],
      ["exempt", { exempt: ["POST hooks"] }],
      ["exempt", { exempt: ["/hooks/../admin"] }],
      ["exempt", { exempt: ["/hooks/*/x"] }],
      ["exempt", { exempt: ["post /hooks"] }]
    ]
    for (const [option, options] of invalid) {
      let thrown: unknown
      try {
        Csrf.protect(options)
      } catch (error) {
        thrown = error
      }
      expect(thrown, JSON.stringify(options)).toBeInstanceOf(SessionConfigError)
      expect((thrown as SessionConfigError).option).toBe(option)
    }
  })

  it.scoped("refusals are counted by reason, with no other label", () =>
    Effect.gen(function*() {
      const counter = Metric.tagged(SessionMetrics.csrfRefused, "reason", "OriginMismatch")
      const before = (yield* Metric.value(counter)).count
      const app = yield* served
      yield* post(app, "/action", { origin: "https://evil.example" })
      expect((yield* Metric.value(counter)).count).toBe(before + 1)
    }))
})

// ---------------------------------------------------------------------------------------------
// The synchronizer token
// ---------------------------------------------------------------------------------------------

const tokenRoutes = HttpRouter.empty.pipe(
  HttpRouter.get("/form", Effect.map(Csrf.formField(), (field) => HttpServerResponse.html(`<form>${field}</form>`))),
  HttpRouter.get("/token", Effect.map(Csrf.token, (token) => HttpServerResponse.text(token))),
  HttpRouter.post(
    "/echo",
    Effect.map(
      HttpServerRequest.schemaBodyUrlParams(Schema.Struct({ note: Schema.String })),
      ({ note }) => HttpServerResponse.text(note)
    )
  ),
  HttpRouter.post("/json", Effect.succeed(ok)),
  HttpRouter.post(
    "/sign-in",
    Effect.flatMap(Session, (session) => session.bindOwner("ada")).pipe(Effect.as(ok))
  ),
  HttpRouter.post("/rotate", Effect.as(Csrf.rotateToken, ok)),
  HttpRouter.post("/hooks/in", Effect.succeed(ok))
)

const tokenApp = withReason(Csrf.protect({ token: true, exempt: ["POST /hooks/*"] })(tokenRoutes)).pipe(
  SessionMiddleware.loadAndSave
)

const fieldValue = (html: string): string => /name="_csrf" value="([^"]+)"/.exec(html)![1]

/** A browser-like client: one cookie, same-origin requests. */
const client = (app: Served) =>
  Effect.gen(function*() {
    let cookie = ""
    const send = (path: string, init: { method?: string; headers?: Record<string, string>; body?: string } = {}) =>
      Effect.tap(
        Effect.suspend(() =>
          call(app, path, {
            method: init.method ?? "GET",
            headers: { "sec-fetch-site": "same-origin", ...(cookie === "" ? {} : { cookie }), ...init.headers },
            ...(init.body === undefined ? {} : { body: init.body })
          })
        ),
        (reply) =>
          Effect.sync(() => {
            if (reply.setCookies.length > 0) cookie = cookieFrom(reply)
          })
      )
    const form = (path: string, fields: Record<string, string>) =>
      send(path, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: UrlParams.toString(UrlParams.fromInput(fields))
      })
    const token = Effect.map(send("/form"), (reply) => fieldValue(reply.body))
    return { send, form, token }
  })

describe("the synchronizer token", () => {
  it.scoped("a form carries a token masked afresh on every page; each one is accepted", () =>
    Effect.gen(function*() {
      const browser = yield* client(yield* serveApp(tokenApp))
      const first = yield* browser.token
      const second = yield* browser.token
      expect(first).not.toBe(second)
      expect(first).toMatch(/^[A-Za-z0-9_-]{86}$/)
      expect((yield* browser.form("/echo", { _csrf: first, note: "one" })).body).toBe("one")
      expect((yield* browser.form("/echo", { _csrf: second, note: "two" })).body).toBe("two")
      // The header serves fetch callers, with any body.
      const viaHeader = yield* browser.send("/json", {
        method: "POST",
        headers: { "x-csrf-token": yield* browser.token, "content-type": "application/json" },
        body: "{}"
      })
      expect(viaHeader.status).toBe(200)
    }).pipe(Effect.provide(SessionLive)))

  it.scoped("in a sealed cookie as in a store: the secret travels with the session", () =>
    Effect.gen(function*() {
      const browser = yield* client(yield* serveApp(tokenApp))
      const token = yield* browser.token
      expect((yield* browser.form("/echo", { _csrf: token, note: "sealed" })).body).toBe("sealed")
      // Each write re-seals the cookie, with the secret inside; signing in replaces it.
      expect((yield* browser.form("/sign-in", { _csrf: token })).status).toBe(200)
      const signedIn = yield* browser.token
      expect((yield* browser.form("/echo", { _csrf: token, note: "x" })).body).toBe("TokenInvalid")
      expect((yield* browser.form("/echo", { _csrf: signedIn, note: "ok" })).body).toBe("ok")
      expect((yield* browser.form("/echo", { _csrf: signedIn, note: "again" })).body).toBe("again")
    }).pipe(
      Effect.provide(
        Sealed.layer({ secrets: [{ id: "k1", secret: Redacted.make("a test secret of at least 32 bytes") }] })
      )
    ))

  it.scoped("a missing, foreign, tampered or malformed token is refused, and the handler never runs", () =>
    Effect.gen(function*() {
      const app = yield* serveApp(tokenApp)
      const browser = yield* client(app)
      const other = yield* client(app)
      const mine = yield* browser.token
      const theirs = yield* other.token
      const refused = (fields: Record<string, string>) => Effect.map(browser.form("/echo", fields), (r) => r.body)
      expect(yield* refused({ note: "x" })).toBe("TokenMissing")
      expect(yield* refused({ _csrf: "", note: "x" })).toBe("TokenMissing")
      expect(yield* refused({ _csrf: theirs, note: "x" })).toBe("TokenInvalid")
      const flipped = mine.slice(0, 50) + (mine[50] === "A" ? "B" : "A") + mine.slice(51)
      expect(yield* refused({ _csrf: flipped, note: "x" })).toBe("TokenInvalid")
      expect(yield* refused({ _csrf: mine.slice(1), note: "x" })).toBe("TokenInvalid")
      expect(yield* refused({ _csrf: "!".repeat(86), note: "x" })).toBe("TokenInvalid")
      expect(yield* refused({ _csrf: mine.repeat(1000), note: "x" })).toBe("TokenInvalid")
      const wrongHeader = yield* browser.send("/json", { method: "POST", headers: { "x-csrf-token": theirs } })
      expect(wrongHeader.body).toBe("TokenInvalid")
      // A session that never asked for a token has none to match.
      const fresh = yield* client(app)
      expect((yield* fresh.form("/echo", { _csrf: mine, note: "x" })).body).toBe("TokenMissing")
    }).pipe(Effect.provide(SessionLive)))

  it.scoped("signing in and rotating retire every earlier token", () =>
    Effect.gen(function*() {
      const browser = yield* client(yield* serveApp(tokenApp))
      const anonymous = yield* browser.token
      expect((yield* browser.form("/sign-in", { _csrf: anonymous })).status).toBe(200)
      // The secret was made for the anonymous session: the signed-in one has none until its next page.
      expect((yield* browser.form("/echo", { _csrf: anonymous, note: "x" })).body).toBe("TokenMissing")
      const signedIn = yield* browser.token
      expect((yield* browser.form("/echo", { _csrf: signedIn, note: "ok" })).body).toBe("ok")
      expect((yield* browser.form("/rotate", { _csrf: signedIn })).status).toBe(200)
      expect((yield* browser.form("/echo", { _csrf: signedIn, note: "x" })).body).toBe("TokenMissing")
      expect((yield* browser.form("/echo", { _csrf: yield* browser.token, note: "ok" })).body).toBe("ok")
    }).pipe(Effect.provide(SessionLive)))

  it.scoped("safe methods and exempt routes need no token; the header check still comes first", () =>
    Effect.gen(function*() {
      const app = yield* serveApp(tokenApp)
      const browser = yield* client(app)
      expect((yield* browser.send("/token")).status).toBe(200)
      expect((yield* browser.send("/hooks/in", { method: "POST" })).status).toBe(200)
      const crossSite = yield* browser.send("/echo", {
        method: "POST",
        headers: { "sec-fetch-site": "cross-site", "x-csrf-token": yield* browser.token }
      })
      expect(crossSite.body).toBe("CrossOriginRequest")
    }).pipe(Effect.provide(SessionLive)))

  it.live("a token sent in its header stays out of the platform's spans with layerRedactHeaders", () =>
    Effect.gen(function*() {
      const otel = makeOtel()
      const token = yield* Effect.scoped(Effect.gen(function*() {
        const app = yield* serveLayer(
          HttpServer.serve(tokenApp).pipe(
            Layer.provide(Csrf.layerRedactHeaders()),
            Layer.provide(SessionLive),
            Layer.provide(otel.layer)
          )
        )
        const browser = yield* client(app)
        const token = yield* browser.token
        const sent = yield* browser.send("/json", { method: "POST", headers: { "x-csrf-token": token } })
        expect(sent.status).toBe(200)
        return token
      }))
      const strings = otel.spans().filter((span) => span.name.startsWith("http.server")).flatMap(spanStrings)
      expect(strings.some((text) => text.includes("redacted"))).toBe(true)
      expect(strings.filter((text) => text.includes(token))).toEqual([])
    }))

  it.effect("formField escapes the field name it is given", () =>
    Effect.gen(function*() {
      const session = yield* (yield* SessionManager.SessionManager).load(undefined)
      const field = yield* Effect.provideService(Csrf.formField({ field: `a"><script>` }), Session, session)
      expect(field).toMatch(/^<input type="hidden" name="a&#34;&#62;&#60;script&#62;" value="[A-Za-z0-9_-]{86}">$/)
    }).pipe(Effect.provide(SessionLive)))
})

// ---------------------------------------------------------------------------------------------
// HttpLayerRouter and HttpApi
// ---------------------------------------------------------------------------------------------

describe("HttpLayerRouter", () => {
  it.scoped("layerRouter protects the routes it is provided to, and only those", () =>
    Effect.gen(function*() {
      const Protected = Layer.mergeAll(
        HttpLayerRouter.add("POST", "/action", Effect.succeed(ok)),
        HttpLayerRouter.add(
          "POST",
          "/high-risk",
          Effect.as(Csrf.verifyRequest(), ok).pipe(withReason)
        ),
        HttpLayerRouter.add("GET", "/token", Effect.map(Csrf.token, (token) => HttpServerResponse.text(token)))
      ).pipe(Layer.provide(Csrf.layerRouter()), Layer.provide(SessionMiddleware.layerRouter()))
      const Open = HttpLayerRouter.add("POST", "/open", Effect.succeed(ok))
      const app = yield* serveLayer(
        HttpLayerRouter.serve(Layer.mergeAll(Protected, Open)).pipe(Layer.provide(SessionLive))
      )
      const cross = { "sec-fetch-site": "cross-site" }
      expect((yield* post(app, "/action", cross)).status).toBe(403)
      expect((yield* post(app, "/action", { "sec-fetch-site": "same-origin" })).status).toBe(200)
      expect((yield* post(app, "/open", cross)).status).toBe(200)
      // The token, where a route asks for it.
      const tokenReply = yield* call(app, "/token")
      const cookie = cookieFrom(tokenReply)
      const withToken = yield* post(app, "/high-risk", { cookie, "x-csrf-token": tokenReply.body })
      expect(withToken.status).toBe(200)
      const without = yield* post(app, "/high-risk", { cookie })
      expect([without.status, without.body]).toEqual([403, "TokenMissing"])
    }))
  it.scoped("routerMiddleware with the token, combined with the session's: every unsafe route wants the token", () =>
    Effect.gen(function*() {
      const Routes = Layer.mergeAll(
        HttpLayerRouter.add("POST", "/action", Effect.succeed(ok)),
        HttpLayerRouter.add("GET", "/token", Effect.map(Csrf.token, (token) => HttpServerResponse.text(token)))
      ).pipe(
        Layer.provide(Csrf.routerMiddleware({ token: true }).combine(SessionMiddleware.routerMiddleware()).layer)
      )
      const app = yield* serveLayer(HttpLayerRouter.serve(Routes).pipe(Layer.provide(SessionLive)))
      const tokenReply = yield* call(app, "/token")
      const cookie = cookieFrom(tokenReply)
      const same = { cookie, "sec-fetch-site": "same-origin" }
      expect((yield* post(app, "/action", { ...same, "x-csrf-token": tokenReply.body })).status).toBe(200)
      expect((yield* post(app, "/action", same)).status).toBe(403)
      expect((yield* post(app, "/action", { ...same, "x-csrf-token": tokenReply.body.slice(1) })).status).toBe(403)
      const crossSite = yield* post(app, "/action", {
        cookie,
        "sec-fetch-site": "cross-site",
        "x-csrf-token": tokenReply.body
      })
      expect([crossSite.status, crossSite.body]).toEqual([403, ""])
    }))
})

describe("HttpApi", () => {
  const api = HttpApi.make("api").add(
    HttpApiGroup.make("counter")
      .add(HttpApiEndpoint.post("increment", "/increment").addSuccess(Schema.Number))
      .add(HttpApiEndpoint.get("read", "/read").addSuccess(Schema.Number))
      .middleware(Csrf.CsrfApi)
      .middleware(SessionMiddleware.SessionApi)
  ).add(
    HttpApiGroup.make("hooks").add(HttpApiEndpoint.post("hook", "/hook").addSuccess(Schema.String))
  )
  const CounterLive = HttpApiBuilder.group(api, "counter", (handlers) =>
    handlers
      .handle("increment", () =>
        Effect.gen(function*() {
          const session = yield* Session
          const next = (yield* session.getInt("count")) + 1
          yield* Effect.orDie(session.put("count", next))
          return next
        }))
      .handle("read", () => Effect.flatMap(Session, (session) => session.getInt("count"))))
  const HooksLive = HttpApiBuilder.group(
    api,
    "hooks",
    (handlers) => handlers.handle("hook", () => Effect.succeed("ok"))
  )
  const ApiLive = HttpApiBuilder.api(api).pipe(
    Layer.provide([CounterLive, HooksLive]),
    Layer.provide(Csrf.layerApi()),
    Layer.provide(SessionMiddleware.layerApi()),
    Layer.provide(SessionLive)
  )

  it.scoped("CsrfApi refuses a cross-site request with an empty 403 and lets the rest through", () =>
    Effect.gen(function*() {
      const app = yield* serveLayer(HttpApiBuilder.serve().pipe(Layer.provide(ApiLive)))
      const refused = yield* post(app, "/increment", { "sec-fetch-site": "cross-site" })
      expect(refused.status).toBe(403)
      expect(refused.body).toBe("")
      const first = yield* post(app, "/increment", { "sec-fetch-site": "same-origin" })
      expect([first.status, first.body]).toEqual([200, "1"])
      const cookie = cookieFrom(first)
      const noOrigin = yield* post(app, "/increment", { cookie })
      expect(noOrigin.body).toBe("2")
      expect((yield* post(app, "/increment", { cookie, origin: "https://evil.example" })).status).toBe(403)
      expect((yield* call(app, "/read", { headers: { cookie, "sec-fetch-site": "cross-site" } })).body).toBe("2")
      // A group without the middleware is not checked.
      expect((yield* post(app, "/hook", { "sec-fetch-site": "cross-site" })).status).toBe(200)
    }))

  it.scoped("the OpenAPI document the server serves shows the session cookie as the endpoints' security scheme", () =>
    Effect.gen(function*() {
      const app = yield* serveLayer(
        HttpApiBuilder.serve().pipe(Layer.provide(HttpApiBuilder.middlewareOpenApi()), Layer.provide(ApiLive))
      )
      const reply = yield* call(app, "/openapi.json")
      expect(reply.status).toBe(200)
      const spec = JSON.parse(reply.body)
      expect(spec.components.securitySchemes).toEqual({
        session: {
          type: "apiKey",
          name: "session",
          in: "cookie",
          description: "The session cookie, set by the server; the browser sends it back by itself."
        }
      })
      expect(spec.paths["/increment"].post.security).toEqual([{ session: [] }])
      expect(spec.paths["/read"].get.security).toEqual([{ session: [] }])
      expect(spec.paths["/hook"].post.security).toEqual([])
      // The refusal is the platform's empty 403.
      expect(Object.keys(spec.paths["/increment"].post.responses)).toContain("403")
    }))

  class AppSession extends HttpApiMiddleware.Tag<AppSession>()("test/AppSession", {
    provides: Session,
    failure: Schema.Union(SessionMiddleware.SessionUnavailable, SessionMiddleware.SessionBusy),
    security: { appSession: SessionTransport.cookieSecurity("__Host-app") }
  }) {}
  const appApi = HttpApi.make("app").add(
    HttpApiGroup.make("me").add(HttpApiEndpoint.get("me", "/me").addSuccess(Schema.String)).middleware(AppSession)
  )
  const MeLive = HttpApiBuilder.group(
    appApi,
    "me",
    (handlers) => handlers.handle("me", () => Effect.as(Session, "me"))
  )

  it.scoped("a tag of your own declares your cookie; layerApiFor checks it against the transport", () =>
    Effect.gen(function*() {
      const spec = JSON.parse(JSON.stringify(OpenApi.fromApi(appApi)))
      expect(spec.components.securitySchemes.appSession).toMatchObject({
        type: "apiKey",
        name: "__Host-app",
        in: "cookie"
      })
      expect(spec.paths["/me"].get.security).toEqual([{ appSession: [] }])
      const transport = yield* SessionTransport.cookie({ name: "__Host-app" })
      const built = yield* Layer.build(
        HttpApiBuilder.api(appApi).pipe(
          Layer.provide(MeLive),
          Layer.provide(SessionMiddleware.layerApiFor(AppSession, { transport })),
          Layer.provide(SessionLive)
        )
      ).pipe(Effect.exit)
      expect(Exit.isSuccess(built)).toBe(true)
      // The default cookie (or a header) would make the document name a credential nobody sends.
      for (const other of [SessionTransport.cookieDefault, SessionTransport.header()]) {
        const error = yield* Layer.build(SessionMiddleware.layerApiFor(AppSession, { transport: other })).pipe(
          Effect.provide(SessionLive),
          Effect.flip
        )
        expect(error).toBeInstanceOf(SessionConfigError)
        expect(error.option).toBe("transport")
      }
      const mismatch = yield* Layer.build(
        SessionMiddleware.layerApi({ transport: transport })
      ).pipe(Effect.provide(SessionLive), Effect.flip)
      expect(mismatch.message).toContain("__Host-app")
      // A header transport and a bearer scheme agree.
      expect(SessionTransport.header().security).toEqual(SessionTransport.headerSecurity())
      expect(SessionTransport.header({ requestHeader: "X-Token" }).security).toEqual(
        SessionTransport.headerSecurity({ requestHeader: "X-Token" })
      )
    }))
})
