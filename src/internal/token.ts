import { createHash, randomBytes } from "node:crypto"

const TOKEN_PATTERN = /^[A-Za-z0-9_-]{43}$/

/** 32 bytes from the CSPRNG as unpadded base64url: 43 characters. */
export const generate = (): string => randomBytes(32).toString("base64url")

/** Whether a client-supplied string could be one of our tokens; anything else never reaches a store. */
export const isWellFormed = (token: string): boolean => TOKEN_PATTERN.test(token)

/** base64url(SHA-256(token)): what the store sees with `hashTokenInStore`. */
export const hash = (token: string): string => createHash("sha256").update(token).digest("base64url")
