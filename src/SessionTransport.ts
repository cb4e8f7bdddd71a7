/**
 * How the session token travels between client and server: a cookie (the default), a
 * header for API clients, or a transport of your own.
 *
 * @since 0.1.0
 */
import type * as Cookies from "@effect/platform/Cookies"
import * as Headers from "@effect/platform/Headers"
import type * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import type { ResolvedOptions } from "./SessionManager.js"

/**
 * A transport. `read` runs before the handler; `write` and `clear` run after the handler and
 * after the commit, on the response about to be sent.
 *
 * @since 0.1.0
 * @category models
 */
export interface SessionTransport {
  /** The raw token the client sent, if any. Never fails: a bad token is just no token. */
  readonly read: (request: HttpServerRequest.HttpServerRequest) => Effect.Effect<Option.Option<string>>
  /** Hands the (new or refreshed) token to the client. */
  readonly write: (
    response: HttpServerResponse.HttpServerResponse,
    token: Redacted.Redacted<string>,
    expiry: { readonly expiresAt: number; readonly persistent: boolean; readonly now: number }
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
}

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

// Go's net/http writes the deletion cookie with this Expires (the Unix epoch plus one second).
const DELETION_EXPIRES = new Date(1000)

/**
 * The cookie transport, as scs does it: the first cookie of the configured name is read; a
 * new token goes out as `Set-Cookie` with the configured attributes (`Expires` rounded up to
 * the second, `Max-Age` in whole seconds) and `Cache-Control: no-cache="Set-Cookie"`; every
 * response gets `Vary: Cookie`.
 *
 * @since 0.1.0
 * @category transports
 */
export const cookie = (options: ResolvedOptions["cookie"]): SessionTransport => {
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
  // A browser-session cookie: no Expires, no Max-Age.
  const browserSession = attributes(undefined, undefined)
  const noCache = (response: HttpServerResponse.HttpServerResponse) =>
    appendHeaderValue(response, "Cache-Control", "no-cache=\"Set-Cookie\"")
  return {
    read: (request) => Effect.sync(() => Option.fromNullable(request.cookies[options.name])),
    // The manager's options checked the name, path and domain, and a token is base64url, so
    // these cookies are valid; options that skipped those checks and are invalid are a defect.
    write: (response, token, { expiresAt, now, persistent }) =>
      Effect.sync(() =>
        noCache(HttpServerResponse.unsafeSetCookie(
          response,
          options.name,
          Redacted.value(token),
          persistent
            ? attributes(
              new Date(Math.ceil(expiresAt / 1000) * 1000),
              Duration.seconds(Math.max(0, Math.ceil((expiresAt - now) / 1000)))
            )
            : browserSession
        ))
      ),
    clear: (response) =>
      Effect.sync(() =>
        noCache(
          HttpServerResponse.unsafeSetCookie(response, options.name, "", attributes(DELETION_EXPIRES, Duration.zero))
        )
      ),
    decorate: (response) => appendHeaderValue(response, "Vary", "Cookie")
  }
}

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
 * A header transport for API clients that keep the token themselves.
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
  const noCache = (response: HttpServerResponse.HttpServerResponse) =>
    appendHeaderValue(response, "Cache-Control", "no-store")
  return {
    read: (request) =>
      Effect.sync(() => {
        const value = Headers.get(request.headers, requestHeader)
        if (Option.isNone(value) || scheme === undefined) return Option.map(value, (v) => v.trim())
        const raw = value.value.trim()
        return raw.toLowerCase().startsWith(scheme) ? Option.some(raw.slice(scheme.length).trim()) : Option.none()
      }),
    write: (response, token, { expiresAt }) =>
      Effect.sync(() => {
        const withToken = HttpServerResponse.setHeader(response, responseHeader, Redacted.value(token))
        return noCache(
          expiresHeader === undefined
            ? withToken
            : HttpServerResponse.setHeader(withToken, expiresHeader, new Date(expiresAt).toUTCString())
        )
      }),
    clear: (response) => Effect.sync(() => noCache(HttpServerResponse.setHeader(response, responseHeader, ""))),
    decorate: (response) =>
      appendHeaderValue(
        response,
        "Vary",
        requestHeader === "authorization" ? "Authorization" : options.requestHeader ?? requestHeader
      )
  }
}
