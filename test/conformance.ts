/**
 * The store conformance suite: every `SessionStore` runs these same cases, from its own test
 * file, through the public API only. Time is `TestClock`: stores must read the time from
 * `Clock` (see the contract in `src/SessionStore.ts`).
 */
import { describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import { createHash, randomBytes } from "node:crypto"
import * as SessionManager from "../src/SessionManager.js"
import { SessionStore } from "../src/SessionStore.js"

export interface StoreUnderTest {
  /** Shown in the test names. */
  readonly name: string
  /** A store, built afresh for each test (it may share a backend with other tests). */
  readonly layer: Layer.Layer<SessionStore, unknown>
  /** Whether the store enumerates (`all` is defined). */
  readonly enumerable: boolean
  /**
   * For stores with a background sweep: its interval, and how many entries are physically held
   * (expired ones included) for the given keys, read past the store's expiry checks.
   */
  readonly sweep?: {
    readonly interval: Duration.DurationInput
    readonly physicalCount: (keys: ReadonlyArray<string>) => Effect.Effect<number, unknown, SessionStore | Scope.Scope>
  }
  /** Skip the whole suite with this reason (only when the backend is missing locally; never in CI). */
  readonly skip?: string | undefined
}

/** A realistic start time, so that stores see plausible epoch milliseconds. */
export const START = Date.UTC(2026, 0, 1, 12, 0, 0)

const newKey = () => randomBytes(32).toString("base64url")
const hashed = (token: string) => createHash("sha256").update(token).digest("base64url")

/** Waits (on the live clock) until `check` holds, for at most about five seconds. */
export const eventually = <E, R>(check: Effect.Effect<boolean, E, R>): Effect.Effect<void, E | Error, R> =>
  Effect.gen(function*() {
    for (let attempt = 0; attempt < 500; attempt++) {
      if (yield* check) return
      yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 10)))
    }
    return yield* Effect.fail(new Error("condition not reached in time"))
  })

