/**
 * Sessions that know their user, through the public API: the login handler, the device list and
 * revocation over real HTTP, and every interleaving of a renewal with a revocation, replayed
 * step by step (the conformance suite races them on every store; here each order is forced).
 */
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { describe, expect, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as TestClock from "effect/TestClock"
import * as Session from "../src/Session.js"
import * as SessionManager from "../src/SessionManager.js"
import * as SessionMiddleware from "../src/SessionMiddleware.js"
import { SessionStore } from "../src/SessionStore.js"
import type { OwnerIndex } from "../src/SessionStore.js"
import * as MemoryStore from "../src/SessionStore/Memory.js"
import * as SessionTransport from "../src/SessionTransport.js"
import { call, cookieFrom, serve } from "./http.js"

const START = Date.UTC(2026, 0, 1, 12, 0, 0)

const tokenOf = (outcome: SessionManager.CommitOutcome) =>
  outcome._tag === "Written" ? Effect.succeed(outcome.token) : Effect.dieMessage(`commit was ${outcome._tag}`)

type Step = "link" | "create"

/**
 * A memory store whose `n`-th call of a step (a `link`, or a `"create"` commit) stops before it
 * runs until the test opens the gate, so that the test can revoke at exactly that point.
 */
const gatedStore = (step: Step, n: number) =>
  Effect.gen(function*() {
    const store = yield* MemoryStore.make()
    const entered = yield* Deferred.make<void>()
    const open = yield* Deferred.make<void>()
    let calls = 0
    const gate = <A, E>(which: Step, effect: Effect.Effect<A, E>) =>
      Effect.suspend(() =>
        which === step && ++calls === n
          ? Effect.zipRight(Effect.zipRight(Deferred.succeed(entered, void 0), Deferred.await(open)), effect)
          : effect
      )
    const owners: OwnerIndex = {
      ...store.owners,
      link: (owner, handle, key, until) => gate("link", store.owners.link(owner, handle, key, until))
    }
    const gated: SessionStore = {
      ...store,
      owners,
      commit: (key, data, expiresAt, mode) =>
        mode === "create"
          ? gate("create", store.commit(key, data, expiresAt, mode))
          : store.commit(key, data, expiresAt, mode)
    }
    const manager = yield* Effect.provideService(SessionManager.make(), SessionStore, gated)
    return {
      manager,
      store,
      entered: Deferred.await(entered),
      open: Deferred.succeed(open, void 0)
    }
  })

describe("a renewal and a revocation, in every order", () => {
  // The sign-in calls link, create, link; then the renewal calls take, link, create, link.
  const points: ReadonlyArray<readonly [string, Step, number]> = [
    ["before its first link", "link", 3],
    ["between its first link and its write", "create", 2],
    ["between its write and its second link", "link", 4]
  ]
  for (const [where, step, n] of points) {
    it.scoped(`log out everywhere ${where}: the renewed session is gone`, () =>
      Effect.gen(function*() {
        yield* TestClock.setTime(START)
        const { entered, manager, open, store } = yield* gatedStore(step, n)
        const session = yield* manager.load(undefined)
        yield* session.bindOwner("ada")
        const token = yield* tokenOf(yield* manager.commit(session))
        const renewing = yield* manager.load(token)
        const renewal = yield* Effect.fork(Effect.zipRight(renewing.renewToken, manager.commit(renewing)))
        yield* entered
        expect(yield* manager.revokeOwnerSessions("ada")).toBe(1)
        yield* open
        const outcome = yield* Fiber.join(renewal)
        expect(outcome._tag).toBe("Destroyed")
        expect(yield* renewing.status).toBe("Destroyed")
        expect(yield* store.size).toBe(0)
        expect(yield* manager.ownerSessions("ada")).toEqual([])
      }))
  }

  it.scoped("a revocation after the renewal finds the new key", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(START)
      const { manager, store } = yield* gatedStore("link", 0)
      const session = yield* manager.load(undefined)
      yield* session.bindOwner("ada")
      const token = yield* tokenOf(yield* manager.commit(session))
      const renewing = yield* manager.load(token)
      yield* renewing.renewToken
      const renewed = yield* tokenOf(yield* manager.commit(renewing))
      expect(yield* manager.revokeOwnerSessions("ada")).toBe(1)
      expect(yield* (yield* manager.load(renewed)).owner).toEqual(Option.none())
      expect(yield* store.size).toBe(0)
    }))

  it.scoped("a login racing log-out-everywhere still signs in, as a new session", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(START)
      const { manager } = yield* gatedStore("link", 0)
      const first = yield* manager.load(undefined)
      yield* first.bindOwner("ada")
      const token = yield* tokenOf(yield* manager.commit(first))
      const again = yield* manager.load(token)
      yield* manager.revokeOwnerSessions("ada")
      yield* again.put("theme", "dark")
      yield* again.bindOwner("ada")
      const signedIn = yield* tokenOf(yield* manager.commit(again))
      const loaded = yield* manager.load(signedIn)
      expect(yield* loaded.owner).toEqual(Option.some("ada"))
      // Values of the revoked session do not come back with it.
      expect(yield* loaded.keys).toEqual([])
      expect((yield* manager.ownerSessions("ada")).length).toBe(1)
    }))
})

