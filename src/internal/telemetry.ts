/**
 * Spans and metrics in one place: the span names and attribute keys, and the wrappers that put
 * every store call and every lock wait under a span and into `SessionMetrics`. Names follow
 * Effect's own packages: `@effect/sql`'s `sql.execute` with `db.system.name` and
 * `db.operation.name`, the platform's `http.*`. Nothing here ever sees more than a store key it
 * passes through: no attribute, event or label is derived from a key, a token or session data.
 */
import * as Arr from "effect/Array"
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Fiber from "effect/Fiber"
import * as FiberRef from "effect/FiberRef"
import * as Metric from "effect/Metric"
import * as MetricLabel from "effect/MetricLabel"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import type * as Tracer from "effect/Tracer"
import type { SessionLock } from "../SessionLock.js"
import * as SessionMetrics from "../SessionMetrics.js"
import type { OwnerIndex, SessionStore, SessionStoreError } from "../SessionStore.js"

/** The attribute keys of our spans (beside `db.system.name` and `db.operation.name` on store calls). */
export const Attribute = {
  outcome: "session.outcome",
  storeOutcome: "session.store.outcome",
  errorType: "error.type",
  lockSystem: "session.lock.system",
  lockWaitMillis: "session.lock.wait_ms",
  swept: "session.swept",
  count: "session.count"
} as const

/**
 * `metric` with fixed labels, updated at the price of an untagged one. `Metric.tagged` merges its
 * labels into a new array on every update, which misses the registry's cache and hashes the
 * whole metric key each time (about 10 µs per request on this path); here the merged labels are
 * made once (once per set of `Effect.tagMetrics` labels), so the base metric's cache finds them.
 */
export const tagged = <Type, In, Out>(
  metric: Metric.Metric<Type, In, Out>,
  labels: Record<string, string>
): Metric.Metric<Type, In, Out> => {
  const own = Object.entries(labels).map(([key, value]) => MetricLabel.make(key, value))
  const merged = new WeakMap<ReadonlyArray<MetricLabel.MetricLabel>, ReadonlyArray<MetricLabel.MetricLabel>>()
  const labelsWith = (extra: ReadonlyArray<MetricLabel.MetricLabel>): ReadonlyArray<MetricLabel.MetricLabel> => {
    if (extra.length === 0) return own
    let all = merged.get(extra)
    if (all === undefined) {
      all = Arr.union(own, extra)
      merged.set(extra, all)
    }
    return all
  }
  return Metric.make(
    metric.keyType,
    (input, extra) => metric.unsafeUpdate(input, labelsWith(extra)),
    (extra) => metric.unsafeValue(labelsWith(extra)),
    (input, extra) => metric.unsafeModify(input, labelsWith(extra))
  )
}

const spanOptions = (
  kind: Tracer.SpanKind,
  attributes: Record<string, unknown> | undefined
): Tracer.SpanOptions => ({ kind, attributes, captureStackTrace: false })

/** Sets an attribute on the current operation's span (a no-op when no tracer records it). */
export type Annotate = (key: string, value: unknown) => void

const ignore: Annotate = () => {}

// The tracer Effect runs with when none is installed: its spans go nowhere, so on the request
// path we make none (a span with its parent link costs several µs, more than the memory store's
// whole `find`). Any installed tracer (`@effect/opentelemetry`, `Layer.setTracer`, DevTools) gets them.
const nativeTracer: Tracer.Tracer = Effect.runSync(Effect.tracer)

/**
 * `body` under a span named `name` that is the parent of everything it runs, when the fiber has a
 * tracer installed (`spanned`); with Effect's default tracer, `body` alone, its `annotate` a no-op.
 */
const underSpan = <A, E, R>(
  fiber: Fiber.RuntimeFiber<unknown, unknown>,
  name: string,
  options: Tracer.SpanOptions,
  body: (annotate: Annotate, spanned: boolean) => Effect.Effect<A, E, R>
): Effect.Effect<A, E, R> =>
  fiber.currentTracer === nativeTracer
    ? body(ignore, false)
    : Effect.useSpan(name, options, (span) =>
      Effect.withParentSpan(
        body((key, value) => span.attribute(key, value), true),
        span
      ))

