/**
 * Per-session locks: hold a lock on a session from load to commit, so that two overlapping
 * requests on one session cannot overwrite each other's changes.
 *
 * Without a lock (the default, and scs's behaviour) the last request to commit wins: each
 * request loads the whole session, and a slower request's commit replaces the changes a faster
 * one made meanwhile. With a lock, requests on the same session run their load-handler-commit
 * one at a time; requests on different sessions never wait for each other.
 *
 * - `layerNone`: no lock (last writer wins).
 * - `layerInProcess`: a keyed mutex in this process (one server process).
 * - `effect-session/SessionLock/Redis`: a lease in Redis (several processes sharing Redis).
 * - `effect-session/SessionLock/Postgres`: a PostgreSQL advisory lock (several processes sharing PostgreSQL).
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import * as KeyedMutex from "./internal/keyedMutex.js"
import * as InternalLock from "./internal/lock.js"
import * as Options from "./internal/options.js"
import * as Telemetry from "./internal/telemetry.js"
import type { SessionConfigError } from "./SessionConfigError.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface AcquireOptions {
  /**
   * The longest the caller waits for the lock, everything included (a connection to the
   * backend, other waiters in this process, the holder elsewhere). `0`: take it only if it is
   * free. Default `"5 seconds"`. A negative or infinite timeout is a defect (`SessionConfigError`).
   */
  readonly timeout?: Duration.DurationInput | undefined
}

/**
 * A keyed lock service. Every backend keeps this contract, checked by `lockConformance` from
 * `effect-session/testing`:
 *
 * - Mutual exclusion per key: while one scope holds `key`, nobody else (in this process or, for
 *   a shared backend, in any process) takes it. Different keys never wait for each other.
 * - The lock is released when the holder's `Scope` closes, whatever its exit: success, failure,
 *   defect or interruption.
 * - A wait that reaches `timeout` fails with `SessionLockError` (reason `Timeout`) and takes
 *   nothing: the key stays usable. Every wait of the backend (for a connection, for other
 *   waiters, for the holder) counts against that one timeout.
 * - A backend that cannot be reached fails with reason `Unavailable`, without waiting for the
 *   timeout when it knows at once.
 * - The wait is always interruptible, even when called from an uninterruptible region (an HTTP
 *   request whose client went away stops waiting); once the lock is taken, its release is
 *   registered before anything can interrupt.
 * - Fairness is per backend: the in-process lock serves waiters first come, first served; the
 *   Redis and PostgreSQL locks do so within one process and poll across processes.
 *
 * `layerNone` keeps none of the exclusion: its `acquire` never waits.
 */
export interface SessionLock {
  /** Takes the lock on `key` and holds it until the surrounding `Scope` closes (see the contract above). */
  readonly acquire: (key: string, options?: AcquireOptions) => Effect.Effect<void, SessionLockError, Scope.Scope>
}

/**
 * The lock used by `SessionMiddleware` when it is given the `lock` option.
 *
 * @since 0.1.0
 * @category tags
 */
export const SessionLock: Context.Tag<SessionLock, SessionLock> = Context.GenericTag<SessionLock>(
  "effect-session/SessionLock"
)

/**
 * Why a lock could not be taken: `Timeout` (someone else held it for longer than the wait
 * allowed) or `Unavailable` (the lock backend could not be reached).
 *
 * @since 0.1.0
 * @category errors
 */
export type SessionLockErrorReason = "Timeout" | "Unavailable"

/**
 * The lock on a session could not be taken. The key is not part of the message (it may be a
 * session token).
 *
 * @since 0.1.0
 * @category errors
 */
export class SessionLockError extends Data.TaggedError("SessionLockError")<{
  readonly reason: SessionLockErrorReason
  readonly cause?: unknown
  readonly detail?: string
}> {
  /**
   * @since 0.1.0
   */
  override get message(): string {
    return `Session lock not acquired (${this.reason})${this.detail === undefined ? "" : `: ${this.detail}`}`
  }
}

/**
 * No lock at all: `acquire` succeeds at once, even on a key someone holds. The last request to
 * commit a session wins, as in scs.
 *
 * @since 0.1.0
 * @category constructors
 */
export const none: SessionLock = { acquire: () => Effect.void }

/**
 * `none` as a layer: the default behaviour, for code that asks for a `SessionLock`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerNone: Layer.Layer<SessionLock> = Layer.succeed(SessionLock, none)

/**
 * @since 0.1.0
 * @category models
 */
export interface InProcessOptions {
  /**
   * How long the mutex of a key nobody holds or waits for is kept before it is dropped. Default
   * `0`: dropped at once, so memory follows the number of sessions in use right now, never the
   * number of sessions ever seen.
   */
  readonly idleTimeToLive?: Duration.DurationInput | undefined
}

/**
 * The in-process lock, with the number of keys it currently keeps a mutex for.
 *
 * @since 0.1.0
 * @category models
 */
export interface InProcessLock extends SessionLock {
  /** Keys with a mutex in memory: held, waited for, or idle for less than `idleTimeToLive`. */
  readonly size: Effect.Effect<number>
}

/**
 * A keyed mutex in this process. It orders requests in one process only: with several server
 * processes, use the Redis or PostgreSQL lock. Waiters are served first come, first served; a
 * free key is taken without any fiber or timer. Fails with `SessionConfigError` for an invalid
 * `idleTimeToLive`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeInProcess = (
  options: InProcessOptions = {}
): Effect.Effect<InProcessLock, SessionConfigError, Scope.Scope> =>
  Effect.gen(function*() {
    const idleTimeToLive = yield* Options.duration("idleTimeToLive", options.idleTimeToLive, 0, { allowZero: true })
    const mutex = yield* KeyedMutex.make({ idleTimeToLive })
    const acquire: SessionLock["acquire"] = (key, acquireOptions) =>
      Effect.flatMap(
        InternalLock.timeoutOf(acquireOptions),
        (duration) => mutex.acquire(key, { duration, onTimeout: () => InternalLock.timeoutError(duration) })
      )
    return Telemetry.instrumentLock("in_process", { acquire, size: mutex.size })
  })

/**
 * The in-process lock as the `SessionLock`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerInProcess = (options?: InProcessOptions): Layer.Layer<SessionLock, SessionConfigError> =>
  Layer.scoped(SessionLock, makeInProcess(options))