const userAgentLabel = Effect.map(
  HttpServerRequest.HttpServerRequest,
  (request) => request.headers["user-agent"] ?? "unknown device"
)

const app = HttpRouter.empty.pipe(
  HttpRouter.post(
    "/login/:user",
    Effect.gen(function*() {
      const { user } = yield* HttpRouter.params
      const session = yield* Session.Session
      yield* session.bindOwner(user!, { label: yield* userAgentLabel })
      return HttpServerResponse.text("welcome")
    })
  ),
  HttpRouter.get(
    "/me",
    Effect.flatMap(
      Session.Session,
      (session) =>
        Effect.map(session.owner, (owner) => HttpServerResponse.text(Option.getOrElse(owner, () => "nobody")))
    )
  ),
  HttpRouter.get(
    "/devices",
    Effect.flatMap(
      Session.Session,
      (session) =>
        Effect.flatMap(session.ownerSessions, (devices) =>
          HttpServerResponse.json(devices.map((device) => ({
            handle: device.handle,
            label: Option.getOrNull(device.label),
            current: device.current
          }))))
    )
  ),
  HttpRouter.post(
    "/devices/:handle/revoke",
    Effect.gen(function*() {
      const { handle } = yield* HttpRouter.params
      const session = yield* Session.Session
      return HttpServerResponse.text(String(yield* session.revokeOwnerSession(handle!)))
    })
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

const Live = Layer.mergeAll(SessionManager.layer(), SessionTransport.layerCookie({ secure: false })).pipe(
  Layer.provideMerge(MemoryStore.layer())
)

describe("accounts over HTTP", () => {
  it.scoped("sign in on two devices, list them, revoke one, log out everywhere else", () =>
    Effect.gen(function*() {
      const server = yield* serve(SessionMiddleware.loadAndSave(app))
      const signIn = (agent: string) =>
        Effect.map(
          call(server, "/login/ada", { method: "POST", headers: { "user-agent": agent } }),
          (reply) => cookieFrom(reply)
        )
      const laptop = yield* signIn("laptop")
      const phone = yield* signIn("phone")
      const tablet = yield* signIn("tablet")
      const get = (path: string, cookie: string) => call(server, path, { headers: { cookie } })
      const post = (path: string, cookie: string) => call(server, path, { method: "POST", headers: { cookie } })
      expect((yield* get("/me", phone)).body).toBe("ada")

      const devices = JSON.parse((yield* get("/devices", laptop)).body) as Array<
        { handle: string; label: string; current: boolean }
      >
      expect(devices.map((d) => [d.label, d.current]).sort()).toEqual([
        ["laptop", true],
        ["phone", false],
        ["tablet", false]
      ])
      const phoneHandle = devices.find((d) => d.label === "phone")!.handle
      expect((yield* post(`/devices/${phoneHandle}/revoke`, laptop)).body).toBe("true")
      expect((yield* get("/me", phone)).body).toBe("nobody")
      // A handle is only good within its owner: another user cannot revoke ada's laptop.
      const eve = yield* Effect.map(call(server, "/login/eve", { method: "POST" }), (r) => cookieFrom(r))
      const laptopHandle = devices.find((d) => d.current)!.handle
      expect((yield* post(`/devices/${laptopHandle}/revoke`, eve)).body).toBe("false")
      expect((yield* get("/me", laptop)).body).toBe("ada")

      expect((yield* post("/logout-everywhere", laptop)).body).toBe("1")
      expect((yield* get("/me", tablet)).body).toBe("nobody")
      expect((yield* get("/me", laptop)).body).toBe("ada")
      const left = JSON.parse((yield* get("/devices", laptop)).body) as Array<{ current: boolean }>
      expect(left.map((d) => d.current)).toEqual([true])
    }).pipe(Effect.provide(Live)))

  it.scoped("the login renews the cookie; the anonymous cookie is dead afterwards", () =>
    Effect.gen(function*() {
      const server = yield* serve(SessionMiddleware.loadAndSave(app))
      const first = yield* call(server, "/login/ada", { method: "POST" })
      const cookie = cookieFrom(first)
      const again = yield* call(server, "/login/ada", { method: "POST", headers: { cookie } })
      const renewed = cookieFrom(again)
      expect(renewed).not.toBe(cookie)
      expect((yield* call(server, "/me", { headers: { cookie } })).body).toBe("nobody")
      expect((yield* call(server, "/me", { headers: { cookie: renewed } })).body).toBe("ada")
      // Signing in again as the same user keeps one device, not two.
      const devices = JSON.parse((yield* call(server, "/devices", { headers: { cookie: renewed } })).body)
      expect(devices.length).toBe(1)
      const token = Redacted.make(renewed.slice("session=".length))
      const manager = yield* SessionManager.SessionManager
      expect(yield* (yield* manager.load(token)).owner).toEqual(Option.some("ada"))
    }).pipe(Effect.provide(Live)))
})
