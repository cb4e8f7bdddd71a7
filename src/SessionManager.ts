/**
 * The session manager: configuration, and loading and committing sessions against a store.
 *
 * @since 0.1.0
 */
import * as Cookies from "@effect/platform/Cookies"
import type * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Clock from "effect/Clock"
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Redacted from "effect/Redacted"
import * as Stream from "effect/Stream"
import * as InternalSession from "./internal/session.js"
import * as Token from "./internal/token.js"
import type { Session } from "./Session.js"
import * as SessionCodec from "./SessionCodec.js"
import { SessionStore, SessionStoreError } from "./SessionStore.js"

/**
 * Cookie settings. Defaults are scs's: `session`, `Path=/`, `HttpOnly`, `SameSite=Lax`, not
 * `Secure`, not `Partitioned`, no `Domain`, persistent.
 *
 * @since 0.1.0
 * @category models
 */
export interface CookieOptions {
  readonly name?: string | undefined
  readonly domain?: string | undefined
  readonly path?: string | undefined
  readonly httpOnly?: boolean | undefined
  readonly secure?: boolean | undefined
  readonly sameSite?: "lax" | "strict" | "none" | undefined
  readonly partitioned?: boolean | undefined
  /** `false` makes a browser-session cookie (no `Expires`/`Max-Age`) unless `rememberMe(true)`. */
  readonly persist?: boolean | undefined
}

/**
 * What the middleware answers when a session cannot be loaded or committed. The error has
 * already been logged; the response should not reveal it.
 *
 * @since 0.1.0
 * @category models
 */
export type ErrorHandler = (
  error: SessionError,
  request: HttpServerRequest.HttpServerRequest
) => Effect.Effect<HttpServerResponse.HttpServerResponse>

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** Absolute lifetime from creation (and from each `renewToken`). Default `"24 hours"`. */
  readonly lifetime?: Duration.DurationInput | undefined
  /** Idle timeout; `undefined` or `0` for none (the default). */
  readonly idleTimeout?: Duration.DurationInput | undefined
  readonly cookie?: CookieOptions | undefined
  /** Store base64url(SHA-256(token)) instead of the token. Default `false`. */
  readonly hashTokenInStore?: boolean | undefined
  /** The whole-session codec. Default `SessionCodec.json`. */
  readonly codec?: SessionCodec.SessionCodec | undefined
  /**
   * A stored session that no longer decodes: `"reset"` (default) logs a warning, deletes it and
   * starts a fresh session; `"fail"` fails the load with `SessionCodecError` (scs's behaviour).
   */
  readonly onDecodeError?: "reset" | "fail" | undefined
  /** Default: an empty `500 Internal Server Error`. */
  readonly errorHandler?: ErrorHandler | undefined
}

/**
 * Options with every default applied.
 *
 * @since 0.1.0
 * @category models
 */
export interface ResolvedOptions {
  readonly lifetime: Duration.Duration
  readonly idleTimeout: Option.Option<Duration.Duration>
  readonly cookie: {
    readonly name: string
    readonly domain: string | undefined
    readonly path: string
    readonly httpOnly: boolean
    readonly secure: boolean
    readonly sameSite: "lax" | "strict" | "none"
    readonly partitioned: boolean
    readonly persist: boolean
  }
  readonly hashTokenInStore: boolean
  readonly codec: SessionCodec.SessionCodec
  readonly onDecodeError: "reset" | "fail"
  readonly errorHandler: ErrorHandler
}

/**
 * The manager's configuration is invalid; `reason` says what to change.
 *
 * @since 0.1.0
 * @category errors
 */
export class SessionConfigError extends Data.TaggedError("SessionConfigError")<{
  readonly reason: string
}> {
  /**
   * @since 0.1.0
   */
  override get message(): string {
    return `Invalid session configuration: ${this.reason}`
  }
}

/**
 * A stored session could not be decoded, or a session could not be encoded, with the codec.
 *
 * @since 0.1.0
 * @category errors
 */
export class SessionCodecError extends Data.TaggedError("SessionCodecError")<{
  readonly reason: "Decode" | "Encode"
  readonly cause: ParseResult.ParseError
}> {
  /**
   * @since 0.1.0
   */
  override get message(): string {
    return `Could not ${this.reason === "Decode" ? "decode a stored" : "encode the"} session`
  }
}

