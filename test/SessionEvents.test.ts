/**
 * Lifecycle events through the public API: what `SessionManager` and `Session` operations
 * publish (created, renewed, destroyed, revoked, owner bound and unbound, expired by a sweep or
 * found expired by a load), in the order they happen, with the `TestClock`'s time; that no event
 * carries a token, a store key or session data; and how subscribers behave (a full queue drops
 * for its subscriber alone and never blocks a request, every subscriber gets every event, a
 * closed subscription leaves publishing working, and no events layer means no events service).
 */
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Encoding from "effect/Encoding"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import * as TestClock from "effect/TestClock"
import * as Session from "../src/Session.js"
import * as SessionEvents from "../src/SessionEvents.js"
import * as SessionManager from "../src/SessionManager.js"
import * as Sealed from "../src/SessionManager/Sealed.js"
import * as SessionMetrics from "../src/SessionMetrics.js"
import * as SessionMiddleware from "../src/SessionMiddleware.js"
import * as MemoryStore from "../src/SessionStore/Memory.js"
import * as SessionTransport from "../src/SessionTransport.js"
import { call, cookieFrom, serve } from "./http.js"

const START = Date.UTC(2026, 0, 1, 12, 0, 0)

type SessionEvent = SessionEvents.SessionEvent
type Tag = SessionEvent["_tag"]
type EventOf<T extends Tag> = Extract<SessionEvent, { readonly _tag: T }>

const random = (): string => Encoding.encodeBase64Url(crypto.getRandomValues(new Uint8Array(18)))

/** A session value no event may carry: long and random, so a match is no accident. */
const secretValue = (): string => `value-${random()}`

/** The event, checked to be a `tag` event, narrowed to it. */
const as = <T extends Tag>(tag: T, event: SessionEvent | undefined): EventOf<T> => {
  expect(event?._tag).toBe(tag)
  return event as EventOf<T>
}

const millisOf = (event: SessionEvent): number => DateTime.toEpochMillis(event.at)

/** What the queue holds now, without waiting. */
const drain = (queue: Queue.Dequeue<SessionEvent>) => Effect.map(Queue.takeAll(queue), Chunk.toReadonlyArray)

const tagsOf = (events: ReadonlyArray<SessionEvent>) => events.map((event) => event._tag)

/** Exactly one event waits in the queue: returned, checked to be a `tag` event. */
const single = <T extends Tag>(queue: Queue.Dequeue<SessionEvent>, tag: T) =>
  Effect.map(drain(queue), (events) => {
    expect(tagsOf(events)).toEqual([tag])
    return as(tag, events[0])
  })

const tokenOf = (outcome: SessionManager.CommitOutcome) =>
  outcome._tag === "Written"
    ? Effect.succeed(outcome.token)
    : Effect.dieMessage(`expected the commit to be Written, got ${outcome._tag}`)

/** The manager over a memory store, with the events service beneath both (as `SessionEvents` says to provide it). */
const withEvents = (options?: SessionManager.Options, store?: MemoryStore.Options) =>
  SessionManager.layer(options).pipe(
    Layer.provideMerge(MemoryStore.layer({ cleanupInterval: 0, ...store })),
    Layer.provideMerge(SessionEvents.layer)
  )

/** The clock is set before the layer is built, so that a store's sweep schedule starts from START. */
const run = <A, E, ROut, E2>(
  layer: Layer.Layer<ROut, E2>,
  body: Effect.Effect<A, E, ROut | Scope.Scope>
): Effect.Effect<A, E | E2, Scope.Scope> => Effect.zipRight(TestClock.setTime(START), Effect.provide(body, layer))

const subscribe = (options?: SessionEvents.SubscribeOptions) =>
  Effect.flatMap(SessionEvents.SessionEvents, (events) => events.subscribe(options))

/** A new session holding `value`, committed: its token and store key. */
const create = (manager: SessionManager.SessionManager, value: string = secretValue()) =>
  Effect.gen(function*() {
    const session = yield* manager.load(undefined)
    yield* session.put("value", value)
    const token = yield* tokenOf(yield* manager.commit(session))
    return { token, key: Option.getOrThrow(manager.storeKey(session)) }
  })

