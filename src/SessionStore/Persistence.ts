/**
 * An adapter that keeps sessions in an `@effect/experimental` `Persistence` backing store
 * (`BackingPersistence`): its memory layer (`Persistence.layerMemory`), LMDB
 * (`@effect/experimental/Persistence/Lmdb`), Redis through ioredis
 * (`@effect/experimental/Persistence/Redis`), or any other implementation.
 *
 * Each entry is written with a time-to-live, so the backing store expires it by itself (Redis
 * deletes it; the memory and LMDB backings drop it when it is read after its expiry). The expiry
 * is also stored with the payload and checked on every read with `Clock`.
 *
 * What a `BackingPersistence` cannot do, this store cannot do either:
 *
 * - **No enumeration.** `all` is `undefined` (in the type, too) and `SessionManager.iterate`
 *   fails with `SessionStoreError` reason `Unsupported`.
 * - **No sweep.** Nothing here sweeps. Redis expires keys itself; the memory and LMDB backings
 *   keep an expired entry until it is read or overwritten.
 * - **No compare-and-set.** An `"update"` and a `touch` read the entry and write it only if it is
 *   still live; a `take` reads it and removes it; an owner index method reads the owner's value
 *   and writes it back. This store serialises these (and `delete`) per key, and per owner, in its
 *   own process, so each is atomic within one process; processes sharing one backing store
 *   (Redis, or an LMDB file) can race, and a late commit in one may re-create a session another
 *   just logged out (or both may take one session, or a link may undo a revocation). The
 *   dedicated stores (`SessionStore/Redis`, `SessionStore/Lmdb`) write conditionally and have no
 *   such race.
 *
 * **The owner index** keeps one value per owner under `owner:` and base64url(SHA-256(owner id))
 * (no session key, being base64url, has a colon): `[[handle, { key, until }], ...]`, with
 * `key: null` for a revoked handle (a tombstone), stored as is for the backing store to
 * serialise. Each write gives the value a time-to-live up to the largest `until` in it, so it
 * never expires before a link or tombstone it holds; links and tombstones past their `until` are
 * skipped on reads and dropped when the value is rewritten. A value that does not decode fails the
 * owner's operations with `SessionStoreError` (reason `Unknown`) and is left as it is: read as
 * empty, a revocation would miss sessions; overwritten, its links and tombstones would be lost.
 *
 * @since 0.1.0
 */
import * as Persistence from "@effect/experimental/Persistence"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Envelope from "../internal/envelope.js"
import * as Errors from "../internal/errors.js"
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
   * The id of the store inside the backing persistence (a key prefix for Redis, a sub-database
   * for LMDB). Default `"effect-session"`.
   */
  readonly storeId?: string | undefined
}

/**
 * A session store over a `BackingPersistence`: it cannot enumerate, and says so in its type; it keeps an owner index.
 *
 * @since 0.2.0
 * @category models
 */
export interface PersistenceAdapter extends SessionStore {
  readonly all: undefined
  readonly owners: OwnerIndex
}

/**
 * The adapter built by `layer`.
 *
 * @since 0.2.0
 * @category tags
 */
export const PersistenceAdapter: Context.Tag<PersistenceAdapter, PersistenceAdapter> = Context.GenericTag<
  PersistenceAdapter
>("effect-session/SessionStore/Persistence")

const FLUSH_KEY = "effect-session:flush"

const decodeLinks = Schema.decodeUnknownOption(Owners.Links)
const encodeLinks = Schema.encodeSync(Owners.Links)

