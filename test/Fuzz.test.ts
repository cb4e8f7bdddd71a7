/**
 * Fuzzing what a client and a store can hand the library: random `Cookie` headers, random token
 * headers and random stored payloads, through the public API (the transports' `read`, the
 * manager's `load` and `commit`) over the memory store behind a spy that records every key it is
 * asked for. Each property builds its layer once and runs 10,000 cases, each run synchronously
 * and checked with a single `expect` on the list of broken rules (both for speed).
 */
import * as Headers from "@effect/platform/Headers"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as FastCheck from "effect/FastCheck"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import { createHash } from "node:crypto"
import * as SessionManager from "../src/SessionManager.js"
import { SessionStore } from "../src/SessionStore.js"
import type { StoredEntry } from "../src/SessionStore.js"
import * as MemoryStore from "../src/SessionStore/Memory.js"
import * as SessionTransport from "../src/SessionTransport.js"

const CASES = { timeout: 60_000, fastCheck: { numRuns: 10_000 } }

// Two live sessions, under tokens fixed here so that the generators can use them.
const KNOWN = "known_session-token_" + "K".repeat(23)
const OTHER = "other_session-token_" + "O".repeat(23)
const WELL_FORMED = /^[A-Za-z0-9_-]{43}$/

const sha256 = (token: string) => createHash("sha256").update(token).digest("base64url")

/** What one case made the store do, and what it logged. */
interface Observed {
  readonly asked: Array<string>
  readonly changed: Array<string>
  readonly logs: Array<string>
  /** How many cases adopted a session, over the whole property: the rules are not checked in vain. */
  adoptions: number
}

/** Records every key the manager asks `store` for, and those it changes. */
const spyOn = (store: SessionStore, observed: Observed): SessionStore => {
  const record = <A, E>(key: string, changes: boolean, run: () => Effect.Effect<A, E>) =>
    Effect.suspend(() => {
      observed.asked.push(key)
      if (changes) observed.changed.push(key)
      return run()
    })
  return {
    find: (key) => record(key, false, () => store.find(key)),
    commit: (key, data, expiresAt, mode) => record(key, true, () => store.commit(key, data, expiresAt, mode)),
    take: (key) => record(key, true, () => store.take(key)),
    touch: (key, expiresAt) => record(key, true, () => store.touch(key, expiresAt)),
    delete: (key) => record(key, true, () => store.delete(key)),
    all: store.all,
    owners: store.owners
  }
}

interface FixtureShape {
  readonly manager: SessionManager.SessionManager
  /** The store under the spy: to plant and inspect entries without being recorded. */
  readonly memory: MemoryStore.MemoryStore
  readonly observed: Observed
  /** The store key of a token, as the manager computes it. */
  readonly keyOf: (token: string) => string
  /** The entries planted under KNOWN and OTHER. */
  readonly planted: { readonly known: StoredEntry; readonly other: StoredEntry }
  /** Clears what the previous case recorded. */
  readonly reset: Effect.Effect<void>
}

class Fixture extends Context.Tag("test/Fuzz/Fixture")<Fixture, FixtureShape>() {}

/**
 * A manager over a spied memory store holding KNOWN (`owner: "known"`) and OTHER
 * (`owner: "other"`), and a logger that keeps every line. Built once per property.
 */
const fixture = (options: SessionManager.Options = {}) => {
  const observed: Observed = { asked: [], changed: [], logs: [], adoptions: 0 }
  const built = Effect.gen(function*() {
    const memory = yield* MemoryStore.make()
    const manager = yield* Effect.provideService(SessionManager.make(options), SessionStore, spyOn(memory, observed))
    const keyOf = manager.options.hashTokenInStore ? sha256 : (token: string) => token
    // A real session's entry, copied under a fixed token.
    const plant = (token: string, owner: string) =>
      Effect.gen(function*() {
        const session = yield* manager.load(Option.none())
        yield* session.put("owner", owner)
        const outcome = yield* manager.commit(session)
        if (outcome._tag !== "Written") return yield* Effect.dieMessage(`could not create a session: ${outcome._tag}`)
        const entry = yield* memory.find(keyOf(Redacted.value(outcome.token)))
        if (Option.isNone(entry)) return yield* Effect.dieMessage("the session just written is not in the store")
        yield* memory.commit(keyOf(token), entry.value.data, entry.value.expiresAt, "create")
        return entry.value
      })
    const planted = { known: yield* plant(KNOWN, "known"), other: yield* plant(OTHER, "other") }
    const reset = Effect.sync(() => {
      observed.asked.length = 0
      observed.changed.length = 0
      observed.logs.length = 0
    })
    return { manager, memory, observed, keyOf, planted, reset }
  })
  return Layer.merge(
    Layer.scoped(Fixture, Effect.orDie(built)),
    // Instead of the console: the message, annotations and cause as text, cheap enough for every case.
    Logger.replace(
      Logger.defaultLogger,
      Logger.make(({ annotations, cause, message }) => {
        observed.logs.push(
          `${String(message)} ${JSON.stringify([...annotations])} ${Cause.isEmpty(cause) ? "" : cause}`
        )
      })
    )
  )
}

