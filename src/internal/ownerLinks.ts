/**
 * The `OwnerIndex` methods as changes to one owner's links (handle → link), for the stores that
 * keep an owner's links as one map: the memory store, and the adapters that read and write an
 * owner's value whole (`ownerIndex.ts`); and the record layout of LMDB and LevelDB, which keep one
 * record per handle. No dependencies, so the memory store stays portable.
 */
import type { LinkResult, OwnerLink } from "../SessionStore.js"

/** One handle: the key its session lives under, or `null` once revoked (a tombstone), until `until`. */
export interface Link {
  readonly key: string | null
  readonly until: number
}

/** What a change to an owner's links returns, and whether it changed them. */
export interface Changed<A> {
  readonly result: A
  readonly changed: boolean
}

/** Each change takes the owner's links that are before their `until`, and changes them in place. */
export const linkIn = (links: Map<string, Link>, handle: string, key: string, until: number): Changed<LinkResult> => {
  const current = links.get(handle)
  if (current?.key === null) return { result: "revoked", changed: false }
  links.set(handle, { key, until })
  // The manager links a key again after storing its session: that second link changes nothing.
  return { result: "linked", changed: current?.key !== key || current.until !== until }
}

export const listIn = (links: ReadonlyMap<string, Link>): Array<OwnerLink> => {
  const result: Array<OwnerLink> = []
  for (const [handle, link] of links) if (link.key !== null) result.push({ handle, key: link.key })
  return result
}

export const revokeIn = (
  links: Map<string, Link>,
  handles: ReadonlyArray<string> | "all",
  except: string | undefined
): Changed<Array<string>> => {
  const keys: Array<string> = []
  for (const handle of handles === "all" ? Array.from(links.keys()) : handles) {
    const link = links.get(handle)
    if (link === undefined || link.key === null || handle === except) continue
    keys.push(link.key)
    links.set(handle, { key: null, until: link.until })
  }
  return { result: keys, changed: keys.length > 0 }
}

export const unlinkIn = (links: Map<string, Link>, handle: string, key: string): Changed<void> => {
  if (links.get(handle)?.key !== key) return { result: undefined, changed: false }
  links.delete(handle)
  return { result: undefined, changed: true }
}

/**
 * The record layout of the stores that keep one record per handle in a sorted keyspace (LMDB,
 * LevelDB): keyed `<owner length>:<owner>:<handle>`, so an owner's records share a prefix that no
 * other owner's key starts with, whatever the owner id contains.
 */
export const ownerPrefix = (owner: string): string => `${owner.length}:${owner}:`

export const linkKey = (owner: string, handle: string): string => `${ownerPrefix(owner)}${handle}`

/** A record's value: `[until, key]` (JSON). */
export const linkToArray = (link: Link): readonly [number, string | null] => [link.until, link.key]

/** A record's value read back; anything but `[until, key]` reads as absent. */
export const linkFromArray = (raw: unknown): Link | undefined =>
  Array.isArray(raw) && raw.length === 2 && typeof raw[0] === "number" &&
    (typeof raw[1] === "string" || raw[1] === null)
    ? { until: raw[0], key: raw[1] }
    : undefined
