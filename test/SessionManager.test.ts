import { describe, expect, it } from "@effect/vitest"
import * as Config from "effect/Config"
import * as ConfigProvider from "effect/ConfigProvider"
import * as DateTime from "effect/DateTime"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as TestClock from "effect/TestClock"
import { createHash } from "node:crypto"
import * as Session from "../src/Session.js"
import * as SessionCodec from "../src/SessionCodec.js"
import * as SessionCodecMsgPack from "../src/SessionCodec/MsgPack.js"
import * as SessionManager from "../src/SessionManager.js"
import { SessionStore, SessionStoreError } from "../src/SessionStore.js"
import * as MemoryStore from "../src/SessionStore/Memory.js"
import { START } from "./conformance.js"

type Env = SessionManager.SessionManager | SessionStore

// These cases read the store by the raw token: hashing (the default) is turned on where a case says so.
const withManager = (options: SessionManager.Options = {}) =>
  SessionManager.layer({ hashTokenInStore: false, ...options }).pipe(Layer.provideMerge(MemoryStore.layer()))

const test = (name: string, body: Effect.Effect<void, unknown, Env>, options: SessionManager.Options = {}) =>
  it.effect(name, () => TestClock.setTime(START).pipe(Effect.zipRight(Effect.provide(body, withManager(options)))))

const commitToken = (session: Session.Session) =>
  Effect.gen(function*() {
    const manager = yield* SessionManager.SessionManager
    const outcome = yield* manager.commit(session)
    if (outcome._tag !== "Written") throw new Error(`expected Written, got ${outcome._tag}`)
    return { token: Redacted.value(outcome.token), expiresAt: outcome.expiresAt, rememberMe: outcome.rememberMe }
  })

const newSessionWith = (key: string, value: Session.Json) =>
  Effect.gen(function*() {
    const manager = yield* SessionManager.SessionManager
    const session = yield* manager.load(undefined)
    yield* session.put(key, value)
    return session
  })

const load = (token: string | undefined) =>
  Effect.flatMap(SessionManager.SessionManager, (m) => m.load(token === undefined ? undefined : Redacted.make(token)))

describe("SessionManager configuration", () => {
  const invalid = (options: SessionManager.Options, reason: RegExp) =>
    it.effect(`rejects ${JSON.stringify(options)}`, () =>
      Effect.gen(function*() {
        const result = yield* Effect.either(Layer.build(withManager(options)).pipe(Effect.scoped))
        expect(Either.isLeft(result) && result.left._tag).toBe("SessionConfigError")
        expect(Either.isLeft(result) ? result.left.message : "").toMatch(reason)
      }))

  invalid({ lifetime: 0 }, /lifetime must be positive/)
  invalid({ lifetime: "-5 minutes" as Duration.DurationInput }, /lifetime/)
  invalid({ lifetime: Duration.infinity }, /lifetime must be finite/)
  invalid({ idleTimeout: -1 }, /idleTimeout must not be negative/)
  invalid({ idleTimeout: "soon" as Duration.DurationInput }, /idleTimeout is not a duration/)

  it("applies scs's defaults", () => {
    const defaults = Either.getOrThrow(SessionManager.resolveOptions())
    expect(Duration.toMillis(defaults.lifetime)).toBe(24 * 3600 * 1000)
    expect(defaults.idleTimeout).toEqual(Option.none())
    expect(defaults.hashTokenInStore).toBe(true)
    expect(Duration.toMillis(defaults.maxLifetime)).toBe(24 * 3600 * 1000)
    expect([defaults.maxSize, defaults.maxKeys, defaults.onValueDecodeError]).toEqual([65_536, 256, "remove"])
    expect(defaults.onDecodeError).toBe("reset")
  })

  it.effect("layerConfig reads the options from Config (environment variables)", () =>
    Effect.gen(function*() {
      const layer = SessionManager.layerConfig({
        lifetime: Config.duration("SESSION_LIFETIME"),
        idleTimeout: Config.duration("SESSION_IDLE_TIMEOUT")
      }).pipe(Layer.provide(MemoryStore.layer()))
      const provider = ConfigProvider.fromMap(
        new Map([
          ["SESSION_LIFETIME", "3 hours"],
          ["SESSION_IDLE_TIMEOUT", "20 minutes"]
        ])
      )
      const manager = yield* Effect.provide(SessionManager.SessionManager, layer).pipe(
        Effect.withConfigProvider(provider)
      )
      expect(Duration.toMillis(manager.options.lifetime)).toBe(3 * 3600 * 1000)
      expect(Option.map(manager.options.idleTimeout, Duration.toMillis)).toEqual(Option.some(20 * 60 * 1000))
      // The same checks apply to configuration from the environment.
      const invalid = ConfigProvider.fromMap(
        new Map([["SESSION_LIFETIME", "0 millis"], ["SESSION_IDLE_TIMEOUT", "0 millis"]])
      )
      const failed = yield* Effect.either(
        Effect.provide(SessionManager.SessionManager, layer).pipe(Effect.withConfigProvider(invalid))
      )
      expect(Either.isLeft(failed) && failed.left._tag).toBe("SessionConfigError")
    }))
})