/**
 * Makes the store over the `BackingPersistence` in context. The backing store is opened for
 * `storeId` in the scope and released with it.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  options: Options = {}
): Effect.Effect<PersistenceAdapter, never, Persistence.BackingPersistence | Scope.Scope> =>
  Effect.gen(function*() {
    const backing = yield* Persistence.BackingPersistence
    const persistence = yield* backing.make(options.storeId ?? "effect-session")
    // Runs before the backing store is released. The LMDB backing removes an expired entry it
    // reads without awaiting the write, and closing its database with that write pending makes
    // the write fail and the close hang (@effect/experimental 0.61). Writes commit in order, so
    // awaiting one more removal (of a key no token can have) lets the pending ones finish first.
    yield* Effect.addFinalizer(() => Effect.ignore(persistence.remove(FLUSH_KEY)))
    const mutex = yield* KeyedMutex.make()

    const read = (operation: SessionStoreError["operation"], key: string) =>
      Effect.zipWith(
        Effect.mapError(persistence.get(key), Errors.fromPersistence(operation)),
        Clock.currentTimeMillis,
        (value, now) => Option.flatMap(value, (raw) => Envelope.liveEntry(Envelope.decode(raw), now))
      )

    // Writes `data` until `expiresAt` with the matching time-to-live.
    const write = (operation: SessionStoreError["operation"], key: string, data: string, expiresAt: number) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) => {
        const timeToLive = expiresAt - now
        // Already expired: storing it would only leave garbage (and Redis rejects a zero TTL).
        return (timeToLive <= 0
          ? persistence.remove(key)
          : persistence.set(key, Envelope.encode(data, expiresAt), Option.some(Duration.millis(timeToLive))))
          .pipe(Effect.mapError(Errors.fromPersistence(operation)))
      })

    const owners = yield* Owners.make({
      read: (operation, key) =>
        Effect.gen(function*() {
          const raw = yield* Effect.mapError(persistence.get(key), Errors.fromPersistence(operation))
          if (Option.isNone(raw)) return new Map<string, Owners.Link>()
          const links = decodeLinks(raw.value)
          return Option.isSome(links) ? links.value : yield* Effect.fail(Owners.malformed(operation))
        }),
      // Up to the largest `until`: the value outlives every link and tombstone it holds.
      write: (operation, key, links) =>
        Effect.flatMap(Clock.currentTimeMillis, (now) => {
          const timeToLive = Math.max(0, ...Array.from(links.values(), (link) => link.until)) - now
          return (timeToLive <= 0
            ? persistence.remove(key)
            : persistence.set(key, encodeLinks(links), Option.some(Duration.millis(timeToLive))))
            .pipe(Effect.mapError(Errors.fromPersistence(operation)))
        })
    })

    const store: PersistenceAdapter = {
      find: (key) => read("find", key),
      commit: (key, data, expiresAt, mode) =>
        mutex.withLock(key)(
          Effect.gen(function*() {
            if (mode === "update" && Option.isNone(yield* read("commit", key))) return "gone" as const
            yield* write("commit", key, data, expiresAt)
            return "written" as const
          })
        ),
      take: (key) =>
        mutex.withLock(key)(
          Effect.gen(function*() {
            const entry = yield* read("take", key)
            if (Option.isSome(entry)) {
              yield* Effect.mapError(persistence.remove(key), Errors.fromPersistence("take"))
            }
            return entry
          })
        ),
      touch: (key, expiresAt) =>
        mutex.withLock(key)(
          Effect.gen(function*() {
            const current = yield* read("touch", key)
            if (Option.isNone(current)) return "gone" as const
            yield* write("touch", key, current.value.data, expiresAt)
            return "written" as const
          })
        ),
      delete: (key) => mutex.withLock(key)(Effect.mapError(persistence.remove(key), Errors.fromPersistence("delete"))),
      all: undefined,
      owners
    }
    return Telemetry.instrumentStore("persistence", store)
  })

/**
 * The adapter as the `SessionStore` and as `PersistenceAdapter`, over the `BackingPersistence`
 * the layer is given, for example
 * `layer().pipe(Layer.provide(PersistenceLmdb.layer({ path: "./sessions" })))`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options?: Options
): Layer.Layer<PersistenceAdapter | SessionStore, never, Persistence.BackingPersistence> =>
  provideBoth(PersistenceAdapter, make(options))