export const storeConformance = (subject: StoreUnderTest): void => {
  const describeOrSkip = subject.skip === undefined ? describe : describe.skip
  describeOrSkip(
    `SessionStore conformance: ${subject.name}${subject.skip ? ` (skipped: ${subject.skip})` : ""}`,
    () => {
      const test = <A, E>(name: string, body: Effect.Effect<A, E, SessionStore | Scope.Scope>, timeout = 30_000) =>
        it.scoped(
          name,
          () =>
            // Set the clock before the store exists, so a sweep schedule starts from START.
            TestClock.setTime(START).pipe(Effect.zipRight(Effect.provide(body, subject.layer))),
          timeout
        )
      const hour = Duration.toMillis("1 hour")

      test(
        "find of an unknown key is none",
        Effect.gen(function*() {
          const store = yield* SessionStore
          expect(yield* store.find(newKey())).toEqual(Option.none())
        })
      )

      test(
        "create, then find returns the payload",
        Effect.gen(function*() {
          const store = yield* SessionStore
          const key = newKey()
          expect(yield* store.commit(key, "{\"a\":1}", START + hour, "create")).toBe("written")
          expect(yield* store.find(key)).toEqual(Option.some("{\"a\":1}"))
        })
      )

      test(
        "create over an existing key replaces it (upsert)",
        Effect.gen(function*() {
          const store = yield* SessionStore
          const key = newKey()
          yield* store.commit(key, "one", START + hour, "create")
          yield* store.commit(key, "two", START + 2 * hour, "create")
          expect(yield* store.find(key)).toEqual(Option.some("two"))
        })
      )

      test(
        "update of a live key replaces payload and expiry",
        Effect.gen(function*() {
          const store = yield* SessionStore
          const key = newKey()
          yield* store.commit(key, "one", START + hour, "create")
          expect(yield* store.commit(key, "two", START + 3 * hour, "update")).toBe("written")
          yield* TestClock.adjust("2 hours")
          expect(yield* store.find(key)).toEqual(Option.some("two"))
        })
      )

      test(
        "update of an unknown key is gone and creates nothing",
        Effect.gen(function*() {
          const store = yield* SessionStore
          const key = newKey()
          expect(yield* store.commit(key, "late", START + hour, "update")).toBe("gone")
          expect(yield* store.find(key)).toEqual(Option.none())
        })
      )

      test(
        "update after delete is gone: a logout stays a logout",
        Effect.gen(function*() {
          const store = yield* SessionStore
          const key = newKey()
          yield* store.commit(key, "alive", START + hour, "create")
          yield* store.delete(key)
          expect(yield* store.commit(key, "stale", START + hour, "update")).toBe("gone")
          expect(yield* store.find(key)).toEqual(Option.none())
        })
      )

      test(
        "update of an expired entry is gone and does not revive it",
        Effect.gen(function*() {
          const store = yield* SessionStore
          const key = newKey()
          yield* store.commit(key, "short", START + 1000, "create")
          yield* TestClock.adjust("2 seconds")
          expect(yield* store.commit(key, "revived", START + hour, "update")).toBe("gone")
          expect(yield* store.find(key)).toEqual(Option.none())
        })
      )

      test(
        "an entry is found until its expiry and never at or after it",
        Effect.gen(function*() {
          const store = yield* SessionStore
          const key = newKey()
          yield* store.commit(key, "x", START + 5000, "create")
          yield* TestClock.adjust("4999 millis")
          expect(yield* store.find(key)).toEqual(Option.some("x"))
          yield* TestClock.adjust("1 millis")
          expect(yield* store.find(key)).toEqual(Option.none())
        })
      )

      test(
        "an expiry in the past is never found",
        Effect.gen(function*() {
          const store = yield* SessionStore
          const key = newKey()
          yield* store.commit(key, "x", START - 1000, "create")
          expect(yield* store.find(key)).toEqual(Option.none())
        })
      )

      test(
        "delete removes an entry; deleting an unknown key is a no-op",
        Effect.gen(function*() {
          const store = yield* SessionStore
          const key = newKey()
          yield* store.commit(key, "x", START + hour, "create")
          yield* store.delete(key)
          yield* store.delete(key)
          yield* store.delete(newKey())
          expect(yield* store.find(key)).toEqual(Option.none())
        })
      )

      test(
        "payloads round-trip byte for byte",
        Effect.gen(function*() {
          const store = yield* SessionStore
          const payloads = [
            "",
            "{\"quote\":\"\\\"\",\"backslash\":\"\\\\\",\"nul\":\"\\u0000\"}",
            "emoji 🎉, accents éàü, CJK 漢字, RTL עברית",
            "x".repeat(64 * 1024),
            randomBytes(3000).toString("base64")
          ]
          for (const payload of payloads) {
            const key = newKey()
            yield* store.commit(key, payload, START + hour, "create")
            expect(yield* store.find(key)).toEqual(Option.some(payload))
          }
        })
      )

      test(
        "100 concurrent commits on different keys all land",
        Effect.gen(function*() {
          const store = yield* SessionStore
          const keys = Array.from({ length: 100 }, newKey)
          yield* Effect.forEach(keys, (key, i) => store.commit(key, `v${i}`, START + hour, "create"), {
            concurrency: "unbounded"
          })
          const found = yield* Effect.forEach(keys, (key) => store.find(key), { concurrency: "unbounded" })
          expect(found).toEqual(keys.map((_, i) => Option.some(`v${i}`)))
        })
      )

      if (subject.enumerable) {
        test(
          "all emits every live entry and no expired one",
          Effect.gen(function*() {
            const store = yield* SessionStore
            const live = Array.from({ length: 5 }, newKey)
            const expired = Array.from({ length: 3 }, newKey)
            for (const key of live) yield* store.commit(key, `live:${key}`, START + hour, "create")
            for (const key of expired) yield* store.commit(key, "dead", START + 1000, "create")
            yield* TestClock.adjust("1 second")
            const all = Chunk.toReadonlyArray(yield* Stream.runCollect(store.all!))
            const byKey = new Map(all.map((entry) => [entry.key, entry]))
            for (const key of live) {
              expect(byKey.get(key)?.data).toBe(`live:${key}`)
              expect(byKey.get(key)?.expiresAt).toBe(START + hour)
            }
            for (const key of expired) expect(byKey.has(key)).toBe(false)
            for (const entry of all) expect(entry.expiresAt).toBeGreaterThan(START + 1000)
          })
        )
      } else {
        test(
          "a store that cannot enumerate says so (all is undefined)",
          Effect.gen(function*() {
            const store = yield* SessionStore
            expect(store.all).toBeUndefined()
          })
        )
      }

      if (subject.sweep !== undefined) {
        const sweep = subject.sweep
        test(
          "the background sweep physically removes expired entries and keeps live ones",
          Effect.gen(function*() {
            const store = yield* SessionStore
            const expired = Array.from({ length: 20 }, newKey)
            const live = Array.from({ length: 5 }, newKey)
            for (const key of expired) yield* store.commit(key, "dead", START + 1000, "create")
            for (const key of live) {
              yield* store.commit(key, "alive", START + 10 * Duration.toMillis(sweep.interval), "create")
            }
            expect(yield* sweep.physicalCount([...expired, ...live])).toBe(25)
            yield* TestClock.adjust(sweep.interval)
            yield* eventually(Effect.map(sweep.physicalCount([...expired, ...live]), (n) => n === 5))
            for (const key of live) {
              expect(yield* store.find(key)).toEqual(Option.some("alive"))
            }
          })
        )
      }

      // Through the manager: the guarantees a user relies on, on this store.
      const withManager = (options: SessionManager.Options = {}) =>
        Effect.flatMap(
          SessionStore,
          (store) => Effect.provideService(SessionManager.make(options), SessionStore, store)
        )

      const tokenOf = (outcome: SessionManager.CommitOutcome) => {
        if (outcome._tag !== "Written") {
          throw new Error(`expected Written, got ${outcome._tag}`)
        }
        return Redacted.value(outcome.token)
      }

      test(
        "manager round trip, with the token hashed at rest",
        Effect.gen(function*() {
          const manager = yield* withManager({ hashTokenInStore: true })
          const first = yield* manager.load(undefined)
          yield* first.put("user", "ada")
          const token = tokenOf(yield* manager.commit(first))
          const store = yield* SessionStore
          expect(yield* store.find(token)).toEqual(Option.none())
          expect(Option.isSome(yield* store.find(hashed(token)))).toBe(true)
          const again = yield* manager.load(token)
          expect(yield* again.getString("user")).toBe("ada")
        })
      )

      test(
        "a late commit does not bring back a destroyed session",
        Effect.gen(function*() {
          const manager = yield* withManager()
          const seed = yield* manager.load(undefined)
          yield* seed.put("n", 1)
          const token = tokenOf(yield* manager.commit(seed))
          const slow = yield* manager.load(token)
          const logout = yield* manager.load(token)
          yield* logout.destroy
          expect((yield* manager.commit(logout))._tag).toBe("Destroyed")
          yield* slow.put("n", 2)
          expect((yield* manager.commit(slow))._tag).toBe("Gone")
          const after = yield* manager.load(token)
          expect(yield* after.keys).toEqual([])
          expect(yield* after.token).toEqual(Option.none())
        })
      )

      test(
        "a late commit does not bring back a session renewed away",
        Effect.gen(function*() {
          const manager = yield* withManager()
          const seed = yield* manager.load(undefined)
          yield* seed.put("n", 1)
          const token = tokenOf(yield* manager.commit(seed))
          const slow = yield* manager.load(token)
          const login = yield* manager.load(token)
          yield* login.renewToken
          const renewed = tokenOf(yield* manager.commit(login))
          expect(renewed).not.toBe(token)
          yield* slow.put("n", 2)
          expect((yield* manager.commit(slow))._tag).toBe("Gone")
          expect(yield* (yield* manager.load(token)).keys).toEqual([])
          expect(yield* (yield* manager.load(renewed)).getInt("n")).toBe(1)
        })
      )

      if (subject.enumerable) {
        test(
          "manager iterate visits live sessions and commits changes",
          Effect.gen(function*() {
            const manager = yield* withManager()
            const tokens: Array<string> = []
            for (let i = 0; i < 3; i++) {
              const session = yield* manager.load(undefined)
              yield* session.put("marker", `iterate-${i}`)
              tokens.push(tokenOf(yield* manager.commit(session)))
            }
            const seen = new Set<string>()
            yield* manager.iterate((session) =>
              Effect.gen(function*() {
                const marker = yield* session.getString("marker")
                if (!marker.startsWith("iterate-")) return
                seen.add(marker)
                yield* session.put("visited", true)
              })
            )
            expect([...seen].sort()).toEqual(["iterate-0", "iterate-1", "iterate-2"])
            for (const token of tokens) expect(yield* (yield* manager.load(token)).getBoolean("visited")).toBe(true)
          })
        )
      }
    }
  )
}

