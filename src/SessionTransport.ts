/**
 * How the session token travels between client and server: a cookie (the default), a header
 * for API clients, or a transport of your own. The cookie's settings and the browser rules they
 * must follow are checked here, when the transport is made.
 *
 * @since 0.1.0
 */
import * as Cookies from "@effect/platform/Cookies"
import * as Headers from "@effect/platform/Headers"
import * as HttpApiSecurity from "@effect/platform/HttpApiSecurity"
import type * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as OpenApi from "@effect/platform/OpenApi"
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as InternalOptions from "./internal/options.js"
import type { SessionConfigError } from "./SessionConfigError.js"

/**
 * A transport. `read` runs before the handler; `write` and `clear` run after the handler and
 * after the commit, on the response about to be sent, once `decorate` has been applied to it.
 *
 * @since 0.1.0
 * @category models
 */
export interface SessionTransport {
  /** The token the client sent, if any. Never fails: a bad token is just no token. */
  readonly read: (
    request: HttpServerRequest.HttpServerRequest
  ) => Effect.Effect<Option.Option<Redacted.Redacted<string>>>
  /**
   * Hands the (new or refreshed) token to the client: it lives until `expiresAt` (epoch ms);
   * `rememberMe` is the session's own choice, if it made one; `now` is the time of the commit.
   */
  readonly write: (
    response: HttpServerResponse.HttpServerResponse,
    token: Redacted.Redacted<string>,
    expiry: { readonly expiresAt: number; readonly rememberMe: boolean | undefined; readonly now: number }
  ) => Effect.Effect<HttpServerResponse.HttpServerResponse>
  /** Tells the client to drop its token (after `destroy`). */
  readonly clear: (
    response: HttpServerResponse.HttpServerResponse
  ) => Effect.Effect<HttpServerResponse.HttpServerResponse>
  /**
   * Added to every response that passed through the middleware: typically `Vary` on the
   * request header the token came in.
   */
  readonly decorate: (response: HttpServerResponse.HttpServerResponse) => HttpServerResponse.HttpServerResponse
  /**
   * Where the token travels, as an `HttpApi` security scheme, for the OpenAPI document:
   * `SessionMiddleware.layerApi` checks that its middleware declares this scheme. Optional for a
   * transport of your own.
   */
  readonly security?: HttpApiSecurity.HttpApiSecurity | undefined
}

/**
 * The security scheme of a session cookie, as `HttpApiMiddleware.Tag`'s `security` wants it (the
 * OpenAPI document shows an API key in a cookie): the scheme the cookie transport declares.
 *
 * @since 0.2.0
 * @category HttpApi
 */
export const cookieSecurity = (name: string): HttpApiSecurity.ApiKey =>
  HttpApiSecurity.apiKey({ in: "cookie", key: name }).pipe(
    HttpApiSecurity.annotate(
      OpenApi.Description,
      "The session cookie, set by the server; the browser sends it back by itself."
    )
  )

/**
 * The transport the middleware uses when it is not given one: provide it with `layerCookie`,
 * `layerHeader` or `Layer.succeed`. Without it, the cookie transport with its defaults.
 *
 * @since 0.2.0
 * @category tags
 */
export const SessionTransport: Context.Tag<SessionTransport, SessionTransport> = Context.GenericTag<SessionTransport>(
  "effect-session/SessionTransport"
)

/**
 * Adds a value to a comma-separated header (such as `Vary`) unless it is already there.
 *
 * @since 0.1.0
 * @category combinators
 */
export const appendHeaderValue = (
  response: HttpServerResponse.HttpServerResponse,
  name: string,
  value: string
): HttpServerResponse.HttpServerResponse => {
  const current = response.headers[name.toLowerCase()]
  if (current === undefined || current === "") return HttpServerResponse.setHeader(response, name, value)
  const present = current.split(",").some((part) => part.trim().toLowerCase() === value.toLowerCase())
  return present ? response : HttpServerResponse.setHeader(response, name, `${current}, ${value}`)
}

/**
 * Cookie settings. Defaults: `session`, `Path=/`, `HttpOnly`, `SameSite=Lax`, `Secure`, not
 * `Partitioned`, no `Domain`, persistent.
 *
 * @since 0.2.0
 * @category models
 */
