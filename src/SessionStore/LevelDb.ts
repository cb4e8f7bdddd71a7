/**
 * The LevelDB store (on `classic-level`, an optional peer dependency): sessions in an LSM tree
 * in a local directory, the Node counterpart of scs's badgerstore. Survives restarts and needs
 * no server.
 *
 * LevelDB allows one process per database (it holds a `LOCK` file; a second process fails to
 * open it) and has no conditional write. This store is therefore the only writer, and it
 * serialises the writes of each key in process: an `"update"`, a `take` and a `touch` read and
 * write their key under that key's lock, so a session deleted or expired meanwhile is never
 * re-created and one `take` at most gets an entry. Every write is one atomic LevelDB batch of
 * the entry and its expiry index key, so the background sweep reads only what has expired.
 *
 * The owner index lives in two more sublevels of the same database, shaped like the sessions:
 * one record per (owner, handle), and an index of those records by `until` for the sweep. Owner
 * operations are serialised per owner in process, each writing one batch.
 *
 * @since 0.1.0
 */
import { ClassicLevel } from "classic-level"
import type * as Level from "classic-level"
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
import * as Envelope from "../internal/envelope.js"
import * as Errors from "../internal/errors.js"
import { yieldToEventLoop } from "../internal/eventLoop.js"
import * as KeyedMutex from "../internal/keyedMutex.js"
import * as InternalOptions from "../internal/options.js"
import { type Link, linkFromArray, linkKey, linkToArray, ownerPrefix } from "../internal/ownerLinks.js"
import { provideBoth } from "../internal/storeLayer.js"
import * as Sweeper from "../internal/sweeper.js"
import * as Telemetry from "../internal/telemetry.js"
import type { SessionConfigError } from "../SessionConfigError.js"
import type { OwnerIndex, OwnerLink, SessionStore, SessionStoreError, StoredSession } from "../SessionStore.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** The database directory (created if missing). One process at a time may open it. */
  readonly path: string
  /** How often expired entries are swept. Default `"1 minute"`; `0` disables the sweep. */
  readonly cleanupInterval?: Duration.DurationInput | undefined
  /** Expired entries deleted per sweep batch before the event loop gets a turn. Default 1,000. */
  readonly sweepBatchSize?: number | undefined
  /** Entries read per page when enumerating (`all`, `SessionManager.iterate`). Default 1,000. */
  readonly pageSize?: number | undefined
  /**
   * Whether each write waits for `fsync`. Default `false`: a write survives a crash of the
   * process (it is in the operating system's buffers) but not of the machine.
   */
  readonly sync?: boolean | undefined
  /** Further options for `classic-level` (for example `cacheSize`, `compression`, `writeBufferSize`). */
  readonly leveldb?: Omit<Level.DatabaseOptions<string, string>, "keyEncoding" | "valueEncoding"> | undefined
}

/**
 * The LevelDB store, with what it offers besides the contract.
 *
 * @since 0.1.0
 * @category models
 */
export interface LevelDbStore extends SessionStore {
  readonly all: Stream.Stream<StoredSession, SessionStoreError>
  readonly owners: OwnerIndex
  /** The directory the database was opened at. */
  readonly path: string
  /** Entries physically held, expired ones included until they are swept (counted in pages). */
  readonly size: Effect.Effect<number, SessionStoreError>
  /** Deletes every expired entry now, in batches; returns how many it deleted. */
  readonly sweep: Effect.Effect<number, SessionStoreError>
}

/**
 * The LevelDB store built by `layer` or `layerConfig`, with its `size` and `sweep`.
 *
 * @since 0.2.0
 * @category tags
 */
export const LevelDbStore: Context.Tag<LevelDbStore, LevelDbStore> = Context.GenericTag<LevelDbStore>(
  "effect-session/SessionStore/LevelDb"
)

// Values are envelopes (internal/envelope.ts). Index key: zero-padded expiry (so keys sort by
// time), ":", key.
const EXPIRY_DIGITS = 16
const padExpiry = (expiresAt: number): string =>
  String(Math.min(Envelope.storedExpiry(expiresAt), 10 ** EXPIRY_DIGITS - 1)).padStart(EXPIRY_DIGITS, "0")
const indexKey = (key: string, expiresAt: number): string => `${padExpiry(expiresAt)}:${key}`

