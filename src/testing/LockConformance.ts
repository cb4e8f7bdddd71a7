/**
 * The conformance suite of the `SessionLock` contract (written on the `SessionLock` interface),
 * for `@effect/vitest`: one call per lock backend, with flags for what the backend promises,
 * instead of a copy of the contract's tests per backend.
 *
 * ```ts
 * import { lockConformance } from "effect-session/testing"
 *
 * lockConformance({ name: "my lock", layer: MyLock.layer(), excludes: true, clock: "live" })
 * ```
 *
 * @since 0.2.0
 */
import { describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as ExecutionStrategy from "effect/ExecutionStrategy"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Scope from "effect/Scope"
import * as TestClock from "effect/TestClock"
import { randomUUID } from "node:crypto"
import { SessionLock } from "../SessionLock.js"
import type { SessionLockError } from "../SessionLock.js"
import * as SpanAudit from "./SpanAudit.js"

/**
 * A lock backend to check, and what it promises.
 *
 * @since 0.2.0
 * @category models
 */
export interface LockConformanceOptions {
  /** Shown in the suite's name. */
  readonly name: string
  /** Provides the lock; built afresh for every test, in the test's scope. */
  readonly layer: Layer.Layer<SessionLock, unknown>
  /**
   * Whether the lock excludes at all. `false` (for `layerNone`) checks the opposite promise:
   * `acquire` never waits, even on a key someone holds.
   */
  readonly excludes: boolean
  /**
   * How the lock waits. `"test"` (default): only through `Clock` and in memory, so the suite
   * drives its timeouts with `TestClock` and never waits for real time. `"live"`: on real I/O
   * (a server), so the suite uses real time with short timeouts.
   */
  readonly clock?: "test" | "live" | undefined
  /** Whether waiters on one key are served first come, first served (checked in one process). Default `false`. */
  readonly fair?: boolean | undefined
  /**
   * A second, independent instance of the same backend: what another server process sees. When
   * given, exclusion and release are also checked across the two. Omit for a process-local lock.
   */
  readonly crossProcess?: Layer.Layer<SessionLock, unknown> | undefined
  /** When set, the suite is skipped and this reason shown (a server that is not reachable). */
  readonly skip?: string | undefined
}

/** Interrupting the waiter must return well before this, and a live waiter must still be parked after it. */
const LIVE_GRACE = "50 millis"
/** How many scheduler turns a test-clock waiter gets to park on its timer. */
const MAX_YIELDS = 10_000

/**
 * Registers the conformance tests of the `SessionLock` contract for `subject`. Every case runs
 * under the span audit (see `SpanAudit`): it fails if a key given to the lock shows in any span.
 *
 * @since 0.2.0
 * @category tests
 */
export const lockConformance = (given: LockConformanceOptions): void => {
  // Every key given to the locks the cases build is recorded for the span audit of that case.
  const crossProcessGiven = given.crossProcess
  const subject: LockConformanceOptions = {
    ...given,
    layer: SpanAudit.recordingLockLayer(given.layer),
    crossProcess: crossProcessGiven === undefined ? undefined : SpanAudit.recordingLockLayer(crossProcessGiven)
  }
  const live = subject.clock === "live"
  const describeOrSkip = subject.skip === undefined ? describe : describe.skip
  // Keys of this run only: a shared backend may hold keys of other runs.
  const run = randomUUID()
  const keyOf = (name: string) => `lock-conformance:${run}:${name}`
  // "Free now": a remote lock needs a round trip, an in-memory one none.
  const quick: Duration.DurationInput = live ? "2 seconds" : 0
  const long: Duration.DurationInput = live ? "10 seconds" : "1 hour"

  const build = (layer: Layer.Layer<SessionLock, unknown>) => Effect.map(Layer.build(layer), Context.get(SessionLock))

  /** How many sleeps are scheduled on the `TestClock` now (none live). */
  const timersNow = live ? Effect.succeed(0) : Effect.map(TestClock.sleeps(), Chunk.size)

  // Each case under the span audit: no lock key in any span made meanwhile.
  const test = (name: string, body: Effect.Effect<void, unknown, Scope.Scope>) =>
    live
      ? it.scopedLive(name, () => SpanAudit.audited(body), 60_000)
      : it.scoped(name, () => SpanAudit.audited(body))

  /** Takes `key` in a scope of its own (closed with the test's at the latest); close it to release. */
  const hold = (lock: SessionLock, key: string) =>
    Effect.gen(function*() {
      const scope = yield* Scope.fork(yield* Effect.scope, ExecutionStrategy.sequential)
      yield* Scope.extend(lock.acquire(key, { timeout: quick }), scope)
      return scope
    })

  /**
   * Returns once the waiters are parked: with `TestClock`, once `timers` sleeps are scheduled (a
   * waiter's timeout); live, after a short grace. Either way the waiter must not be done.
   */
  const parked = <A, E>(waiter: Fiber.Fiber<A, E>, timers: number) =>
    Effect.gen(function*() {
      if (live) {
        yield* Effect.sleep(LIVE_GRACE)
      } else {
        let yields = 0
        while (Chunk.size(yield* TestClock.sleeps()) < timers) {
          if (++yields > MAX_YIELDS) return yield* Effect.dieMessage("the waiter never started its timeout")
          yield* Effect.yieldNow()
        }
      }
      expect(Option.isNone(yield* Fiber.poll(waiter))).toBe(true)
    })

  const expectTimeout = (result: Either.Either<unknown, SessionLockError>) =>
    expect(Either.isLeft(result) ? result.left.reason : "acquired").toBe("Timeout")

  describeOrSkip(`SessionLock conformance: ${subject.name}${subject.skip ? ` (skipped: ${subject.skip})` : ""}`, () => {
    test(
      "different keys never wait for each other",
      Effect.gen(function*() {
        const lock = yield* build(subject.layer)
        yield* hold(lock, keyOf("a"))
        yield* Effect.scoped(lock.acquire(keyOf("b"), { timeout: quick }))
      })
    )

    test(
      "the lock is released whatever the holder's scope ends with: success, failure, defect, interruption",
      Effect.gen(function*() {
        const lock = yield* build(subject.layer)
        const key = keyOf("released")
        yield* Effect.scoped(lock.acquire(key, { timeout: quick }))
        yield* Effect.exit(Effect.scoped(Effect.zipRight(lock.acquire(key, { timeout: quick }), Effect.fail("boom"))))
        yield* Effect.exit(Effect.scoped(Effect.zipRight(lock.acquire(key, { timeout: quick }), Effect.die("defect"))))
        const held = yield* Deferred.make<void>()
        const holding = yield* Effect.fork(
          Effect.scoped(
            lock.acquire(key, { timeout: quick }).pipe(
              Effect.zipRight(Deferred.succeed(held, undefined)),
              Effect.zipRight(Effect.never)
            )
          )
        )
        yield* Deferred.await(held)
        yield* Fiber.interrupt(holding)
        yield* Effect.scoped(lock.acquire(key, { timeout: quick }))
      })
    )

    if (!subject.excludes) {
      test(
        "never waits: acquiring a key that is held succeeds at once",
        Effect.gen(function*() {
          const lock = yield* build(subject.layer)
          const key = keyOf("shared")
          yield* hold(lock, key)
          yield* hold(lock, key)
          // Forked and polled: it must be done without time passing or anyone releasing.
          const third = yield* Effect.fork(Effect.scoped(lock.acquire(key, { timeout: long })))
          let yields = 0
          while (Option.isNone(yield* Fiber.poll(third)) && yields++ < MAX_YIELDS) yield* Effect.yieldNow()
          expect(yield* Fiber.poll(third)).toEqual(Option.some(Exit.void))
        })
      )
      return
    }

    test(
      "mutual exclusion: a second acquire waits until the holder's scope closes",
      Effect.gen(function*() {
        const lock = yield* build(subject.layer)
        const key = keyOf("mutex")
        const holder = yield* hold(lock, key)
        const order: Array<string> = []
        const waiter = yield* Effect.fork(
          Effect.scoped(Effect.zipRight(lock.acquire(key, { timeout: long }), Effect.sync(() => order.push("waiter"))))
        )
        yield* parked(waiter, 1)
        order.push("holder done")
        yield* Scope.close(holder, Exit.void)
        yield* Fiber.join(waiter)
        expect(order).toEqual(["holder done", "waiter"])
      })
    )

    test(
      "a wait past its timeout fails with Timeout and takes nothing: the key stays usable",
      Effect.gen(function*() {
        const lock = yield* build(subject.layer)
        const key = keyOf("timeout")
        const holder = yield* hold(lock, key)
        if (live) {
          const start = yield* Clock.currentTimeMillis
          expectTimeout(yield* Effect.either(Effect.scoped(lock.acquire(key, { timeout: "300 millis" }))))
          const waited = (yield* Clock.currentTimeMillis) - start
          expect(waited).toBeGreaterThanOrEqual(250)
          expect(waited).toBeLessThan(5_000)
        } else {
          const waiter = yield* Effect.fork(Effect.either(Effect.scoped(lock.acquire(key, { timeout: "3 seconds" }))))
          yield* parked(waiter, 1)
          yield* TestClock.adjust("2999 millis")
          expect(Option.isNone(yield* Fiber.poll(waiter))).toBe(true)
          yield* TestClock.adjust("1 millis")
          expectTimeout(yield* Fiber.join(waiter))
        }
        yield* Scope.close(holder, Exit.void)
        yield* Effect.scoped(lock.acquire(key, { timeout: quick }))
      })
    )

    test(
      "the wait is interruptible, even from an uninterruptible region, and takes nothing",
      Effect.gen(function*() {
        const lock = yield* build(subject.layer)
        const key = keyOf("interrupted")
        const holder = yield* hold(lock, key)
        const waiter = yield* Effect.fork(Effect.uninterruptible(Effect.scoped(lock.acquire(key, { timeout: long }))))
        yield* parked(waiter, 1)
        const start = yield* Clock.currentTimeMillis
        const exit = yield* Fiber.interrupt(waiter)
        expect(Exit.isInterrupted(exit)).toBe(true)
        if (live) expect((yield* Clock.currentTimeMillis) - start).toBeLessThan(5_000)
        yield* Scope.close(holder, Exit.void)
        yield* Effect.scoped(lock.acquire(key, { timeout: quick }))
      })
    )

    if (subject.fair === true) {
      test(
        "waiters are served first come, first served",
        Effect.gen(function*() {
          const lock = yield* build(subject.layer)
          const key = keyOf("fair")
          const holder = yield* hold(lock, key)
          const order: Array<number> = []
          const waiters: Array<Fiber.Fiber<void, SessionLockError>> = []
          for (let i = 1; i <= 4; i++) {
            const waiter = yield* Effect.fork(
              Effect.scoped(
                Effect.zipRight(lock.acquire(key, { timeout: long }), Effect.sync(() => void order.push(i)))
              )
            )
            yield* parked(waiter, i)
            waiters.push(waiter)
          }
          yield* Scope.close(holder, Exit.void)
          yield* Fiber.joinAll(waiters)
          expect(order).toEqual([1, 2, 3, 4])
        })
      )
    }

    if (subject.crossProcess !== undefined) {
      const crossProcess = subject.crossProcess
      test(
        "across processes: a key held by one instance is not taken by another until it is released",
        Effect.gen(function*() {
          const first = yield* build(subject.layer)
          const second = yield* build(crossProcess)
          const key = keyOf("across")
          const holder = yield* hold(first, key)
          yield* Effect.scoped(second.acquire(keyOf("across-other"), { timeout: quick }))
          const timers = yield* timersNow
          const waiter = yield* Effect.fork(Effect.either(Effect.scoped(second.acquire(key, { timeout: long }))))
          yield* parked(waiter, timers + 1)
          yield* Scope.close(holder, Exit.void)
          expect(Either.isRight(yield* Fiber.join(waiter))).toBe(true)
          // A wait on the other instance is interruptible too, even from an uninterruptible region.
          const elsewhere = yield* hold(first, key)
          const timersBefore = yield* timersNow
          const gone = yield* Effect.fork(Effect.uninterruptible(Effect.scoped(second.acquire(key, { timeout: long }))))
          yield* parked(gone, timersBefore + 1)
          expect(Exit.isInterrupted(yield* Fiber.interrupt(gone))).toBe(true)
          yield* Scope.close(elsewhere, Exit.void)
          // And the other way round.
          const secondHolder = yield* hold(second, key)
          if (live) {
            expectTimeout(yield* Effect.either(Effect.scoped(first.acquire(key, { timeout: "200 millis" }))))
          } else {
            const timers = yield* timersNow
            const blocked = yield* Effect.fork(
              Effect.either(Effect.scoped(first.acquire(key, { timeout: "1 second" })))
            )
            yield* parked(blocked, timers + 1)
            yield* TestClock.adjust("1 second")
            expectTimeout(yield* Fiber.join(blocked))
          }
          yield* Scope.close(secondHolder, Exit.void)
          yield* Effect.scoped(first.acquire(key, { timeout: quick }))
        })
      )
    }
  })
}
