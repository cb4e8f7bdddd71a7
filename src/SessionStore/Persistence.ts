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
 * - **No compare-and-set.** An `"update"` reads the entry and writes it only if it is still live.
 *   This store serialises the writes of each key in its own process, so that is atomic within one
 *   process; processes sharing one backing store (Redis, or an LMDB file) can race, and a late
 *   commit in one may re-create a session another just logged out. The dedicated stores
 *   (`SessionStore/Redis`, `SessionStore/Lmdb`) write conditionally and have no such race.
 *
 * @since 0.1.0
 */
import * as Persistence from "@effect/experimental/Persistence"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as RcMap from "effect/RcMap"
import type * as Scope from "effect/Scope"
import type * as SessionStore from "../SessionStore.js"
import { SessionStore as SessionStoreTag, SessionStoreError } from "../SessionStore.js"

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
 * A session store over a `BackingPersistence`: it cannot enumerate, and says so in its type.
 *
 * @since 0.1.0
 * @category models
 */
export interface PersistenceSessionStore extends SessionStore.SessionStore {
  readonly all: undefined
}

type Entry = readonly [expiresAt: number, data: string]

const decodeEntry = (value: unknown): Entry | undefined =>
  Array.isArray(value) && value.length === 2 && typeof value[0] === "number" && typeof value[1] === "string"
    ? [value[0], value[1]]
    : undefined

const FLUSH_KEY = "effect-session:flush"

const UNAVAILABLE = /ECONNREFUSED|ECONNRESET|EPIPE|ETIMEDOUT|closed/i

const errorFor =
  (operation: SessionStoreError["operation"]) => (error: Persistence.PersistenceError): SessionStoreError => {
    const cause: unknown = error.reason === "BackingError" ? error.cause : error
    const detail = cause instanceof Error ? cause.message : error.message
    return new SessionStoreError({
      reason:
        UNAVAILABLE.test(detail) || (cause instanceof Error && "code" in cause && UNAVAILABLE.test(String(cause.code)))
          ? "Unavailable"
          : "Unknown",
      operation,
      cause: error,
      detail
    })
  }

/**
 * Makes the store over the `BackingPersistence` in context. The backing store is opened for
 * `storeId` in the scope and released with it.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  options: Options = {}
): Effect.Effect<PersistenceSessionStore, never, Persistence.BackingPersistence | Scope.Scope> =>
  Effect.gen(function*() {
    const backing = yield* Persistence.BackingPersistence
    const persistence = yield* backing.make(options.storeId ?? "effect-session")
    // Runs before the backing store is released. The LMDB backing removes an expired entry it
    // reads without awaiting the write, and closing its database with that write pending makes
    // the write fail and the close hang (@effect/experimental 0.61). Writes commit in order, so
    // awaiting one more removal (of a key no token can have) lets the pending ones finish first.
    yield* Effect.addFinalizer(() => Effect.ignore(persistence.remove(FLUSH_KEY)))
    const locks = yield* RcMap.make({ lookup: (_key: string) => Effect.makeSemaphore(1) })
    const withKeyLock = <A, E>(key: string, effect: Effect.Effect<A, E>): Effect.Effect<A, E> =>
      Effect.scoped(Effect.flatMap(RcMap.get(locks, key), (lock) => lock.withPermits(1)(effect)))

    const read = (operation: SessionStoreError["operation"], key: string) =>
      Effect.zipWith(
        Effect.mapError(persistence.get(key), errorFor(operation)),
        Clock.currentTimeMillis,
        (value, now) =>
          Option.flatMap(value, (raw) => {
            const entry = decodeEntry(raw)
            return entry === undefined || entry[0] <= now ? Option.none() : Option.some(entry)
          })
      )

    const store: PersistenceSessionStore = {
      find: (key) => Effect.map(read("find", key), Option.map((entry) => entry[1])),
      commit: (key, data, expiresAt, mode) =>
        withKeyLock(
          key,
          Effect.gen(function*() {
            if (mode === "update" && Option.isNone(yield* read("commit", key))) return "gone" as const
            const timeToLive = expiresAt - (yield* Clock.currentTimeMillis)
            // Already expired: storing it would only leave garbage (and Redis rejects a zero TTL).
            yield* (timeToLive <= 0
              ? persistence.remove(key)
              : persistence.set(key, [expiresAt, data] satisfies Entry, Option.some(Duration.millis(timeToLive))))
              .pipe(Effect.mapError(errorFor("commit")))
            return "written" as const
          })
        ),
      delete: (key) => withKeyLock(key, Effect.mapError(persistence.remove(key), errorFor("delete"))),
      all: undefined
    }
    return store
  })

/**
 * The adapter as the `SessionStore`, over the `BackingPersistence` the layer is given, for example
 * `layer().pipe(Layer.provide(PersistenceLmdb.layer({ path: "./sessions" })))`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options?: Options
): Layer.Layer<SessionStore.SessionStore, never, Persistence.BackingPersistence> =>
  Layer.scoped(SessionStoreTag, make(options))