/**
 * Builds the fixture once for the enclosing `describe` and gives a runner for its cases: each one
 * runs synchronously (the memory store never waits) and returns the rules it found broken; a
 * failure or a defect is a broken rule too.
 */
const withFixture = (options: SessionManager.Options = {}) => {
  const runtime = ManagedRuntime.make(fixture(options))
  beforeAll(() => runtime.runtime())
  afterAll(() => runtime.dispose())
  return (check: Effect.Effect<ReadonlyArray<string>, unknown, Fixture>): ReadonlyArray<string> => {
    const exit = runtime.runSyncExit(check)
    return Exit.isSuccess(exit) ? exit.value : [Cause.pretty(exit.cause)]
  }
}

const emptyRequest = HttpServerRequest.fromWeb(new Request("http://localhost/"))
const requestWith = (headers: Record<string, string>) => emptyRequest.modify({ headers: Headers.fromInput(headers) })

// ---------------------------------------------------------------------------------------------
// What clients send
// ---------------------------------------------------------------------------------------------

const BASE64URL = [..."ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"]
const NOT_BASE64URL = [..."+/=.~ %\"'\\,;:\t\r\n\u0000\u00a0\u00ff\u200béü😀"]

const wellFormedToken = FastCheck.string({ unit: FastCheck.constantFrom(...BASE64URL), minLength: 43, maxLength: 43 })

/** Tokens that are almost `token`: 42 and 44 characters, a foreign character, dressed up. */
const nearMiss = (token: string) =>
  FastCheck.oneof(
    FastCheck.constantFrom(
      token.slice(0, 42),
      token.slice(1),
      token + "A",
      token + "=",
      `"${token}"`,
      `'${token}'`,
      `%${token.charCodeAt(0).toString(16).toUpperCase()}${token.slice(1)}`,
      [...token].map((c) => `%${c.charCodeAt(0).toString(16)}`).join(""),
      token.replace(/-/g, "+").replace(/_/g, "/"),
      token.toUpperCase(),
      `${token} ${token}`
    ),
    FastCheck.tuple(FastCheck.nat(42), FastCheck.constantFrom(...NOT_BASE64URL)).map(([at, char]) =>
      token.slice(0, at) + char + token.slice(at + 1)
    ),
    FastCheck.tuple(FastCheck.nat(42), FastCheck.constantFrom(...BASE64URL)).map(([at, char]) =>
      token.slice(0, at) + char + token.slice(at + 1)
    ),
    FastCheck.tuple(FastCheck.string({ maxLength: 3 }), FastCheck.string({ maxLength: 3 })).map(([before, after]) =>
      before + token + after
    )
  )

const tokenLike = FastCheck.oneof(
  { weight: 3, arbitrary: FastCheck.constant(KNOWN) },
  { weight: 2, arbitrary: FastCheck.constant(OTHER) },
  { weight: 2, arbitrary: wellFormedToken },
  { weight: 5, arbitrary: nearMiss(KNOWN) },
  { weight: 2, arbitrary: FastCheck.string() },
  { weight: 2, arbitrary: FastCheck.string({ unit: "grapheme" }) },
  { weight: 1, arbitrary: FastCheck.string({ unit: "binary" }) }
)

const cookieName = FastCheck.oneof(
  { weight: 6, arbitrary: FastCheck.constant("session") },
  {
    weight: 3,
    arbitrary: FastCheck.constantFrom(
      "Session",
      "SESSION",
      " session",
      "session ",
      "\tsession",
      "session\u00a0",
      "xsession",
      "session2",
      "sess",
      "\"session\"",
      "sess%69on",
      ""
    )
  },
  { weight: 1, arbitrary: FastCheck.string({ maxLength: 8 }) }
)

