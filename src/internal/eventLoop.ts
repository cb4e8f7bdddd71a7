import * as Effect from "effect/Effect"

/**
 * Gives the event loop a turn (a macrotask, unlike `Effect.yieldNow`, which may resume in a
 * microtask): long loops call it between batches so I/O is never held up for long.
 */
export const yieldToEventLoop: Effect.Effect<void> = Effect.async<void>((resume) => {
  const handle = setImmediate(() => resume(Effect.void))
  return Effect.sync(() => clearImmediate(handle))
})
