/**
 * The owner-index cases of the store conformance suite (see `StoreConformance`): the store-level
 * contract of `OwnerIndex`, and the manager's owner operations on top of it. Internal to the test
 * kit: `storeConformance` registers them.
 */
import { expect } from "@effect/vitest"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Encoding from "effect/Encoding"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import * as TestClock from "effect/TestClock"
import type { OwnerSession } from "../Session.js"
import * as SessionManager from "../SessionManager.js"
import type { OwnerIndex } from "../SessionStore.js"
import { SessionStore, SessionStoreError } from "../SessionStore.js"
import * as SpanAudit from "./SpanAudit.js"

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

const hour = 3_600_000

const sorted = (pairs: ReadonlyArray<readonly [string, string]>) =>
  [...pairs].sort((a, b) => a[0] < b[0] ? -1 : 1).map(([handle, key]) => [handle, key])

/** Registers the `OwnerIndex` cases with `test`, each run on `TestClock` from `START`. */
export const ownerIndexCases = (test: Case, start: number): void => {
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

const managerOn = (options: SessionManager.Options = {}) =>
  Effect.flatMap(
    SessionStore,
    (store) =>
      Effect.map(Effect.provideService(SessionManager.make(options), SessionStore, store), SpanAudit.recordingManager)
  )

const tokenOf = (outcome: SessionManager.CommitOutcome): Effect.Effect<Redacted.Redacted<string>> =>
  outcome._tag === "Written"
    ? Effect.succeed(outcome.token)
    : Effect.dieMessage(`expected the commit to be Written, got ${outcome._tag}`)

/** A signed-in device: a session bound to `owner`, committed; its manager and token. */
const signIn = (manager: SessionManager.SessionManager, owner: string, label?: string) =>
  Effect.gen(function*() {
    const session = yield* manager.load(undefined)
    yield* session.put("cart", ["book"])
    yield* session.bindOwner(owner, label === undefined ? undefined : { label })
    return yield* tokenOf(yield* manager.commit(session))
  })

const handlesOf = (sessions: ReadonlyArray<OwnerSession>) => sessions.map((session) => session.handle).sort()

/** Whether a token still loads a bound session. */
const isSignedIn = (manager: SessionManager.SessionManager, token: Redacted.Redacted<string>) =>
  Effect.flatMap(manager.load(token), (session) => Effect.map(session.owner, Option.isSome))

/** Registers the manager's owner cases (bind, list, revoke and their races), each run on `TestClock` from `start`. */
export const ownerManagerCases = (test: Case, start: number): void => {
  test(
    "owners: bindOwner renews the token, keeps the values, and lists the session with its label",
    Effect.gen(function*() {
      const manager = yield* managerOn()
      const owner = newOwner()
      const anonymous = yield* manager.load(undefined)
      yield* anonymous.put("cart", ["book"])
      const before = yield* tokenOf(yield* manager.commit(anonymous))
      const session = yield* manager.load(before)
      yield* session.bindOwner(owner, { label: "Firefox on Linux" })
      const after = yield* tokenOf(yield* manager.commit(session))
      expect(Redacted.value(after)).not.toBe(Redacted.value(before))
      expect(yield* isSignedIn(manager, before)).toBe(false)
      const loaded = yield* manager.load(after)
      expect(yield* loaded.owner).toEqual(Option.some(owner))
      expect(yield* loaded.get("cart")).toEqual(Option.some(["book"]))
      const [listed] = yield* loaded.ownerSessions
      expect(listed).toMatchObject({ label: Option.some("Firefox on Linux"), current: true })
      expect(DateTime.toEpochMillis(listed.createdAt)).toBe(start)
    })
  )

  test(
    "owners: two devices of one owner list each other; the handle is stable and nothing secret",
    Effect.gen(function*() {
      const manager = yield* managerOn({ hashTokenInStore: false })
      const owner = newOwner()
      const laptop = yield* signIn(manager, owner, "laptop")
      const phone = yield* signIn(manager, owner, "phone")
      const fromLaptop = yield* (yield* manager.load(laptop)).ownerSessions
      const fromPhone = yield* (yield* manager.load(phone)).ownerSessions
      expect(fromLaptop.map((s) => [Option.getOrThrow(s.label), s.current]).sort()).toEqual([
        ["laptop", true],
        ["phone", false]
      ])
      expect(fromPhone.find((s) => s.current)?.label).toEqual(Option.some("phone"))
      expect(handlesOf(yield* manager.ownerSessions(owner))).toEqual(handlesOf(fromLaptop))
      // With the token as the store key, neither token nor key may show in what a page gets.
      const shown = JSON.stringify(fromLaptop)
      for (const token of [laptop, phone]) expect(shown).not.toContain(Redacted.value(token))
      // Renewal keeps the handle.
      const session = yield* manager.load(laptop)
      const handle = fromLaptop.find((s) => s.current)?.handle
      yield* session.renewToken
      yield* manager.commit(session)
      expect(handlesOf(yield* manager.ownerSessions(owner))).toEqual(handlesOf(fromLaptop))
      expect((yield* session.ownerSessions).find((s) => s.current)?.handle).toBe(handle)
    })
  )

  test(
    "owners: revoking a device makes its next load anonymous, and its request in flight cannot bring it back",
    Effect.gen(function*() {
      const manager = yield* managerOn()
      const owner = newOwner()
      const laptop = yield* signIn(manager, owner, "laptop")
      const phone = yield* signIn(manager, owner, "phone")
      const inFlight = yield* manager.load(phone)
      const renewing = yield* manager.load(phone)
      const fromLaptop = yield* manager.load(laptop)
      const phoneHandle = (yield* fromLaptop.ownerSessions).find((s) => !s.current)!.handle
      expect(yield* fromLaptop.revokeOwnerSession(phoneHandle)).toBe(true)
      expect(yield* isSignedIn(manager, phone)).toBe(false)
      yield* inFlight.put("late", true)
      expect((yield* manager.commit(inFlight))._tag).toBe("Gone")
      yield* renewing.renewToken
      expect(yield* renewing.status).toBe("Destroyed")
      expect(handlesOf(yield* manager.ownerSessions(owner))).toEqual(handlesOf(yield* fromLaptop.ownerSessions))
      expect((yield* manager.ownerSessions(owner)).length).toBe(1)
      expect(yield* isSignedIn(manager, laptop)).toBe(true)
      expect(yield* fromLaptop.revokeOwnerSession(phoneHandle)).toBe(false)
    })
  )

  test(
    "owners: log out everywhere, with and without the current session",
    Effect.gen(function*() {
      const manager = yield* managerOn()
      const owner = newOwner()
      const devices = yield* Effect.forEach([1, 2, 3], () => signIn(manager, owner))
      const current = yield* manager.load(devices[0])
      expect(yield* current.revokeOwnerSessions({ keepCurrent: true })).toBe(2)
      expect(yield* Effect.forEach(devices, (token) => isSignedIn(manager, token))).toEqual([true, false, false])
      expect((yield* current.ownerSessions).map((s) => s.current)).toEqual([true])
      expect(yield* current.revokeOwnerSessions()).toBe(1)
      expect(yield* current.status).toBe("Destroyed")
      expect((yield* manager.commit(current))._tag).toBe("Destroyed")
      expect(yield* isSignedIn(manager, devices[0])).toBe(false)
      expect(yield* manager.ownerSessions(owner)).toEqual([])
    })
  )

  test(
    "owners: a renewal racing log-out-everywhere never survives it",
    Effect.gen(function*() {
      const manager = yield* managerOn()
      const owner = newOwner()
      const tokens = yield* Effect.forEach(Array.from({ length: 12 }), () => signIn(manager, owner))
      const sessions = yield* Effect.forEach(tokens, (token) => manager.load(token))
      const renewed = yield* Effect.all([
        Effect.forEach(sessions, (session) =>
          Effect.gen(function*() {
            yield* session.renewToken
            return yield* manager.commit(session)
          }), { concurrency: "unbounded" }),
        manager.revokeOwnerSessions(owner)
      ], { concurrency: "unbounded" }).pipe(Effect.map(([outcomes]) => outcomes))
      for (const outcome of renewed) {
        if (outcome._tag === "Written") expect(yield* isSignedIn(manager, outcome.token)).toBe(false)
      }
      for (const token of tokens) expect(yield* isSignedIn(manager, token)).toBe(false)
      expect(yield* manager.ownerSessions(owner)).toEqual([])
    })
  )

  test(
    "owners: destroyed, expired and unbound sessions leave the list",
    Effect.gen(function*() {
      const manager = yield* managerOn({ lifetime: "2 hours" })
      const owner = newOwner()
      const [destroyed, unbound, kept] = yield* Effect.forEach([1, 2, 3], () => signIn(manager, owner))
      const toDestroy = yield* manager.load(destroyed)
      yield* toDestroy.destroy
      const toUnbind = yield* manager.load(unbound)
      yield* toUnbind.unbindOwner
      const anonymous = yield* tokenOf(yield* manager.commit(toUnbind))
      const stillThere = yield* manager.load(anonymous)
      expect(yield* stillThere.owner).toEqual(Option.none())
      expect(yield* stillThere.get("cart")).toEqual(Option.some(["book"]))
      expect(yield* isSignedIn(manager, unbound)).toBe(false)
      expect((yield* (yield* manager.load(kept)).ownerSessions).map((s) => s.current)).toEqual([true])
      yield* TestClock.adjust("2 hours")
      expect(yield* manager.ownerSessions(owner)).toEqual([])
    })
  )

  test(
    "owners: binding to another owner moves the session; to the same owner keeps its handle",
    Effect.gen(function*() {
      const manager = yield* managerOn()
      const [alice, bob] = [newOwner(), newOwner()]
      const token = yield* signIn(manager, alice)
      const [first] = yield* manager.ownerSessions(alice)
      const again = yield* manager.load(token)
      yield* again.bindOwner(alice)
      const sameOwner = yield* tokenOf(yield* manager.commit(again))
      expect(handlesOf(yield* manager.ownerSessions(alice))).toEqual([first.handle])
      const switching = yield* manager.load(sameOwner)
      yield* switching.bindOwner(bob)
      yield* manager.commit(switching)
      expect(yield* manager.ownerSessions(alice)).toEqual([])
      const [moved] = yield* manager.ownerSessions(bob)
      expect(moved.handle).not.toBe(first.handle)
    })
  )

  test(
    "owners: last active, expiry and creation times follow writes and idle refreshes",
    Effect.gen(function*() {
      const manager = yield* managerOn({ lifetime: "10 hours", idleTimeout: "1 hour" })
      const owner = newOwner()
      const token = yield* signIn(manager, owner)
      const times = Effect.map(manager.ownerSessions(owner), ([session]) => ({
        createdAt: DateTime.toEpochMillis(session.createdAt),
        lastActiveAt: DateTime.toEpochMillis(session.lastActiveAt),
        expiresAt: DateTime.toEpochMillis(session.expiresAt)
      }))
      expect(yield* times).toEqual({ createdAt: start, lastActiveAt: start, expiresAt: start + hour })
      // A read past half the idle window refreshes the expiry only.
      yield* TestClock.adjust("40 minutes")
      const read = yield* manager.load(token)
      expect((yield* manager.commit(read))._tag).toBe("Written")
      const refreshed = start + 40 * 60_000
      expect(yield* times).toEqual({ createdAt: start, lastActiveAt: refreshed, expiresAt: refreshed + hour })
    })
  )

  test(
    "owners: an empty or over-long owner id or label is refused",
    Effect.gen(function*() {
      const manager = yield* managerOn()
      const session = yield* manager.load(undefined)
      const refused = [["", undefined], ["x".repeat(257), undefined], ["ok", "y".repeat(257)], ["\uD800ada", undefined]]
      for (const [owner, label] of refused) {
        const error = yield* Effect.flip(session.bindOwner(owner!, { label }))
        expect(error).toMatchObject({ _tag: "SessionValueError", reason: "Owner" })
      }
      expect(yield* session.owner).toEqual(Option.none())
      expect(yield* manager.ownerSessions("\uD800ada")).toEqual([])
      expect(yield* manager.revokeOwnerSessions("\uD800ada")).toBe(0)
    })
  )
}

/** Registers the case of a store without an owner index: every owner operation is `Unsupported`. */
export const unsupportedOwnerCases = (test: Case): void => {
  test(
    "a store without an owner index says so: owners is undefined and owner operations fail with Unsupported",
    Effect.gen(function*() {
      expect((yield* SessionStore).owners).toBeUndefined()
      const manager = yield* managerOn()
      const session = yield* manager.load(undefined)
      for (
        const attempt of [session.bindOwner("ada"), manager.ownerSessions("ada"), manager.revokeOwnerSessions("ada")]
      ) {
        const error = yield* Effect.flip(attempt as Effect.Effect<unknown, unknown>)
        expect(error).toBeInstanceOf(SessionStoreError)
        expect(error).toMatchObject({ reason: "Unsupported" })
      }
    })
  )
}
