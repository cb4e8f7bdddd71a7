/**
 * The per-request session: the service handlers `yield*` to read and change session data.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import type * as DateTime from "effect/DateTime"
import type * as Effect from "effect/Effect"
import type * as Option from "effect/Option"
import type * as Redacted from "effect/Redacted"
import type * as Schema from "effect/Schema"
import * as RequestSession from "./internal/requestSession.js"
import type { SessionError } from "./SessionManager.js"
import type { SessionStoreError } from "./SessionStore.js"

/**
 * Where a session stands in this request, as in scs:
 *
 * - `Unmodified`: nothing changed; commit writes nothing and sends no cookie.
 * - `Modified`: something changed; commit writes it and sends the cookie.
 * - `Destroyed`: `destroy` ran; the store entry is gone and the client gets a deletion cookie.
 *
 * @since 0.1.0
 * @category models
 */
export type SessionStatus = "Unmodified" | "Modified" | "Destroyed"

/**
 * Any JSON value: what an untyped `put` accepts.
 *
 * @since 0.1.0
 * @category models
 */
export type Json = null | boolean | number | string | ReadonlyArray<Json> | { readonly [key: string]: Json }

/**
 * A typed session key: a name and the `Schema` its value is encoded with on `put` and decoded
 * with on `get`, so dates, bytes, bigints and Schema classes round-trip exactly.
 *
 * @since 0.1.0
 * @category models
 */
export interface SessionKey<A, I = unknown> {
  readonly name: string
  readonly schema: Schema.Schema<A, I>
}

/**
 * Makes a typed key. The schema must not need any service (its context is `never`).
 *
 * ```ts
 * const UserId = Session.key("userId", Schema.Number)
 * const LoginAt = Session.key("loginAt", Schema.DateTimeUtc)
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const key = <A, I>(name: string, schema: Schema.Schema<A, I>): SessionKey<A, I> => ({ name, schema })

/**
 * A key by name, or a typed key (only its name is used).
 *
 * @since 0.1.0
 * @category models
 */
export type AnyKey = string | { readonly name: string }

/**
 * A value could not be encoded on `put` (`Encode`) or decoded on `get`/`pop` (`Decode`, only with
 * the manager's `onValueDecodeError: "fail"`) with its key's schema, or its key cannot be stored
 * (`Key`: `__proto__`), or an owner id or label given to `bindOwner` is empty or too long
 * (`Owner`). `detail` says where the value failed, never what it was: the value is session data.
 *
 * @since 0.1.0
 * @category errors
 */
export class SessionValueError extends Data.TaggedError("SessionValueError")<{
  readonly reason: "Encode" | "Decode" | "Key" | "Owner"
  readonly key: string
  readonly detail: string
}> {
  /**
   * @since 0.1.0
   */
  override get message(): string {
    if (this.reason === "Owner") return `Could not bind the session's owner: ${this.detail}`
    const verb = this.reason === "Encode" ? "encode" : this.reason === "Decode" ? "decode" : "store"
    return `Could not ${verb} session value "${this.key}": ${this.detail}`
  }
}

/**
 * How `mergeSession` combines values present in both sessions.
 *
 * @since 0.2.0
 * @category models
 */
export interface MergeOptions {
  /** Which session's value wins for a key both hold. Default `"this"`: the other session only adds keys. */
  readonly prefer?: "this" | "other" | undefined
}

/**
 * @since 0.2.0
 * @category models
 */
export interface BindOwnerOptions {
  /**
   * A short text for the owner's device list (at most 256 characters), such as a summary of the
   * user agent at login. The library records nothing about the client on its own.
   */
  readonly label?: string | undefined
}

/**
 * @since 0.2.0
 * @category models
 */
export interface RevokeOptions {
  /** Keep this request's own session ("log out my other devices"). Default `false`. */
  readonly keepCurrent?: boolean | undefined
}

/**
 * One of an owner's sessions, as a "your devices" page shows it. Nothing in it is secret: the
 * `handle` is a random id of its own, from which no token or store key can be learnt.
 *
 * - `handle`: stable for the session's life (renewal keeps it); pass it to revoke the session.
 * - `label`: the label given at `bindOwner`.
 * - `createdAt`: when the session was created (before the login, if it was bound later).
 * - `lastActiveAt`: when the session was last written or, with an idle timeout, last refreshed
 *   (a refresh happens once half of the idle window has passed, so it is exact to that much).
 * - `expiresAt`: when it expires if unused (its idle expiry, or its deadline).
 * - `current`: whether it is the session of the request that asked.
 *
 * @since 0.2.0
 * @category models
 */
