/**
 * Sessions that know their user: sign in, list your devices, sign one out, log out everywhere.
 * `npm run example:accounts`, then, as two devices with their own cookie jars:
 *
 *   curl -i -c laptop -b laptop -A "laptop" -X POST "localhost:4000/login?user=ada"
 *   curl -i -c phone  -b phone  -A "phone"  -X POST "localhost:4000/login?user=ada"
 *   curl -b laptop localhost:4000/devices
 *   curl -b laptop -X POST localhost:4000/devices/<phone's handle>/revoke
 *   curl -b phone localhost:4000/me                        # nobody
 *   curl -b laptop -X POST localhost:4000/logout-everywhere
 *
 * Any user name signs in here: a real app checks a password (or a passkey) first.
 */
import { HttpRouter, HttpServer, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { NodeHttpServer, NodeRuntime } from "@effect/platform-node"
import { DateTime, Effect, Layer, Option, Schema } from "effect"
import { createServer } from "node:http"
import { Session } from "../src/Session.js"
import * as SessionManager from "../src/SessionManager.js"
import * as SessionMiddleware from "../src/SessionMiddleware.js"
import * as MemoryStore from "../src/SessionStore/Memory.js"

const SessionLive = SessionManager.layer({ lifetime: "7 days", idleTimeout: "2 hours" }).pipe(
  Layer.provide(MemoryStore.layer())
)

// What the device list shows for a session: the app's own summary of the client at sign-in.
const deviceLabel = Effect.map(
  HttpServerRequest.HttpServerRequest,
  (request) => (request.headers["user-agent"] ?? "unknown device").slice(0, 64)
)

const signedIn = Effect.flatMap(Session, (session) => session.owner)

const router = HttpRouter.empty.pipe(
  HttpRouter.post(
    "/login",
    Effect.gen(function*() {
      const { user } = yield* HttpServerRequest.schemaSearchParams(
        Schema.Struct({ user: Schema.NonEmptyTrimmedString })
      )
      const session = yield* Session
      yield* session.bindOwner(user, { label: yield* deviceLabel })
      return HttpServerResponse.text(`signed in as ${user}\n`)
    })
  ),
  HttpRouter.get(
    "/me",
    Effect.map(signedIn, (owner) => HttpServerResponse.text(`${Option.getOrElse(owner, () => "nobody")}\n`))
  ),
  HttpRouter.get(
    "/devices",
    Effect.gen(function*() {
      const session = yield* Session
      const devices = yield* session.ownerSessions
      return yield* HttpServerResponse.json(devices.map((device) => ({
        handle: device.handle,
        label: Option.getOrNull(device.label),
        lastActiveAt: DateTime.formatIso(device.lastActiveAt),
        expiresAt: DateTime.formatIso(device.expiresAt),
        current: device.current
      })))
    })
  ),
  HttpRouter.post(
    "/devices/:handle/revoke",
    Effect.gen(function*() {
      const { handle } = yield* HttpRouter.schemaPathParams(Schema.Struct({ handle: Schema.String }))
      const session = yield* Session
      const revoked = yield* session.revokeOwnerSession(handle)
      return HttpServerResponse.text(revoked ? "signed out\n" : "no such device\n", { status: revoked ? 200 : 404 })
    })
  ),
  HttpRouter.post(
    "/logout-everywhere",
    Effect.gen(function*() {
      const session = yield* Session
      const count = yield* session.revokeOwnerSessions({ keepCurrent: true })
      return HttpServerResponse.text(`signed out ${count} other device(s)\n`)
    })
  ),
  HttpRouter.post(
    "/logout",
    Effect.gen(function*() {
      const session = yield* Session
      yield* session.destroy
      return HttpServerResponse.text("signed out\n")
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
