/**
 * The least a session middleware on @effect/platform can do for the bench's routes while keeping
 * what effect-session guarantees and answering with the same headers: `effect-minimal` in the
 * http section (servers/effect.ts `--mode minimal`) and a row of `bench/app.ts`. It is the floor
 * under effect-session's added CPU that is a session's own work, where `effect-headers-only` is
 * the floor of the headers alone. Per request, and nothing else:
 * - the token read from the raw `Cookie` header and checked to be one (43 base64url characters);
 * - its store key, SHA-256 as base64url (hashing at rest), with effect-session's own hash;
 * - one `Map` lookup, the expiry checked, the record parsed from JSON;
 * - the session added to the fiber's context with `FiberRef.set`, and put back after the app
 *   (the cheapest way found to provide a service per request, the one `SessionMiddleware` uses);
 * - on a write: the record as JSON, one `Map` write, and for a new session a token from the same
 *   pooled CSPRNG; then `Set-Cookie`, `Cache-Control` and `Vary` in one `setHeaders`.
 *
 * The session's methods are plain functions, not effects. No metric, no span, no event, no value
 * schema, no typed error, no lock, no redaction of the token, no sweep, no size limit: what a
 * library cannot leave out, not what effect-session does. Never a library: a bench fixture.
 */
import type * as HttpApp from "@effect/platform/HttpApp"
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as FiberRef from "effect/FiberRef"
import * as Token from "../src/internal/token.js"
import { userValue } from "./shared.js"

interface MiniSession {
  readonly get: (name: string) => unknown
  readonly put: (name: string, value: unknown) => void
}

const MiniSession = Context.GenericTag<MiniSession>("bench/MiniSession")

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
): HttpApp.Default<E, Exclude<R, MiniSession> | HttpServerRequest.HttpServerRequest> =>
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
    const values = new Map(Object.entries(record.values))
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
      store.set(key, {
        data: JSON.stringify({ createdAt, deadline, values: Object.fromEntries(values) }),
        expiresAt: deadline
      })
      const expires = new Date(Math.ceil(deadline / 1000) * 1000)
      const maxAge = Math.ceil((deadline - now) / 1000)
      return HttpServerResponse.setHeaders(response, {
        "set-cookie":
          `session=${token}; Max-Age=${maxAge}; Path=/; Expires=${expires.toUTCString()}; HttpOnly; Secure; SameSite=Lax`,
        "cache-control": "private, no-cache=\"Set-Cookie\"",
        vary: "Cookie"
      })
    }
    const restore = FiberRef.set(FiberRef.currentContext, context)
    return Effect.zipRight(
      FiberRef.set(FiberRef.currentContext, Context.add(context, MiniSession, session)),
      Effect.matchCauseEffect(app as HttpApp.Default<E>, {
        onSuccess: (response) => Effect.as(restore, commit(response)),
        onFailure: (cause) => Effect.zipRight(restore, Effect.failCause(cause))
      })
    )
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