/**
 * What can go wrong while loading or committing a session.
 *
 * @since 0.1.0
 * @category errors
 */
export type SessionError = SessionStoreError | SessionCodecError

/**
 * What a commit did, and so what the client must be told.
 *
 * - `Unchanged`: nothing to write, nothing to send.
 * - `Written`: stored; send the token (with `expiresAt`; `persistent` says whether the cookie
 *   carries `Expires`/`Max-Age`; `committedAt` is the `Clock`'s time of the write, epoch ms).
 * - `Destroyed`: the session was destroyed; send a deletion cookie.
 * - `Gone`: the session was destroyed or renewed by another request meanwhile, so the write
 *   was dropped; send nothing (a concurrent renew may just have set a new cookie).
 *
 * @since 0.1.0
 * @category models
 */
export type CommitOutcome = Data.TaggedEnum<{
  Unchanged: {}
  Written: {
    readonly token: Redacted.Redacted<string>
    readonly expiresAt: number
    readonly persistent: boolean
    readonly committedAt: number
  }
  Destroyed: {}
  Gone: {}
}>

/**
 * @since 0.1.0
 * @category constructors
 */
export const CommitOutcome = Data.taggedEnum<CommitOutcome>()

/**
 * @since 0.1.0
 * @category models
 */
export interface SessionManager {
  readonly options: ResolvedOptions
  /** The store this manager was built with. */
  readonly store: SessionStore
  /**
   * Loads the session for a token the client sent (a raw token, or none). An unknown,
   * expired or malformed token gives a fresh, empty session: it is never adopted.
   */
  readonly load: (token: Option.Option<string> | string | undefined) => Effect.Effect<Session, SessionError>
  /** Writes the session if it changed (see `CommitOutcome`). Can be called more than once. */
  readonly commit: (session: Session) => Effect.Effect<CommitOutcome, SessionError>
  /**
   * Runs `f` on every live session, committing each one that `f` changes. Fails with
   * `SessionStoreError` (reason `Unsupported`) when the store cannot enumerate. With
   * `hashTokenInStore` the sessions have no `token` (the raw token cannot be recovered).
   */
  readonly iterate: <E, R>(
    f: (session: Session) => Effect.Effect<void, E, R>
  ) => Effect.Effect<void, E | SessionError, R>
}

/**
 * The default manager, used by `SessionMiddleware.loadAndSave`. For a second, independent
 * manager, make a tag of your own and build it with `make`.
 *
 * @since 0.1.0
 * @category tags
 */
export const SessionManager: Context.Tag<SessionManager, SessionManager> = Context.GenericTag<SessionManager>(
  "effect-session/SessionManager"
)

const defaultErrorHandler: ErrorHandler = () =>
  Effect.succeed(HttpServerResponse.text("Internal Server Error", { status: 500 }))

const positiveDuration = (
  name: string,
  input: Duration.DurationInput
): Either.Either<Duration.Duration, SessionConfigError> => {
  const decoded = Duration.decodeUnknown(input)
  if (Option.isNone(decoded)) {
    return Either.left(new SessionConfigError({ reason: `${name} is not a duration: ${String(input)}` }))
  }
  const duration = decoded.value
  if (!Duration.isFinite(duration) || Duration.lessThanOrEqualTo(duration, Duration.zero)) {
    return Either.left(new SessionConfigError({ reason: `${name} must be a positive, finite duration` }))
  }
  return Either.right(duration)
}

const COOKIE_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/

