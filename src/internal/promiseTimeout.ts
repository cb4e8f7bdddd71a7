/**
 * A driver call that returns a promise, bounded by a timeout that needs no interruption: the
 * timer is part of the call's own registration, so it fires inside `@effect/platform`'s
 * uninterruptible request handling too, and costs one timer per call (`Effect.timeout` races two
 * fibers per call, which on the request path is a measurable share of a store round trip).
 */
import * as Effect from "effect/Effect"

export const promiseWithTimeout = <A, E>(
  evaluate: () => Promise<A>,
  options: {
    /** `0` or less: no timeout of this library's (the driver's own may apply). */
    readonly timeoutMillis: number
    readonly onTimeout: () => E
    readonly onError: (cause: unknown) => E
  }
): Effect.Effect<A, E> =>
  Effect.async<A, E>((resume) => {
    let settled = false
    const timer = options.timeoutMillis > 0
      ? setTimeout(() => {
        settled = true
        resume(Effect.fail(options.onTimeout()))
      }, options.timeoutMillis)
      : undefined
    let promise: Promise<A>
    try {
      promise = evaluate()
    } catch (cause) {
      clearTimeout(timer)
      return resume(Effect.fail(options.onError(cause)))
    }
    // A reply after the timeout is dropped (the driver still reads it, so the connection stays in step).
    promise.then(
      (value) => {
        if (settled) return
        settled = true
        clearTimeout(timer)
        resume(Effect.succeed(value))
      },
      (cause) => {
        if (settled) return
        settled = true
        clearTimeout(timer)
        resume(Effect.fail(options.onError(cause)))
      }
    )
    // Interrupted (the client went away): nothing more to wait for.
    return Effect.sync(() => {
      settled = true
      clearTimeout(timer)
    })
  })
