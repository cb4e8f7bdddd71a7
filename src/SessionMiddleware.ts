/**
 * HTTP integration for `@effect/platform`. One flow, written once: read the token → lock (when
 * asked, and only a session that exists) → load → run the app with `Session` provided → commit →
 * tell the client. Failures and defects of the app are committed too and still get the cookie.
 * The same flow serves `HttpApp` (`loadAndSave`, `make`), `HttpLayerRouter` (`layerRouter`) and
 * `HttpApi` (`SessionApi`, `layerApi`).
 *
 * @since 0.1.0
 */
import * as HttpApiMiddleware from "@effect/platform/HttpApiMiddleware"
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import type * as HttpApiSecurity from "@effect/platform/HttpApiSecurity"
import * as HttpApp from "@effect/platform/HttpApp"
import * as HttpLayerRouter from "@effect/platform/HttpLayerRouter"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import type * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as ExecutionStrategy from "effect/ExecutionStrategy"
import * as Exit from "effect/Exit"
import * as FiberRef from "effect/FiberRef"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"
import * as InternalOptions from "./internal/options.js"
import * as InternalRequestSession from "./internal/requestSession.js"
import { Session } from "./Session.js"
import { SessionConfigError } from "./SessionConfigError.js"
import { SessionLock } from "./SessionLock.js"
import type { SessionLockError } from "./SessionLock.js"
import { SessionManager } from "./SessionManager.js"
import type { SessionError } from "./SessionManager.js"
import * as SessionTransport from "./SessionTransport.js"

/**
 * A middleware that provides the session service `SI` to an app and needs `RI`.
 *
 * @since 0.1.0
 * @category models
 */
export interface SessionMiddleware<RI, SI> {
  <E, R>(app: HttpApp.Default<E, R>): HttpApp.Default<E, Exclude<R, SI> | RI>
}

/**
 * The answer when a session cannot be loaded or committed, or its lock not taken (the handler
 * then does not run). The error has been logged; the response should not reveal it. Default: a
 * plain `503 Service Unavailable` with `Retry-After` for a lock, an empty `500` otherwise.
 *
 * @since 0.2.0
 * @category models
 */
export type ErrorHandler = (
  error: SessionError | SessionLockError,
  request: HttpServerRequest.HttpServerRequest
) => Effect.Effect<HttpServerResponse.HttpServerResponse>

/**
 * How the middleware uses the `SessionLock`.
 *
 * @since 0.2.0
 * @category models
 */
export interface LockOptions {
  /** The longest a request waits for its session's lock (`0`: only if it is free). Default `"5 seconds"`. */
  readonly timeout?: Duration.DurationInput | undefined
  /** The `Retry-After` of the default answer when the lock is not taken. Default `"1 second"`. */
  readonly retryAfter?: Duration.DurationInput | undefined
}

/**
 * What the layers (`layerRouter`, `layerApi`) take: the default manager and `Session` tag.
 *
 * @since 0.2.0
 * @category models
 */
export interface LayerOptions {
  /** Default: the `SessionTransport` in context, or else the cookie transport with its defaults. */
  readonly transport?: SessionTransport.SessionTransport | undefined
  /**
   * Hold the `SessionLock` (from context) on the request's session from just after it is found
   * until after the commit, so overlapping requests on one session run one after the other (the
   * session is read again under the lock); a token that names no live session takes no lock.
   * `true` for the defaults. Default: no lock, and the last request to commit wins (as in scs).
   */
  readonly lock?: true | LockOptions | undefined
  readonly onError?: ErrorHandler | undefined
}

/**
 * What `make` takes: other tags, to run a second, independent manager in the same request.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options<MI = SessionManager, SI = Session, TI = never> extends Omit<LayerOptions, "transport"> {
  /** The manager to use. Default `SessionManager`. */
  readonly manager?: Context.Tag<MI, SessionManager> | undefined
  /**
   * The tag handlers reach the session by. Default `Session`. A tag made by `Session.Tag` finds
   * the session filed under the request; any other tag is provided in the request's context.
   */
  readonly session?: Context.Tag<SI, Session> | undefined
  /** The transport, or the tag of one. Default as in `LayerOptions`. */
  readonly transport?:
    | Context.Tag<TI, SessionTransport.SessionTransport>
    | SessionTransport.SessionTransport
    | undefined
}

