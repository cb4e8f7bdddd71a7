/**
 * The span audit of the conformance suites: a recording `Tracer`, a recorder of the secrets that
 * pass through a store, a lock or a manager (store keys, tokens, session data), and a check that
 * no recorded secret shows in any string a span carries. `storeConformance` and
 * `lockConformance` run every case under it, so a store or lock whose spans (its own, those of
 * its driver, or the library's around it) name a key or carry a payload fails the suite.
 *
 * ```ts
 * import { audited, recordingStoreLayer } from "effect-session/testing/SpanAudit"
 *
 * it.scoped("my store's spans name no key", () =>
 *   audited(Effect.provide(myCase, recordingStoreLayer(MyStore.layer()))))
 * ```
 *
 * What a span carries is taken as an OpenTelemetry exporter would get it from
 * `@effect/opentelemetry`: the name, the attributes (a value that is not a string, number or
 * boolean rendered as `Inspectable.toStringUnknown` renders it), the events with their attributes
 * (Effect's logs inside a span become events, a logged cause as `effect.cause`), the attributes
 * of links, and, for a span that ended in failure, its cause rendered by
 * `Cause.pretty(cause, { renderErrorCause: true })`: the exception a collector receives, where
 * the error of a driver (and whatever it quotes of a query) would show.
 *
 * @since 0.2.0
 */
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import type * as Exit from "effect/Exit"
import * as FiberRef from "effect/FiberRef"
import * as Inspectable from "effect/Inspectable"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Tracer from "effect/Tracer"
import { expect } from "vitest"
import { SessionLock } from "../SessionLock.js"
import type * as SessionManager from "../SessionManager.js"
import { SessionStore } from "../SessionStore.js"
import type { OwnerIndex } from "../SessionStore.js"

/**
 * An event of a recorded span: a log written inside it, say.
 *
 * @since 0.2.0
 * @category models
 */
export interface RecordedEvent {
  readonly name: string
  readonly attributes: Readonly<Record<string, unknown>>
}

/**
 * A span as the recording tracer keeps it.
 *
 * @since 0.2.0
 * @category models
 */
export interface RecordedSpan {
  readonly name: string
  readonly kind: Tracer.SpanKind
  readonly attributes: ReadonlyMap<string, unknown>
  readonly events: ReadonlyArray<RecordedEvent>
  /** The attributes of each link, in the order the links were added. */
  readonly links: ReadonlyArray<Readonly<Record<string, unknown>>>
  /**
   * How the span ended: none while it runs or when it succeeded; for a failure or an
   * interruption, the cause as `@effect/opentelemetry` renders it for the exception it records.
   */
  readonly failure: Option.Option<string>
  readonly ended: boolean
}

/**
 * A `Tracer` that keeps every span it makes, ended or not, for `spans` to read.
 *
 * @since 0.2.0
 * @category models
 */
export interface RecordingTracer {
  readonly tracer: Tracer.Tracer
  /** Every span made so far, in the order they started. */
  readonly spans: () => ReadonlyArray<RecordedSpan>
}

const randomHex = (bytes: number): string =>
  Array.from(crypto.getRandomValues(new Uint8Array(bytes)), (byte) => byte.toString(16).padStart(2, "0")).join("")

/** How `@effect/opentelemetry` renders a failed or interrupted exit for its exporter. */
const renderFailure = (exit: Exit.Exit<unknown, unknown>): Option.Option<string> =>
  exit._tag === "Success" ? Option.none() : Option.some(Cause.pretty(exit.cause, { renderErrorCause: true }))

class Recorded implements Tracer.Span {
  readonly _tag = "Span"
  readonly spanId: string = randomHex(8)
  readonly traceId: string
  readonly sampled = true
  readonly attributes = new Map<string, unknown>()
  readonly events: Array<RecordedEvent> = []
  readonly links: Array<Tracer.SpanLink>
  status: Tracer.SpanStatus
  failure: Option.Option<string> = Option.none()

