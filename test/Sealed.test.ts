/**
 * The sealed-cookie manager (`SessionManager/Sealed`) through its own API: `load`, `commit` and the
 * `Session` they hand out (the HTTP behaviour both managers share is in `SessionMiddleware.test.ts`).
 * The format is checked against an implementation of its own here, on `node:crypto`, written from
 * the format's description: values sealed by hand open in the manager, values it seals open by hand,
 * and a literal value pins the format.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as ConfigError from "effect/ConfigError"
import * as ConfigProvider from "effect/ConfigProvider"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as TestClock from "effect/TestClock"
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from "node:crypto"
import { inspect } from "node:util"
import type * as Session from "../src/Session.js"
import * as SessionManager from "../src/SessionManager.js"
import * as Sealed from "../src/SessionManager/Sealed.js"
import * as SessionMetrics from "../src/SessionMetrics.js"
import { START } from "./conformance.js"

// --- The format, implemented again on node:crypto -------------------------------------------------

const LABEL = "effect-session/sealed/1"
const IV_BYTES = 12
const TAG_BYTES = 16

const secretOf = (id: string, text: string): Sealed.Secret => ({ id, secret: Redacted.make(text) })

const K1 = secretOf("k1", "the first test secret, at least 32 bytes")
const K2 = secretOf("k2", "the second test secret, at least 32 bytes")

const keyOf = (secret: Sealed.Secret): Buffer =>
  Buffer.from(
    hkdfSync("sha256", Buffer.from(Redacted.value(secret.secret), "utf8"), Buffer.alloc(0), Buffer.from(LABEL), 32)
  )

const aadOf = (id: string): Buffer => Buffer.from(`${LABEL}\u0000${id}`, "utf8")

/** `<id>.base64url(version ‖ iv ‖ ciphertext ‖ tag)` of `plaintext`, sealed under `secret`. */
const sealByHand = (
  secret: Sealed.Secret,
  plaintext: string,
  { iv = randomBytes(IV_BYTES), version = 1 }: { readonly iv?: Buffer; readonly version?: number } = {}
): string => {
  const cipher = createCipheriv("aes-256-gcm", keyOf(secret), iv, { authTagLength: TAG_BYTES })
  cipher.setAAD(aadOf(secret.id))
  const ciphertext = Buffer.concat([cipher.update(plaintext, "utf8"), cipher.final()])
  const bytes = Buffer.concat([Buffer.from([version]), iv, ciphertext, cipher.getAuthTag()])
  return `${secret.id}.${bytes.toString("base64url")}`
}

/** The plaintext of a value sealed under `secret`; throws if it does not open. */
const openByHand = (secret: Sealed.Secret, value: string): string => {
  const [id, text] = value.split(".")
  expect(id).toBe(secret.id)
  const bytes = Buffer.from(text, "base64url")
  expect(bytes.toString("base64url")).toBe(text)
  expect(bytes[0]).toBe(1)
  const decipher = createDecipheriv("aes-256-gcm", keyOf(secret), bytes.subarray(1, 1 + IV_BYTES), {
    authTagLength: TAG_BYTES
  })
  decipher.setAAD(aadOf(secret.id))
  decipher.setAuthTag(bytes.subarray(bytes.length - TAG_BYTES))
  return Buffer.concat([decipher.update(bytes.subarray(1 + IV_BYTES, bytes.length - TAG_BYTES)), decipher.final()])
    .toString("utf8")
}

interface SealedRecord {
  readonly createdAt: number
  readonly deadline: number
  readonly rememberMe?: boolean
  readonly owner?: unknown
  readonly values: { readonly [key: string]: unknown }
}

const plaintextOf = (expiresAt: number, id: string, record: SealedRecord) =>
  `${expiresAt}.${id}.${JSON.stringify(record)}`

/** `${expiresAt}.${id}.${json}`, split. */
const parsePlaintext = (plaintext: string) => {
  const parts = /^(\d+)\.([A-Za-z0-9_-]{43})\.(.*)$/s.exec(plaintext)
  expect(parts).not.toBeNull()
  return { expiresAt: Number(parts![1]), id: parts![2], record: JSON.parse(parts![3]) as SealedRecord }
}

/** The binary part of a sealed value. */
const bytesOf = (value: string): Buffer => Buffer.from(value.slice(value.indexOf(".") + 1), "base64url")

const withBytes = (value: string, bytes: Uint8Array): string =>
  `${value.slice(0, value.indexOf("."))}.${Buffer.from(bytes).toString("base64url")}`

// A session id: 43 characters of base64url.
const SESSION_ID = Buffer.alloc(32, 7).toString("base64url")

const HOUR = 3_600_000
const MINUTE = 60_000

// --- Helpers over the manager ---------------------------------------------------------------------

type Manager = SessionManager.SessionManager

const test = <E>(name: string, body: Effect.Effect<void, E>) =>
  it.effect(name, () => Effect.zipRight(TestClock.setTime(START), body))

const LOAD_OUTCOMES = ["found", "no_token", "malformed", "missing", "expired", "decode_reset"] as const
const COMMIT_OUTCOMES = ["written", "refreshed", "unchanged", "destroyed", "gone"] as const

const countsOf = (metric: Metric.Metric.Counter<number>, outcomes: ReadonlyArray<string>) =>
  Effect.forEach(
    outcomes,
    (outcome) => Effect.map(Metric.value(Metric.tagged(metric, "outcome", outcome)), (state) => state.count)
  )

/** The one outcome whose counter `effect` moved (all of them, comma-separated, if not exactly one). */
const measured = <A, E>(
  metric: Metric.Metric.Counter<number>,
  outcomes: ReadonlyArray<string>,
  effect: Effect.Effect<A, E>
) =>
  Effect.gen(function*() {
    const before = yield* countsOf(metric, outcomes)
    const result = yield* effect
    const after = yield* countsOf(metric, outcomes)
    const moved = outcomes.filter((_, i) => after[i] !== before[i])
    return [result, moved.join(",")] as const
  })

