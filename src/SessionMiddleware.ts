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
import type * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as FiberRef from "effect/FiberRef"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"
import * as InternalSession from "./internal/session.js"
import * as Token from "./internal/token.js"
import { Session } from "./Session.js"
import { SessionLock } from "./SessionLock.js"
import type { SessionLockError } from "./SessionLock.js"
import { SessionManager } from "./SessionManager.js"
import type { ResolvedOptions, SessionError } from "./SessionManager.js"
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
  | {
    readonly _tag: "Loaded"
    readonly session: Session
    /** Releases the lock after the commit; undefined without a lock. */
    readonly release: Effect.Effect<void> | undefined
    /** Releases the lock when the middleware's effect ends (no request scope to do it). */
    readonly releaseOnExit: Effect.Effect<void> | undefined
  }
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
  Effect.flatMap(
    start(manager, transport, undefined),
    (begun): Effect.Effect<Either.Either<Session, HttpServerResponse.HttpServerResponse>> =>
      begun._tag === "Loaded"
        ? Effect.as(register(manager, transport, begun), Either.right(begun.session))
        : Effect.succeed(Either.left(failureResponse(begun, transport)))
  )

const failureResponse = (
  begun: Exclude<Begun, { readonly _tag: "Loaded" }>,
  transport: SessionTransport.SessionTransport
): HttpServerResponse.HttpServerResponse =>
  begun._tag === "LoadFailed" ? begun.response : transport.decorate(busyResponse(begun.retryAfterSeconds))

/**
 * Commits (then releases the lock, if any) and tells the client, on the response about to be
 * sent. Plain `flatMap` chains rather than `Effect.gen`: this runs on every request.
 */
const commitAndRespond = (
  manager: SessionManager,
  transport: SessionTransport.SessionTransport,
  session: Session,
  release: Effect.Effect<void> | undefined,
  request: HttpServerRequest.HttpServerRequest,
  response: HttpServerResponse.HttpServerResponse
): Effect.Effect<HttpServerResponse.HttpServerResponse> => {
  const responded = Effect.matchEffect(manager.commit(session), {
    onFailure: (error) =>
      Effect.zipRight(
        Effect.logError("effect-session: could not commit the session", error),
        Effect.map(manager.options.errorHandler(error, request), transport.decorate)
      ),
    onSuccess: (outcome): Effect.Effect<HttpServerResponse.HttpServerResponse> => {
      switch (outcome._tag) {
        case "Written":
          return Effect.map(
            transport.write(response, outcome.token, {
              expiresAt: outcome.expiresAt,
              persistent: outcome.persistent,
              now: outcome.committedAt
            }),
            transport.decorate
          )
        case "Destroyed":
          return Effect.map(transport.clear(response), transport.decorate)
        default:
          return Effect.succeed(transport.decorate(response))
      }
    }
  })
  return release === undefined ? responded : Effect.ensuring(responded, release)
}

/** The pre-response handler that commits and tells the client. */
const commitThenRespond = (
  manager: SessionManager,
  transport: SessionTransport.SessionTransport,
  session: Session,
  release: Effect.Effect<void> | undefined
): HttpApp.PreResponseHandler =>
(request, response) => commitAndRespond(manager, transport, session, release, request, response)

/** Registers the commit (then the release) as a pre-response handler. */
const register = (
  manager: SessionManager,
  transport: SessionTransport.SessionTransport,
  loaded: Extract<Begun, { readonly _tag: "Loaded" }>
): Effect.Effect<void> =>
  HttpApp.appendPreResponseHandler(commitThenRespond(manager, transport, loaded.session, loaded.release))

/** Logs a load failure and answers with the manager's error handler. */
const loadFailed = (
  manager: SessionManager,
  transport: SessionTransport.SessionTransport,
  request: HttpServerRequest.HttpServerRequest,
  error: SessionError
): Effect.Effect<HttpServerResponse.HttpServerResponse> =>
  Effect.zipRight(
    Effect.logError("effect-session: could not load the session", error),
    Effect.map(manager.options.errorHandler(error, request), transport.decorate)
  )

/** Loads the session; on a load failure, releases and answers. */
const load = (
  manager: SessionManager,
  transport: SessionTransport.SessionTransport,
  request: HttpServerRequest.HttpServerRequest,
  token: Option.Option<string>,
  release: Effect.Effect<void> | undefined,
  releaseOnExit: Effect.Effect<void> | undefined
): Effect.Effect<Begun> =>
  Effect.matchEffect(manager.load(token), {
    onFailure: (error) =>
      Effect.map(
        release === undefined
          ? loadFailed(manager, transport, request, error)
          : Effect.zipRight(release, loadFailed(manager, transport, request, error)),
        (response): Begun => ({ _tag: "LoadFailed", response })
      ),
    onSuccess: (session): Effect.Effect<Begun> => Effect.succeed({ _tag: "Loaded", session, release, releaseOnExit })
  })