export interface CookieOptions {
  readonly name?: string | undefined
  readonly domain?: string | undefined
  readonly path?: string | undefined
  readonly httpOnly?: boolean | undefined
  /**
   * `Secure`: the browser sends the cookie over HTTPS only. Default `true`. Browsers (and curl)
   * treat `http://localhost` as secure, so local development works with it; set `false` only for
   * a deployment served over plain HTTP on another host, where the cookie would otherwise never
   * come back (and the token travels in clear text).
   */
  readonly secure?: boolean | undefined
  readonly sameSite?: "lax" | "strict" | "none" | undefined
  readonly partitioned?: boolean | undefined
  /** `false` makes a browser-session cookie (no `Expires`/`Max-Age`) unless `rememberMe(true)`. */
  readonly persist?: boolean | undefined
}

interface ResolvedCookie {
  readonly name: string
  readonly domain: string | undefined
  readonly path: string
  readonly httpOnly: boolean
  readonly secure: boolean
  readonly sameSite: "lax" | "strict" | "none"
  readonly partitioned: boolean
  readonly persist: boolean
}

const DEFAULT_COOKIE: ResolvedCookie = {
  name: "session",
  domain: undefined,
  path: "/",
  httpOnly: true,
  secure: true,
  sameSite: "lax",
  partitioned: false,
  persist: true
}

const COOKIE_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/

/**
 * Applies the defaults and checks the browser rules: a valid name, path and domain,
 * `__Host-`/`__Secure-` prefixes, `SameSite=None` and `Partitioned` only with `Secure`.
 */
const resolveCookie = (options: CookieOptions): Either.Either<ResolvedCookie, SessionConfigError> =>
  Either.gen(function*() {
    const name = yield* InternalOptions.matching(
      "cookie.name",
      options.name,
      DEFAULT_COOKIE.name,
      COOKIE_NAME,
      "a cookie name"
    )
    const cookie: ResolvedCookie = {
      name,
      domain: options.domain,
      path: options.path ?? DEFAULT_COOKIE.path,
      httpOnly: options.httpOnly ?? DEFAULT_COOKIE.httpOnly,
      secure: options.secure ?? DEFAULT_COOKIE.secure,
      sameSite: options.sameSite ?? DEFAULT_COOKIE.sameSite,
      partitioned: options.partitioned ?? DEFAULT_COOKIE.partitioned,
      persist: options.persist ?? DEFAULT_COOKIE.persist
    }
    if (!cookie.path.startsWith("/")) {
      return yield* InternalOptions.invalid("cookie.path", `must start with "/", got ${JSON.stringify(cookie.path)}`)
    }
    // The platform's own checks, once here rather than on every response that sets the cookie.
    const checked = Cookies.makeCookie(name, "", { path: cookie.path, domain: cookie.domain })
    if (Either.isLeft(checked)) {
      return yield* checked.left.reason === "InvalidDomain"
        ? InternalOptions.invalid("cookie.domain", `is not a valid domain: ${JSON.stringify(cookie.domain)}`)
        : InternalOptions.invalid("cookie.path", `is not a valid cookie path: ${JSON.stringify(cookie.path)}`)
    }
    const mustBeSecure = (why: string) => InternalOptions.invalid("cookie.secure", `must be true for ${why}`)
    if (name.startsWith("__Host-")) {
      if (!cookie.secure) return yield* mustBeSecure("a __Host- cookie")
      if (cookie.domain !== undefined) {
        return yield* InternalOptions.invalid("cookie.domain", "must be unset for a __Host- cookie")
      }
      if (cookie.path !== "/") {
        return yield* InternalOptions.invalid("cookie.path", "must be \"/\" for a __Host- cookie")
      }
    }
    if (name.startsWith("__Secure-") && !cookie.secure) return yield* mustBeSecure("a __Secure- cookie")
    if (cookie.sameSite === "none" && !cookie.secure) {
      return yield* mustBeSecure("sameSite \"none\" (browsers reject it otherwise)")
    }
    if (cookie.partitioned && !cookie.secure) return yield* mustBeSecure("a partitioned cookie")
    return cookie
  })

// Go's net/http writes the deletion cookie with this Expires (the Unix epoch plus one second).
const DELETION_EXPIRES = new Date(1000)

/** The session cookie in a request: absent, sent once (its value), or sent more than once. */
type SessionCookie =
  | { readonly _tag: "Absent" }
  | { readonly _tag: "Once"; readonly value: string }
  | { readonly _tag: "Repeated"; readonly count: number }

