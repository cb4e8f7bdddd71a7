/**
 * Cross-site request forgery protection for the cookie sessions a browser sends by itself.
 *
 * By default, the check of Go 1.25's `net/http` `CrossOriginProtection`, from the headers every
 * current browser sends: a safe method (`GET`, `HEAD`, `OPTIONS`) passes; `Sec-Fetch-Site:
 * same-origin` or `none` passes, any other value fails; with neither `Sec-Fetch-Site` nor `Origin`
 * the request is not a browser's and passes; otherwise `Origin` must name the request's `Host`.
 * Trusted origins and exempt routes pass. Optionally a synchronizer token kept in the session,
 * masked differently on every page against BREACH, is required as well.
 *
 * The same check serves `HttpApp` (`protect`), `HttpLayerRouter` (`layerRouter`) and `HttpApi`
 * (`CsrfApi`, `layerApi`); a refusal is `CsrfError`, which the server answers with an empty 403.
 *
 * @since 0.2.0
 */
import * as Headers from "@effect/platform/Headers"
import * as HttpApiError from "@effect/platform/HttpApiError"
import * as HttpApiMiddleware from "@effect/platform/HttpApiMiddleware"
import type * as HttpApp from "@effect/platform/HttpApp"
import * as HttpLayerRouter from "@effect/platform/HttpLayerRouter"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerRespondable from "@effect/platform/HttpServerRespondable"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as UrlParams from "@effect/platform/UrlParams"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Encoding from "effect/Encoding"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as Session from "./Session.js"
import { SessionConfigError } from "./SessionConfigError.js"
import * as SessionMetrics from "./SessionMetrics.js"

/**
 * Why a request was refused: `CrossOriginRequest` (`Sec-Fetch-Site` was `same-site` or
 * `cross-site`), `OriginMismatch` (no `Sec-Fetch-Site`, and an `Origin` that is not the request's
 * host), `TokenMissing` (no synchronizer token sent, or none in the session), `TokenInvalid`.
 *
 * @since 0.2.0
 * @category errors
 */
export type Reason = "CrossOriginRequest" | "OriginMismatch" | "TokenMissing" | "TokenInvalid"

const forbidden = HttpServerResponse.empty({ status: 403 })

/**
 * A request refused as a possible cross-site request forgery. Left unhandled, the server answers
 * it with an empty 403 (it is `Respondable`); `Effect.catchTag("CsrfError", ...)` to answer with a
 * page. Its `reason` is for logs and tests: it never names a token or a header's value.
 *
 * @since 0.2.0
 * @category errors
 */
export class CsrfError extends Schema.TaggedError<CsrfError>()("CsrfError", {
  reason: Schema.Literal("CrossOriginRequest", "OriginMismatch", "TokenMissing", "TokenInvalid")
}) implements HttpServerRespondable.Respondable {
  /**
   * @since 0.2.0
   */
  [HttpServerRespondable.symbol](): Effect.Effect<HttpServerResponse.HttpServerResponse> {
    return Effect.succeed(forbidden)
  }

  /**
   * @since 0.2.0
   */
  override get message(): string {
    return `Cross-site request refused: ${this.reason}`
  }
}

/**
 * The header check's options.
 *
 * - `trustedOrigins`: origins allowed to send cross-origin requests, each exactly
 *   `scheme://host[:port]` (`"https://sso.example.com"`), compared with the request's `Origin`.
 * - `exempt`: routes that skip every check (a webhook signed by other means): patterns
 *   `"POST /hooks/github"`, `"/public/*"` (a method is optional; a trailing `/*` matches below a
 *   prefix), or a predicate on the request. A path with a dot segment, an encoded dot, a double
 *   slash or a backslash is never exempt.
 *
 * @since 0.2.0
 * @category models
 */
export interface Options {
  readonly trustedOrigins?: Iterable<string> | undefined
  readonly exempt?: ReadonlyArray<string> | ((request: HttpServerRequest.HttpServerRequest) => boolean) | undefined
}

/**
 * Where the synchronizer token is sent: the form field `field` (default `_csrf`, read from an
 * `application/x-www-form-urlencoded` body) or the request header `header` (default
 * `x-csrf-token`, for `fetch`).
 *
 * @since 0.2.0
 * @category models
 */
