import * as Clock from "effect/Clock"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import type {
  AnyKey,
  BindOwnerOptions,
  MergeOptions,
  OwnerSession,
  RevokeOptions,
  Session,
  SessionKey,
  SessionStatus
} from "../Session.js"
import { SessionValueError } from "../Session.js"
import type { SessionError } from "../SessionManager.js"
import * as SessionMetrics from "../SessionMetrics.js"
import type { SessionStoreError } from "../SessionStore.js"
import { describeIssue } from "./issues.js"
import * as RequestSession from "./requestSession.js"
import * as Telemetry from "./telemetry.js"
import * as Token from "./token.js"

/** The mutable state of one session within one request (or one manual load). */
export interface SessionState {
  /** The raw token the client holds; undefined until the first commit of a new session. */
  token: string | undefined
  /**
   * The token as this request's client sent it, wrapped once by the transport: a commit that
   * writes the same token answers with it rather than wrapping the token again.
   */
  sent: Redacted.Redacted<string> | undefined
  /** The store key this session was loaded or last written under; commits to it are updates. */
  storeKey: string | undefined
  /** When the session was created: the absolute cap counts from here, renewal keeps it. */
  createdAt: number
  deadline: number
  rememberMe: boolean | undefined
  /** Whose session it is (`bindOwner`), without the `seenAt` a write stamps. */
  owner: OwnerState | undefined
  values: Map<string, unknown>
  status: SessionStatus
  /** An idle-timeout refresh is due: move the store's expiry even though nothing changed. */
  touch: boolean
}

export interface OwnerState {
  readonly id: string
  readonly handle: string
  readonly label: string | undefined
}

/** What a session needs from its manager for the operations that reach the store. */
export interface SessionContext {
  readonly lifetimeMillis: number
  /** Nothing moves a deadline past `createdAt + maxLifetimeMillis`. */
  readonly maxLifetimeMillis: number
  /** A typed value that no longer decodes: dropped (and logged), or a `SessionValueError`. */
  readonly onValueDecodeError: "remove" | "fail"
  readonly deleteKey: (key: string) => Effect.Effect<void, SessionStoreError>
  /** Atomically takes the live entry under a store key: none when it is gone. */
  readonly takeKey: (key: string) => Effect.Effect<boolean, SessionStoreError>
  /**
   * Stores a session that has a new token and no store key yet, at once (it then has its key):
   * the session that was stored under `from` until its renewal.
   */
  readonly storeNew: (state: SessionState, from: string) => Effect.Effect<void, SessionError>
  /** Tells metrics and events that `destroy` removed the session stored under `key`. */
  readonly destroyed: (key: string, owner: OwnerState | undefined) => Effect.Effect<void>
  /** Tells events that the session was bound to or unbound from `owner` (it is stored under its new key). */
  readonly ownerChanged: (change: "bound" | "unbound", state: SessionState, owner: OwnerState) => Effect.Effect<void>
  /**
   * Takes another session's live values by the token its client holds (none if gone, undecodable,
   * not a token at all, or `current`'s own).
   */
  readonly takeValues: (
    token: string,
    current: SessionState
  ) => Effect.Effect<Option.Option<Map<string, unknown>>, SessionStoreError>
  /** Fails with `Unsupported` when the store keeps no owner index. */
  readonly requireOwners: Effect.Effect<void, SessionStoreError>
  /** Removes a handle's link to a key from its owner's index (the session under it is gone). */
  readonly unlink: (owner: OwnerState, key: string) => Effect.Effect<void, SessionStoreError>
  /** An owner's live sessions, `current` marking the given handle. */
  readonly ownerSessions: (
    owner: string,
    currentHandle: string | undefined
  ) => Effect.Effect<ReadonlyArray<OwnerSession>, SessionError>
  /** Revokes handles of an owner (see `OwnerIndex.revoke`) and deletes their sessions; how many. */
  readonly revoke: (
    owner: string,
    handles: ReadonlyArray<string> | "all",
    except: string | undefined
  ) => Effect.Effect<number, SessionStoreError>
}