const loadOf = (manager: Manager, value: string | undefined) =>
  measured(SessionMetrics.loaded, LOAD_OUTCOMES, manager.load(value === undefined ? undefined : Redacted.make(value)))

const commitOf = (manager: Manager, session: Session.Session) =>
  measured(SessionMetrics.committed, COMMIT_OUTCOMES, manager.commit(session))

const writtenOf = (outcome: SessionManager.CommitOutcome) => {
  if (outcome._tag !== "Written") throw new Error(`expected Written, got ${outcome._tag}`)
  return { ...outcome, value: Redacted.value(outcome.token) }
}

/** A new session holding `values`, committed: its sealed value and expiry. */
const sealNew = (manager: Manager, values: { readonly [key: string]: Session.Json }) =>
  Effect.gen(function*() {
    const session = yield* manager.load(undefined)
    for (const [key, value] of Object.entries(values)) yield* session.put(key, value)
    return writtenOf(yield* manager.commit(session))
  })

/** The values of a session, by key. */
const valuesOf = (session: Session.Session) =>
  Effect.gen(function*() {
    const values: { [key: string]: unknown } = {}
    for (const key of yield* session.keys) values[key] = Option.getOrThrow(yield* session.get(key))
    return values
  })

const tokenOf = (session: Session.Session) => Effect.map(session.token, Option.map(Redacted.value))

const expectFresh = (session: Session.Session) =>
  Effect.gen(function*() {
    expect(yield* session.status).toBe("Unmodified")
    expect(yield* session.keys).toEqual([])
    expect(yield* session.token).toEqual(Option.none())
  })

/** Loads `value`: it must give a fresh session, not fail, and not be `found`; how the load went. */
const expectRejected = (manager: Manager, value: string) =>
  Effect.gen(function*() {
    const result = yield* Effect.either(loadOf(manager, value))
    if (Either.isLeft(result)) throw new Error(`load of ${JSON.stringify(value)} failed: ${result.left}`)
    const [session, outcome] = result.right
    yield* expectFresh(session)
    expect(outcome, JSON.stringify(value)).not.toBe("found")
    return outcome
  })

const make = (options: Partial<Sealed.Options> = {}) => Sealed.make({ secrets: [K1], ...options })

// --- 1. The format, both ways ---------------------------------------------------------------------

describe("Sealed: the format", () => {
  test(
    "a value sealed by hand loads with its values, deadline, createdAt and rememberMe",
    Effect.gen(function*() {
      const manager = yield* make()
      const record = {
        createdAt: START - HOUR,
        deadline: START + 2 * HOUR,
        rememberMe: true,
        values: { user: "ada", n: 42 }
      }
      const value = sealByHand(K1, plaintextOf(START + 2 * HOUR, SESSION_ID, record), {
        iv: Buffer.from("000102030405060708090a0b", "hex")
      })
      const [session, outcome] = yield* loadOf(manager, value)
      expect(outcome).toBe("found")
      expect(yield* session.status).toBe("Unmodified")
      // Its token is the value the client holds.
      expect(yield* tokenOf(session)).toEqual(Option.some(value))
      expect(yield* valuesOf(session)).toEqual({ n: 42, user: "ada" })
      expect(DateTime.toEpochMillis(yield* session.deadline)).toBe(START + 2 * HOUR)
      // Unchanged: nothing to send.
      expect((yield* manager.commit(session))._tag).toBe("Unchanged")
      // Written again: the same session (id, createdAt, deadline, rememberMe) with the new value.
      yield* session.put("seen", true)
      const written = writtenOf(yield* manager.commit(session))
      expect(written.rememberMe).toBe(true)
      expect(written.expiresAt).toBe(START + 2 * HOUR)
      expect(yield* tokenOf(session)).toEqual(Option.some(written.value))
      const reopened = parsePlaintext(openByHand(K1, written.value))
      expect(reopened.id).toBe(SESSION_ID)
      expect(reopened.expiresAt).toBe(START + 2 * HOUR)
      expect(reopened.record).toEqual({ ...record, values: { user: "ada", n: 42, seen: true } })
    })
  )

  test(
    "a value the manager commits opens by hand as `${expiresAt}.${id}.${json}`",
    Effect.gen(function*() {
      const manager = yield* make()
      const session = yield* manager.load(undefined)
      yield* session.put("user", "ada")
      yield* session.rememberMe(true)
      const written = writtenOf(yield* manager.commit(session))
      expect(written.value).toMatch(/^k1\.[A-Za-z0-9_-]+$/)
      expect(written.expiresAt).toBe(START + 24 * HOUR)
      expect(written.committedAt).toBe(START)
      const plaintext = openByHand(K1, written.value)
      const { expiresAt, id, record } = parsePlaintext(plaintext)
      expect(expiresAt).toBe(START + 24 * HOUR)
      expect(id).toMatch(/^[A-Za-z0-9_-]{43}$/)
      expect(plaintext).toBe(
        `${START + 24 * HOUR}.${id}.{"createdAt":${START},"deadline":${
          START + 24 * HOUR
        },"rememberMe":true,"values":{"user":"ada"}}`
      )
      expect(record).toEqual({
        createdAt: START,
        deadline: START + 24 * HOUR,
        rememberMe: true,
        values: { user: "ada" }
      })
      // version ‖ 12-byte iv ‖ ciphertext (as long as the plaintext) ‖ 16-byte tag.
      expect(bytesOf(written.value).length).toBe(1 + IV_BYTES + Buffer.byteLength(plaintext) + TAG_BYTES)
      // A fresh iv on every seal: the same session sealed again is another value, the same plaintext.
      yield* session.put("user", "ada")
      const again = writtenOf(yield* manager.commit(session))
      expect(again.value).not.toBe(written.value)
      expect(bytesOf(again.value).subarray(1, 13)).not.toEqual(bytesOf(written.value).subarray(1, 13))
      expect(openByHand(K1, again.value)).toBe(plaintext)
    })
  )

  // Computed once with `sealByHand` (KNOWN_SECRET, iv 00..0b, KNOWN_PLAINTEXT): a change of the
  // format (label, key derivation, additional data, layout, encoding) makes it stop opening.
  const KNOWN_SECRET = secretOf("kat", "known-answer secret: 32 bytes or more")
  const KNOWN_PLAINTEXT = `4102444800000.${"S".repeat(43)}.{"createdAt":${START},` +
    `"deadline":4102444800000,"values":{"user":"ada","n":42}}`
  const KNOWN_VALUE = "kat.AQABAgMEBQYHCAkKC6wlA3lnMDg1-9ladriki7QVHXRpUKrNq1Ft0lCebpC7ooeQino9lZZoqIiJrzej70WylgJ" +
    "HyxzCgXL4Dr9Ykej86-8o9GOxbGyJJ7xYghPE2ug2D17D5qo8orYbgCFt7sflDc8KWw1w6M0LX-KElzdsjKO8KLExelpAzzeW4ZRKzsS4Ofw" +
    "TUxwLu2RDCq1vGzOpTcAdNF6VffYvAsk"

  test(
    "a fixed value (the known answer) loads",
    Effect.gen(function*() {
      // The hand sealer still gives it, and it opens by hand.
      expect(sealByHand(KNOWN_SECRET, KNOWN_PLAINTEXT, { iv: Buffer.from("000102030405060708090a0b", "hex") }))
        .toBe(KNOWN_VALUE)
      expect(openByHand(KNOWN_SECRET, KNOWN_VALUE)).toBe(KNOWN_PLAINTEXT)
      const manager = yield* make({ secrets: [KNOWN_SECRET] })
      const [session, outcome] = yield* loadOf(manager, KNOWN_VALUE)
      expect(outcome).toBe("found")
      expect(yield* valuesOf(session)).toEqual({ user: "ada", n: 42 })
      expect(DateTime.toEpochMillis(yield* session.deadline)).toBe(Date.UTC(2100, 0, 1))
    })
  )

  test(
    "the value hides the session: neither its values nor its id are readable in it",
    Effect.gen(function*() {
      const manager = yield* make()
      const marker = "a-visible-marker-in-the-session"
      const { value } = yield* sealNew(manager, { note: marker })
      const { id } = parsePlaintext(openByHand(K1, value))
      for (const text of [value, bytesOf(value).toString("latin1")]) {
        expect(text).not.toContain(marker)
        expect(text).not.toContain(id)
        expect(text).not.toContain(String(START))
      }
    })
  )
})

