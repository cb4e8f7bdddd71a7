/**
 * The security review's findings, replayed over real HTTP against the public API: each ends with
 * the logged-out session dead, the lifetime capped, the oversized session refused and the user
 * able to log out. (Secrets in logs, cookie tossing, caching and the fuzz suite have their own files.)
 */
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { describe, expect, it } from "@effect/vitest"
import * as DateTime from "effect/DateTime"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as TestClock from "effect/TestClock"
import * as Session from "../src/Session.js"
import * as SessionManager from "../src/SessionManager.js"
import * as SessionMiddleware from "../src/SessionMiddleware.js"
import * as MemoryStore from "../src/SessionStore/Memory.js"
import * as SessionTransport from "../src/SessionTransport.js"
import { call, cookieFrom, serve } from "./http.js"

const START = Date.UTC(2026, 0, 1, 12, 0, 0)
const UserId = Session.key("userId", Schema.Number)

/** A gate a handler waits at, so a test can run another request while this one is mid-flight. */
const gate = Effect.gen(function*() {
  const entered = yield* Deferred.make<void>()
  const release = yield* Deferred.make<void>()
  return {
    pass: Effect.zipRight(Deferred.succeed(entered, void 0), Deferred.await(release)),
    entered: Deferred.await(entered),
    open: Deferred.succeed(release, void 0)
  }
})

const routes = (slow: Effect.Effect<void>) =>
  HttpRouter.empty.pipe(
    HttpRouter.get(
      "/login",
      Effect.gen(function*() {
        const session = yield* Session.Session
        yield* session.renewToken
        yield* session.put(UserId, 42)
        return HttpServerResponse.text("in")
      })
    ),
    HttpRouter.get(
      "/me",
      Effect.map(Effect.flatMap(Session.Session, (s) => s.get(UserId)), (user) =>
        HttpServerResponse.text(Option.match(user, { onNone: () => "nobody", onSome: String })))
    ),
    HttpRouter.get(
      "/logout",
      Effect.as(
        Effect.flatMap(Session.Session, (s) =>
          s.destroy),
        HttpServerResponse.text("out")
      )
    ),
    HttpRouter.get(
      "/logout-by-remove",
      Effect.as(
        Effect.flatMap(Session.Session, (s) => s.remove(UserId)),
        HttpServerResponse.text("out")
      )
    ),
    // Loads the session, waits at the gate, then renews (as a privilege change would).
    HttpRouter.get(
      "/slow-renew",
      Effect.gen(function*() {
        const session = yield* Session.Session
        yield* slow
        yield* session.renewToken
        return HttpServerResponse.text("renewed")
      })
    ),
    // Loads the session, waits at the gate, changes nothing (an idle refresh may be due).
    HttpRouter.get(
      "/slow-read",
      Effect.gen(function*() {
        const session = yield* Session.Session
        const user = yield* session.get(UserId)
        yield* slow
        return HttpServerResponse.text(Option.match(user, { onNone: () => "nobody", onSome: String }))
      })
    )
  )

const ManagerLive = (options: SessionManager.Options = {}) =>
  Layer.mergeAll(
    SessionManager.layer(options),
    SessionTransport.layerCookie({ secure: false })
  ).pipe(Layer.provideMerge(MemoryStore.layer()))

