/**
 * The session manager: lifetimes, hashing and the codec, and loading, committing and iterating
 * sessions against a store. It knows nothing about HTTP: a background job that iterates
 * sessions needs only this module and a store.
 *
 * @since 0.1.0
 */
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
import type * as ParseResult from "effect/ParseResult"
import * as Redacted from "effect/Redacted"
import * as Stream from "effect/Stream"
import * as InternalOptions from "./internal/options.js"
import * as InternalSession from "./internal/session.js"
import * as Token from "./internal/token.js"
import type { Session } from "./Session.js"
import * as SessionCodec from "./SessionCodec.js"
import type { SessionConfigError } from "./SessionConfigError.js"
import { SessionStore, SessionStoreError } from "./SessionStore.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** Absolute lifetime from creation (and from each `renewToken`). Default `"24 hours"`. */
  readonly lifetime?: Duration.DurationInput | undefined
  /** Idle timeout; `undefined` or `0` for none (the default). */
  readonly idleTimeout?: Duration.DurationInput | undefined
  /** Store base64url(SHA-256(token)) instead of the token. Default `false`. */
  readonly hashTokenInStore?: boolean | undefined
  /** The whole-session codec. Default `SessionCodec.json`. */
  readonly codec?: SessionCodec.SessionCodec | undefined
  /**
   * A stored session that no longer decodes: `"reset"` (default) logs a warning, deletes it and
   * starts a fresh session; `"fail"` fails the load with `SessionCodecError` (scs's behaviour).
   */
  readonly onDecodeError?: "reset" | "fail" | undefined
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
  readonly hashTokenInStore: boolean
  readonly codec: SessionCodec.SessionCodec
  readonly onDecodeError: "reset" | "fail"
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
 * - `Written`: stored; send the token, which lives until `expiresAt` (epoch ms). `rememberMe` is
 *   the session's own choice, if it made one (a transport with browser-session cookies makes the
 *   cookie persistent when it is `true`); `committedAt` is the `Clock`'s time of the write.
 * - `Destroyed`: the session was destroyed; tell the client to drop its token.
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
    readonly rememberMe: boolean | undefined
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
   * Loads the session for the token a client sent, if any. An unknown, expired or malformed
   * token gives a fresh, empty session: it is never adopted.
   */
  readonly load: (
    token: Option.Option<Redacted.Redacted<string>> | Redacted.Redacted<string> | undefined
  ) => Effect.Effect<Session, SessionError>
  /** Writes the session if it changed (see `CommitOutcome`). Can be called more than once. */
  readonly commit: (session: Session) => Effect.Effect<CommitOutcome, SessionError>
  /**
   * The store key a session was loaded or last written under (the token, or its hash with
   * `hashTokenInStore`); none for a session not stored yet. It is as secret as the token: use
   * it for per-session locks, never in a log line.
   */
  readonly storeKey: (session: Session) => Option.Option<string>
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

/**
 * Applies the defaults and checks the configuration.
 *
 * @since 0.1.0
 * @category constructors
 */
export const resolveOptions = (options: Options = {}): Either.Either<ResolvedOptions, SessionConfigError> =>
  Either.gen(function*() {
    const lifetime = yield* InternalOptions.duration("lifetime", options.lifetime, "24 hours")
    const idle = yield* InternalOptions.duration("idleTimeout", options.idleTimeout, 0, { allowZero: true })
    return {
      lifetime,
      idleTimeout: Duration.isZero(idle) ? Option.none() : Option.some(idle),
      hashTokenInStore: options.hashTokenInStore ?? false,
      codec: options.codec ?? SessionCodec.json,
      onDecodeError: options.onDecodeError ?? "reset"
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

const makeWith = (options: ResolvedOptions, store: SessionStore): SessionManager => {
  const lifetimeMillis = Duration.toMillis(options.lifetime)
  const idleMillis = Option.match(options.idleTimeout, { onNone: () => 0, onSome: Duration.toMillis })
  const storeKeyOf = options.hashTokenInStore ? Token.hash : (token: string) => token
  const codec = options.codec

  /** Whether a decoded record is still live by its own deadline and idle window. */
  const isLive = (now: number, record: SessionCodec.SessionRecord): boolean =>
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
      const decoded = codec.decode(found.value)
      if (Either.isRight(decoded)) return Effect.succeed(f(isLive(now, decoded.right) ? decoded.right : undefined))
      const error = new SessionCodecError({ reason: "Decode", cause: decoded.left })
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
      const redacted = Option.isOption(input) ? Option.getOrUndefined(input) : input
      if (redacted === undefined) return Effect.succeed(fresh(now))
      const token = Redacted.value(redacted)
      if (!Token.isWellFormed(token)) return Effect.succeed(fresh(now))
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
      const encoded = codec.encode(record)
      if (Either.isLeft(encoded)) return Effect.fail(new SessionCodecError({ reason: "Encode", cause: encoded.left }))
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
            token: Redacted.make(token),
            expiresAt,
            rememberMe: state.rememberMe,
            committedAt: now
          }))
        }
      )
    })

  const storeKey: SessionManager["storeKey"] = (session) =>
    Option.fromNullable(InternalSession.stateOf(session).storeKey)

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
          const decoded = codec.decode(stored.data)
          if (Either.isLeft(decoded) || !isLive(now, decoded.right)) return
          const session = fromRecord(options.hashTokenInStore ? undefined : stored.key, stored.key, decoded.right, now)
          InternalSession.stateOf(session).touch = false
          yield* f(session)
          yield* commit(session)
        })
      ))
    })

  return { options, store, load, commit, storeKey, iterate }
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
 *   idleTimeout: Config.duration("SESSION_IDLE_TIMEOUT")
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