// --- 2. Tampering ---------------------------------------------------------------------------------

describe("Sealed: anything that does not open loads as a fresh session", () => {
  // The same secret under two ids: a value moved from one id to the other meets the same key.
  const TWIN = secretOf("k1b", Redacted.value(K1.secret))

  /** A committed value whose binary part is 3n+1 bytes long (its last character has 4 unused bits). */
  const committedValue = (manager: Manager) =>
    Effect.gen(function*() {
      for (let padding = 0; padding < 3; padding++) {
        const { value } = yield* sealNew(manager, { user: "ada", pad: "x".repeat(padding) })
        if (bytesOf(value).length % 3 === 1) return value
      }
      throw new Error("no length of 3n+1 bytes")
    })

  test(
    "a bit flipped in any byte (version, iv, ciphertext, tag)",
    Effect.gen(function*() {
      const manager = yield* make({ secrets: [K1, TWIN] })
      const value = yield* committedValue(manager)
      expect((yield* loadOf(manager, value))[1]).toBe("found")
      const bytes = bytesOf(value)
      for (let position = 0; position < bytes.length; position++) {
        for (const bit of [0x01, 0x80]) {
          const edited = Buffer.from(bytes)
          edited[position] ^= bit
          expect(yield* expectRejected(manager, withBytes(value, edited))).toBe("malformed")
        }
      }
    })
  )

  test(
    "an edited secret id, a missing dot, truncation, appended characters, the empty string",
    Effect.gen(function*() {
      const manager = yield* make({ secrets: [K1, TWIN] })
      const value = yield* committedValue(manager)
      const text = value.slice(3)
      const edits = [
        // Under the other id of the same secret: the id is bound by the additional data.
        `k1b.${text}`,
        `K1.${text}`,
        `k2.${text}`,
        `k1 .${text}`,
        `.${text}`,
        text,
        // No dot.
        `k1${text}`,
        value.replace(".", "_"),
        value.replace(".", ":"),
        "",
        ".",
        "k1.",
        "k1",
        `${value}.`,
        `${value}.${text}`,
        `k1.k1.${text}`,
        ...["A", "AA", "AAA", "AAAA", "=", "==", " ", "\n", "%3D", "\u0000"].map((suffix) => value + suffix),
        ...["A", " ", "\u0000"].map((prefix) => prefix + value)
      ]
      // Every truncation.
      for (let length = 0; length < value.length; length++) edits.push(value.slice(0, length))
      for (const edit of edits) expect(yield* expectRejected(manager, edit)).toBe("malformed")
    })
  )

  test(
    "a spelling of the same bytes that is not canonical base64url",
    Effect.gen(function*() {
      const manager = yield* make()
      const value = yield* committedValue(manager)
      const text = value.slice(3)
      const bytes = bytesOf(value)
      const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
      const last = alphabet.indexOf(text[text.length - 1])
      const variants = [
        // Padded.
        `${text}==`,
        // A set bit among the last character's 4 unused bits.
        text.slice(0, -1) + alphabet[last ^ 1],
        text.slice(0, -1) + alphabet[last ^ 8],
        // The standard alphabet, unpadded and padded (when the value has a character they differ in).
        ...(/[-_]/.test(text) ? [bytes.toString("base64").replace(/=+$/, ""), bytes.toString("base64")] : [])
      ]
      for (const variant of variants) {
        // Each decodes to the same bytes: only the spelling is wrong.
        expect(Buffer.from(variant, variant.includes("+") || variant.includes("/") ? "base64" : "base64url"))
          .toEqual(bytes)
        expect(yield* expectRejected(manager, `k1.${variant}`)).toBe("malformed")
      }
    })
  )

  test(
    "sealed by hand with the right key, but not a session: another version, no plaintext, a wrong shape",
    Effect.gen(function*() {
      const manager = yield* make()
      const record = { createdAt: START, deadline: START + HOUR, values: { user: "ada" } }
      const good = plaintextOf(START + HOUR, SESSION_ID, record)
      // The hand sealer's value opens: each case below differs from it in one thing.
      expect((yield* loadOf(manager, sealByHand(K1, good)))[1]).toBe("found")
      // The version is not in the additional data: the version byte itself is checked.
      expect(yield* expectRejected(manager, sealByHand(K1, good, { version: 2 }))).toBe("malformed")
      expect(yield* expectRejected(manager, sealByHand(K1, good, { version: 0 }))).toBe("malformed")
      const malformed = [
        "",
        "not a session",
        `${START + HOUR}.${SESSION_ID}`,
        `${START + HOUR}.${SESSION_ID.slice(1)}.${JSON.stringify(record)}`,
        `${START + HOUR}.${SESSION_ID}x.${JSON.stringify(record)}`,
        `${START + HOUR}x.${SESSION_ID}.${JSON.stringify(record)}`,
        `-${START + HOUR}.${SESSION_ID}.${JSON.stringify(record)}`,
        `${"9".repeat(17)}.${SESSION_ID}.${JSON.stringify(record)}`
      ]
      for (const plaintext of malformed) {
        expect(yield* expectRejected(manager, sealByHand(K1, plaintext))).toBe("malformed")
      }
      const undecodable = [
        `${START + HOUR}.${SESSION_ID}.`,
        `${START + HOUR}.${SESSION_ID}.{`,
        `${START + HOUR}.${SESSION_ID}.${JSON.stringify({ ...record, deadline: "tomorrow" })}`,
        `${START + HOUR}.${SESSION_ID}.${JSON.stringify({ createdAt: START, deadline: START + HOUR })}`
      ]
      for (const plaintext of undecodable) {
        expect(yield* expectRejected(manager, sealByHand(K1, plaintext))).toBe("decode_reset")
      }
    })
  )

  test(
    "no value at all",
    Effect.gen(function*() {
      const manager = yield* make()
      const [session, outcome] = yield* loadOf(manager, undefined)
      expect(outcome).toBe("no_token")
      yield* expectFresh(session)
      expect((yield* loadOf(manager, "" as string))[1]).toBe("malformed")
      expect((yield* measured(SessionMetrics.loaded, LOAD_OUTCOMES, manager.load(Option.none())))[1]).toBe("no_token")
    })
  )
})

