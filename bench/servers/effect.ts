/**
 * @effect/platform on NodeHttpServer, bare (`--mode bare`) or with effect-session's
 * `SessionMiddleware.loadAndSave` (`--mode session`).
 *
 * Options for the session mode:
 * - `--store memory|redis|pg|sealed` (default memory); `sealed` runs no store: the whole session
 *   travels sealed in its cookie (`Sealed.layer`, one fixed secret, the same lifetime as the
 *   stores), in place of `SessionManager.layer` and a store;
 * - `--prefill N`: commit N two-value sessions through the `SessionManager` before listening (not
 *   with `sealed`: there is nowhere to keep them);
 * - `--count`: wrap the `SessionStore` to count its calls, reported by `GET /__stats` (not with
 *   `sealed`: there is no store to count);
 * - `--owned`: `/login` also binds the session to an owner of its own (`bindOwner`, with a label),
 *   so `get` and `incr` run on logged-in users' sessions, whose records carry the owner (with
 *   `sealed`, the owner travels in the seal).
 *
 * In either mode, `--otel` installs the OpenTelemetry SDK (`NodeSdk.layer` from
 * @effect/opentelemetry) as an application would in production: a `BatchSpanProcessor` with its
 * default settings and a `PeriodicExportingMetricReader` at the SDK's default interval (60 s),
 * whose exporters discard what they are handed, so that what is measured is the SDK and the
 * spans, not a collector. `GET /__spans` flushes the batch and answers how many spans reached the exporter.
 */
import * as NodeSdk from "@effect/opentelemetry/NodeSdk"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServer from "@effect/platform/HttpServer"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { PeriodicExportingMetricReader, type PushMetricExporter } from "@opentelemetry/sdk-metrics"
import { BatchSpanProcessor, type SpanExporter } from "@opentelemetry/sdk-trace-base"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Redacted from "effect/Redacted"
import { randomBytes } from "node:crypto"
import { createServer } from "node:http"
import * as SessionManager from "../../src/SessionManager.js"
import * as Sealed from "../../src/SessionManager/Sealed.js"
import * as SessionMiddleware from "../../src/SessionMiddleware.js"
import { SessionStore } from "../../src/SessionStore.js"
import * as Minimal from "../minimal.js"
import { sessionRoutes } from "../routes.js"
import { announce, argValue, BARE_USER, cpuMicros, userValue } from "../shared.js"
import { storeLayer } from "../stores.js"

const mode = argValue("mode", "session")
const storeName = argValue("store", "memory")
const prefill = Number(argValue("prefill", "0"))
const counting = process.argv.includes("--count")
const owned = process.argv.includes("--owned")
const otel = process.argv.includes("--otel")
const sealed = storeName === "sealed"

if (sealed && (prefill > 0 || counting)) {
  const refused = prefill > 0 ? "--prefill" : "--count"
  console.error(
    `effect-session server: --store sealed keeps no sessions on the server: ${refused} has no store to act on`
  )
  process.exit(2)
}

const ServerLive = NodeHttpServer.layer(createServer, { port: 0, host: "127.0.0.1" })

const ready = <R>(before: Effect.Effect<void, unknown, R>) =>
  Layer.effectDiscard(Effect.gen(function*() {
    yield* before
    const server = yield* HttpServer.HttpServer
    if (server.address._tag === "TcpAddress") announce(server.address.port)
  }))

// ---------------------------------------------------------------------------------------------
// The OpenTelemetry SDK, exporting nowhere

/** Spans that reached the exporter (the batch processor drops those that overflow its queue). */
let exportedSpans = 0

// `ExportResultCode.SUCCESS` from @opentelemetry/core, not a dependency of ours.
const SUCCESS = 0

/** Takes every batch of spans and reports success at once, as an exporter with an instant network would. */
class DiscardingSpanExporter implements SpanExporter {
  export(spans: Parameters<SpanExporter["export"]>[0], done: Parameters<SpanExporter["export"]>[1]): void {
    exportedSpans += spans.length
    done({ code: SUCCESS })
  }
  shutdown(): Promise<void> {
    return Promise.resolve()
  }
}

class DiscardingMetricExporter implements PushMetricExporter {
  export(_: Parameters<PushMetricExporter["export"]>[0], done: Parameters<PushMetricExporter["export"]>[1]): void {
    done({ code: SUCCESS })
  }
  forceFlush(): Promise<void> {
    return Promise.resolve()
  }
  shutdown(): Promise<void> {
    return Promise.resolve()
  }
}

