/**
 * @since 0.1.0
 */

/**
 * The per-request session: the service handlers `yield*` to read and change session data.
 *
 * @since 0.1.0
 */
export * as Session from "./Session.js"

/**
 * How a whole session is turned into the string a store keeps.
 *
 * @since 0.1.0
 */
export * as SessionCodec from "./SessionCodec.js"

/**
 * Per-session locks: hold a lock on a session from load to commit (none, in-process, Redis, PostgreSQL).
 *
 * @since 0.1.0
 */
export * as SessionLock from "./SessionLock.js"

/**
 * The one error for invalid configuration, shared by every module.
 *
 * @since 0.2.0
 */
export * as SessionConfigError from "./SessionConfigError.js"

/**
 * Session lifecycle events (created, renewed, destroyed, revoked, expired, owner bound and unbound) to subscribe to.
 *
 * @since 0.2.0
 */
export * as SessionEvents from "./SessionEvents.js"

/**
 * The metrics effect-session records, as Effect `Metric`s.
 *
 * @since 0.2.0
 */
export * as SessionMetrics from "./SessionMetrics.js"

/**
 * The session manager: configuration, and loading and committing sessions against a store.
 *
 * @since 0.1.0
 */
export * as SessionManager from "./SessionManager.js"

/**
 * HTTP integration for `@effect/platform` (HttpApp, HttpLayerRouter, HttpApi): load before the handler, commit after it.
 *
 * @since 0.1.0
 */
export * as SessionMiddleware from "./SessionMiddleware.js"

/**
 * The backend contract every session store implements.
 *
 * @since 0.1.0
 */
export * as SessionStore from "./SessionStore.js"

/**
 * How the session token travels between client and server: a cookie, a header, or your own.
 *
 * @since 0.1.0
 */
export * as SessionTransport from "./SessionTransport.js"

/**
 * CSRF protection for cookie sessions: the header check of Go's `CrossOriginProtection`, and an
 * optional synchronizer token kept in the session.
 *
 * @since 0.2.0
 */
export * as Csrf from "./Csrf.js"