const ABSENT: SessionCookie = { _tag: "Absent" }
const NO_TOKEN: Effect.Effect<Option.Option<Redacted.Redacted<string>>> = Effect.succeed(Option.none())

// A cookie pair ends at `;`, and at `,` too: a fetch `Headers` joins several `Cookie` headers
// with ", " (Node joins them with "; "). A token never holds either.
const COOKIE_PAIR_SEPARATOR = /[;,]/

/**
 * Finds the cookie `name` in a raw `Cookie` header, counting every pair of that name. Names and
 * values are taken as sent (trimmed, no quotes removed, no percent-decoding): a token is plain
 * base64url, so anything dressed up is not one.
 */
const findCookie = (header: string, name: string): SessionCookie => {
  // Most requests without a session carry no pair of its name at all.
  if (!header.includes(name)) return ABSENT
  let count = 0
  let value = ""
  for (const pair of header.split(COOKIE_PAIR_SEPARATOR)) {
    const equals = pair.indexOf("=")
    if (equals === -1 || pair.slice(0, equals).trim() !== name) continue
    count++
    value = pair.slice(equals + 1).trim()
  }
  return count === 0 ? ABSENT : count === 1 ? { _tag: "Once", value } : { _tag: "Repeated", count }
}

/**
 * Splits a `Cache-Control` value into its directives, at the commas outside quoted strings
 * (`no-cache="Set-Cookie, Foo"` is one directive).
 */
const cacheDirectives = (value: string): Array<string> => {
  const directives: Array<string> = []
  let start = 0
  let quoted = false
  for (let i = 0; i < value.length; i++) {
    const char = value[i]
    if (quoted && char === "\\") i++
    else if (char === "\"") quoted = !quoted
    else if (char === "," && !quoted) {
      directives.push(value.slice(start, i).trim())
      start = i + 1
    }
  }
  directives.push(value.slice(start).trim())
  return directives.filter((directive) => directive !== "")
}

const directiveName = (directive: string): string => {
  const equals = directive.indexOf("=")
  return (equals === -1 ? directive : directive.slice(0, equals)).trim().toLowerCase()
}

// Headers only shared caches (CDNs) obey, over `Cache-Control`: next to a token they say no-store.
const SHARED_CACHE_HEADERS = ["cdn-cache-control", "surrogate-control"]

/**
 * Keeps a response that carries a token out of shared caches: the app's `Cache-Control`
 * directives named in `drop` go, its others stay, and `add` is appended (each unless already
 * there); without an app `Cache-Control`, just `add`. A `CDN-Cache-Control` or
 * `Surrogate-Control` the app set becomes `no-store`.
 */
const restrictCaching = (
  response: HttpServerResponse.HttpServerResponse,
  drop: ReadonlyArray<string>,
  add: ReadonlyArray<string>
): HttpServerResponse.HttpServerResponse => {
  let restricted = response
  for (const name of SHARED_CACHE_HEADERS) {
    if (restricted.headers[name] !== undefined) restricted = HttpServerResponse.setHeader(restricted, name, "no-store")
  }
  const current = restricted.headers["cache-control"]
  if (current === undefined || current === "") {
    return HttpServerResponse.setHeader(restricted, "Cache-Control", add.join(", "))
  }
  const kept = cacheDirectives(current).filter((directive) => !drop.includes(directiveName(directive)))
  const present = new Set(kept.map((directive) => directive.toLowerCase()))
  const added = add.filter((directive) => !present.has(directive.toLowerCase()))
  return HttpServerResponse.setHeader(restricted, "Cache-Control", [...kept, ...added].join(", "))
}

// What lets a shared cache (a CDN, a proxy) store a response: never next to a token.
const SHARED_CACHE_DIRECTIVES = ["public", "s-maxage"]
// `private` replaces the app's, which may name only some fields (`private="X-Foo"`).
const COOKIE_CACHE_DROP = [...SHARED_CACHE_DIRECTIVES, "private"]
const COOKIE_CACHE_ADD = ["private", "no-cache=\"Set-Cookie\""]
const HEADER_CACHE_ADD = ["no-store"]

/**
 * An HTTP date (`toUTCString`) of epoch seconds, remembering the last one made: requests in the
 * same second with the same lifetime expire in the same second. V8 formats a date through
 * `printf`: about 0.5 µs a call, against 20 ns for the remembered one.
 */
