/**
 * Sessions without a store: the whole session travels sealed in its cookie (AES-256-GCM with Web
 * Crypto, keys derived from your secrets), and this manager takes the place of the store-backed
 * one. Handlers do not change: `Session`, typed keys, flash, `renewToken`, `destroy`,
 * `rememberMe`, `bindOwner`, the lifetime and the idle timeout all work as they do with a store.
 *
 * ```ts
 * const SessionLive = Sealed.layerConfig({ secrets: Sealed.secretsConfig("SESSION_SECRETS") })
 * ```
 *
 * What a store gives and a cookie cannot: a sealed session cannot be revoked before it expires.
 * `destroy` and `renewToken` replace the browser's cookie, but a copy taken earlier still opens
 * until its own expiry; the owner's device list and "log out everywhere" fail with
 * `SessionStoreError` (reason `Unsupported`). Keep the idle timeout short, and rotate the secrets
 * (the newest seals, all open) to end every session at once. Nothing is locked: there is no
 * shared state to order.
 *
 * @since 0.2.0
 */
import * as Arr from "effect/Array"
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as InternalEvents from "../internal/events.js"
import * as InternalManager from "../internal/manager.js"
import * as InternalOptions from "../internal/options.js"
import * as Seal from "../internal/seal.js"
import * as InternalSession from "../internal/session.js"
import * as Telemetry from "../internal/telemetry.js"
import * as Token from "../internal/token.js"
import type { Session } from "../Session.js"
import type { SessionConfigError } from "../SessionConfigError.js"
import * as SessionManager from "../SessionManager.js"
import { SessionStoreError } from "../SessionStore.js"

/**
 * A secret and the id a sealed value names it by (in clear: 1 to 32 of `A-Z a-z 0-9 _ -`).
 *
 * @since 0.2.0
 * @category models
 */
export interface Secret {
  readonly id: string
  /** At least 32 bytes (as UTF-8) of a random string, such as `openssl rand -base64 32`. */
  readonly secret: Redacted.Redacted<string>
}

/**
 * The manager's options (the lifetimes, the codec and the limits work as with a store), and the
 * secrets.
 *
 * @since 0.2.0
 * @category models
 */
export interface Options extends Omit<SessionManager.Options, "hashTokenInStore"> {
  /**
   * Newest first: the first seals, every one opens. To rotate, put a new secret first and keep
   * the old one until the sessions it sealed have expired or been written again (each is
   * resealed with the newest on its next request).
   */
  readonly secrets: ReadonlyArray<Secret>
  /**
   * The longest sealed value, in bytes: a commit over it fails with `SessionLimitError` (reason
   * `Size`) and sends nothing. Browsers keep a cookie of at most 4,096 bytes of name and value;
   * the default 4,000 leaves 96 for the cookie's name.
   */
  readonly maxSealedSize?: number | undefined
}

// A session id is a token's shape: 43 characters of base64url.
const PLAINTEXT = /^(\d{1,16})\.([A-Za-z0-9_-]{43})\.([\s\S]*)$/

const unsupported = (operation: "list" | "revoke" | "all", what: string) =>
  Effect.fail(new SessionStoreError({ reason: "Unsupported", operation, detail: `sealed cookies ${what}` }))

/** The secrets, checked: ids unique and cookie-safe, each secret long enough. */
const checkSecrets = (
  secrets: ReadonlyArray<Secret>
): Either.Either<Arr.NonEmptyReadonlyArray<Secret>, SessionConfigError> =>
  Either.gen(function*() {
    if (!Arr.isNonEmptyReadonlyArray(secrets)) {
      return yield* InternalOptions.invalid("secrets", "must hold at least one secret")
    }
    const seen = new Set<string>()
    for (const { id, secret } of secrets) {
      yield* InternalOptions.matching("secrets.id", id, "", Seal.SECRET_ID, "1 to 32 characters of A-Z a-z 0-9 _ -")
      if (seen.has(id)) {
        return yield* InternalOptions.invalid("secrets.id", `must be unique, got ${JSON.stringify(id)} twice`)
      }
      seen.add(id)
      const length = Seal.encodeText(Redacted.value(secret)).length
      if (length < Seal.MIN_SECRET_BYTES) {
        return yield* InternalOptions.invalid(
          "secrets.secret",
          `must have at least ${Seal.MIN_SECRET_BYTES} bytes (the one named ${JSON.stringify(id)} has ${length})`
        )
      }
    }
    return secrets
  })

/**
 * Builds a sealed-cookie manager. Fails with `SessionConfigError` when the options are invalid.
 *
 * @since 0.2.0
 * @category constructors
 */