/**
 * Takes the lock (when there is one and the client sent a well-formed token) and loads. The
 * lock is released exactly once (closing a scope is idempotent): after the commit; or, when
 * the commit never runs, by the request's `Scope` (closed by the server after the response)
 * or, outside a server, when the middleware's effect ends (`releaseOnExit`).
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
          ? load(manager, transport, request, token, undefined, undefined)
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
            return yield* load(manager, transport, request, token, release, releaseOnExit)
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
    Effect.withFiberRuntime((fiber) => {
      const context = fiber.currentContext
      const manager = Context.unsafeGet(context, managerTag)
      const request = Context.unsafeGet(context, HttpServerRequest.HttpServerRequest)
      const transport = transportFor(manager)
      const handle = (
        session: Session,
        release: Effect.Effect<void> | undefined,
        releaseOnExit: Effect.Effect<void> | undefined
      ) => {
        const state = InternalSession.stateOf(session)
        const handled = runWith(context, sessionTag, session, app, {
          // The handler answered: commit now (nothing to do for an unchanged session).
          onSuccess: (response) =>
            release === undefined && !InternalSession.needsCommit(state)
              ? Effect.succeed(transport.decorate(response))
              : commitAndRespond(manager, transport, session, release, request, response),
          // It failed: the server turns the failure into a response; commit before it is sent.
          onFailure: (cause) =>
            Effect.zipRight(
              HttpApp.appendPreResponseHandler(commitThenRespond(manager, transport, session, release)),
              Effect.failCause(cause)
            )
        })
        return releaseOnExit === undefined ? handled : Effect.ensuring(handled, releaseOnExit)
      }
      if (lockOptions === undefined) {
        return Effect.flatMap(transport.read(request), (token) =>
          Effect.matchEffect(manager.load(token), {
            onFailure: (error) => loadFailed(manager, transport, request, error),
            onSuccess: (session) => handle(session, undefined, undefined)
          }))
      }
      const serve = (begun: Begun) => {
        switch (begun._tag) {
          case "LoadFailed":
            return Effect.succeed(begun.response)
          case "LockFailed": {
            const onError = lockOptions !== true ? lockOptions.onError : undefined
            if (onError === undefined) return Effect.succeed(failureResponse(begun, transport))
            return Effect.map(onError(begun.error, request), transport.decorate)
          }
        }
        return handle(begun.session, begun.release, begun.releaseOnExit)
      }
      return Effect.flatMap(
        SessionLock,
        (lock) => Effect.flatMap(start(manager, transport, resolveLock(lock, lockOptions)), serve)
      )
    }) as HttpApp.Default<E, Exclude<R, SI> | MI>
}

/**
 * Runs `app` with `service` added to the context (taken from the fiber at the start), then
 * `onSuccess` or `onFailure`. This is `Effect.provideService` without the acquire/use/release
 * of `Effect.locally` (several more effects per request on the hot path): the context is set
 * and the previous one put back as soon as `app` ends, whichever way. `@effect/platform` runs
 * the app uninterruptibly (the router opens an interruptible region only around the route
 * handler), so the context is put back even when the request is interrupted.
 */
const runWith = <I, S, A, E, R, B, E2, R2>(
  context: Context.Context<never>,
  tag: Context.Tag<I, S>,
  service: S,
  app: Effect.Effect<A, E, R>,
  continuations: {
    readonly onSuccess: (a: A) => Effect.Effect<B, E2, R2>
    readonly onFailure: (cause: Cause.Cause<E>) => Effect.Effect<B, E2, R2>
  }
): Effect.Effect<B, E2, Exclude<R, I> | R2> => {
  const restore = FiberRef.set(FiberRef.currentContext, context)
  return Effect.zipRight(
    FiberRef.set(FiberRef.currentContext, Context.add(context, tag, service)),
    Effect.matchCauseEffect(app, {
      onSuccess: (a) => Effect.zipRight(restore, continuations.onSuccess(a)),
      onFailure: (cause) => Effect.zipRight(restore, continuations.onFailure(cause))
    })
  ) as Effect.Effect<B, E2, Exclude<R, I> | R2>
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
              return Effect.as(register(manager, transport, begun), begun.session)
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
