/**
 * The backend contract every session store implements.
 *
 * A store keeps opaque, already-encoded session payloads under a key (the session token, or
 * its SHA-256 when `hashTokenInStore` is on) with an absolute expiry. It knows nothing about
 * cookies, codecs or session semantics: the `SessionManager` does all of that on top of it.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import type * as Effect from "effect/Effect"
import type * as Option from "effect/Option"
import type * as Stream from "effect/Stream"

/**
 * How a commit must treat the key.
 *
 * - `"create"`: a session that has never been stored under this key (a fresh random token).
 *   Write it unconditionally (an upsert is fine: the token is new).
 * - `"update"`: a session that was loaded from the store under this key. Write it only if the
 *   key is still present and unexpired, atomically: if a concurrent request destroyed it
 *   (logout) or renewed it away meanwhile, the write must not re-create it.
 *
 * @since 0.1.0
 * @category models
 */
export type CommitMode = "create" | "update"

/**
 * The outcome of a commit: `"written"`, or `"gone"` when an `"update"` found no live entry
 * under the key and wrote nothing.
 *
 * @since 0.1.0
 * @category models
 */
export type CommitResult = "written" | "gone"

/**
 * A live entry: its payload and its expiry (epoch milliseconds).
 *
 * @since 0.2.0
 * @category models
 */
export interface StoredEntry {
  readonly data: string
  readonly expiresAt: number
}

/**
 * A stored session as handed out by enumeration.
 *
 * @since 0.1.0
 * @category models
 */
export interface StoredSession extends StoredEntry {
  readonly key: string
}

/**
 * A session store.
 *
 * Every method fails with `SessionStoreError` for system failures only (connection lost,
 * timeout, I/O error); "not found" is never an error.
 *
 * @since 0.1.0
 * @category models
 */
export interface SessionStore {
  /**
   * The payload stored under `key` and its expiry. `Option.none()` when the key is unknown **or
   * expired** (an entry whose expiry is at or before the current `Clock` time must never be
   * returned, even if it has not been swept yet) or malformed for this backend. The expiry is
   * the one last given to `commit` or `touch`.
   */
  readonly find: (key: string) => Effect.Effect<Option.Option<StoredEntry>, SessionStoreError>

  /**
   * Store `data` under `key` until `expiresAt` (epoch milliseconds, from `Clock`), replacing
   * any previous payload and expiry. See `CommitMode` for the difference between `"create"` and
   * `"update"`; an `"update"` whose key is absent or expired writes nothing and succeeds with
   * `"gone"`.
   */
  readonly commit: (
    key: string,
    data: string,
    expiresAt: number,
    mode: CommitMode
  ) => Effect.Effect<CommitResult, SessionStoreError>

  /**
   * Atomically read and remove the live entry under `key`: the entry if it was there and
   * unexpired, `Option.none()` otherwise (nothing removed). Of concurrent `take`s, `delete`s and
   * `"update"` commits of one key, at most one `take` gets the entry, and an update that runs
   * after it answers `"gone"`. Renewal uses it: whoever takes the entry owns the session, so a
   * renewal racing a logout either moves the session or finds it gone — never brings it back.
   */
  readonly take: (key: string) => Effect.Effect<Option.Option<StoredEntry>, SessionStoreError>

  /**
   * Move the expiry of the live entry under `key` to `expiresAt`, leaving its payload as it is,
   * atomically: `"gone"` (and nothing written) when the key is absent or expired. An idle
   * refresh uses it, so a request that only read the session never rewrites the data it loaded
   * over a concurrent change. `find` then reports the new expiry.
   */
  readonly touch: (key: string, expiresAt: number) => Effect.Effect<CommitResult, SessionStoreError>

  /**
   * Remove `key`. A missing key is a no-op, not an error.
   */
  readonly delete: (key: string) => Effect.Effect<void, SessionStoreError>

  /**
   * Every live (unexpired) session as a stream, or `undefined` when the backend cannot
   * enumerate its keys. Stores that can enumerate must page through the backend (cursors,
   * `SCAN`, batches) rather than load or lock everything at once, and never emit expired entries.
   */
  readonly all: Stream.Stream<StoredSession, SessionStoreError> | undefined

  /**
   * The index of sessions by owner (see `OwnerIndex`), or `undefined` when the backend keeps
   * none: the manager's owner operations then fail with `SessionStoreError` (reason `Unsupported`).
   */
  readonly owners: OwnerIndex | undefined
}

