/**
 * The session manager: lifetimes, hashing and the codec, and loading, committing and iterating
 * sessions against a store. It knows nothing about HTTP: a background job that iterates
 * sessions needs only this module and a store.
 *
 * @since 0.1.0
 */
import * as Arr from "effect/Array"
import * as Clock from "effect/Clock"
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as DateTime from "effect/DateTime"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Order from "effect/Order"
import type * as ParseResult from "effect/ParseResult"
import * as Redacted from "effect/Redacted"
import * as Stream from "effect/Stream"
import * as InternalEvents from "./internal/events.js"
import * as InternalManager from "./internal/manager.js"
import * as InternalOptions from "./internal/options.js"
import * as InternalSession from "./internal/session.js"
import * as Telemetry from "./internal/telemetry.js"
import * as Token from "./internal/token.js"
import type { OwnerSession, Session } from "./Session.js"
import * as SessionCodec from "./SessionCodec.js"
import type { SessionConfigError } from "./SessionConfigError.js"
import * as SessionEvents from "./SessionEvents.js"
import * as SessionMetrics from "./SessionMetrics.js"
import { SessionStore, SessionStoreError } from "./SessionStore.js"
import type { OwnerIndex, OwnerLink, StoredEntry } from "./SessionStore.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /**
   * A new session's deadline, from its creation; `renewToken` moves it to this long from now.
   * Default `"24 hours"`.
   */
  readonly lifetime?: Duration.DurationInput | undefined
  /**
   * The absolute cap, from the session's creation: renewal, `setDeadline` and `mergeSession`
   * never move a deadline past it. At least `lifetime`. Default: `lifetime` (so a session lives at
   * most `lifetime`, however often it is renewed).
   */
  readonly maxLifetime?: Duration.DurationInput | undefined
  /** Idle timeout; `undefined` or `0` for none (the default). */
  readonly idleTimeout?: Duration.DurationInput | undefined
  /**
   * Store base64url(SHA-256(token)) instead of the token, so a read of the store (a backup, a
   * replica, a log of its commands) yields no usable token. Default `true`.
   */
  readonly hashTokenInStore?: boolean | undefined
  /** The whole-session codec. Default `SessionCodec.json`. */
  readonly codec?: SessionCodec.SessionCodec | undefined
  /**
   * A stored session that no longer decodes: `"reset"` (default) logs a warning, deletes it and
   * starts a fresh session; `"fail"` fails the load with `SessionCodecError` (scs's behaviour).
   */
  readonly onDecodeError?: "reset" | "fail" | undefined
  /**
   * A typed value that no longer decodes with its key's schema: `"remove"` (default) logs a
   * warning (the key's name), removes the value and reads it as absent, so one stale value cannot
   * lock its user out; `"fail"` fails `get`/`pop` with `SessionValueError`.
   */
  readonly onValueDecodeError?: "remove" | "fail" | undefined
  /** The largest encoded session, in bytes (UTF-8); a commit over it fails with `SessionLimitError`. Default 65,536. */
  readonly maxSize?: number | undefined
  /** The most keys a session holds; a commit over it fails with `SessionLimitError`. Default 256. */
  readonly maxKeys?: number | undefined
}

/**
 * Options with every default applied.
 *
 * @since 0.1.0
 * @category models
 */
export interface ResolvedOptions {
  readonly lifetime: Duration.Duration
  readonly maxLifetime: Duration.Duration
  readonly idleTimeout: Option.Option<Duration.Duration>
  readonly hashTokenInStore: boolean
  readonly codec: SessionCodec.SessionCodec
  readonly onDecodeError: "reset" | "fail"
  readonly onValueDecodeError: "remove" | "fail"
  readonly maxSize: number
  readonly maxKeys: number
}

/**
 * A stored session could not be decoded, or a session could not be encoded, with the codec.
 * `detail` says where it failed, never what the data was.
 *
 * @since 0.1.0
 * @category errors
 */
export class SessionCodecError extends Data.TaggedError("SessionCodecError")<{
  readonly reason: "Decode" | "Encode"
  readonly detail: string
}> {
  /**
   * @since 0.1.0
   */
  override get message(): string {
    return `Could not ${this.reason === "Decode" ? "decode a stored" : "encode the"} session: ${this.detail}`
  }
}

/**
 * A session over the manager's `maxSize` (encoded bytes) or `maxKeys`: the commit stored nothing.
 *
 * @since 0.2.0
 * @category errors
 */
