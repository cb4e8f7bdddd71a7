/**
 * One keyed mutex, used by the in-process `SessionLock` and by the stores that serialise work
 * per key in process. Fair: waiters on a key are served first come, first served, and a released
 * key is handed straight to the next waiter (never free in between). A free key is taken without
 * a fiber or a timer. A key nobody holds or waits for is forgotten (after `idleTimeToLive`), so
 * memory follows the keys in use, not every key ever seen.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Scope from "effect/Scope"

export interface KeyedMutex {
  /**
   * Takes the lock on `key` until the surrounding `Scope` closes. The wait is interruptible even
   * from an uninterruptible region; with `timeout`, it fails with `onTimeout()` once that has
   * passed. Once taken, the release is registered before anything can interrupt.
   */
  readonly acquire: <E>(
    key: string,
    timeout?: { readonly duration: Duration.Duration; readonly onTimeout: () => E }
  ) => Effect.Effect<void, E, Scope.Scope>
  /** Runs `self` holding the lock on `key` (waiting as long as it takes). */
  readonly withLock: (key: string) => <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
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

export const make = (
  options: { readonly idleTimeToLive?: Duration.Duration | undefined } = {}
): Effect.Effect<KeyedMutex, never, Scope.Scope> =>
  Effect.map(Effect.scope, (scope) => {
    const idleMillis = Duration.toMillis(options.idleTimeToLive ?? Duration.zero)
    const entries = new Map<string, Entry>()

    const evictIfIdle = (key: string, entry: Entry, generation: number) => {
      if (entry.generation === generation && !entry.held && entry.waiters.size === 0 && entries.get(key) === entry) {
        entries.delete(key)
      }
    }

    const release = (key: string, entry: Entry): Effect.Effect<void> =>
      Effect.suspend(() => {
        for (const next of entry.waiters) {
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

    /**
     * Takes the lock (uninterruptibly, but for the wait itself) and returns its release; a waiter
     * handed the lock just as its wait ended passes it on.
     */
    const take = <E>(
      key: string,
      restore: <A, E2, R>(self: Effect.Effect<A, E2, R>) => Effect.Effect<A, E2, R>,
      timeout: { readonly duration: Duration.Duration; readonly onTimeout: () => E } | undefined
    ): Effect.Effect<Effect.Effect<void>, E> =>
      Effect.suspend(() => {
        let entry = entries.get(key)
        if (entry === undefined) {
          entry = { held: false, waiters: new Set(), generation: 0 }
          entries.set(key, entry)
        }
        const owned = entry
        owned.generation++
        const releaseOwned = release(key, owned)
        if (!owned.held) {
          owned.held = true
          return Effect.succeed(releaseOwned)
        }
        const waiter: Waiter = { granted: false, resume: undefined }
        const wait = restore(Effect.interruptible(Effect.async<void>((resume) => {
          waiter.resume = resume
          owned.waiters.add(waiter)
          return Effect.sync(() => {
            owned.waiters.delete(waiter)
          })
        })))
        const waited = timeout === undefined ? wait : Effect.timeoutFail(wait, timeout)
        return waited.pipe(
          Effect.onExit((exit) => Exit.isFailure(exit) && waiter.granted ? releaseOwned : Effect.void),
          Effect.as(releaseOwned)
        )
      })

    return {
      acquire: (key, timeout) =>
        Effect.uninterruptibleMask((restore) =>
          Effect.flatMap(take(key, restore, timeout), (releaseOwned) => Effect.addFinalizer(() => releaseOwned))
        ),
      withLock: (key) => (self) =>
        Effect.uninterruptibleMask((restore) =>
          Effect.flatMap(take(key, restore, undefined), (releaseOwned) => Effect.ensuring(restore(self), releaseOwned))
        ),
      size: Effect.sync(() => entries.size)
    }
  })