export const SessionStateId: unique symbol = Symbol.for("effect-session/SessionState")

export interface SessionWithState extends Session {
  readonly [SessionStateId]: SessionState
}

export const stateOf = (session: Session): SessionState => {
  const state = (session as Partial<SessionWithState>)[SessionStateId]
  if (state !== undefined) return state
  // A session tag's default value stands for the session of the request the running fiber serves.
  const resolved = RequestSession.resolveNow(session)
  if (resolved === session) throw new Error("effect-session: this Session was not made by a SessionManager")
  if (resolved === undefined) throw new Error(RequestSession.missingMessage)
  return stateOf(resolved)
}

export const freshState = (now: number, lifetimeMillis: number): SessionState => ({
  token: undefined,
  sent: undefined,
  storeKey: undefined,
  createdAt: now,
  deadline: now + lifetimeMillis,
  rememberMe: undefined,
  owner: undefined,
  values: new Map(),
  status: "Unmodified",
  touch: false
})

type TypedOrNamed = string | SessionKey<unknown, unknown>

const nameOf = (key: AnyKey): string => typeof key === "string" ? key : key.name

const decodeWith = <A, I>(key: SessionKey<A, I>, encoded: unknown): Either.Either<A, SessionValueError> =>
  Either.mapLeft(
    ParseResult.decodeUnknownEither(key.schema)(encoded),
    (issue) => new SessionValueError({ reason: "Decode", key: key.name, detail: describeIssue(issue) })
  )

/**
 * A typed value that no longer decodes (its schema changed since it was put): by default it is
 * dropped, so that one stale value cannot lock its user out; the key's name is logged, never the value.
 */
const undecodable = (
  state: SessionState,
  context: SessionContext,
  error: SessionValueError
): Effect.Effect<Option.Option<never>, SessionValueError> =>
  context.onValueDecodeError === "fail" ? Effect.fail(error) : Effect.sync(() => {
    popRaw(state, error.key)
    return Option.none()
  }).pipe(
    Effect.tap(() =>
      Effect.logWarning(`effect-session: the value under "${error.key}" no longer decodes; it was removed`)
    ),
    Effect.tap(() => Metric.increment(valueReset))
  )

const valueReset = Telemetry.tagged(SessionMetrics.decodeResets, { scope: "value" })

// Zero-value readers for the scs-style typed getters: a value of another type reads as zero.
const asString = (u: unknown): string => typeof u === "string" ? u : ""
const asNumber = (u: unknown): number => typeof u === "number" && Number.isFinite(u) ? u : 0
const asInt = (u: unknown): number => typeof u === "number" && Number.isSafeInteger(u) ? u : 0
const asBoolean = (u: unknown): boolean => u === true
const decodeBytes = Schema.decodeUnknownOption(Schema.Uint8ArrayFromBase64Url)
const asBytes = (u: unknown): Uint8Array => Option.getOrElse(decodeBytes(u), () => new Uint8Array(0))
const decodeDate = Schema.decodeUnknownOption(Schema.Date)
const asDate = (u: unknown): Date => Option.getOrElse(decodeDate(u), () => new Date(0))

const touchModified = (state: SessionState): void => {
  state.status = "Modified"
}

const getRaw = (state: SessionState, name: string): Option.Option<unknown> =>
  state.values.has(name) ? Option.some(state.values.get(name)) : Option.none()

const popRaw = (state: SessionState, name: string): Option.Option<unknown> => {
  if (!state.values.has(name)) return Option.none()
  const value = state.values.get(name)
  state.values.delete(name)
  touchModified(state)
  return Option.some(value)
}

/** A typed key's value decoded and handed to `f`; a stale value as `onValueDecodeError` says. */
const readTyped = (
  state: SessionState,
  context: SessionContext,
  key: SessionKey<unknown, unknown>,
  encoded: unknown,
  f: (value: unknown) => Option.Option<unknown>
): Effect.Effect<Option.Option<unknown>, SessionValueError> =>
  Either.match(decodeWith(key, encoded), {
    onLeft: (error) => undecodable(state, context, error),
    onRight: (value) => Effect.succeed(f(value))
  })

