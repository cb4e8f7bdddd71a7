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
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import type * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"
import * as Token from "./internal/token.js"
import { Session } from "./Session.js"
import { SessionLock } from "./SessionLock.js"
import type { SessionLockError } from "./SessionLock.js"
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
  /**
   * Hold the `SessionLock` (from context) on the request's session from before the load until
   * after the commit, so overlapping requests on one session run one after the other. `true`
   * for the defaults. Default: no lock, and the last request to commit wins (as in scs).
   */
  readonly lock?: true | LockOptions | undefined
}

/**
 * How the middleware uses the `SessionLock`.
 *
 * @since 0.1.0
 * @category models
 */
export interface LockOptions {
  /** The longest a request waits for the lock on its session. Default `"5 seconds"`. */
  readonly timeout?: Duration.DurationInput | undefined
  /** The `Retry-After` of the default answer when the lock is not taken. Default `"1 second"`. */
  readonly retryAfter?: Duration.DurationInput | undefined
  /**
   * The answer when the lock is not taken in time (reason `Timeout`) or its backend is down
   * (`Unavailable`); the handler does not run. The error has been logged. Default: a plain-text
   * `503 Service Unavailable` with `Retry-After`.
   */
  readonly onError?:
    | ((
      error: SessionLockError,
      request: HttpServerRequest.HttpServerRequest
    ) => Effect.Effect<HttpServerResponse.HttpServerResponse>)
    | undefined
}

interface ResolvedLock {
  readonly lock: SessionLock
  readonly timeout: Duration.Duration
  readonly retryAfterSeconds: number
  readonly onError: NonNullable<LockOptions["onError"]> | undefined
}

const resolveLock = (lock: SessionLock, options: true | LockOptions): ResolvedLock => {
  const resolved = options === true ? {} : options
  return {
    lock,
    timeout: Duration.decode(resolved.timeout ?? "5 seconds"),
    retryAfterSeconds: Math.max(0, Math.ceil(Duration.toSeconds(Duration.decode(resolved.retryAfter ?? "1 second")))),
    onError: resolved.onError
  }
}

const busyResponse = (retryAfterSeconds: number) =>
  HttpServerResponse.text("Service Unavailable", {
    status: 503,
    headers: { "retry-after": String(retryAfterSeconds) }
  })

type Begun =
  | { readonly _tag: "Loaded"; readonly session: Session; readonly releaseOnExit: Effect.Effect<void> | undefined }
  | { readonly _tag: "LoadFailed"; readonly response: HttpServerResponse.HttpServerResponse }
  | { readonly _tag: "LockFailed"; readonly error: SessionLockError; readonly retryAfterSeconds: number }

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
): Effect.Effect<
  Either.Either<Session, HttpServerResponse.HttpServerResponse>,
  never,
  HttpServerRequest.HttpServerRequest
> =>
  Effect.map(
    start(manager, transport, undefined),
    (begun) => begun._tag === "Loaded" ? Either.right(begun.session) : Either.left(failureResponse(begun, transport))
  )

const failureResponse = (
  begun: Exclude<Begun, { readonly _tag: "Loaded" }>,
  transport: SessionTransport.SessionTransport
): HttpServerResponse.HttpServerResponse =>
  begun._tag === "LoadFailed" ? begun.response : transport.decorate(busyResponse(begun.retryAfterSeconds))

/**
 * The pre-response handler: commits (then releases the lock, if any) and tells the client.
 * Plain `flatMap` chains rather than `Effect.gen`: this runs on every request.
 */
const commitThenRespond = (
  manager: SessionManager,
  transport: SessionTransport.SessionTransport,
  session: Session,
  release: Effect.Effect<void> | undefined
): HttpApp.PreResponseHandler =>
(request, response) => {
  const committed = Effect.either(manager.commit(session))
  return Effect.flatMap(
    release === undefined ? committed : Effect.ensuring(committed, release),
    (result): Effect.Effect<HttpServerResponse.HttpServerResponse> => {
      if (Either.isLeft(result)) {
        return Effect.zipRight(
          Effect.logError("effect-session: could not commit the session", result.left),
          Effect.map(manager.options.errorHandler(result.left, request), transport.decorate)
        )
      }
      const outcome = result.right
      switch (outcome._tag) {
        case "Written":
          return Effect.clockWith((clock) =>
            Effect.map(
              transport.write(response, outcome.token, {
                expiresAt: outcome.expiresAt,
                persistent: outcome.persistent,
                now: clock.unsafeCurrentTimeMillis()
              }),
              transport.decorate
            )
          )
        case "Destroyed":
          return Effect.map(transport.clear(response), transport.decorate)
        default:
          return Effect.succeed(transport.decorate(response))
      }
    }
  )
}