/** A new session bound to `owner`, committed: its token. */
const signIn = (manager: SessionManager.SessionManager, owner: string) =>
  Effect.gen(function*() {
    const session = yield* manager.load(undefined)
    yield* session.put("cart", ["book"])
    yield* session.bindOwner(owner)
    return yield* tokenOf(yield* manager.commit(session))
  })

describe("SessionEvents through the manager", () => {
  it.scoped("Created: at the first commit of a new session, at the Clock's time; nothing before it or after", () =>
    run(
      withEvents(),
      Effect.gen(function*() {
        const manager = yield* SessionManager.SessionManager
        const queue = yield* subscribe()
        const session = yield* manager.load(undefined)
        yield* session.put("value", secretValue())
        expect(yield* Queue.size(queue)).toBe(0)
        yield* TestClock.adjust("5 seconds")
        const token = yield* tokenOf(yield* manager.commit(session))
        const created = yield* single(queue, "Created")
        expect(millisOf(created)).toBe(START + 5_000)
        expect(created.ref).toMatch(/^[A-Za-z0-9_-]{22}$/)
        expect(created.owner).toEqual(Option.none())
        // A later write of the stored session, a read, and an unchanged commit publish nothing.
        yield* session.put("value", secretValue())
        yield* manager.commit(session)
        const again = yield* manager.load(token)
        expect((yield* manager.commit(again))._tag).toBe("Unchanged")
        expect(yield* Queue.size(queue)).toBe(0)
        // A session that never changes is never stored, and never created.
        yield* manager.commit(yield* manager.load(undefined))
        expect(yield* Queue.size(queue)).toBe(0)
      })
    ))

  it.scoped("Renewed: renewToken of a stored session links the ref Created had to a new one", () =>
    run(
      withEvents(),
      Effect.gen(function*() {
        const manager = yield* SessionManager.SessionManager
        const queue = yield* subscribe()
        const { token } = yield* create(manager)
        const created = yield* single(queue, "Created")
        yield* TestClock.adjust("1 minute")
        const session = yield* manager.load(token)
        yield* session.renewToken
        const renewed = yield* single(queue, "Renewed")
        expect(renewed.from).toBe(created.ref)
        expect(renewed.to).not.toBe(renewed.from)
        expect(renewed.to).toMatch(/^[A-Za-z0-9_-]{22}$/)
        expect(millisOf(renewed)).toBe(START + 60_000)
        expect(renewed.owner).toEqual(Option.none())
        // The renewal stored the session already: its commit is an update, and publishes nothing.
        const renewedToken = yield* tokenOf(yield* manager.commit(session))
        expect(yield* Queue.size(queue)).toBe(0)
        // The next renewal starts from the ref this one ended at.
        const later = yield* manager.load(renewedToken)
        yield* later.renewToken
        const second = yield* single(queue, "Renewed")
        expect(second.from).toBe(renewed.to)
        expect(second.to).not.toBe(renewed.to)
      })
    ))

  it.scoped("a session renewed before it was ever stored is Created at its commit, never Renewed", () =>
    run(
      withEvents(),
      Effect.gen(function*() {
        const manager = yield* SessionManager.SessionManager
        const queue = yield* subscribe()
        const session = yield* manager.load(undefined)
        yield* session.put("value", secretValue())
        yield* session.renewToken
        expect(yield* Queue.size(queue)).toBe(0)
        yield* manager.commit(session)
        yield* single(queue, "Created")
      })
    ))

  it.scoped("Destroyed: destroy of a stored session, with the ref Created had; of an unstored one, nothing", () =>
    run(
      withEvents(),
      Effect.gen(function*() {
        const manager = yield* SessionManager.SessionManager
        const queue = yield* subscribe()
        const { token } = yield* create(manager)
        const created = yield* single(queue, "Created")
        yield* TestClock.adjust("2 minutes")
        const session = yield* manager.load(token)
        yield* session.destroy
        const destroyed = yield* single(queue, "Destroyed")
        expect(destroyed.ref).toBe(created.ref)
        expect(destroyed.owner).toEqual(Option.none())
        expect(millisOf(destroyed)).toBe(START + 120_000)
        expect((yield* manager.commit(session))._tag).toBe("Destroyed")
        const unstored = yield* manager.load(undefined)
        yield* unstored.put("value", secretValue())
        yield* unstored.destroy
        expect(yield* Queue.size(queue)).toBe(0)
      })
    ))

  it.scoped("OwnerBound and OwnerUnbound: the owner id and the handle ownerSessions lists, the session's new ref", () =>
    run(
      withEvents(),
      Effect.gen(function*() {
        const manager = yield* SessionManager.SessionManager
        const queue = yield* subscribe()

        // A login on a first visit: bound before it is stored, named by the key it will have.
        const first = yield* manager.load(undefined)
        yield* first.put("cart", ["book"])
        yield* first.bindOwner("ada", { label: "laptop" })
        const bound = yield* single(queue, "OwnerBound")
        const [listedBefore] = yield* Effect.zipRight(manager.commit(first), manager.ownerSessions("ada"))
        const created = yield* single(queue, "Created")
        expect(bound.owner).toEqual({ id: "ada", handle: listedBefore.handle })
        expect(created.ref).toBe(bound.ref)
        expect(created.owner).toEqual(Option.some({ id: "ada", handle: listedBefore.handle }))
        const token = Option.getOrThrow(yield* first.token)

        // A logout that keeps the session: renewed (owning nothing now), then unbound.
        yield* TestClock.adjust("1 minute")
        const loggingOut = yield* manager.load(token)
        yield* loggingOut.unbindOwner
        const events = yield* drain(queue)
        expect(tagsOf(events)).toEqual(["Renewed", "OwnerUnbound"])
        const renewed = as("Renewed", events[0])
        const unbound = as("OwnerUnbound", events[1])
        expect(renewed.from).toBe(created.ref)
        expect(renewed.owner).toEqual(Option.none())
        expect(unbound.ref).toBe(renewed.to)
        expect(unbound.owner).toEqual({ id: "ada", handle: listedBefore.handle })
        expect(millisOf(unbound)).toBe(START + 60_000)
        const anonymous = yield* tokenOf(yield* manager.commit(loggingOut))
        expect(yield* manager.ownerSessions("ada")).toEqual([])

        // A login of a stored anonymous session: renewed as the owner's, then bound, under the new ref.
        const again = yield* manager.load(anonymous)
        yield* again.bindOwner("ada")
        const [renewedIn, boundAgain] = yield* drain(queue)
        const [listed] = yield* Effect.zipRight(manager.commit(again), manager.ownerSessions("ada"))
        expect(as("Renewed", renewedIn).from).toBe(unbound.ref)
        expect(as("Renewed", renewedIn).owner).toEqual(Option.some({ id: "ada", handle: listed.handle }))
        expect(as("OwnerBound", boundAgain)).toMatchObject({ ref: as("Renewed", renewedIn).to })
        expect(as("OwnerBound", boundAgain).owner).toEqual({ id: "ada", handle: listed.handle })
        expect(yield* Queue.size(queue)).toBe(0)
      })
    ))

  it.scoped("Revoked: log out everywhere names the owner, the handles it listed and how many", () =>
    run(
      withEvents(),
      Effect.gen(function*() {
        const manager = yield* SessionManager.SessionManager
        const queue = yield* subscribe()
        const [laptop] = yield* Effect.forEach([1, 2, 3], () => signIn(manager, "ada"))
        yield* signIn(manager, "eve")
        const devices = yield* manager.ownerSessions("ada")
        expect(tagsOf(yield* drain(queue))).toEqual([
          ...["OwnerBound", "Created"],
          ...["OwnerBound", "Created"],
          ...["OwnerBound", "Created"],
          ...["OwnerBound", "Created"]
        ])
        yield* TestClock.adjust("3 minutes")

        // From the laptop, keeping it: the other two.
        const current = yield* manager.load(laptop)
        const laptopHandle = (yield* current.ownerSessions).find((device) => device.current)!.handle
        expect(yield* current.revokeOwnerSessions({ keepCurrent: true })).toBe(2)
        const others = yield* single(queue, "Revoked")
        expect(others.owner).toBe("ada")
        expect(others.count).toBe(2)
        expect([...others.handles].sort()).toEqual(
          devices.map((device) => device.handle).filter((handle) => handle !== laptopHandle).sort()
        )
        expect(millisOf(others)).toBe(START + 180_000)

        // An administrator's "log out everywhere": the laptop, the one left.
        expect(yield* manager.revokeOwnerSessions("ada")).toBe(1)
        const rest = yield* single(queue, "Revoked")
        expect(rest).toMatchObject({ owner: "ada", handles: [laptopHandle], count: 1 })
        // Nothing left to revoke: no event. Another owner's sessions were never touched.
        expect(yield* manager.revokeOwnerSessions("ada")).toBe(0)
        expect(yield* Queue.size(queue)).toBe(0)
        expect((yield* manager.ownerSessions("eve")).length).toBe(1)
      })
    ))

  it.scoped("Expired with source sweep: the memory store's sweep removes expired sessions and says how many", () =>
    run(
      withEvents({ lifetime: "30 seconds" }, { cleanupInterval: "1 minute" }),
      Effect.gen(function*() {
        const manager = yield* SessionManager.SessionManager
        const queue = yield* subscribe()
        yield* create(manager)
        yield* create(manager)
        expect(tagsOf(yield* drain(queue))).toEqual(["Created", "Created"])
        yield* TestClock.adjust("1 minute")
        // Published by the sweep fiber: wait for it (the queue, not the clock).
        const expired = as("Expired", yield* Queue.take(queue))
        expect(expired.source).toBe("sweep")
        expect(expired.count).toBe(2)
        expect(expired.ref).toEqual(Option.none())
        expect(expired.owner).toEqual(Option.none())
        expect(millisOf(expired)).toBe(START + 60_000)
        expect(yield* (yield* MemoryStore.MemoryStore).size).toBe(0)
      })
    ))

  it.scoped("Expired with source load: a load finds the entry live in the store but past the session's deadline", () =>
    run(
      // Reachable through the API when two requests of one session overlap: one moves the
      // deadline closer and commits; the other, loaded before, commits an idle refresh, which moves
      // the store's expiry from its own (older, later) deadline and never rewrites the data.
      withEvents({ lifetime: "10 hours", idleTimeout: "1 hour" }),
      Effect.gen(function*() {
        const manager = yield* SessionManager.SessionManager
        const queue = yield* subscribe()
        const token = yield* signIn(manager, "ada")
        const [bound, created] = yield* drain(queue)
        const [device] = yield* manager.ownerSessions("ada")
        yield* TestClock.adjust("40 minutes")
        const shortening = yield* manager.load(token)
        const refreshing = yield* manager.load(token)
        yield* shortening.setDeadline(DateTime.unsafeMake(START + 50 * 60_000))
        expect((yield* manager.commit(shortening))._tag).toBe("Written")
        expect((yield* manager.commit(refreshing))._tag).toBe("Written")
        expect(yield* Queue.size(queue)).toBe(0)
        yield* TestClock.adjust("15 minutes")
        const loaded = yield* manager.load(token)
        expect(yield* loaded.owner).toEqual(Option.none())
        const expired = yield* single(queue, "Expired")
        expect(expired.source).toBe("load")
        expect(expired.count).toBe(1)
        expect(expired.ref).toEqual(Option.some(as("Created", created).ref))
        expect(expired.owner).toEqual(Option.some({ id: "ada", handle: device.handle }))
        expect(as("OwnerBound", bound).owner).toEqual({ id: "ada", handle: device.handle })
        expect(millisOf(expired)).toBe(START + 55 * 60_000)
      })
    ))

  for (const hashTokenInStore of [true, false]) {
    it.scoped(
      `events arrive in the order things happened, and carry no token, store key or session value (hashTokenInStore: ${hashTokenInStore})`,
      () =>
        run(
          withEvents({ hashTokenInStore, lifetime: "1 hour" }, { cleanupInterval: "1 minute" }),
          Effect.gen(function*() {
            const manager = yield* SessionManager.SessionManager
            const queue = yield* subscribe()
            const secrets = new Set<string>()
            const keep = (session: Session.Session) =>
              Effect.gen(function*() {
                const token = yield* session.token
                if (Option.isSome(token)) secrets.add(Redacted.value(token.value))
                const key = manager.storeKey(session)
                if (Option.isSome(key)) secrets.add(key.value)
              })
            const put = (session: Session.Session) =>
              Effect.gen(function*() {
                const value = secretValue()
                secrets.add(value)
                yield* session.put(`key-${random()}`, value)
              })

            const session = yield* manager.load(undefined)
            yield* put(session)
            yield* manager.commit(session)
            yield* keep(session)
            yield* session.renewToken
            yield* keep(session)
            yield* put(session)
            yield* session.bindOwner("ada")
            yield* keep(session)
            yield* manager.commit(session)
            yield* keep(session)
            yield* session.unbindOwner
            yield* keep(session)
            yield* manager.commit(session)
            yield* session.destroy
            const other = yield* manager.load(undefined)
            yield* put(other)
            yield* other.bindOwner("ada")
            yield* manager.commit(other)
            yield* keep(other)
            yield* manager.revokeOwnerSessions("ada")
            const expiring = yield* manager.load(undefined)
            yield* put(expiring)
            yield* manager.commit(expiring)
            yield* keep(expiring)
            // What happened before the sweep, in order; then the sweep's, published by its fiber.
            const events = yield* drain(queue)
            yield* TestClock.adjust("2 hours")
            const expired = as("Expired", yield* Queue.take(queue))
            expect(expired).toMatchObject({ source: "sweep", count: 1 })
            expect(tagsOf(events)).toEqual([
              "Created",
              "Renewed",
              "Renewed",
              "OwnerBound",
              "Renewed",
              "OwnerUnbound",
              "Destroyed",
              "OwnerBound",
              "Created",
              "Revoked",
              "Created"
            ])
            // Six tokens, their six store keys (the same strings without hashing), four values.
            expect(secrets.size).toBe(hashTokenInStore ? 16 : 10)
            for (const event of [...events, expired]) {
              const json = JSON.stringify(event)
              for (const secret of secrets) expect(json).not.toContain(secret)
            }
          })
        )
    )
  }
})