describe("SessionManager load and commit", () => {
  test(
    "a new session gets a 43-character token at its first commit, expiring at the deadline",
    Effect.gen(function*() {
      const session = yield* newSessionWith("a", 1)
      expect(yield* session.token).toEqual(Option.none())
      const { expiresAt, rememberMe, token } = yield* commitToken(session)
      expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/)
      expect(expiresAt).toBe(START + 24 * 3600 * 1000)
      expect(rememberMe).toBe(undefined)
      expect(Option.map(yield* session.token, Redacted.value)).toEqual(Option.some(token))
    })
  )

  test(
    "an unmodified session writes nothing: no token, no store entry",
    Effect.gen(function*() {
      const manager = yield* SessionManager.SessionManager
      const session = yield* manager.load(undefined)
      expect((yield* manager.commit(session))._tag).toBe("Unchanged")
      expect(yield* session.token).toEqual(Option.none())
    })
  )

  test(
    "tokens come from a CSPRNG: 1,000 are distinct",
    Effect.gen(function*() {
      const tokens = new Set<string>()
      for (let i = 0; i < 1000; i++) tokens.add((yield* commitToken(yield* newSessionWith("i", i))).token)
      expect(tokens.size).toBe(1000)
    })
  )

  test(
    "unknown, malformed and empty tokens are never adopted",
    Effect.gen(function*() {
      const store = yield* SessionStore
      for (
        const token of [
          undefined,
          "",
          "short",
          "A".repeat(43),
          "A".repeat(42) + "=",
          "../../etc/passwd",
          "x".repeat(5000)
        ]
      ) {
        const session = yield* load(token)
        expect(yield* session.token).toEqual(Option.none())
        yield* session.put("k", "v")
        const { token: issued } = yield* commitToken(session)
        expect(issued).not.toBe(token)
      }
      // A malformed token never reaches the store.
      let finds = 0
      const counting: SessionStore = { ...store, find: (key) => Effect.suspend(() => (finds++, store.find(key))) }
      const manager = yield* Effect.provideService(SessionManager.make(), SessionStore, counting)
      yield* manager.load(Redacted.make("not-a-token"))
      yield* manager.load(Redacted.make("B".repeat(44)))
      expect(finds).toBe(0)
      yield* manager.load(Redacted.make("B".repeat(43)))
      expect(finds).toBe(1)
    })
  )

  test(
    "the absolute lifetime ends the session, even if it is in use",
    Effect.gen(function*() {
      const { token } = yield* commitToken(yield* newSessionWith("a", 1))
      yield* TestClock.adjust("23 hours")
      const session = yield* load(token)
      yield* session.put("b", 2)
      yield* commitToken(session)
      yield* TestClock.adjust("59 minutes")
      expect(yield* (yield* load(token)).keys).toEqual(["a", "b"])
      yield* TestClock.adjust("1 minute")
      expect(yield* (yield* load(token)).keys).toEqual([])
    }),
    { lifetime: "24 hours" }
  )

  test(
    "the manager checks the decoded deadline itself, even if a store returns a stale entry",
    Effect.gen(function*() {
      const store = yield* SessionStore
      const { token } = yield* commitToken(yield* newSessionWith("a", 1))
      const record = Option.getOrThrow(yield* store.find(token))
      // A store that forgets to check expiry.
      const forgetful: SessionStore = { ...store, find: () => Effect.succeed(Option.some(record)) }
      const manager = yield* Effect.provideService(SessionManager.make({ lifetime: "1 hour" }), SessionStore, forgetful)
      yield* TestClock.adjust("25 hours")
      expect(yield* (yield* manager.load(Redacted.make(token))).keys).toEqual([])
    }),
    { lifetime: "24 hours" }
  )

  test(
    "idle timeout: expiry = min(deadline, now + idle), sliding with use",
    Effect.gen(function*() {
      const first = yield* commitToken(yield* newSessionWith("a", 1))
      expect(first.expiresAt).toBe(START + 20 * 60 * 1000)
      // Used every 15 minutes for two hours: it stays alive.
      for (let i = 1; i <= 8; i++) {
        yield* TestClock.adjust("15 minutes")
        const session = yield* load(first.token)
        expect(yield* session.getInt("a")).toBe(1)
        yield* SessionManager.SessionManager.pipe(Effect.flatMap((m) => m.commit(session)))
      }
      // Idle for 20 minutes: gone.
      yield* TestClock.adjust("20 minutes")
      expect(yield* (yield* load(first.token)).keys).toEqual([])
    }),
    { idleTimeout: "20 minutes", lifetime: "3 hours" }
  )

  test(
    "idle timeout never extends past the absolute deadline",
    Effect.gen(function*() {
      const { token } = yield* commitToken(yield* newSessionWith("a", 0))
      const expiries: Array<number> = []
      for (let i = 1; i <= 3; i++) {
        yield* TestClock.adjust("15 minutes")
        const session = yield* load(token)
        yield* session.put("a", i)
        expiries.push((yield* commitToken(session)).expiresAt)
      }
      expect(expiries).toEqual([START + 35 * 60 * 1000, START + 50 * 60 * 1000, START + 60 * 60 * 1000])
    }),
    { idleTimeout: "20 minutes", lifetime: "1 hour" }
  )

  test(
    "idle timeout: read-only requests re-commit only once half the idle window has passed",
    Effect.gen(function*() {
      const manager = yield* SessionManager.SessionManager
      const { token } = yield* commitToken(yield* newSessionWith("a", 1))
      yield* TestClock.adjust("9 minutes")
      const early = yield* load(token)
      expect(yield* early.status).toBe("Unmodified")
      expect((yield* manager.commit(early))._tag).toBe("Unchanged")
      yield* TestClock.adjust("1 minute")
      const due = yield* load(token)
      const outcome = yield* manager.commit(due)
      expect(outcome._tag).toBe("Written")
      expect(outcome._tag === "Written" && outcome.expiresAt).toBe(START + 30 * 60 * 1000)
      expect(outcome._tag === "Written" && outcome.committedAt).toBe(START + 10 * 60 * 1000)
      // Just refreshed: the next read writes nothing.
      expect((yield* manager.commit(yield* load(token)))._tag).toBe("Unchanged")
    }),
    { idleTimeout: "20 minutes" }
  )

  test(
    "rememberMe is the session's own choice, reported at every commit and kept across requests",
    Effect.gen(function*() {
      const plain = yield* commitToken(yield* newSessionWith("a", 1))
      expect(plain.rememberMe).toBe(undefined)
      const session = yield* newSessionWith("a", 1)
      yield* session.rememberMe(true)
      const remembered = yield* commitToken(session)
      expect(remembered.rememberMe).toBe(true)
      // Remembered across requests.
      const again = yield* load(remembered.token)
      yield* again.put("b", 2)
      expect((yield* commitToken(again)).rememberMe).toBe(true)
      const forgotten = yield* load(remembered.token)
      yield* forgotten.rememberMe(false)
      expect((yield* commitToken(forgotten)).rememberMe).toBe(false)
    })
  )

  test(
    "hashTokenInStore: the store sees base64url(SHA-256(token)), clients the raw token",
    Effect.gen(function*() {
      const store = yield* SessionStore
      const { token } = yield* commitToken(yield* newSessionWith("a", 1))
      const hashed = createHash("sha256").update(token).digest("base64url")
      expect(yield* store.find(token)).toEqual(Option.none())
      expect(Option.isSome(yield* store.find(hashed))).toBe(true)
      const session = yield* load(token)
      expect(Option.map(yield* session.token, Redacted.value)).toEqual(Option.some(token))
      // Renew and destroy work on the hashed key.
      yield* session.renewToken
      const renewed = yield* commitToken(session)
      expect(yield* store.find(hashed)).toEqual(Option.none())
      const renewedSession = yield* load(renewed.token)
      expect(yield* renewedSession.getInt("a")).toBe(1)
      yield* renewedSession.destroy
      expect(yield* store.find(createHash("sha256").update(renewed.token).digest("base64url"))).toEqual(Option.none())
    }),
    { hashTokenInStore: true }
  )

  test(
    "a session that no longer decodes: by default a warning, the entry deleted, a fresh session",
    Effect.gen(function*() {
      const store = yield* SessionStore
      const token = "C".repeat(43)
      yield* store.commit(token, "{not json", START + 3600_000, "create")
      const session = yield* load(token)
      expect(yield* session.keys).toEqual([])
      expect(yield* session.token).toEqual(Option.none())
      expect(yield* store.find(token)).toEqual(Option.none())
    })
  )

  test(
    "onDecodeError: fail gives a typed SessionCodecError and keeps the entry",
    Effect.gen(function*() {
      const store = yield* SessionStore
      const token = "D".repeat(43)
      yield* store.commit(token, "{\"deadline\":\"soon\"}", START + 3600_000, "create")
      const result = yield* Effect.either(load(token))
      expect(Either.isLeft(result) && result.left._tag).toBe("SessionCodecError")
      expect(Option.isSome(yield* store.find(token))).toBe(true)
    }),
    { onDecodeError: "fail" }
  )

  // A codec of the app's own may hand back an own `__proto__` value (the default JSON codec drops
  // it when it decodes, and `put` refuses the name): a write keeps it as the value it was.
  test(
    "a value named __proto__ that the codec decodes survives a write as an own value",
    Effect.gen(function*() {
      const store = yield* SessionStore
      const token = "E".repeat(43)
      const stored = `{"createdAt":${START},"deadline":${START + 3600_000},"values":{"__proto__":{"admin":true},"a":1}}`
      yield* store.commit(token, stored, START + 3600_000, "create")
      const session = yield* load(token)
      expect(yield* session.keys).toEqual(["__proto__", "a"])
      yield* session.put("b", 2)
      const manager = yield* SessionManager.SessionManager
      expect((yield* manager.commit(session))._tag).toBe("Written")
      const values = JSON.parse(Option.getOrThrow(yield* store.find(token)).data).values
      expect(Object.getPrototypeOf(values)).toBe(Object.prototype)
      expect(Object.entries(values)).toEqual([["__proto__", { admin: true }], ["a", 1], ["b", 2]])
      expect(yield* (yield* load(token)).get("__proto__")).toEqual(Option.some({ admin: true }))
    }),
    {
      codec: {
        schema: SessionCodec.json.schema,
        decode: (stored) => Either.right(JSON.parse(stored)),
        encode: (record) => Either.right(JSON.stringify(record))
      }
    }
  )

  test(
    "the MsgPack codec round-trips sessions",
    Effect.gen(function*() {
      const store = yield* SessionStore
      const session = yield* newSessionWith("a", { deep: [1, 2.5, "x", null] })
      const { token } = yield* commitToken(session)
      const stored = Option.getOrThrow(yield* store.find(token))
      expect(stored.data.startsWith("{")).toBe(false)
      expect(yield* (yield* load(token)).get("a")).toEqual(Option.some({ deep: [1, 2.5, "x", null] }))
    }),
    { codec: SessionCodecMsgPack.msgPack }
  )

  test(
    "a second commit in one request updates the same entry",
    Effect.gen(function*() {
      const manager = yield* SessionManager.SessionManager
      const session = yield* newSessionWith("a", 1)
      const first = yield* commitToken(session)
      yield* session.put("b", 2)
      const second = yield* commitToken(session)
      expect(second.token).toBe(first.token)
      expect(yield* (yield* manager.load(Redacted.make(first.token))).keys).toEqual(["a", "b"])
    })
  )

  test(
    "setDeadline moves the expiry handed to the store",
    Effect.gen(function*() {
      const session = yield* newSessionWith("a", 1)
      yield* session.setDeadline(DateTime.unsafeMake(START + 5 * 60 * 1000))
      const { expiresAt, token } = yield* commitToken(session)
      expect(expiresAt).toBe(START + 5 * 60 * 1000)
      yield* TestClock.adjust("5 minutes")
      expect(yield* (yield* load(token)).keys).toEqual([])
    })
  )
})