  constructor(
    readonly name: string,
    readonly parent: Option.Option<Tracer.AnySpan>,
    readonly context: Context.Context<never>,
    links: ReadonlyArray<Tracer.SpanLink>,
    startTime: bigint,
    readonly kind: Tracer.SpanKind
  ) {
    this.traceId = Option.isSome(parent) ? parent.value.traceId : randomHex(16)
    this.links = [...links]
    this.status = { _tag: "Started", startTime }
  }

  get ended(): boolean {
    return this.status._tag === "Ended"
  }

  end(endTime: bigint, exit: Exit.Exit<unknown, unknown>): void {
    this.status = { _tag: "Ended", startTime: this.status.startTime, endTime, exit }
    this.failure = renderFailure(exit)
  }

  attribute(key: string, value: unknown): void {
    this.attributes.set(key, value)
  }

  event(name: string, _startTime: bigint, attributes?: Record<string, unknown>): void {
    this.events.push({ name, attributes: { ...attributes } })
  }

  addLinks(links: ReadonlyArray<Tracer.SpanLink>): void {
    for (const link of links) this.links.push(link)
  }
}

const asRecordedSpan = (span: Recorded): RecordedSpan => ({
  name: span.name,
  kind: span.kind,
  attributes: span.attributes,
  events: span.events,
  links: span.links.map((link) => link.attributes),
  failure: span.failure,
  ended: span.ended
})

/**
 * A fresh recording tracer. Install it with `Effect.withTracer` around everything whose spans
 * should be kept, layers included: fibers forked from there (a store's sweep) inherit it.
 *
 * @since 0.2.0
 * @category constructors
 */
export const makeRecordingTracer = (): RecordingTracer => {
  const spans: Array<Recorded> = []
  const tracer = Tracer.make({
    span: (name, parent, context, links, startTime, kind) => {
      const span = new Recorded(name, parent, context, links, startTime, kind)
      spans.push(span)
      return span
    },
    context: (f) => f()
  })
  return { tracer, spans: () => spans.map(asRecordedSpan) }
}

/**
 * One string a span carries, and where: `"name"`, `"attribute <key>"`, `"event <name>"`,
 * `"event <name> attribute <key>"`, `"link attribute <key>"` or `"failure"`.
 *
 * @since 0.2.0
 * @category models
 */
export interface SpanString {
  readonly span: string
  readonly field: string
  readonly value: string
}

/** An attribute value as `@effect/opentelemetry` hands it to the SDK. */
const render = (value: unknown): string =>
  typeof value === "string" || typeof value === "number" || typeof value === "boolean" || typeof value === "bigint"
    ? String(value)
    : Inspectable.toStringUnknown(value)

const attributeStrings = (
  span: string,
  prefix: string,
  attributes: Iterable<readonly [string, unknown]>
): Array<SpanString> =>
  Array.from(attributes).flatMap(([key, value]) => [
    { span, field: `${prefix}attribute key`, value: key },
    { span, field: `${prefix}attribute ${key}`, value: render(value) }
  ])

/**
 * Every string `span` carries that an exporter would send (see the module's documentation).
 *
 * @since 0.2.0
 * @category audit
 */
export const spanStrings = (span: RecordedSpan): ReadonlyArray<SpanString> => [
  { span: span.name, field: "name", value: span.name },
  ...attributeStrings(span.name, "", span.attributes),
  ...span.events.flatMap((event) => [
    { span: span.name, field: "event", value: event.name },
    ...attributeStrings(span.name, `event ${event.name} `, Object.entries(event.attributes))
  ]),
  ...span.links.flatMap((attributes) => attributeStrings(span.name, "link ", Object.entries(attributes))),
  ...Option.match(span.failure, {
    onNone: () => [],
    onSome: (value) => [{ span: span.name, field: "failure", value }]
  })
]

/**
 * The secrets seen during one audited run: every string given to `record` of at least
 * `minLength` characters (shorter ones, such as a test's `"x"` payload, would match by chance).
 *
 * @since 0.2.0
 * @category models
 */
export interface SecretRecorder {
  readonly record: (value: string) => void
  readonly secrets: () => ReadonlyArray<string>
}