/**
 * `effect` with no span of its own below it: a driver's span (`@effect/sql`'s `sql.execute`) ends
 * with the driver's raw error, which an exporter renders with its causes, and those quote the
 * statement's values: a store key, a payload. The store call's own span says what ran and how it
 * ended, with the error scrubbed.
 */
const quiet = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.withTracerEnabled(effect, false)

/** Records a timed call: its exit, the seconds it took, the metric labels in scope, its span's `annotate`. */
type OnExit<A, E> = (
  exit: Exit.Exit<A, E>,
  seconds: number,
  labels: ReadonlyArray<MetricLabel.MetricLabel>,
  annotate: Annotate
) => void

/** Starts timing in `fiber`: `end` hands `onExit` the exit, the seconds since, and the labels. */
const stopwatch = <A, E>(fiber: Fiber.RuntimeFiber<unknown, unknown>, onExit: OnExit<A, E>) => {
  const clock = Context.get(fiber.currentDefaultServices, Clock.Clock)
  const labels = fiber.getFiberRef(FiberRef.currentMetricLabels)
  const start = clock.unsafeCurrentTimeNanos()
  return {
    clock,
    end: (exit: Exit.Exit<A, E>, annotate: Annotate): Exit.Exit<A, E> => {
      onExit(exit, Number(clock.unsafeCurrentTimeNanos() - start) / 1e9, labels, annotate)
      return exit
    }
  }
}

/**
 * Runs `effect` timed by the `Clock`, under a span named `name` (the parent of everything it
 * runs) when a tracer is installed. `onExit` gets the outcome, the seconds it took, the metric
 * labels in scope and a way to set attributes on the span, and records what it needs at once:
 * one step on the way in, one on the way out, on every store call. With `interrupted: "skip"`,
 * an interrupted `effect` records nothing, and the way out is a plain continuation rather than
 * an uninterruptible finalizer (a third of its cost).
 */
const timed = <A, E, R>(
  name: string,
  options: Tracer.SpanOptions,
  effect: Effect.Effect<A, E, R>,
  interrupted: "record" | "skip",
  onExit: OnExit<A, E>
): Effect.Effect<A, E, R> =>
  Effect.withFiberRuntime((fiber) => {
    const { end } = stopwatch(fiber, onExit)
    // Below a recorded span, tracing is off (see `quiet`); with no tracer there is nothing to turn off.
    return underSpan(fiber, name, options, (annotate, spanned) => {
      const run = spanned ? quiet(effect) : effect
      return interrupted === "record"
        ? Effect.onExit(run, (exit) => {
          end(exit, annotate)
          return Effect.void
        })
        : Effect.matchCauseEffect(run, {
          onFailure: (cause) => end(Exit.failCause(cause), annotate),
          onSuccess: (value) => end(Exit.succeed(value), annotate)
        })
    })
  })

/**
 * `timed` ("skip") for a call that does its work at once on the `Clock`'s time, which `body` is
 * handed. With no tracer installed, `body` runs in the step that starts the timing, and an answer
 * already known (`Effect.succeed`) is recorded there too: two steps, where `timed` around
 * `Effect.clockWith` takes five. An answer still to run (a store that must sweep first) is timed
 * as `timed` does. `body` must not throw (a throw would fail the call as a defect, unrecorded).
 */
const timedAtNow = <A, E, R>(
  name: string,
  options: Tracer.SpanOptions,
  body: (now: number) => Effect.Effect<A, E, R>,
  onExit: OnExit<A, E>
): Effect.Effect<A, E, R> =>
  Effect.withFiberRuntime((fiber) => {
    if (fiber.currentTracer !== nativeTracer) {
      return timed(name, options, Effect.clockWith((clock) => body(clock.unsafeCurrentTimeMillis())), "skip", onExit)
    }
    const { clock, end } = stopwatch(fiber, onExit)
    const answer = body(clock.unsafeCurrentTimeMillis())
    return Exit.isExit(answer) ? end(answer as Exit.Exit<A, E>, ignore) : Effect.matchCauseEffect(answer, {
      onFailure: (cause) => end(Exit.failCause(cause), ignore),
      onSuccess: (value) => end(Exit.succeed(value), ignore)
    })
  })

