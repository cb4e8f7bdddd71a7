/**
 * The one background sweep, for the stores that keep expired entries until something removes
 * them (memory, SQL, LMDB, LevelDB): a fiber in the store's scope that runs the store's sweep
 * every `interval`, logs a failure and carries on; and what every sweep reports (`observe`).
 */
import * as DateTime from "effect/DateTime"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import * as SessionEvents from "../SessionEvents.js"
import * as SessionMetrics from "../SessionMetrics.js"
import * as InternalEvents from "./events.js"
import * as Telemetry from "./telemetry.js"

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
  sweep: Effect.Effect<number, E>
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

const swept = Telemetry.tagged(SessionMetrics.expired, { source: "sweep" })

/**
 * `sweep` (which answers how many expired sessions it removed) under a `session.sweep` span, its
 * count added to `SessionMetrics.expired` and, when `SessionEvents` is in the context the store is
 * built in, published as an `Expired` event. Every sweep of a store goes through it: the
 * background one, and those a store runs on demand.
 */
export const observe = <E>(
  system: string,
  sweep: Effect.Effect<number, E>
): Effect.Effect<Effect.Effect<number, E>> =>
  Effect.map(
    InternalEvents.hub,
    (hub) =>
      Telemetry.traced("session.sweep", ({ annotate, count: add }) =>
        Effect.flatMap(sweep, (count) => {
          annotate(Telemetry.Attribute.swept, count)
          if (count === 0) return Effect.succeed(0)
          return Effect.clockWith((clock) => {
            hub?.publish(() =>
              SessionEvents.SessionEvent.Expired({
                at: DateTime.unsafeMake(clock.unsafeCurrentTimeMillis()),
                source: "sweep",
                count,
                ref: Option.none(),
                owner: Option.none()
              })
            )
            add(swept, count)
            return Effect.succeed(count)
          })
        }), { attributes: { "db.system.name": system } })
  )
