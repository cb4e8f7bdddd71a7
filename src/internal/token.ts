import { createHash, randomBytes } from "node:crypto"

const TOKEN_PATTERN = /^[A-Za-z0-9_-]{43}$/

const TOKEN_BYTES = 32
// One call into the CSPRNG per 128 tokens instead of one per token (as `crypto.randomUUID`
// caches its entropy); every byte is handed out once.
const POOL_BYTES = TOKEN_BYTES * 128
let pool = Buffer.alloc(0)
let offset = 0

/** 32 bytes from the CSPRNG as unpadded base64url: 43 characters. */
export const generate = (): string => {
  if (offset + TOKEN_BYTES > pool.length) {
    pool = randomBytes(POOL_BYTES)
    offset = 0
  }
  const token = pool.toString("base64url", offset, offset + TOKEN_BYTES)
  offset += TOKEN_BYTES
  return token
}

/**
 * A session's handle in its owner's index: 16 random bytes as base64url (22 characters), drawn
 * apart from any token, so nothing about a token can be learnt from it.
 */
export const handle = (): string => randomBytes(16).toString("base64url")

/** Whether a client-supplied string could be one of our tokens; anything else never reaches a store. */
export const isWellFormed = (token: string): boolean => TOKEN_PATTERN.test(token)

/** base64url(SHA-256(token)): what the store sees with `hashTokenInStore`. */
export const hash = (token: string): string => createHash("sha256").update(token).digest("base64url")