describe("finding 1: a renewal does not bring a logged-out session back", () => {
  it.scoped("logout while a request that will renew is in flight: both cookies show nobody", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(START)
      const g = yield* gate
      const server = yield* serve(SessionMiddleware.loadAndSave(routes(g.pass)))
      const cookie = cookieFrom(yield* call(server, "/login"))
      expect((yield* call(server, "/me", { headers: { cookie } })).body).toBe("42")
      const renewing = yield* Effect.fork(call(server, "/slow-renew", { headers: { cookie } }))
      yield* g.entered
      expect((yield* call(server, "/logout", { headers: { cookie } })).body).toBe("out")
      yield* g.open
      const renewed = yield* Fiber.join(renewing)
      // The renewing request found its session gone: no new session, the client is told to forget it.
      const newCookie = renewed.setCookies.find((c) => c.startsWith("session="))
      expect(newCookie === undefined || /^session=;/.test(newCookie)).toBe(true)
      expect((yield* call(server, "/me", { headers: { cookie } })).body).toBe("nobody")
      const store = yield* MemoryStore.MemoryStore
      expect(yield* store.size).toBe(0)
    }).pipe(Effect.provide(ManagerLive())))

  it.scoped("an admin revocation (iterate + destroy) before the renewal: the session stays revoked", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(START)
      const g = yield* gate
      const server = yield* serve(SessionMiddleware.loadAndSave(routes(g.pass)))
      const cookie = cookieFrom(yield* call(server, "/login"))
      const renewing = yield* Effect.fork(call(server, "/slow-renew", { headers: { cookie } }))
      yield* g.entered
      const manager = yield* SessionManager.SessionManager
      yield* manager.iterate((session) =>
        Effect.flatMap(session.get(UserId), (user) => Option.isSome(user) ? session.destroy : Effect.void)
      )
      yield* g.open
      const renewed = yield* Fiber.join(renewing)
      const newCookie = renewed.setCookies.find((c) => /^session=[^;]/.test(c))
      expect(newCookie).toBeUndefined()
      expect((yield* call(server, "/me", { headers: { cookie } })).body).toBe("nobody")
      expect(yield* (yield* MemoryStore.MemoryStore).size).toBe(0)
    }).pipe(Effect.provide(ManagerLive())))

  it.scoped("a revocation after the renewal finds the renewed session (it is stored at once)", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(START)
      const manager = yield* SessionManager.SessionManager
      const first = yield* manager.load(undefined)
      yield* first.put(UserId, 7)
      yield* manager.commit(first)
      const token = Option.getOrThrow(yield* first.token)
      const loaded = yield* manager.load(token)
      yield* loaded.renewToken
      // Before this request commits, an admin revokes every session of user 7.
      yield* manager.iterate((session) => session.destroy)
      expect((yield* manager.commit(loaded))._tag).toBe("Gone")
      expect(yield* (yield* MemoryStore.MemoryStore).size).toBe(0)
    }).pipe(Effect.provide(ManagerLive())))
})

describe("finding 2: an idle refresh moves the expiry, never rewrites the data", () => {
  it.scoped("a read-only request due for a refresh, racing a logout written as remove, does not put the user back", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(START)
      const g = yield* gate
      const server = yield* serve(SessionMiddleware.loadAndSave(routes(g.pass)))
      const cookie = cookieFrom(yield* call(server, "/login"))
      yield* TestClock.adjust("11 minutes") // past half of the 20-minute idle window: a refresh is due
      const reading = yield* Effect.fork(call(server, "/slow-read", { headers: { cookie } }))
      yield* g.entered
      expect((yield* call(server, "/logout-by-remove", { headers: { cookie } })).body).toBe("out")
      yield* g.open
      const read = yield* Fiber.join(reading)
      expect(read.body).toBe("42") // what it read before the logout
      expect(read.setCookies[0]).toMatch(/Max-Age=1200/) // the refresh still happened
      expect((yield* call(server, "/me", { headers: { cookie } })).body).toBe("nobody")
    }).pipe(Effect.provide(ManagerLive({ idleTimeout: "20 minutes" }))))
})