const cookiePair = FastCheck.oneof(
  { weight: 8, arbitrary: FastCheck.tuple(cookieName, tokenLike).map(([name, value]) => `${name}=${value}`) },
  // How browsers send a cookie without a name: its value alone.
  { weight: 1, arbitrary: tokenLike }
)

const cookieHeader = FastCheck.oneof(
  {
    weight: 8,
    arbitrary: FastCheck.tuple(
      FastCheck.array(cookiePair, { maxLength: 5 }),
      FastCheck.constantFrom("; ", ";", ", ", ",", " ; ", ";;", "")
    ).map(([pairs, separator]) => pairs.join(separator))
  },
  { weight: 1, arbitrary: FastCheck.string() },
  { weight: 1, arbitrary: FastCheck.string({ unit: "binary" }) }
)

/**
 * The values of the `session` pairs of a Cookie header, found by a regular expression rather than
 * the transport's scan: pairs end at `;` or `,`, whitespace around the name is allowed.
 */
const sessionPairs = (header: string): Array<string> =>
  [...header.matchAll(/(?:^|[;,])\s*session\s*=([^;,]*)/g)].map((match) => match[1].trim())

const whitespace = FastCheck.string({ unit: FastCheck.constantFrom(" ", "\t", "\u00a0", "\r", "\n"), maxLength: 3 })

const authorization = FastCheck.oneof(
  {
    weight: 8,
    arbitrary: FastCheck.tuple(
      whitespace,
      FastCheck.oneof(
        FastCheck.constantFrom("Bearer", "bearer", "BEARER", "bEaReR", "Basic", "Token", "Bearer:", "Bearer,", ""),
        FastCheck.string({ maxLength: 8 })
      ),
      FastCheck.constantFrom(" ", "  ", "\t", "", " \t", ", ", "="),
      tokenLike,
      whitespace
    ).map((parts) => parts.join(""))
  },
  { weight: 1, arbitrary: FastCheck.string() },
  { weight: 1, arbitrary: FastCheck.string({ unit: "binary" }) }
)

const bareHeader = FastCheck.oneof(
  { weight: 6, arbitrary: FastCheck.tuple(whitespace, tokenLike, whitespace).map((parts) => parts.join("")) },
  { weight: 1, arbitrary: FastCheck.string({ unit: "binary" }) }
)

/** The token an `Authorization` value carries for the Bearer scheme, by a regular expression. */
const bearerToken = (value: string): string | undefined => /^\s*bearer (.*)$/is.exec(value)?.[1].trim()

/**
 * One request through `read` and `load`, then a write and a commit. The rules: the store is asked
 * for the key of the token read and nothing else, and only when it is well-formed; only KNOWN and
 * OTHER are adopted, with their own data; a write lands under the adopted token or one the client
 * never sent; no token reaches a log line.
 */
const throughTheManager = (
  transport: SessionTransport.SessionTransport,
  request: HttpServerRequest.HttpServerRequest,
  expected: { readonly adopts: string | undefined; readonly sent: string }
) =>
  Effect.gen(function*() {
    const { keyOf, manager, observed, reset } = yield* Fixture
    yield* reset
    const broken: Array<string> = []
    const read = Option.map(yield* transport.read(request), Redacted.value)
    const token = Option.getOrUndefined(read)
    if (token !== undefined && !expected.sent.includes(token)) broken.push("read a token the client did not send")
    const session = yield* manager.load(Option.map(read, Redacted.make))
    const asked = token !== undefined && WELL_FORMED.test(token) ? [keyOf(token)] : []
    if (observed.asked.length !== asked.length || observed.asked.some((key, i) => key !== asked[i])) {
      broken.push(`the store was asked for ${observed.asked.length} keys, expected ${asked.length}`)
    }
    if (observed.asked.some((key) => !WELL_FORMED.test(key))) broken.push("a malformed key reached the store")

    const adopted = Option.getOrUndefined(Option.map(yield* session.token, Redacted.value))
    const owner = Option.getOrUndefined(yield* session.get("owner"))
    if (adopted !== undefined) observed.adoptions++
    if (adopted !== expected.adopts) {
      broken.push(`adopted ${adopted === undefined ? "nothing" : "a token"}, expected ${expected.adopts ?? "nothing"}`)
    }
    if (expected.adopts !== undefined && owner !== (expected.adopts === KNOWN ? "known" : "other")) {
      broken.push("adopted a session with another's data")
    }
    if (expected.adopts === undefined && (yield* session.keys).length > 0) broken.push("a fresh session holds data")

    yield* session.put("seen", true)
    const outcome = yield* manager.commit(session)
    if (outcome._tag !== "Written") return [...broken, `commit gave ${outcome._tag}`]
    const written = Redacted.value(outcome.token)
    if (expected.adopts === undefined ? expected.sent.includes(written) : written !== expected.adopts) {
      broken.push("the write landed under a token the client chose")
    }
    if (observed.changed.some((key) => key !== keyOf(written))) broken.push("another key was changed")
    if (observed.logs.some((line) => [KNOWN, OTHER, written].some((secret) => line.includes(secret)))) {
      broken.push("a token reached a log line")
    }
    return broken
  })

