/**
 * Two copies of effect-session in one process, as an app gets when two of its dependencies each
 * bring their own: this package's source, and the same package built in `dist/` and imported by
 * its name (see `test/globalSetup.ts`). Effect keeps one default value per tag key for the whole
 * process, so the `Session` tag of either copy must find a session that the other copy's
 * middleware loaded.
 */
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { describe, expect, it } from "@effect/vitest"
import * as DistSession from "effect-session/Session"
import * as DistSessionMiddleware from "effect-session/SessionMiddleware"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as SrcSession from "../src/Session.js"
import * as SessionManager from "../src/SessionManager.js"
import * as SrcSessionMiddleware from "../src/SessionMiddleware.js"
import * as MemoryStore from "../src/SessionStore/Memory.js"
import { call, jar, serve } from "./http.js"

const manager = SessionManager.layer().pipe(Layer.provide(MemoryStore.layer()))

/** A handler on `tag` that counts its requests in the session. */
const handlerOn = (tag: typeof SrcSession.Session | typeof DistSession.Session) =>
  Effect.gen(function*() {
    const session = yield* tag
    const count = (yield* session.getNumber("count").pipe(Effect.orElseSucceed(() => 0))) + 1
    yield* session.put("count", count)
    return HttpServerResponse.text(String(count))
  })

describe("two copies of effect-session in one process", () => {
  // Both orders in one process: whichever copy's default value Effect cached for the key serves both.
  for (
    const [name, app] of [
      [
        "the source's middleware, the built copy's Session",
        SrcSessionMiddleware.loadAndSave(handlerOn(DistSession.Session))
      ],
      [
        "the built copy's middleware, the source's Session",
        DistSessionMiddleware.loadAndSave(handlerOn(SrcSession.Session))
      ]
    ] as const
  ) {
    it.scoped(name, () =>
      Effect.gen(function*() {
        const served = yield* serve(app)
        const cookies = jar()
        const first = yield* call(served, "/", { headers: cookies.header() })
        expect(first.status).toBe(200)
        expect(first.body).toBe("1")
        cookies.keep(first)
        const second = yield* call(served, "/", { headers: cookies.header() })
        expect(second.body).toBe("2")
      }).pipe(Effect.provide(manager)))
  }
})