/** Everything the flow needs, resolved before a request runs it. */
interface Flow {
  readonly manager: SessionManager
  readonly transport: SessionTransport.SessionTransport
  readonly lock: { readonly lock: SessionLock; readonly timeout: Duration.Duration } | undefined
  readonly onError: ErrorHandler
}

/**
 * How a request lets go of its session's lock: set by `open` when it takes one. Kept beside the
 * session rather than returned with it, so that a request without a lock takes no step to pair them.
 */
interface Held {
  release: Effect.Effect<void> | undefined
}

/** The lock options, checked; `undefined` without a lock. */
const lockSettings = (options: true | LockOptions | undefined) =>
  options === undefined ? Either.right(undefined) : Either.gen(function*() {
    const { retryAfter, timeout } = options === true ? {} : options
    return {
      timeout: yield* InternalOptions.duration("lock.timeout", timeout, "5 seconds", { allowZero: true }),
      retryAfter: yield* InternalOptions.duration("lock.retryAfter", retryAfter, "1 second", { allowZero: true })
    }
  })

type LockSettings = Either.Either.Right<ReturnType<typeof lockSettings>>

const defaultOnError = (retryAfter: Duration.Duration): ErrorHandler => {
  const seconds = String(Math.ceil(Duration.toSeconds(retryAfter)))
  return (error) =>
    Effect.succeed(
      error._tag === "SessionLockError"
        ? HttpServerResponse.text("Service Unavailable", { status: 503, headers: { "retry-after": seconds } })
        : HttpServerResponse.text("Internal Server Error", { status: 500 })
    )
}

const defaultOnErrorOf = (lock: LockSettings): ErrorHandler => defaultOnError(lock?.retryAfter ?? Duration.seconds(1))

/** The flow for the services in `context` (a tag given as `transport` must be there). */
const flowFrom = <TI>(
  context: Context.Context<never>,
  manager: SessionManager,
  options: Pick<Options<unknown, unknown, TI>, "transport" | "onError">,
  lock: LockSettings
): Flow => ({
  manager,
  transport: options.transport === undefined
    ? Option.getOrElse(
      Context.getOption(context, SessionTransport.SessionTransport),
      () => SessionTransport.cookieDefault
    )
    : Context.isTag(options.transport)
    ? Context.unsafeGet(context as Context.Context<TI>, options.transport)
    : options.transport as SessionTransport.SessionTransport,
  lock: lock &&
    { lock: Context.unsafeGet(context as Context.Context<SessionLock>, SessionLock), timeout: lock.timeout },
  onError: options.onError ?? defaultOnErrorOf(lock)
})

// ---------------------------------------------------------------------------------------------
// The flow
// ---------------------------------------------------------------------------------------------

const logFailure = (what: string, error: SessionError | SessionLockError): Effect.Effect<void> =>
  error._tag === "SessionLockError" && error.reason === "Timeout"
    ? Effect.logWarning("effect-session: timed out waiting for the session lock", error)
    : Effect.logError(`effect-session: could not ${what}`, error)

/**
 * `Effect.flatMap` on the transport's answer, which is usually known when `read` returns (an
 * `Exit`, as `Effect.succeed` makes one): then `f` is applied at once, two steps fewer.
 */
const flatMapRead = <A, B, E, R>(
  read: Effect.Effect<A>,
  f: (a: A) => Effect.Effect<B, E, R>
): Effect.Effect<B, E, R> => {
  const known = Exit.isExit(read) ? read as Exit.Exit<A> : undefined
  return known !== undefined && Exit.isSuccess(known) ? f(known.value) : Effect.flatMap(read, f)
}

/**
 * Read the token → load → (lock, then read again under the lock). Only a session that exists is
 * locked: a flood of made-up tokens costs a `find` each, never a lock. The lock is held in a
 * scope of its own inside the request's: released after the commit (through `held`), or when the
 * request's scope closes, whatever happened. A failure is logged where it is answered (a
 * `tapError` here would cost every request a step).
 */
