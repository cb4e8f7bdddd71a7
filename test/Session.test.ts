import { describe, expect, it } from "@effect/vitest"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as TestClock from "effect/TestClock"
import * as Session from "../src/Session.js"
import * as SessionManager from "../src/SessionManager.js"
import * as Sealed from "../src/SessionManager/Sealed.js"
import * as MemoryStore from "../src/SessionStore/Memory.js"
import { START } from "./conformance.js"

/**
 * The same session behaviour, over a store (the memory store) and over sealed cookies; where they
 * must differ (a store forgets a destroyed or renewed session at once), `revocable` says so.
 */
const MODES = [
  {
    name: "memory store",
    make: (options?: SessionManager.Options) => Effect.provide(SessionManager.make(options), MemoryStore.layer()),
    revocable: true
  },
  {
    name: "sealed cookies",
    make: (options?: SessionManager.Options) =>
      Sealed.make({
        ...options,
        secrets: [{ id: "test", secret: Redacted.make("a test secret of at least 32 bytes") }]
      }),
    revocable: false
  }
] as const

/** A fresh session from the default manager. */
const fresh = Effect.gen(function*() {
  const manager = yield* SessionManager.SessionManager
  return yield* manager.load(undefined)
})

/** Commits a session and loads it back by its token, as the next request would. */
const roundTrip = (session: Session.Session) =>
  Effect.gen(function*() {
    const manager = yield* SessionManager.SessionManager
    const outcome = yield* manager.commit(session)
    if (outcome._tag !== "Written") throw new Error(`expected Written, got ${outcome._tag}`)
    return yield* manager.load(outcome.token)
  })

class User extends Schema.Class<User>("User")({ id: Schema.Number, name: Schema.String, since: Schema.DateTimeUtc }) {
  get greeting() {
    return `Hello, ${this.name}`
  }
}