describe("SessionEvents subscribers", () => {
  it.scoped("two subscribers each get every event, in the same order", () =>
    run(
      withEvents(),
      Effect.gen(function*() {
        const manager = yield* SessionManager.SessionManager
        const [first, second] = [yield* subscribe(), yield* subscribe()]
        const { token } = yield* create(manager)
        const session = yield* manager.load(token)
        yield* session.renewToken
        yield* session.bindOwner("ada")
        yield* manager.commit(session)
        yield* session.destroy
        const one = yield* drain(first)
        expect(tagsOf(one)).toEqual(["Created", "Renewed", "Renewed", "OwnerBound", "Destroyed"])
        expect(yield* drain(second)).toEqual(one)
      })
    ))

  it.scoped("after a subscription's scope closes, its queue is shut down and publishing goes on", () =>
    run(
      withEvents(),
      Effect.gen(function*() {
        const manager = yield* SessionManager.SessionManager
        const staying = yield* subscribe()
        const closed = yield* Effect.scoped(
          Effect.gen(function*() {
            const leaving = yield* subscribe()
            yield* create(manager)
            yield* single(leaving, "Created")
            return leaving
          })
        )
        expect(yield* Queue.isShutdown(closed)).toBe(true)
        const { token } = yield* create(manager)
        const session = yield* manager.load(token)
        yield* session.renewToken
        yield* session.destroy
        expect(tagsOf(yield* drain(staying))).toEqual(["Created", "Created", "Renewed", "Destroyed"])
        // And a new subscription gets what happens from then on.
        const later = yield* subscribe()
        yield* create(manager)
        yield* single(later, "Created")
      })
    ))

  it.scoped("without SessionEvents.layer there is no events service, and every operation works", () =>
    run(
      SessionManager.layer({ lifetime: "30 seconds" }).pipe(
        Layer.provideMerge(MemoryStore.layer({ cleanupInterval: "1 minute" }))
      ),
      Effect.gen(function*() {
        expect(yield* Effect.serviceOption(SessionEvents.SessionEvents)).toEqual(Option.none())
        const manager = yield* SessionManager.SessionManager
        const store = yield* MemoryStore.MemoryStore
        const { token } = yield* create(manager)
        const session = yield* manager.load(token)
        yield* session.renewToken
        yield* session.bindOwner("ada")
        yield* session.unbindOwner
        yield* session.bindOwner("ada")
        const bound = yield* tokenOf(yield* manager.commit(session))
        yield* signIn(manager, "ada")
        const [kept] = (yield* (yield* manager.load(bound)).ownerSessions).filter((device) => device.current)
        expect(yield* manager.revokeOwnerSessions("ada", { except: kept.handle })).toBe(1)
        const destroying = yield* manager.load(bound)
        yield* destroying.destroy
        yield* create(manager)
        const before = yield* store.size
        expect(before).toBeGreaterThan(0)
        // The sweep runs without anyone to tell: give its fiber turns (a bounded number) to finish.
        yield* TestClock.adjust("1 minute")
        for (let turn = 0; turn < 1_000 && (yield* store.size) > 0; turn++) yield* Effect.yieldNow()
        expect(yield* store.size).toBe(0)
      })
    ))
})