export interface TokenOptions {
  readonly field?: string | undefined
  readonly header?: string | undefined
}

/**
 * `protect`'s options: the header check's, and `token` to require the synchronizer token too on
 * every unsafe request that is not exempt.
 *
 * @since 0.2.0
 * @category models
 */
export interface ProtectOptions extends Options {
  readonly token?: boolean | TokenOptions | undefined
}

// ---------------------------------------------------------------------------------------------
// The header check
// ---------------------------------------------------------------------------------------------

const safeMethods = new Set(["GET", "HEAD", "OPTIONS"])

/** A path a router might read differently from the way the exemption reads it. */
const ambiguousPath = /(?:^|\/)\.\.?(?:\/|$)|%2e|\/\/|\\/i

const pathOf = (url: string): string => {
  const end = url.search(/[?#]/)
  return end === -1 ? url : url.slice(0, end)
}

const exemptRule = (pattern: string): Either.Either<(method: string, path: string) => boolean, SessionConfigError> => {
  const match = /^(?:([A-Z]+) )?(\/[^\s?#*]*?)(\/\*)?$/.exec(pattern)
  if (match === null || ambiguousPath.test(match[2])) {
    return Either.left(
      new SessionConfigError({
        option: "exempt",
        reason: `has ${JSON.stringify(pattern)}: write "METHOD /path" or "/path", with an optional trailing "/*"`
      })
    )
  }
  const [, method, path, below] = match
  const samePath = below === undefined
    ? (candidate: string) => candidate === path
    : (candidate: string) => candidate.startsWith(path === "/" ? "/" : `${path}/`)
  return Either.right((candidate, candidatePath) =>
    (method === undefined || method === candidate) && samePath(candidatePath)
  )
}

const exemptionOf = (
  exempt: Options["exempt"]
): Either.Either<(request: HttpServerRequest.HttpServerRequest) => boolean, SessionConfigError> => {
  if (exempt === undefined) return Either.right(() => false)
  if (typeof exempt === "function") return Either.right(exempt)
  return Either.map(Either.all(exempt.map(exemptRule)), (rules) => (request) => {
    const path = pathOf(request.originalUrl)
    return !ambiguousPath.test(path) && rules.some((rule) => rule(request.method, path))
  })
}

const trustedOriginsOf = (
  origins: Options["trustedOrigins"]
): Either.Either<ReadonlySet<string>, SessionConfigError> => {
  const trusted = new Set<string>()
  for (const origin of origins ?? []) {
    const parsed = URL.canParse(origin) ? new URL(origin) : undefined
    if (parsed === undefined || parsed.origin === "null" || parsed.origin !== origin) {
      return Either.left(
        new SessionConfigError({
          option: "trustedOrigins",
          reason: `has ${JSON.stringify(origin)}: write an origin exactly as a browser sends it, scheme://host[:port]`
        })
      )
    }
    trusted.add(origin)
  }
  return Either.right(trusted)
}

/** The header check made once from its options: `undefined` when the request passes. */
type HeaderCheck = (request: HttpServerRequest.HttpServerRequest) => Reason | undefined

interface Compiled {
  readonly headers: HeaderCheck
  readonly isExempt: (request: HttpServerRequest.HttpServerRequest) => boolean
}

const compile = (options: Options): Either.Either<Compiled, SessionConfigError> =>
  Either.map(
    Either.all([exemptionOf(options.exempt), trustedOriginsOf(options.trustedOrigins)]),
    ([isExempt, trusted]) => {
      const allowed = (request: HttpServerRequest.HttpServerRequest, origin: string | undefined) =>
        (origin !== undefined && trusted.has(origin)) || isExempt(request)
      const headers: HeaderCheck = (request) => {
        if (safeMethods.has(request.method)) return undefined
        const origin = request.headers["origin"]
        const site = request.headers["sec-fetch-site"]
        if (site !== undefined && site !== "") {
          if (site === "same-origin" || site === "none" || allowed(request, origin)) return undefined
          return "CrossOriginRequest"
        }
        if (origin === undefined || origin === "") return undefined
        if (hostOf(origin) === request.headers["host"]?.toLowerCase() || allowed(request, origin)) return undefined
        return "OriginMismatch"
      }
      return { headers, isExempt }
    }
  )

const hostOf = (origin: string): string | undefined => URL.canParse(origin) ? new URL(origin).host : undefined

// ---------------------------------------------------------------------------------------------
// The synchronizer token
// ---------------------------------------------------------------------------------------------

const SECRET_BYTES = 32
const MASKED_LENGTH = Math.ceil((SECRET_BYTES * 2 * 4) / 3)

/**
 * The session's token secret, and the owner it was made for: signing in or out (`bindOwner`,
 * `unbindOwner`) changes the owner, and with it the token, so no token from before the sign-in
 * (one an attacker may have read from a session they planted) is accepted after it.
 */
const Secret = Session.key(
  "effect-session/csrf",
  Schema.Struct({ secret: Schema.Uint8ArrayFromBase64Url, owner: Schema.NullOr(Schema.String) })
)

const randomBytes = (length: number): Uint8Array => crypto.getRandomValues(new Uint8Array(length))

/** The session's secret for its current owner, if it has one. */
const storedSecret = (session: Session.Session): Effect.Effect<Uint8Array | undefined> =>
  Effect.gen(function*() {
    const owner = Option.getOrNull(yield* session.owner)
    const stored = yield* Effect.orElseSucceed(session.get(Secret), Option.none)
    return Option.isSome(stored) && stored.value.owner === owner && stored.value.secret.length === SECRET_BYTES
      ? stored.value.secret
      : undefined
  })

/** The session's secret, made (and written) when it has none for its current owner. */
const secretOf = (session: Session.Session): Effect.Effect<Uint8Array> =>
  Effect.flatMap(
    storedSecret(session),
    (stored) =>
      stored !== undefined ? Effect.succeed(stored) : Effect.gen(function*() {
        const secret = randomBytes(SECRET_BYTES)
        yield* Effect.orDie(session.put(Secret, { secret, owner: Option.getOrNull(yield* session.owner) }))
        return secret
      })
  )

/** A fresh mask each time, so no two pages carry the same bytes (BREACH). */
const masked = (secret: Uint8Array): string => {
  const mask = randomBytes(SECRET_BYTES)
  const out = new Uint8Array(SECRET_BYTES * 2)
  out.set(mask)
  for (let i = 0; i < SECRET_BYTES; i++) out[SECRET_BYTES + i] = secret[i] ^ mask[i]
  return Encoding.encodeBase64Url(out)
}

const matches = (submitted: string, secret: Uint8Array): boolean => {
  if (submitted.length !== MASKED_LENGTH) return false
  const bytes = Either.getOrUndefined(Encoding.decodeBase64Url(submitted))
  if (bytes === undefined || bytes.length !== SECRET_BYTES * 2) return false
  let difference = 0
  for (let i = 0; i < SECRET_BYTES; i++) difference |= secret[i] ^ bytes[i] ^ bytes[SECRET_BYTES + i]
  return difference === 0
}

/**
 * A synchronizer token for this session, masked afresh on every call: for a `fetch` caller's
 * `x-csrf-token` header, or a page's `<meta>`. The first call makes the session's secret (a write,
 * so an anonymous visitor gets a session).
 *
 * @since 0.2.0
 * @category token
 */
export const token: Effect.Effect<string, never, Session.Session> = Effect.flatMap(
  Session.Session,
  (session) => Effect.map(secretOf(session), masked)
)

const escapeAttribute = (value: string): string =>
  value.replace(/[&"<>']/g, (character) => `&#${character.charCodeAt(0)};`)

/**
 * The hidden form field that carries a fresh token, ready to put in a form as is:
 * `<input type="hidden" name="_csrf" value="...">`.
 *
 * @since 0.2.0
 * @category token
 */
export const formField = (options: Pick<TokenOptions, "field"> = {}): Effect.Effect<string, never, Session.Session> =>
  Effect.map(
    token,
    (value) => `<input type="hidden" name="${escapeAttribute(options.field ?? "_csrf")}" value="${value}">`
  )

/**
 * Drops the session's secret: every token handed out so far stops working and the next page gets
 * a new one. Signing in and out already does this (the secret is made for one owner); call it
 * after any other change of privilege.
 *
 * @since 0.2.0
 * @category token
 */
export const rotateToken: Effect.Effect<void, never, Session.Session> = Effect.flatMap(
  Session.Session,
  (session) => session.remove(Secret)
)

/**
 * Checks a token the app read itself (from a multipart body, a JSON body) against the session's.
 *
 * @since 0.2.0
 * @category token
 */
export const verifyToken = (submitted: string | undefined): Effect.Effect<void, CsrfError, Session.Session> =>
  Effect.flatMap(
    Session.Session,
    (session) =>
      Effect.flatMap(
        storedSecret(session),
        (secret) =>
          submitted === undefined || submitted === "" || secret === undefined
            ? refuse("TokenMissing")
            : matches(submitted, secret)
            ? Effect.void
            : refuse("TokenInvalid")
      )
  )

const isForm = (request: HttpServerRequest.HttpServerRequest) =>
  request.headers["content-type"]?.toLowerCase().startsWith("application/x-www-form-urlencoded") === true

/**
 * Checks the request's token: its `header`, or else the `field` of a urlencoded form body (read
 * through the request, so the handler can still read the body). For one high-risk route, or with
 * `HttpLayerRouter` and `HttpApi`, where the middleware checks headers only.
 *
 * @since 0.2.0
 * @category token
 */
export const verifyRequest = (
  options: TokenOptions = {}
): Effect.Effect<void, CsrfError, Session.Session | HttpServerRequest.HttpServerRequest> => {
  const header = (options.header ?? "x-csrf-token").toLowerCase()
  const field = options.field ?? "_csrf"
  return Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => {
    const sent = request.headers[header]
    if (sent !== undefined || !isForm(request)) return verifyToken(sent)
    return Effect.flatMap(
      Effect.orElseSucceed(request.urlParamsBody, () => UrlParams.empty),
      (params) => verifyToken(Option.getOrUndefined(UrlParams.getFirst(params, field)))
    )
  })
}

/**
 * Adds the token's request header to `Headers.currentRedactedNames` for the layers built on top of
 * this one: the platform's `http.server` span records every request header it is not told to
 * redact, and a token (which holds the session's secret under its mask) does not belong in a
 * trace. Provide it beneath the server: `HttpServer.serve(app).pipe(Layer.provide(Csrf.layerRedactHeaders()))`.
 *
 * @since 0.2.0
 * @category layers
 */
export const layerRedactHeaders = (options: Pick<TokenOptions, "header"> = {}): Layer.Layer<never> =>
  Layer.scopedDiscard(
    Effect.locallyScopedWith(
      Headers.currentRedactedNames,
      (names) => [...names, (options.header ?? "x-csrf-token").toLowerCase()]
    )
  )

// ---------------------------------------------------------------------------------------------
// Middleware
// ---------------------------------------------------------------------------------------------

const refuse = (reason: Reason): Effect.Effect<never, CsrfError> =>
  Effect.zipRight(
    Metric.increment(Metric.tagged(SessionMetrics.csrfRefused, "reason", reason)),
    Effect.zipRight(
      Effect.logDebug("cross-site request refused").pipe(Effect.annotateLogs("csrf.reason", reason)),
      Effect.fail(new CsrfError({ reason }))
    )
  )

/** One check for every integration: headers, then the token when asked. */
const checkOf = (
  options: ProtectOptions
): Either.Either<
  (
    request: HttpServerRequest.HttpServerRequest
  ) => Effect.Effect<void, CsrfError, Session.Session | HttpServerRequest.HttpServerRequest> | undefined,
  SessionConfigError
> => {
  const tokenCheck = options.token === undefined || options.token === false
    ? undefined
    : verifyRequest(options.token === true ? {} : options.token)
  return Either.map(compile(options), ({ headers, isExempt }) => (request) => {
    const reason = headers(request)
    if (reason !== undefined) return refuse(reason)
    return tokenCheck === undefined || safeMethods.has(request.method) || isExempt(request) ? undefined : tokenCheck
  })
}

const guard = <E, R, E2, R2>(
  check: (request: HttpServerRequest.HttpServerRequest) => Effect.Effect<void, E2, R2> | undefined,
  app: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>
): Effect.Effect<HttpServerResponse.HttpServerResponse, E | E2, R | R2 | HttpServerRequest.HttpServerRequest> =>
  Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => {
    const checking = check(request)
    return checking === undefined ? app : Effect.zipRight(checking, app)
  })

/**
 * The CSRF middleware for an `HttpApp`. With `token`, it reads the session: put it inside the
 * session middleware, `router.pipe(Csrf.protect({ token: true }), SessionMiddleware.loadAndSave)`.
 * Invalid options throw their `SessionConfigError` here, when the middleware is made.
 *
 * @since 0.2.0
 * @category middleware
 */
export const protect: {
  (
    options: ProtectOptions & { readonly token: true | TokenOptions }
  ): <E, R>(app: HttpApp.Default<E, R>) => HttpApp.Default<E | CsrfError, R | Session.Session>
  (options?: Options): <E, R>(app: HttpApp.Default<E, R>) => HttpApp.Default<E | CsrfError, R>
} = ((options: ProtectOptions = {}) => {
  const check = Either.getOrThrowWith(checkOf(options), (error) => error)
  return <E, R>(app: HttpApp.Default<E, R>) => guard(check, app)
  // The overloads add `Session` to `R` only when the token is asked for.
}) as typeof protect

/**
 * The header check for `HttpLayerRouter`, in the platform's idiom: provide it to the routes it
 * protects (`Layer.provide(Csrf.layerRouter())`). For the token too, `routerMiddleware`; for the
 * token on a few routes, `verifyRequest()` in them.
 *
 * @since 0.2.0
 * @category HttpLayerRouter
 */
export const layerRouter = (
  options: Options = {}
): Layer.Layer<never, SessionConfigError, HttpLayerRouter.Request<"Error", CsrfError>> =>
  HttpLayerRouter.middleware(Effect.map(headerOnly(options), (check) => (app) => guard(check, app))).layer

/**
 * The `HttpLayerRouter` middleware itself, before it is a layer. With `token`, it reads the
 * `Session`, so combine it with the session middleware, which then runs around it:
 *
 * ```ts
 * Layer.provide(Csrf.routerMiddleware({ token: true }).combine(SessionMiddleware.routerMiddleware()).layer)
 * ```
 *
 * @since 0.2.0
 * @category HttpLayerRouter
 */
export const routerMiddleware: {
  (options: ProtectOptions & { readonly token: true | TokenOptions }): HttpLayerRouter.Middleware<{
    provides: never
    handles: never
    error: CsrfError
    requires: Session.Session
    layerError: SessionConfigError
    layerRequires: never
  }>
  (options?: Options): HttpLayerRouter.Middleware<{
    provides: never
    handles: never
    error: CsrfError
    requires: never
    layerError: SessionConfigError
    layerRequires: never
  }>
} = ((options: ProtectOptions = {}) =>
  HttpLayerRouter.middleware(
    Effect.map(checkOf(options), (check) => (app) => guard(check, app))
  )) as typeof routerMiddleware

const headerOnly = (options: Options) =>
  Effect.map(compile(options), ({ headers }) => (request: HttpServerRequest.HttpServerRequest) => {
    const reason = headers(request)
    return reason === undefined ? undefined : refuse(reason)
  })

/**
 * The header check for `HttpApi`: `.middleware(Csrf.CsrfApi)` on the groups or endpoints it
 * protects, and provide `layerApi`. A refusal is the platform's `HttpApiError.Forbidden`: an empty 403.
 *
 * @since 0.2.0
 * @category HttpApi
 */
export class CsrfApi extends HttpApiMiddleware.Tag<CsrfApi>()("effect-session/CsrfApi", {
  failure: HttpApiError.Forbidden
}) {}

/**
 * Implements `CsrfApi`; for the token, `verifyRequest()` in the endpoints that need it.
 *
 * @since 0.2.0
 * @category HttpApi
 */
export const layerApi = (options: Options = {}): Layer.Layer<CsrfApi, SessionConfigError> =>
  Layer.effect(
    CsrfApi,
    Effect.map(headerOnly(options), (check) =>
      Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => {
        const checking = check(request)
        return checking === undefined ? Effect.void : Effect.mapError(checking, () => new HttpApiError.Forbidden())
      }))
  )
