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
 * Whose session it is, for a session bound to an owner:
 *
 * - `id`: the owner id given to `Session.bindOwner` (a user id).
 * - `handle`: the session's random, non-secret handle in its owner's index; it stays the same
 *   when the token is renewed.
 * - `label`: what the application attached at `bindOwner` (a device summary), if anything.
 * - `seenAt`: when this record was last written (epoch milliseconds), for "last active".
 *
 * @since 0.2.0
 * @category schemas
 */
export const SessionOwner = Schema.Struct({
  id: Schema.String,
  handle: Schema.String,
  label: Schema.optional(Schema.String),
  seenAt: Schema.Number
})

/**
 * @since 0.2.0
 * @category models
 */
export interface SessionOwner extends Schema.Schema.Type<typeof SessionOwner> {}

/**
 * What is stored for one session.
 *
 * - `createdAt`: when the session was created (epoch milliseconds); the manager's `maxLifetime`
 *   counts from it, and renewal keeps it.
 * - `deadline`: the absolute expiry (epoch milliseconds), set at creation, moved by `renewToken`
 *   and `setDeadline` but never past `createdAt + maxLifetime`.
 * - `rememberMe`: set by `Session.rememberMe`.
 * - `owner`: set by `Session.bindOwner` (see `SessionOwner`).
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
  owner: Schema.optional(SessionOwner),
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
  const { createdAt, deadline, owner, rememberMe, values } = parsed
  if (
    typeof createdAt !== "number" || typeof deadline !== "number" ||
    (rememberMe !== undefined && typeof rememberMe !== "boolean") ||
    !isObject(values) || Object.hasOwn(values, "__proto__")
  ) {
    return jsonSchemaCodec.decode(stored)
  }
  if (owner === undefined) {
    return Either.right(
      rememberMe === undefined ? { createdAt, deadline, values } : { createdAt, deadline, rememberMe, values }
    )
  }
  const ownerRecord = ownerOf(owner)
  if (ownerRecord === undefined) return jsonSchemaCodec.decode(stored)
  return Either.right(
    rememberMe === undefined
      ? { createdAt, deadline, owner: ownerRecord, values }
      : { createdAt, deadline, rememberMe, owner: ownerRecord, values }
  )
}

// The owner as the Schema would decode it (its own fields only), or undefined for a wrong shape.
const ownerOf = (u: unknown): SessionOwner | undefined => {
  if (!isObject(u)) return undefined
  const { handle, id, label, seenAt } = u
  if (typeof id !== "string" || typeof handle !== "string" || typeof seenAt !== "number") return undefined
  if (label === undefined) return { id, handle, seenAt }
  return typeof label === "string" ? { id, handle, label, seenAt } : undefined
}

/**
 * `JSON.stringify` of the record in the Schema's key order (the same text); a value
 * `JSON.stringify` rejects (a bigint, a cycle) goes through the Schema for its error, and so does
 * an own `__proto__` key, which the Schema's record drops and `JSON.stringify` would keep.
 */
const encodeJson = (record: SessionRecord): Either.Either<string, ParseResult.ParseError> => {
  if (Object.hasOwn(record.values, "__proto__")) return jsonSchemaCodec.encode(record)
  if (record.owner !== undefined) return encodeOwned(record, record.owner)
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

// An owned session's record, rebuilt in the Schema's key order.
const encodeOwned = (record: SessionRecord, owner: SessionOwner): Either.Either<string, ParseResult.ParseError> => {
  try {
    const ordered = owner.label === undefined
      ? { id: owner.id, handle: owner.handle, seenAt: owner.seenAt }
      : { id: owner.id, handle: owner.handle, label: owner.label, seenAt: owner.seenAt }
    return Either.right(JSON.stringify(
      record.rememberMe === undefined
        ? { createdAt: record.createdAt, deadline: record.deadline, owner: ordered, values: record.values }
        : {
          createdAt: record.createdAt,
          deadline: record.deadline,
          rememberMe: record.rememberMe,
          owner: ordered,
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
