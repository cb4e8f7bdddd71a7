/**
 * What both managers share, the store-backed one (`SessionManager.make`) and the sealed-cookie
 * one (`SessionManager/Sealed`): the record a session is written as and its limits, a loaded
 * session's state, and the load and commit outcomes as spans and metrics.
 */
import * as DateTime from "effect/DateTime"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import type * as ParseResult from "effect/ParseResult"
import type * as Redacted from "effect/Redacted"
import type { Session } from "../Session.js"
import type * as SessionCodec from "../SessionCodec.js"
import * as SessionEvents from "../SessionEvents.js"
import type { CommitOutcome, ResolvedOptions, SessionError } from "../SessionManager.js"
import { SessionCodecError, SessionLimitError } from "../SessionManager.js"
import * as SessionMetrics from "../SessionMetrics.js"
import * as InternalEvents from "./events.js"
import { describeIssue } from "./issues.js"
import * as InternalSession from "./session.js"
import * as Telemetry from "./telemetry.js"

// Each outcome's counter, tagged once rather than on every request.
const loadedBy = {
  found: Telemetry.tagged(SessionMetrics.loaded, { outcome: "found" }),
  no_token: Telemetry.tagged(SessionMetrics.loaded, { outcome: "no_token" }),
  malformed: Telemetry.tagged(SessionMetrics.loaded, { outcome: "malformed" }),
  missing: Telemetry.tagged(SessionMetrics.loaded, { outcome: "missing" }),
  expired: Telemetry.tagged(SessionMetrics.loaded, { outcome: "expired" }),
  decode_reset: Telemetry.tagged(SessionMetrics.loaded, { outcome: "decode_reset" })
}

/** How a load went, as the `session.outcome` of its span and the label of its metric. */
export type LoadOutcome = keyof typeof loadedBy

const committedBy = {
  written: Telemetry.tagged(SessionMetrics.committed, { outcome: "written" }),
  refreshed: Telemetry.tagged(SessionMetrics.committed, { outcome: "refreshed" }),
  unchanged: Telemetry.tagged(SessionMetrics.committed, { outcome: "unchanged" }),
  destroyed: Telemetry.tagged(SessionMetrics.committed, { outcome: "destroyed" }),
  gone: Telemetry.tagged(SessionMetrics.committed, { outcome: "gone" })
}
type CommitLabel = keyof typeof committedBy
const labelOf: Record<CommitOutcome["_tag"], CommitLabel> = {
  Written: "written",
  Unchanged: "unchanged",
  Destroyed: "destroyed",
  Gone: "gone"
}

export const expiredOnLoad = Telemetry.tagged(SessionMetrics.expired, { source: "load" })
export const sessionReset = Telemetry.tagged(SessionMetrics.decodeResets, { scope: "session" })

/**
 * `session.load`: `body` is handed the time and `loaded`, which records the outcome on the span
 * and its counter and succeeds with the session.
 */
export const tracedLoad = <E>(
  body: (
    now: number,
    loaded: (outcome: LoadOutcome, session: Session) => Effect.Effect<Session>
  ) => Effect.Effect<Session, E>
): Effect.Effect<Session, E> =>
  Telemetry.traced("session.load", ({ annotate, count, now }) =>
    body(now, (outcome, session) => {
      annotate(Telemetry.Attribute.outcome, outcome)
      count(loadedBy[outcome], 1)
      return Effect.succeed(session)
    }))

/**
 * `session.commit`: `body` is handed the time, `committed`, which records the outcome
 * (`refreshed` for a write that only moved the expiry) on the span and its counter and returns
 * it (a write calls it as it maps the store's answer: no step of its own), and the span's
 * `count` for the other counters a write feeds (`lifecycle.created`).
 */
export const tracedCommit = (
  body: (
    now: number,
    committed: (outcome: CommitOutcome, refreshed: boolean) => CommitOutcome,
    count: Telemetry.Traced["count"]
  ) => Effect.Effect<CommitOutcome, SessionError>
): Effect.Effect<CommitOutcome, SessionError> =>
  Telemetry.traced("session.commit", ({ annotate, count, now }) =>
    body(now, (outcome, refreshed) => {
      const label: CommitLabel = refreshed && outcome._tag === "Written" ? "refreshed" : labelOf[outcome._tag]
      annotate(Telemetry.Attribute.outcome, label)
      count(committedBy[label], 1)
      return outcome
    }, count))

