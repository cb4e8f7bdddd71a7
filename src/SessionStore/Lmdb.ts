/**
 * The LMDB store (on `lmdb`, an optional peer dependency): sessions in one memory-mapped
 * B+tree on local disk, the Node counterpart of scs's boltstore. Survives restarts, needs no
 * server, and can be shared by several processes on the same machine (LMDB locks its writer
 * across processes).
 *
 * Each entry holds the payload and its expiry; a second database indexes the entries by expiry,
 * so the background sweep reads only what has expired. Every write is one LMDB transaction, so
 * an `"update"` or a `touch` that finds its entry deleted or expired writes nothing, and of
 * concurrent `take`s one at most gets the entry, even against another process.
 *
 * The owner index lives in two more databases of the same environment, shaped like the sessions:
 * one record per (owner, handle), and an index of those records by `until` for the sweep. Every
 * owner operation that writes is one LMDB transaction.
 *
 * @since 0.1.0
 */
import * as Chunk from "effect/Chunk"
import * as Clock from "effect/Clock"
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Lmdb from "lmdb"
import * as Envelope from "../internal/envelope.js"
import * as Errors from "../internal/errors.js"
import { yieldToEventLoop } from "../internal/eventLoop.js"
import * as InternalOptions from "../internal/options.js"
import { type Link, linkFromArray, linkKey, linkToArray, ownerPrefix } from "../internal/ownerLinks.js"
import { provideBoth } from "../internal/storeLayer.js"
import * as Sweeper from "../internal/sweeper.js"
import * as Telemetry from "../internal/telemetry.js"
import type { SessionConfigError } from "../SessionConfigError.js"
import type {
  CommitResult,
  LinkResult,
  OwnerIndex,
  OwnerLink,
  SessionStore,
  SessionStoreError,
  StoredSession
} from "../SessionStore.js"

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
   * Name of the LMDB sub-database holding the sessions (the expiry index is `${name}:expiry`, the
   * owner index `${name}:owners` and `${name}:owners:until`). Default `"effect-session"`. Lets
   * sessions share an environment with other data.
   */
  readonly name?: string | undefined
  /** How often expired entries are swept. Default `"1 minute"`; `0` disables the sweep. */
  readonly cleanupInterval?: Duration.DurationInput | undefined
  /** Expired entries deleted per sweep transaction before the event loop gets a turn. Default 1,000. */
  readonly sweepBatchSize?: number | undefined
  /** Entries read per page when enumerating (`all`, `SessionManager.iterate`). Default 1,000. */
  readonly pageSize?: number | undefined
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
export interface LmdbStore extends SessionStore {
  readonly all: Stream.Stream<StoredSession, SessionStoreError>
  readonly owners: OwnerIndex
  /** The path the database was opened at. */
  readonly path: string
  /** Entries physically held, expired ones included until they are swept. */
  readonly size: Effect.Effect<number, SessionStoreError>
  /** Deletes every expired entry now, in batches; returns how many it deleted. */
  readonly sweep: Effect.Effect<number, SessionStoreError>
}

/**
 * The LMDB store built by `layer` or `layerConfig`, with its `size` and `sweep`.
 *
 * @since 0.2.0
 * @category tags
 */
export const LmdbStore: Context.Tag<LmdbStore, LmdbStore> = Context.GenericTag<LmdbStore>(
  "effect-session/SessionStore/Lmdb"
)

type IndexKey = [expiresAt: number, key: string]

const EMPTY = new Uint8Array(0)

// Owner links, laid out as in `ownerLinks.ts` (records keyed `<owner length>:<owner>:<handle>`,
// values `[until, key]`); a record's `until` index key is `<until, 16 digits>:<record key>`. Keys are stored as plain UTF-8 (binary keys): `lmdb`'s
// default key encoding escapes control characters differently in short and long strings, which
// would break the prefix ranges.
const EXPIRY_DIGITS = 16
const padExpiry = (expiresAt: number): string =>
  String(Math.min(Envelope.storedExpiry(expiresAt), 10 ** EXPIRY_DIGITS - 1)).padStart(EXPIRY_DIGITS, "0")