const get = (
  state: SessionState,
  context: SessionContext,
  key: TypedOrNamed
): Effect.Effect<Option.Option<unknown>, SessionValueError> =>
  // A name's value as it is, in one step; a typed key's decoded.
  typeof key === "string"
    ? Effect.sync(() => getRaw(state, key))
    : Effect.suspend(() => {
      const raw = getRaw(state, key.name)
      return Option.isNone(raw) ? Effect.succeed(raw) : readTyped(state, context, key, raw.value, Option.some)
    })

const pop = (
  state: SessionState,
  context: SessionContext,
  key: TypedOrNamed
): Effect.Effect<Option.Option<unknown>, SessionValueError> =>
  Effect.suspend(() => {
    if (typeof key === "string") return Effect.succeed(popRaw(state, key))
    const raw = getRaw(state, key.name)
    if (Option.isNone(raw)) return Effect.succeed(raw)
    // Decoded before it is removed: with `onValueDecodeError: "fail"` a stale value stays.
    return readTyped(state, context, key, raw.value, (value) => {
      popRaw(state, key.name)
      return Option.some(value)
    })
  })

// The one key a JSON object cannot keep as data: it would set the object's prototype on reload.
const UNKEEPABLE = "__proto__"

const put = (state: SessionState, key: TypedOrNamed, value: unknown): Effect.Effect<void, SessionValueError> => {
  // The key is checked as the effect is made (the answer depends on it alone); a name's value is
  // stored in one step, a typed key's encoded first.
  const name = nameOf(key)
  if (name === UNKEEPABLE) {
    return Effect.fail(new SessionValueError({ reason: "Key", key: name, detail: "this key cannot be stored" }))
  }
  if (typeof key === "string") return Effect.sync(() => store(state, key, value))
  return Effect.suspend(() =>
    Either.match(ParseResult.encodeEither(key.schema)(value), {
      onLeft: (issue) =>
        Effect.fail(new SessionValueError({ reason: "Encode", key: key.name, detail: describeIssue(issue) })),
      onRight: (encoded) => {
        store(state, key.name, encoded)
        return Effect.void
      }
    })
  )
}

const store = (state: SessionState, name: string, value: unknown): void => {
  state.values.set(name, value)
  touchModified(state)
}

/** The cap nothing moves the deadline past. */
const capOf = (state: SessionState, context: SessionContext): number => state.createdAt + context.maxLifetimeMillis

/**
 * The session is destroyed (here, or by someone else first): this request has none left, and a
 * later `put` starts a brand-new one.
 */
export const becomeDestroyed = (state: SessionState, context: SessionContext, now: number): void => {
  state.createdAt = now
  state.deadline = now + context.lifetimeMillis
  state.token = undefined
  state.storeKey = undefined
  state.values = new Map()
  state.rememberMe = undefined
  state.owner = undefined
  state.touch = false
  state.status = "Destroyed"
}

/**
 * A new token. A stored session is first taken from the store (atomically: if a logout or a
 * revocation got there first, the session is gone and stays gone) and stored again under the new
 * token at once, so a revocation from here on finds it (an owned session is linked in its
 * owner's index around that write: see `OwnerIndex`). `change` (a new owner) applies once the
 * session is taken. The deadline moves to `lifetime` from now, but never past the cap.
 */
const renewToken = (
  state: SessionState,
  context: SessionContext,
  change?: (state: SessionState) => void
): Effect.Effect<void, SessionError> =>
  Effect.gen(function*() {
    const now = yield* Clock.currentTimeMillis
    const stored = state.storeKey
    if (stored !== undefined && !(yield* context.takeKey(stored))) return becomeDestroyed(state, context, now)
    change?.(state)
    state.token = Token.generate()
    state.storeKey = undefined
    state.deadline = Math.min(now + context.lifetimeMillis, capOf(state, context))
    touchModified(state)
    if (stored !== undefined) yield* context.storeNew(state, stored)
  }).pipe(Telemetry.withSpan("session.renew"))

