/**
 * The test kit for authors of stores and locks: the conformance suites this library runs on its
 * own backends, for `@effect/vitest`. Needs `vitest` and `@effect/vitest` (dev dependencies).
 *
 * @since 0.2.0
 */
export * from "./testing/LockConformance.js"
export * from "./testing/StoreConformance.js"
/**
 * The span audit both suites run every case under: no key, token or payload in any span.
 *
 * @since 0.2.0
 */
export * as SpanAudit from "./testing/SpanAudit.js"
