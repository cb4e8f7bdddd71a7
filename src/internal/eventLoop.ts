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

/**
 * How much one turn of a loop run by `inTurns` may do: at most `items` items, and at most
 * `millis` of real time, so a step that runs slow (code not yet optimized, a loaded machine)
 * still ends in time.
 */
export interface TurnBudget {
  readonly items: number
  readonly millis: number
}

/**
 * Counts `items` (default 1) more done in this turn and answers whether the turn is over. The
 * clock is read every 64 items: a few nanoseconds an item.
 */
export type Spent = (items?: number) => boolean

/**
 * Runs `step` once per turn of the event loop (the first at once) until it answers `false`: a loop
 * too long for one turn, cut into steps within `budget` that leave the event loop free between them.
 * `step` keeps its place between turns itself and ends a turn when `spent` says so.
 *
 * One effect for the whole loop, so a turn costs a `setImmediate` and no trip through the runtime:
 * `yieldToEventLoop` between batches allocates some 6 KB a turn, garbage that brings
 * young-generation collections, each a pause, into the loop. Real time (`performance.now`), not
 * `Clock`: the budget bounds how long the event loop waits, which a test clock does not measure.
 * Interrupting the effect stops the loop before its next turn.
 */
export const inTurns = (budget: TurnBudget, step: (spent: Spent) => boolean): Effect.Effect<void> =>
  Effect.async<void>((resume) => {
    let counted = 0
    let checked = 0
    let until = 0
    const spent: Spent = (items = 1) => {
      counted += items
      if (counted >= budget.items) return true
      if (counted - checked < 64) return false
      checked = counted
      return performance.now() >= until
    }
    let cancel = (): void => {}
    const turn = (): void => {
      counted = 0
      checked = 0
      until = performance.now() + budget.millis
      let more: boolean
      try {
        more = step(spent)
      } catch (defect) {
        resume(Effect.die(defect))
        return
      }
      if (more) cancel = schedule(turn)
      else resume(Effect.void)
    }
    turn()
    return Effect.sync(() => cancel())
  })