// --- 3. Keys --------------------------------------------------------------------------------------

describe("Sealed: secrets and rotation", () => {
  test(
    "a manager with another secret cannot open a value, even under the same id",
    Effect.gen(function*() {
      const { value } = yield* sealNew(yield* make({ secrets: [K1] }), { user: "ada" })
      const otherSecret = yield* make({ secrets: [secretOf("k1", "another secret under the same id k1")] })
      expect(yield* expectRejected(otherSecret, value)).toBe("malformed")
      const otherId = yield* make({ secrets: [K2] })
      expect(yield* expectRejected(otherId, value)).toBe("malformed")
      // The secret that sealed it, in another manager: it opens.
      expect((yield* loadOf(yield* make({ secrets: [K2, K1] }), value))[1]).toBe("found")
    })
  )

  test(
    "rotation: the newest secret seals, every secret opens, a value under an older one is resealed",
    Effect.gen(function*() {
      const a = yield* make({ secrets: [K1] })
      const b = yield* make({ secrets: [K2, K1] })
      const c = yield* make({ secrets: [K2] })
      const old = yield* sealNew(a, { user: "ada" })
      expect(old.value.startsWith("k1.")).toBe(true)

      const [loaded, loadedHow] = yield* loadOf(b, old.value)
      expect(loadedHow).toBe("found")
      expect(yield* loaded.status).toBe("Unmodified")
      expect(yield* valuesOf(loaded)).toEqual({ user: "ada" })
      // Unchanged, but sealed with an older secret: resealed with the newest.
      const [outcome, committedHow] = yield* commitOf(b, loaded)
      expect(committedHow).toBe("refreshed")
      const resealed = writtenOf(outcome)
      expect(resealed.value.startsWith("k2.")).toBe(true)
      expect(resealed.expiresAt).toBe(old.expiresAt)
      const before = parsePlaintext(openByHand(K1, old.value))
      const after = parsePlaintext(openByHand(K2, resealed.value))
      expect(after).toEqual(before)
      // Resealed once: committed again, nothing to do.
      expect((yield* commitOf(b, loaded))[1]).toBe("unchanged")

      // A value under the newest secret is not resealed.
      const [current] = yield* loadOf(b, resealed.value)
      expect((yield* commitOf(b, current))[1]).toBe("unchanged")

      // The old secret removed: the resealed value opens, the old one no longer.
      const [opened, openedHow] = yield* loadOf(c, resealed.value)
      expect(openedHow).toBe("found")
      expect(yield* valuesOf(opened)).toEqual({ user: "ada" })
      expect(yield* expectRejected(c, old.value)).toBe("malformed")
    })
  )
})

// --- 4. Expiry in the plaintext -------------------------------------------------------------------