const httpDates = (): (seconds: number) => string => {
  let last = Number.NaN
  let text = ""
  return (seconds) => {
    if (seconds !== last) {
      text = new Date(seconds * 1000).toUTCString()
      last = seconds
    }
    return text
  }
}

/**
 * The session cookie's `Set-Cookie` lines, written once per transport but for the token and the
 * expiry: the text the platform's `Cookies` makes of the same cookie, attribute for attribute and
 * in its order (the name, path and domain were checked when the transport was made, and a token
 * is base64url, so nothing needs encoding).
 */
const cookieLines = (options: ResolvedCookie) => {
  const scope = `${options.domain === undefined ? "" : `; Domain=${options.domain}`}; Path=${options.path}`
  const flags = `${options.httpOnly ? "; HttpOnly" : ""}${options.secure ? "; Secure" : ""}${
    options.partitioned ? "; Partitioned" : ""
  }; SameSite=${options.sameSite === "lax" ? "Lax" : options.sameSite === "strict" ? "Strict" : "None"}`
  const expiresText = httpDates()
  return {
    persistent: (value: string, expiresSeconds: number, maxAgeSeconds: number) =>
      `${options.name}=${value}; Max-Age=${maxAgeSeconds}${scope}; Expires=${expiresText(expiresSeconds)}${flags}`,
    // A browser-session cookie: no Expires, no Max-Age.
    browserSession: (value: string) => `${options.name}=${value}${scope}${flags}`,
    cleared: `${options.name}=; Max-Age=0${scope}; Expires=${DELETION_EXPIRES.toUTCString()}${flags}`
  }
}

const cookieTransport = (options: ResolvedCookie): SessionTransport => {
  const lines = cookieLines(options)
  const security = cookieSecurity(options.name)
  // Built field by field: an object spread costs more than the rest of setting the cookie.
  const attributes = (expires: Date | undefined, maxAge: Duration.Duration | undefined): Cookies.Cookie["options"] => ({
    path: options.path,
    domain: options.domain,
    httpOnly: options.httpOnly,
    secure: options.secure,
    partitioned: options.partitioned,
    sameSite: options.sameSite,
    expires,
    maxAge
  })
  const keepOutOfSharedCaches = (response: HttpServerResponse.HttpServerResponse) =>
    restrictCaching(response, COOKIE_CACHE_DROP, COOKIE_CACHE_ADD)
  /**
   * `response` with the session cookie, kept out of shared caches. Its line goes in the
   * `Set-Cookie` header, which the server sends beside the cookies of `response.cookies` (a
   * cookie of the session's name there gives way to it): the server then has no cookie to
   * serialize. Only when the app has set a `Set-Cookie` header itself (headers hold one line
   * per name) does the session cookie join `response.cookies`, as the value and attributes
   * `cookie` gives.
   */
  const withCookie = (
    response: HttpServerResponse.HttpServerResponse,
    line: string,
    cookie: () => readonly [value: string, attributes: Cookies.Cookie["options"]]
  ): HttpServerResponse.HttpServerResponse => {
    if (response.headers["set-cookie"] !== undefined) {
      const [value, cookieAttributes] = cookie()
      return keepOutOfSharedCaches(HttpServerResponse.unsafeSetCookie(response, options.name, value, cookieAttributes))
    }
    const withoutOwn = options.name in response.cookies.cookies
      ? HttpServerResponse.removeCookie(response, options.name)
      : response
    return keepOutOfSharedCaches(HttpServerResponse.setHeader(withoutOwn, "set-cookie", line))
  }
  // Logged without any value: the cookies of the request are secrets.
  const repeated = (count: number) =>
    Effect.logWarning(
      "effect-session: the session cookie came more than once (one may have been planted for another path or " +
        "domain); the request is treated as having no session"
    ).pipe(Effect.annotateLogs({ cookie: options.name, count }), Effect.as(Option.none()))
  return {
    // The raw header, not `request.cookies`: that keeps the first of several cookies of a name,
    // which may be one planted for a more specific path or a parent domain (cookie tossing).
    // Read when called, not suspended: the answer depends on the request alone, and the middleware
    // calls this as the request runs (a suspension would be one more step on every request).
    read: (request): Effect.Effect<Option.Option<Redacted.Redacted<string>>> => {
      const header = request.headers["cookie"]
      const found = header === undefined ? ABSENT : findCookie(header, options.name)
      switch (found._tag) {
        case "Absent":
          return NO_TOKEN
        case "Once":
          return Effect.succeed(Option.some(Redacted.make(found.value)))
        case "Repeated":
          return repeated(found.count)
      }
    },
    write: (response, token, { expiresAt, now, rememberMe }) =>
      Effect.sync(() => {
        const value = Redacted.value(token)
        if (!(rememberMe ?? options.persist)) {
          return withCookie(response, lines.browserSession(value), () => [value, attributes(undefined, undefined)])
        }
        const expiresSeconds = Math.ceil(expiresAt / 1000)
        const maxAge = Math.max(0, Math.ceil((expiresAt - now) / 1000))
        return withCookie(
          response,
          lines.persistent(value, expiresSeconds, maxAge),
          () => [value, attributes(new Date(expiresSeconds * 1000), Duration.seconds(maxAge))]
        )
      }),
    clear: (response) =>
      Effect.sync(() => withCookie(response, lines.cleared, () => ["", attributes(DELETION_EXPIRES, Duration.zero)])),
    decorate: (response) => appendHeaderValue(response, "Vary", "Cookie"),
    security
  }
}