/**
 * What `traced` hands its body: a way to set attributes on the span, the `Clock`'s time and a
 * way to count, all read from the fiber once (the request path takes one step for all three).
 */
export interface Traced {
  readonly annotate: Annotate
  /** The `Clock`'s current time, epoch milliseconds. */
  readonly now: number
  /** Adds `by` to `metric`, with the labels of `Effect.tagMetrics` in scope. */
  readonly count: <Type, In, Out>(metric: Metric.Metric<Type, In, Out>, by: In) => void
}

/**
 * Runs `f` under a span named `name`, the parent of everything it runs, when a tracer is
 * installed; `f` sets attributes on it, reads the time and counts through its `Traced`.
 */
export const traced = <A, E, R>(
  name: string,
  f: (traced: Traced) => Effect.Effect<A, E, R>,
  options?: { readonly kind?: Tracer.SpanKind; readonly attributes?: Record<string, unknown> }
): Effect.Effect<A, E, R> =>
  Effect.withFiberRuntime((fiber) => {
    const now = Context.get(fiber.currentDefaultServices, Clock.Clock).unsafeCurrentTimeMillis()
    const count = countIn(fiber)
    return underSpan(
      fiber,
      name,
      spanOptions(options?.kind ?? "internal", options?.attributes),
      (annotate) => f({ annotate, now, count })
    )
  })

/** Counts with the metric labels in scope in `fiber` (`Effect.tagMetrics`). */
const countIn = (fiber: Fiber.RuntimeFiber<unknown, unknown>): Traced["count"] => {
  const labels = fiber.getFiberRef(FiberRef.currentMetricLabels)
  return (metric, by) => metric.unsafeUpdate(by, labels)
}

/**
 * Runs `f` with the `Clock`'s time and a way to count (as `traced` gives them), read from the
 * fiber in one step, under no span of its own.
 */
export const counted = <A, E, R>(
  f: (now: number, count: Traced["count"]) => Effect.Effect<A, E, R>
): Effect.Effect<A, E, R> =>
  Effect.withFiberRuntime((fiber) =>
    f(Context.get(fiber.currentDefaultServices, Clock.Clock).unsafeCurrentTimeMillis(), countIn(fiber))
  )

/** `effect` under a span named `name` when a tracer is installed (see `traced`), for `pipe`. */
export const withSpan = (name: string) => <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  traced(name, () => effect)

/** The typed reason of a failure, `Defect` for a defect, undefined for an interruption. */
const reasonOf = <E extends { readonly reason: string }>(cause: Cause.Cause<E>): string | undefined => {
  const failure = Cause.failureOption(cause)
  if (Option.isSome(failure)) return failure.value.reason
  return Cause.isInterruptedOnly(cause) ? undefined : "Defect"
}

type Operation = SessionStoreError["operation"]

// Marks a store already wrapped, so that the manager wraps only stores made elsewhere.
const Instrumented = Symbol.for("effect-session/InstrumentedStore")

/** Whether `store` was wrapped by `instrumentStore` (every built-in backend's is). */
export const isInstrumented = (store: SessionStore): boolean => Instrumented in store

/** A call of `F` that is handed the `Clock`'s time first and does its work at once. */
export type AtNow<F> = F extends (...args: infer Args) => infer R ? (now: number, ...args: Args) => R : never

/**
 * The calls of a store that does its work at once, on the `Clock`'s time (the memory store):
 * `onClock` makes them the store's calls, and `instrumentStore` times them in the step that
 * reads the time.
 */
export interface Immediate {
  readonly find: AtNow<SessionStore["find"]>
  readonly commit: AtNow<SessionStore["commit"]>
  readonly take: AtNow<SessionStore["take"]>
  readonly touch: AtNow<SessionStore["touch"]>
}

/** `immediate`'s calls as a store's: each reads the `Clock` (one step) and runs. */
export const onClock = (immediate: Immediate): Pick<SessionStore, keyof Immediate> => {
  const reading =
    <Args extends ReadonlyArray<unknown>, A, E>(call: (now: number, ...args: Args) => Effect.Effect<A, E>) =>
    (...args: Args): Effect.Effect<A, E> => Effect.clockWith((clock) => call(clock.unsafeCurrentTimeMillis(), ...args))
  return {
    find: reading(immediate.find),
    commit: reading(immediate.commit),
    take: reading(immediate.take),
    touch: reading(immediate.touch)
  }
}