export class SessionLimitError extends Data.TaggedError("SessionLimitError")<{
  readonly reason: "Size" | "Keys"
  readonly limit: number
  readonly actual: number
}> {
  /**
   * @since 0.2.0
   */
  override get message(): string {
    return `The session has ${this.actual} ${
      this.reason === "Size" ? "bytes" : "keys"
    }, over the limit of ${this.limit}`
  }
}

/**
 * What can go wrong while loading or committing a session.
 *
 * @since 0.1.0
 * @category errors
 */
export type SessionError = SessionStoreError | SessionCodecError | SessionLimitError

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
  /** The store this manager was built with; none for sealed cookies (`SessionManager/Sealed`). */
  readonly store: SessionStore | undefined
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
  /**
   * An owner's live sessions (see `Session.bindOwner`), last active first, in O(sessions of the
   * owner). `current` is always `false` here: `Session.ownerSessions` marks the caller's own.
   */
  readonly ownerSessions: (owner: string) => Effect.Effect<ReadonlyArray<OwnerSession>, SessionError>
  /**
   * Revokes one of an owner's sessions by its handle (an administrator's "sign this device out"):
   * deleted at once for every process sharing the store; a request of it already in flight cannot
   * bring it back, nor can a renewal racing the revocation. `true` if the handle was linked.
   */
  readonly revokeOwnerSession: (owner: string, handle: string) => Effect.Effect<boolean, SessionStoreError>
  /**
   * Revokes every session of an owner but the `except` handle ("log out everywhere", after a
   * password change); returns how many the owner's index held.
   */
  readonly revokeOwnerSessions: (
    owner: string,
    options?: { readonly except?: string | undefined }
  ) => Effect.Effect<number, SessionStoreError>
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
    const maxLifetime = yield* InternalOptions.duration("maxLifetime", options.maxLifetime, lifetime)
    if (Duration.lessThan(maxLifetime, lifetime)) {
      return yield* InternalOptions.invalid("maxLifetime", "must be at least lifetime")
    }
    const idle = yield* InternalOptions.duration("idleTimeout", options.idleTimeout, 0, { allowZero: true })
    return {
      lifetime,
      maxLifetime,
      idleTimeout: Duration.isZero(idle) ? Option.none() : Option.some(idle),
      hashTokenInStore: options.hashTokenInStore ?? true,
      codec: options.codec ?? SessionCodec.json,
      onDecodeError: options.onDecodeError ?? "reset",
      onValueDecodeError: options.onValueDecodeError ?? "remove",
      maxSize: yield* InternalOptions.positiveInteger("maxSize", options.maxSize, 65_536),
      maxKeys: yield* InternalOptions.positiveInteger("maxKeys", options.maxKeys, 256)
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
    // A store of your own gets the same store spans and metrics as the built-in ones, as `custom`.
    const observed = Telemetry.isInstrumented(store) ? store : Telemetry.instrumentStore("custom", store)
    return makeWith(resolved, observed, yield* InternalEvents.hub)
  })

