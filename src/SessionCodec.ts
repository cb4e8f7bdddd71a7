/**
 * How a whole session is turned into the string a store keeps.
 *
 * A codec wraps an Effect `Schema` from `SessionRecord` to `string`. Values inside the record are
 * already encoded by their keys' schemas (see `Session.key`), so the codec only has to carry
 * JSON-like data; the default is a JSON envelope, with a direct `JSON.parse`/`JSON.stringify`
 * path that gives the same record and the same text as its Schema. MessagePack is in
 * `SessionCodec/MsgPack` (it needs `@effect/platform`; this module needs only `effect`).
 *
 * @since 0.1.0
 */
import * as Either from "effect/Either"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"

/**
 * What is stored for one session.
 *
 * - `createdAt`: when the session was created (epoch milliseconds); the manager's `maxLifetime`
 *   counts from it, and renewal keeps it.
 * - `deadline`: the absolute expiry (epoch milliseconds), set at creation, moved by `renewToken`
 *   and `setDeadline` but never past `createdAt + maxLifetime`.
 * - `rememberMe`: set by `Session.rememberMe`.
 * - `values`: each value in the encoded form of the schema it was put with.
 *
 * The idle timeout is kept by the store's expiry, not in the record: a refresh moves only that.
 *
 * @since 0.1.0
 * @category schemas
 */
export const SessionRecord = Schema.Struct({
  createdAt: Schema.Number,
  deadline: Schema.Number,
  rememberMe: Schema.optional(Schema.Boolean),
  values: Schema.Record({ key: Schema.String, value: Schema.Unknown })
})

/**
 * @since 0.1.0
 * @category models
 */
export interface SessionRecord extends Schema.Schema.Type<typeof SessionRecord> {}

/**
 * A whole-session codec: its `schema`, and the `decode`/`encode` the manager calls (by default
 * the schema's own; a codec may carry a faster path that gives the same results).
 *
 * @since 0.1.0
 * @category models
 */
export interface SessionCodec {
  readonly schema: Schema.Schema<SessionRecord, string>
  readonly decode: (stored: string) => Either.Either<SessionRecord, ParseResult.ParseError>
  readonly encode: (record: SessionRecord) => Either.Either<string, ParseResult.ParseError>
}

/**
 * A codec from a schema.
 *
 * @since 0.2.0
 * @category constructors
 */
export const make = (schema: Schema.Schema<SessionRecord, string>): SessionCodec => ({
  schema,
  decode: Schema.decodeUnknownEither(schema),
  encode: Schema.encodeEither(schema)
})

const jsonSchema = Schema.parseJson(SessionRecord)
const jsonSchemaCodec = make(jsonSchema)

const isObject = (u: unknown): u is Record<string, unknown> => typeof u === "object" && u !== null && !Array.isArray(u)

/**
 * A payload of the exact expected shape decodes to the record the Schema would give; anything
 * else (invalid JSON, a wrong shape, a `__proto__` key) goes through the Schema for its error.
 */
const decodeJson = (stored: string): Either.Either<SessionRecord, ParseResult.ParseError> => {
  let parsed: unknown
  try {
    parsed = JSON.parse(stored)
  } catch {
    return jsonSchemaCodec.decode(stored)
  }
  if (!isObject(parsed)) return jsonSchemaCodec.decode(stored)
  const { createdAt, deadline, rememberMe, values } = parsed
  if (
    typeof createdAt !== "number" || typeof deadline !== "number" ||
    (rememberMe !== undefined && typeof rememberMe !== "boolean") ||
    !isObject(values) || Object.hasOwn(values, "__proto__")
  ) {
    return jsonSchemaCodec.decode(stored)
  }
  return Either.right(
    rememberMe === undefined ? { createdAt, deadline, values } : { createdAt, deadline, rememberMe, values }
  )
}

/**
 * `JSON.stringify` of the record in the Schema's key order (the same text); a value
 * `JSON.stringify` rejects (a bigint, a cycle) goes through the Schema for its error, and so does
 * an own `__proto__` key, which the Schema's record drops and `JSON.stringify` would keep.
 */
const encodeJson = (record: SessionRecord): Either.Either<string, ParseResult.ParseError> => {
  if (Object.hasOwn(record.values, "__proto__")) return jsonSchemaCodec.encode(record)
  try {
    return Either.right(JSON.stringify(
      // Not a conditional spread: on this path that costs more than the rest.
      record.rememberMe === undefined
        ? { createdAt: record.createdAt, deadline: record.deadline, values: record.values }
        : {
          createdAt: record.createdAt,
          deadline: record.deadline,
          rememberMe: record.rememberMe,
          values: record.values
        }
    ))
  } catch {
    return jsonSchemaCodec.encode(record)
  }
}

/**
 * The default codec: the record as JSON text.
 *
 * @since 0.1.0
 * @category codecs
 */
export const json: SessionCodec = { schema: jsonSchema, decode: decodeJson, encode: encodeJson }
