/**
 * HTTP integration for `@effect/platform`: load the session before the handler, commit it
 * after the handler and before the response is written, tell the client.
 *
 * @since 0.1.0
 */
import * as HttpApiMiddleware from "@effect/platform/HttpApiMiddleware"
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import * as HttpApp from "@effect/platform/HttpApp"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import type * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Clock from "effect/Clock"
import type * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import { Session } from "./Session.js"
import { SessionManager } from "./SessionManager.js"
import type { ResolvedOptions } from "./SessionManager.js"
import * as SessionTransport from "./SessionTransport.js"

/**
 * A middleware that provides the session service `SI` to an app and needs the manager `MI`.
 *
 * @since 0.1.0
 * @category models
 */
export interface SessionMiddleware<MI, SI> {
  <E, R>(app: HttpApp.Default<E, R>): HttpApp.Default<E, Exclude<R, SI> | MI>
}

/**
 * The transport, or a function from the manager's options to one (how the default cookie
 * transport gets its cookie settings).
 *
 * @since 0.1.0
 * @category models
 */
export type TransportOption =
  | SessionTransport.SessionTransport
  | ((options: ResolvedOptions) => SessionTransport.SessionTransport)

/**
 * @since 0.1.0
 * @category models
 */
export interface Options<MI = SessionManager, SI = Session> {
  /** The manager to use. Default `SessionManager`. */
  readonly manager?: Context.Tag<MI, SessionManager> | undefined
  /** The tag the session is provided under. Default `Session`. */
  readonly session?: Context.Tag<SI, Session> | undefined
  /** Default: the cookie transport with the manager's cookie settings. */
  readonly transport?: TransportOption | undefined
}

const resolveTransport = (transport: TransportOption | undefined, manager: SessionManager) =>
  transport === undefined
    ? SessionTransport.cookie(manager.options.cookie)
    : typeof transport === "function"
    ? transport(manager.options)
    : transport

/**
 * Loads the request's session and registers its commit as a pre-response handler, so it runs
 * after the handler for every response (error responses included) and before it is written.
 * On a load failure it logs the error and returns the error handler's response instead.
 *
 * @since 0.1.0
 * @category constructors
 */
export const begin = (
  manager: SessionManager,
  transport: SessionTransport.SessionTransport
): Effect.Effect<Either.Either<Session, HttpServerResponse.HttpServerResponse>, never, HttpServerRequest.HttpServerRequest> =>
  Effect.gen(function*() {
    const request = yield* HttpServerRequest.HttpServerRequest
    const token = yield* transport.read(request)
    const loaded = yield* Effect.either(manager.load(token))
    if (Either.isLeft(loaded)) {
      yield* Effect.logError("effect-session: could not load the session", loaded.left)
      return Either.left(transport.decorate(yield* manager.options.errorHandler(loaded.left, request)))
    }
    const session = loaded.right
    yield* HttpApp.appendPreResponseHandler((request, response) =>
      Effect.gen(function*() {
        const committed = yield* Effect.either(manager.commit(session))
        if (Either.isLeft(committed)) {
          yield* Effect.logError("effect-session: could not commit the session", committed.left)
          return transport.decorate(yield* manager.options.errorHandler(committed.left, request))
        }
        const outcome = committed.right
        switch (outcome._tag) {
          case "Written": {
            const now = yield* Clock.currentTimeMillis
            return transport.decorate(
              yield* transport.write(response, outcome.token, { expiresAt: outcome.expiresAt, persistent: outcome.persistent, now })
            )
          }
          case "Destroyed":
            return transport.decorate(yield* transport.clear(response))
          default:
            return transport.decorate(response)
        }
      })
    )
    return Either.right(session)
  })

/**
 * Makes a load-and-save middleware. With no options it uses the default `SessionManager` and
 * `Session` tags and the cookie transport; name other tags to run a second, independent
 * manager in the same request.
 *
 * ```ts
 * const app = router.pipe(
 *   SessionMiddleware.make({ manager: AdminManager, session: AdminSession }),
 *   SessionMiddleware.loadAndSave
 * )
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: {
  (options?: Options<SessionManager, Session>): SessionMiddleware<SessionManager, Session>
  <MI, SI>(options: Options<MI, SI>): SessionMiddleware<MI, SI>
} = <MI, SI>(options: Options<MI, SI> = {}): SessionMiddleware<MI, SI> => {
  const managerTag = (options.manager ?? SessionManager) as Context.Tag<MI, SessionManager>
  const sessionTag = (options.session ?? Session) as Context.Tag<SI, Session>
  return <E, R>(app: HttpApp.Default<E, R>): HttpApp.Default<E, Exclude<R, SI> | MI> =>
    Effect.gen(function*() {
      const manager = yield* managerTag
      const begun = yield* begin(manager, resolveTransport(options.transport, manager))
      if (Either.isLeft(begun)) return begun.left
      return yield* Effect.provideService(app, sessionTag, begun.right)
    }) as HttpApp.Default<E, Exclude<R, SI> | MI>
}

/**
 * The default load-and-save middleware: the `SessionManager`, the `Session` tag and the cookie
 * transport. `Session` leaves the app's requirements; `SessionManager` joins them.
 *
 * ```ts
 * HttpServer.serve(SessionMiddleware.loadAndSave(router))
 * ```
 *
 * @since 0.1.0
 * @category middleware
 */
export const loadAndSave: SessionMiddleware<SessionManager, Session> = make()

/**
 * The failure of the `HttpApi` session middleware when the session cannot be loaded: a 500
 * that reveals nothing (the cause is logged).
 *
 * @since 0.1.0
 * @category errors
 */
export class SessionUnavailable extends Schema.TaggedError<SessionUnavailable>()(
  "SessionUnavailable",
  {},
  HttpApiSchema.annotations({ status: 500 })
) {}

/**
 * The `Session` for `HttpApi` handlers: add it to a group or endpoint with `.middleware(SessionApi)`
 * and provide `layerApi`. Same semantics as `loadAndSave` (the commit is registered as a
 * pre-response handler).
 *
 * @since 0.1.0
 * @category HttpApi
 */
export class SessionApi extends HttpApiMiddleware.Tag<SessionApi>()("effect-session/SessionApi", {
  provides: Session,
  failure: SessionUnavailable
}) {}

/**
 * Implements `SessionApi` with the default `SessionManager`.
 *
 * @since 0.1.0
 * @category HttpApi
 */
export const layerApi = (
  options: { readonly transport?: TransportOption | undefined } = {}
): Layer.Layer<SessionApi, never, SessionManager> =>
  Layer.effect(
    SessionApi,
    Effect.map(SessionManager, (manager) => {
      const transport = resolveTransport(options.transport, manager)
      return Effect.flatMap(
        begin(manager, transport),
        Either.match({ onLeft: () => Effect.fail(new SessionUnavailable()), onRight: Effect.succeed })
      )
    })
  )