const adoptable = (token: string | undefined) => token === KNOWN || token === OTHER ? token : undefined

for (const hashTokenInStore of [false, true]) {
  describe(`fuzzing the client's headers (hashTokenInStore: ${hashTokenInStore})`, () => {
    const run = withFixture({ hashTokenInStore })

    it.prop("Cookie headers", [cookieHeader], ([header]) => {
      const pairs = sessionPairs(header)
      const broken = run(Effect.gen(function*() {
        const broken = yield* throughTheManager(SessionTransport.cookieDefault, requestWith({ cookie: header }), {
          adopts: pairs.length === 1 ? adoptable(pairs[0]) : undefined,
          sent: header
        })
        const { observed } = yield* Fixture
        const warned = observed.logs.some((line) => line.includes("more than once"))
        return warned === pairs.length > 1 ? broken : [...broken, warned ? "a warning for one cookie" : "no warning"]
      }))
      expect(broken).toEqual([])
    }, CASES)

    it.prop("Authorization headers", [authorization], ([value]) => {
      const broken = run(throughTheManager(SessionTransport.header(), requestWith({ authorization: value }), {
        adopts: adoptable(bearerToken(value)),
        sent: value
      }))
      expect(broken).toEqual([])
    }, CASES)

    it.prop("a custom header with the bare token", [bareHeader], ([value]) => {
      const broken = run(throughTheManager(
        SessionTransport.header({ requestHeader: "X-Session-Token" }),
        requestWith({ "x-session-token": value }),
        { adopts: adoptable(value.trim()), sent: value }
      ))
      expect(broken).toEqual([])
    }, CASES)

    it("KNOWN and OTHER were adopted in many of those cases", () => {
      expect(run(Effect.map(Fixture, ({ observed }) => [String(observed.adoptions)]))[0]).toMatch(/^\d{4,}$/)
    })
  })
}

// ---------------------------------------------------------------------------------------------
// What a store can hold
// ---------------------------------------------------------------------------------------------

/** How to make a payload from KNOWN's real one: at a position given as a fraction of its length. */
type Damage =
  | { readonly _tag: "Replace"; readonly text: string }
  | { readonly _tag: "Truncate"; readonly at: number }
  | { readonly _tag: "Mutate"; readonly at: number; readonly char: string }
  | { readonly _tag: "Insert"; readonly at: number; readonly text: string }
  | { readonly _tag: "SetField"; readonly field: string; readonly value: unknown }
  | { readonly _tag: "Other" }