export interface OwnerSession {
  readonly handle: string
  readonly label: Option.Option<string>
  readonly createdAt: DateTime.Utc
  readonly lastActiveAt: DateTime.Utc
  readonly expiresAt: DateTime.Utc
  readonly current: boolean
}

/**
 * The operations on one request's session. Every operation is an `Effect`; the ones that touch
 * the store (`destroy`, `renewToken`, `mergeSession`) can fail with `SessionStoreError`.
 *
 * The typed getters (`getString`, `getInt`, ...) follow scs: a missing key or a value of another
 * type gives the type's zero value (`""`, `0`, `false`, empty bytes, the Unix epoch). Use `get`
 * with a `SessionKey` for an `Option` and a typed error instead.
 *
 * @since 0.1.0
 * @category models
 */
export interface Session {
  /** The value under a key: decoded by its schema for a typed key, the stored JSON for a name. */
  readonly get: {
    <A, I>(key: SessionKey<A, I>): Effect.Effect<Option.Option<A>, SessionValueError>
    (key: string): Effect.Effect<Option.Option<unknown>>
  }
  /** Sets a value; the session becomes `Modified`. The key `__proto__` is refused (`Key`). */
  readonly put: {
    <A, I>(key: SessionKey<A, I>, value: A): Effect.Effect<void, SessionValueError>
    (key: string, value: Json): Effect.Effect<void, SessionValueError>
  }
  /** Gets and removes a value in one step (flash messages); `Modified` if it was present. */
  readonly pop: {
    <A, I>(key: SessionKey<A, I>): Effect.Effect<Option.Option<A>, SessionValueError>
    (key: string): Effect.Effect<Option.Option<unknown>>
  }
  /** Removes a value; `Modified` if it was present. */
  readonly remove: (key: AnyKey) => Effect.Effect<void>
  /** Removes every value but keeps the token and deadline; `Modified` if there were values. */
  readonly clear: Effect.Effect<void>
  /**
   * Deletes the session from the store at once and empties it; the client gets a deletion
   * cookie. A later `put` in the same request starts a brand-new session with a new token.
   */
  readonly destroy: Effect.Effect<void, SessionStoreError>
  /** Whether a key holds a value. */
  readonly exists: (key: AnyKey) => Effect.Effect<boolean>
  /** Every key, sorted. */
  readonly keys: Effect.Effect<ReadonlyArray<string>>
  /**
   * Moves the data to a new token (do it on every privilege change, such as login, against
   * session fixation). The stored session is taken from the store atomically and stored again
   * under the new token at once: if a logout or a revocation got there first, the session stays
   * gone (this request's session becomes `Destroyed`). The deadline moves to `lifetime` from now,
   * never past the manager's `maxLifetime` from the session's creation.
   */
  readonly renewToken: Effect.Effect<void, SessionError>
  /**
   * Pulls the values of another stored session into this one, takes that session out of the
   * store, and renews this session's token. This session keeps its deadline and cap; by default
   * its own values win (`prefer: "other"` to let the other session's win). A no-op if the other
   * session is not found or is this one. **Never pass a token the client supplied** (a request
   * body, a header): its holder could inject values into this session. Pass a token your server
   * kept, such as the anonymous session's token saved before a login.
   */
  readonly mergeSession: (
    token: Redacted.Redacted<string>,
    options?: MergeOptions
  ) => Effect.Effect<void, SessionError>
  /** The owner the session is bound to (`bindOwner`), if any. */
  readonly owner: Effect.Effect<Option.Option<string>>
  /**
   * Binds the session to an owner (a user id) and renews its token in the same step: call it at
   * login. The session joins the owner's index, so that it shows in `ownerSessions` and can be
   * revoked. Binding to the owner it already has keeps its handle (and its label, unless a new one
   * is given). If the session was logged out or revoked meanwhile, the login still succeeds, as a
   * new empty session. Fails with `SessionValueError` (reason `Owner`) for an empty or over-long
   * id or label, and with `SessionStoreError` (reason `Unsupported`) on a store without an owner index.
   */
  readonly bindOwner: (
    owner: string,
    options?: BindOwnerOptions
  ) => Effect.Effect<void, SessionError | SessionValueError>
  /** Removes the session from its owner's index and renews its token: a logout that keeps the session's values. */
  readonly unbindOwner: Effect.Effect<void, SessionError>
  /**
   * The sessions of this session's owner (none when it has no owner), last active first. A session
   * bound in this very request shows from its first commit on (it is stored then).
   */
  readonly ownerSessions: Effect.Effect<ReadonlyArray<OwnerSession>, SessionError>
  /**
   * Revokes one session of this session's owner by its handle: it is deleted at once, on every
   * process sharing the store, and a request of it already in flight cannot bring it back.
   * Revoking this session's own handle destroys it. `true` if a session was revoked.
   */
  readonly revokeOwnerSession: (handle: string) => Effect.Effect<boolean, SessionStoreError>
  /**
   * Revokes every session of this session's owner ("log out everywhere"), this one included
   * unless `keepCurrent`; returns how many were revoked.
   */
  readonly revokeOwnerSessions: (options?: RevokeOptions) => Effect.Effect<number, SessionStoreError>
  /** With `persist: false`, `rememberMe(true)` makes this session's cookie persistent. */
  readonly rememberMe: (remember: boolean) => Effect.Effect<void>
  /** The status in this request. */
  readonly status: Effect.Effect<SessionStatus>
  /**
   * The token the client holds, once it exists (it is created at the first commit of a new
   * session). With sealed cookies (`SessionManager/Sealed`): the sealed value of the last load or
   * commit, none between a `renewToken` and the commit that seals the renewed session.
   */
  readonly token: Effect.Effect<Option.Option<Redacted.Redacted<string>>>
  /** The absolute deadline. */
  readonly deadline: Effect.Effect<DateTime.Utc>
  /**
   * Moves the absolute deadline, at most to the manager's `maxLifetime` from the session's
   * creation (a later date is cut to it); the session becomes `Modified`.
   */
  readonly setDeadline: (deadline: DateTime.DateTime.Input) => Effect.Effect<void>