export const make = (options: Options): Effect.Effect<SessionManager.SessionManager, SessionConfigError> =>
  Effect.gen(function*() {
    const resolved = yield* SessionManager.resolveOptions({ ...options, hashTokenInStore: false })
    const secrets = yield* checkSecrets(options.secrets)
    const maxSealedSize = yield* InternalOptions.positiveInteger("maxSealedSize", options.maxSealedSize, 4_000)
    const keys = yield* Effect.forEach(secrets, ({ id, secret }) => Seal.deriveKey(id, secret))
    return makeWith(resolved, keys, maxSealedSize, yield* InternalEvents.hub)
  })

const makeWith = (
  options: SessionManager.ResolvedOptions,
  keys: ReadonlyArray<Seal.SealKey>,
  maxSealedSize: number,
  events: InternalEvents.Hub | undefined
): SessionManager.SessionManager => {
  const lifetimeMillis = Duration.toMillis(options.lifetime)
  const idleMillis = InternalManager.idleMillisOf(options)
  const codec = options.codec
  const sealing = keys[0]
  const byId = new Map(keys.map((key) => [key.id, key]))
  // A session is named (in events) by its id, which `renewToken` replaces: the id is its key.
  const lifecycle = InternalManager.lifecycle(events, (id) => id)

  /** The session a sealed value holds, if it opens and is live; `reason` says why not. */
  const open = (value: string, now: number) =>
    Effect.map(Seal.open(byId, value), (opened) => {
      const parts = opened === undefined ? null : PLAINTEXT.exec(opened.plaintext)
      if (opened === undefined || parts === null) return { reason: "malformed" } as const
      const decoded = codec.decode(parts[3])
      if (Either.isLeft(decoded)) return { reason: "undecodable", issue: decoded.left.issue } as const
      const record = decoded.right
      const expiresAt = Number(parts[1])
      const id = parts[2]
      if (expiresAt <= now || record.deadline <= now) return { reason: "expired", id, record } as const
      return { reason: "open", id, record, expiresAt, resealed: opened.key !== sealing } as const
    })

  const fresh = (now: number): Session => InternalSession.make(InternalSession.freshState(now, lifetimeMillis), context)

  /**
   * Seals the session. Its id is the one it was loaded or renewed with; a session sealed for the
   * first time takes the token a `renewToken` gave it, or a new one. Nothing is sent when the
   * sealed value is over `maxSealedSize`.
   */
  const write = (
    state: InternalSession.SessionState,
    now: number,
    count: Telemetry.Traced["count"],
    finish: (outcome: SessionManager.CommitOutcome) => SessionManager.CommitOutcome
  ): Effect.Effect<SessionManager.CommitOutcome, SessionManager.SessionError> => {
    const encoded = InternalManager.encode(options, state, now)
    if (Either.isLeft(encoded)) return Effect.fail(encoded.left)
    const created = state.storeKey === undefined
    // Before its first seal, a session's token is a plain one (from `renewToken`), never a sealed value.
    const id = state.storeKey ??
      (state.token !== undefined && Token.isWellFormed(state.token) ? state.token : Token.generate())
    const expiresAt = InternalManager.expiryOf(state, now, idleMillis)
    const plaintext = Seal.encodeText(`${expiresAt}.${id}.${encoded.right}`)
    const length = Seal.sealedLength(sealing, plaintext)
    if (length > maxSealedSize) {
      return Effect.fail(
        new SessionManager.SessionLimitError({ reason: "Size", limit: maxSealedSize, actual: length })
      )
    }
    return Effect.map(Seal.seal(sealing, plaintext), (sealed) => {
      state.token = sealed
      state.storeKey = id
      state.touch = false
      if (created) lifecycle.created(id, undefined, state, now, count)
      return finish(SessionManager.CommitOutcome.Written({
        token: Redacted.make(sealed),
        expiresAt,
        rememberMe: state.rememberMe,
        committedAt: now
      }))
    })
  }

  const context: InternalSession.SessionContext = {
    lifetimeMillis,
    maxLifetimeMillis: Duration.toMillis(options.maxLifetime),
    onValueDecodeError: options.onValueDecodeError,
    // Nothing is kept on the server: a destroyed or renewed session's cookie is replaced.
    deleteKey: () => Effect.void,
    takeKey: () => Effect.succeed(true),
    storeNew: (state, from) =>
      Telemetry.counted((now, count) => {
        // Renewed: the new token is its new id (named in the `Renewed` event); the commit seals
        // it, and until then the client holds no token of it.
        const id = state.token ?? Token.generate()
        state.storeKey = id
        state.token = undefined
        lifecycle.created(id, from, state, now, count)
        return Effect.void
      }),
    destroyed: lifecycle.destroyed,
    ownerChanged: lifecycle.ownerChanged,
    // Another sealed value's values, if it opens and is live (it cannot be taken: its copy stays valid).
    takeValues: (value, current) =>
      Effect.clockWith((clock) =>
        Effect.map(
          open(value, clock.unsafeCurrentTimeMillis()),
          (opened) =>
            opened.reason === "open" && opened.id !== current.storeKey
              ? Option.some(InternalManager.valuesOf(opened.record.values))
              : Option.none()
        )
      ),
    requireOwners: Effect.void,
    unlink: () => Effect.void,
    ownerSessions: () => unsupported("list", "keep no list of an owner's sessions"),
    revoke: () => unsupported("revoke", "cannot be revoked before they expire")
  }

  const load: SessionManager.SessionManager["load"] = (input) =>
    InternalManager.tracedLoad((now, loaded) => {
      const redacted = Option.isOption(input) ? Option.getOrUndefined(input) : input
      if (redacted === undefined) return loaded("no_token", fresh(now))
      const value = Redacted.value(redacted)
      return Effect.flatMap(open(value, now), (opened) => {
        switch (opened.reason) {
          case "malformed":
            return loaded("malformed", fresh(now))
          case "undecodable":
            return Effect.zipRight(
              InternalManager.undecodable(options, opened.issue, Metric.increment(InternalManager.sessionReset)),
              loaded("decode_reset", fresh(now))
            )
          case "expired":
            InternalManager.publishExpired(events, opened.id, opened.record, now)
            return Effect.zipRight(Metric.increment(InternalManager.expiredOnLoad), loaded("expired", fresh(now)))
          case "open": {
            const session = InternalManager.fromRecord(context, idleMillis, {
              token: value,
              key: opened.id,
              record: opened.record,
              expiresAt: opened.expiresAt,
              now
            })
            // Sealed with an older secret: resealed with the newest now, not at its next change.
            if (opened.resealed) InternalSession.stateOf(session).touch = true
            return loaded("found", session)
          }
        }
      })
    })

  const commit: SessionManager.SessionManager["commit"] = (session) =>
    InternalManager.tracedCommit((now, committed, count) => {
      const state = InternalSession.stateOf(session)
      if (state.status === "Destroyed") {
        return Effect.succeed(committed(SessionManager.CommitOutcome.Destroyed(), false))
      }
      // Changed, or due for a reseal (half of the idle window passed, or sealed with an older secret).
      if (state.status === "Modified" || state.touch) {
        const refreshed = state.status !== "Modified"
        return write(state, now, count, (outcome) => committed(outcome, refreshed))
      }
      return Effect.succeed(committed(SessionManager.CommitOutcome.Unchanged(), false))
    })

  return {
    options,
    store: undefined,
    load,
    commit,
    // Nothing to lock: the session lives in its cookie.
    storeKey: () => Option.none(),
    iterate: () => unsupported("all", "cannot be enumerated: each lives only in its cookie"),
    ownerSessions: () => unsupported("list", "keep no list of an owner's sessions"),
    revokeOwnerSession: () => unsupported("revoke", "cannot be revoked before they expire"),
    revokeOwnerSessions: () => unsupported("revoke", "cannot be revoked before they expire")
  }
}

