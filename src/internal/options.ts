/**
 * The one way options are checked: each reader applies the default and either returns the value
 * or fails with `SessionConfigError` naming the option. Readers return `Either`, which can be
 * `yield*`ed in `Effect.gen` and `Either.gen` alike.
 */
import * as Duration from "effect/Duration"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import { SessionConfigError } from "../SessionConfigError.js"

const fail = (option: string, reason: string) => Either.left(new SessionConfigError({ option, reason }))

/**
 * A finite duration. `positive` (default) rejects zero; `allowZero` accepts `0` as "off". A
 * negative number of milliseconds is rejected rather than read as zero.
 */
export const duration = (
  option: string,
  input: Duration.DurationInput | undefined,
  fallback: Duration.DurationInput,
  { allowZero = false }: { readonly allowZero?: boolean } = {}
): Either.Either<Duration.Duration, SessionConfigError> => {
  const raw = input ?? fallback
  if (typeof raw === "number" && raw < 0) return fail(option, `must not be negative, got ${raw}`)
  const decoded = Duration.decodeUnknown(raw)
  if (Option.isNone(decoded)) return fail(option, `is not a duration: ${JSON.stringify(String(raw))}`)
  const value = decoded.value
  if (!Duration.isFinite(value)) return fail(option, "must be finite")
  if (!allowZero && Duration.lessThanOrEqualTo(value, Duration.zero)) return fail(option, "must be positive")
  return Either.right(value)
}

/** A positive safe integer (a batch size, a count). */
export const positiveInteger = (
  option: string,
  input: number | undefined,
  fallback: number
): Either.Either<number, SessionConfigError> => {
  const value = input ?? fallback
  return Number.isSafeInteger(value) && value > 0
    ? Either.right(value)
    : fail(option, `must be a positive integer, got ${value}`)
}

/** A string matching `pattern`, described by `expected` in the error. */
export const matching = (
  option: string,
  input: string | undefined,
  fallback: string,
  pattern: RegExp,
  expected: string
): Either.Either<string, SessionConfigError> => {
  const value = input ?? fallback
  return pattern.test(value) ? Either.right(value) : fail(option, `must be ${expected}, got ${JSON.stringify(value)}`)
}

/** Fails with `reason` for `option` (for checks that relate several options). */
export const invalid = (option: string, reason: string): Either.Either<never, SessionConfigError> =>
  fail(option, reason)
