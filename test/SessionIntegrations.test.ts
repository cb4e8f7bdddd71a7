/**
 * The one middleware flow through each integration, over real HTTP: HttpLayerRouter (HttpApp
 * and HttpApi have their own files' cases), locks taken only for sessions that exist, and
 * requests whose client goes away in the middle of the handler.
 */
import * as HttpLayerRouter from "@effect/platform/HttpLayerRouter"
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { describe, expect, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Queue from "effect/Queue"
import * as TestClock from "effect/TestClock"
import { Session } from "../src/Session.js"
import { SessionLock } from "../src/SessionLock.js"
import * as SessionLockModule from "../src/SessionLock.js"
import * as SessionManager from "../src/SessionManager.js"
import * as SessionMiddleware from "../src/SessionMiddleware.js"
import * as MemoryStore from "../src/SessionStore/Memory.js"
import * as SessionTransport from "../src/SessionTransport.js"
import { call, cookieFrom, serve, serveLayer } from "./http.js"

const START = Date.UTC(2026, 0, 1, 12, 0, 0)

const ManagerLive = SessionManager.layer().pipe(Layer.provide(MemoryStore.layer()))

const put = Effect.gen(function*() {
  const session = yield* Session
  yield* session.put("message", "Hello from a session!")
  return HttpServerResponse.text("ok")
})
const get = Effect.flatMap(Session, (session) => session.getString("message")).pipe(Effect.map(HttpServerResponse.text))

describe("HttpLayerRouter", () => {
  const Routes = Layer.mergeAll(
    HttpLayerRouter.add("GET", "/put", put),
    HttpLayerRouter.add("GET", "/get", get),
    HttpLayerRouter.add(
      "GET",
      "/destroy",
      Effect.flatMap(Session, (s) => s.destroy).pipe(Effect.as(HttpServerResponse.text("bye")))
    ),
    HttpLayerRouter.add(
      "GET",
      "/put-then-fail",
      Effect.gen(function*() {
        yield* (yield* Session).put("message", "written before the failure")
        return yield* Effect.die("boom")
      })
    )
  ).pipe(Layer.provide(SessionMiddleware.layerRouter()))

  const served = serveLayer(HttpLayerRouter.serve(Routes, { disableLogger: true, disableListenLog: true })).pipe(
    Effect.provide(ManagerLive)
  )

  it.scoped("routes get Session from the middleware layer, with the cookie semantics of loadAndSave", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(START)
      const server = yield* served
      const first = yield* call(server, "/put")
      expect(cookieFrom(first)).toMatch(/^session=[A-Za-z0-9_-]{43}$/)
      expect(first.headers.get("vary")).toBe("Cookie")
      const read = yield* call(server, "/get", { headers: { cookie: cookieFrom(first) } })
      expect(read.body).toBe("Hello from a session!")
      expect(read.setCookies).toEqual([])
      const bye = yield* call(server, "/destroy", { headers: { cookie: cookieFrom(first) } })
      expect(bye.setCookies[0]).toMatch(/^session=; Max-Age=0; /)
      expect((yield* call(server, "/get", { headers: { cookie: cookieFrom(first) } })).body).toBe("")
    }))

  it.scoped("a defect after a put still commits and sends the cookie with the 500", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(START)
      const server = yield* served
      const failed = yield* call(server, "/put-then-fail")
      expect(failed.status).toBe(500)
      const read = yield* call(server, "/get", { headers: { cookie: cookieFrom(failed) } })
      expect(read.body).toBe("written before the failure")
    }))

  it.scoped("the layer takes its transport from context, and fails with SessionConfigError on bad lock options", () =>
    Effect.gen(function*() {
      const custom = serveLayer(HttpLayerRouter.serve(Routes, { disableLogger: true, disableListenLog: true })).pipe(
        Effect.provide(ManagerLive),
        Effect.provide(SessionTransport.layerCookie({ name: "sid" }))
      )
      expect(cookieFrom(yield* call(yield* custom, "/put"), "sid")).toMatch(/^sid=/)
      const broken = yield* Layer.build(SessionMiddleware.layerRouter({ lock: { timeout: -1 } })).pipe(
        Effect.provide(ManagerLive),
        Effect.provide(SessionLockModule.layerNone),
        Effect.flip
      )
      expect(broken._tag).toBe("SessionConfigError")
      expect(broken.message).toMatch(/lock\.timeout must not be negative/)
    }))
})

/**
 * The in-process lock, counting how often it is taken and how many holders it has right now;
 * `released` receives one item per release.
 */
const countingLock = Effect.gen(function*() {
  const inner = yield* SessionLockModule.makeInProcess()
  const counts = { taken: 0, held: 0 }
  const released = yield* Queue.unbounded<void>()
  const lock: SessionLock = {
    acquire: (key, options) =>
      inner.acquire(key, options).pipe(
        Effect.zipRight(Effect.sync(() => {
          counts.taken++
          counts.held++
        })),
        Effect.zipRight(
          Effect.addFinalizer(() =>
            Effect.sync(() => counts.held--).pipe(Effect.zipRight(Queue.offer(released, void 0)))
          )
        )
      )
  }
  return { lock, counts, released }
})