const fraction = FastCheck.double({ min: 0, max: 1, noNaN: true })
const damage: FastCheck.Arbitrary<Damage> = FastCheck.oneof(
  FastCheck.oneof(FastCheck.string(), FastCheck.string({ unit: "binary" }), FastCheck.json()).map((text) => ({
    _tag: "Replace" as const,
    text
  })),
  FastCheck.constantFrom("", "null", "{}", "[]", "\"garbage\"", "0", "{\"values\":{}}", "{\"__proto__\":{}}").map((
    text
  ) => ({ _tag: "Replace" as const, text })),
  fraction.map((at) => ({ _tag: "Truncate" as const, at })),
  FastCheck.tuple(fraction, FastCheck.string({ unit: "binary", minLength: 1, maxLength: 1 })).map(([at, char]) => ({
    _tag: "Mutate" as const,
    at,
    char
  })),
  FastCheck.tuple(fraction, FastCheck.string({ maxLength: 8 })).map(([at, text]) => ({
    _tag: "Insert" as const,
    at,
    text
  })),
  FastCheck.tuple(
    FastCheck.constantFrom("createdAt", "committedAt", "deadline", "rememberMe", "values", "__proto__", "extra"),
    FastCheck.oneof(
      FastCheck.jsonValue(),
      FastCheck.double(),
      FastCheck.constantFrom(-1, 0, 1, Number.MAX_SAFE_INTEGER, 1e308, undefined),
      FastCheck.dictionary(
        FastCheck.oneof(FastCheck.string(), FastCheck.constantFrom("__proto__", "constructor", "owner")),
        FastCheck.jsonValue(),
        { maxKeys: 4 }
      )
    )
  ).map(([field, value]) => ({ _tag: "SetField" as const, field, value })),
  FastCheck.constant({ _tag: "Other" as const })
)

const damaged = (real: string, other: string, how: Damage): string => {
  const at = (fraction: number) => Math.floor(fraction * real.length)
  switch (how._tag) {
    case "Replace":
      return how.text
    case "Truncate":
      return real.slice(0, at(how.at))
    case "Mutate":
      return real.slice(0, at(how.at)) + how.char + real.slice(at(how.at) + 1)
    case "Insert":
      return real.slice(0, at(how.at)) + how.text + real.slice(at(how.at))
    case "SetField":
      return JSON.stringify({ ...JSON.parse(real), [how.field]: how.value })
    case "Other":
      return other
  }
}

describe("fuzzing what the store holds", () => {
  const run = withFixture()

  it.prop(
    "a damaged payload under a session's key: a fresh session or the decoded one; no other entry changes",
    [damage],
    ([how]) => {
      const broken = run(Effect.gen(function*() {
        const { keyOf, manager, memory, observed, planted, reset } = yield* Fixture
        const known = keyOf(KNOWN)
        const other = keyOf(OTHER)
        const payload = damaged(planted.known.data, planted.other.data, how)
        yield* memory.commit(known, payload, planted.known.expiresAt, "create")
        yield* reset
        const broken: Array<string> = []

        const session = yield* manager.load(Redacted.make(KNOWN))
        const adopted = Option.getOrUndefined(Option.map(yield* session.token, Redacted.value))
        const keys = Array.from(yield* session.keys).sort()
        const decoded = manager.options.codec.decode(payload)
        if (adopted === undefined) {
          if (keys.length > 0) broken.push("a fresh session holds data")
        } else if (adopted !== KNOWN) {
          broken.push("adopted another token")
        } else if (Either.isLeft(decoded)) {
          broken.push("adopted a payload that does not decode")
        } else {
          // The decoded one, with its own values.
          const values = decoded.right.values
          if (JSON.stringify(keys) !== JSON.stringify(Object.keys(values).sort())) broken.push("other keys than stored")
          for (const key of keys) {
            const value = Option.getOrUndefined(yield* session.get(key))
            if (JSON.stringify(value) !== JSON.stringify(values[key])) broken.push(`another value under ${key}`)
          }
        }

        // Committing it writes under KNOWN's key or a new one: never OTHER's.
        yield* session.put("seen", true)
        yield* manager.commit(session)
        if (observed.asked.includes(other)) broken.push("OTHER's key was asked for")
        if (observed.changed.includes(other)) broken.push("OTHER's entry was changed")
        const after = yield* memory.find(other)
        if (
          Option.isNone(after) || after.value.data !== planted.other.data ||
          after.value.expiresAt !== planted.other.expiresAt
        ) broken.push("OTHER's stored entry is not what it was")
        return broken
      }))
      expect(broken).toEqual([])
    },
    CASES
  )

  it("an undamaged payload is adopted (the property above is not vacuous)", () => {
    const broken = run(Effect.gen(function*() {
      const { keyOf, manager, memory, planted } = yield* Fixture
      yield* memory.commit(keyOf(KNOWN), planted.known.data, planted.known.expiresAt, "create")
      const session = yield* manager.load(Redacted.make(KNOWN))
      const owner = yield* session.get("owner")
      return Option.getOrUndefined(owner) === "known" ? [] : ["KNOWN was not adopted"]
    }))
    expect(broken).toEqual([])
  })
})