const destroy = (state: SessionState, context: SessionContext): Effect.Effect<void, SessionStoreError> =>
  Effect.clockWith((clock) => {
    const key = state.storeKey
    const owner = state.owner
    becomeDestroyed(state, context, clock.unsafeCurrentTimeMillis())
    if (key === undefined) return Effect.void
    // Deleted first: a crash in between leaves a link to nothing, which listing drops.
    const deleted = owner === undefined
      ? context.deleteKey(key)
      : Effect.zipRight(context.deleteKey(key), context.unlink(owner, key))
    return Effect.zipRight(deleted, context.destroyed(key, owner))
  }).pipe(Telemetry.withSpan("session.destroy"))

// Owner ids and labels are kept in store keys and index rows: short, and never empty.
const MAX_OWNER_LENGTH = 256

// A lone surrogate has no UTF-8 form: stores would each turn it into U+FFFD, so two such ids could meet.
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/

/** Whether `id` can be an owner id: 1 to 256 characters of well-formed UTF-16. */
export const isOwnerId = (id: string): boolean =>
  id.length > 0 && id.length <= MAX_OWNER_LENGTH && !LONE_SURROGATE.test(id)

const ownerError = (detail: string) => new SessionValueError({ reason: "Owner", key: "owner", detail })

/**
 * Binds the session to `id` and renews its token in the same step (a login). The same owner
 * keeps the session's handle; another owner (or a session that was gone) gets a new one.
 */
const bindOwner = (
  state: SessionState,
  context: SessionContext,
  id: string,
  options: BindOwnerOptions | undefined
): Effect.Effect<void, SessionError | SessionValueError> =>
  Effect.gen(function*() {
    const label = options?.label
    if (!isOwnerId(id)) {
      return yield* ownerError(`an owner id has 1 to ${MAX_OWNER_LENGTH} characters of well-formed UTF-16`)
    }
    if (label !== undefined && (label.length > MAX_OWNER_LENGTH || LONE_SURROGATE.test(label))) {
      return yield* ownerError(`a label has at most ${MAX_OWNER_LENGTH} characters of well-formed UTF-16`)
    }
    yield* context.requireOwners
    const previous = state.owner
    const previousKey = state.storeKey
    yield* renewToken(state, context, (renewing) => {
      renewing.owner = {
        id,
        handle: previous?.id === id ? previous.handle : Token.handle(),
        label: label ?? (previous?.id === id ? previous.label : undefined)
      }
    })
    if (state.status === "Destroyed") {
      // Logged out or revoked meanwhile: the login still logs in, as a new, empty session.
      Object.assign(state, freshState(yield* Clock.currentTimeMillis, context.lifetimeMillis))
      state.owner = { id, handle: Token.handle(), label }
      // Its token now, not at its first write, so the `OwnerBound` event can name it.
      state.token = Token.generate()
      touchModified(state)
    }
    if (previous !== undefined && previous.id !== id && previousKey !== undefined) {
      yield* context.unlink(previous, previousKey)
    }
    if (state.owner !== undefined) yield* context.ownerChanged("bound", state, state.owner)
  }).pipe(Telemetry.withSpan("session.bind_owner"))

/** Unbinds the session from its owner and renews its token (a logout that keeps the session). */
const unbindOwner = (state: SessionState, context: SessionContext): Effect.Effect<void, SessionError> =>
  Effect.gen(function*() {
    const owner = state.owner
    if (owner === undefined) return
    const key = state.storeKey
    yield* renewToken(state, context, (renewing) => {
      renewing.owner = undefined
    })
    if (key !== undefined) yield* context.unlink(owner, key)
    if (state.status !== "Destroyed") yield* context.ownerChanged("unbound", state, owner)
  }).pipe(Telemetry.withSpan("session.unbind_owner"))

const revokeOwnerSession = (
  state: SessionState,
  context: SessionContext,
  handle: string
): Effect.Effect<boolean, SessionStoreError> =>
  Effect.gen(function*() {
    const owner = state.owner
    if (owner === undefined) return false
    const revoked = yield* context.revoke(owner.id, [handle], undefined)
    if (handle === owner.handle) becomeDestroyed(state, context, yield* Clock.currentTimeMillis)
    return revoked > 0
  })