describe("Sealed: the expiry and the deadline are sealed", () => {
  const record = { createdAt: START - HOUR, deadline: START + HOUR, values: { user: "ada" } }

  test(
    "a value sealed with an expiry in the past, or a deadline in the past, is expired",
    Effect.gen(function*() {
      const manager = yield* make()
      expect((yield* loadOf(manager, sealByHand(K1, plaintextOf(START + 1, SESSION_ID, record))))[1]).toBe("found")
      for (const expiresAt of [START, START - 1, 0]) {
        const value = sealByHand(K1, plaintextOf(expiresAt, SESSION_ID, record))
        expect(yield* expectRejected(manager, value)).toBe("expired")
      }
      for (const deadline of [START, START - 1]) {
        const value = sealByHand(K1, plaintextOf(START + HOUR, SESSION_ID, { ...record, deadline }))
        expect(yield* expectRejected(manager, value)).toBe("expired")
      }
    })
  )

  test(
    "an honest value with its expiry digits edited (the cipher is a stream: the edit lands) does not open",
    Effect.gen(function*() {
      const manager = yield* make()
      const { expiresAt, value } = yield* sealNew(manager, { user: "ada" })
      const digits = String(expiresAt)
      const later = "9".repeat(digits.length)
      const bytes = bytesOf(value)
      // The plaintext starts right after the version and the iv: XOR the old digits out, the new in.
      for (let i = 0; i < digits.length; i++) {
        bytes[1 + IV_BYTES + i] ^= digits.charCodeAt(i) ^ later.charCodeAt(i)
      }
      expect(yield* expectRejected(manager, withBytes(value, bytes))).toBe("malformed")
    })
  )
})

// --- 5. Lifetimes on the TestClock ----------------------------------------------------------------

describe("Sealed: lifetimes", () => {
  test(
    "the lifetime (24 hours by default): open at 23:59, expired at 24:00",
    Effect.gen(function*() {
      const manager = yield* make()
      const { expiresAt, value } = yield* sealNew(manager, { user: "ada" })
      expect(expiresAt).toBe(START + 24 * HOUR)
      yield* TestClock.adjust("23 hours")
      yield* TestClock.adjust("59 minutes")
      const [session, outcome] = yield* loadOf(manager, value)
      expect(outcome).toBe("found")
      expect(yield* valuesOf(session)).toEqual({ user: "ada" })
      // No idle timeout: a load moves nothing.
      expect((yield* commitOf(manager, session))[1]).toBe("unchanged")
      yield* TestClock.adjust("1 minute")
      expect(yield* expectRejected(manager, value)).toBe("expired")
    })
  )

  test(
    "the idle timeout: resealed once half the window has passed, expired after a whole idle window",
    Effect.gen(function*() {
      const manager = yield* make({ idleTimeout: "20 minutes" })
      const first = yield* sealNew(manager, { user: "ada" })
      expect(first.expiresAt).toBe(START + 20 * MINUTE)
      expect(parsePlaintext(openByHand(K1, first.value)).expiresAt).toBe(START + 20 * MINUTE)

      // Before half the window: nothing to send.
      yield* TestClock.adjust("9 minutes")
      const [early] = yield* loadOf(manager, first.value)
      expect((yield* commitOf(manager, early))[1]).toBe("unchanged")

      // At half the window: resealed with a later expiry (the record unchanged).
      yield* TestClock.adjust("1 minute")
      const [half] = yield* loadOf(manager, first.value)
      expect(yield* half.status).toBe("Unmodified")
      const [outcome, how] = yield* commitOf(manager, half)
      expect(how).toBe("refreshed")
      const second = writtenOf(outcome)
      expect(second.expiresAt).toBe(START + 30 * MINUTE)
      const opened = parsePlaintext(openByHand(K1, second.value))
      expect(opened.expiresAt).toBe(START + 30 * MINUTE)
      expect(opened.record).toEqual(parsePlaintext(openByHand(K1, first.value)).record)

      // The first value lives out its own window: open until 20 minutes, then expired.
      yield* TestClock.adjust(9 * MINUTE + 59_000)
      expect((yield* loadOf(manager, first.value))[1]).toBe("found")
      yield* TestClock.adjust("1 second")
      expect(yield* expectRejected(manager, first.value)).toBe("expired")
      expect((yield* loadOf(manager, second.value))[1]).toBe("found")
      // 20 minutes after the reseal, without a request: expired.
      yield* TestClock.adjust("10 minutes")
      expect(yield* expectRejected(manager, second.value)).toBe("expired")
    })
  )

  test(
    "maxLifetime caps a renewal: the deadline stays at createdAt + maxLifetime",
    Effect.gen(function*() {
      const manager = yield* make({ lifetime: "1 hour", maxLifetime: "90 minutes" })
      const first = yield* sealNew(manager, { user: "ada" })
      expect(first.expiresAt).toBe(START + HOUR)
      yield* TestClock.adjust("50 minutes")
      const [session] = yield* loadOf(manager, first.value)
      yield* session.renewToken
      // A lifetime from now would be 110 minutes from the start.
      expect(DateTime.toEpochMillis(yield* session.deadline)).toBe(START + 90 * MINUTE)
      const renewed = writtenOf(yield* manager.commit(session))
      expect(renewed.expiresAt).toBe(START + 90 * MINUTE)
      const { expiresAt, record } = parsePlaintext(openByHand(K1, renewed.value))
      expect([expiresAt, record.createdAt, record.deadline]).toEqual([START + 90 * MINUTE, START, START + 90 * MINUTE])
      yield* TestClock.adjust(39 * MINUTE + 59_000)
      expect((yield* loadOf(manager, renewed.value))[1]).toBe("found")
      yield* TestClock.adjust("1 second")
      expect(yield* expectRejected(manager, renewed.value)).toBe("expired")
    })
  )
})

// --- 6. Size --------------------------------------------------------------------------------------

