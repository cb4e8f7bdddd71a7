/**
 * The owner-index cases of the store conformance suite (see `StoreConformance`): the store-level
 * contract of `OwnerIndex`. Internal to the test kit: `storeConformance` registers them.
 */
import { expect } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Encoding from "effect/Encoding"
import type * as Scope from "effect/Scope"
import * as TestClock from "effect/TestClock"
import type { OwnerIndex } from "../SessionStore.js"
import { SessionStore } from "../SessionStore.js"

type Case = <A, E>(name: string, body: Effect.Effect<A, E, SessionStore | Scope.Scope>) => void

const random = (length: number): string => Encoding.encodeBase64Url(crypto.getRandomValues(new Uint8Array(length)))

// Each case uses owners of its own: cases may share one backend.
const newOwner = (): string => `user:${random(9)}`
const newHandle = (): string => random(16)
const newKey = (): string => random(32)

const indexOf = Effect.flatMap(
  SessionStore,
  (store): Effect.Effect<OwnerIndex> =>
    store.owners === undefined
      ? Effect.dieMessage("the store was declared with an owner index, but its owners is undefined")
      : Effect.succeed(store.owners)
)

const listed = (index: OwnerIndex, owner: string) =>
  Effect.map(
    index.list(owner),
    (links) => [...links].sort((a, b) => a.handle < b.handle ? -1 : 1).map((link) => [link.handle, link.key])
  )

const sorted = (pairs: ReadonlyArray<readonly [string, string]>) =>
  [...pairs].sort((a, b) => a[0] < b[0] ? -1 : 1).map(([handle, key]) => [handle, key])

