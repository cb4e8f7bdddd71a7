/**
 * The bench's routes on effect-session's `Session`, as a handler would write them: the session
 * server (servers/effect.ts `--mode session`) and `bench/app.ts` run the same ones.
 */
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Effect from "effect/Effect"
import { Session } from "../src/Session.js"
import { userValue } from "./shared.js"

export interface RouteOptions {
  /** `/login` also binds the session to an owner of its own (`bindOwner`, with a label). */
  readonly owned?: boolean
  /** The number of the first user `/login` and `/new` make (after a pre-fill). Default 0. */
  readonly firstUser?: number
  /** Wraps each measured route (`/get`, `/incr`, `/new`), to count its requests. */
  readonly measured?: <E>(
    route: Effect.Effect<HttpServerResponse.HttpServerResponse, E, Session>
  ) => Effect.Effect<HttpServerResponse.HttpServerResponse, E, Session>
}

/** `/login`, `/get`, `/incr` and `/new` on the `Session`. */
export const sessionRoutes = (options: RouteOptions = {}) => {
  let users = options.firstUser ?? 0
  const measured = options.measured ?? ((route) => route)
  return HttpRouter.empty.pipe(
    HttpRouter.get(
      "/login",
      Effect.gen(function*() {
        const session = yield* Session
        const user = userValue(users++)
        if (options.owned === true) yield* session.bindOwner(user, { label: "Firefox 128 on Linux" })
        yield* session.put("user", user)
        yield* session.put("count", 0)
        return HttpServerResponse.text("ok")
      })
    ),
    HttpRouter.get(
      "/get",
      measured(Effect.gen(function*() {
        const session = yield* Session
        return HttpServerResponse.text(yield* session.getString("user"))
      }))
    ),
    HttpRouter.get(
      "/incr",
      measured(Effect.gen(function*() {
        const session = yield* Session
        const next = (yield* session.getInt("count")) + 1
        yield* session.put("count", next)
        return HttpServerResponse.text(String(next))
      }))
    ),
    HttpRouter.get(
      "/new",
      measured(Effect.gen(function*() {
        const session = yield* Session
        yield* session.put("user", userValue(users++))
        return HttpServerResponse.text("ok")
      }))
    )
  )
}
