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
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"

/**
 * @since 0.1.0
 * @category models
 */
export interface AcquireOptions {
  /** The longest the caller waits for the lock. Default `"5 seconds"` (`DEFAULT_TIMEOUT`). */
  readonly timeout?: Duration.DurationInput | undefined
}

/**
 * A keyed lock service.
 *
 * @since 0.1.0
 * @category models
 */
export interface SessionLock {
  /**
   * Takes the lock on `key` and holds it until the surrounding `Scope` closes (whatever the
   * scope's exit: success, failure, defect or interruption). Waits at most `timeout`, then fails
   * with `SessionLockError` (reason `Timeout`); a backend that cannot be reached fails with
   * reason `Unavailable`. The wait is always interruptible, even when called from an
   * uninterruptible region (an HTTP request whose client went away stops waiting); once the
   * lock is taken, its release is registered before anything can interrupt.
   */
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
 * How long `acquire` waits by default.
 *
 * @since 0.1.0
 * @category constants
 */
export const DEFAULT_TIMEOUT: Duration.Duration = Duration.seconds(5)

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
 * The timeout of `options`, or the default, in milliseconds.
 *
 * @since 0.1.0
 * @category utils
 */
export const timeoutMillis = (options?: AcquireOptions): number =>
  Duration.toMillis(Duration.decode(options?.timeout ?? DEFAULT_TIMEOUT))

/**
 * No lock at all: `acquire` succeeds at once. The last request to commit a session wins, as in scs.
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

interface Waiter {
  /** Set when the lock was handed to this waiter (it then owns it, even if it stops waiting). */
  granted: boolean
  resume: ((effect: Effect.Effect<void>) => void) | undefined
}

interface Entry {
  held: boolean
  /** First come, first served (a `Set` iterates in insertion order). */
  readonly waiters: Set<Waiter>
  /** Bumped on every acquisition, so a pending idle eviction knows it is stale. */
  generation: number
}

/**
 * A keyed mutex in this process. It orders requests in one process only: with several server
 * processes, use the Redis or PostgreSQL lock. Waiters are served first come, first served; a
 * free key is taken without any fiber or timer.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeInProcess = (options: InProcessOptions = {}): Effect.Effect<InProcessLock, never, Scope.Scope> =>
  Effect.gen(function*() {
    const scope = yield* Effect.scope
    const idleMillis = Duration.toMillis(Duration.decode(options.idleTimeToLive ?? Duration.zero))
    const entries = new Map<string, Entry>()

    const evictIfIdle = (key: string, entry: Entry, generation: number) => {
      if (entry.generation === generation && !entry.held && entry.waiters.size === 0 && entries.get(key) === entry) {
        entries.delete(key)
      }
    }

    const release = (key: string, entry: Entry): Effect.Effect<void> =>
      Effect.suspend(() => {
        for (const next of entry.waiters) {
          // Hand the lock over directly: it is never free in between.
          entry.waiters.delete(next)
          next.granted = true
          next.resume?.(Effect.void)
          return Effect.void
        }
        entry.held = false
        const generation = entry.generation
        if (idleMillis <= 0) {
          evictIfIdle(key, entry, generation)
          return Effect.void
        }
        return Effect.sleep(idleMillis).pipe(
          Effect.zipRight(Effect.sync(() => evictIfIdle(key, entry, generation))),
          Effect.forkIn(scope),
          Effect.asVoid
        )
      })

    const acquire: SessionLock["acquire"] = (key, acquireOptions) =>
      Effect.uninterruptibleMask((restore) =>
        Effect.suspend(() => {
          let entry = entries.get(key)
          if (entry === undefined) {
            entry = { held: false, waiters: new Set(), generation: 0 }
            entries.set(key, entry)
          }
          const owned = entry
          owned.generation++
          if (!owned.held) {
            owned.held = true
            return Effect.addFinalizer(() => release(key, owned))
          }
          const timeout = timeoutMillis(acquireOptions)
          const waiter: Waiter = { granted: false, resume: undefined }
          const wait = Effect.async<void>((resume) => {
            waiter.resume = resume
            owned.waiters.add(waiter)
            return Effect.sync(() => {
              owned.waiters.delete(waiter)
            })
          })
          return restore(Effect.interruptible(wait)).pipe(
            Effect.timeoutFail({
              duration: timeout,
              onTimeout: () =>
                new SessionLockError({
                  reason: "Timeout",
                  detail: `waited ${Duration.format(Duration.millis(timeout))}`
                })
            }),
            // Handed the lock just as the wait timed out or was interrupted: pass it on.
            Effect.onExit((exit) => Exit.isFailure(exit) && waiter.granted ? release(key, owned) : Effect.void),
            Effect.zipRight(Effect.addFinalizer(() => release(key, owned)))
          )
        })
      )

    return { acquire, size: Effect.sync(() => entries.size) }
  })

/**
 * The in-process lock as the `SessionLock`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerInProcess = (options?: InProcessOptions): Layer.Layer<SessionLock> =>
  Layer.scoped(SessionLock, makeInProcess(options))
