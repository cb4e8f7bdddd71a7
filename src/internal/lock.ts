import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { SessionLockError } from "../SessionLock.js"

/**
 * Runs `attempt` until it answers `true`, sleeping between attempts with capped exponential
 * backoff and jitter, and fails with a `Timeout` `SessionLockError` once `deadline` (epoch ms,
 * from `Clock`) has passed (`timeoutMillis` is the wait it reports). Attempts run uninterruptibly (so a reply is never lost half-way, e.g. a lock
 * taken whose answer was dropped); only the sleeps between them can be interrupted.
 */
export const pollUntil = <E, R>(
  attempt: Effect.Effect<boolean, E, R>,
  options: {
    readonly deadline: number
    readonly timeoutMillis: number
    readonly initialDelayMillis: number
    readonly maxDelayMillis: number
  }
): Effect.Effect<void, E | SessionLockError, R> =>
  Effect.gen(function*() {
    let delay = options.initialDelayMillis
    while (true) {
      if (yield* Effect.uninterruptible(attempt)) return
      const now = yield* Clock.currentTimeMillis
      const left = options.deadline - now
      if (left <= 0) {
        return yield* new SessionLockError({
          reason: "Timeout",
          detail: `waited ${Duration.format(Duration.millis(options.timeoutMillis))}`
        })
      }
      // Jitter keeps many waiters from polling in lock step.
      const sleep = Math.max(1, Math.min(left, Math.round(delay / 2 + Math.random() * delay / 2)))
      yield* Effect.interruptible(Effect.sleep(sleep))
      delay = Math.min(options.maxDelayMillis, delay * 2)
    }
  })