/**
 * Wraps `store` so that each call feeds `storeDuration` and `storeErrors`, and runs under a
 * `session.store.<operation>` client span carrying the store's `db.system.name` and the call's
 * outcome when a tracer is installed. Extra members of a backend's own service are kept as they
 * are. A store whose calls do their work at once gives them as `immediate` too (see `timedAtNow`).
 */
export const instrumentStore = <S extends SessionStore>(system: string, store: S, immediate?: Immediate): S => {
  const call = <A, Args extends ReadonlyArray<unknown>, R>(
    operation: Operation,
    run: (...args: Args) => Effect.Effect<A, SessionStoreError, R>,
    outcomeOf?: (a: A) => string,
    atNow?: (now: number, ...args: Args) => Effect.Effect<A, SessionStoreError, R>
  ): (...args: Args) => Effect.Effect<A, SessionStoreError, R> => {
    const name = `session.store.${operation}`
    const options = spanOptions("client", { "db.system.name": system, "db.operation.name": operation })
    const duration = tagged(SessionMetrics.storeDuration, { store: system, operation })
    // An interrupted call is not a store's failure: it records nothing.
    const record: OnExit<A, SessionStoreError> = (exit, seconds, labels, annotate) => {
      if (Exit.isSuccess(exit)) {
        if (outcomeOf !== undefined) annotate(Attribute.storeOutcome, outcomeOf(exit.value))
        return duration.unsafeUpdate(seconds, labels)
      }
      const reason = reasonOf(exit.cause)
      if (reason === undefined) return
      annotate(Attribute.errorType, reason)
      duration.unsafeUpdate(seconds, labels)
      tagged(SessionMetrics.storeErrors, { store: system, operation, reason }).unsafeUpdate(1, labels)
    }
    return atNow === undefined
      ? (...args) => timed(name, options, run(...args), "skip", record)
      : (...args) => timedAtNow(name, options, (now) => atNow(now, ...args), record)
  }
  const foundOrMissing = (found: Option.Option<unknown>) => Option.isSome(found) ? "found" : "missing"
  const owners = store.owners
  const index: OwnerIndex | undefined = owners === undefined ? undefined : {
    link: call("link", owners.link, (result) => result),
    list: call("list", owners.list),
    revoke: call("revoke", owners.revoke),
    unlink: call("unlink", owners.unlink)
  }
  const all = store.all
  return {
    ...store,
    find: call("find", store.find, foundOrMissing, immediate?.find),
    commit: call("commit", store.commit, (result) => result, immediate?.commit),
    take: call("take", store.take, foundOrMissing, immediate?.take),
    touch: call("touch", store.touch, (result) => result, immediate?.touch),
    delete: call("delete", store.delete),
    all: all === undefined ? undefined : Stream.withSpan(all, "session.store.all", {
      ...spanOptions("client", { "db.system.name": system, "db.operation.name": "all" })
    }),
    owners: index,
    [Instrumented]: true
  }
}

/**
 * Wraps a lock so that each `acquire` feeds `lockWait` and `lockFailures`, and runs under a
 * `session.lock.acquire` span carrying the wait when a tracer is installed.
 */
export const instrumentLock = <L extends SessionLock>(system: string, lock: L): L => {
  const wait = tagged(SessionMetrics.lockWait, { lock: system })
  const options = spanOptions("internal", { [Attribute.lockSystem]: system })
  return {
    ...lock,
    acquire: (key, acquireOptions) =>
      // A wait cut short (the client went away) is a wait all the same.
      timed("session.lock.acquire", options, lock.acquire(key, acquireOptions), "record", (
        exit,
        seconds,
        labels,
        annotate
      ) => {
        annotate(Attribute.lockWaitMillis, seconds * 1e3)
        wait.unsafeUpdate(seconds, labels)
        if (Exit.isSuccess(exit)) return
        const reason = reasonOf(exit.cause)
        if (reason === undefined) return
        annotate(Attribute.errorType, reason)
        tagged(SessionMetrics.lockFailures, { lock: system, reason }).unsafeUpdate(1, labels)
      })
  }
}