/** An owner as events name it: its id and handle, never its label. */
export const eventOwner = (owner: { readonly id: string; readonly handle: string } | undefined) =>
  owner === undefined ? Option.none() : Option.some({ id: owner.id, handle: owner.handle })

/**
 * What a session's life tells metrics and events, for a manager whose sessions are named by the
 * key `keyOf` gives a token.
 */
export const lifecycle = (events: InternalEvents.Hub | undefined, keyOf: (token: string) => string) => ({
  /** A session stored under a new key: a new session, or a renewal of the one under `renewedFrom`. */
  created: (
    key: string,
    renewedFrom: string | undefined,
    state: InternalSession.SessionState,
    now: number,
    count: Telemetry.Traced["count"]
  ): void => {
    const owner = eventOwner(state.owner)
    if (renewedFrom === undefined) {
      events?.publish(() =>
        SessionEvents.SessionEvent.Created({ at: DateTime.unsafeMake(now), ref: InternalEvents.refOf(key), owner })
      )
      count(SessionMetrics.created, 1)
      return
    }
    events?.publish(() =>
      SessionEvents.SessionEvent.Renewed({
        at: DateTime.unsafeMake(now),
        from: InternalEvents.refOf(renewedFrom),
        to: InternalEvents.refOf(key),
        owner
      })
    )
    count(SessionMetrics.renewed, 1)
  },
  destroyed: (key: string, owner: InternalSession.OwnerState | undefined): Effect.Effect<void> =>
    Effect.clockWith((clock) => {
      events?.publish(() =>
        SessionEvents.SessionEvent.Destroyed({
          at: DateTime.unsafeMake(clock.unsafeCurrentTimeMillis()),
          ref: InternalEvents.refOf(key),
          owner: eventOwner(owner)
        })
      )
      return Metric.increment(SessionMetrics.destroyed)
    }),
  ownerChanged: (
    change: "bound" | "unbound",
    state: InternalSession.SessionState,
    owner: InternalSession.OwnerState
  ): Effect.Effect<void> =>
    Effect.clockWith((clock) => {
      // A session not stored yet (a login on a first visit) is named by the key it will have.
      const token = state.token
      if (state.storeKey === undefined && token === undefined) return Effect.void
      events?.publish(() => {
        const at = DateTime.unsafeMake(clock.unsafeCurrentTimeMillis())
        const named = { id: owner.id, handle: owner.handle }
        const ref = InternalEvents.refOf(state.storeKey ?? keyOf(token!))
        return change === "bound"
          ? SessionEvents.SessionEvent.OwnerBound({ at, ref, owner: named })
          : SessionEvents.SessionEvent.OwnerUnbound({ at, ref, owner: named })
      })
      return Effect.void
    })
})

/** Tells events that a load found the session under `key` past its expiry or deadline. */
export const publishExpired = (
  events: InternalEvents.Hub | undefined,
  key: string,
  record: SessionCodec.SessionRecord,
  now: number
): void =>
  events?.publish(() =>
    SessionEvents.SessionEvent.Expired({
      at: DateTime.unsafeMake(now),
      source: "load",
      count: 1,
      ref: Option.some(InternalEvents.refOf(key)),
      owner: eventOwner(record.owner)
    })
  )

/**
 * A stored session that does not decode: the load fails (`onDecodeError: "fail"`), or the
 * warning is logged and `reset` runs (the session is then read as a fresh one).
 */
export const undecodable = <E>(
  options: ResolvedOptions,
  issue: ParseResult.ParseIssue,
  reset: Effect.Effect<void, E>
): Effect.Effect<void, SessionCodecError | E> => {
  const error = new SessionCodecError({ reason: "Decode", detail: describeIssue(issue) })
  if (options.onDecodeError === "fail") return Effect.fail(error)
  return Effect.logWarning("effect-session: a stored session no longer decodes; starting a fresh one", error).pipe(
    Effect.zipRight(reset)
  )
}

/** The idle window in milliseconds, 0 without an idle timeout. */
export const idleMillisOf = (options: ResolvedOptions): number =>
  Option.match(options.idleTimeout, { onNone: () => 0, onSome: Duration.toMillis })

/** When a session written at `now` expires: its deadline, or sooner by the idle timeout. */
export const expiryOf = (state: InternalSession.SessionState, now: number, idleMillis: number): number =>
  idleMillis > 0 ? Math.min(state.deadline, now + idleMillis) : state.deadline