const open = (
  flow: Flow,
  request: HttpServerRequest.HttpServerRequest,
  held: Held
): Effect.Effect<Session, SessionError | SessionLockError, Scope.Scope> => {
  const settings = flow.lock
  if (settings === undefined) return flatMapRead(flow.transport.read(request), flow.manager.load)
  return flatMapRead(flow.transport.read(request), (token) =>
    Effect.flatMap(flow.manager.load(token), (session) => {
      const key = flow.manager.storeKey(session)
      if (Option.isNone(key)) return Effect.succeed(session)
      return Effect.flatMap(Effect.scope, (requestScope) =>
        Effect.flatMap(Scope.fork(requestScope, ExecutionStrategy.sequential), (lockScope) => {
          const release = Scope.close(lockScope, Exit.void)
          held.release = release
          return Scope.extend(settings.lock.acquire(key.value, { timeout: settings.timeout }), lockScope).pipe(
            Effect.zipRight(flow.manager.load(token)),
            Effect.tapError(() =>
              release
            )
          )
        }))
    }))
}

/** The error answer, decorated by the transport. */
const answer = (
  flow: Flow,
  error: SessionError | SessionLockError,
  request: HttpServerRequest.HttpServerRequest
): Effect.Effect<HttpServerResponse.HttpServerResponse> =>
  Effect.map(flow.onError(error, request), flow.transport.decorate)

/** Commits the session, then tells the client on `response`. */
const commitThenTell = (
  flow: Flow,
  session: Session,
  request: HttpServerRequest.HttpServerRequest,
  response: HttpServerResponse.HttpServerResponse
): Effect.Effect<HttpServerResponse.HttpServerResponse> =>
  Effect.matchEffect(flow.manager.commit(session), {
    onFailure: (error) => Effect.zipRight(logFailure("commit the session", error), answer(flow, error, request)),
    onSuccess: (outcome) => {
      switch (outcome._tag) {
        // Decorated first: `decorate` and the token's headers are independent, and the write's
        // answer is then the response itself (a `map` after it would cost every write two steps).
        case "Written": {
          const { committedAt, expiresAt, rememberMe, token } = outcome
          return flow.transport.write(flow.transport.decorate(response), token, {
            expiresAt,
            rememberMe,
            now: committedAt
          })
        }
        case "Destroyed":
          return flow.transport.clear(flow.transport.decorate(response))
        default:
          return Effect.succeed(flow.transport.decorate(response))
      }
    }
  })

/** Commits and tells (`commitThenTell`), and lets go of the lock either way when one is held. */
const commitAndTell = (
  flow: Flow,
  session: Session,
  held: Held,
  request: HttpServerRequest.HttpServerRequest,
  response: HttpServerResponse.HttpServerResponse
): Effect.Effect<HttpServerResponse.HttpServerResponse> =>
  held.release === undefined
    ? commitThenTell(flow, session, request, response)
    : Effect.ensuring(commitThenTell(flow, session, request, response), held.release)

/**
 * The whole flow around an app (HttpApp, HttpLayerRouter): commit after it answers, or before
 * the server sends the answer it makes of a failure. `flowOf` gives the flow for the request's
 * context (resolved once for a layer).
 */
