import * as NodeKeyValueStore from "@effect/platform-node/NodeKeyValueStore"
import * as KeyValueStore from "@effect/platform/KeyValueStore"
import { describe, expect, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as TestClock from "effect/TestClock"
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { SessionStoreError } from "../src/SessionStore.js"
import * as KeyValueStoreAdapter from "../src/SessionStore/KeyValueStore.js"
import { START, storeConformance } from "../src/testing/StoreConformance.js"

/** A fresh directory under the OS temp dir, removed when the scope closes. */
const tempDir = Effect.acquireRelease(
  Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "effect-session-kv-"))),
  (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
)

/** The adapter over a file-system `KeyValueStore` in `dir`. */
const fileSystemLayer = (dir: string) =>
  KeyValueStoreAdapter.layer().pipe(Layer.provide(NodeKeyValueStore.layerFileSystem(dir)))

storeConformance({
  name: "KeyValueStore adapter (memory)",
  layer: KeyValueStoreAdapter.layer().pipe(Layer.provide(KeyValueStore.layerMemory)),
  enumerable: false,
  owners: true
})

storeConformance({
  name: "KeyValueStore adapter (file system)",
  layer: Layer.unwrapScoped(Effect.map(tempDir, fileSystemLayer)),
  enumerable: false,
  owners: true,
  durable: { storage: Effect.map(tempDir, fileSystemLayer) }
})

/** Where the adapter (with the default prefix) keeps an owner's value. */
const ownerValueKey = (owner: string) =>
  `effect-session:owner:${createHash("sha256").update(owner).digest("base64url")}`

/** The adapter and the raw `KeyValueStore` under it, over a file-system directory, built in the scope. */
const onDirectory = (dir: string) =>
  Effect.map(
    Layer.build(KeyValueStoreAdapter.layer().pipe(Layer.provideMerge(NodeKeyValueStore.layerFileSystem(dir)))),
    (context) => ({
      store: Context.get(context, KeyValueStoreAdapter.KeyValueStoreAdapter),
      raw: Context.get(context, KeyValueStore.KeyValueStore)
    })
  )