/** Loads the session and registers its commit; on a load failure, releases and answers. */
const loadAndRegister = (
  manager: SessionManager,
  transport: SessionTransport.SessionTransport,
  request: HttpServerRequest.HttpServerRequest,
  token: Option.Option<string>,
  release: Effect.Effect<void> | undefined,
  releaseOnExit: Effect.Effect<void> | undefined
): Effect.Effect<Begun> =>
  Effect.flatMap(Effect.either(manager.load(token)), (loaded): Effect.Effect<Begun> => {
    if (Either.isLeft(loaded)) {
      return Effect.zipRight(
        Effect.zipRight(
          release ?? Effect.void,
          Effect.logError("effect-session: could not load the session", loaded.left)
        ),
        Effect.map(
          manager.options.errorHandler(loaded.left, request),
          (response): Begun => ({ _tag: "LoadFailed", response: transport.decorate(response) })
        )
      )
    }
    const session = loaded.right
    return Effect.as(
      HttpApp.appendPreResponseHandler(commitThenRespond(manager, transport, session, release)),
      { _tag: "Loaded", session, releaseOnExit } as const
    )
  })

/**
 * Takes the lock (when there is one and the client sent a well-formed token), loads, and
 * registers commit-then-release as a pre-response handler. The lock is released exactly once
 * (closing a scope is idempotent): after the commit; or, when the pre-response handler never
 * runs, by the request's `Scope` (closed by the server after the response) or, outside a
 * server, when the middleware's effect ends (`releaseOnExit`).
 */