const untilKey = (link: string, until: number): string => `${padExpiry(until)}:${link}`
const utf8Encoder = new TextEncoder()
const utf8Decoder = new TextDecoder()
const bytes = (key: string): Uint8Array => utf8Encoder.encode(key)

/**
 * Opens the database and makes the store. The database is closed, and the sweep fiber stopped,
 * when the scope closes.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options): Effect.Effect<LmdbStore, SessionStoreError | SessionConfigError, Scope.Scope> =>
  Effect.gen(function*() {
    const name = options.name ?? "effect-session"
    const sweepBatchSize = yield* InternalOptions.positiveInteger("sweepBatchSize", options.sweepBatchSize, 1_000)
    const pageSize = yield* InternalOptions.positiveInteger("pageSize", options.pageSize, 1_000)
    const interval = yield* InternalOptions.duration("cleanupInterval", options.cleanupInterval, "1 minute", {
      allowZero: true
    })

    const root = yield* Effect.acquireRelease(
      Effect.try({
        try: () => Lmdb.open({ ...options.lmdb, path: options.path }),
        catch: Errors.fromLmdb("open")
      }),
      (root) => Effect.promise(() => root.close())
    )
    const { entries, index, links, linkIndex } = yield* Effect.try({
      try: () => ({
        entries: root.openDB<string, string>({ name, encoding: "msgpack" }),
        index: root.openDB<Uint8Array, IndexKey>({ name: `${name}:expiry`, encoding: "binary" }),
        links: root.openDB<unknown, Uint8Array>({ name: `${name}:owners`, keyEncoding: "binary", encoding: "json" }),
        linkIndex: root.openDB<Uint8Array, Uint8Array>({
          name: `${name}:owners:until`,
          keyEncoding: "binary",
          encoding: "binary"
        })
      }),
      catch: Errors.fromLmdb("open")
    })

    // Runs `body` inside one write transaction: atomic against this and every other process.
    const transaction = <A>(
      operation: SessionStoreError["operation"],
      body: () => A
    ): Effect.Effect<A, SessionStoreError> =>
      Effect.tryPromise({ try: () => root.transaction(body), catch: Errors.fromLmdb(operation) })

    // Replaces the entry and its index key; called only inside a write transaction.
    const write = (key: string, previous: Envelope.Envelope | undefined, data: string, expiresAt: number): void => {
      if (previous !== undefined) index.remove([previous.expiresAt, key])
      entries.put(key, Envelope.encode(data, expiresAt))
      index.put([Envelope.storedExpiry(expiresAt), key], EMPTY)
    }

    const remove = (key: string, previous: Envelope.Envelope | undefined): void => {
      if (previous !== undefined) index.remove([previous.expiresAt, key])
      entries.remove(key)
    }

    // The owner-index counterparts of `write` and `remove`, with the same rule.
    const readLink = (link: string): Link | undefined => linkFromArray(links.get(bytes(link)))

    const writeLink = (link: string, previous: Link | undefined, next: Link): void => {
      if (previous !== undefined) linkIndex.remove(bytes(untilKey(link, previous.until)))
      links.put(bytes(link), linkToArray(next))
      linkIndex.put(bytes(untilKey(link, next.until)), EMPTY)
    }

    const removeLink = (link: string, previous: Link): void => {
      linkIndex.remove(bytes(untilKey(link, previous.until)))
      links.remove(bytes(link))
    }

    // The owner's records not past their `until`, by handle: one range read.
    const linksOf = (owner: string, now: number): Array<{ readonly handle: string; readonly link: Link }> => {
      const prefix = ownerPrefix(owner)
      const found: Array<{ readonly handle: string; readonly link: Link }> = []
      for (const { key, value } of links.getRange({ start: bytes(prefix), end: bytes(`${prefix.slice(0, -1)};`) })) {
        const link = linkFromArray(value)
        if (link !== undefined && link.until > now) {
          found.push({ handle: utf8Decoder.decode(key).slice(prefix.length), link })
        }
      }
      return found
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
          const current = Envelope.decode(entries.get(key))
          index.remove(indexKey)
          if (current !== undefined && current.expiresAt === expiresAt) {
            entries.remove(key)
            deleted++
          }
        }
        return { deleted, more: due.length === sweepBatchSize }
      })

    // Drops the owner records past their `until`, found through their index. The due keys are read
    // first, outside the write transaction: a sweep with nothing due commits no transaction. A key
    // read there may be gone by the time the transaction runs; its record is checked in it.
    const sweepLinksBatch = (
      now: number
    ): Effect.Effect<{ readonly deleted: number; readonly more: boolean }, SessionStoreError> =>
      Effect.flatMap(
        Effect.try({
          try: () =>
            Array.from(
              linkIndex.getKeys({ end: bytes(padExpiry(now + 1)), limit: sweepBatchSize }),
              (key) => utf8Decoder.decode(key)
            ),
          catch: Errors.fromLmdb("sweep")
        }),
        (due) => due.length === 0 ? Effect.succeed({ deleted: 0, more: false }) : sweepLinks(due, now)
      )

    const sweepLinks = (due: ReadonlyArray<string>, now: number) =>
      transaction("sweep", () => {
        let deleted = 0
        for (const dueKey of due) {
          const link = dueKey.slice(EXPIRY_DIGITS + 1)
          const current = readLink(link)
          linkIndex.remove(bytes(dueKey))
          // A record written again since has another `until` and index key: it stays.
          if (current !== undefined && current.until <= now && untilKey(link, current.until) === dueKey) {
            links.remove(bytes(link))
            deleted++
          }
        }
        return { deleted, more: due.length === sweepBatchSize }
      })

    // Runs batches until one says there is no more, giving the event loop a turn between them.
    const drain = (
      batch: Effect.Effect<{ readonly deleted: number; readonly more: boolean }, SessionStoreError>
    ): Effect.Effect<number, SessionStoreError> =>
      Effect.gen(function*() {
        let deleted = 0
        while (true) {
          const result = yield* batch
          deleted += result.deleted
          if (!result.more) return deleted
          yield* yieldToEventLoop
        }
      })

    // Counts the sessions it deleted; owner records go along uncounted.
    const sweep: Effect.Effect<number, SessionStoreError> = yield* Sweeper.observe(
      "lmdb",
      Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        const deleted = yield* drain(sweepBatch(now))
        yield* drain(sweepLinksBatch(now))
        return deleted
      })
    )

    const owners: OwnerIndex = {
      link: (owner, handle, key, until) =>
        Effect.flatMap(Clock.currentTimeMillis, (now) =>
          transaction("link", (): LinkResult => {
            const link = linkKey(owner, handle)
            const previous = readLink(link)
            if (previous !== undefined && previous.until > now && previous.key === null) return "revoked"
            writeLink(link, previous, { key, until })
            return "linked"
          })),
      // One range read: LMDB reads from a snapshot, so it sees each transaction whole or not at all.
      list: (owner) =>
        Effect.flatMap(Clock.currentTimeMillis, (now) =>
          Effect.try({
            try: () =>
              linksOf(owner, now).flatMap(({ handle, link }): Array<OwnerLink> =>
                link.key === null ? [] : [{ handle, key: link.key }]
              ),
            catch: Errors.fromLmdb("list")
          })),
      revoke: (owner, handles, except) =>
        Effect.flatMap(Clock.currentTimeMillis, (now) =>
          transaction("revoke", () => {
            const candidates = handles === "all"
              ? linksOf(owner, now)
              : Array.from(new Set(handles), (handle) => ({ handle, link: readLink(linkKey(owner, handle)) }))
            const keys: Array<string> = []
            for (const { handle, link } of candidates) {
              if (link === undefined || link.until <= now || link.key === null || handle === except) continue
              keys.push(link.key)
              // Same `until`, so the index key stays as it is.
              links.put(bytes(linkKey(owner, handle)), linkToArray({ key: null, until: link.until }))
            }
            return keys
          })),
      unlink: (owner, handle, key) =>
        transaction("unlink", () => {
          const link = linkKey(owner, handle)
          const previous = readLink(link)
          if (previous !== undefined && previous.key === key) removeLink(link, previous)
        })
    }

    yield* Sweeper.start("LMDB store", interval, sweep)

    const page = (cursor: string | undefined, now: number) =>
      Effect.try({
        try: () => {
          const raw = Array.from(entries.getRange(
            cursor === undefined
              ? { limit: pageSize + 1, snapshot: false }
              : { start: cursor, limit: pageSize + 1, snapshot: false }
          ))
          const fresh = cursor === undefined ? raw : raw.filter((entry) => entry.key !== cursor)
          const live: Array<StoredSession> = []
          for (const { key, value } of fresh) {
            const entry = Envelope.decode(value)
            if (Envelope.isLive(entry, now)) live.push({ key, data: entry.data, expiresAt: entry.expiresAt })
          }
          const last = raw.length > 0 ? raw[raw.length - 1].key : undefined
          return { live, next: raw.length <= pageSize || last === undefined ? undefined : last }
        },
        catch: Errors.fromLmdb("all")
      })

    const store: LmdbStore = {
      path: options.path,
      find: (key) =>
        Effect.flatMap(Clock.currentTimeMillis, (now) =>
          Effect.try({
            try: () => Envelope.liveEntry(Envelope.decode(entries.get(key)), now),
            catch: Errors.fromLmdb("find")
          })),
      commit: (key, data, expiresAt, mode) =>
        Effect.flatMap(Clock.currentTimeMillis, (now) =>
          transaction("commit", (): CommitResult => {
            const previous = Envelope.decode(entries.get(key))
            if (mode === "update" && !Envelope.isLive(previous, now)) return "gone"
            write(key, previous, data, expiresAt)
            return "written"
          })),
      take: (key) =>
        Effect.flatMap(Clock.currentTimeMillis, (now) =>
          transaction("take", () => {
            const previous = Envelope.decode(entries.get(key))
            const live = Envelope.liveEntry(previous, now)
            if (Option.isSome(live)) remove(key, previous)
            return live
          })),
      touch: (key, expiresAt) =>
        Effect.flatMap(Clock.currentTimeMillis, (now) =>
          transaction("touch", (): CommitResult => {
            const previous = Envelope.decode(entries.get(key))
            if (!Envelope.isLive(previous, now)) return "gone"
            write(key, previous, previous.data, expiresAt)
            return "written"
          })),
      delete: (key) =>
        transaction("delete", () => {
          remove(key, Envelope.decode(entries.get(key)))
        }),
      owners,
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
      size: Effect.try({ try: () => entries.getKeysCount(), catch: Errors.fromLmdb("all") }),
      sweep
    }
    return Telemetry.instrumentStore("lmdb", store)
  })

/**
 * The LMDB store as the `SessionStore` and as `LmdbStore`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options: Options
): Layer.Layer<LmdbStore | SessionStore, SessionStoreError | SessionConfigError> =>
  provideBoth(LmdbStore, make(options))

/**
 * The LMDB store, configured from `Config` (for example `Config.string("SESSION_DB_PATH")`).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (
  options: Config.Config.Wrap<Omit<Options, "lmdb">>
): Layer.Layer<LmdbStore | SessionStore, SessionStoreError | SessionConfigError | ConfigError.ConfigError> =>
  Layer.unwrapEffect(Effect.map(Config.unwrap(options), layer))
