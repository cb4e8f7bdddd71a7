/**
 * The owner index of the stores that keep it as one value per owner, read, changed and written
 * back whole (the `KeyValueStore` and `Persistence` adapters): the value's name and layout, and
 * the `OwnerIndex` methods as changes to it, serialised per owner in this process. A store gives
 * only how to read and write one value.
 */
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import { createHash } from "node:crypto"
import type { OwnerIndex } from "../SessionStore.js"
import { SessionStoreError } from "../SessionStore.js"
import * as KeyedMutex from "./keyedMutex.js"
import type * as OwnerLinks from "./ownerLinks.js"
import { type Changed, linkIn, listIn, revokeIn, unlinkIn } from "./ownerLinks.js"

export type Operation = "link" | "list" | "revoke" | "unlink"

/** One handle: the key its session lives under, or `null` once revoked (a tombstone), until `until`. */
export const Link: Schema.Schema<Link> = Schema.Struct({ key: Schema.NullOr(Schema.String), until: Schema.Number })
export type Link = OwnerLinks.Link

/**
 * An owner's value: handle → link, encoded as `[[handle, { key, until }], ...]`. Pairs rather
 * than an object keyed by handle, so that no handle (not even `"__proto__"`) is lost in JSON.
 */
export const Links = Schema.ReadonlyMap({ key: Schema.String, value: Link })

/** The same value as a JSON string, for stores that keep strings. */
export const LinksFromJson = Schema.parseJson(Links)

/**
 * Where an owner's value lives: `owner:` and base64url(SHA-256(owner)). The colon keeps it apart
 * from session keys (tokens and their hashes are base64url, which has none); the hash gives any
 * owner id, whatever its length or characters, a distinct short name that is safe as a file name.
 */
export const valueKey = (owner: string): string => `owner:${createHash("sha256").update(owner).digest("base64url")}`

/**
 * A value that does not decode. It is neither treated as empty (a revocation would then miss
 * sessions) nor overwritten (that would lose its links and tombstones): the owner's operations
 * fail until it is repaired. The value is not quoted: it holds session keys.
 */
export const malformed = (operation: Operation): SessionStoreError =>
  new SessionStoreError({ reason: "Unknown", operation, detail: "the owner's index value is malformed" })

/** How a store keeps one owner's value. */
export interface Storage {
  /** The links stored under `key` (expired ones included), empty when there is no value. */
  readonly read: (operation: Operation, key: string) => Effect.Effect<ReadonlyMap<string, Link>, SessionStoreError>
  /** Stores `links` (all unexpired) under `key`, or removes the value when there are none. */
  readonly write: (
    operation: Operation,
    key: string,
    links: ReadonlyMap<string, Link>
  ) => Effect.Effect<void, SessionStoreError>
}

/** The owner index over `storage`; each method holds the owner's lock in this process from read to write. */
export const make = (storage: Storage): Effect.Effect<OwnerIndex, never, Scope.Scope> =>
  Effect.map(KeyedMutex.make(), (mutex) => {
    // Runs `change` on the owner's unexpired links under the owner's lock, and writes them back
    // (dropping the expired ones) when it reports a change.
    const withLinks = <A>(
      operation: Operation,
      owner: string,
      change: (links: Map<string, Link>) => Changed<A>
    ): Effect.Effect<A, SessionStoreError> =>
      mutex.withLock(owner)(Effect.gen(function*() {
        const key = valueKey(owner)
        const stored = yield* storage.read(operation, key)
        const now = yield* Clock.currentTimeMillis
        const links = new Map(Array.from(stored).filter(([, link]) => link.until > now))
        const { changed, result } = change(links)
        if (changed) yield* storage.write(operation, key, links)
        return result
      }))

    return {
      link: (owner, handle, key, until) => withLinks("link", owner, (links) => linkIn(links, handle, key, until)),
      list: (owner) => withLinks("list", owner, (links) => ({ result: listIn(links), changed: false })),
      revoke: (owner, handles, except) => withLinks("revoke", owner, (links) => revokeIn(links, handles, except)),
      unlink: (owner, handle, key) => withLinks("unlink", owner, (links) => unlinkIn(links, handle, key))
    }
  })