describe("Sealed: maxSealedSize", () => {
  /** A committed session with one string value of `length` characters: its value, or its failure. */
  const sealPadded = (manager: Manager, length: number) =>
    Effect.gen(function*() {
      const session = yield* manager.load(undefined)
      yield* session.put("v", "x".repeat(length))
      const outcome = yield* Effect.either(manager.commit(session))
      return { outcome: Either.map(outcome, (written) => writtenOf(written).value), session }
    })

  const expectLimit = (outcome: Either.Either<string, SessionManager.SessionError>, limit: number, actual: number) => {
    const error = Either.flip(outcome).pipe(Either.getOrThrow)
    expect(error).toBeInstanceOf(SessionManager.SessionLimitError)
    expect(error).toMatchObject({ reason: "Size", limit, actual })
  }

  test(
    "a value exactly at the limit is written; one byte more fails with SessionLimitError",
    Effect.gen(function*() {
      const probe = yield* make({ maxSealedSize: 1_000_000 })
      const base = bytesOf(Either.getOrThrow((yield* sealPadded(probe, 0)).outcome)).length
      // Past 300 characters, and 3n+1 bytes: one more byte makes the value one character longer.
      let length = 300
      while ((base + length) % 3 !== 1) length++
      const limit = Either.getOrThrow((yield* sealPadded(probe, length)).outcome).length
      expect(limit).toBe("k1.".length + Math.ceil((base + length) * 4 / 3))
      expect(Either.getOrThrow((yield* sealPadded(probe, length + 1)).outcome).length).toBe(limit + 1)

      const manager = yield* make({ maxSealedSize: limit })
      const at = (yield* sealPadded(manager, length)).outcome
      expect(Either.getOrThrow(at).length).toBe(limit)
      const over = yield* sealPadded(manager, length + 1)
      expectLimit(over.outcome, limit, limit + 1)
      // Nothing was sealed: the session has no id yet.
      expect(yield* over.session.token).toEqual(Option.none())
    })
  )

  test(
    "the default limit of 4000 leaves a `session=<value>` cookie within 4096 bytes",
    Effect.gen(function*() {
      // An id of 3 characters: 4000 = 4 + 4 × 999 characters of base64url for 2997 bytes.
      const secret = secretOf("big", Redacted.value(K1.secret))
      const probe = yield* make({ secrets: [secret], maxSealedSize: 1_000_000 })
      const base = bytesOf(Either.getOrThrow((yield* sealPadded(probe, 0)).outcome)).length
      const length = 2997 - base
      const manager = yield* make({ secrets: [secret] })
      const value = Either.getOrThrow((yield* sealPadded(manager, length)).outcome)
      expect(value.length).toBe(4000)
      expect(Buffer.byteLength(`session=${value}`)).toBeLessThanOrEqual(4096)
      const over = (yield* sealPadded(manager, length + 1)).outcome
      expectLimit(over, 4000, 4002)
      // The value at the limit loads.
      const [session, outcome] = yield* loadOf(manager, value)
      expect(outcome).toBe("found")
      expect(yield* session.getString("v")).toBe("x".repeat(length))
    })
  )
})

// --- 7. Configuration -----------------------------------------------------------------------------

describe("Sealed: configuration", () => {
  const rejected = (options: Partial<Sealed.Options>) => Effect.flip(make(options))

  test(
    "invalid options fail with SessionConfigError naming the option",
    Effect.gen(function*() {
      const cases: ReadonlyArray<readonly [Partial<Sealed.Options>, string]> = [
        [{ secrets: [] }, "secrets"],
        [{ secrets: [secretOf("k1", "x".repeat(31))] }, "secrets.secret"],
        // 16 characters, 31 bytes.
        [{ secrets: [secretOf("k1", "é".repeat(15) + "x")] }, "secrets.secret"],
        [{ secrets: [K1, secretOf("k2", "")] }, "secrets.secret"],
        [{ secrets: [K1, secretOf("k1", Redacted.value(K2.secret))] }, "secrets.id"],
        [{ secrets: [secretOf("", Redacted.value(K1.secret))] }, "secrets.id"],
        [{ secrets: [secretOf("a.b", Redacted.value(K1.secret))] }, "secrets.id"],
        [{ secrets: [secretOf("a b", Redacted.value(K1.secret))] }, "secrets.id"],
        [{ secrets: [secretOf("a:b", Redacted.value(K1.secret))] }, "secrets.id"],
        [{ secrets: [secretOf("ké", Redacted.value(K1.secret))] }, "secrets.id"],
        [{ secrets: [secretOf("x".repeat(33), Redacted.value(K1.secret))] }, "secrets.id"],
        [{ maxSealedSize: 0 }, "maxSealedSize"],
        [{ maxSealedSize: -1 }, "maxSealedSize"],
        [{ maxSealedSize: 1.5 }, "maxSealedSize"],
        [{ lifetime: 0 }, "lifetime"],
        [{ lifetime: "1 hour", maxLifetime: "30 minutes" }, "maxLifetime"]
      ]
      for (const [options, option] of cases) {
        const error = yield* rejected(options)
        expect(error._tag, JSON.stringify(options)).toBe("SessionConfigError")
        expect(error.option, JSON.stringify(options)).toBe(option)
      }
    })
  )

  test(
    "the limits are exact: 32 bytes (counted as UTF-8) and 32 characters of id are accepted",
    Effect.gen(function*() {
      const accepted = [
        secretOf("k1", "x".repeat(32)),
        // 16 characters, 32 bytes.
        secretOf("k2", "é".repeat(16)),
        secretOf("A-Za-z0_9", Redacted.value(K1.secret)),
        secretOf("x".repeat(32), Redacted.value(K2.secret))
      ]
      const manager = yield* make({ secrets: accepted, maxSealedSize: 1 })
      expect(manager.store).toBeUndefined()
      // And the multi-byte secret's key is the one derived from its UTF-8 bytes.
      const { value } = yield* sealNew(yield* make({ secrets: [accepted[1]] }), { user: "ada" })
      expect(parsePlaintext(openByHand(accepted[1], value)).record.values).toEqual({ user: "ada" })
    })
  )

  test(
    "secretsConfig reads `id:secret` pairs, newest first, from one variable",
    Effect.gen(function*() {
      const provider = ConfigProvider.fromMap(new Map([["SESSION_SECRETS", "a:xxx,b:yyy"]]))
      const secrets = yield* Effect.withConfigProvider(Sealed.secretsConfig("SESSION_SECRETS"), provider)
      expect(secrets.map(({ id, secret }) => [id, Redacted.value(secret)])).toEqual([["a", "xxx"], ["b", "yyy"]])
    })
  )

  test(
    "a malformed secretsConfig fails with a ConfigError that does not quote the secret",
    Effect.gen(function*() {
      const secretText = "this-text-is-the-secret-and-must-not-be-printed"
      for (const raw of [`a:xxx,${secretText}`, secretText, `:${secretText}`, `a:xxx,,b:yyy`]) {
        const provider = ConfigProvider.fromMap(new Map([["SESSION_SECRETS", raw]]))
        const error = yield* Effect.flip(
          Effect.withConfigProvider(Sealed.secretsConfig("SESSION_SECRETS"), provider)
        )
        expect(ConfigError.isConfigError(error) && error._op).toBe("InvalidData")
        for (const printed of [String(error), JSON.stringify(error), inspect(error), Cause.pretty(Cause.fail(error))]) {
          expect(printed).not.toContain(secretText)
          expect(printed).not.toContain("xxx")
        }
      }
    })
  )

  test(
    "layerConfig builds a manager from the environment that seals with the first secret",
    Effect.gen(function*() {
      // Base64-like secrets: neither `:` nor `,`.
      const newest = secretOf("new", "the-newest-secret-from-the-environment")
      const older = secretOf("old", "the-older-secret-from-the-environment")
      const provider = ConfigProvider.fromMap(
        new Map([["SESSION_SECRETS", `new:${Redacted.value(newest.secret)}, old:${Redacted.value(older.secret)}`]])
      )
      const manager = yield* Effect.provide(
        SessionManager.SessionManager,
        Sealed.layerConfig({ secrets: Sealed.secretsConfig("SESSION_SECRETS") })
      ).pipe(Effect.withConfigProvider(provider))
      const { value } = yield* sealNew(manager, { user: "ada" })
      expect(parsePlaintext(openByHand(newest, value)).record.values).toEqual({ user: "ada" })
      const record = { createdAt: START, deadline: START + HOUR, values: { a: 1 } }
      expect((yield* loadOf(manager, sealByHand(older, plaintextOf(START + HOUR, SESSION_ID, record))))[1]).toBe(
        "found"
      )
      // A short secret from the environment is still checked.
      const short = ConfigProvider.fromMap(new Map([["SESSION_SECRETS", "a:short"]]))
      const error = yield* Effect.flip(
        Effect.provide(
          SessionManager.SessionManager,
          Sealed.layerConfig({ secrets: Sealed.secretsConfig("SESSION_SECRETS") })
        ).pipe(Effect.withConfigProvider(short))
      )
      expect(error._tag === "SessionConfigError" && error.option).toBe("secrets.secret")
    })
  )
})