// ---------------------------------------------------------------------------------------------
// Over real HTTP, through the middleware.

const NOTE = secretValue()

const app = HttpRouter.empty.pipe(
  HttpRouter.get(
    "/visit",
    Effect.as(Effect.flatMap(Session.Session, (session) => session.put("note", NOTE)), HttpServerResponse.text("hi"))
  ),
  HttpRouter.post(
    "/login/:user",
    Effect.gen(function*() {
      const { user } = yield* HttpRouter.params
      const session = yield* Session.Session
      yield* session.put("note", NOTE)
      yield* session.bindOwner(user!)
      return HttpServerResponse.text("welcome")
    })
  ),
  HttpRouter.get(
    "/devices",
    Effect.flatMap(
      Session.Session,
      (session) =>
        Effect.flatMap(
          session.ownerSessions,
          (devices) =>
            HttpServerResponse.json(devices.map((device) => ({ handle: device.handle, current: device.current })))
        )
    )
  ),
  HttpRouter.post(
    "/logout-everywhere",
    Effect.flatMap(
      Session.Session,
      (session) =>
        Effect.map(session.revokeOwnerSessions({ keepCurrent: true }), (n) => HttpServerResponse.text(String(n)))
    )
  ),
  HttpRouter.post(
    "/logout",
    Effect.as(Effect.flatMap(Session.Session, (session) => session.destroy), HttpServerResponse.text("bye"))
  )
)

