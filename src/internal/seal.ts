/**
 * Sealing with Web Crypto: AES-256-GCM under a key derived from each secret with HKDF-SHA-256.
 *
 *   value     = <secret id> "." base64url(0x01 ‖ iv ‖ ciphertext ‖ tag)
 *   key       = HKDF-SHA-256(ikm: the secret's UTF-8 bytes, salt: empty, info: "effect-session/sealed/1"), 32 bytes
 *   aad       = UTF-8 of "effect-session/sealed/1" NUL <secret id>
 *   iv        = 12 random bytes per seal; tag = 16 bytes
 *
 * The secret id is bound by the additional data, beside the label that names the format's
 * version (a value moved under another id, or edited anywhere, does not open); the version byte
 * must match the label's version. A new format gets a new label and a new byte together.
 */
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Encoding from "effect/Encoding"
import * as Redacted from "effect/Redacted"
import * as Token from "./token.js"

const VERSION = 1
const LABEL = "effect-session/sealed/1"
const IV_BYTES = 12
const TAG_BYTES = 16
const OVERHEAD = 1 + IV_BYTES + TAG_BYTES

/** A secret's id: what a sealed value names its key by, in clear. */
export const SECRET_ID = /^[A-Za-z0-9_-]{1,32}$/

/** The fewest bytes a secret has (as UTF-8). */
export const MIN_SECRET_BYTES = 32

const utf8 = new TextEncoder()
// Fatal: a plaintext that is not UTF-8 was not sealed by us (it authenticated, so it cannot happen).
const fromUtf8 = new TextDecoder("utf-8", { fatal: true })

// Named through `crypto.subtle`: the project compiles without the DOM library.
type CryptoKey = Awaited<ReturnType<typeof crypto.subtle.importKey>>

/** A derived key, ready to seal and open. */
export interface SealKey {
  readonly id: string
  readonly key: CryptoKey
  readonly additionalData: Uint8Array<ArrayBuffer>
}

/** Derives the AES-256-GCM key of a secret (once, when the manager is made). */
export const deriveKey = (id: string, secret: Redacted.Redacted<string>): Effect.Effect<SealKey> =>
  Effect.promise(async () => {
    const material = await crypto.subtle.importKey("raw", utf8.encode(Redacted.value(secret)), "HKDF", false, [
      "deriveKey"
    ])
    const key = await crypto.subtle.deriveKey(
      { name: "HKDF", hash: "SHA-256", salt: new Uint8Array(0), info: utf8.encode(LABEL) },
      material,
      { name: "AES-GCM", length: 256 },
      false,
      ["encrypt", "decrypt"]
    )
    return { id, key, additionalData: utf8.encode(`${LABEL}\u0000${id}`) }
  })

/** The length of the value `seal` makes of `plaintext` bytes under `key`, computed without sealing. */
export const sealedLength = (key: SealKey, plaintext: Uint8Array): number =>
  key.id.length + 1 + Math.ceil((OVERHEAD + plaintext.length) * 4 / 3)

/** The plaintext's UTF-8 bytes, for `sealedLength` and `seal`. */
export const encodeText = (text: string): Uint8Array<ArrayBuffer> => utf8.encode(text)

/** Seals `plaintext` under `key`. */
export const seal = (key: SealKey, plaintext: Uint8Array<ArrayBuffer>): Effect.Effect<string> =>
  Effect.promise(async () => {
    const iv = Token.randomBytes(IV_BYTES)
    const sealed = new Uint8Array(
      await crypto.subtle.encrypt(
        { name: "AES-GCM", iv, additionalData: key.additionalData, tagLength: TAG_BYTES * 8 },
        key.key,
        plaintext
      )
    )
    const out = new Uint8Array(1 + IV_BYTES + sealed.length)
    out[0] = VERSION
    out.set(iv, 1)
    out.set(sealed, 1 + IV_BYTES)
    return `${key.id}.${Encoding.encodeBase64Url(out)}`
  })

/**
 * Opens a sealed value with the key its id names: the plaintext and that key, or undefined for
 * anything that does not open (an unknown id, bad base64url, too short, another version, any edit).
 */
export const open = (
  keys: ReadonlyMap<string, SealKey>,
  value: string
): Effect.Effect<{ readonly plaintext: string; readonly key: SealKey } | undefined> => {
  const dot = value.indexOf(".")
  const key = dot === -1 ? undefined : keys.get(value.slice(0, dot))
  if (key === undefined) return Effect.succeed(undefined)
  const text = value.slice(dot + 1)
  const decoded = Encoding.decodeBase64Url(text)
  if (Either.isLeft(decoded)) return Effect.succeed(undefined)
  const bytes = decoded.right
  // Only the canonical spelling: no second string opens to the same session.
  if (bytes.length < OVERHEAD || bytes[0] !== VERSION || Encoding.encodeBase64Url(bytes) !== text) {
    return Effect.succeed(undefined)
  }
  return Effect.promise(() =>
    crypto.subtle.decrypt(
      {
        name: "AES-GCM",
        iv: bytes.subarray(1, 1 + IV_BYTES),
        additionalData: key.additionalData,
        tagLength: TAG_BYTES * 8
      },
      key.key,
      bytes.subarray(1 + IV_BYTES)
    ).then((plain) => ({ plaintext: fromUtf8.decode(plain), key })).catch(() => undefined)
  )
}