describe("locks", () => {
  it.scoped("only a session that exists is locked: made-up tokens cost a find, never a lock", () =>
    Effect.gen(function*() {
      const { counts, lock } = yield* countingLock
      const server = yield* serve(
        SessionMiddleware.make({ lock: true })(HttpRouter.empty.pipe(
          HttpRouter.get("/put", put),
          HttpRouter.get("/get", get)
        ))
      ).pipe(Effect.provide(ManagerLive), Effect.provide(Layer.succeed(SessionLock, lock)))
      for (let i = 0; i < 20; i++) {
        const token = Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("base64url")
        const reply = yield* call(server, "/get", { headers: { cookie: `session=${token}` } })
        expect(reply.status).toBe(200)
      }
      // New sessions are not locked either: nobody else can hold their token yet.
      const created = yield* call(server, "/put")
      expect(counts.taken).toBe(0)
      const read = yield* call(server, "/get", { headers: { cookie: cookieFrom(created) } })
      expect(read.body).toBe("Hello from a session!")
      expect(counts.taken).toBe(1)
      expect(counts.held).toBe(0)
    }))

  it.scoped("the session is read again under the lock: a change made while waiting is seen", () =>
    Effect.gen(function*() {
      const { lock } = yield* countingLock
      const entered = yield* Deferred.make<void>()
      const proceed = yield* Deferred.make<void>()
      const app = SessionMiddleware.make({ lock: true })(HttpRouter.empty.pipe(
        HttpRouter.get("/put", put),
        HttpRouter.get(
          "/slow-put",
          Effect.gen(function*() {
            yield* Deferred.succeed(entered, void 0)
            yield* Deferred.await(proceed)
            yield* (yield* Session).put("message", "from the slow request")
            return HttpServerResponse.text("ok")
          })
        ),
        HttpRouter.get(
          "/append",
          Effect.gen(function*() {
            const session = yield* Session
            yield* session.put("message", `${yield* session.getString("message")} + appended`)
            return HttpServerResponse.text("ok")
          })
        ),
        HttpRouter.get("/get", get)
      ))
      const server = yield* serve(app).pipe(
        Effect.provide(ManagerLive),
        Effect.provide(Layer.succeed(SessionLock, lock))
      )
      const cookie = cookieFrom(yield* call(server, "/put"))
      const slow = yield* Effect.fork(call(server, "/slow-put", { headers: { cookie } }))
      yield* Deferred.await(entered)
      // Loaded before the slow request commits; waits for its lock, then must see its write.
      const append = yield* Effect.fork(call(server, "/append", { headers: { cookie } }))
      yield* Deferred.succeed(proceed, void 0)
      yield* slow.await
      yield* append.await
      expect((yield* call(server, "/get", { headers: { cookie } })).body).toBe("from the slow request + appended")
    }).pipe(Effect.provide(ManagerLive)))
})

describe("a client that goes away mid-handler", () => {
  it.scopedLive("the request's scope closes, the lock is let go of, and the session is usable at once", () =>
    Effect.gen(function*() {
      const { counts, lock, released } = yield* countingLock
      const entered = yield* Deferred.make<void>()
      const scopeClosed = yield* Deferred.make<void>()
      const app = SessionMiddleware.make({ lock: { timeout: "2 seconds" } })(HttpRouter.empty.pipe(
        HttpRouter.get("/put", put),
        HttpRouter.get("/get", get),
        HttpRouter.get(
          "/hang",
          Effect.gen(function*() {
            yield* Effect.addFinalizer(() => Deferred.succeed(scopeClosed, void 0))
            yield* Deferred.succeed(entered, void 0)
            return yield* Effect.never
          })
        )
      ))
      const server = yield* serve(app).pipe(
        Effect.provide(ManagerLive),
        Effect.provide(Layer.succeed(SessionLock, lock))
      )
      const cookie = cookieFrom(yield* call(server, "/put"))
      const controller = new AbortController()
      const hanging = server.url + "/hang"
      const request = fetch(hanging, { headers: { cookie }, signal: controller.signal }).catch((error) => error)
      yield* Deferred.await(entered)
      expect(counts.held).toBe(1)
      controller.abort()
      yield* Effect.promise(() => request)
      const waitFor = <A>(what: Effect.Effect<A>, failure: string) =>
        Effect.timeoutFail(what, { duration: "5 seconds", onTimeout: () => failure })
      yield* waitFor(Deferred.await(scopeClosed), "the request's scope is still open")
      yield* waitFor(Queue.take(released), "the lock is still held")
      expect(counts.held).toBe(0)
      // The next request on the session takes the lock at once and sees the session.
      const read = yield* call(server, "/get", { headers: { cookie } }).pipe(
        Effect.timeoutFail({ duration: "1 second", onTimeout: () => "the lock was still held" })
      )
      expect(read.body).toBe("Hello from a session!")
    }))
})