const revokeOwnerSessions = (
  state: SessionState,
  context: SessionContext,
  options: RevokeOptions | undefined
): Effect.Effect<number, SessionStoreError> =>
  Effect.gen(function*() {
    const owner = state.owner
    if (owner === undefined) return 0
    const keepCurrent = options?.keepCurrent === true
    const revoked = yield* context.revoke(owner.id, "all", keepCurrent ? owner.handle : undefined)
    if (!keepCurrent) becomeDestroyed(state, context, yield* Clock.currentTimeMillis)
    return revoked
  })

/**
 * Pulls another stored session's values into this one: the other session is taken from the store
 * (it is gone afterwards), this session keeps its own deadline and cap, and gets a new token.
 */
const mergeSession = (
  state: SessionState,
  context: SessionContext,
  token: Redacted.Redacted<string>,
  options: MergeOptions | undefined
): Effect.Effect<void, SessionError> =>
  Effect.gen(function*() {
    const raw = Redacted.value(token)
    if (raw === state.token) return
    const other = yield* context.takeValues(raw, state)
    if (Option.isNone(other)) return
    const otherWins = options?.prefer === "other"
    for (const [name, value] of other.value) {
      if (otherWins || !state.values.has(name)) state.values.set(name, value)
    }
    touchModified(state)
    yield* renewToken(state, context)
  }).pipe(Telemetry.withSpan("session.merge"))

const getWith = <A>(state: SessionState, read: (u: unknown) => A, name: string): Effect.Effect<A> =>
  Effect.sync(() => read(state.values.get(name)))

const popWith = <A>(state: SessionState, read: (u: unknown) => A, name: string): Effect.Effect<A> =>
  Effect.sync(() => read(Option.getOrUndefined(popRaw(state, name))))

/**
 * A session is made on every request, so its members live on the prototype rather than as
 * ~35 closures per object. Each member is a getter returning a function (or an effect) bound
 * to this session, so `session.put(...)` and `const { put } = session` both work.
 */
