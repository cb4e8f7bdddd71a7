/**
 * Tokens, handles and token hashes, with what every web-standard runtime has: Web Crypto's
 * `getRandomValues` for randomness. SHA-256 is `@noble/hashes`' synchronous one, not Web Crypto's
 * `digest`: that is asynchronous, and on Node 20 each call is a thread-pool job (~40 µs of CPU
 * for a token, against ~2 µs here), on a path that hashes a token on every request. Where the
 * runtime hands out Node's `crypto` module without an import (`process.getBuiltinModule`: Node
 * from 20.16, or another runtime that has both), its one-shot `hash` does the same in a tenth of that.
 */
import { sha256 } from "@noble/hashes/sha2.js"
import * as Encoding from "effect/Encoding"

const TOKEN_PATTERN = /^[A-Za-z0-9_-]{43}$/

const TOKEN_BYTES = 32
// One call into the CSPRNG per 128 tokens instead of one per token (as `crypto.randomUUID`
// caches its entropy); every byte is handed out once.
const POOL_BYTES = TOKEN_BYTES * 128
let pool: Uint8Array = new Uint8Array(0)
let offset = 0

const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
const CODES = Uint16Array.from(ALPHABET, (char) => char.charCodeAt(0))
// Room for the longest input encoded here (48 bytes, 64 characters): tokens, handles, hashes.
const chars = new Uint16Array(64)

/**
 * Unpadded base64url, the same text as `Encoding.encodeBase64Url`. That one builds the padded
 * base64 a character at a time and rewrites it with three regular expressions: about 1.5 KB of
 * garbage for a 32-byte hash, on every request. Here the characters go into a scratch buffer and
 * become one string. Inputs over 48 bytes take `Encoding`'s path.
 */
export const base64Url = (bytes: Uint8Array): string => {
  const length = bytes.length
  if (length > 48) return Encoding.encodeBase64Url(bytes)
  let n = 0
  let i = 0
  for (; i + 2 < length; i += 3) {
    const triple = (bytes[i] << 16) | (bytes[i + 1] << 8) | bytes[i + 2]
    chars[n++] = CODES[triple >> 18]
    chars[n++] = CODES[(triple >> 12) & 63]
    chars[n++] = CODES[(triple >> 6) & 63]
    chars[n++] = CODES[triple & 63]
  }
  if (i < length) {
    const rest = length - i === 2 ? (bytes[i] << 16) | (bytes[i + 1] << 8) : bytes[i] << 16
    chars[n++] = CODES[rest >> 18]
    chars[n++] = CODES[(rest >> 12) & 63]
    if (length - i === 2) chars[n++] = CODES[(rest >> 6) & 63]
  }
  return String.fromCharCode.apply(null, chars.subarray(0, n) as unknown as Array<number>)
}

/** `length` bytes from the CSPRNG. */
export const randomBytes = (length: number): Uint8Array => crypto.getRandomValues(new Uint8Array(length))

/** 32 bytes from the CSPRNG as unpadded base64url: 43 characters. */
export const generate = (): string => {
  if (offset + TOKEN_BYTES > pool.length) {
    pool = randomBytes(POOL_BYTES)
    offset = 0
  }
  const token = base64Url(pool.subarray(offset, offset + TOKEN_BYTES))
  offset += TOKEN_BYTES
  return token
}

/**
 * A session's handle in its owner's index: 16 random bytes as base64url (22 characters), drawn
 * apart from any token, so nothing about a token can be learnt from it.
 */
export const handle = (): string => base64Url(randomBytes(16))

/** Whether a client-supplied string could be one of our tokens; anything else never reaches a store. */
export const isWellFormed = (token: string): boolean => TOKEN_PATTERN.test(token)

const utf8 = new TextEncoder()

// Tokens and store keys are ASCII: copied into a scratch buffer they cost a tenth of what
// `TextEncoder` does (~1.2 µs for 43 characters, a quarter of the hash). Anything else is encoded.
const scratch = new Uint8Array(256)
const bytesOf = (text: string): Uint8Array => {
  if (text.length > scratch.length) return utf8.encode(text)
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i)
    if (code >= 0x80) return utf8.encode(text)
    scratch[i] = code
  }
  return scratch.subarray(0, text.length)
}

/** base64url(SHA-256(text)) with `@noble/hashes`: any runtime. */
const portableHash = (text: string): string => base64Url(sha256(bytesOf(text)))

// The one-shot `crypto.hash(algorithm, data, encoding)` (Node 20.12 and 21.7 on), reached without
// importing `node:crypto`, which a web-standard runtime has no module for. It encodes the text as
// UTF-8, as `bytesOf` does (a lone surrogate as U+FFFD in both).
type OneShot = (algorithm: "sha256", data: string, encoding: "base64url") => string
const nodeHash = ((): OneShot | undefined => {
  const runtime = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process
  const crypto = runtime?.getBuiltinModule?.("node:crypto") as { hash?: OneShot } | undefined
  return typeof crypto?.hash === "function" ? crypto.hash : undefined
})()

/** base64url(SHA-256(token)): what the store sees with `hashTokenInStore`. */
export const hash: (token: string) => string = nodeHash === undefined
  ? portableHash
  : (text) => nodeHash("sha256", text, "base64url")