describe("finding 3: the absolute lifetime is absolute", () => {
  it.scoped("renewing every 50 minutes with a 1-hour lifetime ends at 1 hour", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(START)
      const server = yield* serve(SessionMiddleware.loadAndSave(routes(Effect.void)))
      let cookie = cookieFrom(yield* call(server, "/login"))
      yield* TestClock.adjust("50 minutes")
      const renewed = yield* call(server, "/login", { headers: { cookie } })
      cookie = cookieFrom(renewed)
      expect(renewed.setCookies[0]).toMatch(/Max-Age=600;/) // 10 minutes left, not another hour
      yield* TestClock.adjust("11 minutes")
      expect((yield* call(server, "/me", { headers: { cookie } })).body).toBe("nobody")
    }).pipe(Effect.provide(ManagerLive({ lifetime: "1 hour" }))))

  it.scoped("renewal extends up to maxLifetime and no further", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(START)
      const manager = yield* SessionManager.SessionManager
      const session = yield* manager.load(undefined)
      yield* session.put("a", 1)
      for (let i = 0; i < 5; i++) {
        yield* TestClock.adjust("50 minutes")
        yield* session.renewToken
      }
      expect(DateTime.toEpochMillis(yield* session.deadline)).toBe(START + 3 * 3_600_000)
    }).pipe(Effect.provide(ManagerLive({ lifetime: "1 hour", maxLifetime: "3 hours" }))))

  it.scoped("setDeadline cannot pass the cap (the year 275760 is cut to it)", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(START)
      const manager = yield* SessionManager.SessionManager
      const session = yield* manager.load(undefined)
      yield* session.setDeadline(8.64e15)
      expect(DateTime.toEpochMillis(yield* session.deadline)).toBe(START + 24 * 3_600_000)
      const outcome = yield* manager.commit(session)
      expect(outcome._tag === "Written" && outcome.expiresAt).toBe(START + 24 * 3_600_000)
    }).pipe(Effect.provide(ManagerLive())))

  it.effect("maxLifetime shorter than lifetime is a configuration error", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(SessionManager.resolveOptions({ lifetime: "2 hours", maxLifetime: "1 hour" }))
      expect(error._tag).toBe("SessionConfigError")
      expect(error.option).toBe("maxLifetime")
    }))
})

describe("finding 8: bounded input, and a merge that cannot be abused", () => {
  const big = HttpRouter.empty.pipe(
    HttpRouter.get(
      "/big",
      Effect.as(
        Effect.flatMap(Session.Session, (s) => s.put("blob", "x".repeat(20 * 1024 * 1024))),
        HttpServerResponse.text("ok")
      )
    ),
    HttpRouter.get(
      "/many",
      Effect.as(
        Effect.flatMap(
          Session.Session,
          (s) =>
            Effect.forEach(Array.from({ length: 100_000 }, (_, i) => `k${i}`), (k) => s.put(k, 1), { discard: true })
        ),
        HttpServerResponse.text("ok")
      )
    )
  )

  it.scoped("a 20 MiB value and 100,000 keys are refused at commit: a 500, nothing stored, no cookie", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(START)
      const server = yield* serve(SessionMiddleware.loadAndSave(big))
      for (const path of ["/big", "/many"]) {
        const reply = yield* call(server, path)
        expect(reply.status).toBe(500)
        expect(reply.setCookies).toEqual([])
      }
      expect(yield* (yield* MemoryStore.MemoryStore).size).toBe(0)
    }).pipe(Effect.provide(ManagerLive())))

  it.scoped("the limits are typed and configurable", () =>
    Effect.gen(function*() {
      const manager = yield* SessionManager.SessionManager
      const session = yield* manager.load(undefined)
      yield* session.put("a", "x".repeat(100))
      const size = yield* Effect.flip(manager.commit(session))
      expect(size).toMatchObject({ _tag: "SessionLimitError", reason: "Size", limit: 64 })
      yield* session.clear
      yield* Effect.forEach(["a", "b", "c"], (k) => session.put(k, 1))
      expect(yield* Effect.flip(manager.commit(session))).toMatchObject({ reason: "Keys", limit: 2, actual: 3 })
    }).pipe(Effect.provide(ManagerLive({ maxSize: 64, maxKeys: 2 }))))

  it.scoped("the size limit counts the encoded session's UTF-8 bytes, not its characters", () =>
    Effect.gen(function*() {
      const manager = yield* SessionManager.SessionManager
      // "€" is one UTF-16 unit and three bytes: 90 of them are ~160 characters, ~340 bytes.
      const over = yield* manager.load(undefined)
      yield* over.put("a", "€".repeat(90))
      const refused = yield* Effect.flip(manager.commit(over))
      expect(refused).toMatchObject({ _tag: "SessionLimitError", reason: "Size", limit: 300 })
      expect(refused._tag === "SessionLimitError" && refused.actual).toBeGreaterThan(300)
      const under = yield* manager.load(undefined)
      yield* under.put("a", "€".repeat(60))
      expect((yield* manager.commit(under))._tag).toBe("Written")
    }).pipe(Effect.provide(ManagerLive({ maxSize: 300 }))))

  it.scoped("mergeSession: this session's values win, its deadline stays, its token changes, the other is gone", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(START)
      const manager = yield* SessionManager.SessionManager
      const mine = yield* manager.load(undefined)
      yield* mine.put("role", "user")
      yield* manager.commit(mine)
      const myToken = Option.getOrThrow(yield* mine.token)
      yield* TestClock.adjust("1 hour")
      const other = yield* manager.load(undefined)
      yield* other.put("role", "admin")
      yield* other.put("cart", [1, 2])
      yield* manager.commit(other)
      const otherToken = Option.getOrThrow(yield* other.token)
      const current = yield* manager.load(myToken)
      yield* current.mergeSession(otherToken)
      expect(yield* current.getString("role")).toBe("user")
      expect(yield* current.get("cart")).toEqual(Option.some([1, 2]))
      expect(DateTime.toEpochMillis(yield* current.deadline)).toBe(START + 24 * 3_600_000)
      const outcome = yield* manager.commit(current)
      expect(outcome._tag).toBe("Written")
      const newToken = outcome._tag === "Written" ? Redacted.value(outcome.token) : ""
      expect(newToken).not.toBe(Redacted.value(myToken))
      expect(yield* (yield* manager.load(myToken)).keys).toEqual([])
      expect(yield* (yield* manager.load(otherToken)).keys).toEqual([])
      // With prefer: "other" the other session's values win.
      const third = yield* manager.load(undefined)
      yield* third.put("role", "editor")
      yield* manager.commit(third)
      const again = yield* manager.load(Redacted.make(newToken))
      yield* again.mergeSession(Option.getOrThrow(yield* third.token), { prefer: "other" })
      expect(yield* again.getString("role")).toBe("editor")
    }).pipe(Effect.provide(ManagerLive())))
})