// --- 8. What a cookie cannot do -------------------------------------------------------------------

describe("Sealed: unsupported operations", () => {
  const expectUnsupported = <A, E>(effect: Effect.Effect<A, E>) =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(effect)
      expect(error).toMatchObject({ _tag: "SessionStoreError", reason: "Unsupported" })
    })

  test(
    "the manager cannot list, iterate or revoke",
    Effect.gen(function*() {
      const manager = yield* make()
      let visited = 0
      yield* expectUnsupported(manager.iterate(() => Effect.sync(() => visited++)))
      expect(visited).toBe(0)
      yield* expectUnsupported(manager.ownerSessions("user-1"))
      yield* expectUnsupported(manager.revokeOwnerSession("user-1", "handle"))
      yield* expectUnsupported(manager.revokeOwnerSessions("user-1"))
      yield* expectUnsupported(manager.revokeOwnerSessions("user-1", { except: "handle" }))
    })
  )

  test(
    "bindOwner works (the owner is sealed); the owner's sessions cannot be listed or revoked",
    Effect.gen(function*() {
      const manager = yield* make()
      const session = yield* manager.load(undefined)
      yield* session.put("user", "ada")
      yield* session.bindOwner("user-1", { label: "a laptop" })
      const { value } = writtenOf(yield* manager.commit(session))
      const { record } = parsePlaintext(openByHand(K1, value))
      expect(record.owner).toMatchObject({ id: "user-1", label: "a laptop", seenAt: START })

      const [loaded, outcome] = yield* loadOf(manager, value)
      expect(outcome).toBe("found")
      expect(yield* loaded.owner).toEqual(Option.some("user-1"))
      expect(yield* valuesOf(loaded)).toEqual({ user: "ada" })
      // Nothing to lock.
      expect(manager.storeKey(loaded)).toEqual(Option.none())
      yield* expectUnsupported(loaded.ownerSessions)
      yield* expectUnsupported(loaded.revokeOwnerSessions())
      yield* expectUnsupported(loaded.revokeOwnerSessions({ keepCurrent: true }))
      yield* expectUnsupported(loaded.revokeOwnerSession((record.owner as { handle: string }).handle))
      // The failed revocations left the session as it was.
      expect(yield* loaded.status).toBe("Unmodified")
      expect(yield* loaded.owner).toEqual(Option.some("user-1"))

      // unbindOwner works too.
      yield* loaded.unbindOwner
      const unbound = writtenOf(yield* manager.commit(loaded))
      const [reloaded] = yield* loadOf(manager, unbound.value)
      expect(yield* reloaded.owner).toEqual(Option.none())
      expect(yield* valuesOf(reloaded)).toEqual({ user: "ada" })
    })
  )
})

// --- 9. renewToken and destroy --------------------------------------------------------------------