describe("SessionManager with a failing store", () => {
  const failing = (operation: "find" | "commit" | "delete"): SessionStore => {
    const error = new SessionStoreError({ reason: "Unavailable", operation, detail: "connection refused" })
    return {
      find: () => operation === "find" ? Effect.fail(error) : Effect.succeed(Option.none()),
      commit: () => operation === "commit" ? Effect.fail(error) : Effect.succeed("written"),
      take: () => Effect.succeed(Option.none()),
      touch: () => Effect.succeed("gone"),
      delete: () => operation === "delete" ? Effect.fail(error) : Effect.void,
      all: undefined,
      owners: undefined
    }
  }
  const managerOver = (store: SessionStore) => Effect.provideService(SessionManager.make(), SessionStore, store)

  it.effect("load fails with the typed store error", () =>
    Effect.gen(function*() {
      const manager = yield* managerOver(failing("find"))
      const result = yield* Effect.either(manager.load(Redacted.make("E".repeat(43))))
      expect(Either.isLeft(result) && result.left._tag).toBe("SessionStoreError")
      expect(Either.isLeft(result) && result.left.message).toBe(
        "Session store find failed (Unavailable): connection refused"
      )
      // No token, nothing to look up: no store call, no error.
      expect(Either.isRight(yield* Effect.either(manager.load(undefined)))).toBe(true)
    }))

  it.effect("commit fails with the typed store error", () =>
    Effect.gen(function*() {
      const manager = yield* managerOver(failing("commit"))
      const session = yield* manager.load(undefined)
      yield* session.put("a", 1)
      const result = yield* Effect.either(manager.commit(session))
      expect(Either.isLeft(result) && result.left._tag).toBe("SessionStoreError")
    }))

  it.effect("iterate on a store that cannot enumerate fails with reason Unsupported", () =>
    Effect.gen(function*() {
      const manager = yield* managerOver(failing("delete"))
      const result = yield* Effect.either(manager.iterate(() => Effect.void))
      expect(Either.isLeft(result) && result.left._tag === "SessionStoreError" && result.left.reason).toBe(
        "Unsupported"
      )
    }))

  test(
    "iterate stops at the first error of the callback and reports it",
    Effect.gen(function*() {
      for (let i = 0; i < 3; i++) yield* commitToken(yield* newSessionWith("i", i))
      const manager = yield* SessionManager.SessionManager
      let calls = 0
      const result = yield* Effect.either(manager.iterate(() => {
        calls++
        return Effect.fail("boom" as const)
      }))
      expect(result).toEqual(Either.left("boom"))
      expect(calls).toBe(1)
    })
  )

  test(
    "iterate with hashed tokens hands out sessions without a token (it cannot be recovered)",
    Effect.gen(function*() {
      yield* commitToken(yield* newSessionWith("a", 1))
      const manager = yield* SessionManager.SessionManager
      const tokens: Array<Option.Option<Redacted.Redacted<string>>> = []
      yield* manager.iterate((session) => Effect.map(session.token, (token) => void tokens.push(token)))
      expect(tokens).toEqual([Option.none()])
    }),
    { hashTokenInStore: true }
  )
})

describe("Several managers", () => {
  it.effect("two managers with their own stores and lifetimes are independent", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(START)
      const users = yield* Effect.provide(SessionManager.make({ lifetime: "1 hour" }), MemoryStore.layer())
      const admins = yield* Effect.provide(
        SessionManager.make({ lifetime: "5 minutes" }),
        MemoryStore.layer()
      )
      const user = yield* users.load(undefined)
      yield* user.put("who", "user")
      const admin = yield* admins.load(undefined)
      yield* admin.put("who", "admin")
      const userOutcome = yield* users.commit(user)
      const adminOutcome = yield* admins.commit(admin)
      const userToken = userOutcome._tag === "Written" ? Redacted.value(userOutcome.token) : ""
      const adminToken = adminOutcome._tag === "Written" ? Redacted.value(adminOutcome.token) : ""
      expect(yield* (yield* admins.load(Redacted.make(userToken))).keys).toEqual([])
      yield* TestClock.adjust("10 minutes")
      expect(yield* (yield* users.load(Redacted.make(userToken))).getString("who")).toBe("user")
      expect(yield* (yield* admins.load(Redacted.make(adminToken))).keys).toEqual([])
    }))
})