describe("finding 9: a value that no longer decodes does not lock its user out", () => {
  it.scoped("a stale typed value is dropped (and logged), so /logout after reading the user works", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(START)
      const OldUser = Session.key("userId", Schema.String) // the schema before a deploy changed it
      const app = SessionMiddleware.loadAndSave(
        HttpRouter.empty.pipe(
          HttpRouter.get(
            "/old-login",
            Effect.as(Effect.flatMap(Session.Session, (s) => s.put(OldUser, "alice")), HttpServerResponse.text("in"))
          ),
          HttpRouter.get(
            "/logout",
            Effect.gen(function*() {
              const session = yield* Session.Session
              const user = yield* session.get(UserId) // the new schema: a number
              yield* session.destroy
              return HttpServerResponse.text(`bye ${Option.getOrElse(user, () => "unknown")}`)
            })
          )
        )
      )
      const server = yield* serve(app)
      const cookie = cookieFrom(yield* call(server, "/old-login"))
      const out = yield* call(server, "/logout", { headers: { cookie } })
      expect(out.status).toBe(200)
      expect(out.body).toBe("bye unknown")
    }).pipe(Effect.provide(ManagerLive())))

  it.scoped("onValueDecodeError: \"fail\" keeps the typed error, which names the key and not the value", () =>
    Effect.gen(function*() {
      const manager = yield* SessionManager.SessionManager
      const session = yield* manager.load(undefined)
      yield* session.put("userId", "secret-value")
      const error = yield* Effect.flip(session.get(UserId))
      expect(error).toMatchObject({ _tag: "SessionValueError", reason: "Decode", key: "userId" })
      expect(JSON.stringify(error) + String(error) + error.message).not.toContain("secret-value")
    }).pipe(Effect.provide(ManagerLive({ onValueDecodeError: "fail" }))))

  it.scoped("put(\"__proto__\") is refused with a typed error instead of being lost on reload", () =>
    Effect.gen(function*() {
      const manager = yield* SessionManager.SessionManager
      const session = yield* manager.load(undefined)
      const error = yield* Effect.flip(session.put("__proto__", { admin: true }))
      expect(error).toMatchObject({ _tag: "SessionValueError", reason: "Key", key: "__proto__" })
      expect(yield* session.status).toBe("Unmodified")
    }).pipe(Effect.provide(ManagerLive())))
})

describe("finding 5: secure defaults", () => {
  it("tokens are hashed in the store by default", () => {
    const options = SessionManager.resolveOptions()
    expect(options._tag === "Right" && options.right.hashTokenInStore).toBe(true)
  })
})
