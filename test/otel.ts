/**
 * A real OpenTelemetry pipeline for tests: `NodeSdk.layer` from `@effect/opentelemetry` with the SDK's
 * `InMemorySpanExporter` behind a `SimpleSpanProcessor` and a metric reader collected on demand, so
 * that a test proves spans and metrics as an exporter would see them, not as Effect holds them.
 */
import * as NodeSdk from "@effect/opentelemetry/NodeSdk"
import type * as Resource from "@effect/opentelemetry/Resource"
import type { Attributes, AttributeValue } from "@opentelemetry/api"
import { DataPointType, MetricReader } from "@opentelemetry/sdk-metrics"
import type { CollectionResult, Histogram } from "@opentelemetry/sdk-metrics"
import { InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base"
import type { ReadableSpan } from "@opentelemetry/sdk-trace-base"
import * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"

export type { ReadableSpan }

/** One data point of a counter, up-down counter or gauge, with the attributes its Effect metric was tagged with. */
export interface NumberPoint {
  readonly attributes: Attributes
  readonly value: number
}

/** One data point of a histogram: the totals, and the bucket counts (not cumulative) per upper boundary. */
export interface HistogramPoint {
  readonly attributes: Attributes
  readonly count: number
  readonly sum: number
  readonly min: number | undefined
  readonly max: number | undefined
  /** The upper boundaries; the last bucket (`counts` has one more entry) is everything above them. */
  readonly boundaries: ReadonlyArray<number>
  readonly counts: ReadonlyArray<number>
}

/** The shared fields of one exported metric. */
interface MetricBase {
  readonly name: string
  readonly description: string
  /** From the Effect metric's `unit` or `time_unit` tag, else `"1"`. */
  readonly unit: string
}

/** One exported metric, in a shape that reads well in `expect`: narrow on `type` to get histogram points. */
export type CollectedMetric =
  | MetricBase & { readonly type: "counter" | "updown" | "gauge"; readonly points: ReadonlyArray<NumberPoint> }
  | MetricBase & { readonly type: "histogram"; readonly points: ReadonlyArray<HistogramPoint> }

/** What `makeOtel` hands a test: the layer to provide, and what came out of the pipeline. */
export interface Otel {
  /** Tracer and metrics; each build gets a fresh span processor and metric reader around the shared exporter. */
  readonly layer: Layer.Layer<Resource.Resource>
  /** The finished spans, in the order they ended (children before their parent); still there after the layer closed. */
  readonly spans: () => ReadonlyArray<ReadableSpan>
  /**
   * Every Effect metric of the process (Effect's registry is global: give each test its own metric names), as a
   * reader collects it now; after the layer closed, as it was collected at the close.
   */
  readonly metrics: () => Effect.Effect<ReadonlyArray<CollectedMetric>>
  /** The metric named `name`, or `undefined` when nothing recorded it yet. */
  readonly metric: (name: string) => Effect.Effect<CollectedMetric | undefined>
  /** Forgets the finished spans (metrics are cumulative and cannot be reset). */
  readonly reset: () => void
}

/**
 * `NodeSdk.layer` shuts its span processor down when the layer closes, and `InMemorySpanExporter.shutdown`
 * drops the spans and refuses later ones; this one keeps them, so a test reads spans after its scope closed
 * and the exporter serves every build of the layer.
 */
class KeepingSpanExporter extends InMemorySpanExporter {
  override shutdown(): Promise<void> {
    return this.forceFlush()
  }
}

/** A pull reader: collects when a test asks, and once more as the layer closes (a shut reader cannot collect). */
class OnDemandReader extends MetricReader {
  constructor(private readonly onClose: (last: CollectionResult) => void) {
    super()
  }
  protected override async onShutdown(): Promise<void> {
    this.onClose(await this.collect())
  }
  protected override onForceFlush(): Promise<void> {
    return Promise.resolve()
  }
}

const numberPoints = (points: ReadonlyArray<{ attributes: Attributes; value: unknown }>): Array<NumberPoint> =>
  points.map((point) => ({ attributes: point.attributes, value: Number(point.value) }))

const histogramPoints = (points: ReadonlyArray<{ attributes: Attributes; value: unknown }>): Array<HistogramPoint> =>
  points.map((point) => {
    const value = point.value as Histogram
    return {
      attributes: point.attributes,
      count: value.count,
      sum: value.sum ?? 0,
      min: value.min,
      max: value.max,
      boundaries: value.buckets.boundaries,
      counts: value.buckets.counts
    }
  })

const simplify = (result: CollectionResult): Array<CollectedMetric> =>
  result.resourceMetrics.scopeMetrics.flatMap((scope) =>
    scope.metrics.map((data): CollectedMetric => {
      const base = {
        name: data.descriptor.name,
        description: data.descriptor.description,
        unit: data.descriptor.unit
      }
      switch (data.dataPointType) {
        case DataPointType.SUM:
          return { ...base, type: data.isMonotonic ? "counter" : "updown", points: numberPoints(data.dataPoints) }
        case DataPointType.GAUGE:
          return { ...base, type: "gauge", points: numberPoints(data.dataPoints) }
        case DataPointType.HISTOGRAM:
          return { ...base, type: "histogram", points: histogramPoints(data.dataPoints) }
        default:
          throw new Error(`metric ${base.name}: data point type ${data.dataPointType} is not handled by test/otel.ts`)
      }
    })
  )

/** A fresh pipeline per test file (or per test): its exporter holds only the spans of layers built from it. */
export const makeOtel = (options?: { readonly serviceName?: string }): Otel => {
  const exporter = new KeepingSpanExporter()
  const live = new Set<OnDemandReader>()
  let last: CollectionResult | undefined = undefined

  const layer = NodeSdk.layer(() => {
    const reader: OnDemandReader = new OnDemandReader((result) => {
      live.delete(reader)
      last = result
    })
    live.add(reader)
    return {
      resource: { serviceName: options?.serviceName ?? "effect-session-test" },
      spanProcessor: new SimpleSpanProcessor(exporter),
      metricReader: reader
    }
  })

  const metrics = () =>
    Effect.suspend(() => {
      const [reader] = live
      if (reader !== undefined) return Effect.map(Effect.promise(() => reader.collect()), simplify)
      if (last !== undefined) return Effect.succeed(simplify(last))
      return Effect.dieMessage("test/otel.ts: metrics() before the otel layer was ever built")
    })

  return {
    layer,
    spans: () => [...exporter.getFinishedSpans()],
    metrics,
    metric: (name) => Effect.map(metrics(), (all) => all.find((m) => m.name === name)),
    reset: () => exporter.reset()
  }
}

/** A span with the spans whose parent it is, so a test can check who ran inside what. */
export interface SpanNode {
  readonly span: ReadableSpan
  readonly children: ReadonlyArray<SpanNode>
}

const compareTime = (a: ReadableSpan, b: ReadableSpan): number =>
  a.startTime[0] - b.startTime[0] || a.startTime[1] - b.startTime[1]

/**
 * The spans as trees, linked by `parentSpanContext.spanId` (sdk-trace 2.x; 1.x had `parentSpanId`). A span whose
 * parent is not among `spans` (an ended-later or remote parent) is a root. Siblings are in start order.
 */
export const spanTree = (spans: ReadonlyArray<ReadableSpan>): ReadonlyArray<SpanNode> => {
  const byId = new Map(spans.map((span) => [span.spanContext().spanId, span]))
  const children = new Map<string, Array<ReadableSpan>>()
  const roots: Array<ReadableSpan> = []
  for (const span of spans) {
    const parentId = span.parentSpanContext?.spanId
    if (parentId === undefined || !byId.has(parentId)) roots.push(span)
    else children.set(parentId, [...(children.get(parentId) ?? []), span])
  }
  const node = (span: ReadableSpan): SpanNode => ({
    span,
    children: [...(children.get(span.spanContext().spanId) ?? [])].sort(compareTime).map(node)
  })
  return [...roots].sort(compareTime).map(node)
}

/** The trees as indented names, two spaces a level, one span a line: short to assert, readable when it fails. */
export const renderTree = (spans: ReadonlyArray<ReadableSpan>): string => {
  const lines: Array<string> = []
  const walk = (node: SpanNode, depth: number): void => {
    lines.push("  ".repeat(depth) + node.span.name)
    for (const child of node.children) walk(child, depth + 1)
  }
  for (const root of spanTree(spans)) walk(root, 0)
  return lines.join("\n")
}

/**
 * Whether some span named `names[0]` has a direct child named `names[1]`, which has one named `names[2]`, and so
 * on: `hasPath(spans, ["http.server GET", "session.load", "session.store.find"])`.
 */
export const hasPath = (spans: ReadonlyArray<ReadableSpan>, names: ReadonlyArray<string>): boolean => {
  const from = (node: SpanNode, rest: ReadonlyArray<string>): boolean =>
    node.span.name === rest[0] && (rest.length === 1 || node.children.some((child) => from(child, rest.slice(1))))
  const anywhere = (node: SpanNode): boolean => from(node, names) || node.children.some(anywhere)
  return names.length > 0 && spanTree(spans).some(anywhere)
}

const valueStrings = (value: AttributeValue | undefined): Array<string> =>
  value === undefined || value === null
    ? []
    : Array.isArray(value)
    ? value.flatMap((item) => (item === undefined || item === null ? [] : [String(item)]))
    : [String(value)]

const attributeStrings = (attributes: Attributes | undefined): Array<string> =>
  Object.entries(attributes ?? {}).flatMap(([key, value]) => [key, ...valueStrings(value)])

/**
 * Every string a span carries that could leak a secret to a collector: its name, attribute keys and values, event
 * names with their attributes (`exception.message`, `exception.stacktrace`), status message, and links' attributes
 * and trace state. Not the resource, which is the same for every span.
 */
export const spanStrings = (span: ReadableSpan): ReadonlyArray<string> => [
  span.name,
  ...attributeStrings(span.attributes),
  ...span.events.flatMap((event) => [event.name, ...attributeStrings(event.attributes)]),
  ...(span.status.message === undefined ? [] : [span.status.message]),
  ...span.links.flatMap((link) => [
    ...attributeStrings(link.attributes),
    ...(link.context.traceState === undefined ? [] : [link.context.traceState.serialize()])
  ])
]