describe("KeyValueStore adapter", () => {
  it.scoped("nothing sweeps a KeyValueStore: an expired entry stays until the read that finds it expired removes it", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(START)
      const dir = yield* tempDir
      const { raw, store } = yield* onDirectory(dir)
      yield* store.commit("short", "soon gone", START + 1000, "create")
      yield* store.commit("long", "stays", START + 60_000, "create")
      yield* TestClock.adjust("2 seconds")
      expect(yield* raw.has("effect-session:short")).toBe(true)
      expect(yield* store.find("short")).toEqual(Option.none())
      expect(yield* raw.has("effect-session:short")).toBe(false)
      expect(fs.readdirSync(dir).length).toBe(1)
    }))

  it.scoped("keys are prefixed: other data in the KeyValueStore is left alone", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(START)
      const dir = yield* tempDir
      const { raw, store } = yield* onDirectory(dir)
      yield* raw.set("k", "not a session")
      expect(yield* store.find("k")).toEqual(Option.none())
      yield* store.commit("k", "session", START + 60_000, "create")
      yield* store.delete("k")
      expect(yield* raw.get("k")).toEqual(Option.some("not a session"))
      expect(fs.readdirSync(dir)).toEqual(["k"])

      const custom = yield* KeyValueStoreAdapter.make({ prefix: "app/sessions/" }).pipe(
        Effect.provideService(KeyValueStore.KeyValueStore, raw)
      )
      yield* custom.commit("x", "y", START + 60_000, "create")
      expect(Option.isSome(yield* raw.get("app/sessions/x"))).toBe(true)
    }))

  it.scoped("a torn or foreign value is never handed out as a payload", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(START)
      const dir = yield* tempDir
      const { raw, store } = yield* onDirectory(dir)
      yield* store.commit("k", "{\"user\":\"ada\"}", START + 60_000, "create")
      const full = Option.getOrThrow(yield* raw.get("effect-session:k"))
      // What a read racing the file-system layer's in-place write can see: a prefix of the file.
      for (const cut of [1, 5, full.length - 1]) {
        yield* raw.set("effect-session:k", full.slice(0, cut))
        expect(yield* store.find("k")).toEqual(Option.none())
        expect(yield* store.commit("k", "late", START + 60_000, "update")).toBe("gone")
      }
      yield* raw.set("effect-session:k", "plain text")
      expect(yield* store.find("k")).toEqual(Option.none())
    }))

  it.scoped("owner index layout: one JSON value per owner under a hashed name, safe as a file name", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(START)
      const dir = yield* tempDir
      const { raw, store } = yield* onDirectory(dir)
      const owner = `usér/../${"x".repeat(300)} 🔑`
      yield* store.owners.link(owner, "__proto__", "key-a", START + 60_000)
      yield* store.owners.link(owner, "h", "key-b", START + 60_000)
      yield* store.owners.revoke(owner, ["h"])
      const value = Option.getOrThrow(yield* raw.get(ownerValueKey(owner)))
      expect(JSON.parse(value)).toEqual([["__proto__", { key: "key-a", until: START + 60_000 }], [
        "h",
        { key: null, until: START + 60_000 }
      ]])
      expect(fs.readdirSync(dir)).toEqual([encodeURIComponent(ownerValueKey(owner))])
      expect(yield* store.owners.list(owner)).toEqual([{ handle: "__proto__", key: "key-a" }])
    }))

  it.scoped("owner index: links past their until are dropped when the value is rewritten, and an empty value is removed", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(START)
      const { raw, store } = yield* onDirectory(yield* tempDir)
      const owner = "ada"
      yield* store.owners.link(owner, "short", "key-a", START + 1000)
      yield* store.owners.link(owner, "long", "key-b", START + 60_000)
      yield* TestClock.adjust("2 seconds")
      // A read skips the expired link but does not rewrite the value.
      expect(yield* store.owners.list(owner)).toEqual([{ handle: "long", key: "key-b" }])
      expect(JSON.parse(Option.getOrThrow(yield* raw.get(ownerValueKey(owner))))).toHaveLength(2)
      yield* store.owners.link(owner, "other", "key-c", START + 60_000)
      expect(JSON.parse(Option.getOrThrow(yield* raw.get(ownerValueKey(owner)))).map(([handle]: [string]) => handle))
        .toEqual(["long", "other"])
      yield* store.owners.unlink(owner, "long", "key-b")
      yield* store.owners.unlink(owner, "other", "key-c")
      expect(yield* raw.has(ownerValueKey(owner))).toBe(false)
    }))

  it.scoped("owner index: a malformed or torn value fails with a typed error and is left as it is", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(START)
      const { raw, store } = yield* onDirectory(yield* tempDir)
      const owner = "ada"
      yield* store.owners.link(owner, "h", "key-a", START + 60_000)
      const full = Option.getOrThrow(yield* raw.get(ownerValueKey(owner)))
      for (const bad of [full.slice(0, full.length - 1), "", "not json", "[[\"h\",{\"key\":1}]]", "{}"]) {
        yield* raw.set(ownerValueKey(owner), bad)
        const attempts = [
          ["link", store.owners.link(owner, "h2", "key-b", START + 60_000)],
          ["list", store.owners.list(owner)],
          ["revoke", store.owners.revoke(owner, "all")],
          ["unlink", store.owners.unlink(owner, "h", "key-a")]
        ] as const
        for (const [operation, attempt] of attempts) {
          const error = yield* Effect.flip(attempt)
          expect(error).toBeInstanceOf(SessionStoreError)
          expect(error).toMatchObject({ reason: "Unknown", operation })
          expect(error.cause).toBeUndefined()
        }
        expect(yield* raw.get(ownerValueKey(owner))).toEqual(Option.some(bad))
      }
    }))
})