/**
 * The cookie transport, as scs does it, hardened: the cookie of the configured name is read from
 * the raw `Cookie` header, and a request that sends it more than once has no session (a warning
 * is logged); a new token goes out as `Set-Cookie` with the configured attributes (`Expires`
 * rounded up to the second, `Max-Age` in whole seconds). A response that sets or clears the
 * cookie is kept out of shared caches: the app's `public` and `s-maxage` are removed, `private`
 * and `no-cache="Set-Cookie"` added, its other `Cache-Control` directives kept. Every response
 * gets `Vary: Cookie`. Fails with `SessionConfigError` when the settings break a browser rule.
 *
 * @since 0.1.0
 * @category transports
 */
export const cookie = (options: CookieOptions = {}): Effect.Effect<SessionTransport, SessionConfigError> =>
  Effect.map(resolveCookie(options), cookieTransport)

/**
 * The cookie transport with every default: what the middleware uses when no transport is
 * provided.
 *
 * @since 0.2.0
 * @category transports
 */
export const cookieDefault: SessionTransport = cookieTransport(DEFAULT_COOKIE)

/**
 * The cookie transport as the `SessionTransport`.
 *
 * ```ts
 * SessionTransport.layerCookie({ name: "__Host-session" })
 * ```
 *
 * @since 0.2.0
 * @category layers
 */
export const layerCookie = (options?: CookieOptions): Layer.Layer<SessionTransport, SessionConfigError> =>
  Layer.effect(SessionTransport, cookie(options))

/**
 * Like `layerCookie`, with the settings read from `Config`.
 *
 * @since 0.2.0
 * @category layers
 */
export const layerCookieConfig = (
  options: Config.Config.Wrap<CookieOptions>
): Layer.Layer<SessionTransport, SessionConfigError | ConfigError.ConfigError> =>
  Layer.effect(SessionTransport, Effect.flatMap(Config.unwrap(options), cookie))

/**
 * @since 0.1.0
 * @category models
 */
export interface HeaderOptions {
  /**
   * The request header the token is read from. Default `"Authorization"`, where the token
   * must follow the `scheme`; any other header carries the bare token.
   */
  readonly requestHeader?: string | undefined
  /** The authentication scheme for the `Authorization` header. Default `"Bearer"`. */
  readonly scheme?: string | undefined
  /**
   * The response header a new token is sent in. Default `"X-Session-Token"`. After `destroy`
   * it is sent empty: the client should forget its token.
   */
  readonly responseHeader?: string | undefined
  /** A response header for the expiry (an HTTP date), or `undefined` for none. Default `"X-Session-Expires"`. */
  readonly expiresHeader?: string | undefined
}

/**
 * A header transport for API clients that keep the token themselves. A response that carries
 * or clears a token gets `Cache-Control: no-store`, and loses the app's `public` and `s-maxage`.
 *
 * ```ts
 * SessionMiddleware.make({ transport: SessionTransport.header() })                  // Authorization: Bearer <token>
 * SessionMiddleware.make({ transport: SessionTransport.header({ requestHeader: "X-Session-Token" }) })
 * ```
 *
 * @since 0.1.0
 * @category transports
 */