const HttpLive = Layer.mergeAll(SessionManager.layer(), SessionTransport.layerCookie({ secure: false })).pipe(
  Layer.provideMerge(MemoryStore.layer({ cleanupInterval: 0 })),
  Layer.provideMerge(SessionEvents.layer)
)

const tokenIn = (cookie: string): string => cookie.slice("session=".length)

describe("SessionEvents over HTTP", () => {
  it.scoped("log in on two devices, log out everywhere else, log out: the events of each request, in order", () =>
    run(
      HttpLive,
      Effect.gen(function*() {
        const manager = yield* SessionManager.SessionManager
        const queue = yield* subscribe()
        const server = yield* serve(SessionMiddleware.loadAndSave(app))
        const post = (path: string, cookie?: string) =>
          call(server, path, { method: "POST", headers: cookie === undefined ? {} : { cookie } })

        const laptop = cookieFrom(yield* post("/login/ada"))
        const [laptopBound, laptopCreated] = yield* drain(queue)
        expect(as("Created", laptopCreated).ref).toBe(as("OwnerBound", laptopBound).ref)
        const phone = cookieFrom(yield* post("/login/ada"))
        const [phoneBound, phoneCreated] = yield* drain(queue)
        expect(as("Created", phoneCreated).ref).toBe(as("OwnerBound", phoneBound).ref)

        const devices = JSON.parse((yield* call(server, "/devices", { headers: { cookie: laptop } })).body) as Array<
          { handle: string; current: boolean }
        >
        const laptopHandle = devices.find((device) => device.current)!.handle
        const phoneHandle = devices.find((device) => !device.current)!.handle
        expect(as("OwnerBound", laptopBound).owner).toEqual({ id: "ada", handle: laptopHandle })
        expect(as("OwnerBound", phoneBound).owner).toEqual({ id: "ada", handle: phoneHandle })
        // Listing the devices is no lifecycle event.
        expect(yield* Queue.size(queue)).toBe(0)

        const phoneKey = Option.getOrThrow(manager.storeKey(yield* manager.load(Redacted.make(tokenIn(phone)))))
        expect((yield* post("/logout-everywhere", laptop)).body).toBe("1")
        const revoked = yield* single(queue, "Revoked")
        expect(revoked).toMatchObject({ owner: "ada", handles: [phoneHandle], count: 1 })

        const laptopKey = Option.getOrThrow(manager.storeKey(yield* manager.load(Redacted.make(tokenIn(laptop)))))
        expect((yield* post("/logout", laptop)).body).toBe("bye")
        const destroyed = yield* single(queue, "Destroyed")
        expect(destroyed.ref).toBe(as("Created", laptopCreated).ref)
        expect(destroyed.owner).toEqual(Option.some({ id: "ada", handle: laptopHandle }))

        // No cookie, store key or session value in any of them.
        const secrets = [tokenIn(laptop), tokenIn(phone), laptopKey, phoneKey, NOTE]
        for (const event of [laptopBound, laptopCreated, phoneBound, phoneCreated, revoked, destroyed]) {
          const json = JSON.stringify(event)
          for (const secret of secrets) expect(json).not.toContain(secret)
        }
      })
    ))

  it.scoped("a subscriber that does not read keeps the oldest events, the newer are dropped and counted", () =>
    run(
      HttpLive,
      Effect.gen(function*() {
        const reading = yield* subscribe()
        const full = yield* subscribe({ capacity: 2 })
        const server = yield* serve(SessionMiddleware.loadAndSave(app))
        const before = (yield* Metric.value(SessionMetrics.eventsDropped)).count
        // Five new sessions: five Created events, of which the full queue takes two.
        const replies = yield* Effect.forEach([1, 2, 3, 4, 5], () => call(server, "/visit"))
        for (const reply of replies) {
          expect(reply.status).toBe(200)
          expect(cookieFrom(reply)).toMatch(/^session=/)
        }
        const after = (yield* Metric.value(SessionMetrics.eventsDropped)).count
        expect(after - before).toBe(3)
        const everything = yield* drain(reading)
        expect(tagsOf(everything)).toEqual(["Created", "Created", "Created", "Created", "Created"])
        expect(yield* drain(full)).toEqual(everything.slice(0, 2))
        // Read, the queue takes events again.
        yield* call(server, "/visit")
        expect(tagsOf(yield* drain(full))).toEqual(["Created"])
        expect((yield* Metric.value(SessionMetrics.eventsDropped)).count).toBe(after)
      })
    ))
})