const start = (
  manager: SessionManager,
  transport: SessionTransport.SessionTransport,
  lock: ResolvedLock | undefined
): Effect.Effect<Begun, never, HttpServerRequest.HttpServerRequest> =>
  Effect.flatMap(
    HttpServerRequest.HttpServerRequest,
    (request) =>
      Effect.flatMap(transport.read(request), (token) =>
        lock === undefined || Option.isNone(token) || !Token.isWellFormed(token.value)
          ? loadAndRegister(manager, transport, request, token, undefined, undefined)
          : Effect.gen(function*() {
            const key = manager.options.hashTokenInStore ? Token.hash(token.value) : token.value
            const lockScope = yield* Scope.make()
            const release = Scope.close(lockScope, Exit.void)
            const requestScope = yield* Effect.serviceOption(Scope.Scope)
            if (Option.isSome(requestScope)) {
              yield* Scope.addFinalizer(requestScope.value, release)
            }
            const locked = yield* Scope.extend(lock.lock.acquire(key, { timeout: lock.timeout }), lockScope).pipe(
              Effect.onExit((exit) =>
                Exit.isSuccess(exit) ? Effect.void : release
              ),
              Effect.either
            )
            if (Either.isLeft(locked)) {
              const error = locked.left
              yield* error.reason === "Timeout"
                ? Effect.logWarning("effect-session: timed out waiting for the session lock", error)
                : Effect.logError("effect-session: the session lock is unavailable", error)
              return { _tag: "LockFailed", error, retryAfterSeconds: lock.retryAfterSeconds } as const
            }
            const releaseOnExit = Option.isSome(requestScope) ? undefined : release
            return yield* loadAndRegister(manager, transport, request, token, release, releaseOnExit)
          }))
  )

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
 * With `lock`, the `SessionLock` in context is held on the request's session from before the
 * load until after the commit (a request whose lock is not taken in time gets a 503 with
 * `Retry-After` and its handler does not run):
 *
 * ```ts
 * HttpServer.serve(SessionMiddleware.make({ lock: { timeout: "5 seconds" } })(router)).pipe(
 *   Layer.provide(SessionLock.layerInProcess())
 * )
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: {
  (
    options: Options<SessionManager, Session> & { readonly lock: true | LockOptions }
  ): SessionMiddleware<SessionManager | SessionLock, Session>
  (options?: Options<SessionManager, Session>): SessionMiddleware<SessionManager, Session>
  <MI, SI>(options: Options<MI, SI> & { readonly lock: true | LockOptions }): SessionMiddleware<MI | SessionLock, SI>
  <MI, SI>(options: Options<MI, SI>): SessionMiddleware<MI, SI>
} = <MI, SI>(options: Options<MI, SI> = {}): SessionMiddleware<MI, SI> => {
  const managerTag = (options.manager ?? SessionManager) as Context.Tag<MI, SessionManager>
  const sessionTag = (options.session ?? Session) as Context.Tag<SI, Session>
  const lockOptions = options.lock
  // One transport per manager, not one per request.
  const transports = new WeakMap<SessionManager, SessionTransport.SessionTransport>()
  const transportFor = (manager: SessionManager) => {
    let transport = transports.get(manager)
    if (transport === undefined) {
      transport = resolveTransport(options.transport, manager)
      transports.set(manager, transport)
    }
    return transport
  }
  return <E, R>(app: HttpApp.Default<E, R>): HttpApp.Default<E, Exclude<R, SI> | MI> =>
    Effect.flatMap(managerTag, (manager) => {
      const transport = transportFor(manager)
      const begunWith = (
        begun: Begun
      ): Effect.Effect<
        HttpServerResponse.HttpServerResponse,
        E,
        Exclude<R, SI> | HttpServerRequest.HttpServerRequest
      > => {
        switch (begun._tag) {
          case "LoadFailed":
            return Effect.succeed(begun.response)
          case "LockFailed": {
            const onError = lockOptions !== undefined && lockOptions !== true ? lockOptions.onError : undefined
            if (onError === undefined) return Effect.succeed(failureResponse(begun, transport))
            return Effect.flatMap(
              HttpServerRequest.HttpServerRequest,
              (request) => Effect.map(onError(begun.error, request), transport.decorate)
            )
          }
        }
        const handled = Effect.provideService(app, sessionTag, begun.session)
        return begun.releaseOnExit === undefined ? handled : Effect.ensuring(handled, begun.releaseOnExit)
      }
      return lockOptions === undefined
        ? Effect.flatMap(start(manager, transport, undefined), begunWith)
        : Effect.flatMap(
          SessionLock,
          (lock) => Effect.flatMap(start(manager, transport, resolveLock(lock, lockOptions)), begunWith)
        )
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
 * The failure of the `HttpApi` session middleware (with the `lock` option) when the session's
 * lock is not taken in time or its backend is down: a 503, sent with `Retry-After`.
 *
 * @since 0.1.0
 * @category errors
 */
export class SessionBusy extends Schema.TaggedError<SessionBusy>()(
  "SessionBusy",
  {},
  HttpApiSchema.annotations({ status: 503 })
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
  failure: Schema.Union(SessionUnavailable, SessionBusy)
}) {}

/**
 * The type of `layerApi`: with `lock`, the layer also needs the `SessionLock`.
 *
 * @since 0.1.0
 * @category HttpApi
 */
export interface LayerApi {
  (options: {
    readonly transport?: TransportOption | undefined
    readonly lock: true | LockOptions
  }): Layer.Layer<SessionApi, never, SessionManager | SessionLock>
  (options?: { readonly transport?: TransportOption | undefined }): Layer.Layer<SessionApi, never, SessionManager>
}

/**
 * Implements `SessionApi` with the default `SessionManager`. With `lock`, the `SessionLock` in
 * context is held from load to commit; when it is not taken, the endpoint fails with
 * `SessionBusy` (503, with `Retry-After`) and its handler does not run (`onError` is not used here).
 *
 * @since 0.1.0
 * @category HttpApi
 */
export const layerApi: LayerApi = ((
  options: { readonly transport?: TransportOption | undefined; readonly lock?: true | LockOptions | undefined } = {}
): Layer.Layer<SessionApi, never, SessionManager | SessionLock> =>
  Layer.effect(
    SessionApi,
    Effect.gen(function*() {
      const manager = yield* SessionManager
      const transport = resolveTransport(options.transport, manager)
      const lock = options.lock === undefined ? undefined : resolveLock(yield* SessionLock, options.lock)
      return Effect.flatMap(
        start(manager, transport, lock),
        (begun): Effect.Effect<Session, SessionUnavailable | SessionBusy> => {
          switch (begun._tag) {
            case "Loaded":
              return Effect.succeed(begun.session)
            case "LoadFailed":
              return Effect.fail(new SessionUnavailable())
            case "LockFailed":
              return HttpApp.appendPreResponseHandler((_request, response) =>
                Effect.succeed(
                  transport.decorate(
                    HttpServerResponse.setHeader(response, "retry-after", String(begun.retryAfterSeconds))
                  )
                )
              ).pipe(Effect.zipRight(Effect.fail(new SessionBusy())))
          }
        }
      )
    })
  )) as LayerApi