const spanProcessor = new BatchSpanProcessor(new DiscardingSpanExporter())

const OtelLive = NodeSdk.layer(() => ({
  resource: { serviceName: "effect-session-bench" },
  spanProcessor,
  // Reads Effect's metric registry only when it collects: nothing per request.
  metricReader: new PeriodicExportingMetricReader({
    exporter: new DiscardingMetricExporter(),
    exportIntervalMillis: 60_000
  })
}))

// Flushes the batch first, so that the count is exact (the runner reads it outside the CPU measurement).
// Only with `--otel`: the other servers' routers stay as they were.
const spansRoute = <E, R>(router: HttpRouter.HttpRouter<E, R>): HttpRouter.HttpRouter<E, R> =>
  otel
    ? HttpRouter.get(
      router,
      "/__spans",
      Effect.map(Effect.promise(() => spanProcessor.forceFlush()), () => HttpServerResponse.text(String(exportedSpans)))
    )
    : router

// ---------------------------------------------------------------------------------------------
// Servers

const bare = () => {
  let counter = 0
  const router = HttpRouter.empty.pipe(
    HttpRouter.get(
      "/login",
      Effect.sync(() =>
        HttpServerResponse.text("ok", {
          headers: { "set-cookie": `sid=${randomBytes(32).toString("base64url")}; Path=/; HttpOnly` }
        })
      )
    ),
    // Responses are built per request, as a handler (and the peers' bare servers) would.
    HttpRouter.get("/get", Effect.sync(() => HttpServerResponse.text(BARE_USER))),
    HttpRouter.get("/incr", Effect.sync(() => HttpServerResponse.text(String(++counter)))),
    HttpRouter.get("/new", Effect.sync(() => HttpServerResponse.text("ok"))),
    HttpRouter.get("/__cpu", Effect.sync(() => HttpServerResponse.text(String(cpuMicros())))),
    spansRoute
  )
  return Layer.mergeAll(
    HttpServer.serve(router),
    ready(Effect.void)
  ).pipe(Layer.provide(ServerLive))
}

/** Calls made to the store, and requests served by the three measured routes. */
const stats = { requests: 0, find: 0, commit: 0, take: 0, touch: 0, delete: 0 }

const CountingStore = Layer.effect(
  SessionStore,
  Effect.map(SessionStore, (store): SessionStore => ({
    find: (key) => Effect.suspend(() => (stats.find++, store.find(key))),
    commit: (key, data, expiresAt, mode) =>
      Effect.suspend(() => (stats.commit++, store.commit(key, data, expiresAt, mode))),
    take: (key) => Effect.suspend(() => (stats.take++, store.take(key))),
    touch: (key, expiresAt) => Effect.suspend(() => (stats.touch++, store.touch(key, expiresAt))),
    delete: (key) => Effect.suspend(() => (stats.delete++, store.delete(key))),
    all: store.all,
    owners: store.owners
  }))
)

/** The manager's options, the same for every store and for sealed cookies. */
const managerOptions: SessionManager.Options = { lifetime: "24 hours" }

/** A fixed secret (at least 32 bytes): the bench measures sealing, not key management. */
const benchSecret: Sealed.Secret = {
  id: "bench",
  secret: Redacted.make("effect-session-bench-secret-0123456789abcdef")
}

/** The `SessionManager`: store-backed (on a counting wrapper with `--count`), or sealed cookies. */
const sessionLayer = async (): Promise<Layer.Layer<SessionManager.SessionManager, unknown>> => {
  if (sealed) return Sealed.layer({ ...managerOptions, secrets: [benchSecret] })
  const store = await storeLayer(storeName, prefill)
  if (store._tag === "Unavailable") {
    console.error(`effect-session server: ${store.reason}`)
    process.exit(3)
  }
  const StoreLive = counting ? CountingStore.pipe(Layer.provide(store.layer)) : store.layer
  return SessionManager.layer(managerOptions).pipe(Layer.provide(StoreLive))
}

