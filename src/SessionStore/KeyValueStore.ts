/**
 * An adapter that keeps sessions in any `@effect/platform` `KeyValueStore`: its memory layer,
 * the file-system layer (`NodeKeyValueStore.layerFileSystem(directory)` from
 * `@effect/platform-node`, one file per session), browser storage, or one of your own.
 *
 * What a `KeyValueStore` cannot do, this store cannot do either:
 *
 * - **No enumeration.** A `KeyValueStore` cannot list its keys, so `all` is `undefined` (in the
 *   type, too) and `SessionManager.iterate` fails with `SessionStoreError` reason `Unsupported`.
 * - **No sweep.** A `KeyValueStore` has no expiry of its own: the expiry is stored with the
 *   payload and checked on every read. An expired entry stays in the backing store until it is
 *   read (a read removes it) or overwritten; a session that is never presented again stays
 *   until you clear the store (for the file-system layer, delete old files in its directory).
 * - **Update-if-present is check-then-set.** An `"update"` and a `touch` read the entry and write
 *   it only if it is still live; a `take` reads it and removes it; an owner index method reads
 *   the owner's value and writes it back. This store serialises these (and `delete`) per key, and
 *   per owner, in its own process, so each is atomic within one process; two processes sharing
 *   one backing store can race (a logout in one process may be overwritten by a late commit in
 *   the other, one session taken twice, or a revocation lost to a concurrent link). Use one
 *   process per store, or a store with atomic conditional writes (Redis, SQL, LMDB).
 * - **Torn reads.** The file-system layer writes a file in place, so a read racing a write can
 *   see half a file. Entries carry their payload's length, a torn read never decodes, and it is
 *   read again (up to three times) before the entry counts as absent.
 *
 * **The owner index** keeps one value per owner, under the prefix, `owner:` and
 * base64url(SHA-256(owner id)): a short name that no session key (base64url, no colon) can take,
 * safe as a file name whatever the owner id holds. The value is JSON,
 * `[[handle, { "key": key, "until": epochMillis }], ...]`, with `"key": null` for a revoked
 * handle (a tombstone). Nothing expires it: links and tombstones past their `until` are skipped
 * on reads and dropped whenever the owner's value is rewritten (the value is removed once it has
 * none left). A value that still does not decode after three reads fails the owner's operations
 * with `SessionStoreError` (reason `Unknown`) and is left as it is: read as empty, a revocation
 * would miss sessions; overwritten, its links and tombstones would be lost.
 *
 * @since 0.1.0
 */
import * as KeyValueStore from "@effect/platform/KeyValueStore"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Envelope from "../internal/envelope.js"
import * as Errors from "../internal/errors.js"
import { yieldToEventLoop } from "../internal/eventLoop.js"
import * as KeyedMutex from "../internal/keyedMutex.js"
import * as Owners from "../internal/ownerIndex.js"
import { provideBoth } from "../internal/storeLayer.js"
import * as Telemetry from "../internal/telemetry.js"
import type { OwnerIndex, SessionStore, SessionStoreError } from "../SessionStore.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /**
   * Prepended to every key, so sessions can share a `KeyValueStore` with other data. Default
   * `"effect-session:"`.
   */
  readonly prefix?: string | undefined
}

/**
 * A session store over a `KeyValueStore`: it cannot enumerate, and says so in its type; it keeps an owner index.
 *
 * @since 0.2.0
 * @category models
 */
export interface KeyValueStoreAdapter extends SessionStore {
  readonly all: undefined
  readonly owners: OwnerIndex
}

/**
 * The adapter built by `layer`.
 *
 * @since 0.2.0
 * @category tags
 */
export const KeyValueStoreAdapter: Context.Tag<KeyValueStoreAdapter, KeyValueStoreAdapter> = Context.GenericTag<
  KeyValueStoreAdapter
>("effect-session/SessionStore/KeyValueStore")

const READ_ATTEMPTS = 3

const decodeLinks = Schema.decodeOption(Owners.LinksFromJson)
const encodeLinks = Schema.encodeSync(Owners.LinksFromJson)

