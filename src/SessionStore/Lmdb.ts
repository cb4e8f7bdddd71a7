/**
 * The LMDB store (on `lmdb`, an optional peer dependency): sessions in one memory-mapped
 * B+tree on local disk, the Node counterpart of scs's boltstore. Survives restarts, needs no
 * server, and can be shared by several processes on the same machine (LMDB locks its writer
 * across processes).
 *
 * Each entry holds the payload and its expiry; a second database indexes the entries by expiry,
 * so the background sweep reads only what has expired. Every write is one LMDB transaction, so
 * an `"update"` that finds its entry deleted or expired writes nothing, even against another
 * process.
 *
 * @since 0.1.0
 */
import * as Chunk from "effect/Chunk"
import * as Clock from "effect/Clock"
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Lmdb from "lmdb"
import { yieldToEventLoop } from "../internal/eventLoop.js"
import type * as SessionStore from "../SessionStore.js"
import { SessionStore as SessionStoreTag, SessionStoreError } from "../SessionStore.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /**
   * Where the database lives, as `lmdb`'s `open({ path })` takes it: a directory (created if
   * missing) holding `data.mdb` and `lock.mdb`, or a file name when the path ends with an extension.
   */
  readonly path: string
  /**
   * Name of the LMDB sub-database holding the sessions (the expiry index is `${name}:expiry`).
   * Default `"effect-session"`. Lets sessions share an environment with other data.
   */
  readonly name?: string | undefined
  /** How often expired entries are swept. Default `"1 minute"`; `0` disables the sweep. */
  readonly cleanupInterval?: Duration.DurationInput | undefined
  /** Expired entries deleted per sweep transaction before the event loop gets a turn. Default 1,000. */
  readonly sweepBatchSize?: number | undefined
  /** Entries read per page when enumerating (`all`, `SessionManager.iterate`). Default 1,000. */
  readonly iterateBatchSize?: number | undefined
  /**
   * Further options for `lmdb`'s `open` (for example `mapSize`, `noSync`, `compression`,
   * `maxDbs`). The defaults (synced, crash-proof commits) suit sessions.
   */
  readonly lmdb?: Omit<Lmdb.RootDatabaseOptions, "path"> | undefined
}

/**
 * The LMDB store, with what it offers besides the contract.
 *
 * @since 0.1.0
 * @category models
 */
export interface LmdbStore extends SessionStore.SessionStore {
  readonly all: Stream.Stream<SessionStore.StoredSession, SessionStoreError>
  /** The path the database was opened at. */
  readonly path: string
  /** Entries physically held, expired ones included until they are swept. */
  readonly size: Effect.Effect<number, SessionStoreError>
  /** Deletes every expired entry now, in batches; returns how many it deleted. */
  readonly sweep: Effect.Effect<number, SessionStoreError>
}

type Value = readonly [expiresAt: number, data: string]
type IndexKey = [expiresAt: number, key: string]

// Anything else under a key (written by another program) counts as absent.
const decodeValue = (value: unknown): Value | undefined =>
  Array.isArray(value) && value.length === 2 && typeof value[0] === "number" && typeof value[1] === "string"
    ? [value[0], value[1]]
    : undefined

const EMPTY = new Uint8Array(0)

const errorFor = (operation: SessionStoreError["operation"]) => (cause: unknown): SessionStoreError => {
  const detail = cause instanceof Error ? cause.message : String(cause)
  return new SessionStoreError({
    reason: operation === "open" || /closed/i.test(detail) ? "Unavailable" : "Unknown",
    operation,
    cause,
    detail
  })
}