/**
 * @since 0.2.0
 * @category constructors
 */
export const makeSecretRecorder = (options?: { readonly minLength?: number | undefined }): SecretRecorder => {
  const minLength = options?.minLength ?? 8
  const secrets = new Set<string>()
  return {
    record: (value) => {
      if (value.length >= minLength) secrets.add(value)
    },
    secrets: () => [...secrets]
  }
}

/**
 * The recorder of the audited run in progress, if any: the recording wrappers below write to
 * it, so a layer wrapped once (at the top of a suite) records into each case's own recorder.
 *
 * @since 0.2.0
 * @category audit
 */
export const currentRecorder: FiberRef.FiberRef<SecretRecorder | undefined> = FiberRef.unsafeMake<
  SecretRecorder | undefined
>(undefined)

/**
 * Records `value` as a secret of the audited run in progress (nothing outside one).
 *
 * @since 0.2.0
 * @category audit
 */
export const recordSecret = (value: string): Effect.Effect<void> =>
  FiberRef.getWith(currentRecorder, (recorder) => Effect.sync(() => recorder?.record(value)))

const recordAll = (values: ReadonlyArray<string>): Effect.Effect<void> =>
  FiberRef.getWith(currentRecorder, (recorder) =>
    Effect.sync(() => {
      for (const value of values) recorder?.record(value)
    }))

/** Records `given` before `effect` runs and what `returned` picks out of its success after. */
const recording = <A, E, R>(
  given: ReadonlyArray<string>,
  effect: Effect.Effect<A, E, R>,
  returned?: (a: A) => ReadonlyArray<string>
): Effect.Effect<A, E, R> =>
  Effect.zipRight(
    recordAll(given),
    returned === undefined ? effect : Effect.tap(effect, (a) => recordAll(returned(a)))
  )

const entryData = (found: Option.Option<{ readonly data: string }>): ReadonlyArray<string> =>
  Option.isSome(found) ? [found.value.data] : []

/**
 * `store` with every key and every payload given to it or returned by it recorded as a secret
 * of the audited run in progress (owner ids and handles are not secrets and are not recorded).
 *
 * @since 0.2.0
 * @category audit
 */
export const recordingStore = (store: SessionStore): SessionStore => {
  const owners = store.owners
  const index: OwnerIndex | undefined = owners === undefined ? undefined : {
    link: (owner, handle, key, until) => recording([key], owners.link(owner, handle, key, until)),
    list: (owner) => recording([], owners.list(owner), (links) => links.map((link) => link.key)),
    revoke: (owner, handles, except) => recording([], owners.revoke(owner, handles, except), (keys) => keys),
    unlink: (owner, handle, key) => recording([key], owners.unlink(owner, handle, key))
  }
  const all = store.all
  return {
    ...store,
    find: (key) => recording([key], store.find(key), entryData),
    commit: (key, data, expiresAt, mode) => recording([key, data], store.commit(key, data, expiresAt, mode)),
    take: (key) => recording([key], store.take(key), entryData),
    touch: (key, expiresAt) => recording([key], store.touch(key, expiresAt)),
    delete: (key) => recording([key], store.delete(key)),
    all: all === undefined ? undefined : Stream.tap(all, (entry) => recordAll([entry.key, entry.data])),
    owners: index
  }
}

/**
 * `layer` with the `SessionStore` it provides wrapped by `recordingStore` (its other services,
 * such as the backend's own tag, as they are).
 *
 * @since 0.2.0
 * @category audit
 */
export const recordingStoreLayer = <ROut, E, RIn>(layer: Layer.Layer<ROut, E, RIn>): Layer.Layer<ROut, E, RIn> =>
  Layer.map(layer, (context) =>
    Option.match(Context.getOption(context as Context.Context<unknown>, SessionStore), {
      onNone: () => context,
      // The store replaced under its own tag: the context holds the same services as before.
      onSome: (store) => Context.add(context, SessionStore, recordingStore(store)) as Context.Context<ROut>
    }))