describe("Sealed: renewToken and destroy (a copy taken before still opens)", () => {
  test(
    "renewToken: a new value with a new id and the same data; the old value still opens",
    Effect.gen(function*() {
      const manager = yield* make()
      const old = yield* sealNew(manager, { user: "ada" })
      const [session] = yield* loadOf(manager, old.value)
      yield* session.renewToken
      expect(yield* session.status).toBe("Modified")
      // Until the commit seals it, the renewed session has no value the client could hold.
      expect(yield* session.token).toEqual(Option.none())
      const renewed = writtenOf(yield* manager.commit(session))
      expect(yield* tokenOf(session)).toEqual(Option.some(renewed.value))
      expect(renewed.value).not.toBe(old.value)
      const oldId = parsePlaintext(openByHand(K1, old.value)).id
      const newId = parsePlaintext(openByHand(K1, renewed.value)).id
      expect(newId).not.toBe(oldId)
      const [loaded, outcome] = yield* loadOf(manager, renewed.value)
      expect(outcome).toBe("found")
      expect(yield* valuesOf(loaded)).toEqual({ user: "ada" })
      // No server state: the value from before the renewal still opens, until its own expiry.
      const [copy, copyOutcome] = yield* loadOf(manager, old.value)
      expect(copyOutcome).toBe("found")
      expect(yield* valuesOf(copy)).toEqual({ user: "ada" })
    })
  )

  test(
    "destroy: the commit says Destroyed; the destroyed value still opens",
    Effect.gen(function*() {
      const manager = yield* make()
      const old = yield* sealNew(manager, { user: "ada" })
      const [session] = yield* loadOf(manager, old.value)
      yield* session.destroy
      expect(yield* session.keys).toEqual([])
      const [outcome, how] = yield* commitOf(manager, session)
      expect(outcome).toEqual(SessionManager.CommitOutcome.Destroyed())
      expect(how).toBe("destroyed")
      const [copy, copyOutcome] = yield* loadOf(manager, old.value)
      expect(copyOutcome).toBe("found")
      expect(yield* valuesOf(copy)).toEqual({ user: "ada" })
    })
  )
})

// --- 10. Secrets are never printed ----------------------------------------------------------------

describe("Sealed: secrets are never printed", () => {
  test(
    "a Secret, the options and the configuration errors print no secret",
    Effect.gen(function*() {
      const text = Redacted.value(K1.secret)
      expect(String(K1.secret)).toBe("<redacted>")
      expect(JSON.stringify(K1.secret)).toBe("\"<redacted>\"")
      const options: Sealed.Options = { secrets: [K1, K2], idleTimeout: "20 minutes" }
      for (
        const printed of [JSON.stringify(options), inspect(options, { depth: 10 }), String(options.secrets[0].secret)]
      ) {
        expect(printed).not.toContain(text)
        expect(printed).not.toContain(Redacted.value(K2.secret))
      }
      const manager = yield* Sealed.make(options)
      expect(inspect(manager, { depth: 10 })).not.toContain(text)

      const short = "a short secret, 31 bytes long!!"
      expect(Buffer.byteLength(short)).toBe(31)
      const errors = [
        yield* Effect.flip(Sealed.make({ secrets: [secretOf("weak", short)] })),
        yield* Effect.flip(Sealed.make({ secrets: [K1, secretOf("k1", text)] })),
        yield* Effect.flip(Sealed.make({ secrets: [K1, secretOf("bad id", text)] }))
      ]
      expect(errors[0].message).toContain("\"weak\"")
      for (const error of errors) {
        for (const printed of [error.message, String(error), JSON.stringify(error), inspect(error)]) {
          expect(printed).not.toContain(short)
          expect(printed).not.toContain(text)
        }
      }
    })
  )
})

// --- 11. mergeSession -----------------------------------------------------------------------------

describe("Sealed: mergeSession with another sealed value", () => {
  test(
    "pulls in the values of another live value; its own value, garbage and expired values change nothing",
    Effect.gen(function*() {
      const manager = yield* make()
      const other = yield* sealNew(manager, { cart: ["apple"], shared: "other" })
      const own = yield* sealNew(manager, { user: "ada", shared: "own" })

      const [session] = yield* loadOf(manager, own.value)
      yield* session.mergeSession(Redacted.make(other.value))
      expect(yield* valuesOf(session)).toEqual({ cart: ["apple"], shared: "own", user: "ada" })
      const merged = writtenOf(yield* manager.commit(session))
      const ownId = parsePlaintext(openByHand(K1, own.value)).id
      // Merged and renewed: a new id.
      expect(parsePlaintext(openByHand(K1, merged.value)).id).not.toBe(ownId)
      expect(yield* valuesOf((yield* loadOf(manager, merged.value))[0])).toEqual({
        cart: ["apple"],
        shared: "own",
        user: "ada"
      })

      const unchanged = (value: string) =>
        Effect.gen(function*() {
          const [loaded] = yield* loadOf(manager, own.value)
          const result = yield* Effect.either(loaded.mergeSession(Redacted.make(value)))
          expect(Either.isRight(result), value).toBe(true)
          expect(yield* loaded.status, value).toBe("Unmodified")
          expect(yield* valuesOf(loaded)).toEqual({ shared: "own", user: "ada" })
          expect((yield* manager.commit(loaded))._tag).toBe("Unchanged")
        })
      // Its own value, and its own session sealed again (the same id, another value).
      yield* unchanged(own.value)
      const [again] = yield* loadOf(manager, own.value)
      yield* again.put("user", "ada")
      yield* unchanged(writtenOf(yield* manager.commit(again)).value)
      // Values that do not open.
      const bytes = bytesOf(other.value)
      bytes[bytes.length - 1] ^= 1
      for (const garbage of ["", "garbage", "k1.AAAA", "k9.AAAA", withBytes(other.value, bytes)]) {
        yield* unchanged(garbage)
      }
      // An expired value.
      yield* unchanged(
        sealByHand(K1, plaintextOf(START, SESSION_ID, { createdAt: START - HOUR, deadline: START, values: { x: 1 } }))
      )
    })
  )

  test(
    "prefer: \"other\" lets the other value's values win",
    Effect.gen(function*() {
      const manager = yield* make()
      const other = yield* sealNew(manager, { shared: "other" })
      const own = yield* sealNew(manager, { shared: "own" })
      const [session] = yield* loadOf(manager, own.value)
      yield* session.mergeSession(Redacted.make(other.value), { prefer: "other" })
      expect(yield* valuesOf(session)).toEqual({ shared: "other" })
    })
  )
})