/**
 * Opens the database and makes the store. The database is closed, and the sweep fiber stopped,
 * when the scope closes.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options): Effect.Effect<LmdbStore, SessionStoreError, Scope.Scope> =>
  Effect.gen(function*() {
    const name = options.name ?? "effect-session"
    const sweepBatchSize = Math.max(1, options.sweepBatchSize ?? 1_000)
    const iterateBatchSize = Math.max(1, options.iterateBatchSize ?? 1_000)
    const interval = Duration.decode(options.cleanupInterval ?? "1 minute")

    const root = yield* Effect.acquireRelease(
      Effect.try({
        try: () => Lmdb.open({ ...options.lmdb, path: options.path }),
        catch: errorFor("open")
      }),
      (root) => Effect.promise(() => root.close())
    )
    const { entries, index } = yield* Effect.try({
      try: () => ({
        entries: root.openDB<Value, string>({ name, encoding: "msgpack" }),
        index: root.openDB<Uint8Array, IndexKey>({ name: `${name}:expiry`, encoding: "binary" })
      }),
      catch: errorFor("open")
    })

    // Runs `body` inside one write transaction: atomic against this and every other process.
    const transaction = <A>(
      operation: SessionStoreError["operation"],
      body: () => A
    ): Effect.Effect<A, SessionStoreError> =>
      Effect.tryPromise({ try: () => root.transaction(body), catch: errorFor(operation) })

    // Replaces the entry and its index key; called only inside a write transaction.
    const write = (key: string, previous: Value | undefined, data: string, expiresAt: number): void => {
      if (previous !== undefined) index.remove([previous[0], key])
      entries.put(key, [expiresAt, data])
      index.put([expiresAt, key], EMPTY)
    }

    const remove = (key: string, previous: Value | undefined): void => {
      if (previous !== undefined) index.remove([previous[0], key])
      entries.remove(key)
    }

    const sweepBatch = (
      now: number
    ): Effect.Effect<{ readonly deleted: number; readonly more: boolean }, SessionStoreError> =>
      transaction("sweep", () => {
        const due: Array<IndexKey> = []
        for (const indexKey of index.getKeys({ limit: sweepBatchSize })) {
          if (indexKey[0] > now) break
          due.push(indexKey)
        }
        let deleted = 0
        for (const indexKey of due) {
          const [expiresAt, key] = indexKey
          const current = decodeValue(entries.get(key))
          index.remove(indexKey)
          if (current !== undefined && current[0] === expiresAt) {
            entries.remove(key)
            deleted++
          }
        }
        return { deleted, more: due.length === sweepBatchSize }
      })

    const sweep: Effect.Effect<number, SessionStoreError> = Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      let deleted = 0
      while (true) {
        const batch = yield* sweepBatch(now)
        deleted += batch.deleted
        if (!batch.more) return deleted
        yield* yieldToEventLoop
      }
    })

    if (Duration.greaterThan(interval, Duration.zero)) {
      yield* Effect.sleep(interval).pipe(
        Effect.zipRight(sweep),
        // A failed sweep is retried at the next interval; it must not stop the schedule.
        Effect.catchAll((error) => Effect.logWarning("effect-session: LMDB sweep failed", error)),
        Effect.forever,
        Effect.forkScoped
      )
    }

    const page = (cursor: string | undefined, now: number) =>
      Effect.try({
        try: () => {
          const raw = Array.from(entries.getRange(
            cursor === undefined
              ? { limit: iterateBatchSize + 1, snapshot: false }
              : { start: cursor, limit: iterateBatchSize + 1, snapshot: false }
          ))
          const fresh = cursor === undefined ? raw : raw.filter((entry) => entry.key !== cursor)
          const live: Array<SessionStore.StoredSession> = []
          for (const { key, value } of fresh) {
            const decoded = decodeValue(value)
            if (decoded !== undefined && decoded[0] > now) live.push({ key, data: decoded[1], expiresAt: decoded[0] })
          }
          const last = raw.length > 0 ? raw[raw.length - 1].key : undefined
          return { live, next: raw.length <= iterateBatchSize || last === undefined ? undefined : last }
        },
        catch: errorFor("all")
      })

    const store: LmdbStore = {
      path: options.path,
      find: (key) =>
        Effect.flatMap(Clock.currentTimeMillis, (now) =>
          Effect.try({
            try: () => {
              const value = decodeValue(entries.get(key))
              return value === undefined || value[0] <= now ? Option.none() : Option.some(value[1])
            },
            catch: errorFor("find")
          })),
      commit: (key, data, expiresAt, mode) =>
        Effect.flatMap(Clock.currentTimeMillis, (now) =>
          transaction("commit", (): SessionStore.CommitResult => {
            const previous = decodeValue(entries.get(key))
            if (mode === "update" && (previous === undefined || previous[0] <= now)) return "gone"
            write(key, previous, data, expiresAt)
            return "written"
          })),
      delete: (key) =>
        transaction("delete", () => {
          remove(key, decodeValue(entries.get(key)))
        }),
      all: Stream.unwrap(
        Effect.map(
          Clock.currentTimeMillis,
          (now) =>
            Stream.paginateChunkEffect(
              undefined as string | undefined,
              (cursor) =>
                Effect.map(page(cursor, now), ({ live, next }) =>
                  [
                    Chunk.unsafeFromArray(live),
                    next === undefined ? Option.none() : Option.some(next)
                  ] as const)
            )
        )
      ),
      size: Effect.try({ try: () => entries.getKeysCount(), catch: errorFor("all") }),
      sweep
    }
    return store
  })

/**
 * The LMDB store as the `SessionStore`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options): Layer.Layer<SessionStore.SessionStore, SessionStoreError> =>
  Layer.scoped(SessionStoreTag, make(options))

/**
 * The LMDB store, configured from `Config` (for example `Config.string("SESSION_DB_PATH")`).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (
  options: Config.Config.Wrap<Omit<Options, "lmdb">>
): Layer.Layer<SessionStore.SessionStore, SessionStoreError | ConfigError.ConfigError> =>
  Layer.scoped(SessionStoreTag, Effect.flatMap(Config.unwrap(options), make))