/**
 * One session of an owner as the index knows it: its handle and the store key it lives under.
 *
 * @since 0.2.0
 * @category models
 */
export interface OwnerLink {
  readonly handle: string
  readonly key: string
}

/**
 * What `OwnerIndex.link` did: `"linked"`, or `"revoked"` when the handle was revoked and nothing
 * was written.
 *
 * @since 0.2.0
 * @category models
 */
export type LinkResult = "linked" | "revoked"

/**
 * An index from an owner id (a user id) to that owner's sessions, so that listing and revoking
 * them costs O(sessions of the owner), never a scan of every session.
 *
 * Each of an owner's sessions has a `handle`: a random, non-secret id that stays the same when
 * the session's token (and so its store key) is renewed. The index maps each handle to the key
 * the session lives under, or, once the handle is revoked, to a tombstone kept until the
 * handle's `until` (no session outlives its absolute cap, so no renewal can come later).
 *
 * The index and the sessions are written in separate steps, so the index may name keys whose
 * session is gone (destroyed, expired, swept): the manager checks every key it lists and unlinks
 * the dead ones. It never misses a live session: the manager links a key before it stores a
 * session under it and links it again after (a revocation between the two is seen by the second
 * link, which then answers `"revoked"`). Each method is atomic per owner; an entry past its
 * `until` (by the `Clock`) is never returned and may be dropped at any time.
 *
 * @since 0.2.0
 * @category models
 */
export interface OwnerIndex {
  /**
   * Points `handle` of `owner` at `key` until `until` (epoch milliseconds), replacing the key it
   * pointed at; answers `"revoked"` and writes nothing when the handle is revoked.
   */
  readonly link: (
    owner: string,
    handle: string,
    key: string,
    until: number
  ) => Effect.Effect<LinkResult, SessionStoreError>

  /** The owner's linked (not revoked, not past `until`) handles and their keys, in no set order. */
  readonly list: (owner: string) => Effect.Effect<ReadonlyArray<OwnerLink>, SessionStoreError>

  /**
   * Revokes handles of `owner` in one step: the given ones, or with `"all"` every linked one but
   * `except`. Each revoked handle becomes a tombstone until its `until`; the keys they pointed at
   * are returned (the manager deletes those sessions). Unknown handles are ignored.
   */
  readonly revoke: (
    owner: string,
    handles: ReadonlyArray<string> | "all",
    except?: string | undefined
  ) => Effect.Effect<ReadonlyArray<string>, SessionStoreError>

  /** Removes `handle` of `owner` if it still points at `key` (a tombstone or another key stays). */
  readonly unlink: (owner: string, handle: string, key: string) => Effect.Effect<void, SessionStoreError>
}

/**
 * The store used by a `SessionManager` built in its scope.
 *
 * @since 0.1.0
 * @category tags
 */
export const SessionStore: Context.Tag<SessionStore, SessionStore> = Context.GenericTag<SessionStore>(
  "effect-session/SessionStore"
)

/**
 * Why a store operation failed.
 *
 * - `Unavailable`: the backend could not be reached (connection refused, closed, server down).
 * - `Timeout`: the backend did not answer in time.
 * - `Unsupported`: the operation is not available on this backend (for example enumeration).
 * - `Unknown`: anything else the backend reported.
 *
 * @since 0.1.0
 * @category errors
 */
export type SessionStoreErrorReason = "Unavailable" | "Timeout" | "Unsupported" | "Unknown"

/**
 * A system failure of a store. Carries the operation that failed and the underlying cause,
 * which the middleware logs but never sends to a client.
 *
 * @since 0.1.0
 * @category errors
 */
export class SessionStoreError extends Data.TaggedError("SessionStoreError")<{
  readonly reason: SessionStoreErrorReason
  readonly operation:
    | "find"
    | "commit"
    | "take"
    | "touch"
    | "delete"
    | "all"
    | "sweep"
    | "open"
    | "link"
    | "list"
    | "revoke"
    | "unlink"
  readonly cause?: unknown
  readonly detail?: string
}> {
  /**
   * @since 0.1.0
   */
  override get message(): string {
    return `Session store ${this.operation} failed (${this.reason})${
      this.detail === undefined ? "" : `: ${this.detail}`
    }`
  }
}
