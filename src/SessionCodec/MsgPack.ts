/**
 * The MessagePack session codec, on `@effect/platform`'s `MsgPack`.
 *
 * @since 0.2.0
 */
import * as MsgPack from "@effect/platform/MsgPack"
import * as Schema from "effect/Schema"
import * as SessionCodec from "../SessionCodec.js"

/**
 * MessagePack, base64-encoded so that every store can keep it as text. Smaller than JSON for
 * sessions with many numbers; keys whose schemas encode to `Uint8Array` keep their bytes.
 *
 * ```ts
 * SessionManager.layer({ codec: SessionCodecMsgPack.msgPack })
 * ```
 *
 * @since 0.2.0
 * @category codecs
 */
export const msgPack: SessionCodec.SessionCodec = SessionCodec.make(
  Schema.compose(Schema.Uint8ArrayFromBase64, MsgPack.schema(SessionCodec.SessionRecord))
)
