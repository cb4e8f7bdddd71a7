/**
 * A server-rendered login app on effect-session: sign up, sign in, sign out, a device list with
 * a revoke button per device and "log out everywhere", a one-time message after each action.
 * HTML forms only, no script. Every form posts (then redirects with 303 to a page: POST-redirect-GET)
 * and is checked twice for cross-site request forgery: by the browser's `Sec-Fetch-Site`/`Origin`
 * headers and by a synchronizer token in a hidden field (`Csrf.protect({ token: true })`).
 *
 * Routes:
 * - `GET /`: to the account page, or the sign-in page for a visitor.
 * - `GET|POST /sign-up`, `GET|POST /sign-in`, `POST /sign-out`.
 * - `GET /account`: the signed-in user's page and devices (a visitor is sent to `/sign-in`).
 * - `POST /devices/:handle/revoke`, `POST /sign-out-everywhere`.
 *
 * `layer(options)` serves it; `examples/app/main.ts` is the command line.
 */
import type { HttpServerError } from "@effect/platform"
import { HttpRouter, HttpServer, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import { SqliteClient } from "@effect/sql-sqlite-node"
import type { SqlError } from "@effect/sql/SqlError"
import type { ConfigError } from "effect"
import { Effect, Layer, Option, Schema } from "effect"
import { createServer } from "node:http"
import * as Csrf from "../../src/Csrf.js"
import { Session } from "../../src/Session.js"
import type { SessionConfigError } from "../../src/SessionConfigError.js"
import * as SessionManager from "../../src/SessionManager.js"
import * as SessionMiddleware from "../../src/SessionMiddleware.js"
import type { SessionStoreError } from "../../src/SessionStore.js"
import * as MemoryStore from "../../src/SessionStore/Memory.js"
import * as SqlStore from "../../src/SessionStore/Sql.js"
import * as SessionTransport from "../../src/SessionTransport.js"
import type { Html } from "./html.js"
import { raw } from "./html.js"
import * as Pages from "./pages.js"
import * as Users from "./Users.js"

// ---------------------------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------------------------

const respond = (markup: Html, status = 200): HttpServerResponse.HttpServerResponse =>
  HttpServerResponse.text(markup.value, { status, contentType: "text/html; charset=utf-8", headers: Pages.headers })

/** After a POST: the browser loads `location` with a GET (POST-redirect-GET). */
const seeOther = (location: string): HttpServerResponse.HttpServerResponse =>
  HttpServerResponse.redirect(location, { status: 303 })

type FlashKind = keyof Pages.Flash

/** A message for the next page this session shows, once. */
const flash = (kind: FlashKind, message: string): Effect.Effect<void, never, Session> =>
  Effect.flatMap(Session, (session) => Effect.orDie(session.put(kind, message)))

/** Redirects to `location` with a one-time message. */
const redirectWith = (location: string, kind: FlashKind, message: string) =>
  Effect.as(flash(kind, message), seeOther(location))

/** A page with this session's one-time messages, taken out of it as they are shown. */
const page = (title: string, body: Html): Effect.Effect<HttpServerResponse.HttpServerResponse, never, Session> =>
  Effect.gen(function*() {
    const session = yield* Session
    const flash = { notice: yield* session.popString("notice"), alert: yield* session.popString("alert") }
    return respond(Pages.layout(title, flash, body))
  })

const csrfField = Effect.map(Csrf.formField(), raw)

// ---------------------------------------------------------------------------------------------
// Who is signed in
// ---------------------------------------------------------------------------------------------

/** The user the session is bound to, if the account still exists. */
const currentUser = Effect.gen(function*() {
  const owner = yield* Effect.flatMap(Session, (session) => session.owner)
  if (Option.isNone(owner)) return Option.none<Users.User>()
  return yield* Effect.flatMap(Users.Users, (users) => users.find(owner.value))
})

/** Runs `handler` for a signed-in user; a visitor is sent to the sign-in page. */
const signedIn = <E, R>(
  handler: (user: Users.User) => Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>
) =>
  Effect.flatMap(
    currentUser,
    (user): Effect.Effect<HttpServerResponse.HttpServerResponse, E, R | Session> =>
      Option.isSome(user) ? handler(user.value) : redirectWith("/sign-in", "alert", "Please sign in first.")
  )

/** Runs `handler` for a visitor; a signed-in user is sent to the account page. */
const signedOut = <E, R>(handler: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>) =>
  Effect.flatMap(currentUser, (user) => Option.isSome(user) ? Effect.succeed(seeOther("/account")) : handler)

// A short summary of the user agent for the device list: browser and major version, and the system.
const BROWSERS: ReadonlyArray<readonly [RegExp, string]> = [
  [/\bEdg(?:e|A|iOS)?\/(\d+)/, "Edge"],
  [/\bOPR\/(\d+)/, "Opera"],
  [/\b(?:Firefox|FxiOS)\/(\d+)/, "Firefox"],
  [/\bHeadlessChrome\/(\d+)/, "Headless Chrome"],
  [/\b(?:Chrome|CriOS)\/(\d+)/, "Chrome"],
  [/\bVersion\/(\d+)[\d.]*(?: Mobile\/\S+)? Safari\//, "Safari"],
  [/\bcurl\/(\d+\.\d+)/, "curl"]
]
const SYSTEMS: ReadonlyArray<readonly [RegExp, string]> = [
  [/\b(?:iPhone|iPad)\b/, "iOS"],
  [/\bAndroid\b/, "Android"],
  [/\bCrOS\b/, "ChromeOS"],
  [/\bMacintosh\b/, "macOS"],
  [/\bWindows\b/, "Windows"],
  [/\bLinux\b/, "Linux"]
]

/** "Chrome 141 on macOS", "curl 7.88", or the start of an agent it does not know. */
export const deviceLabel = (userAgent: string | undefined): string => {
  if (userAgent === undefined || userAgent.trim() === "") return "Unknown device"
  const browser = BROWSERS.map(([pattern, name]) => {
    const match = pattern.exec(userAgent)
    return match === null ? undefined : `${name} ${match[1]}`
  }).find((name) => name !== undefined)
  const system = SYSTEMS.find(([pattern]) => pattern.test(userAgent))?.[1]
  if (browser === undefined) return userAgent.trim().slice(0, 48)
  return system === undefined ? browser : `${browser} on ${system}`
}

/**
 * The login step: bind the session to the user, with the device's label. That renews the session's
 * token (against session fixation) and, since the CSRF secret is made for one owner, its CSRF
 * token too: no `Csrf.rotateToken` needed here, nor at sign-out (`destroy` drops the secret).
 */
const signIn = (user: Users.User) =>
  Effect.gen(function*() {
    const session = yield* Session
    const request = yield* HttpServerRequest.HttpServerRequest
    yield* session.bindOwner(user.id, { label: deviceLabel(request.headers["user-agent"]) })
  })

// ---------------------------------------------------------------------------------------------
// Forms
// ---------------------------------------------------------------------------------------------

const UserName = Schema.Trim.pipe(Schema.minLength(1), Schema.maxLength(64))

const NewAccount = Schema.Struct({
  name: UserName,
  password: Schema.Redacted(Schema.String.pipe(Schema.minLength(8), Schema.maxLength(256)))
})

const Credentials = Schema.Struct({
  name: UserName,
  password: Schema.Redacted(Schema.String.pipe(Schema.minLength(1), Schema.maxLength(256)))
})

/** The form in the request body, or none when it does not match the schema (the CSRF field is ignored). */
const readForm = <A, I extends Readonly<Record<string, string | undefined>>>(schema: Schema.Schema<A, I>) =>
  HttpServerRequest.schemaBodyUrlParams(schema).pipe(
    Effect.asSome,
    Effect.catchTag("ParseError", () => Effect.succeedNone)
  )

// ---------------------------------------------------------------------------------------------
// Routes
// ---------------------------------------------------------------------------------------------

const router = HttpRouter.empty.pipe(
  HttpRouter.get(
    "/",
    Effect.map(currentUser, (user) => seeOther(Option.isSome(user) ? "/account" : "/sign-in"))
  ),
  HttpRouter.get(
    "/sign-up",
    signedOut(Effect.flatMap(csrfField, (csrf) => page("Sign up", Pages.signUp(csrf))))
  ),
  HttpRouter.post(
    "/sign-up",
    Effect.gen(function*() {
      const form = yield* readForm(NewAccount)
      if (Option.isNone(form)) {
        return yield* redirectWith(
          "/sign-up",
          "alert",
          "Choose a user name of 1 to 64 characters and a password of 8 to 256."
        )
      }
      const users = yield* Users.Users
      const user = yield* users.register(form.value.name, form.value.password).pipe(
        Effect.asSome,
        Effect.catchIf((error) => error.reason === "NameTaken", () => Effect.succeedNone)
      )
      if (Option.isNone(user)) {
        return yield* redirectWith("/sign-up", "alert", `The user name "${form.value.name}" is taken.`)
      }
      yield* signIn(user.value)
      return yield* redirectWith("/account", "notice", `Welcome, ${user.value.name}! Your account is ready.`)
    })
  ),
  HttpRouter.get(
    "/sign-in",
    signedOut(Effect.flatMap(csrfField, (csrf) => page("Sign in", Pages.signIn(csrf))))
  ),
  HttpRouter.post(
    "/sign-in",
    Effect.gen(function*() {
      const form = yield* readForm(Credentials)
      if (Option.isNone(form)) return yield* redirectWith("/sign-in", "alert", "Enter your user name and password.")
      const users = yield* Users.Users
      const user = yield* users.authenticate(form.value.name, form.value.password).pipe(
        Effect.asSome,
        Effect.catchIf((error) => error.reason === "WrongCredentials", () => Effect.succeedNone)
      )
      if (Option.isNone(user)) return yield* redirectWith("/sign-in", "alert", "Wrong user name or password.")
      yield* signIn(user.value)
      return yield* redirectWith("/account", "notice", `Signed in as ${user.value.name}.`)
    })
  ),
  HttpRouter.post(
    "/sign-out",
    Effect.gen(function*() {
      const session = yield* Session
      // Deletes the session, and its CSRF secret with it; the message starts a new, anonymous one.
      yield* session.destroy
      return yield* redirectWith("/sign-in", "notice", "You are signed out.")
    })
  ),
  HttpRouter.get(
    "/account",
    signedIn((user) =>
      Effect.gen(function*() {
        const session = yield* Session
        const devices = yield* session.ownerSessions
        return yield* page("Your account", Pages.account(user, devices, yield* csrfField))
      })
    )
  ),
  HttpRouter.post(
    "/devices/:handle/revoke",
    signedIn(() =>
      Effect.gen(function*() {
        const { handle } = yield* HttpRouter.schemaPathParams(Schema.Struct({ handle: Schema.String }))
        const session = yield* Session
        const revoked = yield* session.revokeOwnerSession(handle)
        return yield* revoked
          ? redirectWith("/account", "notice", "That device is signed out.")
          : redirectWith("/account", "alert", "That device was already signed out.")
      })
    )
  ),
  HttpRouter.post(
    "/sign-out-everywhere",
    signedIn(() =>
      Effect.gen(function*() {
        const session = yield* Session
        const count = yield* session.revokeOwnerSessions()
        return yield* redirectWith(
          "/sign-in",
          "notice",
          `You are signed out on every device (${count} session${count === 1 ? "" : "s"}).`
        )
      })
    )
  )
)

/**
 * The whole app: the routes behind the CSRF check (inside the session middleware, since the
 * token lives in the session), with pages for a refused form and an unknown address.
 */
export const app = router.pipe(
  Csrf.protect({ token: true }),
  Effect.catchTags({
    CsrfError: (error) =>
      Effect.as(
        Effect.logInfo("refused a form: CSRF check").pipe(Effect.annotateLogs("reason", error.reason)),
        respond(Pages.layout("Request refused", Pages.noFlash, Pages.refused), 403)
      ),
    RouteNotFound: () => Effect.succeed(respond(Pages.layout("Not found", Pages.noFlash, Pages.notFound), 404))
  }),
  SessionMiddleware.loadAndSave
)

// ---------------------------------------------------------------------------------------------
// Layers
// ---------------------------------------------------------------------------------------------

/**
 * @category models
 */
export interface Options {
  /** The port to listen on; `0` for any free one (read it from `HttpServer.HttpServer`'s address). */
  readonly port: number
  /** The interface to listen on. Default: every interface. */
  readonly host?: string | undefined
  /** A SQLite database file for the sessions and the accounts. Default: both in memory. */
  readonly sqlite?: string | undefined
}

/** What can stop the app from starting. */
export type StartError = SessionConfigError | SessionStoreError | SqlError | ConfigError.ConfigError

type Services = SessionManager.SessionManager | SessionTransport.SessionTransport | Users.Users

/** The session manager (12 hours, 30 idle minutes), the `__Host-` cookie and the accounts, on the chosen store. */
export const layerServices = (options: Pick<Options, "sqlite">): Layer.Layer<Services, StartError> => {
  const manager = SessionManager.layer({ lifetime: "12 hours", idleTimeout: "30 minutes" })
  // `__Host-`: only this host, path `/`, `Secure`; browsers treat http://localhost as secure.
  const cookie = SessionTransport.layerCookie({ name: "__Host-session", secure: true, httpOnly: true, sameSite: "lax" })
  if (options.sqlite === undefined) {
    return Layer.mergeAll(Layer.provide(manager, MemoryStore.layer()), Users.layerMemory, cookie)
  }
  // One database for both: the session store's tables and `users`.
  return Layer.mergeAll(Layer.provide(manager, SqlStore.layer()), Users.layerSql, cookie).pipe(
    Layer.provide(SqliteClient.layer({ filename: options.sqlite }))
  )
}

/** The app served on `options.port`, with its services; the `HttpServer` tells the address. */
export const layer = (options: Options): Layer.Layer<HttpServer.HttpServer, StartError | HttpServerError.ServeError> =>
  HttpServer.serve(app).pipe(
    Layer.provide(layerServices(options)),
    Layer.provideMerge(
      NodeHttpServer.layer(
        createServer,
        options.host === undefined ? { port: options.port } : { port: options.port, host: options.host }
      )
    )
  )
