/**
 * The OpenTelemetry harness of `test/otel.ts` itself, with only Effect and the platform: a served request's span
 * and a tagged Effect counter come out of the real SDK pipeline, parented and labelled as they were made.
 */
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpServer from "@effect/platform/HttpServer"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as MetricBoundaries from "effect/MetricBoundaries"
import * as TestClock from "effect/TestClock"
import { hasPath, makeOtel, renderTree } from "./otel.js"

const served = (counter: string) =>
  HttpServer.serve(
    Effect.gen(function*() {
      yield* Effect.withSpan(Effect.void, "child")
      // `incremental` makes it a monotonic OTel sum ("counter"); a plain Metric.counter exports as an up-down counter.
      yield* Metric.increment(Metric.counter(counter, { incremental: true })).pipe(
        Effect.tagMetrics("route", "harness")
      )
      return HttpServerResponse.text("ok")
    })
  ).pipe(Layer.provideMerge(NodeHttpServer.layerTest))

describe("the otel test harness", () => {
  it.effect("exports the platform's server span as the parent of the handler's span, and the tagged counter", () => {
    const otel = makeOtel()
    const counter = "effect_session_harness_total"
    return Effect.gen(function*() {
      const body = yield* Effect.gen(function*() {
        const client = yield* HttpClient.HttpClient
        const response = yield* client.get("/")
        return yield* response.text
      }).pipe(Effect.provide(served(counter).pipe(Layer.provideMerge(otel.layer))))
      expect(body).toBe("ok")

      // The layer is closed here: the provider flushed, and the exporter kept the spans.
      const tree = renderTree(otel.spans())
      expect(tree, tree).toBe(["http.client GET", "  http.server GET", "    child"].join("\n"))
      expect(hasPath(otel.spans(), ["http.server GET", "child"])).toBe(true)

      const metric = yield* otel.metric(counter)
      expect(metric).toMatchObject({ type: "counter", points: [{ attributes: { route: "harness" }, value: 1 }] })

      otel.reset()
      expect(otel.spans()).toEqual([])
    })
  })

  // it.layer carries the tracer into each test's fiber; spans then take their times from the TestClock.
  const otel = makeOtel()
  it.layer(otel.layer)((it) => {
    it.effect("records the body's spans under it.layer, at TestClock times, and exports histograms and gauges", () =>
      Effect.gen(function*() {
        yield* TestClock.setTime(Date.UTC(2026, 0, 1))
        const slept = yield* Effect.sleep("2 seconds").pipe(
          Effect.withSpan("outer"),
          Effect.withSpan("root"),
          Effect.fork
        )
        yield* TestClock.adjust("2 seconds")
        yield* Fiber.join(slept)
        const histogram = Metric.histogram("effect_session_harness_ms", MetricBoundaries.fromIterable([10, 100]))
        yield* Metric.update(histogram, 42).pipe(Effect.tagMetrics("unit", "ms"))
        yield* Metric.set(Metric.gauge("effect_session_harness_gauge"), 7)

        expect(hasPath(otel.spans(), ["root", "outer"])).toBe(true)
        const outer = otel.spans().find((span) => span.name === "outer")
        expect([outer?.startTime, outer?.endTime]).toEqual([[1767225600, 0], [1767225602, 0]])
        expect(yield* otel.metric("effect_session_harness_ms")).toMatchObject({
          type: "histogram",
          unit: "ms",
          points: [{ attributes: { unit: "ms" }, count: 1, sum: 42, boundaries: [10, 100], counts: [0, 1, 0] }]
        })
        expect(yield* otel.metric("effect_session_harness_gauge")).toMatchObject({
          type: "gauge",
          points: [{ value: 7 }]
        })
      }))
  })
})
