/**
 * How the default `Session` tag reaches the request's session without a context of its own.
 *
 * Effect 3 adds a service to a running fiber only by setting its context: a copy of the context
 * and of the fiber's refs, in and back out, about 20 K instructions and 3 KB a request. So the
 * middleware does not provide the default tag. It files the session it loaded under the request
 * (`SessionMiddleware.ts` teaches `finder` how), and the tag's default value, `resolver`, finds
 * it there each time one of its operations runs: by the request in the running fiber's context,
 * which every fiber the handler forks inherits.
 */
import type * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import type { Session } from "../Session.js"

/** Finds the session filed under the request in `context`; set by the middleware's module. */
export const finder: { find: (context: Context.Context<never>) => Session | undefined } = {
  find: () => undefined
}

/** Why the default tag's value has no session to act on. */
export const missingMessage = "effect-session: no session middleware loaded a session for this request " +
  "(the Session tag was used outside SessionMiddleware, or with another HttpServerRequest in context)"

const missing = Effect.dieMessage(missingMessage)

const withSession = <A, E>(f: (session: Session) => Effect.Effect<A, E>): Effect.Effect<A, E> =>
  Effect.withFiberRuntime((fiber) => {
    const session = finder.find(fiber.currentContext)
    return session === undefined ? missing : f(session)
  })

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

/** The default tag's value: each operation is the same operation of the request's session. */
export const resolver: Session = (() => {
  const members: Record<string, unknown> = {}
  for (const name of effects) {
    members[name] = withSession((session) => session[name] as Effect.Effect<unknown, unknown>)
  }
  for (const name of functions) {
    members[name] = (...args: Array<unknown>) =>
      withSession((session) => (session[name] as (...args: Array<unknown>) => Effect.Effect<unknown, unknown>)(...args))
  }
  return everyMember && (members as unknown as Session)
})()

/** The session `resolver` stands for in the fiber running now, if there is one. */
export const resolveNow = (): Session | undefined => {
  const fiber = Fiber.getCurrentFiber()
  return fiber._tag === "Some" ? finder.find(fiber.value.currentContext) : undefined
}
