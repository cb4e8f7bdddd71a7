/**
 * The one place store failures become `SessionStoreError`s: a classifier per driver family, and
 * the one timeout every store call with a time limit goes through.
 *
 * Drivers keep the inputs of a failed command on the error (ioredis's `command.args`, SQL
 * parameters and `detail`) and some messages quote them: those are session keys and payloads.
 * So the driver error is classified here and then scrubbed (`redact.ts`): the error's `cause` is
 * its name, masked first message line and code, per link of its chain, and `detail` is built
 * from that.
 */
import type * as Persistence from "@effect/experimental/Persistence"
import type * as PlatformError from "@effect/platform/Error"
import type * as SqlError from "@effect/sql/SqlError"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { SessionStoreError } from "../SessionStore.js"
import * as Redact from "./redact.js"

type Operation = SessionStoreError["operation"]
type Reason = "Unavailable" | "Timeout" | "Unknown"

const field = (value: unknown, name: string): unknown =>
  typeof value === "object" && value !== null && name in value ? (value as Record<string, unknown>)[name] : undefined

// The driver's error and what it wraps (`cause`, an AggregateError's `errors`), nearest first.
const errorChain = (error: unknown): ReadonlyArray<unknown> => {
  const chain: Array<unknown> = []
  const queue: Array<unknown> = [error]
  while (queue.length > 0 && chain.length < 16) {
    const next = queue.shift()
    if (next === undefined || next === null || chain.includes(next)) continue
    chain.push(next)
    queue.push(field(next, "cause"))
    const errors = field(next, "errors")
    if (Array.isArray(errors)) queue.push(...errors)
  }
  return chain
}

const codesOf = (error: unknown): ReadonlyArray<string | number> =>
  errorChain(error).flatMap((link) =>
    ["code", "errno"].map((name) => field(link, name)).filter((code): code is string | number =>
      (typeof code === "string" && code !== "") || typeof code === "number"
    )
  )

const messagesOf = (error: unknown): ReadonlyArray<string> =>
  errorChain(error).map((link) => field(link, "message")).filter((m): m is string => typeof m === "string")

/** The scrubbed messages of the error and what it wraps, with its first code. */
const detailOf = (cause: unknown): string => Redact.describe(Redact.scrub(cause))

const classifier = <C>(
  reasonOf: (cause: C, operation: Operation) => Reason,
  describe: (cause: C) => string = detailOf
) =>
(operation: Operation) =>
(cause: C) =>
  new SessionStoreError({
    reason: reasonOf(cause, operation),
    operation,
    cause: Redact.scrub(cause),
    detail: describe(cause)
  })

const SQL_UNAVAILABLE = new Set<string | number>([
  // Node sockets and DNS
  "ECONNREFUSED",
  "ECONNRESET",
  "ECONNABORTED",
  "EPIPE",
  "ENOTFOUND",
  "EHOSTUNREACH",
  "EHOSTDOWN",
  "ENETUNREACH",
  "ENETDOWN",
  "EAI_AGAIN",
  // mysql2
  "PROTOCOL_CONNECTION_LOST",
  "PROTOCOL_ENQUEUE_AFTER_FATAL_ERROR",
  "PROTOCOL_ENQUEUE_AFTER_QUIT",
  "ER_CON_COUNT_ERROR",
  "ER_SERVER_SHUTDOWN",
  "ER_NORMAL_SHUTDOWN",
  "ER_SERVER_GONE_ERROR",
  "ER_SERVER_LOST",
  1040,
  1053,
  1077,
  2002,
  2003,
  2006,
  2013,
  // PostgreSQL SQLSTATE: connection exceptions, shutdown, too many connections
  "08000",
  "08001",
  "08003",
  "08004",
  "08006",
  "57P01",
  "57P02",
  "57P03",
  "53300",
  // SQLite
  "SQLITE_CANTOPEN"
])

const SQL_TIMEOUT = new Set<string | number>([
  "ETIMEDOUT",
  "ESOCKETTIMEDOUT",
  "PROTOCOL_SEQUENCE_TIMEOUT",
  // MySQL lock wait, MySQL MAX_EXECUTION_TIME, MariaDB max_statement_time
  "ER_LOCK_WAIT_TIMEOUT",
  "ER_QUERY_TIMEOUT",
  "ER_STATEMENT_TIMEOUT",
  1205,
  3024,
  1969,
  // PostgreSQL: statement_timeout (query_canceled), lock_timeout (lock_not_available)
  "57014",
  "55P03",
  // SQLite: the busy timeout ran out
  "SQLITE_BUSY",
  "SQLITE_BUSY_TIMEOUT",
  "SQLITE_LOCKED"
])

const SQL_UNAVAILABLE_MESSAGE =
  /connection terminated|not queryable|connection (?:refused|closed|lost|reset)|server has gone away|failed to (?:acquire|connect)/i
const TIMEOUT_MESSAGE = /timeout|timed out/i