const wrap = <E, R, I>(
  flowOf: (context: Context.Context<never>) => Flow,
  tag: Context.Tag<I, Session>,
  app: HttpApp.Default<E, R>
): HttpApp.Default<E, Exclude<R, I> | HttpServerRequest.HttpServerRequest | Scope.Scope> => {
  const filing = InternalRequestSession.filingOf(tag as Context.Tag<unknown, Session>)
  return Effect.withFiberRuntime((fiber) => {
    const context = fiber.currentContext
    const flow = flowOf(context)
    const request = Context.unsafeGet(context, HttpServerRequest.HttpServerRequest)
    const held: Held = { release: undefined }
    return Effect.matchEffect(open(flow, request, held), {
      onFailure: (error) => Effect.zipRight(logFailure("open the session", error), answer(flow, error, request)),
      onSuccess: (session) => {
        const continuations = {
          onSuccess: (response: HttpServerResponse.HttpServerResponse) =>
            commitAndTell(flow, session, held, request, response),
          onFailure: (cause: Cause.Cause<E>) =>
            Effect.zipRight(
              HttpApp.appendPreResponseHandler((request, response) =>
                commitAndTell(flow, session, held, request, response)
              ),
              Effect.failCause(cause)
            )
        }
        // A tag made by `Session.Tag` finds the session filed under the request, unless a value was provided for it.
        return filing !== undefined && !context.unsafeMap.has(tag.key)
          // The filing stands for the tag, which `app` may then require no more.
          ? runFiled(filing, request, session, app, continuations) as Effect.Effect<
            HttpServerResponse.HttpServerResponse,
            E,
            Exclude<R, I>
          >
          : runWith(context, tag, session, app, continuations)
      }
    })
  })
}

// Sessions are filed under the request's `source`, which a router's modified request keeps.
InternalRequestSession.requests.sourceIn = (context) =>
  (context.unsafeMap.get(HttpServerRequest.HttpServerRequest.key) as HttpServerRequest.HttpServerRequest | undefined)
    ?.source as object | undefined

/** What runs after the app: the commit, on whichever way the app ended. */
interface Continuations<A, E, B, E2, R2> {
  readonly onSuccess: (a: A) => Effect.Effect<B, E2, R2>
  readonly onFailure: (cause: Cause.Cause<E>) => Effect.Effect<B, E2, R2>
}

/** Runs `app`, then `restore`, then the continuation for how `app` ended. */
const restoringAfter = <A, E, R, B, E2, R2>(
  app: Effect.Effect<A, E, R>,
  restore: Effect.Effect<void>,
  continuations: Continuations<A, E, B, E2, R2>
): Effect.Effect<B, E2, R | R2> =>
  Effect.matchCauseEffect(app, {
    onSuccess: (a) => Effect.zipRight(restore, continuations.onSuccess(a)),
    onFailure: (cause) => Effect.zipRight(restore, continuations.onFailure(cause))
  })

/**
 * Runs `app` with `session` filed under `request` in its tag's `filing`, then `onSuccess` or
 * `onFailure`. A session filed before (a middleware around this one, on the same tag) is filed
 * again when `app` ends; this one stays filed otherwise, for fibers the handler forked.
 */
const runFiled = <A, E, R, B, E2, R2>(
  filing: InternalRequestSession.Filing,
  request: HttpServerRequest.HttpServerRequest,
  session: Session,
  app: Effect.Effect<A, E, R>,
  continuations: Continuations<A, E, B, E2, R2>
): Effect.Effect<B, E2, R | R2> => {
  const source = request.source as object
  const filed = filing.sessions
  const outer = filed.get(source)
  filed.set(source, session)
  return outer === undefined
    ? Effect.matchCauseEffect(app, continuations)
    : restoringAfter(app, Effect.sync(() => filed.set(source, outer)), continuations)
}

/**
 * Runs `app` with `service` added to `context` (the fiber's, taken at the start), then
 * `onSuccess` or `onFailure`. This is `Effect.provideService` without the acquire/use/release
 * of `Effect.locally` (an uninterruptible region and several more steps, 5–8 KB per request):
 * the context is set, and the previous one put back as soon as `app` ends, whichever way.
 * `@effect/platform` runs the app uninterruptibly (the router opens an interruptible region only
 * around the route handler), so the context is put back even when the request is interrupted.
 */
const runWith = <I, S, A, E, R, B, E2, R2>(
  context: Context.Context<never>,
  tag: Context.Tag<I, S>,
  service: S,
  app: Effect.Effect<A, E, R>,
  continuations: Continuations<A, E, B, E2, R2>
): Effect.Effect<B, E2, Exclude<R, I> | R2> =>
  Effect.zipRight(
    FiberRef.set(FiberRef.currentContext, Context.add(context, tag, service)),
    restoringAfter(app, FiberRef.set(FiberRef.currentContext, context), continuations)
  ) as Effect.Effect<B, E2, Exclude<R, I> | R2>

