/**
 * Observability through a real OpenTelemetry pipeline (`test/otel.ts`: `NodeSdk` with in-memory exporters): real
 * HTTP requests through the session middleware over the memory store, then the span trees, their names and
 * attributes, and the metrics as an exporter reads them (as deltas: Effect's metric registry is global). Time moves
 * on `TestClock` only. Last, no exported span of the whole file carries a token, a store key or a session value.
 */
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { describe, expect, it } from "@effect/vitest"
import { SpanKind } from "@opentelemetry/api"
import * as Chunk from "effect/Chunk"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import * as TestClock from "effect/TestClock"
import type { AnySpan } from "effect/Tracer"
import { createHash, randomBytes } from "node:crypto"
import { Session } from "../src/Session.js"
import * as SessionLock from "../src/SessionLock.js"
import * as SessionManager from "../src/SessionManager.js"
import * as SessionMiddleware from "../src/SessionMiddleware.js"
import { SessionStore } from "../src/SessionStore.js"
import * as MemoryStore from "../src/SessionStore/Memory.js"
import { START } from "./conformance.js"
import { call, cookieFrom, serve } from "./http.js"
import type { Reply, Served } from "./http.js"
import { makeOtel, spanStrings, spanTree } from "./otel.js"
import type { CollectedMetric, Otel, ReadableSpan, SpanNode } from "./otel.js"

// ---------------------------------------------------------------------------------------------
// Secrets: everything that must never reach a span. Every value put in a session starts with SECRET.

const SECRET = `secret-value-7f3a${randomBytes(6).toString("hex")}`
const secrets = new Set<string>([SECRET])

/** What the store sees for `token` with `hashTokenInStore` (the default). */
const hashed = (token: string) => createHash("sha256").update(token).digest("base64url")

/** Remembers a token and its store key as secrets, and returns the token. */
const keep = (token: string): string => {
  secrets.add(token)
  secrets.add(hashed(token))
  return token
}

/** The token a reply set, kept as a secret, and the `Cookie` header that sends it. */
const tokenFrom = (reply: Reply) => {
  const cookie = cookieFrom(reply)
  return { token: keep(cookie.slice("session=".length)), cookie }
}

// A well-formed token (43 characters of base64url) that names no session, and a cookie that is no token at all.
const UNKNOWN = keep(randomBytes(32).toString("base64url"))
const GARBAGE = `not-a-token!${SECRET}`

// Every pipeline of this file, so that the last test can read every span any test exported.
const pipelines: Array<Otel> = []
const pipeline = (): Otel => {
  const otel = makeOtel({ serviceName: "effect-session-observability" })
  pipelines.push(otel)
  return otel
}

// ---------------------------------------------------------------------------------------------
// The app

/** What `/hold` waits on: it completes `entered` once it runs, then waits for the test to complete `open`. */
const gate = () => ({
  entered: Effect.runSync(Deferred.make<void>()),
  open: Effect.runSync(Deferred.make<void>())
})
let held = gate()

const router = HttpRouter.empty.pipe(
  HttpRouter.get(
    "/put",
    Effect.flatMap(Session, (session) => session.put("note", `${SECRET}-first`)).pipe(
      Effect.as(HttpServerResponse.text("ok"))
    )
  ),
  HttpRouter.get(
    "/change",
    Effect.flatMap(Session, (session) => session.put("note", `${SECRET}-changed`)).pipe(
      Effect.as(HttpServerResponse.text("ok"))
    )
  ),
  HttpRouter.get(
    "/read",
    Effect.flatMap(Session, (session) => session.keys).pipe(Effect.as(HttpServerResponse.text("ok")))
  ),
  HttpRouter.get(
    "/renew",
    Effect.flatMap(Session, (session) => session.renewToken).pipe(Effect.as(HttpServerResponse.text("renewed")))
  ),
  HttpRouter.get(
    "/destroy",
    Effect.flatMap(Session, (session) => session.destroy).pipe(Effect.as(HttpServerResponse.text("bye")))
  ),
  HttpRouter.get(
    "/hold",
    Effect.gen(function*() {
      yield* Session
      yield* Deferred.succeed(held.entered, undefined)
      yield* Deferred.await(held.open)
      return HttpServerResponse.text("held")
    })
  )
)

