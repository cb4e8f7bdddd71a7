/**
 * Sessions in an `HttpApi`: `SessionMiddleware.SessionApi` provides `Session` to the handlers.
 * `npx tsx examples/http-api.ts`, then
 *
 *   curl -i -c cj -b cj -X POST localhost:4000/counter/increment   # 1, with Set-Cookie
 *   curl -i -c cj -b cj -X POST localhost:4000/counter/increment   # 2
 *   curl -i -c cj -b cj localhost:4000/counter                     # 2, no Set-Cookie
 *   curl -s localhost:4000/openapi.json    # the session cookie under components.securitySchemes
 */
import { HttpApi, HttpApiBuilder, HttpApiEndpoint, HttpApiGroup, HttpServer } from "@effect/platform"
import { NodeHttpServer, NodeRuntime } from "@effect/platform-node"
import { Effect, Layer, Option, Schema } from "effect"
import { createServer } from "node:http"
import * as Session from "../src/Session.js"
import * as SessionManager from "../src/SessionManager.js"
import * as SessionMiddleware from "../src/SessionMiddleware.js"
import * as MemoryStore from "../src/SessionStore/Memory.js"

const Count = Session.key("count", Schema.Int)

const api = HttpApi.make("app").add(
  HttpApiGroup.make("counter")
    .add(HttpApiEndpoint.post("increment", "/counter/increment").addSuccess(Schema.Int))
    .add(HttpApiEndpoint.get("read", "/counter").addSuccess(Schema.Int))
    .middleware(SessionMiddleware.SessionApi)
)

const CounterLive = HttpApiBuilder.group(api, "counter", (handlers) =>
  handlers
    .handle("increment", () =>
      Effect.gen(function*() {
        const session = yield* Session.Session
        // A stored value that no longer decodes is a typed error; here, a defect.
        const count = Option.getOrElse(yield* Effect.orDie(session.get(Count)), () => 0) + 1
        yield* session.put(Count, count).pipe(Effect.orDie)
        return count
      }))
    .handle("read", () => Effect.flatMap(Session.Session, (session) => session.getInt("count"))))

const SessionLive = SessionManager.layer({ lifetime: "24 hours" }).pipe(Layer.provide(MemoryStore.layer()))

HttpApiBuilder.serve().pipe(
  HttpServer.withLogAddress,
  Layer.provide(HttpApiBuilder.middlewareOpenApi()),
  Layer.provide(HttpApiBuilder.api(api).pipe(Layer.provide(CounterLive))),
  Layer.provide(SessionMiddleware.layerApi()),
  Layer.provide(SessionLive),
  Layer.provide(NodeHttpServer.layer(createServer, { port: Number(process.env.PORT ?? 4000) })),
  Layer.launch,
  NodeRuntime.runMain
)
