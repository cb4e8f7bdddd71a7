import * as Cookies from "@effect/platform/Cookies"
import * as Headers from "@effect/platform/Headers"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { describe, expect, it } from "@effect/vitest"
import * as Config from "effect/Config"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as fs from "node:fs"
import * as path from "node:path"
import * as SessionTransport from "../src/SessionTransport.js"

describe("cookie transport settings", () => {
  const invalid = (options: SessionTransport.CookieOptions, reason: RegExp) =>
    it.effect(`rejects ${JSON.stringify(options)}`, () =>
      Effect.gen(function*() {
        const result = yield* Effect.either(SessionTransport.cookie(options))
        expect(Either.isLeft(result) && result.left._tag).toBe("SessionConfigError")
        expect(Either.isLeft(result) ? result.left.message : "").toMatch(reason)
        // The layer fails with the same error.
        const built = yield* Effect.either(Layer.build(SessionTransport.layerCookie(options)).pipe(Effect.scoped))
        expect(Either.isLeft(built) && built.left._tag).toBe("SessionConfigError")
      }))

  invalid({ name: "__Host-session", secure: false }, /cookie\.secure must be true for a __Host- cookie/)
  invalid({ name: "__Host-session", domain: "example.com" }, /cookie\.domain must be unset/)
  invalid({ name: "__Host-session", path: "/app" }, /cookie\.path must be "\/" for a __Host-/)
  invalid({ name: "__Secure-session", secure: false }, /cookie\.secure must be true for a __Secure- cookie/)
  invalid({ sameSite: "none", secure: false }, /cookie\.secure must be true for sameSite "none"/)
  invalid({ partitioned: true, secure: false }, /cookie\.secure must be true for a partitioned cookie/)
  invalid({ name: "bad name;" }, /cookie\.name must be a cookie name/)
  invalid({ path: "relative" }, /cookie\.path must start with/)
  invalid({ path: "/a;b" }, /cookie\.path is not a valid cookie path/)
  invalid({ domain: "example.com; path=/x" }, /cookie\.domain is not a valid domain/)

  it.effect("accepts a valid __Host- cookie, Secure by default", () =>
    Effect.gen(function*() {
      const result = yield* Effect.either(SessionTransport.cookie({ name: "__Host-s" }))
      expect(Either.isRight(result)).toBe(true)
    }))

  it.effect("layerCookieConfig reads the settings from Config, with the same checks", () =>
    Effect.gen(function*() {
      const layer = SessionTransport.layerCookieConfig({
        name: Config.string("SESSION_COOKIE"),
        secure: Config.boolean("SESSION_SECURE")
      })
      const read = (secure: string) =>
        Effect.either(Effect.provide(SessionTransport.SessionTransport, layer)).pipe(
          Effect.withConfigProvider(
            ConfigProvider.fromMap(new Map([["SESSION_COOKIE", "__Host-sid"], ["SESSION_SECURE", secure]]))
          )
        )
      expect(Either.isRight(yield* read("true"))).toBe(true)
      const insecure = yield* read("false")
      expect(Either.isLeft(insecure) && insecure.left._tag).toBe("SessionConfigError")
    }))
})

const requestWith = (headers: Record<string, string>) =>
  HttpServerRequest.fromWeb(new Request("http://localhost/")).modify({ headers: Headers.fromInput(headers) })

const TOKEN = "k".repeat(43)
const OTHER = "o".repeat(43)

