/**
 * Sessions with no store: sealed cookies. `npm run example:sealed`, then
 *
 *   curl -i --cookie-jar cj --cookie cj localhost:4000/put
 *   curl -i --cookie-jar cj --cookie cj localhost:4000/get
 *   curl -i --cookie-jar cj --cookie cj localhost:4000/visits   # each call reseals the cookie
 *   curl -i --cookie-jar cj --cookie cj localhost:4000/logout
 *
 * The secrets come from `SESSION_SECRETS` (`id:secret,id:secret`, newest first; make one with
 * `openssl rand -base64 32`). Without it, the example makes one for this run, so its sessions
 * end when it stops.
 */
import { HttpRouter, HttpServer, HttpServerResponse } from "@effect/platform"
import { NodeHttpServer, NodeRuntime } from "@effect/platform-node"
import { Config, Effect, Encoding, Layer, Option, Redacted, Schema } from "effect"
import { createServer } from "node:http"
import * as Session from "../src/Session.js"
import * as Sealed from "../src/SessionManager/Sealed.js"
import * as SessionMiddleware from "../src/SessionMiddleware.js"

const Visits = Session.key("visits", Schema.Number)

const secrets = Sealed.secretsConfig("SESSION_SECRETS").pipe(
  Config.orElse(() =>
    Config.sync(() => [{
      id: "dev",
      secret: Redacted.make(Encoding.encodeBase64(crypto.getRandomValues(new Uint8Array(32))))
    }])
  )
)

const SessionLive = Sealed.layerConfig({
  lifetime: Config.succeed("24 hours"),
  idleTimeout: Config.succeed("30 minutes"),
  secrets
})

const router = HttpRouter.empty.pipe(
  HttpRouter.get(
    "/put",
    Effect.gen(function*() {
      const session = yield* Session.Session
      yield* session.put("message", "Hello from a sealed session!")
      return HttpServerResponse.empty({ status: 200 })
    })
  ),
  HttpRouter.get(
    "/get",
    Effect.gen(function*() {
      const session = yield* Session.Session
      return HttpServerResponse.text(yield* session.getString("message"))
    })
  ),
  HttpRouter.get(
    "/visits",
    Effect.gen(function*() {
      const session = yield* Session.Session
      const visits = Option.getOrElse(yield* session.get(Visits), () => 0) + 1
      yield* session.put(Visits, visits)
      return HttpServerResponse.text(`visits: ${visits}`)
    })
  ),
  HttpRouter.get(
    "/logout",
    Effect.flatMap(Session.Session, (session) => session.destroy).pipe(Effect.as(HttpServerResponse.text("bye")))
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
