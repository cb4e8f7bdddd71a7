/**
 * The least a session middleware on @effect/platform can do for the bench's routes while keeping
 * what effect-session guarantees and answering with the same headers: `effect-minimal` in the
 * http section (servers/effect.ts `--mode minimal`) and a row of `bench/app.ts`. It is the floor
 * under effect-session's added CPU that is a session's own work, where `effect-headers-only` is
 * the floor of the headers alone. Per request, and nothing else:
 * - the token read from the raw `Cookie` header and checked to be one (43 base64url characters);
 * - its store key, SHA-256 as base64url (hashing at rest), with effect-session's own hash;
 * - one `Map` lookup, the expiry checked, the record parsed from JSON;
 * - the session filed under the request's `source` in a `WeakMap`, where the handler's
 *   `yield* MiniSession` (one step) finds it: nothing is added to the fiber's context, as
 *   `SessionMiddleware` adds nothing for the default `Session` (until 2026-12-04 this fixture set
 *   the context with `FiberRef.set` and put it back, then the cheapest way known);
 * - on a write: the record as JSON, one `Map` write, and for a new session a token from the same
 *   pooled CSPRNG; then `Set-Cookie`, `Cache-Control` and `Vary`, one `setHeader` each (until
 *   2026-12-04 one `setHeaders`, which copies the headers more).
 *
 * The session's methods are plain functions, not effects, and `MiniSession` is an effect, not a
 * tag: a handler that yields it outside the middleware gets `undefined`, which the compiler allows. No metric, no span, no event, no value
 * schema, no typed error, no lock, no redaction of the token, no sweep, no size limit: what a
 * library cannot leave out, not what effect-session does. Never a library: a bench fixture.
 */
import type * as HttpApp from "@effect/platform/HttpApp"
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Token from "../src/internal/token.js"
import { userValue } from "./shared.js"

interface MiniSession {
  readonly get: (name: string) => unknown
  readonly put: (name: string, value: unknown) => void
}

/** The sessions loaded, by their request's `source`. */
const filed = new WeakMap<object, MiniSession>()

/** The request's session, found by the request in the fiber's context. */
const MiniSession: Effect.Effect<MiniSession> = Effect.withFiberRuntime((fiber) =>
  Effect.succeed(
    filed.get(Context.unsafeGet(fiber.currentContext, HttpServerRequest.HttpServerRequest).source as object)!
  )
)

interface MiniRecord {
  readonly createdAt: number
  readonly deadline: number
  readonly values: Record<string, unknown>
}

const store = new Map<string, { readonly data: string; readonly expiresAt: number }>()
const LIFETIME = 86_400_000
const TOKEN = /^[A-Za-z0-9_-]{43}$/

const tokenOf = (header: string | undefined): string | undefined => {
  if (header === undefined) return undefined
  for (const pair of header.split(";")) {
    const equals = pair.indexOf("=")
    if (equals !== -1 && pair.slice(0, equals).trim() === "session") {
      const value = pair.slice(equals + 1).trim()
      return TOKEN.test(value) ? value : undefined
    }
  }
  return undefined
}

/** The middleware: load before the app, commit after it. */
export const middleware = <E, R>(
  app: HttpApp.Default<E, R>
): HttpApp.Default<E, R | HttpServerRequest.HttpServerRequest> =>
  Effect.withFiberRuntime((fiber) => {
    const context = fiber.currentContext
    const request = Context.unsafeGet(context, HttpServerRequest.HttpServerRequest)
    const now = Date.now()
    let token = tokenOf(request.headers["cookie"])
    let key = token === undefined ? undefined : Token.hash(token)
    const entry = key === undefined ? undefined : store.get(key)
    const live = entry !== undefined && entry.expiresAt > now
    const record: MiniRecord = live ? JSON.parse(entry.data) : { createdAt: now, deadline: now + LIFETIME, values: {} }
    if (!live) token = key = undefined
    const values = new Map<string, unknown>()
    for (const name in record.values) values.set(name, record.values[name])
    let modified = false
    const session: MiniSession = {
      get: (name) => values.get(name),
      put: (name, value) => {
        values.set(name, value)
        modified = true
      }
    }
    const commit = (response: HttpServerResponse.HttpServerResponse) => {
      if (!modified) return HttpServerResponse.setHeader(response, "vary", "Cookie")
      if (token === undefined || key === undefined) {
        token = Token.generate()
        key = Token.hash(token)
      }
      const { createdAt, deadline } = record
      const written: Record<string, unknown> = {}
      for (const [name, value] of values) written[name] = value
      store.set(key, { data: JSON.stringify({ createdAt, deadline, values: written }), expiresAt: deadline })
      const expires = new Date(Math.ceil(deadline / 1000) * 1000)
      const maxAge = Math.ceil((deadline - now) / 1000)
      const cookie =
        `session=${token}; Max-Age=${maxAge}; Path=/; Expires=${expires.toUTCString()}; HttpOnly; Secure; SameSite=Lax`
      return HttpServerResponse.setHeader(
        HttpServerResponse.setHeader(
          HttpServerResponse.setHeader(response, "set-cookie", cookie),
          "cache-control",
          "private, no-cache=\"Set-Cookie\""
        ),
        "vary",
        "Cookie"
      )
    }
    filed.set(request.source as object, session)
    return Effect.map(app, commit)
  })

let logins = 0

/** The bench's routes on the minimal session, handlers shaped as effect-session's. */
export const routes = HttpRouter.empty.pipe(
  HttpRouter.get(
    "/login",
    Effect.gen(function*() {
      const session = yield* MiniSession
      session.put("user", userValue(logins++))
      session.put("count", 0)
      return HttpServerResponse.text("ok")
    })
  ),
  HttpRouter.get(
    "/get",
    Effect.gen(function*() {
      const session = yield* MiniSession
      const user = session.get("user")
      return HttpServerResponse.text(typeof user === "string" ? user : "")
    })
  ),
  HttpRouter.get(
    "/incr",
    Effect.gen(function*() {
      const session = yield* MiniSession
      const count = session.get("count")
      const next = (typeof count === "number" ? count : 0) + 1
      session.put("count", next)
      return HttpServerResponse.text(String(next))
    })
  ),
  HttpRouter.get(
    "/new",
    Effect.gen(function*() {
      const session = yield* MiniSession
      session.put("user", userValue(logins++))
      return HttpServerResponse.text("ok")
    })
  )
)