describe("reading the session cookie", () => {
  const read = (cookie: string) =>
    Effect.map(
      SessionTransport.cookieDefault.read(requestWith({ cookie })),
      Option.map(Redacted.value)
    )

  it.effect("the one cookie of the name, among others, as sent", () =>
    Effect.gen(function*() {
      expect(yield* read(`session=${TOKEN}`)).toEqual(Option.some(TOKEN))
      expect(yield* read(`a=1; session=${TOKEN}; b=2`)).toEqual(Option.some(TOKEN))
      // Names are case-sensitive and whole: these are other cookies.
      expect(yield* read(`Session=${OTHER}; xsession=${OTHER}; session=${TOKEN}`)).toEqual(Option.some(TOKEN))
      // Nothing is decoded or unquoted: a dressed-up value is not a token (the manager refuses it).
      expect(yield* read(`session="${TOKEN}"`)).toEqual(Option.some(`"${TOKEN}"`))
      expect(yield* read(`session=%6B${TOKEN.slice(1)}`)).toEqual(Option.some(`%6B${TOKEN.slice(1)}`))
      expect(yield* read("session")).toEqual(Option.none())
      expect(yield* read("a=session")).toEqual(Option.none())
    }))

  it.effect("a name sent twice is no session at all, however the headers were joined", () =>
    Effect.gen(function*() {
      for (
        const cookie of [
          `session=${TOKEN}; session=${OTHER}`,
          `session=${OTHER}; session=${TOKEN}`,
          `session=${TOKEN}; session=${TOKEN}`,
          `session=${TOKEN}, session=${OTHER}`, // two Cookie headers joined by a fetch Headers
          `a=1; session=${TOKEN}; b=2; session=`,
          ` session =${TOKEN};session=${OTHER}`
        ]
      ) {
        expect(yield* read(cookie)).toEqual(Option.none())
      }
    }))
})

/** The `Set-Cookie` lines a server sends for `response`: its cookies and its `Set-Cookie` header. */
const setCookieLines = (response: HttpServerResponse.HttpServerResponse): Array<string> =>
  HttpServerResponse.toWeb(response).headers.getSetCookie()

describe("writing the session cookie", () => {
  const expiry = { expiresAt: 90_061_500, now: 1_000, rememberMe: undefined }
  const token = Redacted.make(TOKEN)
  const settings: ReadonlyArray<SessionTransport.CookieOptions> = [
    {},
    { name: "__Host-sid", sameSite: "strict" },
    { name: "__Secure-sid", domain: "example.com", path: "/app", sameSite: "none", partitioned: true },
    { name: "sid", secure: false, httpOnly: false },
    { persist: false },
    { persist: false, domain: "sub.example.com", sameSite: "strict", partitioned: true }
  ]

  it.effect("the same lines as the platform's Cookies makes of the same cookie, set, sent for the session and cleared", () =>
    Effect.gen(function*() {
      for (const options of settings) {
        const transport = yield* SessionTransport.cookie(options)
        const attributes = {
          path: options.path ?? "/",
          domain: options.domain,
          httpOnly: options.httpOnly ?? true,
          secure: options.secure ?? true,
          partitioned: options.partitioned ?? false,
          sameSite: options.sameSite ?? "lax"
        }
        const name = options.name ?? "session"
        const platform = (value: string, more: Partial<Cookies.Cookie["options"]>) =>
          Cookies.serializeCookie(Cookies.unsafeMakeCookie(name, value, { ...attributes, ...more }))
        const written = yield* transport.write(HttpServerResponse.empty(), token, expiry)
        expect(setCookieLines(written)).toEqual([
          options.persist === false
            ? platform(TOKEN, {})
            // Expires rounded up to the second, Max-Age in whole seconds (90,060.5 s → 90,061).
            : platform(TOKEN, { expires: new Date(90_062_000), maxAge: "90061 seconds" })
        ])
        const remembered = yield* transport.write(HttpServerResponse.empty(), token, { ...expiry, rememberMe: true })
        expect(setCookieLines(remembered)).toEqual([
          platform(TOKEN, { expires: new Date(90_062_000), maxAge: "90061 seconds" })
        ])
        const forgotten = yield* transport.write(HttpServerResponse.empty(), token, { ...expiry, rememberMe: false })
        expect(setCookieLines(forgotten)).toEqual([platform(TOKEN, {})])
        const cleared = yield* transport.clear(HttpServerResponse.empty())
        expect(setCookieLines(cleared)).toEqual([platform("", { expires: new Date(1000), maxAge: 0 })])
      }
    }))

  it.effect("each write's Expires is its own expiry's, in the same second, the next and back", () =>
    Effect.gen(function*() {
      const transport = yield* SessionTransport.cookie({})
      const expiresOf = (response: HttpServerResponse.HttpServerResponse) =>
        setCookieLines(response)[0].split("; ").find((attribute) => attribute.startsWith("Expires="))
      for (const expiresAt of [90_061_500, 90_061_900, 90_062_001, 90_061_001, 3_000_000_000_000]) {
        const written = yield* transport.write(HttpServerResponse.empty(), token, { ...expiry, expiresAt })
        expect(expiresOf(written)).toBe(`Expires=${new Date(Math.ceil(expiresAt / 1000) * 1000).toUTCString()}`)
      }
    }))

  it.effect("the header transport's expiry header is each write's own expiry, in the same second, the next and back", () =>
    Effect.gen(function*() {
      const transport = SessionTransport.header()
      for (const expiresAt of [90_061_500, 90_061_900, 90_062_001, 90_061_001, 3_000_000_000_000]) {
        const written = yield* transport.write(HttpServerResponse.empty(), token, { ...expiry, expiresAt })
        expect(written.headers["x-session-expires"]).toBe(new Date(expiresAt).toUTCString())
      }
    }))

  it.effect("beside the app's own cookies, in its cookies or its Set-Cookie header; one of the session's name gives way", () =>
    Effect.gen(function*() {
      const transport = SessionTransport.cookieDefault
      const sessionLine = setCookieLines(yield* transport.write(HttpServerResponse.empty(), token, expiry))[0]
      const cleared = setCookieLines(yield* transport.clear(HttpServerResponse.empty()))[0]
      const app = HttpServerResponse.empty().pipe(
        HttpServerResponse.unsafeSetCookie("theme", "dark"),
        HttpServerResponse.unsafeSetCookie("session", "planted-by-the-app")
      )
      expect(setCookieLines(yield* transport.write(app, token, expiry)).sort()).toEqual(
        ["theme=dark", sessionLine].sort()
      )
      expect(setCookieLines(yield* transport.clear(app)).sort()).toEqual(["theme=dark", cleared].sort())
      // Headers hold one line per name: with the app's own Set-Cookie header, the session cookie
      // joins the response's cookies, and both lines are sent.
      const withHeader = HttpServerResponse.setHeader(app, "Set-Cookie", "lang=en; Path=/")
      const written = yield* transport.write(withHeader, token, expiry)
      expect(setCookieLines(written).sort()).toEqual(["lang=en; Path=/", "theme=dark", sessionLine].sort())
      expect(written.headers["cache-control"]).toBe("private, no-cache=\"Set-Cookie\"")
      expect(setCookieLines(yield* transport.clear(withHeader)).sort()).toEqual(
        ["lang=en; Path=/", "theme=dark", cleared].sort()
      )
    }))
})

