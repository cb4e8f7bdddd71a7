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
 * - **Update-if-present is check-then-set.** An `"update"` reads the entry and writes it only if
 *   it is still live. This store serialises the writes of each key in its own process, so that
 *   is atomic within one process; two processes sharing one backing store can race (a logout in
 *   one process may be overwritten by a late commit in the other). Use one process per store, or a
 *   store with atomic conditional writes (Redis, SQL, LMDB).
 * - **Torn reads.** The file-system layer writes a file in place, so a read racing a write can
 *   see half a file. Entries are stored as JSON, a torn read never parses, and it is read again
 *   (up to three times) before the entry counts as absent.
 *
 * @since 0.1.0
 */
import type * as PlatformError from "@effect/platform/Error"
import * as KeyValueStore from "@effect/platform/KeyValueStore"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as RcMap from "effect/RcMap"
import type * as Scope from "effect/Scope"
import { yieldToEventLoop } from "../internal/eventLoop.js"
import type * as SessionStore from "../SessionStore.js"
import { SessionStore as SessionStoreTag, SessionStoreError } from "../SessionStore.js"

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
 * A session store over a `KeyValueStore`: it cannot enumerate, and says so in its type.
 *
 * @since 0.1.0
 * @category models
 */
export interface KeyValueSessionStore extends SessionStore.SessionStore {
  readonly all: undefined
}

type Entry = readonly [expiresAt: number, data: string]

const decodeEntry = (raw: string): Entry | undefined => {
  try {
    const value: unknown = JSON.parse(raw)
    return Array.isArray(value) && value.length === 2 && typeof value[0] === "number" && typeof value[1] === "string"
      ? [value[0], value[1]]
      : undefined
  } catch {
    return undefined
  }
}

const READ_ATTEMPTS = 3

const errorFor =
  (operation: SessionStoreError["operation"]) => (cause: PlatformError.PlatformError): SessionStoreError =>
    new SessionStoreError({
      reason: cause._tag === "SystemError" && cause.reason === "TimedOut" ? "Timeout" : "Unknown",
      operation,
      cause,
      detail: cause.message
    })

/**
 * Makes the store over the `KeyValueStore` in context. Keys are prefixed here rather than with
 * `KeyValueStore.prefix`, which leaves some methods unprefixed in @effect/platform 0.97.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  options: Options = {}
): Effect.Effect<KeyValueSessionStore, never, KeyValueStore.KeyValueStore | Scope.Scope> =>
  Effect.gen(function*() {
    const backing = yield* KeyValueStore.KeyValueStore
    const prefix = options.prefix ?? "effect-session:"
    const locks = yield* RcMap.make({ lookup: (_key: string) => Effect.makeSemaphore(1) })
    const withKeyLock = <A, E>(key: string, effect: Effect.Effect<A, E>): Effect.Effect<A, E> =>
      Effect.scoped(Effect.flatMap(RcMap.get(locks, key), (lock) => lock.withPermits(1)(effect)))

    // The entry under `key`, or undefined when absent or unreadable after a few attempts.
    const read = (
      operation: SessionStoreError["operation"],
      key: string
    ): Effect.Effect<Entry | undefined, SessionStoreError> =>
      Effect.gen(function*() {
        for (let attempt = 1;; attempt++) {
          const raw = yield* Effect.mapError(backing.get(prefix + key), errorFor(operation))
          if (Option.isNone(raw)) return undefined
          const entry = decodeEntry(raw.value)
          if (entry !== undefined || attempt === READ_ATTEMPTS) return entry
          yield* yieldToEventLoop
        }
      })

    const remove = (operation: SessionStoreError["operation"], key: string) =>
      backing.remove(prefix + key).pipe(
        // The file-system layer fails on a missing file; a missing key is not an error here.
        Effect.catchIf((error) => error._tag === "SystemError" && error.reason === "NotFound", () => Effect.void),
        Effect.mapError(errorFor(operation))
      )

    const store: KeyValueSessionStore = {
      find: (key) =>
        Effect.gen(function*() {
          const entry = yield* read("find", key)
          const now = yield* Clock.currentTimeMillis
          if (entry === undefined) return Option.none()
          if (entry[0] > now) return Option.some(entry[1])
          // Expired: nothing sweeps a KeyValueStore, so the read that finds it removes it.
          yield* withKeyLock(
            key,
            Effect.flatMap(
              read("find", key),
              (current) => current !== undefined && current[0] <= now ? remove("find", key) : Effect.void
            )
          ).pipe(Effect.ignore)
          return Option.none()
        }),
      commit: (key, data, expiresAt, mode) =>
        withKeyLock(
          key,
          Effect.gen(function*() {
            if (mode === "update") {
              const current = yield* read("commit", key)
              const now = yield* Clock.currentTimeMillis
              if (current === undefined || current[0] <= now) return "gone" as const
            }
            const entry: Entry = [expiresAt, data]
            yield* Effect.mapError(backing.set(prefix + key, JSON.stringify(entry)), errorFor("commit"))
            return "written" as const
          })
        ),
      delete: (key) => withKeyLock(key, remove("delete", key)),
      all: undefined
    }
    return store
  })

/**
 * The adapter as the `SessionStore`, over the `KeyValueStore` the layer is given, for example
 * `layer().pipe(Layer.provide(NodeKeyValueStore.layerFileSystem("./sessions")))`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options?: Options): Layer.Layer<SessionStore.SessionStore, never, KeyValueStore.KeyValueStore> =>
  Layer.scoped(SessionStoreTag, make(options))