const app = SessionMiddleware.loadAndSave(router)

/** The manager over a fresh memory store (no background sweep unless asked). */
const sessions = (manager: SessionManager.Options = {}, store: MemoryStore.Options = { cleanupInterval: 0 }) =>
  SessionManager.layer(manager).pipe(Layer.provideMerge(MemoryStore.layer(store)))

/**
 * Runs `body` with the clock at START, over `layer`, under the otel pipeline when one is given: the pipeline is
 * built first, so the store (its sweep fiber) and the server are made with its tracer installed.
 */
const within = <A, E, ROut, E2>(
  layer: Layer.Layer<ROut, E2>,
  otel: Otel | undefined,
  body: Effect.Effect<A, E, ROut | Scope.Scope>
) =>
  TestClock.setTime(START).pipe(
    Effect.zipRight(Effect.provide(body, otel === undefined ? layer : layer.pipe(Layer.provideMerge(otel.layer))))
  )

// ---------------------------------------------------------------------------------------------
// Reading spans and metrics

/** Gives the server's fibers turns (a bounded number of macrotasks) until `count` request spans have ended. */
const requestSpans = (otel: Otel, count: number) =>
  Effect.gen(function*() {
    for (let turn = 0; turn < 1_000; turn++) {
      if (otel.spans().filter((span) => span.name.startsWith("http.server")).length >= count) return
      yield* Effect.promise(() => new Promise((resolve) => setImmediate(resolve)))
    }
    return yield* Effect.dieMessage(`${count} request spans never ended`)
  })

const SHOWN = ["session.outcome", "session.store.outcome", "session.swept", "error.type"]

/** A tree as indented lines, each span with the attributes in SHOWN that it has: what a trace viewer shows. */
const describeTree = (nodes: ReadonlyArray<SpanNode>): string => {
  const lines: Array<string> = []
  const walk = (node: SpanNode, depth: number) => {
    const shown = SHOWN.filter((key) => node.span.attributes[key] !== undefined)
      .map((key) => `${key}=${String(node.span.attributes[key])}`)
    lines.push(`${"  ".repeat(depth)}${node.span.name}${shown.length === 0 ? "" : ` [${shown.join(" ")}]`}`)
    for (const child of node.children) walk(child, depth + 1)
  }
  for (const node of nodes) walk(node, 0)
  return lines.join("\n")
}

/** The request trees (one per `http.server` span) in the order the requests ended. */
const requestTrees = (spans: ReadonlyArray<ReadableSpan>): Array<string> =>
  spanTree(spans).filter((node) => node.span.name.startsWith("http.server")).map((node) => describeTree([node]))

const tree = (...lines: Array<string>) => lines.join("\n")

type Labels = Readonly<Record<string, string>>

const matches = (attributes: Record<string, unknown>, labels: Labels) =>
  Object.entries(labels).every(([key, value]) => attributes[key] === value)

/** A counter's or gauge's value, or a histogram's count (`"sum"`: its sum), over the points with `labels`. */
const valueOf = (
  metrics: ReadonlyArray<CollectedMetric>,
  name: string,
  labels: Labels = {},
  field: "count" | "sum" = "count"
): number => {
  const metric = metrics.find((m) => m.name === name)
  if (metric === undefined) return 0
  if (metric.type === "histogram") {
    return metric.points.filter((p) => matches(p.attributes, labels)).reduce((n, p) => n + p[field], 0)
  }
  return metric.points.filter((p) => matches(p.attributes, labels)).reduce((n, p) => n + p.value, 0)
}

/** What changed between two readings of the pipeline's metrics. */
const deltas =
  (before: ReadonlyArray<CollectedMetric>, after: ReadonlyArray<CollectedMetric>) =>
  (name: string, labels: Labels = {}, field: "count" | "sum" = "count"): number =>
    valueOf(after, name, labels, field) - valueOf(before, name, labels, field)

const loaded = (outcome: string) => ["effect_session_loaded_total", { outcome }] as const
const committed = (outcome: string) => ["effect_session_committed_total", { outcome }] as const
const storeCalls = (operation: string) =>
  ["effect_session_store_duration_seconds", { store: "memory", operation }] as const