describe("Secure by default", () => {
  const attributesOf = (transport: SessionTransport.SessionTransport) =>
    Effect.map(
      transport.write(HttpServerResponse.empty(), Redacted.make(TOKEN), {
        expiresAt: 60_000,
        now: 0,
        rememberMe: undefined
      }),
      (response) => setCookieLines(response)[0].split("; ").slice(1)
    )

  it.effect("Secure unless secure: false", () =>
    Effect.gen(function*() {
      expect(yield* attributesOf(SessionTransport.cookieDefault)).toContain("Secure")
      expect(yield* attributesOf(yield* SessionTransport.cookie())).toContain("Secure")
      expect(yield* attributesOf(yield* SessionTransport.cookie({ secure: false }))).not.toContain("Secure")
    }))
})

describe("Cache-Control on responses that carry a token", () => {
  const withCacheControl = (value: string | undefined) =>
    value === undefined ? HttpServerResponse.empty() : HttpServerResponse.empty({ headers: { "cache-control": value } })
  const expiry = { expiresAt: 60_000, now: 0, rememberMe: undefined }
  const cookieSet = (value: string | undefined) =>
    Effect.map(
      SessionTransport.cookieDefault.write(withCacheControl(value), Redacted.make(TOKEN), expiry),
      (response) => response.headers["cache-control"]
    )
  const cookieCleared = (value: string | undefined) =>
    Effect.map(
      SessionTransport.cookieDefault.clear(withCacheControl(value)),
      (response) => response.headers["cache-control"]
    )

  it.effect("the cookie transport: public and s-maxage go, private and no-cache=\"Set-Cookie\" come", () =>
    Effect.gen(function*() {
      const cases: ReadonlyArray<readonly [string | undefined, string]> = [
        [undefined, "private, no-cache=\"Set-Cookie\""],
        ["public, max-age=600", "max-age=600, private, no-cache=\"Set-Cookie\""],
        [
          "Public, S-MaxAge=3600, max-age=60, must-revalidate",
          "max-age=60, must-revalidate, private, no-cache=\"Set-Cookie\""
        ],
        ["private=\"X-Foo, X-Bar\", max-age=5", "max-age=5, private, no-cache=\"Set-Cookie\""],
        ["no-cache=\"Set-Cookie\", private", "no-cache=\"Set-Cookie\", private"],
        ["no-store", "no-store, private, no-cache=\"Set-Cookie\""],
        ["public", "private, no-cache=\"Set-Cookie\""]
      ]
      for (const [app, sent] of cases) {
        expect(yield* cookieSet(app)).toBe(sent)
        expect(yield* cookieCleared(app)).toBe(sent)
      }
    }))

  it.effect("the header transport: public and s-maxage go, no-store comes", () =>
    Effect.gen(function*() {
      const transport = SessionTransport.header()
      const set = (value: string | undefined) =>
        Effect.map(
          transport.write(withCacheControl(value), Redacted.make(TOKEN), expiry),
          (response) => response.headers["cache-control"]
        )
      expect(yield* set(undefined)).toBe("no-store")
      expect(yield* set("public, max-age=600")).toBe("max-age=600, no-store")
      expect(yield* set("private, s-maxage=5, no-store")).toBe("private, no-store")
      const cleared = yield* transport.clear(withCacheControl("public, immutable"))
      expect(cleared.headers["cache-control"]).toBe("immutable, no-store")
    }))

  it.effect("CDN-Cache-Control and Surrogate-Control, which only shared caches obey, become no-store", () =>
    Effect.gen(function*() {
      const app = HttpServerResponse.empty({
        headers: { "cdn-cache-control": "max-age=3600", "surrogate-control": "max-age=3600", "cache-control": "public" }
      })
      for (const transport of [SessionTransport.cookieDefault, SessionTransport.header()]) {
        const set = yield* transport.write(app, Redacted.make(TOKEN), expiry)
        const cleared = yield* transport.clear(app)
        for (const response of [set, cleared]) {
          expect(response.headers["cdn-cache-control"]).toBe("no-store")
          expect(response.headers["surrogate-control"]).toBe("no-store")
        }
      }
      // Not added where the app did not set them.
      const plain = yield* SessionTransport.cookieDefault.write(
        withCacheControl(undefined),
        Redacted.make(TOKEN),
        expiry
      )
      expect(plain.headers["cdn-cache-control"]).toBeUndefined()
    }))

  it("a response that carries no token keeps the app's Cache-Control", () => {
    const response = SessionTransport.cookieDefault.decorate(withCacheControl("public, max-age=600"))
    expect(response.headers["cache-control"]).toBe("public, max-age=600")
  })
})