const withSession = async () => {
  const SessionLive = await sessionLayer()
  const router = sessionRoutes({
    owned,
    firstUser: prefill,
    ...(counting ? { measured: (route) => Effect.zipRight(Effect.sync(() => stats.requests++), route) } : {})
  }).pipe(
    HttpRouter.get("/__stats", Effect.sync(() => HttpServerResponse.unsafeJson(stats))),
    HttpRouter.get("/__cpu", Effect.sync(() => HttpServerResponse.text(String(cpuMicros())))),
    spansRoute,
    HttpRouter.get(
      "/__reset",
      Effect.sync(() => {
        stats.requests =
          stats.find =
          stats.commit =
          stats.take =
          stats.touch =
          stats.delete =
            0
        return HttpServerResponse.text("ok")
      })
    )
  )
  // The pre-fill goes through the manager, so the store holds exactly what requests would write.
  const fill = Effect.gen(function*() {
    const manager = yield* SessionManager.SessionManager
    for (let i = 0; i < prefill; i++) {
      const session = yield* manager.load(undefined)
      yield* session.put("user", userValue(i))
      yield* session.put("count", 0)
      yield* manager.commit(session)
    }
  })
  return Layer.mergeAll(HttpServer.serve(SessionMiddleware.loadAndSave(router)), ready(fill)).pipe(
    Layer.provide(SessionLive),
    Layer.provide(ServerLive)
  )
}

/**
 * `--mode headers`: the bare routes, answering with the headers effect-session's responses carry
 * and nothing else: `Vary: Cookie` on every route, and on the writing routes (`/incr`, `/new`,
 * `/login`) a `Set-Cookie` of a fixed 43-character token with the default attributes and
 * `Cache-Control`, built through the platform's `Cookies` as the cookie transport builds them. No
 * session is read or written. Its CPU above bare-effect is what the headers alone cost: the part
 * of a session library's added cost on @effect/platform that no library work can remove.
 */
const headersOnly = () => {
  let counter = 0
  const token = "bhFICnmpuuRyqxAci_tt6XBK-m_pPxFroLmpPlJzm50"
  const vary = (response: HttpServerResponse.HttpServerResponse) =>
    HttpServerResponse.setHeader(response, "Vary", "Cookie")
  const written = (response: HttpServerResponse.HttpServerResponse) => {
    const now = Date.now()
    const expiresAt = now + 86_400_000
    return vary(HttpServerResponse.setHeader(
      HttpServerResponse.unsafeSetCookie(response, "session", token, {
        path: "/",
        domain: undefined,
        httpOnly: true,
        secure: true,
        partitioned: false,
        sameSite: "lax",
        expires: new Date(Math.ceil(expiresAt / 1000) * 1000),
        maxAge: Duration.seconds(Math.ceil((expiresAt - now) / 1000))
      }),
      "Cache-Control",
      "private, no-cache=\"Set-Cookie\""
    ))
  }
  const router = HttpRouter.empty.pipe(
    HttpRouter.get("/login", Effect.sync(() => written(HttpServerResponse.text("ok")))),
    HttpRouter.get("/get", Effect.sync(() => vary(HttpServerResponse.text(BARE_USER)))),
    HttpRouter.get("/incr", Effect.sync(() => written(HttpServerResponse.text(String(++counter))))),
    HttpRouter.get("/new", Effect.sync(() => written(HttpServerResponse.text("ok")))),
    HttpRouter.get("/__cpu", Effect.sync(() => HttpServerResponse.text(String(cpuMicros())))),
    spansRoute
  )
  return Layer.mergeAll(HttpServer.serve(router), ready(Effect.void)).pipe(Layer.provide(ServerLive))
}

/** `--mode minimal`: the routes under the least session middleware (see bench/minimal.ts). */
const minimal = () =>
  Layer.mergeAll(
    HttpServer.serve(
      HttpRouter.get(
        Minimal.routes,
        "/__cpu",
        Effect.sync(() => HttpServerResponse.text(String(cpuMicros())))
      ).pipe(Minimal.middleware)
    ),
    ready(Effect.void)
  ).pipe(Layer.provide(ServerLive))

const app = mode === "bare"
  ? bare()
  : mode === "headers"
  ? headersOnly()
  : mode === "minimal"
  ? minimal()
  : await withSession()
const main = otel ? Layer.provide(app, OtelLive) : app

main.pipe(
  Layer.launch,
  Logger.withMinimumLogLevel(LogLevel.Warning),
  NodeRuntime.runMain
)
