import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as Runtime from "effect/Runtime"
import type * as Scope from "effect/Scope"
import type { ClusterOptions, RedisOptions } from "ioredis"
import { Cluster, Redis } from "ioredis"
import * as Redact from "./redact.js"

/** A standalone (or Sentinel) client, or a Cluster client. */
export type Client = Redis | Cluster

/** How to get a client: ioredis options (the client is created and closed for you) or a factory. */
export type ClientInput = RedisOptions | (() => Client)

/**
 * Commands fail at once while Redis is unreachable instead of queueing until it is back, an
 * in-flight command is retried once after a reconnect, and no command waits more than five
 * seconds. The client keeps reconnecting by itself (ioredis's default retry strategy).
 */
export const failFastOptions: RedisOptions = {
  enableOfflineQueue: false,
  maxRetriesPerRequest: 1,
  commandTimeout: 5_000
}

/** `failFastOptions` for a `Cluster` client (the offline queue is a cluster-level option there). */
export const failFastClusterOptions: ClusterOptions = {
  enableOfflineQueue: false,
  redisOptions: { maxRetriesPerRequest: 1, commandTimeout: 5_000 }
}

export type Reason = "Unavailable" | "Timeout" | "Unknown"

/** The error text without the cause (never carries keys or payloads). */
export const describe = (cause: unknown): string => Redact.describe(Redact.scrub(cause))

export const isCluster = (client: Client): client is Cluster => client instanceof Cluster

/** The `keyPrefix` ioredis adds to every key (not to `SCAN`'s `MATCH`, nor to the keys it returns). */
export const clientKeyPrefix = (client: Client): string =>
  (isCluster(client) ? client.options.keyPrefix ?? client.options.redisOptions?.keyPrefix : client.options.keyPrefix) ??
    ""

/**
 * Creates the client described by `input` (with `failFastOptions` under the caller's options)
 * and quits it when the scope closes.
 */
export const acquireClient = (
  input: ClientInput | undefined,
  url: string | Redacted.Redacted<string> | undefined
): Effect.Effect<Client, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync((): Client => {
      if (typeof input === "function") return input()
      const options = { ...failFastOptions, lazyConnect: true, ...input }
      return url === undefined
        ? new Redis(options)
        : new Redis(Redacted.isRedacted(url) ? Redacted.value(url) : url, options)
    }),
    (client) =>
      Effect.promise(() => client.quit().then(() => undefined, () => client.disconnect())).pipe(
        Effect.timeoutTo({ duration: "5 seconds", onTimeout: () => client.disconnect(), onSuccess: () => undefined })
      )
  )

/**
 * Waits until the client is connected (connecting a lazy one), for at most `timeout`. Fails
 * with the last connection error's reason when it is not.
 */
export const awaitReady = (
  client: Client,
  timeout: Duration.DurationInput
): Effect.Effect<void, { readonly reason: Reason; readonly cause: unknown }> =>
  Effect.async<void, { readonly reason: Reason; readonly cause: unknown }>((resume) => {
    if (client.status === "ready") return resume(Effect.void)
    let lastError: unknown = new Error("not connected")
    const onError = (error: unknown) => {
      lastError = error
    }
    const onReady = () => {
      cleanup()
      resume(Effect.void)
    }
    const onEnd = () => {
      cleanup()
      resume(Effect.fail({ reason: "Unavailable", cause: lastError }))
    }
    const cleanup = () => {
      client.off("error", onError)
      client.off("ready", onReady)
      client.off("end", onEnd)
    }
    client.on("error", onError)
    client.once("ready", onReady)
    client.once("end", onEnd)
    if (client.status === "wait") client.connect().catch(onError)
    return Effect.sync(cleanup)
  }).pipe(
    Effect.timeoutFail({
      duration: timeout,
      onTimeout: () => ({
        reason: "Unavailable" as const,
        cause: new Error(`Redis not ready after ${Duration.format(Duration.decode(timeout))}`)
      })
    })
  )

/**
 * Logs connection loss once per outage (ioredis emits an error for every reconnect attempt)
 * and the recovery, for as long as the scope lasts. Also keeps ioredis from printing
 * "Unhandled error event" for a client without error listeners.
 */
export const logConnectionEvents = (client: Client, what: string): Effect.Effect<void, never, Scope.Scope> =>
  Effect.gen(function*() {
    const runFork = Runtime.runFork(yield* Effect.runtime<never>())
    let down = false
    const onError = (error: unknown) => {
      if (down) return
      down = true
      runFork(Effect.logWarning(`effect-session: ${what} lost its Redis connection; reconnecting`, describe(error)))
    }
    const onReady = () => {
      if (!down) return
      down = false
      runFork(Effect.logInfo(`effect-session: ${what} reconnected to Redis`))
    }
    yield* Effect.acquireRelease(
      Effect.sync(() => {
        client.on("error", onError)
        client.on("ready", onReady)
      }),
      () =>
        Effect.sync(() => {
          client.off("error", onError)
          client.off("ready", onReady)
        })
    )
  })

/** Escapes the glob characters of a `SCAN MATCH` pattern. */
export const escapeGlob = (text: string): string => text.replace(/[*?[\]\\]/g, (c) => `\\${c}`)