// ---------------------------------------------------------------------------------------------
// HttpApp
// ---------------------------------------------------------------------------------------------

/**
 * Makes a load-and-save middleware, with other tags for a second, independent manager:
 *
 * ```ts
 * const app = router.pipe(
 *   SessionMiddleware.make({ manager: AdminManager, session: AdminSession, transport: AdminCookie }),
 *   SessionMiddleware.loadAndSave
 * )
 * ```
 *
 * With `lock`, it also needs the `SessionLock` (and the request's `Scope`, which every server
 * provides). `make` is not an effect: an invalid lock duration throws its `SessionConfigError`
 * here, when the middleware is made; the layers fail with it instead.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: {
  (
    options: Options<SessionManager, Session, never> & { readonly lock: true | LockOptions }
  ): SessionMiddleware<SessionManager | SessionLock | Scope.Scope, Session>
  (options?: Options<SessionManager, Session, never>): SessionMiddleware<SessionManager, Session>
  <MI, SI, TI = never>(
    options: Options<MI, SI, TI> & { readonly lock: true | LockOptions }
  ): SessionMiddleware<MI | TI | SessionLock | Scope.Scope, SI>
  <MI, SI, TI = never>(options: Options<MI, SI, TI>): SessionMiddleware<MI | TI, SI>
} = (<MI, SI, TI>(options: Options<MI, SI, TI> = {}): SessionMiddleware<MI | TI, SI> => {
  const managerTag = (options.manager ?? SessionManager) as Context.Tag<MI, SessionManager>
  const sessionTag = (options.session ?? Session) as Context.Tag<SI, Session>
  const lock = Either.getOrThrowWith(lockSettings(options.lock), (error) => error)
  // The answer to a failure is the same on every request: made once, not on each.
  const resolved = { transport: options.transport, onError: options.onError ?? defaultOnErrorOf(lock) }
  const flowOf = (context: Context.Context<never>) =>
    flowFrom(context, Context.unsafeGet(context as Context.Context<MI>, managerTag), resolved, lock)
  return <E, R>(app: HttpApp.Default<E, R>) =>
    wrap(flowOf, sessionTag, app) as HttpApp.Default<E, Exclude<R, SI> | MI | TI>
  // The overloads only add what the options imply (the lock, the request's scope) to `R`.
}) as typeof make

/**
 * The default load-and-save middleware: `Session` leaves the app's requirements,
 * `SessionManager` joins them. `HttpServer.serve(SessionMiddleware.loadAndSave(router))`.
 *
 * @since 0.1.0
 * @category middleware
 */
export const loadAndSave: SessionMiddleware<SessionManager, Session> = make()

/** The flow of a layer, resolved once from the layer's context. */
const flowOfLayer = (options: LayerOptions) =>
  Effect.gen(function*() {
    const lock = yield* lockSettings(options.lock)
    return flowFrom(yield* Effect.context<never>(), yield* SessionManager, options, lock)
  })

/**
 * A layer's type: with `lock`, it also needs the `SessionLock`.
 *
 * @since 0.2.0
 * @category models
 */
export interface LayerConstructor<A> {
  (options: LayerOptions & { readonly lock: true | LockOptions }): Layer.Layer<
    A,
    SessionConfigError,
    SessionManager | SessionLock
  >
  (options?: LayerOptions): Layer.Layer<A, SessionConfigError, SessionManager>
}

// ---------------------------------------------------------------------------------------------
// HttpLayerRouter
// ---------------------------------------------------------------------------------------------

/**
 * The `HttpLayerRouter` middleware itself, before it is a layer: for `.combine`, so that a
 * middleware that needs the `Session` runs inside it (the CSRF token check:
 * `Csrf.routerMiddleware({ token: true }).combine(SessionMiddleware.routerMiddleware()).layer`).
 *
 * @since 0.2.0
 * @category HttpLayerRouter
 */
export interface RouterMiddleware<LayerRequires> extends
  HttpLayerRouter.Middleware<{
    provides: Session
    handles: never
    error: never
    requires: never
    layerError: SessionConfigError
    layerRequires: LayerRequires
  }>
{}