// ---------------------------------------------------------------------------------------------
// The scripted sequence

/**
 * A session's life over real HTTP: created, read, changed, renewed, read under its new and its old token, a
 * garbage cookie and an unknown token, then destroyed. Returns the metric readings along the way (`read` reads the
 * pipeline) and the gauge of memory entries after the create and after the renewal.
 */
const script = (served: Served, read: Effect.Effect<ReadonlyArray<CollectedMetric>>) =>
  Effect.gen(function*() {
    const before = yield* read
    const created = yield* call(served, "/put")
    expect(created.status).toBe(200)
    const first = tokenFrom(created)
    const afterCreate = yield* read
    expect((yield* call(served, "/read", { headers: { cookie: first.cookie } })).setCookies).toEqual([])
    expect((yield* call(served, "/change", { headers: { cookie: first.cookie } })).status).toBe(200)
    const renewed = yield* call(served, "/renew", { headers: { cookie: first.cookie } })
    const second = tokenFrom(renewed)
    expect(second.token).not.toBe(first.token)
    const afterRenew = yield* read
    expect((yield* call(served, "/read", { headers: { cookie: second.cookie } })).setCookies).toEqual([])
    expect((yield* call(served, "/read", { headers: { cookie: first.cookie } })).status).toBe(200)
    expect((yield* call(served, "/read", { headers: { cookie: `session=${GARBAGE}` } })).status).toBe(200)
    expect((yield* call(served, "/read", { headers: { cookie: `session=${UNKNOWN}` } })).status).toBe(200)
    const destroyed = yield* call(served, "/destroy", { headers: { cookie: second.cookie } })
    expect(destroyed.setCookies.some((line) => line.startsWith("session=;") || /Max-Age=0/.test(line))).toBe(true)
    const after = yield* read
    return { before, afterCreate, afterRenew, after, requests: 9 }
  })

/** The metric deltas the script makes, whether or not a tracer is installed. */
const expectScriptMetrics = (readings: Effect.Effect.Success<ReturnType<typeof script>>) => {
  const delta = deltas(readings.before, readings.after)
  expect({
    no_token: delta(...loaded("no_token")),
    found: delta(...loaded("found")),
    missing: delta(...loaded("missing")),
    malformed: delta(...loaded("malformed")),
    expired: delta(...loaded("expired")),
    decode_reset: delta(...loaded("decode_reset"))
  }).toEqual({ no_token: 1, found: 5, missing: 2, malformed: 1, expired: 0, decode_reset: 0 })
  expect({
    written: delta(...committed("written")),
    unchanged: delta(...committed("unchanged")),
    destroyed: delta(...committed("destroyed")),
    refreshed: delta(...committed("refreshed")),
    gone: delta(...committed("gone"))
  }).toEqual({ written: 3, unchanged: 5, destroyed: 1, refreshed: 0, gone: 0 })
  expect({
    created: delta("effect_session_created_total"),
    renewed: delta("effect_session_renewed_total"),
    destroyed: delta("effect_session_destroyed_total")
  }).toEqual({ created: 1, renewed: 1, destroyed: 1 })
  // One find per load with a well-formed token (not the garbage one, not the first request's).
  expect({
    find: delta(...storeCalls("find")),
    commit: delta(...storeCalls("commit")),
    take: delta(...storeCalls("take")),
    delete: delta(...storeCalls("delete")),
    touch: delta(...storeCalls("touch"))
  }).toEqual({ find: 7, commit: 4, take: 1, delete: 1, touch: 0 })
  expect(delta("effect_session_store_errors_total")).toBe(0)
  // The gauge follows the entries held: one after the create, still one after the renewal, none after the destroy.
  const entries = (reading: ReadonlyArray<CollectedMetric>) =>
    valueOf(reading, "effect_session_memory_entries") - valueOf(readings.before, "effect_session_memory_entries")
  expect([entries(readings.afterCreate), entries(readings.afterRenew), entries(readings.after)]).toEqual([1, 1, 0])
}

// ---------------------------------------------------------------------------------------------