/**
 * Applies the defaults and checks the configuration: durations, cookie name, and the browser
 * rules for `__Host-`/`__Secure-` prefixes and `SameSite=None`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const resolveOptions = (options: Options = {}): Either.Either<ResolvedOptions, SessionConfigError> =>
  Either.gen(function*() {
    const lifetime = yield* positiveDuration("lifetime", options.lifetime ?? "24 hours")
    const idleInput = options.idleTimeout
    if (typeof idleInput === "number" && idleInput < 0) {
      return yield* Either.left(
        new SessionConfigError({ reason: "idleTimeout must be a positive duration, or 0 for none" })
      )
    }
    const idleTimeout = idleInput === undefined || (Duration.decodeUnknown(idleInput).pipe(
        Option.map(Duration.toMillis),
        Option.getOrUndefined
      ) === 0)
      ? Option.none()
      : Option.some(yield* positiveDuration("idleTimeout", idleInput))
    const input = options.cookie ?? {}
    const cookie = {
      name: input.name ?? "session",
      domain: input.domain,
      path: input.path ?? "/",
      httpOnly: input.httpOnly ?? true,
      secure: input.secure ?? false,
      sameSite: input.sameSite ?? "lax",
      partitioned: input.partitioned ?? false,
      persist: input.persist ?? true
    } as const
    const fail = (reason: string) => Either.left(new SessionConfigError({ reason }))
    if (!COOKIE_NAME.test(cookie.name)) {
      return yield* fail(`cookie name ${JSON.stringify(cookie.name)} is not a valid cookie name`)
    }
    if (!cookie.path.startsWith("/")) return yield* fail(`cookie path must start with "/", got ${cookie.path}`)
    // The platform's own checks, once here rather than on every response that sets the cookie.
    const checked = Cookies.makeCookie(cookie.name, "", { path: cookie.path, domain: cookie.domain })
    if (Either.isLeft(checked)) {
      return yield* fail(
        checked.left.reason === "InvalidDomain"
          ? `cookie domain ${JSON.stringify(cookie.domain)} is not a valid domain`
          : `cookie path ${JSON.stringify(cookie.path)} is not a valid cookie path`
      )
    }
    if (cookie.name.startsWith("__Host-")) {
      if (!cookie.secure) return yield* fail("a __Host- cookie must be secure (set cookie.secure: true)")
      if (cookie.domain !== undefined) return yield* fail("a __Host- cookie must not have a domain")
      if (cookie.path !== "/") return yield* fail(`a __Host- cookie must have path "/", got ${cookie.path}`)
    }
    if (cookie.name.startsWith("__Secure-") && !cookie.secure) {
      return yield* fail("a __Secure- cookie must be secure (set cookie.secure: true)")
    }
    if (cookie.sameSite === "none" && !cookie.secure) {
      return yield* fail("sameSite \"none\" requires cookie.secure: true (browsers reject it otherwise)")
    }
    if (cookie.partitioned && !cookie.secure) {
      return yield* fail("a partitioned cookie must be secure (set cookie.secure: true)")
    }
    return {
      lifetime,
      idleTimeout,
      cookie,
      hashTokenInStore: options.hashTokenInStore ?? false,
      codec: options.codec ?? SessionCodec.json,
      onDecodeError: options.onDecodeError ?? "reset",
      errorHandler: options.errorHandler ?? defaultErrorHandler
    }
  })

/**
 * Builds a manager over the `SessionStore` in context. Fails with `SessionConfigError` when
 * the options are invalid.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options?: Options): Effect.Effect<SessionManager, SessionConfigError, SessionStore> =>
  Effect.gen(function*() {
    const resolved = yield* resolveOptions(options)
    const store = yield* SessionStore
    return makeWith(resolved, store)
  })

const isObject = (u: unknown): u is Record<string, unknown> => typeof u === "object" && u !== null && !Array.isArray(u)

/**
 * The default JSON codec without the Schema machinery on the hot path: a payload of the exact
 * expected shape decodes to the same record the Schema would give; anything else (invalid JSON,
 * a wrong shape, a `__proto__` key) goes through the Schema decoder, so its errors are unchanged.
 */
const fastJsonDecode = (
  slow: (u: unknown) => Either.Either<SessionCodec.SessionRecord, ParseResult.ParseIssue>
) =>
(u: unknown): Either.Either<SessionCodec.SessionRecord, ParseResult.ParseIssue> => {
  if (typeof u !== "string") return slow(u)
  let parsed: unknown
  try {
    parsed = JSON.parse(u)
  } catch {
    return slow(u)
  }
  if (!isObject(parsed)) return slow(u)
  const { committedAt, deadline, rememberMe, values } = parsed
  if (
    typeof deadline !== "number" || typeof committedAt !== "number" ||
    (rememberMe !== undefined && typeof rememberMe !== "boolean") ||
    !isObject(values) || Object.hasOwn(values, "__proto__")
  ) {
    return slow(u)
  }
  return Either.right(
    rememberMe === undefined ? { deadline, committedAt, values } : { deadline, committedAt, rememberMe, values }
  )
}

/**
 * The default JSON codec's encoder as `JSON.stringify` of the record in the Schema's key order
 * (the same text); a value `JSON.stringify` rejects goes through the Schema encoder for its error.
 */