/**
 * `routerMiddleware`'s type: with `lock`, its layer also needs the `SessionLock`.
 *
 * @since 0.2.0
 * @category models
 */
export interface RouterMiddlewareConstructor {
  (options: LayerOptions & { readonly lock: true | LockOptions }): RouterMiddleware<SessionManager | SessionLock>
  (options?: LayerOptions): RouterMiddleware<SessionManager>
}

/**
 * The session middleware for `HttpLayerRouter`, to `.combine` with a middleware that needs the
 * `Session`; `layerRouter(options)` is its `.layer`.
 *
 * @since 0.2.0
 * @category HttpLayerRouter
 */
export const routerMiddleware: RouterMiddlewareConstructor =
  ((options: LayerOptions = {}) =>
    HttpLayerRouter.middleware<{ provides: Session }>()(
      Effect.map(flowOfLayer(options), (flow) => (app) => wrap(() => flow, Session, app))
    )) as RouterMiddlewareConstructor

/**
 * The middleware for `HttpLayerRouter`, in the platform's own idiom: provide it to routes and they
 * can `yield* Session`. `HttpLayerRouter.add("GET", "/", handler).pipe(Layer.provide(layerRouter()))`.
 *
 * @since 0.2.0
 * @category HttpLayerRouter
 */
export const layerRouter: LayerConstructor<HttpLayerRouter.Request<"Requires", Session>> = ((
  options: LayerOptions = {}
) => routerMiddleware(options).layer) as LayerConstructor<HttpLayerRouter.Request<"Requires", Session>>

// ---------------------------------------------------------------------------------------------
// HttpApi
// ---------------------------------------------------------------------------------------------

/**
 * The `HttpApi` failure when the session cannot be loaded: a 500 that reveals nothing.
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
 * The `HttpApi` failure when the session's lock is not taken: a 503, sent with `Retry-After`.
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
 * The `Session` for `HttpApi` handlers: `.middleware(SessionApi)` on a group or endpoint, and
 * provide `layerApi`. An `HttpApi` middleware runs before the handler, not around it: the commit
 * is a pre-response handler, and the request's scope lets go of the lock if the commit never runs.
 * It declares the default session cookie (`session`) as its security scheme, so the OpenAPI
 * document shows it; for another transport, declare yours with the same shape and `layerApiFor`.
 *
 * @since 0.1.0
 * @category HttpApi
 */
export class SessionApi extends HttpApiMiddleware.Tag<SessionApi>()("effect-session/SessionApi", {
  provides: Session,
  failure: Schema.Union(SessionUnavailable, SessionBusy),
  security: { session: SessionTransport.cookieSecurity("session") }
}) {}

/**
 * What an `HttpApi` session middleware is, for `layerApiFor`: a tag like `SessionApi` with the
 * scheme of your transport (`SessionTransport.cookieSecurity(name)`, `SessionTransport.headerSecurity()`).
 *
 * ```ts
 * class AppSession extends HttpApiMiddleware.Tag<AppSession>()("app/AppSession", {
 *   provides: Session,
 *   failure: Schema.Union(SessionMiddleware.SessionUnavailable, SessionMiddleware.SessionBusy),
 *   security: { session: SessionTransport.cookieSecurity("__Host-session") }
 * }) {}
 * ```
 *
 * @since 0.2.0
 * @category HttpApi
 */
export interface ApiTag<Self, Security extends Record<string, HttpApiSecurity.HttpApiSecurity>> extends
  Context.Tag<
    Self,
    HttpApiMiddleware.HttpApiMiddlewareSecurity<Security, Session, SessionUnavailable | SessionBusy>
  >
{
  readonly security: Security
}

/**
 * `layerApiFor`'s type: with `lock`, it also needs the `SessionLock`.
 *
 * @since 0.2.0
 * @category models
 */
