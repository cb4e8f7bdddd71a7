import * as Effect from "effect/Effect"

// `setImmediate` where the runtime has it (Node, Bun): `setTimeout(0)` is clamped to 1 ms there.
// Elsewhere (browsers' workers, Deno, edge runtimes) a zero timeout is the macrotask there is.
const schedule: (run: () => void) => () => void = typeof globalThis.setImmediate === "function"
  ? (run) => {
    const handle = globalThis.setImmediate(run)
    return () => globalThis.clearImmediate(handle)
  }
  : (run) => {
    const handle = globalThis.setTimeout(run, 0)
    return () => globalThis.clearTimeout(handle)
  }

/**
 * Gives the event loop a turn (a macrotask, unlike `Effect.yieldNow`, which may resume in a
 * microtask): long loops call it between batches so I/O is never held up for long.
 */
export const yieldToEventLoop: Effect.Effect<void> = Effect.async<void>((resume) => {
  const cancel = schedule(() => resume(Effect.void))
  return Effect.sync(cancel)
})