/**
 * A `SqlError` (PostgreSQL, MySQL/MariaDB, SQLite): `Unavailable` when the database could not be
 * reached or the connection broke, `Timeout` for statement, lock and busy timeouts.
 */
export const fromSql: (operation: Operation) => (error: SqlError.SqlError) => SessionStoreError = classifier(
  (error) => {
    for (const code of codesOf(error)) {
      if (SQL_UNAVAILABLE.has(code)) return "Unavailable"
      if (SQL_TIMEOUT.has(code)) return "Timeout"
    }
    // mysql2 marks errors that broke the connection as fatal.
    if (errorChain(error).some((link) => field(link, "fatal") === true)) return "Unavailable"
    // node-postgres reports a dropped connection or a pool wait with a message and no code.
    const messages = messagesOf(error)
    if (messages.some((message) => TIMEOUT_MESSAGE.test(message))) return "Timeout"
    if (messages.some((message) => SQL_UNAVAILABLE_MESSAGE.test(message))) return "Unavailable"
    return "Unknown"
  }
)

const REDIS_UNAVAILABLE =
  /Connection is closed|isn't writeable|max retries per request|ECONNREFUSED|ECONNRESET|EPIPE|EHOSTUNREACH|ENOTFOUND|CLUSTERDOWN|TRYAGAIN|LOADING|MASTERDOWN|READONLY|None of startup nodes|Failed to refresh slots|Cluster isn't ready|All sentinels are unreachable|Connection in subscriber mode|end of stream/i
const REDIS_TIMEOUT = /timed out|ETIMEDOUT/i

/** The reason of an ioredis failure (a command's, or the connection's). */
export const redisReason = (cause: unknown): Reason => {
  const message = cause instanceof Error ? `${cause.name}: ${cause.message}` : String(cause)
  if (REDIS_TIMEOUT.test(message)) return "Timeout"
  if (REDIS_UNAVAILABLE.test(message)) return "Unavailable"
  return "Unknown"
}

/** An ioredis failure. Its `command` (with the key and value) is scrubbed away. */
export const fromRedis: (operation: Operation) => (cause: unknown) => SessionStoreError = classifier(redisReason)

/** An `lmdb` failure: opening, or a closed environment, is `Unavailable`. */
export const fromLmdb: (operation: Operation) => (cause: unknown) => SessionStoreError = classifier(
  (cause, operation) =>
    operation === "open" || messagesOf(cause).some((message) => /closed/i.test(message)) ? "Unavailable" : "Unknown"
)

/** A `classic-level` failure: opening, or a database that is not open, is `Unavailable`. */
export const fromLevel: (operation: Operation) => (cause: unknown) => SessionStoreError = classifier(
  (cause, operation) =>
    operation === "open" || codesOf(cause).includes("LEVEL_DATABASE_NOT_OPEN") ? "Unavailable" : "Unknown"
)

/** A platform `KeyValueStore` failure: a `SystemError` that timed out is `Timeout`. */
export const fromKeyValueStore: (operation: Operation) => (cause: PlatformError.PlatformError) => SessionStoreError =
  classifier((cause) => cause._tag === "SystemError" && cause.reason === "TimedOut" ? "Timeout" : "Unknown")

const PERSISTENCE_UNAVAILABLE = /ECONNREFUSED|ECONNRESET|EPIPE|ETIMEDOUT|closed/i

/** A `Persistence` failure: the backing store's connection errors are `Unavailable`. */
export const fromPersistence: (operation: Operation) => (error: Persistence.PersistenceError) => SessionStoreError =
  classifier(
    (error) =>
      [...codesOf(error).map(String), ...messagesOf(error)].some((text) => PERSISTENCE_UNAVAILABLE.test(text))
        ? "Unavailable"
        : "Unknown",
    // A parse error's message quotes the value it could not parse: only its reason is kept.
    (error) => error.reason === "BackingError" ? `${error.method}: ${detailOf(error.cause)}` : error.reason
  )

/**
 * Bounds one store call by `timeout` (zero: no bound). The call is made interruptible, so the
 * bound holds inside an uninterruptible region too (`@effect/platform` runs a whole HTTP app
 * uninterruptibly, and `Effect.timeout` cannot stop what cannot be interrupted). Only single
 * driver calls go through here, whose drivers clean up an interrupted call (@effect/sql-pg
 * cancels the statement on the server, ioredis matches the late reply and drops it).
 */
export const withTimeout = (operation: Operation, timeout: Duration.Duration) =>
<A, R>(
  call: Effect.Effect<A, SessionStoreError, R>
): Effect.Effect<A, SessionStoreError, R> =>
  Duration.greaterThan(timeout, Duration.zero)
    ? Effect.timeoutFail(Effect.interruptible(call), {
      duration: timeout,
      onTimeout: () => timeoutError(operation, timeout)
    })
    : call

/** The error of a store call that did not answer within `timeout`. */
export const timeoutError = (operation: Operation, timeout: Duration.Duration): SessionStoreError =>
  new SessionStoreError({ reason: "Timeout", operation, detail: `no answer within ${Duration.format(timeout)}` })