export interface ApiLayerConstructor {
  <Self, Security extends Record<string, HttpApiSecurity.HttpApiSecurity>>(
    tag: ApiTag<Self, Security>,
    options: LayerOptions & { readonly lock: true | LockOptions }
  ): Layer.Layer<Self, SessionConfigError, SessionManager | SessionLock>
  <Self, Security extends Record<string, HttpApiSecurity.HttpApiSecurity>>(
    tag: ApiTag<Self, Security>,
    options?: LayerOptions
  ): Layer.Layer<Self, SessionConfigError, SessionManager>
}

/** Whether two schemes describe the same credential (the OpenAPI document must not name another). */
const sameScheme = (a: HttpApiSecurity.HttpApiSecurity, b: HttpApiSecurity.HttpApiSecurity): boolean =>
  a._tag === "ApiKey" && b._tag === "ApiKey"
    ? a.in === b.in && (a.in === "header" ? a.key.toLowerCase() === b.key.toLowerCase() : a.key === b.key)
    : a._tag === b._tag

const describe = (scheme: HttpApiSecurity.HttpApiSecurity): string =>
  scheme._tag === "ApiKey" ? `the ${scheme.in} ${JSON.stringify(scheme.key)}` : `${scheme._tag} credentials`

/**
 * Implements an `HttpApi` session middleware tag (`SessionApi`, or one of yours that declares your
 * transport's scheme). The endpoint fails with `SessionUnavailable` or `SessionBusy` (with the
 * `Retry-After` of `onError`'s answer); `onError` answers a failed commit. The layer fails with
 * `SessionConfigError` when the tag declares a scheme the transport does not use: the OpenAPI
 * document would name the wrong credential.
 *
 * @since 0.2.0
 * @category HttpApi
 */
export const layerApiFor: ApiLayerConstructor =
  (<Self, Security extends Record<string, HttpApiSecurity.HttpApiSecurity>>(
    tag: ApiTag<Self, Security>,
    options: LayerOptions = {}
  ) =>
    Layer.effect(
      tag,
      Effect.gen(function*() {
        const flow = yield* flowOfLayer(options)
        const travels = flow.transport.security
        for (const declared of Object.values(tag.security)) {
          if (travels !== undefined && !sameScheme(declared, travels)) {
            return yield* new SessionConfigError({
              option: "transport",
              reason: `carries the token in ${describe(travels)}, but ${tag.key} declares ${
                describe(declared)
              }: declare SessionTransport's scheme for it`
            })
          }
        }
        const middleware = Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => {
          const held: Held = { release: undefined }
          return Effect.matchEffect(open(flow, request, held), {
            onFailure: (error) => {
              const refused: Effect.Effect<never, SessionUnavailable | SessionBusy> = error._tag !== "SessionLockError"
                ? Effect.fail(new SessionUnavailable())
                : Effect.flatMap(answer(flow, error, request), (busy) =>
                  HttpApp.appendPreResponseHandler((_request, response) =>
                    Effect.succeed(HttpServerResponse.setHeaders(response, busy.headers))
                  )).pipe(Effect.zipRight(Effect.fail(new SessionBusy())))
              return Effect.zipRight(logFailure("open the session", error), refused)
            },
            onSuccess: (session) =>
              Effect.as(
                HttpApp.appendPreResponseHandler((request, response) =>
                  commitAndTell(flow, session, held, request, response)
                ),
                session
              )
          })
        })
        // The transport reads the token itself (and refuses a repeated cookie): the decoded credential is not used.
        const handlers: Record<
          string,
          () => HttpApiMiddleware.HttpApiMiddleware<Session, SessionUnavailable | SessionBusy>
        > = Object.fromEntries(
          Object.keys(tag.security).map((name) => [name, () =>
            middleware]
          )
        )
        return handlers as HttpApiMiddleware.HttpApiMiddlewareSecurity<
          Security,
          Session,
          SessionUnavailable | SessionBusy
        >
      })
    )) as ApiLayerConstructor

/**
 * Implements `SessionApi` with the default `SessionManager`: `layerApiFor(SessionApi, options)`.
 *
 * @since 0.1.0
 * @category HttpApi
 */
export const layerApi: LayerConstructor<SessionApi> =
  ((options?: LayerOptions) => layerApiFor(SessionApi, options)) as LayerConstructor<SessionApi>
