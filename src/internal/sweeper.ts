/**
 * The one background sweep, for the stores that keep expired entries until something removes
 * them (memory, SQL, LMDB, LevelDB): a fiber in the store's scope that runs the store's sweep
 * every `interval`, logs a failure and carries on.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"

// A real pause (not `Clock`) after each sweep. `TestClock.adjust`/`setTime` wakes a sleeper at
// every instant it skips over and moves on only once every fiber is suspended: a sweeper that
// asks for its next wake-up at once would be woken once per missed interval (a year of minutes
// is half a million sweeps). After this pause the jump is over, `Schedule.fixed` sees that it
// is behind, and sweeps once more instead of catching up run by run.
const SETTLE_MILLIS = 20

const settle: Effect.Effect<void> = Effect.async<void>((resume) => {
  const handle = setTimeout(() => resume(Effect.void), SETTLE_MILLIS)
  return Effect.sync(() => clearTimeout(handle))
})

/**
 * Runs `sweep` every `interval` (not at all when it is zero) until the scope closes. A failed
 * sweep is logged as a warning and retried at the next interval.
 */
export const start = <E>(
  what: string,
  interval: Duration.Duration,
  sweep: Effect.Effect<unknown, E>
): Effect.Effect<void, never, Scope.Scope> =>
  Duration.greaterThan(interval, Duration.zero)
    ? sweep.pipe(
      Effect.catchAllCause((cause) => Effect.logWarning(`effect-session: the ${what} sweep failed`, cause)),
      Effect.zipRight(settle),
      Effect.schedule(Schedule.fixed(interval)),
      Effect.interruptible,
      Effect.forkScoped,
      Effect.asVoid
    )
    : Effect.void