/**
 * `lock` with every key given to `acquire` recorded as a secret (the middleware locks a
 * session's store key).
 *
 * @since 0.2.0
 * @category audit
 */
export const recordingLock = (lock: SessionLock): SessionLock => ({
  ...lock,
  acquire: (key, options) => recording([key], lock.acquire(key, options))
})

/**
 * `layer` with the `SessionLock` it provides wrapped by `recordingLock`.
 *
 * @since 0.2.0
 * @category audit
 */
export const recordingLockLayer = <ROut, E, RIn>(layer: Layer.Layer<ROut, E, RIn>): Layer.Layer<ROut, E, RIn> =>
  Layer.map(layer, (context) =>
    Option.match(Context.getOption(context as Context.Context<unknown>, SessionLock), {
      onNone: () => context,
      onSome: (lock) => Context.add(context, SessionLock, recordingLock(lock)) as Context.Context<ROut>
    }))

/**
 * `manager` with every token given to `load` and every token a commit hands out recorded as a
 * secret (the store sees only their hashes when the manager hashes tokens).
 *
 * @since 0.2.0
 * @category audit
 */
export const recordingManager = (manager: SessionManager.SessionManager): SessionManager.SessionManager => ({
  ...manager,
  load: (token) => {
    const given = Option.isOption(token) ? Option.getOrUndefined(token) : token
    return recording(given === undefined ? [] : [Redacted.value(given)], manager.load(token))
  },
  commit: (session) =>
    recording(
      [],
      manager.commit(session),
      (outcome) => outcome._tag === "Written" ? [Redacted.value(outcome.token)] : []
    )
})

/**
 * A secret found in a span: where, and the secret's first characters (enough to tell which).
 *
 * @since 0.2.0
 * @category models
 */
export interface Leak {
  readonly span: string
  readonly field: string
  readonly secret: string
}

const shorten = (secret: string): string => secret.length <= 16 ? secret : `${secret.slice(0, 16)}… (${secret.length})`

/**
 * Every place where one of `secrets` occurs in a string of `spans`, once per span, field and secret.
 *
 * @since 0.2.0
 * @category audit
 */
export const findLeaks = (
  spans: ReadonlyArray<RecordedSpan>,
  secrets: ReadonlyArray<string>
): ReadonlyArray<Leak> => {
  const leaks = new Map<string, Leak>()
  const strings = spans.flatMap(spanStrings)
  for (const secret of secrets) {
    for (const carried of strings) {
      if (carried.value.length < secret.length || !carried.value.includes(secret)) continue
      const leak = { span: carried.span, field: carried.field, secret: shorten(secret) }
      leaks.set(JSON.stringify(leak), leak)
    }
  }
  return [...leaks.values()]
}

/**
 * Runs `body` in a scope of its own under a fresh recording tracer (so spans made while it
 * builds layers, and by the fibers they fork, are kept) and a fresh secret recorder, closes the
 * scope (so finalizers' spans count too), and then fails the test if any recorded secret occurs
 * in a string of any span. A failing `body` fails as it would have, unaudited.
 *
 * @since 0.2.0
 * @category audit
 */
export const audited = <A, E, R>(body: Effect.Effect<A, E, R>): Effect.Effect<A, E, Exclude<R, Scope.Scope>> =>
  Effect.suspend(() => {
    const recording = makeRecordingTracer()
    const recorder = makeSecretRecorder()
    return Effect.scoped(body).pipe(
      Effect.locally(currentRecorder, recorder),
      Effect.withTracer(recording.tracer),
      Effect.tap(() =>
        Effect.sync(() => {
          const spans = recording.spans()
          const secrets = recorder.secrets()
          const leaks = findLeaks(spans, secrets)
          const shown = leaks.slice(0, 5).map((leak) => `${leak.span}, ${leak.field}: ${leak.secret}`).join("; ")
          expect(
            leaks,
            `secrets (store keys, tokens, session data) in spans (${spans.length} spans, ${secrets.length} secrets audited): ${shown}`
          ).toEqual([])
        })
      )
    )
  })