/** Registers the `OwnerIndex` cases with `test`, each run on `TestClock` from `start`. */
export const ownerIndexCases = (test: Case, start: number): void => {
  const hour = 3_600_000
  const until = start + hour

  test(
    "owner index: link then list; an unknown owner has none",
    Effect.gen(function*() {
      const index = yield* indexOf
      const owner = newOwner()
      expect(yield* index.list(owner)).toEqual([])
      const links: Array<readonly [string, string]> = [[newHandle(), newKey()], [newHandle(), newKey()]]
      for (const [handle, key] of links) expect(yield* index.link(owner, handle, key, until)).toBe("linked")
      expect(yield* listed(index, owner)).toEqual(sorted(links))
      expect(yield* index.list(newOwner())).toEqual([])
    })
  )

  test(
    "owner index: a handle linked again points at its new key only",
    Effect.gen(function*() {
      const index = yield* indexOf
      const owner = newOwner()
      const handle = newHandle()
      const renewed = newKey()
      yield* index.link(owner, handle, newKey(), until)
      expect(yield* index.link(owner, handle, renewed, until)).toBe("linked")
      expect(yield* listed(index, owner)).toEqual([[handle, renewed]])
    })
  )

  test(
    "owner index: revoking a handle returns its key, hides it, and refuses to link it again",
    Effect.gen(function*() {
      const index = yield* indexOf
      const owner = newOwner()
      const [revoked, kept] = [newHandle(), newHandle()]
      const [revokedKey, keptKey] = [newKey(), newKey()]
      yield* index.link(owner, revoked, revokedKey, until)
      yield* index.link(owner, kept, keptKey, until)
      expect(yield* index.revoke(owner, [revoked, newHandle()])).toEqual([revokedKey])
      expect(yield* listed(index, owner)).toEqual([[kept, keptKey]])
      expect(yield* index.link(owner, revoked, newKey(), until)).toBe("revoked")
      expect(yield* listed(index, owner)).toEqual([[kept, keptKey]])
      // Revoking it again finds nothing left to revoke.
      expect(yield* index.revoke(owner, [revoked])).toEqual([])
    })
  )

  test(
    "owner index: revoke all but one",
    Effect.gen(function*() {
      const index = yield* indexOf
      const owner = newOwner()
      const links = Array.from({ length: 5 }, () => [newHandle(), newKey()] as const)
      for (const [handle, key] of links) yield* index.link(owner, handle, key, until)
      const [current, ...others] = links
      const keys = yield* index.revoke(owner, "all", current[0])
      expect([...keys].sort()).toEqual(others.map(([, key]) => key).sort())
      expect(yield* listed(index, owner)).toEqual([[current[0], current[1]]])
      for (const [handle] of others) expect(yield* index.link(owner, handle, newKey(), until)).toBe("revoked")
      expect([...(yield* index.revoke(owner, "all"))]).toEqual([current[1]])
      expect(yield* index.list(owner)).toEqual([])
    })
  )

  test(
    "owner index: unlink removes a handle only while it points at the given key",
    Effect.gen(function*() {
      const index = yield* indexOf
      const owner = newOwner()
      const handle = newHandle()
      const [old, current] = [newKey(), newKey()]
      yield* index.link(owner, handle, old, until)
      yield* index.link(owner, handle, current, until)
      yield* index.unlink(owner, handle, old)
      expect(yield* listed(index, owner)).toEqual([[handle, current]])
      yield* index.unlink(owner, handle, current)
      expect(yield* index.list(owner)).toEqual([])
      // An unlinked handle is not revoked: it may be linked again.
      expect(yield* index.link(owner, handle, newKey(), until)).toBe("linked")
      // A tombstone is not removed by unlink.
      const keys = yield* index.revoke(owner, [handle])
      yield* index.unlink(owner, handle, keys[0])
      expect(yield* index.link(owner, handle, newKey(), until)).toBe("revoked")
    })
  )

  test(
    "owner index: links and tombstones end at their until",
    Effect.gen(function*() {
      const index = yield* indexOf
      const owner = newOwner()
      const [short, long, revoked] = [newHandle(), newHandle(), newHandle()]
      const longKey = newKey()
      yield* index.link(owner, short, newKey(), start + 1_000)
      yield* index.link(owner, long, longKey, until)
      yield* index.link(owner, revoked, newKey(), start + 1_000)
      yield* index.revoke(owner, [revoked])
      yield* TestClock.adjust("1 second")
      expect(yield* listed(index, owner)).toEqual([[long, longKey]])
      expect(yield* index.revoke(owner, [short])).toEqual([])
      // Past its until no session of that handle can exist, so the tombstone is not needed.
      expect(yield* index.link(owner, revoked, newKey(), until)).toBe("linked")
    })
  )

  test(
    "owner index: owners are separate, whatever their ids contain",
    Effect.gen(function*() {
      const index = yield* indexOf
      const suffix = random(6)
      const owners = [
        `a:${suffix}`,
        `a:${suffix}:b`,
        `{${suffix}}`,
        `usér ${suffix} 🔑`,
        `${suffix}*?[]%_'"\\`,
        `${"x".repeat(240)}${suffix}`
      ]
      const handle = newHandle()
      const keys = owners.map(() => newKey())
      for (const [i, owner] of owners.entries()) yield* index.link(owner, handle, keys[i], until)
      expect(yield* index.revoke(owners[0], "all")).toEqual([keys[0]])
      for (const [i, owner] of owners.entries()) {
        expect(yield* listed(index, owner)).toEqual(i === 0 ? [] : [[handle, keys[i]]])
      }
    })
  )

  test(
    "owner index: concurrent links of one owner are all kept",
    Effect.gen(function*() {
      const index = yield* indexOf
      const owner = newOwner()
      const links = Array.from({ length: 25 }, () => [newHandle(), newKey()] as const)
      yield* Effect.forEach(links, ([handle, key]) => index.link(owner, handle, key, until), {
        concurrency: "unbounded",
        discard: true
      })
      expect(yield* listed(index, owner)).toEqual(sorted(links))
    })
  )

  test(
    "owner index: a link racing a revocation of its handle is either revoked or reported by it",
    Effect.gen(function*() {
      const index = yield* indexOf
      const owner = newOwner()
      const handles = Array.from({ length: 20 }, newHandle)
      for (const handle of handles) yield* index.link(owner, handle, newKey(), until)
      const renewed = handles.map(() => newKey())
      const [links, revokedKeys] = yield* Effect.all([
        Effect.forEach(handles, (handle, i) => index.link(owner, handle, renewed[i], until), {
          concurrency: "unbounded"
        }),
        index.revoke(owner, "all")
      ], { concurrency: "unbounded" })
      for (const [i, result] of links.entries()) {
        // Linked before the revocation: the revocation returned the new key. After: refused.
        if (result === "linked") expect(revokedKeys).toContain(renewed[i])
      }
      expect(yield* index.list(owner)).toEqual([])
    })
  )
}
