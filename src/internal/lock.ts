/**
 * What the lock backends share: the acquire timeout (default and validation), the `Timeout`
 * error, and the poll loop of the backends that wait on a remote lock.
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import type { SessionConfigError } from "../SessionConfigError.js"
import { SessionLockError } from "../SessionLock.js"
import type { AcquireOptions } from "../SessionLock.js"
import * as Options from "./options.js"

/** How long `acquire` waits when the caller gives no `timeout`. */
export const DEFAULT_TIMEOUT: Duration.Duration = Duration.seconds(5)

/**
 * The acquire timeout of `options`, or the default. `0` means "only if free"; a negative or
 * non-finite timeout is a programming error and dies with a `SessionConfigError`.
 */
export const timeoutOf = (options: AcquireOptions | undefined): Effect.Effect<Duration.Duration> =>
  Either.match(Options.duration("timeout", options?.timeout, DEFAULT_TIMEOUT, { allowZero: true }), {
    onLeft: (error) => Effect.die(error),
    onRight: Effect.succeed
  })

/** The error of a wait that ran out (the key is never part of it). */
export const timeoutError = (timeout: Duration.Duration): SessionLockError =>
  new SessionLockError({ reason: "Timeout", detail: `waited ${Duration.format(timeout)}` })

/**
 * Runs `effect` for at most what is left until `deadline` (epoch ms, from `Clock`), failing with a
 * `Timeout` error after that. `effect` runs uninterruptibly and disconnected: a wait that times
 * out or is interrupted returns at once, while `effect` finishes in the background (so an I/O
 * reply is never dropped half-way; the caller cleans up after a failure).
 */
export const withinDeadline = <A, E, R>(
  effect: Effect.Effect<A, E, R>,
  deadline: number,
  timeout: Duration.Duration
): Effect.Effect<A, E | SessionLockError, R> =>
  Effect.flatMap(Clock.currentTimeMillis, (now) =>
    Effect.uninterruptible(effect).pipe(
      Effect.disconnect,
      Effect.timeoutFail({ duration: Math.max(0, deadline - now), onTimeout: () => timeoutError(timeout) })
    ))

/**
 * Runs `attempt` until it answers `true`, sleeping between attempts with capped exponential
 * backoff and jitter, and fails with a `Timeout` `SessionLockError` once `deadline` (epoch ms,
 * from `Clock`) has passed. Each attempt is bounded by the deadline too (a command queued while
 * the backend is unreachable must not outlive the wait); the whole loop is interruptible.
 */
export const pollUntil = <E, R>(
  attempt: Effect.Effect<boolean, E, R>,
  options: {
    readonly deadline: number
    readonly timeout: Duration.Duration
    readonly initialDelayMillis: number
    readonly maxDelayMillis: number
  }
): Effect.Effect<void, E | SessionLockError, R> =>
  Effect.gen(function*() {
    let delay = options.initialDelayMillis
    while (true) {
      // Even a zero timeout gets one attempt: "take it if it is free".
      const now = yield* Clock.currentTimeMillis
      const taken = yield* withinDeadline(attempt, Math.max(options.deadline, now + 1), options.timeout)
      if (taken) return
      const left = options.deadline - (yield* Clock.currentTimeMillis)
      if (left <= 0) return yield* timeoutError(options.timeout)
      // Jitter keeps many waiters from polling in lock step.
      const sleep = Math.max(1, Math.min(left, Math.round(delay / 2 + Math.random() * delay / 2)))
      yield* Effect.sleep(sleep)
      delay = Math.min(options.maxDelayMillis, delay * 2)
    }
  })

/** The poll intervals shared by the Redis and PostgreSQL locks, validated. */
export const pollIntervals = (
  options: {
    readonly pollInterval?: Duration.DurationInput | undefined
    readonly maxPollInterval?: Duration.DurationInput | undefined
  }
): Either.Either<{ readonly initialDelayMillis: number; readonly maxDelayMillis: number }, SessionConfigError> =>
  Either.gen(function*() {
    const initial = yield* Options.duration("pollInterval", options.pollInterval, "5 millis")
    const max = yield* Options.duration("maxPollInterval", options.maxPollInterval, "100 millis")
    if (Duration.lessThan(max, initial)) {
      return yield* Options.invalid("maxPollInterval", "must not be shorter than pollInterval")
    }
    return { initialDelayMillis: Duration.toMillis(initial), maxDelayMillis: Duration.toMillis(max) }
  })