/** In CI every backend is required; locally a missing one skips its suite with this message. */
export const requireBackend = (name: string, available: boolean, how: string): string | undefined => {
  if (available) return undefined
  if (process.env.CI === "true") {
    throw new Error(`${name} is required in CI (CI=true) but is not reachable: ${how}`)
  }
  return `${name} is not reachable; ${how}`
}

/**
 * The durability proof for persistent stores, in two halves around a close and reopen of the
 * same files: `seed` writes three live entries, one that expires in a second and a whole session
 * through a `SessionManager`, and returns that session's token; after the reopen and more than
 * a second of `TestClock` time, `verify` finds the live ones and the session, and not the expired one.
 */
export const durability = {
  live: ["live-1", "live-2", "live-3"] as ReadonlyArray<string>,
  expired: "short",
  seed: (store: SessionStore): Effect.Effect<string, unknown> =>
    Effect.gen(function*() {
      for (const key of durability.live) yield* store.commit(key, `payload:${key}`, START + 3_600_000, "create")
      yield* store.commit(durability.expired, "soon gone", START + 1000, "create")
      const manager = yield* Effect.provideService(SessionManager.make(), SessionStore, store)
      const session = yield* manager.load(undefined)
      yield* session.put("user", "ada")
      const outcome = yield* manager.commit(session)
      if (outcome._tag !== "Written") return yield* Effect.dieMessage(`expected Written, got ${outcome._tag}`)
      return Redacted.value(outcome.token)
    }),
  verify: (store: SessionStore, token: string): Effect.Effect<void, unknown> =>
    Effect.gen(function*() {
      for (const key of durability.live) expect(yield* store.find(key)).toEqual(Option.some(`payload:${key}`))
      expect(yield* store.find(durability.expired)).toEqual(Option.none())
      const manager = yield* Effect.provideService(SessionManager.make(), SessionStore, store)
      expect(yield* (yield* manager.load(token)).getString("user")).toBe("ada")
    })
}