  readonly getString: (key: string) => Effect.Effect<string>
  readonly getNumber: (key: string) => Effect.Effect<number>
  readonly getInt: (key: string) => Effect.Effect<number>
  readonly getFloat: (key: string) => Effect.Effect<number>
  readonly getBoolean: (key: string) => Effect.Effect<boolean>
  /** Bytes put with a `Schema.Uint8ArrayFromBase64Url` key. */
  readonly getBytes: (key: string) => Effect.Effect<Uint8Array>
  /** A date put with a `Schema.Date`, `Schema.DateFromString` or `Schema.DateTimeUtc` key. */
  readonly getDate: (key: string) => Effect.Effect<Date>

  readonly popString: (key: string) => Effect.Effect<string>
  readonly popNumber: (key: string) => Effect.Effect<number>
  readonly popInt: (key: string) => Effect.Effect<number>
  readonly popFloat: (key: string) => Effect.Effect<number>
  readonly popBoolean: (key: string) => Effect.Effect<boolean>
  readonly popBytes: (key: string) => Effect.Effect<Uint8Array>
  readonly popDate: (key: string) => Effect.Effect<Date>
}

/**
 * Makes a session tag of your own, for a second manager's sessions (`SessionMiddleware.make({
 * session })`), that reaches the request's session the way the default `Session` does:
 *
 * ```ts
 * class AdminSession extends Session.Tag("app/AdminSession")<AdminSession>() {}
 * ```
 *
 * A handler's `yield* AdminSession` puts the tag in its requirements, and only a session
 * middleware for it (or a provided value) removes them, as for any tag. At run time the
 * middleware does not provide it, which in Effect 3 costs every request a copy of the fiber's
 * context and refs: it files the session under the request, and the tag's default value finds it
 * there whenever one of its operations runs. A value provided for the tag is used as provided.
 * Outside any session middleware for it, the tag still has that default value, and its
 * operations die with a message saying so. A tag made with `Context.Tag` works too; the
 * middleware provides it in the context.
 *
 * @since 0.2.0
 * @category tags
 */
export const Tag = <const Id extends string>(id: Id) => <Self>(): Context.TagClass<Self, Id, Session> => {
  const filing = RequestSession.filingFor(id)
  return Context.Reference<Self>()(id, { defaultValue: () => filing.resolver }) as unknown as Context.TagClass<
    Self,
    Id,
    Session
  >
}

/**
 * The current request's session, from `SessionMiddleware` (or provided with a `Session` made by
 * `SessionManager.load`). A tag made by `Tag`: the middleware files the session under the request
 * rather than providing it, and the tag's default value finds it there.
 *
 * @since 0.1.0
 * @category tags
 */
export const Session: Context.Tag<Session, Session> = Tag("effect-session/Session")<Session>()
