/**
 * The metrics effect-session records, as Effect `Metric`s: `@effect/opentelemetry` (or any
 * exporter that reads Effect's metric registry) exports them with no glue, and `Metric.value`
 * reads them in-process. Names are snake case under `effect_session_`; labels never carry a
 * token, a store key, an owner id or session data — only the fixed words listed on each metric.
 *
 * Labels added with `Effect.tagMetrics` around the middleware are added to every metric.
 *
 * @since 0.2.0
 */
import * as Metric from "effect/Metric"
import * as MetricBoundaries from "effect/MetricBoundaries"

// 100 µs to ~3.3 s (store calls) and to ~13 s (lock waits, whose timeout defaults to 5 s), doubling.
const storeSeconds = MetricBoundaries.exponential({ start: 0.0001, factor: 2, count: 16 })
const lockSeconds = MetricBoundaries.exponential({ start: 0.0001, factor: 2, count: 18 })

/**
 * Sessions written for the first time (a new token stored by a commit; renewals are counted by `renewed`).
 *
 * @since 0.2.0
 * @category metrics
 */
export const created: Metric.Metric.Counter<number> = Metric.counter("effect_session_created_total", {
  description: "Sessions stored for the first time",
  incremental: true
})

/**
 * Loads by `outcome`: `found`, `no_token` (the request carried none), `malformed` (not a token
 * this library issues; the store is not asked), `missing` (no live entry: unknown, or expired on a
 * store that drops expired entries itself, like Redis), `expired` (the entry was there but past
 * its expiry or deadline), `decode_reset` (the entry no longer decodes and was dropped).
 *
 * @since 0.2.0
 * @category metrics
 */
export const loaded: Metric.Metric.Counter<number> = Metric.counter("effect_session_loaded_total", {
  description: "Session loads by outcome",
  incremental: true
})

/**
 * Commits by `outcome`: `written`, `refreshed` (an idle refresh moved the expiry only),
 * `unchanged`, `destroyed`, `gone` (destroyed or renewed by another request meanwhile: dropped).
 *
 * @since 0.2.0
 * @category metrics
 */
export const committed: Metric.Metric.Counter<number> = Metric.counter("effect_session_committed_total", {
  description: "Session commits by outcome",
  incremental: true
})

/**
 * Tokens renewed (`renewToken`, `bindOwner`, `unbindOwner`, `mergeSession`) of sessions already stored.
 *
 * @since 0.2.0
 * @category metrics
 */
export const renewed: Metric.Metric.Counter<number> = Metric.counter("effect_session_renewed_total", {
  description: "Session tokens renewed",
  incremental: true
})

/**
 * Sessions destroyed by `destroy`, or consumed by `mergeSession` (revocations are counted by `revoked`).
 *
 * @since 0.2.0
 * @category metrics
 */
export const destroyed: Metric.Metric.Counter<number> = Metric.counter("effect_session_destroyed_total", {
  description: "Sessions destroyed",
  incremental: true
})

/**
 * Sessions revoked through an owner's index (one device, or "log out everywhere").
 *
 * @since 0.2.0
 * @category metrics
 */
export const revoked: Metric.Metric.Counter<number> = Metric.counter("effect_session_revoked_total", {
  description: "Owner sessions revoked",
  incremental: true
})

/**
 * Expired sessions by `source`: `sweep` (removed by a store's background sweep) or `load` (a load
 * found the entry past its expiry or deadline).
 *
 * @since 0.2.0
 * @category metrics
 */
export const expired: Metric.Metric.Counter<number> = Metric.counter("effect_session_expired_total", {
  description: "Expired sessions removed by a sweep or found by a load",
  incremental: true
})

/**
 * Stored data that no longer decodes, by `scope`: `session` (the whole session was dropped and a
 * fresh one started) or `value` (one typed value was dropped, `onValueDecodeError: "remove"`).
 * A jump here after a deploy is a codec or schema change resetting users' sessions.
 *
 * @since 0.2.0
 * @category metrics
 */
export const decodeResets: Metric.Metric.Counter<number> = Metric.counter("effect_session_decode_resets_total", {
  description: "Stored sessions or values that no longer decoded and were dropped",
  incremental: true
})

/**
 * Duration of every store call, in seconds, by `store` (`memory`, `redis`, `postgresql`, `mysql`,
 * `sqlite`, `lmdb`, `leveldb`, `key_value_store`, `persistence`) and `operation` (`find`,
 * `commit`, `take`, `touch`, `delete`, `all`, `link`, `list`, `revoke`, `unlink`). Its count is
 * the number of calls.
 *
 * @since 0.2.0
 * @category metrics
 */
export const storeDuration: Metric.Metric.Histogram<number> = Metric.histogram(
  "effect_session_store_duration_seconds",
  storeSeconds,
  "Duration of session store calls"
)

/**
 * Failed store calls by `store`, `operation` and `reason` (`Unavailable`, `Timeout`,
 * `Unsupported`, `Unknown`, or `Defect`).
 *
 * @since 0.2.0
 * @category metrics
 */
export const storeErrors: Metric.Metric.Counter<number> = Metric.counter("effect_session_store_errors_total", {
  description: "Failed session store calls",
  incremental: true
})

/**
 * Time spent waiting for a session lock, in seconds, by `lock` (`in_process`, `redis`,
 * `postgresql`), whether the wait succeeded or not.
 *
 * @since 0.2.0
 * @category metrics
 */
export const lockWait: Metric.Metric.Histogram<number> = Metric.histogram(
  "effect_session_lock_wait_seconds",
  lockSeconds,
  "Time spent waiting for a session lock"
)

/**
 * Lock waits that failed, by `lock` and `reason` (`Timeout`: the lock stayed held past the
 * timeout; `Unavailable`: the lock's backend could not be reached).
 *
 * @since 0.2.0
 * @category metrics
 */
export const lockFailures: Metric.Metric.Counter<number> = Metric.counter("effect_session_lock_failures_total", {
  description: "Session lock waits that failed",
  incremental: true
})

/**
 * Entries held by memory stores in this process (live, or expired and not yet swept).
 *
 * @since 0.2.0
 * @category metrics
 */
export const memoryEntries: Metric.Metric.Gauge<number> = Metric.gauge("effect_session_memory_entries", {
  description: "Entries held by memory session stores"
})

/**
 * Lifecycle events a subscriber did not receive because its queue was full (see `SessionEvents`).
 *
 * @since 0.2.0
 * @category metrics
 */
export const eventsDropped: Metric.Metric.Counter<number> = Metric.counter("effect_session_events_dropped_total", {
  description: "Session lifecycle events dropped for a subscriber that fell behind",
  incremental: true
})

/**
 * Requests refused by the CSRF check, by `reason` (`CrossOriginRequest`, `OriginMismatch`,
 * `TokenMissing`, `TokenInvalid`). A rise after a deploy is a missing trusted origin or a form
 * without its token; a steady trickle is what the check is for.
 *
 * @since 0.2.0
 * @category metrics
 */
export const csrfRefused: Metric.Metric.Counter<number> = Metric.counter("effect_session_csrf_refused_total", {
  description: "Requests refused as possible cross-site request forgeries",
  incremental: true
})
