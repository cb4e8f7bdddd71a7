/**
 * Spans, metrics and lifecycle events, through the OpenTelemetry SDK (`NodeSdk.layer`): spans
 * print as they end (ConsoleSpanExporter), each session event is logged by a `SessionEvents`
 * subscriber, and the effect_session_* metrics print when they changed (every 30 s, and at exit).
 *
 *   npm run example:observability -- --demo
 *
 * calls itself (a new session, get, renew, sign-in, destroy, a stale cookie), prints each
 * request's spans as a tree and its events, then the metrics, and exits (`--verbose` prints the
 * ConsoleSpanExporter's full records too). Without `--demo` it serves on PORT (default 3000):
 *
 *   curl -i -c cj -b cj localhost:3000/put
 *   curl -i -c cj -b cj localhost:3000/get
 *   curl -i -c cj -b cj localhost:3000/renew
 *   curl -i -c cj -b cj "localhost:3000/login?user=ada"
 *   curl -i -c cj -b cj localhost:3000/destroy
 *
 * In production, swap the console exporters for OTLP ones (or use @effect/opentelemetry's `Otlp.layer`).
 */
import * as NodeSdk from "@effect/opentelemetry/NodeSdk"
import { HttpRouter, HttpServer, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { NodeHttpServer, NodeRuntime } from "@effect/platform-node"
import { SpanKind } from "@opentelemetry/api"
import { DataPointType, PeriodicExportingMetricReader } from "@opentelemetry/sdk-metrics"
import type { MetricData, PushMetricExporter, ResourceMetrics } from "@opentelemetry/sdk-metrics"
import { ConsoleSpanExporter, InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base"
import type { ReadableSpan } from "@opentelemetry/sdk-trace-base"
import { Console, Effect, Layer, Option, Queue, Schema } from "effect"
import { createServer } from "node:http"
import { Session } from "../src/Session.js"
import * as SessionEvents from "../src/SessionEvents.js"
import * as SessionManager from "../src/SessionManager.js"
import * as SessionMiddleware from "../src/SessionMiddleware.js"
import * as MemoryStore from "../src/SessionStore/Memory.js"

const demo = process.argv.includes("--demo")
const verbose = process.argv.includes("--verbose")
// The demo takes a free port unless told one, so that it runs beside a server on 3000.
const port = Number(process.env.PORT ?? (demo ? 0 : 3000))

// ---------------------------------------------------------------------------------------------
// Metrics: effect-session's, one line per data point, printed only when something changed

const labels = (attributes: Record<string, unknown>): string => {
  const pairs = Object.entries(attributes).map(([key, value]) => `${key}="${String(value)}"`)
  return pairs.length === 0 ? "" : `{${pairs.join(",")}}`
}

const metricLines = (metric: MetricData): Array<string> => {
  const name = metric.descriptor.name
  if (metric.dataPointType === DataPointType.HISTOGRAM) {
    return metric.dataPoints.map(({ attributes, value }) =>
      `  ${name}${labels(attributes)} count=${value.count} sum=${(value.sum ?? 0).toFixed(6)}${
        metric.descriptor.unit === "" || metric.descriptor.unit === "1" ? "" : ` ${metric.descriptor.unit}`
      }`
    )
  }
  if (metric.dataPointType === DataPointType.EXPONENTIAL_HISTOGRAM) {
    return metric.dataPoints.map(({ attributes, value }) => `  ${name}${labels(attributes)} count=${value.count}`)
  }
  return metric.dataPoints.map(({ attributes, value }) => `  ${name}${labels(attributes)} ${value}`)
}

/** A metric exporter for the console, like ConsoleMetricExporter but terse and only for effect_session_*. */
class SessionMetricsPrinter implements PushMetricExporter {
  #last = ""
  export(metrics: ResourceMetrics, done: Parameters<PushMetricExporter["export"]>[1]): void {
    const text = metrics.scopeMetrics
      .flatMap((scope) => scope.metrics)
      .filter((metric) => metric.descriptor.name.startsWith("effect_session_"))
      .sort((a, b) => a.descriptor.name.localeCompare(b.descriptor.name))
      .flatMap(metricLines)
      .join("\n")
    if (text !== this.#last) {
      this.#last = text
      console.log(`\neffect_session_* metrics:\n${text}\n`)
    }
    done({ code: 0 }) // ExportResultCode.SUCCESS
  }
  forceFlush(): Promise<void> {
    return Promise.resolve()
  }
  shutdown(): Promise<void> {
    return Promise.resolve()
  }
}

// Collects Effect's metric registry every 30 s, and once more as the SDK shuts down.
const metricReader = new PeriodicExportingMetricReader({
  exporter: new SessionMetricsPrinter(),
  exportIntervalMillis: 30_000
})

// The demo keeps each request's spans to print them as a tree.
const demoSpans = new InMemorySpanExporter()

const OtelLive = NodeSdk.layer(() => ({
  resource: { serviceName: "effect-session-example" },
  spanProcessor: [
    ...(demo ? [new SimpleSpanProcessor(demoSpans)] : []),
    ...(demo && !verbose ? [] : [new SimpleSpanProcessor(new ConsoleSpanExporter())])
  ],
  metricReader
}))

// ---------------------------------------------------------------------------------------------
// Spans, as the demo prints them: one line each, children under their parent

const millis = ([seconds, nanos]: readonly [number, number]): string => (seconds * 1e3 + nanos / 1e6).toFixed(2)

// The platform records every request and response header on its span: left out here for brevity.
const shownAttributes = (span: ReadableSpan): string =>
  Object.entries(span.attributes)
    .filter(([key]) => !/^(http\.(request|response)\.header\.|url\.(scheme|full)|user_agent|client\.)/.test(key))
    .map(([key, value]) => `${key}=${String(value)}`)
    .join(" ")

const spanTree = (spans: ReadonlyArray<ReadableSpan>): Array<string> => {
  const ids = new Set(spans.map((span) => span.spanContext().spanId))
  const parentOf = (span: ReadableSpan) => span.parentSpanContext?.spanId
  const byStart = (a: ReadableSpan, b: ReadableSpan) =>
    a.startTime[0] - b.startTime[0] || a.startTime[1] - b.startTime[1]
  const lines = (span: ReadableSpan, depth: number): Array<string> => [
    `${"  ".repeat(depth + 1)}${span.name} [${SpanKind[span.kind].toLowerCase()}, ${millis(span.duration)} ms] ${
      shownAttributes(span)
    }`.trimEnd(),
    ...spans
      .filter((child) => parentOf(child) === span.spanContext().spanId)
      .sort(byStart)
      .flatMap((child) => lines(child, depth + 1))
  ]
  return spans
    .filter((span) => parentOf(span) === undefined || !ids.has(parentOf(span)!))
    .sort(byStart)
    .flatMap((root) => lines(root, 0))
}

/** The spans of the request just answered: its `http.server` span ends as the response is sent. */
const requestSpans = Effect.gen(function*() {
  for (let wait = 0; wait < 100 && !demoSpans.getFinishedSpans().some((s) => s.kind === SpanKind.SERVER); wait++) {
    yield* Effect.sleep("5 millis")
  }
  const spans = demoSpans.getFinishedSpans()
  demoSpans.reset()
  return spans
})

// ---------------------------------------------------------------------------------------------
// Events

const ownerOf = (owner: Option.Option<SessionEvents.EventOwner>): string =>
  Option.match(owner, { onNone: () => "", onSome: ({ handle, id }) => ` owner=${id} handle=${handle}` })

/** One line per event: refs name sessions without revealing their tokens. */
const logEvent = (event: SessionEvents.SessionEvent) =>
  Effect.log(`session event: ${
    SessionEvents.SessionEvent.$match(event, {
      Created: ({ owner, ref }) => `Created ref=${ref}${ownerOf(owner)}`,
      Renewed: ({ from, owner, to }) => `Renewed ref=${from} -> ${to}${ownerOf(owner)}`,
      Destroyed: ({ owner, ref }) => `Destroyed ref=${ref}${ownerOf(owner)}`,
      Revoked: ({ count, owner }) => `Revoked owner=${owner} count=${count}`,
      Expired: ({ count, owner, ref, source }) =>
        `Expired source=${source} count=${count}${Option.match(ref, { onNone: () => "", onSome: (r) => ` ref=${r}` })}${
          ownerOf(owner)
        }`,
      OwnerBound: ({ owner, ref }) => `OwnerBound ref=${ref}${ownerOf(Option.some(owner))}`,
      OwnerUnbound: ({ owner, ref }) => `OwnerUnbound ref=${ref}${ownerOf(Option.some(owner))}`
    })
  }`)

// ---------------------------------------------------------------------------------------------
// The app

const SessionLive = SessionManager.layer({ lifetime: "24 hours" }).pipe(
  Layer.provide(MemoryStore.layer()),
  Layer.provideMerge(SessionEvents.layer)
)

const router = HttpRouter.empty.pipe(
  HttpRouter.get(
    "/put",
    Effect.gen(function*() {
      const session = yield* Session
      yield* session.put("message", "Hello from a session!")
      return HttpServerResponse.text("stored\n")
    })
  ),
  HttpRouter.get(
    "/get",
    Effect.gen(function*() {
      const session = yield* Session
      return HttpServerResponse.text(`${(yield* session.getString("message")) || "(no message)"}\n`)
    })
  ),
  HttpRouter.get(
    "/renew",
    Effect.gen(function*() {
      const session = yield* Session
      yield* session.renewToken
      return HttpServerResponse.text("renewed\n")
    })
  ),
  HttpRouter.get(
    "/login",
    Effect.gen(function*() {
      const { user } = yield* HttpServerRequest.schemaSearchParams(
        Schema.Struct({ user: Schema.NonEmptyTrimmedString })
      )
      const session = yield* Session
      yield* session.bindOwner(user, { label: "observability example" })
      return HttpServerResponse.text(`signed in as ${user}\n`)
    })
  ),
  HttpRouter.get(
    "/destroy",
    Effect.gen(function*() {
      const session = yield* Session
      yield* session.destroy
      return HttpServerResponse.text("destroyed\n")
    })
  )
)

// ---------------------------------------------------------------------------------------------
// The demo: requests to itself, with a cookie jar of one cookie

const steps: ReadonlyArray<readonly [title: string, path: string, cookie?: "stale"]> = [
  ["a new session", "/put"],
  ["read it back", "/get"],
  ["renew its token", "/renew"],
  ["sign in (binds an owner, renews the token)", "/login?user=ada"],
  ["destroy it", "/destroy"],
  ["the token from before the sign-in", "/get", "stale"]
]

const runDemo = (base: string, events: Queue.Dequeue<SessionEvents.SessionEvent>) =>
  Effect.gen(function*() {
    let cookie: string | undefined
    const cookies: Array<string> = []
    for (const [index, [title, path, use]] of steps.entries()) {
      yield* Console.log(`\n──── ${index + 1}. ${title}: GET ${path} ────`)
      const sent = use === "stale" ? cookies[1] : cookie
      const response = yield* Effect.tryPromise(() =>
        fetch(`${base}${path}`, { headers: sent === undefined ? {} : { cookie: sent } })
      )
      const body = yield* Effect.tryPromise(() => response.text())
      const setCookie = response.headers.getSetCookie()[0]
      if (setCookie !== undefined) {
        cookie = setCookie.split(";")[0]
        cookies.push(cookie)
      }
      yield* Console.log(
        `→ ${response.status} ${body.trim()}${
          setCookie === undefined
            ? ""
            : ` (Set-Cookie: ${cookie?.endsWith("=") ? `${cookie}, cleared` : "a new token, not printed"})`
        }`
      )
      yield* Console.log(["spans:", ...spanTree(yield* requestSpans)].join("\n"))
      // The events are published while the request is served, before its response.
      yield* Effect.forEach(yield* Queue.takeAll(events), logEvent, { discard: true })
    }
    yield* Console.log("\n──── metrics ────")
    yield* Effect.promise(() => metricReader.forceFlush())
  })

// ---------------------------------------------------------------------------------------------

const main = Effect.gen(function*() {
  const events = yield* SessionEvents.SessionEvents
  // Subscribed before the first request; a subscriber that falls 4,096 events behind loses the newest.
  const queue = yield* events.subscribe()
  yield* HttpServer.serveEffect(SessionMiddleware.loadAndSave(router))
  const base = yield* HttpServer.addressWith((address) =>
    Effect.succeed(address._tag === "TcpAddress" ? `http://localhost:${address.port}` : "")
  )
  yield* Effect.log(`listening on ${base}`)
  if (demo) return yield* runDemo(base, queue)
  yield* Effect.forkScoped(Effect.forever(Effect.flatMap(Queue.take(queue), logEvent)))
  return yield* Effect.never
})

main.pipe(
  Effect.scoped,
  Effect.provide(Layer.merge(SessionLive, NodeHttpServer.layer(createServer, { port }))),
  Effect.provide(OtelLive),
  NodeRuntime.runMain
)