/**
 * Makes the store over the `KeyValueStore` in context. Keys are prefixed here rather than with
 * `KeyValueStore.prefix`, which leaves some methods unprefixed in @effect/platform 0.97.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  options: Options = {}
): Effect.Effect<KeyValueStoreAdapter, never, KeyValueStore.KeyValueStore | Scope.Scope> =>
  Effect.gen(function*() {
    const backing = yield* KeyValueStore.KeyValueStore
    const prefix = options.prefix ?? "effect-session:"
    const mutex = yield* KeyedMutex.make()

    // The entry under `key`, or undefined when absent or unreadable after a few attempts.
    const read = (
      operation: SessionStoreError["operation"],
      key: string
    ): Effect.Effect<Envelope.Envelope | undefined, SessionStoreError> =>
      Effect.gen(function*() {
        for (let attempt = 1;; attempt++) {
          const raw = yield* Effect.mapError(backing.get(prefix + key), Errors.fromKeyValueStore(operation))
          if (Option.isNone(raw)) return undefined
          const entry = Envelope.decode(raw.value)
          if (entry !== undefined || attempt === READ_ATTEMPTS) return entry
          yield* yieldToEventLoop
        }
      })

    const remove = (operation: SessionStoreError["operation"], key: string) =>
      backing.remove(prefix + key).pipe(
        // The file-system layer fails on a missing file; a missing key is not an error here.
        Effect.catchIf((error) => error._tag === "SystemError" && error.reason === "NotFound", () => Effect.void),
        Effect.mapError(Errors.fromKeyValueStore(operation))
      )

    const owners = yield* Owners.make({
      read: (operation, key) =>
        Effect.gen(function*() {
          for (let attempt = 1;; attempt++) {
            const raw = yield* Effect.mapError(backing.get(prefix + key), Errors.fromKeyValueStore(operation))
            if (Option.isNone(raw)) return new Map<string, Owners.Link>()
            const links = decodeLinks(raw.value)
            if (Option.isSome(links)) return links.value
            if (attempt === READ_ATTEMPTS) return yield* Effect.fail(Owners.malformed(operation))
            yield* yieldToEventLoop
          }
        }),
      write: (operation, key, links) =>
        links.size === 0 ? remove(operation, key) : Effect.mapError(
          backing.set(prefix + key, encodeLinks(links)),
          Errors.fromKeyValueStore(operation)
        )
    })

    const store: KeyValueStoreAdapter = {
      find: (key) =>
        Effect.gen(function*() {
          const entry = yield* read("find", key)
          const now = yield* Clock.currentTimeMillis
          if (entry === undefined || Envelope.isLive(entry, now)) return Envelope.liveEntry(entry, now)
          // Expired: nothing sweeps a KeyValueStore, so the read that finds it removes it.
          yield* mutex.withLock(key)(
            Effect.flatMap(
              read("find", key),
              (current) => current !== undefined && !Envelope.isLive(current, now) ? remove("find", key) : Effect.void
            )
          ).pipe(Effect.ignore)
          return Option.none()
        }),
      commit: (key, data, expiresAt, mode) =>
        mutex.withLock(key)(
          Effect.gen(function*() {
            if (mode === "update") {
              const current = yield* read("commit", key)
              if (!Envelope.isLive(current, yield* Clock.currentTimeMillis)) return "gone" as const
            }
            yield* Effect.mapError(
              backing.set(prefix + key, Envelope.encode(data, expiresAt)),
              Errors.fromKeyValueStore("commit")
            )
            return "written" as const
          })
        ),
      take: (key) =>
        mutex.withLock(key)(
          Effect.gen(function*() {
            const entry = Envelope.liveEntry(yield* read("take", key), yield* Clock.currentTimeMillis)
            if (Option.isSome(entry)) yield* remove("take", key)
            return entry
          })
        ),
      touch: (key, expiresAt) =>
        mutex.withLock(key)(
          Effect.gen(function*() {
            const current = yield* read("touch", key)
            if (!Envelope.isLive(current, yield* Clock.currentTimeMillis)) return "gone" as const
            yield* Effect.mapError(
              backing.set(prefix + key, Envelope.encode(current.data, expiresAt)),
              Errors.fromKeyValueStore("touch")
            )
            return "written" as const
          })
        ),
      delete: (key) => mutex.withLock(key)(remove("delete", key)),
      all: undefined,
      owners
    }
    return Telemetry.instrumentStore("key_value_store", store)
  })

/**
 * The adapter as the `SessionStore` and as `KeyValueStoreAdapter`, over the `KeyValueStore` the
 * layer is given, for example
 * `layer().pipe(Layer.provide(NodeKeyValueStore.layerFileSystem("./sessions")))`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options?: Options
): Layer.Layer<KeyValueStoreAdapter | SessionStore, never, KeyValueStore.KeyValueStore> =>
  provideBoth(KeyValueStoreAdapter, make(options))