// A session's values between its record (an object) and its state (a `Map`), on every load and
// every write. `new Map(Object.entries(...))` and `Object.fromEntries` go through the iterator
// protocol: three to four times the cost of these loops on a session's few values.

/** The values of a record, as a session's state holds them. */
export const valuesOf = (values: Readonly<Record<string, unknown>>): Map<string, unknown> => {
  const map = new Map<string, unknown>()
  for (const key of Object.keys(values)) map.set(key, values[key])
  return map
}

/** A session's values, as its record holds them: each an own property, `__proto__` included. */
const recordValuesOf = (values: ReadonlyMap<string, unknown>): Record<string, unknown> => {
  const record: Record<string, unknown> = {}
  values.forEach((value, key) => {
    // Assigning `__proto__` would set the prototype: it is defined, as `Object.fromEntries` does.
    if (key === "__proto__") {
      Object.defineProperty(record, key, { value, enumerable: true, writable: true, configurable: true })
    } else {
      record[key] = value
    }
  })
  return record
}

/** The session a loaded record describes, in the `Unmodified` state. */
export const fromRecord = (
  context: InternalSession.SessionContext,
  idleMillis: number,
  loaded: {
    readonly token: string | undefined
    /** The token as the client sent it, when it is `token`. */
    readonly sent?: Redacted.Redacted<string> | undefined
    readonly key: string
    readonly record: SessionCodec.SessionRecord
    readonly expiresAt: number
    readonly now: number
  }
): Session => {
  const { expiresAt, now, record } = loaded
  return InternalSession.make({
    token: loaded.token,
    sent: loaded.sent,
    storeKey: loaded.key,
    createdAt: record.createdAt,
    deadline: record.deadline,
    rememberMe: record.rememberMe,
    owner: record.owner === undefined
      ? undefined
      : { id: record.owner.id, handle: record.owner.handle, label: record.owner.label },
    values: valuesOf(record.values),
    status: "Unmodified",
    // The expiry keeps the idle clock: refresh it once half of the window has passed (and only
    // while the deadline is further away than the idle expiry).
    touch: idleMillis > 0 && expiresAt < record.deadline && expiresAt - now <= idleMillis / 2
  }, context)
}

// UTF-8 length without encoding: the limit is checked on every write.
const utf8Length = (text: string): number => {
  let length = text.length
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i)
    if (code >= 0x80) length += code >= 0x800 && (code < 0xd800 || code > 0xdfff) ? 2 : 1
  }
  return length
}

/**
 * The session as its codec writes it, stamped with the time of the write; a session over
 * `maxKeys` or `maxSize`, or one the codec cannot encode, is refused with its typed error.
 */
export const encode = (
  options: ResolvedOptions,
  state: InternalSession.SessionState,
  now: number
): Either.Either<string, SessionCodecError | SessionLimitError> => {
  if (state.values.size > options.maxKeys) {
    return Either.left(new SessionLimitError({ reason: "Keys", limit: options.maxKeys, actual: state.values.size }))
  }
  const encoded = options.codec.encode(recordOf(state, now))
  if (Either.isLeft(encoded)) {
    return Either.left(new SessionCodecError({ reason: "Encode", detail: describeIssue(encoded.left.issue) }))
  }
  // No UTF-16 unit takes more than three bytes in UTF-8: a text that short is under the limit uncounted.
  if (encoded.right.length * 3 > options.maxSize) {
    const size = utf8Length(encoded.right)
    if (size > options.maxSize) {
      return Either.left(new SessionLimitError({ reason: "Size", limit: options.maxSize, actual: size }))
    }
  }
  return Either.right(encoded.right)
}

// Not a conditional spread: that costs more than the rest of building the record.
const recordOf = (state: InternalSession.SessionState, now: number): SessionCodec.SessionRecord => {
  const values = recordValuesOf(state.values)
  const owner = state.owner
  if (owner === undefined) {
    return state.rememberMe === undefined
      ? { createdAt: state.createdAt, deadline: state.deadline, values }
      : { createdAt: state.createdAt, deadline: state.deadline, rememberMe: state.rememberMe, values }
  }
  const stamped = owner.label === undefined
    ? { id: owner.id, handle: owner.handle, seenAt: now }
    : { id: owner.id, handle: owner.handle, label: owner.label, seenAt: now }
  return state.rememberMe === undefined
    ? { createdAt: state.createdAt, deadline: state.deadline, owner: stamped, values }
    : { createdAt: state.createdAt, deadline: state.deadline, rememberMe: state.rememberMe, owner: stamped, values }
}