describe("module boundaries", () => {
  // Follows relative imports from a module and collects every package it reaches.
  const packagesReachedFrom = (entry: string): Set<string> => {
    const seen = new Set<string>()
    const packages = new Set<string>()
    const visit = (file: string) => {
      if (seen.has(file)) return
      seen.add(file)
      const source = fs.readFileSync(file, "utf8")
      for (const match of source.matchAll(/^import[^"]*"([^"]+)"/gm)) {
        const specifier = match[1]
        if (specifier.startsWith(".")) visit(path.resolve(path.dirname(file), specifier.replace(/\.js$/, ".ts")))
        else packages.add(specifier.split("/").slice(0, specifier.startsWith("@") ? 2 : 1).join("/"))
      }
    }
    visit(path.join(import.meta.dirname, "..", "src", entry))
    return packages
  }

  it("SessionManager and SessionStore, and all they import, need nothing from @effect/platform nor Node", () => {
    const entries = [
      "SessionManager.ts",
      "SessionManager/Sealed.ts",
      "SessionStore.ts",
      "Session.ts",
      "SessionConfigError.ts"
    ]
    for (const entry of entries) {
      // Effect, and the SHA-256 of tokens: no `node:` module either (the web-standard core).
      expect([...packagesReachedFrom(entry)].filter((p) => p !== "effect" && p !== "@noble/hashes")).toEqual([])
    }
  })
})