describe("SessionEvents with sealed cookies", () => {
  const SealedWithEvents = Sealed.layer({
    secrets: [{ id: "events", secret: Redacted.make("the secret sealed event tests use") }]
  }).pipe(Layer.provideMerge(SessionEvents.layer))

  it.scoped("Created, Renewed, OwnerBound, Destroyed and Expired name a sealed session by its id's ref, never its cookie", () =>
    run(
      SealedWithEvents,
      Effect.gen(function*() {
        const manager = yield* SessionManager.SessionManager
        const queue = yield* subscribe()
        const value = secretValue()
        const session = yield* manager.load(undefined)
        yield* session.put("value", value)
        const first = yield* tokenOf(yield* manager.commit(session))
        const created = yield* single(queue, "Created")
        expect(created.ref).toMatch(/^[A-Za-z0-9_-]{22}$/)

        const loaded = yield* manager.load(first)
        yield* loaded.bindOwner("ada", { label: "Firefox" })
        const [renewed, bound] = yield* drain(queue)
        expect(as("Renewed", renewed).from).toBe(created.ref)
        expect(as("OwnerBound", bound).ref).toBe(as("Renewed", renewed).to)
        const second = yield* tokenOf(yield* manager.commit(loaded))
        // Written again under its renewed id: no second Created.
        expect(yield* drain(queue)).toEqual([])

        const again = yield* manager.load(second)
        yield* again.destroy
        const destroyed = yield* single(queue, "Destroyed")
        expect(destroyed.ref).toBe(as("Renewed", renewed).to)
        expect(destroyed.owner).toEqual(Option.some({ id: "ada", handle: as("OwnerBound", bound).owner.handle }))

        // A sealed session loaded past its expiry: Expired, from the load.
        yield* TestClock.adjust("25 hours")
        yield* manager.load(second)
        const expired = yield* single(queue, "Expired")
        expect(expired.source).toBe("load")
        expect(expired.ref).toEqual(Option.some(destroyed.ref))

        const printed = JSON.stringify([created, renewed, bound, destroyed, expired])
        for (const secret of [value, Redacted.value(first), Redacted.value(second)]) {
          expect(printed).not.toContain(secret)
        }
      })
    ))
})