// Owner links, laid out as in `ownerLinks.ts` (records keyed `<owner length>:<owner>:<handle>`,
// values `[until, key]`, here as JSON text); a record's `until` index key is `indexKey(record key, until)`.
const ownerOf = (link: string): string => {
  const colon = link.indexOf(":")
  return link.slice(colon + 1, colon + 1 + Number(link.slice(0, colon)))
}

// Records are stored as JSON text `[until, key]`; anything else reads as absent.
const encodeLink = (link: Link): string => JSON.stringify(linkToArray(link))
const decodeLink = (raw: string | undefined): Link | undefined => {
  if (raw === undefined) return undefined
  try {
    return linkFromArray(JSON.parse(raw))
  } catch {
    return undefined
  }
}

/**
 * Opens the database and makes the store. The database is closed, and the sweep fiber stopped,
 * when the scope closes.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  options: Options
): Effect.Effect<LevelDbStore, SessionStoreError | SessionConfigError, Scope.Scope> =>
  Effect.gen(function*() {
    const sweepBatchSize = yield* InternalOptions.positiveInteger("sweepBatchSize", options.sweepBatchSize, 1_000)
    const pageSize = yield* InternalOptions.positiveInteger("pageSize", options.pageSize, 1_000)
    const interval = yield* InternalOptions.duration("cleanupInterval", options.cleanupInterval, "1 minute", {
      allowZero: true
    })
    const writeOptions = { sync: options.sync ?? false }

    const db = yield* Effect.acquireRelease(
      Effect.tryPromise({
        try: async () => {
          const db = new ClassicLevel<string, string>(options.path, {
            ...options.leveldb,
            keyEncoding: "utf8",
            valueEncoding: "utf8"
          })
          await db.open()
          return db
        },
        catch: Errors.fromLevel("open")
      }),
      (db) => Effect.promise(() => db.close())
    )
    const entries = db.sublevel<string, string>("sessions", { keyEncoding: "utf8", valueEncoding: "utf8" })
    const index = db.sublevel<string, string>("expiry", { keyEncoding: "utf8", valueEncoding: "utf8" })
    const links = db.sublevel<string, string>("owners", { keyEncoding: "utf8", valueEncoding: "utf8" })
    const linkIndex = db.sublevel<string, string>("owners-until", { keyEncoding: "utf8", valueEncoding: "utf8" })

    // One lock per key, dropped as soon as nobody holds it. Every write of a key takes it, so a
    // read-check-write of one key is atomic against every other write of that key.
    const mutex = yield* KeyedMutex.make()
    // The same per owner id, for the owner index: each owner operation is one read-check-write.
    const ownerMutex = yield* KeyedMutex.make()

    const get = (operation: SessionStoreError["operation"], key: string) =>
      Effect.tryPromise({ try: () => entries.get(key), catch: Errors.fromLevel(operation) }).pipe(
        Effect.map(Envelope.decode)
      )

    const batch = (
      operation: SessionStoreError["operation"],
      operations: Array<Level.BatchOperation<typeof db, string, string>>
    ): Effect.Effect<void, SessionStoreError> =>
      operations.length === 0
        ? Effect.void
        : Effect.tryPromise({ try: () => db.batch(operations, writeOptions), catch: Errors.fromLevel(operation) })

    const removal = (key: string, previous: Envelope.Envelope | undefined) => {
      const operations: Array<Level.BatchOperation<typeof db, string, string>> = [
        { type: "del", sublevel: entries, key }
      ]
      if (previous !== undefined) {
        operations.push({ type: "del", sublevel: index, key: indexKey(key, previous.expiresAt) })
      }
      return operations
    }

    // Writes `data` until `expiresAt` in place of `previous`, with the index key moved along.
    const replacement = (key: string, previous: Envelope.Envelope | undefined, data: string, expiresAt: number) => {
      const operations: Array<Level.BatchOperation<typeof db, string, string>> = []
      if (previous !== undefined) {
        operations.push({ type: "del", sublevel: index, key: indexKey(key, previous.expiresAt) })
      }
      operations.push(
        { type: "put", sublevel: entries, key, value: Envelope.encode(data, expiresAt) },
        { type: "put", sublevel: index, key: indexKey(key, expiresAt), value: "" }
      )
      return operations
    }

    // Reads one page from a fresh iterator and closes it: no iterator outlives a page.
    const readPage = <V>(
      operation: SessionStoreError["operation"],
      read: () => {
        nextv(size: number): Promise<Array<[string, V]>>
        close(): Promise<void>
      },
      limit: number
    ) =>
      Effect.acquireUseRelease(
        Effect.try({ try: read, catch: Errors.fromLevel(operation) }),
        (iterator) => Effect.tryPromise({ try: () => iterator.nextv(limit), catch: Errors.fromLevel(operation) }),
        (iterator) => Effect.promise(() => iterator.close())
      )

    const getLinks = (operation: SessionStoreError["operation"], keys: ReadonlyArray<string>) =>
      Effect.tryPromise({ try: () => links.getMany([...keys]), catch: Errors.fromLevel(operation) }).pipe(
        Effect.map((values) => values.map(decodeLink))
      )

    // The owner's records not past their `until`, by handle: one range read, from a snapshot.
    const linksOf = (operation: SessionStoreError["operation"], owner: string, now: number) => {
      const prefix = ownerPrefix(owner)
      return Effect.tryPromise({
        try: () => links.iterator({ gte: prefix, lt: `${prefix.slice(0, -1)};` }).all(),
        catch: Errors.fromLevel(operation)
      }).pipe(Effect.map((records) =>
        records.flatMap(([key, raw]) => {
          const link = decodeLink(raw)
          return link !== undefined && link.until > now ? [{ handle: key.slice(prefix.length), link }] : []
        })
      ))
    }

    // Writes `next` in place of `previous`, with the `until` index key moved along.
    const linkReplacement = (link: string, previous: Link | undefined, next: Link) => {
      const operations: Array<Level.BatchOperation<typeof db, string, string>> = []
      if (previous !== undefined) {
        operations.push({ type: "del", sublevel: linkIndex, key: indexKey(link, previous.until) })
      }
      operations.push(
        { type: "put", sublevel: links, key: link, value: encodeLink(next) },
        { type: "put", sublevel: linkIndex, key: indexKey(link, next.until), value: "" }
      )
      return operations
    }

    const sweepBatch = (now: number, after: string | undefined) =>
      Effect.gen(function*() {
        const upTo = padExpiry(now + 1)
        const due = yield* readPage(
          "sweep",
          () =>
            index.iterator(
              after === undefined
                ? { lt: upTo, limit: sweepBatchSize, values: false }
                : { gt: after, lt: upTo, limit: sweepBatchSize, values: false }
            ),
          sweepBatchSize
        )
        const dueKeys = due.map(([dueKey]) => dueKey)
        const keys = [...new Set(dueKeys.map((dueKey) => dueKey.slice(EXPIRY_DIGITS + 1)))].sort()
        const deleted = yield* Effect.scoped(Effect.gen(function*() {
          // Locks taken in sorted order: a writer holds one lock at a time, so this cannot deadlock.
          for (const key of keys) yield* mutex.acquire<never>(key)
          const current = yield* Effect.tryPromise({
            try: () => entries.getMany(keys),
            catch: Errors.fromLevel("sweep")
          })
          const values = new Map(keys.map((key, i) => [key, Envelope.decode(current[i])] as const))
          const operations: Array<Level.BatchOperation<typeof db, string, string>> = []
          let deleted = 0
          for (const dueKey of dueKeys) {
            const key = dueKey.slice(EXPIRY_DIGITS + 1)
            const value = values.get(key)
            if (value === undefined || indexKey(key, value.expiresAt) !== dueKey) {
              // Stale: the entry is gone or was rewritten with another expiry.
              operations.push({ type: "del", sublevel: index, key: dueKey })
            } else if (!Envelope.isLive(value, now)) {
              operations.push({ type: "del", sublevel: entries, key }, { type: "del", sublevel: index, key: dueKey })
              deleted++
            }
          }
          yield* batch("sweep", operations)
          return deleted
        }))
        return { deleted, next: due.length === sweepBatchSize ? dueKeys[dueKeys.length - 1] : undefined }
      })

    // Drops the owner records past their `until`, found through their index.
    const sweepLinksBatch = (now: number, after: string | undefined) =>
      Effect.gen(function*() {
        const upTo = padExpiry(now + 1)
        const due = yield* readPage(
          "sweep",
          () =>
            linkIndex.iterator(
              after === undefined
                ? { lt: upTo, limit: sweepBatchSize, values: false }
                : { gt: after, lt: upTo, limit: sweepBatchSize, values: false }
            ),
          sweepBatchSize
        )
        const dueKeys = due.map(([dueKey]) => dueKey)
        const keys = [...new Set(dueKeys.map((dueKey) => dueKey.slice(EXPIRY_DIGITS + 1)))]
        const deleted = yield* Effect.scoped(Effect.gen(function*() {
          // Locks taken in sorted order: an owner operation holds one lock at a time, so this cannot deadlock.
          for (const owner of [...new Set(keys.map(ownerOf))].sort()) yield* ownerMutex.acquire<never>(owner)
          const current = yield* getLinks("sweep", keys)
          const values = new Map(keys.map((key, i) => [key, current[i]] as const))
          const operations: Array<Level.BatchOperation<typeof db, string, string>> = []
          let deleted = 0
          for (const dueKey of dueKeys) {
            const key = dueKey.slice(EXPIRY_DIGITS + 1)
            const link = values.get(key)
            operations.push({ type: "del", sublevel: linkIndex, key: dueKey })
            // A record written again since has another `until` and index key: it stays.
            if (link !== undefined && link.until <= now && indexKey(key, link.until) === dueKey) {
              operations.push({ type: "del", sublevel: links, key })
              deleted++
            }
          }
          yield* batch("sweep", operations)
          return deleted
        }))
        return { deleted, next: due.length === sweepBatchSize ? dueKeys[dueKeys.length - 1] : undefined }
      })

    // Runs batches from the start of their index until one names no next key, giving the event
    // loop a turn between them.
    const drain = (
      sweepFrom: (
        after: string | undefined
      ) => Effect.Effect<{ readonly deleted: number; readonly next: string | undefined }, SessionStoreError>
    ): Effect.Effect<number, SessionStoreError> =>
      Effect.gen(function*() {
        let deleted = 0
        let after: string | undefined = undefined
        while (true) {
          const result: { readonly deleted: number; readonly next: string | undefined } = yield* sweepFrom(after)
          deleted += result.deleted
          if (result.next === undefined) return deleted
          after = result.next
          yield* yieldToEventLoop
        }
      })

    // Counts the sessions it deleted; owner records go along uncounted.
    const sweep: Effect.Effect<number, SessionStoreError> = yield* Sweeper.observe(
      "leveldb",
      Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        const deleted = yield* drain((after) => sweepBatch(now, after))
        yield* drain((after) => sweepLinksBatch(now, after))
        return deleted
      })
    )

    const owners: OwnerIndex = {
      link: (owner, handle, key, until) =>
        ownerMutex.withLock(owner)(
          Effect.gen(function*() {
            const link = linkKey(owner, handle)
            const [previous] = yield* getLinks("link", [link])
            const now = yield* Clock.currentTimeMillis
            if (previous !== undefined && previous.until > now && previous.key === null) return "revoked" as const
            yield* batch("link", linkReplacement(link, previous, { key, until }))
            return "linked" as const
          })
        ),
      // No lock: an iterator reads from a snapshot, which holds each batch whole or not at all.
      list: (owner) =>
        Effect.flatMap(Clock.currentTimeMillis, (now) =>
          Effect.map(
            linksOf("list", owner, now),
            (found) =>
              found.flatMap(({ handle, link }): Array<OwnerLink> =>
                link.key === null ? [] : [{ handle, key: link.key }]
              )
          )),
      revoke: (owner, handles, except) =>
        ownerMutex.withLock(owner)(
          Effect.gen(function*() {
            const now = yield* Clock.currentTimeMillis
            let candidates: ReadonlyArray<{ readonly handle: string; readonly link: Link | undefined }>
            if (handles === "all") {
              candidates = yield* linksOf("revoke", owner, now)
            } else {
              const unique = [...new Set(handles)]
              const found = yield* getLinks("revoke", unique.map((handle) => linkKey(owner, handle)))
              candidates = unique.map((handle, i) => ({ handle, link: found[i] }))
            }
            const keys: Array<string> = []
            const operations: Array<Level.BatchOperation<typeof db, string, string>> = []
            for (const { handle, link } of candidates) {
              if (link === undefined || link.until <= now || link.key === null || handle === except) continue
              keys.push(link.key)
              // Same `until`, so the index key stays as it is.
              operations.push({
                type: "put",
                sublevel: links,
                key: linkKey(owner, handle),
                value: encodeLink({ key: null, until: link.until })
              })
            }
            yield* batch("revoke", operations)
            return keys
          })
        ),
      unlink: (owner, handle, key) =>
        ownerMutex.withLock(owner)(
          Effect.gen(function*() {
            const link = linkKey(owner, handle)
            const [previous] = yield* getLinks("unlink", [link])
            if (previous === undefined || previous.key !== key) return
            yield* batch("unlink", [
              { type: "del", sublevel: links, key: link },
              { type: "del", sublevel: linkIndex, key: indexKey(link, previous.until) }
            ])
          })
        )
    }

    yield* Sweeper.start("LevelDB store", interval, sweep)

    const entriesPage = (after: string | undefined) =>
      readPage(
        "all",
        () =>
          entries.iterator(
            after === undefined ? { limit: pageSize } : { gt: after, limit: pageSize }
          ),
        pageSize
      )

    const size: Effect.Effect<number, SessionStoreError> = Effect.gen(function*() {
      let count = 0
      let after: string | undefined = undefined
      while (true) {
        const page: Array<[string, string]> = yield* entriesPage(after)
        count += page.length
        if (page.length < pageSize) return count
        after = page[page.length - 1][0]
      }
    })

    const store: LevelDbStore = {
      path: options.path,
      find: (key) => Effect.zipWith(get("find", key), Clock.currentTimeMillis, Envelope.liveEntry),
      commit: (key, data, expiresAt, mode) =>
        mutex.withLock(key)(
          Effect.gen(function*() {
            const previous = yield* get("commit", key)
            const now = yield* Clock.currentTimeMillis
            if (mode === "update" && !Envelope.isLive(previous, now)) return "gone" as const
            yield* batch("commit", replacement(key, previous, data, expiresAt))
            return "written" as const
          })
        ),
      take: (key) =>
        mutex.withLock(key)(
          Effect.gen(function*() {
            const previous = yield* get("take", key)
            const live = Envelope.liveEntry(previous, yield* Clock.currentTimeMillis)
            if (Option.isSome(live)) yield* batch("take", removal(key, previous))
            return live
          })
        ),
      touch: (key, expiresAt) =>
        mutex.withLock(key)(
          Effect.gen(function*() {
            const previous = yield* get("touch", key)
            const now = yield* Clock.currentTimeMillis
            if (!Envelope.isLive(previous, now)) return "gone" as const
            yield* batch("touch", replacement(key, previous, previous.data, expiresAt))
            return "written" as const
          })
        ),
      delete: (key) =>
        mutex.withLock(key)(Effect.flatMap(get("delete", key), (previous) => batch("delete", removal(key, previous)))),
      owners,
      all: Stream.unwrap(
        Effect.map(
          Clock.currentTimeMillis,
          (now) =>
            Stream.paginateChunkEffect(
              undefined as string | undefined,
              (after) =>
                Effect.map(entriesPage(after), (page) => {
                  const live: Array<StoredSession> = []
                  for (const [key, raw] of page) {
                    const entry = Envelope.decode(raw)
                    if (Envelope.isLive(entry, now)) live.push({ key, data: entry.data, expiresAt: entry.expiresAt })
                  }
                  const next = page.length < pageSize ? Option.none() : Option.some(page[page.length - 1][0])
                  return [Chunk.unsafeFromArray(live), next] as const
                })
            )
        )
      ),
      size,
      sweep
    }
    return Telemetry.instrumentStore("leveldb", store)
  })

/**
 * The LevelDB store as the `SessionStore` and as `LevelDbStore`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options: Options
): Layer.Layer<LevelDbStore | SessionStore, SessionStoreError | SessionConfigError> =>
  provideBoth(LevelDbStore, make(options))

/**
 * The LevelDB store, configured from `Config` (for example `Config.string("SESSION_DB_PATH")`).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (
  options: Config.Config.Wrap<Omit<Options, "leveldb">>
): Layer.Layer<LevelDbStore | SessionStore, SessionStoreError | SessionConfigError | ConfigError.ConfigError> =>
  Layer.unwrapEffect(Effect.map(Config.unwrap(options), layer))