export const header = (options: HeaderOptions = {}): SessionTransport => {
  const requestHeader = (options.requestHeader ?? "Authorization").toLowerCase()
  const scheme = requestHeader === "authorization" ? `${(options.scheme ?? "Bearer").toLowerCase()} ` : undefined
  const responseHeader = options.responseHeader ?? "X-Session-Token"
  const expiresHeader = "expiresHeader" in options ? options.expiresHeader : "X-Session-Expires"
  const expiresText = httpDates()
  const keepOutOfSharedCaches = (response: HttpServerResponse.HttpServerResponse) =>
    restrictCaching(response, SHARED_CACHE_DIRECTIVES, HEADER_CACHE_ADD)
  return {
    read: (request) =>
      Effect.sync(() => {
        const value = Headers.get(request.headers, requestHeader)
        if (Option.isNone(value)) return Option.none()
        const raw = value.value.trim()
        if (scheme === undefined) return Option.some(Redacted.make(raw))
        return raw.toLowerCase().startsWith(scheme)
          ? Option.some(Redacted.make(raw.slice(scheme.length).trim()))
          : Option.none()
      }),
    write: (response, token, { expiresAt }) =>
      Effect.sync(() => {
        const withToken = HttpServerResponse.setHeader(response, responseHeader, Redacted.value(token))
        return keepOutOfSharedCaches(
          expiresHeader === undefined
            ? withToken
            : HttpServerResponse.setHeader(withToken, expiresHeader, expiresText(Math.floor(expiresAt / 1000)))
        )
      }),
    clear: (response) =>
      Effect.sync(() => keepOutOfSharedCaches(HttpServerResponse.setHeader(response, responseHeader, ""))),
    decorate: (response) =>
      appendHeaderValue(
        response,
        "Vary",
        requestHeader === "authorization" ? "Authorization" : options.requestHeader ?? requestHeader
      ),
    security: headerSecurity(options)
  }
}

/**
 * The security scheme of the header transport with these options, as `HttpApiMiddleware.Tag`'s
 * `security` wants it: a bearer token in `Authorization`, or else an API key in its header.
 *
 * @since 0.2.0
 * @category HttpApi
 */
export const headerSecurity = (options: HeaderOptions = {}): HttpApiSecurity.HttpApiSecurity => {
  const requestHeader = options.requestHeader ?? "Authorization"
  return requestHeader.toLowerCase() === "authorization" && (options.scheme ?? "Bearer").toLowerCase() === "bearer"
    ? HttpApiSecurity.bearer
    : HttpApiSecurity.apiKey({ in: "header", key: requestHeader })
}

/**
 * The headers the header transport carries a token in, as `Headers.currentRedactedNames` wants them.
 *
 * @since 0.2.0
 * @category transports
 */
export const headerNames = (options: HeaderOptions = {}): ReadonlyArray<string> => [
  (options.requestHeader ?? "Authorization").toLowerCase(),
  (options.responseHeader ?? "X-Session-Token").toLowerCase()
]

/**
 * Adds the header transport's token headers to `Headers.currentRedactedNames` for the layers built
 * on top of this one, so that the platform's `http.server` span (which records every request and
 * response header but the redacted ones) shows `<redacted>` instead of a token. `layerHeader`
 * includes it; use it beside `SessionMiddleware.make({ transport: SessionTransport.header(...) })`,
 * beneath the server layer:
 *
 * ```ts
 * HttpServer.serve(app).pipe(Layer.provide(SessionTransport.layerRedactHeaders(options)))
 * ```
 *
 * @since 0.2.0
 * @category layers
 */
export const layerRedactHeaders = (options?: HeaderOptions): Layer.Layer<never> =>
  Layer.scopedDiscard(
    Effect.locallyScopedWith(Headers.currentRedactedNames, (names) => [...names, ...headerNames(options)])
  )

/**
 * The header transport as the `SessionTransport`, with its token headers redacted from the
 * platform's spans for the layers built on top of it (see `layerRedactHeaders`).
 *
 * @since 0.2.0
 * @category layers
 */
export const layerHeader = (options?: HeaderOptions): Layer.Layer<SessionTransport> =>
  Layer.merge(Layer.succeed(SessionTransport, header(options)), layerRedactHeaders(options))
