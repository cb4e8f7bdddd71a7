/**
 * Helpers the test files of this repository share. The store conformance suite itself is
 * published from `src/testing/StoreConformance.ts` (`effect-session/testing`).
 */
import * as Effect from "effect/Effect"

export { START } from "../src/testing/StoreConformance.js"

/** In CI every backend is required; locally a missing one skips its suite with this message. */
export const requireBackend = (name: string, available: boolean, how: string): string | undefined => {
  if (available) return undefined
  if (process.env.CI === "true") {
    throw new Error(`${name} is required in CI (CI=true) but is not reachable: ${how}`)
  }
  return `${name} is not reachable; ${how}`
}

/**
 * Waits (on the live clock) until `check` holds, for at most about five seconds: only for state
 * a real server changes on its own time (used by `test/StoreTimeouts.test.ts`). Never to wait
 * for `TestClock` sleeps: adjust the clock and wait for the fiber instead.
 */
export const eventually = <E, R>(check: Effect.Effect<boolean, E, R>): Effect.Effect<void, E | Error, R> =>
  Effect.gen(function*() {
    for (let attempt = 0; attempt < 500; attempt++) {
      if (yield* check) return
      yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 10)))
    }
    return yield* Effect.fail(new Error("condition not reached in time"))
  })
