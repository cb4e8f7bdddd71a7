/**
 * The platform's `http.server` span records every request and response header it is not told to
 * redact: with the header transport, that would put the token in a trace. `layerHeader` (and
 * `layerRedactHeaders` beside `SessionMiddleware.make`) tells it, through a real OpenTelemetry pipeline.
 */
import * as HttpServer from "@effect/platform/HttpServer"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { Session } from "../src/Session.js"
import * as SessionManager from "../src/SessionManager.js"
import * as SessionMiddleware from "../src/SessionMiddleware.js"
import * as MemoryStore from "../src/SessionStore/Memory.js"
import * as SessionTransport from "../src/SessionTransport.js"
import { call, serveLayer } from "./http.js"
import { makeOtel, spanStrings } from "./otel.js"

const app = Effect.gen(function*() {
  const session = yield* Session
  yield* session.put("n", 1)
  return HttpServerResponse.text("ok")
})

const SessionLive = SessionManager.layer().pipe(Layer.provide(MemoryStore.layer()))

// Requests with the token in a custom header, then the token found in the spans' strings (or not).
const tokensInSpans = <E>(server: Layer.Layer<never, E, HttpServer.HttpServer>) => {
  const otel = makeOtel()
  return Effect.gen(function*() {
    const tokens = yield* Effect.scoped(Effect.gen(function*() {
      const served = yield* serveLayer(server.pipe(Layer.provide(otel.layer)))
      const first = yield* call(served, "/")
      const token = first.headers.get("x-session-token") ?? ""
      expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/)
      yield* call(served, "/", { headers: { "x-session": token } })
      return [token]
    }))
    const serverSpans = otel.spans().filter((span) => span.name.startsWith("http.server"))
    expect(serverSpans.length).toBe(2)
    return serverSpans.flatMap(spanStrings).filter((text) => tokens.some((token) => text.includes(token)))
  })
}

describe("the header transport's token in the platform's spans", () => {
  const options = { requestHeader: "X-Session" }

  it.live("layerHeader: the request and response headers show <redacted>", () =>
    Effect.gen(function*() {
      const server = HttpServer.serve(SessionMiddleware.loadAndSave(app)).pipe(
        Layer.provide(SessionTransport.layerHeader(options)),
        Layer.provide(SessionLive)
      )
      expect(yield* tokensInSpans(server)).toEqual([])
    }))

  it.live("make({ transport: header() }) with layerRedactHeaders beneath the server", () =>
    Effect.gen(function*() {
      const server = HttpServer.serve(
        SessionMiddleware.make({ transport: SessionTransport.header(options) })(app)
      ).pipe(Layer.provide(SessionTransport.layerRedactHeaders(options)), Layer.provide(SessionLive))
      expect(yield* tokensInSpans(server)).toEqual([])
    }))

  it.live("without it, the platform records the token (what the layer prevents)", () =>
    Effect.gen(function*() {
      const server = HttpServer.serve(
        SessionMiddleware.make({ transport: SessionTransport.header(options) })(app)
      ).pipe(Layer.provide(SessionLive))
      expect((yield* tokensInSpans(server)).length).toBeGreaterThan(0)
    }))
})