const fastJsonEncode = (
  slow: (a: SessionCodec.SessionRecord) => Either.Either<string, ParseResult.ParseIssue>
) =>
(record: SessionCodec.SessionRecord): Either.Either<string, ParseResult.ParseIssue> => {
  try {
    return Either.right(JSON.stringify(
      record.rememberMe === undefined
        ? { deadline: record.deadline, committedAt: record.committedAt, values: record.values }
        : {
          deadline: record.deadline,
          committedAt: record.committedAt,
          rememberMe: record.rememberMe,
          values: record.values
        }
    ))
  } catch {
    return slow(record)
  }
}

const makeWith = (options: ResolvedOptions, store: SessionStore): SessionManager => {
  const lifetimeMillis = Duration.toMillis(options.lifetime)
  const idleMillis = Option.match(options.idleTimeout, { onNone: () => 0, onSome: Duration.toMillis })
  const storeKeyOf = options.hashTokenInStore ? Token.hash : (token: string) => token
  const isJson = options.codec === SessionCodec.json
  const decodeRecord = isJson
    ? fastJsonDecode(ParseResult.decodeUnknownEither(options.codec))
    : ParseResult.decodeUnknownEither(options.codec)
  const encodeRecord = isJson
    ? fastJsonEncode(ParseResult.encodeEither(options.codec))
    : ParseResult.encodeEither(options.codec)

  /** A decoded record, or none when it is expired by its own deadline or idle window. */
  const liveRecord = (now: number, record: SessionCodec.SessionRecord): boolean =>
    record.deadline > now && (idleMillis === 0 || record.committedAt + idleMillis > now)

  /**
   * Finds and decodes the live record under a store key (undefined when there is none, it
   * expired, or it does not decode and is dropped) and hands it to `f`, in one step.
   */
  const findDecoded = <A>(
    key: string,
    now: number,
    f: (record: SessionCodec.SessionRecord | undefined) => A
  ): Effect.Effect<A, SessionError> =>
    Effect.flatMap(store.find(key), (found): Effect.Effect<A, SessionError> => {
      if (Option.isNone(found)) return Effect.succeed(f(undefined))
      const decoded = decodeRecord(found.value)
      if (Either.isRight(decoded)) {
        return Effect.succeed(f(liveRecord(now, decoded.right) ? decoded.right : undefined))
      }
      const error = new SessionCodecError({
        reason: "Decode",
        cause: new ParseResult.ParseError({ issue: decoded.left })
      })
      if (options.onDecodeError === "fail") return Effect.fail(error)
      return Effect.logWarning("effect-session: a stored session no longer decodes; starting a fresh one", error).pipe(
        Effect.zipRight(store.delete(key)),
        Effect.map(() => f(undefined))
      )
    })

  const context: InternalSession.SessionContext = {
    lifetimeMillis,
    storeKeyOf,
    deleteKey: store.delete,
    findRecord: (token) =>
      Effect.gen(function*() {
        const key = storeKeyOf(token)
        const now = yield* Clock.currentTimeMillis
        return yield* findDecoded(key, now, (record) =>
          record === undefined ? Option.none() : Option.some({
            key,
            deadline: record.deadline,
            values: new Map(Object.entries(record.values))
          })).pipe(
            // A session we are merging from that does not decode has nothing to give.
            Effect.catchTag("SessionCodecError", () => Effect.succeed(Option.none()))
          )
      })
  }

  const fromRecord = (
    token: string | undefined,
    key: string,
    record: SessionCodec.SessionRecord,
    now: number
  ): Session =>
    InternalSession.make({
      token,
      storeKey: key,
      deadline: record.deadline,
      committedAt: record.committedAt,
      rememberMe: record.rememberMe,
      values: new Map(Object.entries(record.values)),
      status: "Unmodified",
      // Refresh the idle window only once half of it has passed, not on every request.
      touch: idleMillis > 0 && now - record.committedAt >= idleMillis / 2
    }, context)

  const fresh = (now: number): Session => InternalSession.make(InternalSession.freshState(now, lifetimeMillis), context)

  // Written without Effect.gen: this runs on every request, and each step of an Effect costs.
  const load: SessionManager["load"] = (input) =>
    Effect.clockWith((clock) => {
      const now = clock.unsafeCurrentTimeMillis()
      const token = Option.isOption(input) ? Option.getOrUndefined(input) : input
      if (token === undefined || !Token.isWellFormed(token)) return Effect.succeed(fresh(now))
      const key = storeKeyOf(token)
      return findDecoded(key, now, (record) => record === undefined ? fresh(now) : fromRecord(token, key, record, now))
    })

  const commit: SessionManager["commit"] = (session) =>
    Effect.suspend(() => {
      const state = InternalSession.stateOf(session)
      if (state.status === "Destroyed") return Effect.succeed(CommitOutcome.Destroyed())
      if (!InternalSession.needsCommit(state)) return Effect.succeed(CommitOutcome.Unchanged())
      return write(state)
    })

  const write = (state: InternalSession.SessionState): Effect.Effect<CommitOutcome, SessionError> =>
    Effect.clockWith((clock): Effect.Effect<CommitOutcome, SessionError> => {
      const now = clock.unsafeCurrentTimeMillis()
      if (state.token === undefined) state.token = Token.generate()
      const token = state.token
      const updating = state.storeKey !== undefined
      const key = state.storeKey ?? storeKeyOf(token)
      const expiresAt = idleMillis > 0 ? Math.min(state.deadline, now + idleMillis) : state.deadline
      const values = Object.fromEntries(state.values)
      // Not a conditional spread: that costs more than the rest of building the record.
      const record: SessionCodec.SessionRecord = state.rememberMe === undefined
        ? { deadline: state.deadline, committedAt: now, values }
        : { deadline: state.deadline, committedAt: now, rememberMe: state.rememberMe, values }
      const encoded = encodeRecord(record)
      if (Either.isLeft(encoded)) {
        return Effect.fail(
          new SessionCodecError({ reason: "Encode", cause: new ParseResult.ParseError({ issue: encoded.left }) })
        )
      }
      return Effect.flatMap(
        store.commit(key, encoded.right, expiresAt, updating ? "update" : "create"),
        (result): Effect.Effect<CommitOutcome> => {
          if (result === "gone") {
            return Effect.as(
              Effect.logDebug("effect-session: the session was destroyed or renewed meanwhile; write dropped"),
              CommitOutcome.Gone()
            )
          }
          state.storeKey = key
          state.committedAt = now
          state.touch = false
          return Effect.succeed(CommitOutcome.Written({
            token: Redacted.make(state.token ?? token),
            expiresAt,
            persistent: options.cookie.persist || state.rememberMe === true,
            committedAt: now
          }))
        }
      )
    })

  const iterate: SessionManager["iterate"] = (f) =>
    Effect.gen(function*() {
      const all = store.all
      if (all === undefined) {
        return yield* new SessionStoreError({
          reason: "Unsupported",
          operation: "all",
          detail: "this store cannot enumerate its sessions"
        })
      }
      yield* all.pipe(Stream.runForEach((stored) =>
        Effect.gen(function*() {
          const now = yield* Clock.currentTimeMillis
          const decoded = decodeRecord(stored.data)
          if (Either.isLeft(decoded) || !liveRecord(now, decoded.right)) return
          const session = fromRecord(options.hashTokenInStore ? undefined : stored.key, stored.key, decoded.right, now)
          InternalSession.stateOf(session).touch = false
          yield* f(session)
          yield* commit(session)
        })
      ))
    })

  return { options, store, load, commit, iterate }
}

/**
 * The default `SessionManager` over the `SessionStore` the layer is given.
 *
 * ```ts
 * const SessionLive = SessionManager.layer({ lifetime: "24 hours" }).pipe(Layer.provide(MemoryStore.layer()))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options?: Options): Layer.Layer<SessionManager, SessionConfigError, SessionStore> =>
  Layer.effect(SessionManager, make(options))

/**
 * Like `layer`, with the options read from `Config` (environment variables by default):
 *
 * ```ts
 * SessionManager.layerConfig({
 *   lifetime: Config.duration("SESSION_LIFETIME"),
 *   cookie: { name: Config.string("SESSION_COOKIE"), secure: Config.boolean("SESSION_SECURE") }
 * })
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (
  options: Config.Config.Wrap<Options>
): Layer.Layer<SessionManager, SessionConfigError | ConfigError.ConfigError, SessionStore> =>
  Layer.effect(SessionManager, Effect.flatMap(Config.unwrap(options), make))
