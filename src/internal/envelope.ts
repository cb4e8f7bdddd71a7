/**
 * The one value format of the stores that keep the expiry beside the payload in a single value
 * (Redis, LevelDB, LMDB, the `KeyValueStore` and `Persistence` adapters):
 * `<expiresAt>:<length>:<payload>`, with `expiresAt` in epoch milliseconds and `length` the
 * payload's length in UTF-16 code units. Redis's update script reads the expiry up to the first
 * colon, so it must stay first.
 */
import * as Option from "effect/Option"

/** A decoded value. */
export interface Envelope {
  readonly expiresAt: number
  readonly data: string
}

// A length-checked payload: a value cut short (a file read while it is being rewritten) or
// written by another program never decodes.
const HEADER = /^(\d{1,16}):(\d{1,16}):/

/** The expiry as stored: whole milliseconds, and 0 for an expiry before 1970. */
export const storedExpiry = (expiresAt: number): number => Math.max(0, Math.trunc(expiresAt))

/** The value for `data` until `expiresAt` (as `storedExpiry` keeps it). */
export const encode = (data: string, expiresAt: number): string => `${storedExpiry(expiresAt)}:${data.length}:${data}`

/** The envelope in `raw`, or `undefined` when `raw` is not one (absent, foreign or torn). */
export const decode = (raw: unknown): Envelope | undefined => {
  if (typeof raw !== "string") return undefined
  const header = HEADER.exec(raw)
  if (header === null) return undefined
  const data = raw.slice(header[0].length)
  return data.length === Number(header[2]) ? { expiresAt: Number(header[1]), data } : undefined
}

/** Whether `envelope` exists and is unexpired at `now`. */
export const isLive = (envelope: Envelope | undefined, now: number): envelope is Envelope =>
  envelope !== undefined && envelope.expiresAt > now

/** A live envelope as `find` and `take` return it (its payload and expiry: the decoded value itself), or none. */
export const liveEntry = (envelope: Envelope | undefined, now: number): Option.Option<Envelope> =>
  isLive(envelope, now) ? Option.some(envelope) : Option.none()
