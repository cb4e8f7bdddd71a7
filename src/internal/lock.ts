import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"

/**
 * Runs `attempt` until it answers `true`, sleeping between attempts with capped exponential
 * backoff and jitter, and fails with `onTimeout()` once `deadline` (epoch ms, from `Clock`)
 * has passed. Attempts run uninterruptibly (so a reply is never lost half-way, e.g. a lock
 * taken whose answer was dropped); only the sleeps between them can be interrupted.
 */
export const pollUntil = <E, R, E2>(
  attempt: Effect.Effect<boolean, E, R>,
  options: {
    readonly deadline: number
    readonly initialDelayMillis: number
    readonly maxDelayMillis: number
    readonly onTimeout: () => E2
  }
): Effect.Effect<void, E | E2, R> =>
  Effect.gen(function*() {
    let delay = options.initialDelayMillis
    while (true) {
      if (yield* Effect.uninterruptible(attempt)) return
      const now = yield* Clock.currentTimeMillis
      const left = options.deadline - now
      if (left <= 0) return yield* Effect.fail(options.onTimeout())
      // Jitter keeps many waiters from polling in lock step.
      const sleep = Math.max(1, Math.min(left, Math.round(delay / 2 + Math.random() * delay / 2)))
      yield* Effect.interruptible(Effect.sleep(sleep))
      delay = Math.min(options.maxDelayMillis, delay * 2)
    }
  })