/**
 * The sealed-cookie `SessionManager`, in place of `SessionManager.layer` and a store.
 *
 * @since 0.2.0
 * @category layers
 */
export const layer = (options: Options): Layer.Layer<SessionManager.SessionManager, SessionConfigError> =>
  Layer.effect(SessionManager.SessionManager, make(options))

/**
 * Like `layer`, with the options read from `Config`; see `secretsConfig` for the secrets.
 *
 * @since 0.2.0
 * @category layers
 */
export const layerConfig = (
  options: Config.Config.Wrap<Options>
): Layer.Layer<SessionManager.SessionManager, SessionConfigError | ConfigError.ConfigError> =>
  Layer.effect(SessionManager.SessionManager, Effect.flatMap(Config.unwrap(options), make))

/**
 * The secrets from one variable, newest first, as `id:secret` pairs separated by commas
 * (`SESSION_SECRETS=2026-12:<new>,2026-06:<old>`): base64 and hex secrets hold neither `:` nor `,`.
 *
 * @since 0.2.0
 * @category config
 */
export const secretsConfig = (name: string): Config.Config<ReadonlyArray<Secret>> =>
  Config.mapOrFail(Config.redacted(name), (value) => {
    const secrets: Array<Secret> = []
    for (const entry of Redacted.value(value).split(",")) {
      const colon = entry.indexOf(":")
      if (colon <= 0) {
        // Never the entry itself: it holds a secret.
        return Either.left(ConfigError.InvalidData([], "expected comma-separated id:secret pairs"))
      }
      secrets.push({ id: entry.slice(0, colon).trim(), secret: Redacted.make(entry.slice(colon + 1).trim()) })
    }
    return Either.right(secrets)
  })