for (const mode of MODES) {
  const ManagerLive = Layer.effect(SessionManager.SessionManager, mode.make())
  const test = (name: string, body: Effect.Effect<void, unknown, SessionManager.SessionManager>) =>
    // The clock is set before the store (and its sweep schedule) exists.
    it.effect(name, () => TestClock.setTime(START).pipe(Effect.zipRight(Effect.provide(body, ManagerLive))))

  describe(`Session data operations and status transitions (${mode.name})`, () => {
    test(
      "a new session is Unmodified, empty and has no token",
      Effect.gen(function*() {
        const session = yield* fresh
        expect(yield* session.status).toBe("Unmodified")
        expect(yield* session.keys).toEqual([])
        expect(yield* session.token).toEqual(Option.none())
        expect(DateTime.toEpochMillis(yield* session.deadline)).toBe(START + 24 * 3600 * 1000)
      })
    )

    test(
      "members can be taken off the session and called on their own",
      Effect.gen(function*() {
        const session = yield* fresh
        const { getInt, put, status } = session
        yield* put("count", 41)
        yield* put("count", (yield* getInt("count")) + 1)
        expect(yield* session.getInt("count")).toBe(42)
        expect(yield* status).toBe("Modified")
      })
    )

    test(
      "put then get; put makes it Modified",
      Effect.gen(function*() {
        const session = yield* fresh
        yield* session.put("message", "hello")
        expect(yield* session.status).toBe("Modified")
        expect(yield* session.get("message")).toEqual(Option.some("hello"))
        expect(yield* session.get("missing")).toEqual(Option.none())
      })
    )

    test(
      "values survive a commit and a load with a stable token",
      Effect.gen(function*() {
        const session = yield* fresh
        yield* session.put("a", { nested: [1, "two", null, true] })
        const loaded = yield* roundTrip(session)
        expect(yield* loaded.get("a")).toEqual(Option.some({ nested: [1, "two", null, true] }))
        expect(yield* loaded.status).toBe("Unmodified")
        const token = yield* session.token
        expect(Option.map(yield* loaded.token, Redacted.value)).toEqual(Option.map(token, Redacted.value))
        // The token the client holds names the session: what the commit handed out.
        expect(Option.isSome(token)).toBe(true)
      })
    )

    test(
      "pop returns and removes (flash); Modified only when present",
      Effect.gen(function*() {
        const session = yield* roundTrip(yield* Effect.tap(fresh, (s) => s.put("flash", "saved!")))
        expect(yield* session.pop("missing")).toEqual(Option.none())
        expect(yield* session.status).toBe("Unmodified")
        expect(yield* session.pop("flash")).toEqual(Option.some("saved!"))
        expect(yield* session.status).toBe("Modified")
        expect(yield* session.exists("flash")).toBe(false)
      })
    )

    test(
      "remove of a missing key changes nothing; of a present key makes it Modified",
      Effect.gen(function*() {
        const session = yield* roundTrip(yield* Effect.tap(fresh, (s) => s.put("k", 1)))
        yield* session.remove("nope")
        expect(yield* session.status).toBe("Unmodified")
        yield* session.remove("k")
        expect(yield* session.status).toBe("Modified")
        expect(yield* session.exists("k")).toBe(false)
      })
    )

    test(
      "clear of an empty session changes nothing; of a full one keeps token and deadline",
      Effect.gen(function*() {
        const empty = yield* fresh
        yield* empty.clear
        expect(yield* empty.status).toBe("Unmodified")
        const session = yield* roundTrip(yield* Effect.tap(fresh, (s) => Effect.all([s.put("a", 1), s.put("b", 2)])))
        const token = yield* session.token
        const deadline = yield* session.deadline
        yield* session.clear
        expect(yield* session.status).toBe("Modified")
        expect(yield* session.keys).toEqual([])
        expect(yield* session.token).toEqual(token)
        expect(yield* session.deadline).toEqual(deadline)
      })
    )

    test(
      "exists and keys (sorted)",
      Effect.gen(function*() {
        const session = yield* fresh
        for (const key of ["zeta", "alpha", "Mid", "beta"]) yield* session.put(key, key)
        expect(yield* session.exists("alpha")).toBe(true)
        expect(yield* session.exists("gamma")).toBe(false)
        expect(yield* session.keys).toEqual(["Mid", "alpha", "beta", "zeta"])
      })
    )

    test(
      `destroy ${
        mode.revocable ? "deletes from the store at once, " : ""
      }empties, clears the token and resets the deadline`,
      Effect.gen(function*() {
        const manager = yield* SessionManager.SessionManager
        const session = yield* roundTrip(yield* Effect.tap(fresh, (s) => s.put("a", 1)))
        const token = Redacted.value(Option.getOrThrow(yield* session.token))
        yield* TestClock.adjust("1 hour")
        yield* session.destroy
        expect(yield* session.status).toBe("Destroyed")
        expect(yield* session.keys).toEqual([])
        expect(yield* session.token).toEqual(Option.none())
        expect(DateTime.toEpochMillis(yield* session.deadline)).toBe(START + 25 * 3600 * 1000)
        // Gone from the store before any commit; a sealed copy still opens (nothing is kept to forget it).
        expect(yield* (yield* manager.load(Redacted.make(token))).keys).toEqual(mode.revocable ? [] : ["a"])
        expect((yield* manager.commit(session))._tag).toBe("Destroyed")
      })
    )

    test(
      "a put after destroy starts a brand-new session with a new token",
      Effect.gen(function*() {
        const manager = yield* SessionManager.SessionManager
        const session = yield* roundTrip(yield* Effect.tap(fresh, (s) => s.put("a", 1)))
        const oldToken = Redacted.value(Option.getOrThrow(yield* session.token))
        yield* session.destroy
        yield* session.put("b", 2)
        expect(yield* session.status).toBe("Modified")
        const outcome = yield* manager.commit(session)
        expect(outcome._tag).toBe("Written")
        const newToken = outcome._tag === "Written" ? Redacted.value(outcome.token) : ""
        expect(newToken).not.toBe(oldToken)
        const loaded = yield* manager.load(Redacted.make(newToken))
        expect(yield* loaded.keys).toEqual(["b"])
      })
    )

    if (mode.revocable) {
      test(
        "renewToken: new token, the old entry taken, data kept, the deadline within the cap",
        Effect.gen(function*() {
          const manager = yield* SessionManager.SessionManager
          const session = yield* roundTrip(yield* Effect.tap(fresh, (s) => s.put("user", 7)))
          const oldToken = Redacted.value(Option.getOrThrow(yield* session.token))
          yield* TestClock.adjust("2 hours")
          yield* session.renewToken
          expect(yield* session.status).toBe("Modified")
          const newToken = Redacted.value(Option.getOrThrow(yield* session.token))
          expect(newToken).not.toBe(oldToken)
          expect(newToken).toMatch(/^[A-Za-z0-9_-]{43}$/)
          // min(now + lifetime, creation + maxLifetime): maxLifetime defaults to lifetime.
          expect(DateTime.toEpochMillis(yield* session.deadline)).toBe(START + 24 * 3600 * 1000)
          expect(yield* (yield* manager.load(Redacted.make(oldToken))).keys).toEqual([])
          // Stored under the new token at once, before the commit.
          expect(yield* (yield* manager.load(Redacted.make(newToken))).getInt("user")).toBe(7)
          yield* manager.commit(session)
          expect(yield* (yield* manager.load(Redacted.make(newToken))).getInt("user")).toBe(7)
          expect(yield* (yield* manager.load(Redacted.make(oldToken))).keys).toEqual([])
        })
      )
    } else {
      test(
        "renewToken: a new sealed value once committed, data kept, the deadline within the cap; the old copy still opens",
        Effect.gen(function*() {
          const manager = yield* SessionManager.SessionManager
          const session = yield* roundTrip(yield* Effect.tap(fresh, (s) => s.put("user", 7)))
          const oldToken = Redacted.value(Option.getOrThrow(yield* session.token))
          yield* TestClock.adjust("2 hours")
          yield* session.renewToken
          expect(yield* session.status).toBe("Modified")
          // Sealed at the commit: until then the client holds no token of the renewed session.
          expect(yield* session.token).toEqual(Option.none())
          expect(DateTime.toEpochMillis(yield* session.deadline)).toBe(START + 24 * 3600 * 1000)
          const outcome = yield* manager.commit(session)
          const newToken = outcome._tag === "Written" ? Redacted.value(outcome.token) : ""
          expect(newToken).not.toBe(oldToken)
          expect(Option.map(yield* session.token, Redacted.value)).toEqual(Option.some(newToken))
          expect(yield* (yield* manager.load(Redacted.make(newToken))).getInt("user")).toBe(7)
          expect(yield* (yield* manager.load(Redacted.make(oldToken))).getInt("user")).toBe(7)
        })
      )
    }

    test(
      `mergeSession pulls the other session in (this one's values and deadline win), ${
        mode.revocable ? "takes it " : ""
      }and renews`,
      Effect.gen(function*() {
        const manager = yield* SessionManager.SessionManager
        const other = yield* fresh
        yield* other.put("cart", [1, 2])
        yield* other.put("shared", "theirs")
        yield* other.setDeadline(START + 48 * 3600 * 1000)
        const otherToken = Option.getOrThrow(yield* roundTrip(other).pipe(Effect.flatMap((s) => s.token)))
        const session = yield* roundTrip(
          yield* Effect.tap(fresh, (s) => Effect.all([s.put("shared", "mine"), s.put("own", 1)]))
        )
        const ownToken = Option.getOrThrow(yield* session.token)
        yield* session.mergeSession(otherToken)
        expect(yield* session.status).toBe("Modified")
        expect(yield* session.get("cart")).toEqual(Option.some([1, 2]))
        expect(yield* session.get("shared")).toEqual(Option.some("mine"))
        expect(yield* session.get("own")).toEqual(Option.some(1))
        expect(DateTime.toEpochMillis(yield* session.deadline)).toBe(START + 24 * 3600 * 1000)
        expect(Option.map(yield* session.token, Redacted.value)).not.toEqual(Option.some(Redacted.value(ownToken)))
        if (mode.revocable) {
          expect(yield* (yield* manager.load(otherToken)).keys).toEqual([])
          expect(yield* (yield* manager.load(ownToken)).keys).toEqual([])
        }
        const merged = yield* roundTrip(session)
        expect(yield* merged.keys).toEqual(["cart", "own", "shared"])
      })
    )

    test(
      "mergeSession is a no-op for an unknown, malformed or own token",
      Effect.gen(function*() {
        const session = yield* roundTrip(yield* Effect.tap(fresh, (s) => s.put("a", 1)))
        yield* session.mergeSession(Redacted.make("A".repeat(43)))
        yield* session.mergeSession(Redacted.make("not a token"))
        yield* session.mergeSession(Redacted.make("test." + "A".repeat(80)))
        yield* session.mergeSession(Option.getOrThrow(yield* session.token))
        expect(yield* session.status).toBe("Unmodified")
        expect(yield* session.keys).toEqual(["a"])
      })
    )

    test(
      "rememberMe and setDeadline make it Modified",
      Effect.gen(function*() {
        const a = yield* fresh
        yield* a.rememberMe(true)
        expect(yield* a.status).toBe("Modified")
        const b = yield* fresh
        yield* b.setDeadline(new Date(START + 1000))
        expect(yield* b.status).toBe("Modified")
        expect(DateTime.toEpochMillis(yield* b.deadline)).toBe(START + 1000)
      })
    )
  })

  describe(`Typed getters and pops (scs zero values) (${mode.name})`, () => {
    const Bytes = Session.key("bytes", Schema.Uint8ArrayFromBase64Url)
    const When = Session.key("when", Schema.Date)

    test(
      "present values of the right type",
      Effect.gen(function*() {
        const session = yield* roundTrip(
          yield* Effect.tap(fresh, (s) =>
            Effect.all([
              s.put("s", "text"),
              s.put("i", 42),
              s.put("f", 1.5),
              s.put("b", true),
              s.put(Bytes, new Uint8Array([0, 1, 254, 255])),
              s.put(When, new Date("2026-02-03T04:05:06.789Z"))
            ]))
        )
        expect(yield* session.getString("s")).toBe("text")
        expect(yield* session.getInt("i")).toBe(42)
        expect(yield* session.getNumber("f")).toBe(1.5)
        expect(yield* session.getFloat("f")).toBe(1.5)
        expect(yield* session.getBoolean("b")).toBe(true)
        expect(yield* session.getBytes("bytes")).toEqual(new Uint8Array([0, 1, 254, 255]))
        expect((yield* session.getDate("when")).toISOString()).toBe("2026-02-03T04:05:06.789Z")
      })
    )

    test(
      "missing keys and values of another type give zero values",
      Effect.gen(function*() {
        const session = yield* fresh
        yield* session.put("notInt", 1.5)
        yield* session.put("notString", 3)
        expect(yield* session.getString("missing")).toBe("")
        expect(yield* session.getString("notString")).toBe("")
        expect(yield* session.getInt("notInt")).toBe(0)
        expect(yield* session.getInt("missing")).toBe(0)
        expect(yield* session.getFloat("missing")).toBe(0)
        expect(yield* session.getBoolean("notString")).toBe(false)
        expect(yield* session.getBytes("notString")).toEqual(new Uint8Array(0))
        expect((yield* session.getDate("missing")).getTime()).toBe(0)
      })
    )

    test(
      "typed pops return the value once and remove it",
      Effect.gen(function*() {
        const session = yield* fresh
        yield* Effect.all([session.put("s", "x"), session.put("i", 3), session.put("b", true), session.put("f", 2.5)])
        yield* session.put(Bytes, new Uint8Array([9]))
        yield* session.put(When, new Date(START))
        expect(yield* session.popString("s")).toBe("x")
        expect(yield* session.popString("s")).toBe("")
        expect(yield* session.popInt("i")).toBe(3)
        expect(yield* session.popNumber("f")).toBe(2.5)
        expect(yield* session.popFloat("f")).toBe(0)
        expect(yield* session.popBoolean("b")).toBe(true)
        expect(yield* session.popBytes("bytes")).toEqual(new Uint8Array([9]))
        expect((yield* session.popDate("when")).getTime()).toBe(START)
        expect(yield* session.keys).toEqual([])
      })
    )
  })

  describe(`Typed keys: values round-trip exactly through the session (${mode.name})`, () => {
    const LoginAt = Session.key("loginAt", Schema.DateTimeUtc)
    const Balance = Session.key("balance", Schema.BigInt)
    const Avatar = Session.key("avatar", Schema.Uint8ArrayFromBase64Url)
    const CurrentUser = Session.key("user", User)
    const Roles = Session.key("roles", Schema.Array(Schema.Literal("admin", "editor")))
    const Secret = Session.key("apiKey", Schema.Redacted(Schema.String))

    test(
      "dates, bigints, bytes, Schema classes, literals and Redacted",
      Effect.gen(function*() {
        const session = yield* fresh
        const loginAt = DateTime.unsafeMake("2026-03-04T05:06:07.890Z")
        const user = new User({ id: 1, name: "Ada", since: DateTime.unsafeMake("2020-01-01T00:00:00Z") })
        yield* session.put(LoginAt, loginAt)
        yield* session.put(Balance, 12345678901234567890n)
        yield* session.put(Avatar, new Uint8Array([1, 2, 3, 250]))
        yield* session.put(CurrentUser, user)
        yield* session.put(Roles, ["admin"])
        yield* session.put(Secret, Redacted.make("s3cret"))
        const loaded = yield* roundTrip(session)
        expect(Option.map(yield* loaded.get(LoginAt), DateTime.toEpochMillis)).toEqual(
          Option.some(DateTime.toEpochMillis(loginAt))
        )
        expect(yield* loaded.get(Balance)).toEqual(Option.some(12345678901234567890n))
        expect(yield* loaded.get(Avatar)).toEqual(Option.some(new Uint8Array([1, 2, 3, 250])))
        const loadedUser = Option.getOrThrow(yield* loaded.get(CurrentUser))
        expect(loadedUser).toBeInstanceOf(User)
        expect(loadedUser.greeting).toBe("Hello, Ada")
        expect(yield* loaded.get(Roles)).toEqual(Option.some(["admin"]))
        expect(Option.map(yield* loaded.get(Secret), Redacted.value)).toEqual(Option.some("s3cret"))
      })
    )

    test(
      "a value that no longer decodes is removed and read as none (the default), and the session is Modified",
      Effect.gen(function*() {
        const session = yield* fresh
        yield* session.put("balance", "not a bigint")
        yield* session.put("other", 1)
        const manager = yield* SessionManager.SessionManager
        const loaded = yield* roundTrip(session)
        expect(yield* loaded.get(Balance)).toEqual(Option.none())
        expect(yield* loaded.exists("balance")).toBe(false)
        expect(yield* loaded.status).toBe("Modified")
        expect(yield* loaded.getInt("other")).toBe(1)
        expect((yield* manager.commit(loaded))._tag).toBe("Written")
      })
    )

    it.effect("with onValueDecodeError: \"fail\", a typed SessionValueError, and pop leaves the value in place", () =>
      Effect.gen(function*() {
        const manager = yield* mode.make({ onValueDecodeError: "fail" })
        const session = yield* manager.load(undefined)
        yield* session.put("balance", "not a bigint")
        const result = yield* Effect.either(session.get(Balance))
        expect(Either.isLeft(result) && result.left._tag).toBe("SessionValueError")
        expect(Either.isLeft(result) && result.left.reason).toBe("Decode")
        expect(Either.isLeft(result) && result.left.key).toBe("balance")
        const popped = yield* Effect.either(session.pop(Balance))
        expect(Either.isLeft(popped)).toBe(true)
        expect(yield* session.exists("balance")).toBe(true)
      }))

    test(
      "a value its schema rejects fails put with a typed error and changes nothing",
      Effect.gen(function*() {
        const Age = Session.key("age", Schema.Int.pipe(Schema.between(0, 150)))
        const session = yield* fresh
        const result = yield* Effect.either(session.put(Age, 200))
        expect(Either.isLeft(result) && result.left.reason).toBe("Encode")
        expect(yield* session.status).toBe("Unmodified")
        expect(yield* session.exists("age")).toBe(false)
      })
    )

    test(
      "a typed key reads a value of its own type put by name",
      Effect.gen(function*() {
        const Count = Session.key("count", Schema.Number)
        const session = yield* fresh
        yield* session.put("count", 5)
        expect(yield* session.get(Count)).toEqual(Option.some(5))
        expect(yield* session.pop(Count)).toEqual(Option.some(5))
        expect(yield* session.exists(Count)).toBe(false)
      })
    )
  })
}
