import * as Persistence from "@effect/experimental/Persistence"
import * as PersistenceLmdb from "@effect/experimental/Persistence/Lmdb"
import { describe, expect, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as TestClock from "effect/TestClock"
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { SessionStoreError } from "../src/SessionStore.js"
import * as PersistenceSessionStore from "../src/SessionStore/Persistence.js"
import { START, storeConformance } from "../src/testing/StoreConformance.js"

/** A fresh directory under the OS temp dir, removed when the scope closes. */
const tempDir = Effect.acquireRelease(
  Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "effect-session-persistence-"))),
  (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
)

const lmdbBacking = (dir: string) => PersistenceLmdb.layer({ path: dir })

storeConformance({
  name: "Persistence adapter (memory backing)",
  layer: PersistenceSessionStore.layer().pipe(Layer.provide(Persistence.layerMemory)),
  enumerable: false,
  owners: true
})

/** The adapter over an LMDB backing in `dir`. */
const onLmdb = (dir: string) => PersistenceSessionStore.layer().pipe(Layer.provide(lmdbBacking(dir)))

storeConformance({
  name: "Persistence adapter (LMDB backing)",
  layer: Layer.unwrapScoped(Effect.map(tempDir, onLmdb)),
  enumerable: false,
  owners: true,
  durable: { storage: Effect.map(tempDir, onLmdb) }
})

/** Where the adapter keeps an owner's value. */
const ownerValueKey = (owner: string) => `owner:${createHash("sha256").update(owner).digest("base64url")}`

/** The adapter's layer, built in the scope over `backing`. */
const withBacking = (backing: Layer.Layer<Persistence.BackingPersistence>) =>
  Effect.map(
    Layer.build(PersistenceSessionStore.layer().pipe(Layer.provideMerge(backing))),
    (context) => ({
      store: Context.get(context, PersistenceSessionStore.PersistenceAdapter),
      backing: Context.get(context, Persistence.BackingPersistence)
    })
  )

/** The adapter and the raw backing store under its `storeId`, over one memory backing. */
const withMemoryBacking = Effect.gen(function*() {
  const { backing, store } = yield* withBacking(Persistence.layerMemory)
  return { store, raw: yield* backing.make("effect-session") }
})

describe("Persistence adapter", () => {
  it.scoped("entries carry a time-to-live: the backing store itself expires them", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(START)
      const { raw, store } = yield* withMemoryBacking
      yield* store.commit("k", "v", START + 5000, "create")
      expect(Option.isSome(yield* raw.get("k"))).toBe(true)
      yield* TestClock.adjust("5 seconds")
      expect(yield* raw.get("k")).toEqual(Option.none())
      // An expiry already in the past stores nothing at all.
      yield* store.commit("past", "v", START, "create")
      expect(yield* raw.get("past")).toEqual(Option.none())
    }))

  it.scoped("the expiry is checked on read even where the backing store keeps the entry", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(START)
      const { raw, store } = yield* withMemoryBacking
      // The adapter's own entry, written again behind its back with a longer TTL than the expiry it carries.
      yield* store.commit("k", "v", START + 1000, "create")
      const entry = Option.getOrThrow(yield* raw.get("k"))
      yield* raw.set("k", entry, Option.some(Duration.hours(1)))
      expect(yield* store.find("k")).toEqual(Option.some({ data: "v", expiresAt: START + 1000 }))
      yield* TestClock.adjust("1 second")
      expect(yield* store.find("k")).toEqual(Option.none())
      expect(yield* store.commit("k", "late", START + 60_000, "update")).toBe("gone")
      // Anything that is not an entry of this adapter counts as absent.
      yield* raw.set("foreign", { some: "thing" }, Option.none())
      expect(yield* store.find("foreign")).toEqual(Option.none())
    }))

  it.scoped("owner index layout: one value per owner, alive up to the largest until it holds", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(START)
      const { raw, store } = yield* withMemoryBacking
      const owner = "ada"
      const hour = 3_600_000
      yield* store.owners.link(owner, "a", "key-a", START + hour)
      yield* store.owners.link(owner, "b", "key-b", START + 2 * hour)
      yield* store.owners.revoke(owner, ["b"])
      // A later link with an earlier until does not shorten the value's time-to-live.
      yield* store.owners.link(owner, "c", "key-c", START + 1000)
      expect(yield* raw.get(ownerValueKey(owner))).toEqual(Option.some([
        ["a", { key: "key-a", until: START + hour }],
        ["b", { key: null, until: START + 2 * hour }],
        ["c", { key: "key-c", until: START + 1000 }]
      ]))
      yield* TestClock.adjust("90 minutes")
      expect(yield* store.owners.list(owner)).toEqual([])
      expect(yield* store.owners.link(owner, "b", "key-d", START + 3 * hour)).toBe("revoked")
      yield* TestClock.adjust("30 minutes")
      expect(yield* raw.get(ownerValueKey(owner))).toEqual(Option.none())
      // Past its until, the tombstone is gone with the value.
      expect(yield* store.owners.link(owner, "b", "key-d", START + 3 * hour)).toBe("linked")
    }))

  it.scoped("owner index: a malformed value fails with a typed error and is left as it is", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(START)
      const { raw, store } = yield* withMemoryBacking
      const owner = "ada"
      for (const bad of ["[]", { h: { key: "k", until: START + 60_000 } }, [["h", { key: 1, until: 0 }]]]) {
        yield* raw.set(ownerValueKey(owner), bad, Option.none())
        const attempts = [
          ["link", store.owners.link(owner, "h", "key-a", START + 60_000)],
          ["list", store.owners.list(owner)],
          ["revoke", store.owners.revoke(owner, "all")],
          ["unlink", store.owners.unlink(owner, "h", "k")]
        ] as const
        for (const [operation, attempt] of attempts) {
          const error = yield* Effect.flip(attempt)
          expect(error).toBeInstanceOf(SessionStoreError)
          expect(error).toMatchObject({ reason: "Unknown", operation })
        }
        expect(yield* raw.get(ownerValueKey(owner))).toEqual(Option.some(bad))
      }
    }))
})