/** Every store span is a client span of the memory store, named after its operation; ours are internal. */
const expectKinds = (spans: ReadonlyArray<ReadableSpan>) => {
  const store = spans.filter((span) => span.name.startsWith("session.store."))
  expect(store.length).toBeGreaterThan(0)
  for (const span of store) {
    expect({ kind: span.kind, attributes: span.attributes }).toMatchObject({
      kind: SpanKind.CLIENT,
      attributes: { "db.system.name": "memory", "db.operation.name": span.name.slice("session.store.".length) }
    })
  }
  for (const span of spans.filter((span) => span.name.startsWith("session.") && !store.includes(span))) {
    expect([span.name, span.kind]).toEqual([span.name, SpanKind.INTERNAL])
  }
  for (const span of spans.filter((span) => span.name.startsWith("http.server"))) {
    expect(span.kind).toBe(SpanKind.SERVER)
  }
}

const LOAD_FOUND = ["  session.load [session.outcome=found]", "    session.store.find [session.store.outcome=found]"]

describe("observability through a real OpenTelemetry pipeline", () => {
  it.scoped("a session's life over HTTP: the span trees, their attributes, and the metrics as exported", () => {
    const otel = pipeline()
    return within(
      sessions(),
      otel,
      Effect.gen(function*() {
        const served = yield* serve(app)
        const readings = yield* script(served, otel.metrics())
        yield* requestSpans(otel, readings.requests)
        const spans = otel.spans()
        expect(requestTrees(spans)).toEqual([
          // A first visit: no token, so no store call to load; the write is a store commit under the commit.
          tree(
            "http.server GET",
            "  session.load [session.outcome=no_token]",
            "  session.commit [session.outcome=written]",
            "    session.store.commit [session.store.outcome=written]"
          ),
          tree("http.server GET", ...LOAD_FOUND, "  session.commit [session.outcome=unchanged]"),
          tree(
            "http.server GET",
            ...LOAD_FOUND,
            "  session.commit [session.outcome=written]",
            "    session.store.commit [session.store.outcome=written]"
          ),
          // The renewal takes the session from under its old key and stores it under the new one at once (the create
          // counted by effect_session_renewed_total, not created: see the metrics), then the commit writes it.
          tree(
            "http.server GET",
            ...LOAD_FOUND,
            "  session.renew",
            "    session.store.take [session.store.outcome=found]",
            "    session.store.commit [session.store.outcome=written]",
            "  session.commit [session.outcome=written]",
            "    session.store.commit [session.store.outcome=written]"
          ),
          tree("http.server GET", ...LOAD_FOUND, "  session.commit [session.outcome=unchanged]"),
          // The old token after the renewal.
          tree(
            "http.server GET",
            "  session.load [session.outcome=missing]",
            "    session.store.find [session.store.outcome=missing]",
            "  session.commit [session.outcome=unchanged]"
          ),
          // A garbage cookie never reaches the store.
          tree(
            "http.server GET",
            "  session.load [session.outcome=malformed]",
            "  session.commit [session.outcome=unchanged]"
          ),
          // A well-formed token that names nothing.
          tree(
            "http.server GET",
            "  session.load [session.outcome=missing]",
            "    session.store.find [session.store.outcome=missing]",
            "  session.commit [session.outcome=unchanged]"
          ),
          tree(
            "http.server GET",
            ...LOAD_FOUND,
            "  session.destroy",
            "    session.store.delete",
            "  session.commit [session.outcome=destroyed]"
          )
        ])
        // Nothing outside the requests: every span of the sequence is in a request's tree.
        expect(spanTree(spans).map((node) => node.span.name)).toEqual(Array(readings.requests).fill("http.server GET"))
        expectKinds(spans)
        expect(spans.every((span) => span.status.code !== 2)).toBe(true)
        expectScriptMetrics(readings)
      })
    )
  })

  it.scoped("with no tracer installed, the same requests make no span and count the same metrics", () => {
    // The pipeline is built only to read the metrics: the requests run with Effect's native tracer.
    const otel = pipeline()
    const read = Effect.provide(otel.metrics(), otel.layer)
    // The spans a store call runs under, innermost first, seen from inside the memory store's `find`: only the
    // platform's own request span (a native one) when the library makes none. `{ ...memory }` keeps the memory store's
    // instrumentation mark, so the manager does not wrap it a second time.
    const chains: Array<ReadonlyArray<string>> = []
    const probed = Layer.effect(
      SessionStore,
      Effect.map(MemoryStore.MemoryStore, (memory): SessionStore => ({
        ...memory,
        find: (key) =>
          Effect.zipRight(
            Effect.map(Effect.option(Effect.currentSpan), (span) => {
              const names: Array<string> = []
              let current: Option.Option<AnySpan> = span
              while (Option.isSome(current)) {
                names.push(current.value._tag === "Span" ? current.value.name : "external")
                current = current.value._tag === "Span" ? current.value.parent : Option.none()
              }
              chains.push(names)
            }),
            memory.find(key)
          )
      }))
    ).pipe(Layer.provideMerge(MemoryStore.layer({ cleanupInterval: 0 })))
    return within(
      SessionManager.layer().pipe(Layer.provideMerge(probed)),
      undefined,
      Effect.gen(function*() {
        const served = yield* serve(app)
        const readings = yield* script(served, read)
        expectScriptMetrics(readings)
        expect(otel.spans()).toEqual([])
        expect(chains).toEqual(Array(7).fill(["http.server GET"]))
      })
    )
  })

  it.scoped("with an in-process lock: session.lock.acquire under the request, with its system and its wait", () => {
    const otel = pipeline()
    held = gate()
    return within(
      Layer.merge(sessions(), SessionLock.layerInProcess()),
      otel,
      Effect.gen(function*() {
        // Tells the test when a request asks for the lock (the instrumented lock underneath does the rest).
        const acquiring = yield* Queue.unbounded<void>()
        const lock = yield* SessionLock.SessionLock
        const observed: SessionLock.SessionLock = {
          acquire: (key, options) => Effect.zipRight(Queue.offer(acquiring, undefined), lock.acquire(key, options))
        }
        const locked = Effect.provideService(
          SessionMiddleware.make({ lock: { timeout: "1 hour" } })(router),
          SessionLock.SessionLock,
          observed
        )
        const served = yield* serve(locked)
        const before = yield* otel.metrics()
        const { cookie } = tokenFrom(yield* call(served, "/put"))
        const first = yield* Effect.fork(call(served, "/hold", { headers: { cookie } }))
        yield* Deferred.await(held.entered)
        const second = yield* Effect.fork(call(served, "/read", { headers: { cookie } }))
        yield* Queue.take(acquiring)
        yield* Queue.take(acquiring)
        // The second request is parked on the lock: its timeout timer is the only sleep. It waits 3 seconds.
        for (let turn = 0; turn < 10_000 && Chunk.size(yield* TestClock.sleeps()) < 1; turn++) yield* Effect.yieldNow()
        expect(Chunk.size(yield* TestClock.sleeps())).toBe(1)
        yield* TestClock.adjust("3 seconds")
        yield* Deferred.succeed(held.open, undefined)
        expect((yield* Fiber.join(first)).status).toBe(200)
        expect((yield* Fiber.join(second)).status).toBe(200)
        yield* requestSpans(otel, 3)
        const after = yield* otel.metrics()

        const spans = otel.spans()
        const acquired = spans.filter((span) => span.name === "session.lock.acquire")
        expect(acquired.map((span) => span.attributes)).toEqual([
          { "session.lock.system": "in_process", "session.lock.wait_ms": 0 },
          { "session.lock.system": "in_process", "session.lock.wait_ms": 3000 }
        ])
        // The lock is taken just after the session is found, and the session read again under it.
        const locking = tree(
          "http.server GET",
          ...LOAD_FOUND,
          "  session.lock.acquire",
          ...LOAD_FOUND,
          "  session.commit [session.outcome=unchanged]"
        )
        expect(requestTrees(spans)).toEqual([
          // A first visit has no session to lock.
          tree(
            "http.server GET",
            "  session.load [session.outcome=no_token]",
            "  session.commit [session.outcome=written]",
            "    session.store.commit [session.store.outcome=written]"
          ),
          locking,
          locking
        ])
        const delta = deltas(before, after)
        expect({
          count: delta("effect_session_lock_wait_seconds", { lock: "in_process" }),
          sum: delta("effect_session_lock_wait_seconds", { lock: "in_process" }, "sum"),
          failures: delta("effect_session_lock_failures_total")
        }).toEqual({ count: 2, sum: 3, failures: 0 })
      })
    )
  })

  it.scoped("an idle refresh past half the idle timeout commits as refreshed, through a store touch", () => {
    const otel = pipeline()
    return within(
      sessions({ idleTimeout: "10 minutes" }),
      otel,
      Effect.gen(function*() {
        const served = yield* serve(app)
        const { cookie } = tokenFrom(yield* call(served, "/put"))
        const before = yield* otel.metrics()
        yield* TestClock.adjust("6 minutes")
        const refreshed = yield* call(served, "/read", { headers: { cookie } })
        // The cookie is sent again with the new expiry, for the same token.
        expect(cookieFrom(refreshed)).toBe(cookie)
        yield* requestSpans(otel, 2)
        const after = yield* otel.metrics()
        expect(requestTrees(otel.spans())[1]).toBe(tree(
          "http.server GET",
          ...LOAD_FOUND,
          "  session.commit [session.outcome=refreshed]",
          "    session.store.touch [session.store.outcome=written]"
        ))
        expectKinds(otel.spans())
        const delta = deltas(before, after)
        expect({
          refreshed: delta(...committed("refreshed")),
          written: delta(...committed("written")),
          touch: delta(...storeCalls("touch")),
          commit: delta(...storeCalls("commit"))
        }).toEqual({ refreshed: 1, written: 0, touch: 1, commit: 0 })
      })
    )
  })

  it.scoped("a load past the deadline: expired while the store still holds the entry, missing once it does not", () => {
    const otel = pipeline()
    return within(
      sessions({ lifetime: "1 hour" }),
      otel,
      Effect.gen(function*() {
        const manager = yield* SessionManager.SessionManager
        const store = yield* SessionStore
        const create = Effect.gen(function*() {
          const session = yield* manager.load(undefined)
          yield* session.put("note", `${SECRET}-expiring`)
          const outcome = yield* manager.commit(session)
          if (outcome._tag !== "Written") return yield* Effect.dieMessage(`expected Written, got ${outcome._tag}`)
          const token = keep(Redacted.value(outcome.token))
          const key = Option.getOrThrow(manager.storeKey(session))
          expect(key).toBe(hashed(token))
          return { token, key }
        })
        // The manager never stores an expiry past the record's deadline, and the memory store hides an entry past its
        // expiry: "expired" needs an entry the store keeps past the deadline. The store's own `touch` (public API)
        // keeps one two hours longer, as a store written by another process or another release might.
        const kept = yield* create
        expect(yield* store.touch(kept.key, START + 3 * 3_600_000)).toBe("written")
        const dropped = yield* create
        otel.reset()
        const before = yield* otel.metrics()
        yield* TestClock.adjust("2 hours")
        for (const { token } of [kept, dropped]) {
          const session = yield* manager.load(Redacted.make(token))
          expect(Option.isNone(manager.storeKey(session))).toBe(true)
          expect(yield* session.keys).toEqual([])
        }
        const after = yield* otel.metrics()
        expect(describeTree(spanTree(otel.spans()))).toBe(tree(
          "session.load [session.outcome=expired]",
          "  session.store.find [session.store.outcome=found]",
          // Deleted, so that it is reported once.
          "  session.store.delete",
          "session.load [session.outcome=missing]",
          "  session.store.find [session.store.outcome=missing]"
        ))
        const delta = deltas(before, after)
        expect({
          expired: delta(...loaded("expired")),
          missing: delta(...loaded("missing")),
          onLoad: delta("effect_session_expired_total", { source: "load" }),
          bySweep: delta("effect_session_expired_total", { source: "sweep" })
        }).toEqual({ expired: 1, missing: 1, onLoad: 1, bySweep: 0 })
      })
    )
  })

  it.scoped("the background sweep under TestClock: a session.sweep span with the count, and expired{sweep}", () => {
    const otel = pipeline()
    return within(
      sessions({ lifetime: "30 seconds" }, { cleanupInterval: "1 minute" }),
      otel,
      Effect.gen(function*() {
        const served = yield* serve(app)
        const before = yield* otel.metrics()
        for (let i = 0; i < 3; i++) tokenFrom(yield* call(served, "/put"))
        const created = yield* otel.metrics()
        yield* TestClock.adjust("1 minute")
        // The sweep runs on the fiber the adjustment woke: give it turns (macrotasks: it hands the event loop back
        // between batches), a bounded number, until its span has ended.
        const sweeps = () => otel.spans().filter((span) => span.name === "session.sweep")
        for (let turn = 0; turn < 1_000 && sweeps().length === 0; turn++) {
          yield* Effect.promise(() => new Promise((resolve) => setImmediate(resolve)))
        }
        const after = yield* otel.metrics()
        expect(sweeps().map((span) => [span.kind, span.attributes, span.parentSpanContext])).toEqual([
          [SpanKind.INTERNAL, { "db.system.name": "memory", "session.swept": 3 }, undefined]
        ])
        const sweptAt = sweeps()[0].endTime
        expect(sweptAt).toEqual([Math.floor((START + 60_000) / 1000), 0])
        const delta = deltas(before, after)
        expect({
          bySweep: delta("effect_session_expired_total", { source: "sweep" }),
          onLoad: delta("effect_session_expired_total", { source: "load" }),
          created: delta("effect_session_created_total"),
          entriesAfterCreates: valueOf(created, "effect_session_memory_entries") -
            valueOf(before, "effect_session_memory_entries"),
          entriesAfterSweep: delta("effect_session_memory_entries")
        }).toEqual({ bySweep: 3, onLoad: 0, created: 3, entriesAfterCreates: 3, entriesAfterSweep: 0 })
      })
    )
  })

  it.scoped("a stored session that no longer decodes: decode_reset, its entry deleted, decode_resets{session}", () => {
    const otel = pipeline()
    return within(
      sessions(),
      otel,
      Effect.gen(function*() {
        const served = yield* serve(app)
        const manager = yield* SessionManager.SessionManager
        const store = yield* SessionStore
        const { cookie, token } = tokenFrom(yield* call(served, "/put"))
        // The key the manager keeps this session under.
        const key = Option.getOrThrow(manager.storeKey(yield* manager.load(Redacted.make(token))))
        expect(key).toBe(hashed(token))
        expect(yield* store.commit(key, `{"not":"a session","note":"${SECRET}-garbage"}`, START + 60_000, "update"))
          .toBe("written")
        otel.reset()
        const before = yield* otel.metrics()
        const reply = yield* call(served, "/read", { headers: { cookie } })
        expect(reply.status).toBe(200)
        yield* requestSpans(otel, 1)
        const after = yield* otel.metrics()
        expect(requestTrees(otel.spans())).toEqual([tree(
          "http.server GET",
          "  session.load [session.outcome=decode_reset]",
          "    session.store.find [session.store.outcome=found]",
          "    session.store.delete",
          "  session.commit [session.outcome=unchanged]"
        )])
        expect(Option.isNone(yield* store.find(key))).toBe(true)
        const delta = deltas(before, after)
        expect({
          decodeReset: delta(...loaded("decode_reset")),
          session: delta("effect_session_decode_resets_total", { scope: "session" }),
          value: delta("effect_session_decode_resets_total", { scope: "value" }),
          deleted: delta(...storeCalls("delete"))
        }).toEqual({ decodeReset: 1, session: 1, value: 0, deleted: 1 })
      })
    )
  })

  // Runs last: every span every test of this file exported.
  it("no exported span carries a token, a store key or a session value", () => {
    const spans = pipelines.flatMap((otel) => otel.spans())
    expect(spans.length).toBeGreaterThan(0)
    // What this file put in the pipeline: the tokens it received or made up, their store keys, the garbage cookie.
    const all = [...secrets, GARBAGE]
    expect(all.length).toBeGreaterThan(10)
    const found: Array<string> = []
    for (const span of spans) {
      for (const text of spanStrings(span)) {
        // Anything shaped like a token or a hashed key, too.
        if (all.some((secret) => text.includes(secret)) || /[A-Za-z0-9_-]{43}/.test(text)) {
          found.push(`${span.name}: ${text}`)
        }
      }
    }
    expect(found).toEqual([])
  })
})