class SessionImpl implements SessionWithState {
  readonly [SessionStateId]: SessionState
  readonly #context: SessionContext
  constructor(state: SessionState, context: SessionContext) {
    this[SessionStateId] = state
    this.#context = context
  }
  get get(): Session["get"] {
    const state = this[SessionStateId]
    const context = this.#context
    return ((key: TypedOrNamed) => get(state, context, key)) as Session["get"]
  }
  get put(): Session["put"] {
    const state = this[SessionStateId]
    return ((key: TypedOrNamed, value: unknown) => put(state, key, value)) as Session["put"]
  }
  get pop(): Session["pop"] {
    const state = this[SessionStateId]
    const context = this.#context
    return ((key: TypedOrNamed) => pop(state, context, key)) as Session["pop"]
  }
  get remove(): Session["remove"] {
    const state = this[SessionStateId]
    return (key) =>
      Effect.sync(() => {
        popRaw(state, nameOf(key))
      })
  }
  get clear(): Session["clear"] {
    const state = this[SessionStateId]
    return Effect.sync(() => {
      if (state.values.size === 0) return
      state.values.clear()
      touchModified(state)
    })
  }
  get destroy(): Session["destroy"] {
    return destroy(this[SessionStateId], this.#context)
  }
  get exists(): Session["exists"] {
    const state = this[SessionStateId]
    return (key) => Effect.sync(() => state.values.has(nameOf(key)))
  }
  get keys(): Session["keys"] {
    const state = this[SessionStateId]
    return Effect.sync(() => Array.from(state.values.keys()).sort())
  }
  get renewToken(): Session["renewToken"] {
    return renewToken(this[SessionStateId], this.#context)
  }
  get mergeSession(): Session["mergeSession"] {
    const state = this[SessionStateId]
    const context = this.#context
    return (token, options) => mergeSession(state, context, token, options)
  }
  get owner(): Session["owner"] {
    const state = this[SessionStateId]
    return Effect.sync(() => Option.fromNullable(state.owner?.id))
  }
  get bindOwner(): Session["bindOwner"] {
    const state = this[SessionStateId]
    const context = this.#context
    return (id, options) => bindOwner(state, context, id, options)
  }
  get unbindOwner(): Session["unbindOwner"] {
    return unbindOwner(this[SessionStateId], this.#context)
  }
  get ownerSessions(): Session["ownerSessions"] {
    const state = this[SessionStateId]
    const context = this.#context
    return Effect.suspend(() => {
      const owner = state.owner
      return owner === undefined ? Effect.succeed([]) : context.ownerSessions(owner.id, owner.handle)
    })
  }
  get revokeOwnerSession(): Session["revokeOwnerSession"] {
    const state = this[SessionStateId]
    const context = this.#context
    return (handle) => revokeOwnerSession(state, context, handle)
  }
  get revokeOwnerSessions(): Session["revokeOwnerSessions"] {
    const state = this[SessionStateId]
    const context = this.#context
    return (options) => revokeOwnerSessions(state, context, options)
  }
  get rememberMe(): Session["rememberMe"] {
    const state = this[SessionStateId]
    return (remember) =>
      Effect.sync(() => {
        state.rememberMe = remember
        touchModified(state)
      })
  }
  get status(): Session["status"] {
    const state = this[SessionStateId]
    return Effect.sync(() => state.status)
  }
  get token(): Session["token"] {
    const state = this[SessionStateId]
    return Effect.sync(() => state.token === undefined ? Option.none() : Option.some(Redacted.make(state.token)))
  }
  get deadline(): Session["deadline"] {
    const state = this[SessionStateId]
    return Effect.sync(() => DateTime.unsafeMake(state.deadline))
  }
  get setDeadline(): Session["setDeadline"] {
    const state = this[SessionStateId]
    const cap = capOf(state, this.#context)
    return (input) =>
      Effect.sync(() => {
        state.deadline = Math.min(DateTime.toEpochMillis(DateTime.unsafeMake(input)), cap)
        touchModified(state)
      })
  }
  get getString(): Session["getString"] {
    const state = this[SessionStateId]
    return (name) => getWith(state, asString, name)
  }
  get getNumber(): Session["getNumber"] {
    const state = this[SessionStateId]
    return (name) => getWith(state, asNumber, name)
  }
  get getInt(): Session["getInt"] {
    const state = this[SessionStateId]
    return (name) => getWith(state, asInt, name)
  }
  get getFloat(): Session["getFloat"] {
    const state = this[SessionStateId]
    return (name) => getWith(state, asNumber, name)
  }
  get getBoolean(): Session["getBoolean"] {
    const state = this[SessionStateId]
    return (name) => getWith(state, asBoolean, name)
  }
  get getBytes(): Session["getBytes"] {
    const state = this[SessionStateId]
    return (name) => getWith(state, asBytes, name)
  }
  get getDate(): Session["getDate"] {
    const state = this[SessionStateId]
    return (name) => getWith(state, asDate, name)
  }
  get popString(): Session["popString"] {
    const state = this[SessionStateId]
    return (name) => popWith(state, asString, name)
  }
  get popNumber(): Session["popNumber"] {
    const state = this[SessionStateId]
    return (name) => popWith(state, asNumber, name)
  }
  get popInt(): Session["popInt"] {
    const state = this[SessionStateId]
    return (name) => popWith(state, asInt, name)
  }
  get popFloat(): Session["popFloat"] {
    const state = this[SessionStateId]
    return (name) => popWith(state, asNumber, name)
  }
  get popBoolean(): Session["popBoolean"] {
    const state = this[SessionStateId]
    return (name) => popWith(state, asBoolean, name)
  }
  get popBytes(): Session["popBytes"] {
    const state = this[SessionStateId]
    return (name) => popWith(state, asBytes, name)
  }
  get popDate(): Session["popDate"] {
    const state = this[SessionStateId]
    return (name) => popWith(state, asDate, name)
  }
}

export const make = (state: SessionState, context: SessionContext): SessionWithState => new SessionImpl(state, context)
