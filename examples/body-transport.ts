/**
 * A custom transport: the session token travels in JSON request and response bodies, as in the
 * scs README's custom-middleware example. `tsx examples/body-transport.ts`, then
 *
 *   curl -s localhost:4000/message -d '{"message":"hi"}' -H 'content-type: application/json'
 *   # {"ok":true,"token":"<43 chars>"}
 *   curl -s localhost:4000/message -d '{"token":"<43 chars>"}' -H 'content-type: application/json'
 *   # {"message":"hi"}
 */
import { HttpRouter, HttpServer, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { NodeHttpServer, NodeRuntime } from "@effect/platform-node"
import { Effect, Layer, Option, Redacted, Schema } from "effect"
import { createServer } from "node:http"
import { pathToFileURL } from "node:url"
import { Session } from "../src/Session.js"
import * as SessionManager from "../src/SessionManager.js"
import * as SessionMiddleware from "../src/SessionMiddleware.js"
import * as MemoryStore from "../src/SessionStore/Memory.js"
import type * as SessionTransport from "../src/SessionTransport.js"

const WithToken = Schema.Struct({ token: Schema.String })
const decodeToken = Schema.decodeUnknownOption(WithToken)

// Adds "token" to a JSON response body.
const withTokenInBody = (response: HttpServerResponse.HttpServerResponse, token: string) => {
  if (response.body._tag !== "Uint8Array") return Effect.succeed(response)
  const body = JSON.parse(new TextDecoder().decode(response.body.body))
  return HttpServerResponse.json({ ...body, token }, { status: response.status, headers: response.headers })
}

export const bodyTransport: SessionTransport.SessionTransport = {
  // The request body is cached by the platform, so the handler can still read it.
  read: (request) =>
    request.json.pipe(
      Effect.map((body) => Option.map(decodeToken(body), (_) => Redacted.make(_.token))),
      Effect.orElseSucceed(() => Option.none())
    ),
  write: (response, token) => Effect.orDie(withTokenInBody(response, Redacted.value(token))),
  clear: (response) => Effect.orDie(withTokenInBody(response, "")),
  decorate: (response) => response
}

const Message = Schema.Struct({ message: Schema.optional(Schema.String) })

export const bodyRouter = HttpRouter.empty.pipe(
  HttpRouter.post(
    "/message",
    Effect.gen(function*() {
      const session = yield* Session
      const { message } = yield* HttpServerRequest.schemaBodyJson(Message)
      if (message === undefined) return yield* HttpServerResponse.json({ message: yield* session.getString("message") })
      yield* session.put("message", message)
      return yield* HttpServerResponse.json({ ok: true })
    }).pipe(Effect.catchTag("ParseError", () => HttpServerResponse.json({ error: "bad body" }, { status: 400 })))
  )
)

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  HttpServer.serve(SessionMiddleware.make({ transport: bodyTransport })(bodyRouter)).pipe(
    HttpServer.withLogAddress,
    Layer.provide(SessionManager.layer().pipe(Layer.provide(MemoryStore.layer()))),
    Layer.provide(NodeHttpServer.layer(createServer, { port: Number(process.env.PORT ?? 4000) })),
    Layer.launch,
    NodeRuntime.runMain
  )
}
