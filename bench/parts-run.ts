/** The measuring half of `bench/parts.ts`, run compiled. */
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Token from "../src/internal/token.js"
import * as SessionCodec from "../src/SessionCodec.js"
import * as SessionManager from "../src/SessionManager.js"
import type { CommitOutcome } from "../src/SessionManager.js"
import * as MemoryStore from "../src/SessionStore/Memory.js"
import * as SessionTransport from "../src/SessionTransport.js"
import { argValue, userValue } from "./shared.js"

const iterations = Number(argValue("iterations", "100000"))

const manager = await Effect.runPromise(
  Effect.provide(
    SessionManager.SessionManager,
    SessionManager.layer({ lifetime: "24 hours" }).pipe(Layer.provide(MemoryStore.layer()))
  )
)
const tokens: Array<Redacted.Redacted<string>> = []
for (let i = 0; i < 256; i++) {
  const session = Effect.runSync(manager.load(Option.none()))
  Effect.runSync(session.put("user", userValue(i)))
  Effect.runSync(session.put("count", 0))
  const outcome = Effect.runSync(manager.commit(session)) as Extract<CommitOutcome, { _tag: "Written" }>
  tokens.push(outcome.token)
}

const measure = (name: string, f: (i: number) => unknown): void => {
  for (let i = 0; i < iterations / 10; i++) f(i)
  const runs: Array<number> = []
  for (let run = 0; run < 5; run++) {
    const started = performance.now()
    for (let i = 0; i < iterations; i++) f(i)
    runs.push(((performance.now() - started) * 1000) / iterations)
  }
  runs.sort((a, b) => a - b)
  console.log(`${name.padEnd(58)} ${runs[2].toFixed(2).padStart(6)} µs`)
}

const token = (i: number) => tokens[i & 255]
const transport = SessionTransport.cookieDefault
const response = HttpServerResponse.text("1")
const now = Date.now()
const record = { createdAt: now, deadline: now + 86_400_000, values: { user: userValue(1), count: 3 } }
const encoded = Either.getOrThrow(SessionCodec.json.encode(record))

console.log(`in-process, ${iterations} calls per loop, median of 5 loops`)
measure("Effect.runSync(Effect.void): the harness's own cost", () => Effect.runSync(Effect.void))
measure("manager: load a stored session", (i) => Effect.runSync(manager.load(token(i))))
measure(
  "manager: load + commit, nothing changed (get)",
  (i) => Effect.runSync(Effect.flatMap(manager.load(token(i)), manager.commit))
)
measure(
  "manager: load + getInt + put + commit (incr)",
  (i) =>
    Effect.runSync(
      Effect.flatMap(manager.load(token(i)), (session) =>
        Effect.flatMap(session.getInt("count"), (count) =>
          Effect.zipRight(session.put("count", count + 1), manager.commit(session))))
    )
)
measure(
  "manager: load with no token + commit, nothing written",
  () => Effect.runSync(Effect.flatMap(manager.load(Option.none()), manager.commit))
)
measure(
  "manager: load with no token + put + commit (new)",
  () =>
    Effect.runSync(
      Effect.flatMap(manager.load(Option.none()), (session) =>
        Effect.zipRight(session.put("user", userValue(1)), manager.commit(session)))
    )
)
measure(
  "transport: read the cookie",
  (i) => Effect.runSync(transport.read({ headers: { cookie: `session=${Redacted.value(token(i))}` } } as never))
)
measure("transport: write the cookie + decorate", (i) =>
  Effect.runSync(Effect.map(
    transport.write(response, token(i), { expiresAt: now + 86_400_000, now, rememberMe: undefined }),
    transport.decorate
  )))
measure("codec: encode a two-value record (JSON)", () => SessionCodec.json.encode(record))
measure("codec: decode it", () => SessionCodec.json.decode(encoded))
measure("token: generate one", () => Token.generate())
measure("token: its store key (SHA-256, base64url)", (i) => Token.hash(Redacted.value(token(i))))
measure("Redacted.make (one per token read, one per write)", () => Redacted.make("x"))
