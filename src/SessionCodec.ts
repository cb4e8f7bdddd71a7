/**
 * How a whole session is turned into the string a store keeps.
 *
 * A codec is an Effect `Schema` from `SessionRecord` to `string`. Values inside the record are
 * already encoded by their keys' schemas (see `Session.key`), so the codec only has to carry
 * JSON-like data; the default is a JSON envelope.
 *
 * @since 0.1.0
 */
import * as MsgPack from "@effect/platform/MsgPack"
import * as Schema from "effect/Schema"

/**
 * What is stored for one session.
 *
 * - `deadline`: the absolute expiry (epoch milliseconds), fixed at creation, reset by
 *   `renewToken` and `setDeadline`.
 * - `committedAt`: when the session was last written (epoch milliseconds), used by the idle
 *   timeout and its write throttle.
 * - `rememberMe`: set by `Session.rememberMe`.
 * - `values`: each value in the encoded form of the schema it was put with.
 *
 * @since 0.1.0
 * @category schemas
 */
export const SessionRecord = Schema.Struct({
  deadline: Schema.Number,
  committedAt: Schema.Number,
  rememberMe: Schema.optional(Schema.Boolean),
  values: Schema.Record({ key: Schema.String, value: Schema.Unknown })
})

/**
 * @since 0.1.0
 * @category models
 */
export interface SessionRecord extends Schema.Schema.Type<typeof SessionRecord> {}

/**
 * A whole-session codec.
 *
 * @since 0.1.0
 * @category models
 */
export interface SessionCodec extends Schema.Schema<SessionRecord, string> {}

/**
 * The default codec: the record as JSON text.
 *
 * @since 0.1.0
 * @category codecs
 */
export const json: SessionCodec = Schema.parseJson(SessionRecord)

/**
 * MessagePack, base64-encoded so that every store can keep it as text. Smaller than JSON for
 * sessions with many numbers; keys whose schemas encode to `Uint8Array` keep their bytes.
 *
 * @since 0.1.0
 * @category codecs
 */
export const msgPack: SessionCodec = Schema.compose(Schema.Uint8ArrayFromBase64, MsgPack.schema(SessionRecord))
