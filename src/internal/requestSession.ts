/**
 * How a session tag made by `Session.Tag` (the default `Session` is one) reaches the request's
 * session without a context of its own.
 *
 * Effect 3 adds a service to a running fiber only by setting its context: a copy of the context
 * and of the fiber's refs, in and back out, about 20 K instructions and 3 KB a request. So the
 * middleware does not provide such a tag. It files the session it loaded in the tag's `Filing`,
 * under the request, and the tag's default value (the filing's `resolver`) finds it there each
 * time one of its operations runs: by the request in the running fiber's context, which every
 * fiber the handler forks inherits.
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import { globalValue } from "effect/GlobalValue"
import type { Session } from "../Session.js"

/** Why a tag's default value has no session to act on. */
export const missingMessage = "effect-session: no session middleware loaded a session for this request " +
  "(a session tag was used outside its SessionMiddleware, or with another HttpServerRequest in context)"

const missing = Effect.dieMessage(missingMessage)

/**
 * The filings and the hook below, one set for the whole process. Effect keeps one default value
 * per tag key for the whole process, whichever copy of this package made the tag, so two copies
 * (two dependencies that each bring one) must file under the same registry: one copy's middleware
 * files where the other copy's default value looks. The key changes with the registry's shape.
 */
const registry = globalValue(Symbol.for("effect-session/requestSession/1"), () => ({
  filings: new Map<string, Filing>(),
  byResolver: new WeakMap<Session, Filing>(),
  requests: { sourceIn: (_context: Context.Context<never>): object | undefined => undefined }
}))

/**
 * What the request in `context` is filed under, set by the middleware's module (the manager and
 * the session know no HTTP, so this module imports none).
 */
export const requests: { sourceIn: (context: Context.Context<never>) => object | undefined } = registry.requests

/** The sessions loaded for one tag, by their request, and the tag's default value that finds them. */
export interface Filing {
  readonly sessions: WeakMap<object, Session>
  readonly resolver: Session
  /** The session filed under the request in `context`, if any. */
  readonly find: (context: Context.Context<never>) => Session | undefined
}

type Members<T> = { readonly [K in keyof Session]: Session[K] extends T ? K : never }[keyof Session]
type EffectMember = Members<Effect.Effect<unknown, unknown, unknown>>
type FunctionMember = Members<(...args: Array<never>) => unknown>

const effects: ReadonlyArray<EffectMember> = [
  "clear",
  "destroy",
  "keys",
  "renewToken",
  "owner",
  "unbindOwner",
  "ownerSessions",
  "status",
  "token",
  "deadline"
]
const functions: ReadonlyArray<FunctionMember> = [
  "get",
  "put",
  "pop",
  "remove",
  "exists",
  "mergeSession",
  "bindOwner",
  "revokeOwnerSession",
  "revokeOwnerSessions",
  "rememberMe",
  "setDeadline",
  "getString",
  "getNumber",
  "getInt",
  "getFloat",
  "getBoolean",
  "getBytes",
  "getDate",
  "popString",
  "popNumber",
  "popInt",
  "popFloat",
  "popBoolean",
  "popBytes",
  "popDate"
]
// Every member is in one of the two lists: a member added to `Session` and not here fails here.
const everyMember: [Exclude<keyof Session, EffectMember | FunctionMember>] extends [never] ? true : never = true

const makeFiling = (): Filing => {
  const sessions = new WeakMap<object, Session>()
  const find = (context: Context.Context<never>): Session | undefined => {
    const source = requests.sourceIn(context)
    return source === undefined ? undefined : sessions.get(source)
  }
  const withSession = <A, E>(f: (session: Session) => Effect.Effect<A, E>): Effect.Effect<A, E> =>
    Effect.withFiberRuntime((fiber) => {
      const session = find(fiber.currentContext)
      return session === undefined ? missing : f(session)
    })
  // Each operation is the same operation of the request's session.
  const members: Record<string, unknown> = {}
  for (const name of effects) {
    members[name] = withSession((session) => session[name] as Effect.Effect<unknown, unknown>)
  }
  for (const name of functions) {
    members[name] = (...args: Array<unknown>) =>
      withSession((session) => (session[name] as (...args: Array<unknown>) => Effect.Effect<unknown, unknown>)(...args))
  }
  return { sessions, resolver: everyMember && (members as unknown as Session), find }
}

// By tag key: Effect keeps one default value per key (`Context.Reference`), so a key has one filing.
const filings = registry.filings
// By resolver, for `resolveNow`.
const byResolver = registry.byResolver

/** The filing of the tag with `key`, made the first time. */
export const filingFor = (key: string): Filing => {
  let filing = filings.get(key)
  if (filing === undefined) {
    filing = makeFiling()
    filings.set(key, filing)
    byResolver.set(filing.resolver, filing)
  }
  return filing
}

/** The filing of `tag` when it is a tag made by `Session.Tag`; `undefined` for any other tag. */
export const filingOf = (tag: Context.Tag<unknown, Session>): Filing | undefined =>
  Context.isReference(tag) ? filings.get(tag.key) : undefined

/**
 * For a tag's default value, the session it stands for in the fiber running now (`undefined`
 * when no middleware filed one); for any other session, `session` itself.
 */
export const resolveNow = (session: Session): Session | undefined => {
  const filing = byResolver.get(session)
  if (filing === undefined) return session
  const fiber = Fiber.getCurrentFiber()
  return fiber._tag === "Some" ? filing.find(fiber.value.currentContext) : undefined
}
