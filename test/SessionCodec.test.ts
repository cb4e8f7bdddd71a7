import { describe, expect, it } from "@effect/vitest"
import * as Either from "effect/Either"
import * as FastCheck from "effect/FastCheck"
import * as Schema from "effect/Schema"
import * as SessionCodec from "../src/SessionCodec.js"
import * as SessionCodecMsgPack from "../src/SessionCodec/MsgPack.js"

// Keys a JSON object can hold, the awkward ones included: prototype names, empty, unicode, digits.
const key = FastCheck.oneof(
  FastCheck.string(),
  FastCheck.constantFrom("__proto__", "constructor", "toString", "hasOwnProperty", "", "0", "1e3", "é", "😀")
)
const owner = FastCheck.record({
  id: FastCheck.string(),
  handle: FastCheck.string(),
  label: FastCheck.option(FastCheck.string(), { nil: undefined }),
  seenAt: FastCheck.integer()
}).map(({ label, ...rest }) => label === undefined ? rest : { ...rest, label })
const record = FastCheck.record({
  createdAt: FastCheck.integer(),
  deadline: FastCheck.double({ noNaN: true, noDefaultInfinity: true }),
  rememberMe: FastCheck.option(FastCheck.boolean(), { nil: undefined }),
  owner: FastCheck.option(owner, { nil: undefined }),
  values: FastCheck.dictionary(key, FastCheck.jsonValue(), { maxKeys: 8 })
}).map(({ owner, rememberMe, ...rest }) => ({
  ...rest,
  ...(rememberMe === undefined ? {} : { rememberMe }),
  ...(owner === undefined ? {} : { owner })
}))
// Stored text with an owner of any shape: extra fields, wrong types, missing fields.
const anyOwner = FastCheck.record({
  createdAt: FastCheck.integer(),
  deadline: FastCheck.integer(),
  owner: FastCheck.oneof(owner, owner.map((o) => ({ ...o, extra: 1 })), FastCheck.jsonValue()),
  values: FastCheck.dictionary(key, FastCheck.jsonValue(), { maxKeys: 2 })
}).map((r) => JSON.stringify(r))

const viaSchema = SessionCodec.make(SessionCodec.json.schema)

describe("SessionCodec.json: its fast path gives what its Schema gives", () => {
  it.prop("the same text when encoding", [record], ([session]) => {
    expect(SessionCodec.json.encode(session)).toEqual(viaSchema.encode(session))
  }, { fastCheck: { numRuns: 2000 } })

  it.prop("the same record when decoding what either encoded", [record], ([session]) => {
    const text = Either.getOrThrow(viaSchema.encode(session))
    const fast = SessionCodec.json.decode(text)
    const slow = viaSchema.decode(text)
    expect(Either.isRight(fast)).toBe(Either.isRight(slow))
    if (Either.isRight(fast) && Either.isRight(slow)) {
      expect(fast.right).toEqual(slow.right)
      expect(Object.keys(fast.right.values)).toEqual(Object.keys(slow.right.values))
    }
  }, { fastCheck: { numRuns: 2000 } })

  it.prop("the same outcome for any stored text, well-formed or not", [
    FastCheck.oneof(FastCheck.string(), FastCheck.json(), record.map((r) => JSON.stringify(r)), anyOwner)
  ], ([text]) => {
    const fast = SessionCodec.json.decode(text)
    const slow = viaSchema.decode(text)
    expect(Either.isRight(fast)).toBe(Either.isRight(slow))
    // Compared as text: for a stored `__proto__` key both paths run the Schema, whose record then
    // has a prototype of its own that `toEqual` tells apart between two runs.
    if (Either.isRight(fast) && Either.isRight(slow)) {
      expect(JSON.stringify(fast.right)).toBe(JSON.stringify(slow.right))
    }
    // A failure carries the Schema's own error either way.
    if (Either.isLeft(fast) && Either.isLeft(slow)) expect(fast.left.message).toBe(slow.left.message)
  }, { fastCheck: { numRuns: 2000 } })

  it("a value JSON cannot hold fails with the Schema's error, on both paths", () => {
    const session = { createdAt: 1, deadline: 1, values: { n: 1n } } as unknown as SessionCodec.SessionRecord
    const fast = SessionCodec.json.encode(session)
    expect(Either.isLeft(fast)).toBe(true)
    expect(fast).toEqual(viaSchema.encode(session))
  })

  it("make wraps any schema from the record to text", () => {
    const codec = SessionCodec.make(Schema.parseJson(SessionCodec.SessionRecord))
    const session = { createdAt: 1, deadline: 2, values: { a: [1, "x"] } }
    expect(Either.flatMap(codec.encode(session), codec.decode)).toEqual(Either.right(session))
    expect(Either.flatMap(SessionCodecMsgPack.msgPack.encode(session), SessionCodecMsgPack.msgPack.decode)).toEqual(
      Either.right(session)
    )
  })
})
