/**
 * The scs README's example, in Effect: `npm start`, then
 *
 *   curl -i --cookie-jar cj --cookie cj localhost:4000/put
 *   curl -i --cookie-jar cj --cookie cj localhost:4000/get
 */
import { HttpRouter, HttpServer, HttpServerResponse } from "@effect/platform"
import { NodeHttpServer, NodeRuntime } from "@effect/platform-node"
import { Effect, Layer } from "effect"
import { createServer } from "node:http"
import { Session } from "../src/Session.js"
import * as SessionManager from "../src/SessionManager.js"
import * as SessionMiddleware from "../src/SessionMiddleware.js"
import * as MemoryStore from "../src/SessionStore/Memory.js"

const SessionLive = SessionManager.layer({ lifetime: "24 hours" }).pipe(Layer.provide(MemoryStore.layer()))

const router = HttpRouter.empty.pipe(
  HttpRouter.get(
    "/put",
    Effect.gen(function*() {
      const session = yield* Session
      yield* session.put("message", "Hello from a session!")
      return HttpServerResponse.empty({ status: 200 })
    })
  ),
  HttpRouter.get(
    "/get",
    Effect.gen(function*() {
      const session = yield* Session
      return HttpServerResponse.text(yield* session.getString("message"))
    })
  )
)

const port = Number(process.env.PORT ?? 4000)

HttpServer.serve(SessionMiddleware.loadAndSave(router)).pipe(
  HttpServer.withLogAddress,
  Layer.provide(SessionLive),
  Layer.provide(NodeHttpServer.layer(createServer, { port })),
  Layer.launch,
  NodeRuntime.runMain
)