const makeWith = (
  options: ResolvedOptions,
  store: SessionStore,
  events: InternalEvents.Hub | undefined
): SessionManager => {
  const lifetimeMillis = Duration.toMillis(options.lifetime)
  const maxLifetimeMillis = Duration.toMillis(options.maxLifetime)
  const idleMillis = InternalManager.idleMillisOf(options)
  const storeKeyOf = options.hashTokenInStore ? Token.hash : (token: string) => token
  const codec = options.codec

  const { created: createdAs, destroyed, ownerChanged } = InternalManager.lifecycle(events, storeKeyOf)

  /** A stored session that does not decode: dropped (and logged), or the load fails. */
  const undecodable = (key: string, issue: ParseResult.ParseIssue): Effect.Effect<void, SessionError> =>
    InternalManager.undecodable(
      options,
      issue,
      Effect.zipRight(store.delete(key), Metric.increment(InternalManager.sessionReset))
    )

  /**
   * A load found the entry past its expiry or deadline (the store had not dropped it yet): it is
   * deleted, so that it is reported once.
   */
  const expiredOn = (
    key: string,
    record: SessionCodec.SessionRecord,
    now: number
  ): Effect.Effect<void, SessionStoreError> => {
    InternalManager.publishExpired(events, key, record, now)
    return Effect.zipRight(store.delete(key), Metric.increment(InternalManager.expiredOnLoad))
  }

  /** The record of an entry that is live by its expiry and its deadline and decodes; else undefined. */
  const liveRecord = (entry: StoredEntry, now: number): SessionCodec.SessionRecord | undefined => {
    if (entry.expiresAt <= now) return undefined
    const decoded = codec.decode(entry.data)
    return Either.isRight(decoded) && decoded.right.deadline > now ? decoded.right : undefined
  }

  const fromRecord = (
    token: string | undefined,
    key: string,
    record: SessionCodec.SessionRecord,
    expiresAt: number,
    now: number,
    sent?: Redacted.Redacted<string>
  ): Session => InternalManager.fromRecord(context, idleMillis, { token, sent, key, record, expiresAt, now })

  const fresh = (now: number): Session => InternalSession.make(InternalSession.freshState(now, lifetimeMillis), context)

  const expiryOf = (state: InternalSession.SessionState, now: number): number =>
    InternalManager.expiryOf(state, now, idleMillis)

  /**
   * Writes the session: an update of the key it was loaded under, or a new token's create (of a
   * session renewed away from `renewedFrom`, or of a new one). Its outcome goes through `finish`
   * (the commit's `committed`) as it is made.
   */
  const write = (
    state: InternalSession.SessionState,
    now: number,
    count: Telemetry.Traced["count"],
    finish: (outcome: CommitOutcome) => CommitOutcome,
    renewedFrom?: string
  ): Effect.Effect<CommitOutcome, SessionError> => {
    const encoded = InternalManager.encode(options, state, now)
    if (Either.isLeft(encoded)) return Effect.fail(encoded.left)
    const owner = state.owner
    if (state.token === undefined) state.token = Token.generate()
    const token = state.token
    const updating = state.storeKey !== undefined
    const key = state.storeKey ?? storeKeyOf(token)
    const expiresAt = expiryOf(state, now)
    const stored = store.commit(key, encoded.right, expiresAt, updating ? "update" : "create")
    const outcomeOf = (result: "written" | "gone"): CommitOutcome => {
      if (result === "gone") return gone(state)
      state.storeKey = key
      state.touch = false
      if (!updating) createdAs(key, renewedFrom, state, now, count)
      return written(token, expiresAt, state, now)
    }
    return updating || owner === undefined
      ? Effect.map(stored, (result) => finish(outcomeOf(result)))
      : Effect.map(storeLinked(state, owner, key, Effect.map(stored, outcomeOf)), finish)
  }

  /**
   * An owned session under a new key is linked in its owner's index before it is stored, so that
   * the index never misses it, and again after: a revocation in between tombstoned the handle
   * (and may have deleted the key before the write), and the second link tells. Revoked, the
   * session is deleted and this request's copy destroyed.
   */
  const storeLinked = (
    state: InternalSession.SessionState,
    owner: InternalSession.OwnerState,
    key: string,
    stored: Effect.Effect<CommitOutcome, SessionError>
  ): Effect.Effect<CommitOutcome, SessionError> =>
    Effect.flatMap(requireIndex("link"), (index) => {
      const link = index.link(owner.id, owner.handle, key, state.createdAt + maxLifetimeMillis)
      const revoked = Effect.clockWith((clock): Effect.Effect<CommitOutcome> => {
        InternalSession.becomeDestroyed(state, context, clock.unsafeCurrentTimeMillis())
        return Effect.succeed(CommitOutcome.Destroyed())
      })
      return Effect.flatMap(link, (first): Effect.Effect<CommitOutcome, SessionError> =>
        first === "revoked" ?
          revoked :
          Effect.flatMap(stored, (outcome) =>
            outcome._tag !== "Written" ?
              Effect.succeed(outcome) :
              Effect.flatMap(link, (second) =>
                second === "revoked" ? Effect.zipRight(store.delete(key), revoked) : Effect.succeed(outcome))))
    })

  const requireIndex = (operation: "link" | "list" | "revoke"): Effect.Effect<OwnerIndex, SessionStoreError> =>
    store.owners === undefined
      ? Effect.fail(
        new SessionStoreError({ reason: "Unsupported", operation, detail: "this store keeps no owner index" })
      )
      : Effect.succeed(store.owners)

  /** What a device list shows of a linked key's entry; undefined when it is not that session's. */
  const describeOwned = (
    owner: string,
    link: OwnerLink,
    entry: StoredEntry,
    now: number,
    currentHandle: string | undefined
  ): OwnerSession | undefined => {
    const record = liveRecord(entry, now)
    if (record?.owner?.id !== owner || record.owner.handle !== link.handle) return undefined
    // An idle refresh moved the expiry to `idle` from its time (unless the deadline capped it).
    const refreshedAt = idleMillis > 0 && entry.expiresAt < record.deadline ? entry.expiresAt - idleMillis : 0
    return {
      handle: link.handle,
      label: Option.fromNullable(record.owner.label),
      createdAt: DateTime.unsafeMake(record.createdAt),
      lastActiveAt: DateTime.unsafeMake(Math.max(record.owner.seenAt, refreshedAt)),
      expiresAt: DateTime.unsafeMake(entry.expiresAt),
      current: link.handle === currentHandle
    }
  }

  const listOwned = (
    owner: string,
    currentHandle: string | undefined
  ): Effect.Effect<ReadonlyArray<OwnerSession>, SessionError> =>
    Telemetry.traced("session.owner_sessions", ({ annotate }) =>
      Effect.gen(function*() {
        const index = yield* requireIndex("list")
        // No session can be bound to an id that `bindOwner` refuses.
        if (!InternalSession.isOwnerId(owner)) return []
        const links = yield* index.list(owner)
        const now = yield* Clock.currentTimeMillis
        const described = yield* Effect.forEach(links, (link) =>
          Effect.flatMap(store.find(link.key), (entry) =>
            Option.isNone(entry)
              // Destroyed, expired or swept: its link goes too.
              ? Effect.as(index.unlink(owner, link.handle, link.key), undefined)
              : Effect.succeed(describeOwned(owner, link, entry.value, now, currentHandle))), { concurrency: 16 })
        const live = Arr.filter(described, (session) =>
          session !== undefined)
        annotate(Telemetry.Attribute.count, live.length)
        return Arr.sort(
          live,
          Order.mapInput(Order.reverse(DateTime.Order), (session: OwnerSession) =>
            session.lastActiveAt)
        )
      }))

  /**
   * The sessions are deleted first, then their handles tombstoned, then whatever the handles
   * pointed at by then (a renewal in between) deleted too: a failure or a crash part-way leaves
   * the sessions deleted rather than merely marked, and a retry finds what is left.
   */
  const revoke = (
    owner: string,
    handles: ReadonlyArray<string> | "all",
    except: string | undefined
  ): Effect.Effect<number, SessionStoreError> =>
    Telemetry.traced("session.revoke", ({ annotate }) =>
      Effect.gen(function*() {
        const index = yield* requireIndex("revoke")
        if (!InternalSession.isOwnerId(owner)) return 0
        const chosen = (yield* index.list(owner)).filter((link) =>
          link.handle !== except && (handles === "all" || handles.includes(link.handle))
        )
        const deleteAll = (keys: Iterable<string>) =>
          Effect.forEach(keys, (key) => store.delete(key), { concurrency: 16, discard: true })
        const deleted = new Set(chosen.map((link) => link.key))
        yield* deleteAll(deleted)
        const revoked = yield* index.revoke(owner, handles, except)
        yield* deleteAll(revoked.filter((key) => !deleted.has(key)))
        const count = revoked.length
        annotate(Telemetry.Attribute.count, count)
        if (count === 0) return 0
        const now = yield* Clock.currentTimeMillis
        events?.publish(() =>
          SessionEvents.SessionEvent.Revoked({
            at: DateTime.unsafeMake(now),
            owner,
            handles: chosen.map((link) => link.handle),
            count
          })
        )
        yield* Metric.incrementBy(SessionMetrics.revoked, count)
        return count
      }))

  /** An idle refresh: moves the store's expiry only, never rewriting the data this request loaded. */
  const refresh = (
    state: InternalSession.SessionState,
    key: string,
    token: string,
    now: number,
    finish: (outcome: CommitOutcome) => CommitOutcome
  ) => {
    const expiresAt = expiryOf(state, now)
    return Effect.map(store.touch(key, expiresAt), (result) => {
      if (result === "gone") return finish(gone(state))
      state.touch = false
      return finish(written(token, expiresAt, state, now))
    })
  }

  // The token the client sent, when it is the one written (`Redacted.make` is a WeakMap insert).
  const written = (token: string, expiresAt: number, state: InternalSession.SessionState, now: number) =>
    CommitOutcome.Written({
      token: state.sent !== undefined && Redacted.value(state.sent) === token ? state.sent : Redacted.make(token),
      expiresAt,
      rememberMe: state.rememberMe,
      committedAt: now
    })

  // Destroyed or renewed away by another request meanwhile: nothing is written, nothing sent.
  const gone = (state: InternalSession.SessionState): CommitOutcome => {
    state.touch = false
    return CommitOutcome.Gone()
  }

  const context: InternalSession.SessionContext = {
    lifetimeMillis,
    maxLifetimeMillis,
    onValueDecodeError: options.onValueDecodeError,
    deleteKey: store.delete,
    takeKey: (key) => Effect.map(store.take(key), Option.isSome),
    requireOwners: Effect.asVoid(requireIndex("link")),
    unlink: (owner, key) => store.owners === undefined ? Effect.void : store.owners.unlink(owner.id, owner.handle, key),
    ownerSessions: listOwned,
    revoke,
    storeNew: (state, from) =>
      Telemetry.counted((now, count) => Effect.asVoid(write(state, now, count, (outcome) => outcome, from))),
    destroyed,
    ownerChanged,
    takeValues: (token) => {
      if (!Token.isWellFormed(token)) return Effect.succeed(Option.none())
      const key = storeKeyOf(token)
      return Effect.flatMap(store.take(key), (taken) =>
        Effect.clockWith((clock) => {
          const record = Option.isNone(taken) ? undefined : liveRecord(taken.value, clock.unsafeCurrentTimeMillis())
          if (record === undefined) return Effect.succeed(Option.none())
          // The other session is gone now, into this one: as far as its observers know, destroyed.
          const values = Option.some(InternalManager.valuesOf(record.values))
          const owner = record.owner
          return Effect.as(
            context.destroyed(key, owner && { id: owner.id, handle: owner.handle, label: owner.label }),
            values
          )
        }))
    }
  }

  // Written without Effect.gen: this runs on every request, and each step of an Effect costs.
  const load: SessionManager["load"] = (input) =>
    InternalManager.tracedLoad((now, loaded) => {
      const redacted = Option.isOption(input) ? Option.getOrUndefined(input) : input
      if (redacted === undefined) return loaded("no_token", fresh(now))
      const token = Redacted.value(redacted)
      if (!Token.isWellFormed(token)) return loaded("malformed", fresh(now))
      const key = storeKeyOf(token)
      return Effect.flatMap(store.find(key), (found): Effect.Effect<Session, SessionError> => {
        if (Option.isNone(found)) return loaded("missing", fresh(now))
        const entry = found.value
        const decoded = codec.decode(entry.data)
        if (Either.isLeft(decoded)) {
          return Effect.zipRight(undecodable(key, decoded.left.issue), loaded("decode_reset", fresh(now)))
        }
        const record = decoded.right
        if (entry.expiresAt <= now || record.deadline <= now) {
          return Effect.zipRight(expiredOn(key, record, now), loaded("expired", fresh(now)))
        }
        return loaded("found", fromRecord(token, key, record, entry.expiresAt, now, redacted))
      })
    })

  const commit: SessionManager["commit"] = (session) =>
    InternalManager.tracedCommit((now, committed, count) => {
      const state = InternalSession.stateOf(session)
      switch (state.status) {
        case "Destroyed":
          return Effect.succeed(committed(CommitOutcome.Destroyed(), false))
        case "Modified":
          return write(state, now, count, (outcome) => committed(outcome, false))
      }
      return state.touch && state.storeKey !== undefined && state.token !== undefined
        ? refresh(state, state.storeKey, state.token, now, (outcome) => committed(outcome, true))
        : Effect.succeed(committed(CommitOutcome.Unchanged(), false))
    })

  const storeKey: SessionManager["storeKey"] = (session) =>
    Option.fromNullable(InternalSession.stateOf(session).storeKey)

  const iterate: SessionManager["iterate"] = (f) =>
    Telemetry.withSpan("session.iterate")(
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
            const record = liveRecord(stored, now)
            if (record === undefined) return
            const token = options.hashTokenInStore ? undefined : stored.key
            const session = fromRecord(token, stored.key, record, stored.expiresAt, now)
            InternalSession.stateOf(session).touch = false
            yield* f(session)
            yield* commit(session)
          })
        ))
      })
    )

  return {
    options,
    store,
    load,
    commit,
    storeKey,
    iterate,
    ownerSessions: (owner) => listOwned(owner, undefined),
    revokeOwnerSession: (owner, handle) => Effect.map(revoke(owner, [handle], undefined), (count) => count > 0),
    revokeOwnerSessions: (owner, options) => revoke(owner, "all", options?.except)
  }
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
