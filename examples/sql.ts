/**
 * The basic example (`examples/basic.ts`) on a SQL store, chosen with `SESSION_STORE`:
 *
 *   SESSION_STORE=sqlite   SQLITE_FILE=sessions.db npx tsx examples/sql.ts
 *   SESSION_STORE=postgres DATABASE_URL=postgres://postgres@127.0.0.1:54329/effect_session npx tsx examples/sql.ts
 *   SESSION_STORE=mysql    DATABASE_URL=mysql://root@127.0.0.1:33069/effect_session npx tsx examples/sql.ts
 *
 * then
 *
 *   curl -i --cookie-jar cj --cookie cj localhost:4000/put
 *   curl -i --cookie-jar cj --cookie cj localhost:4000/get
 *
 * `SESSION_TABLE` names the table (default `sessions`); the store creates it on start.
 */
import { HttpRouter, HttpServer, HttpServerResponse } from "@effect/platform"
import { NodeHttpServer, NodeRuntime } from "@effect/platform-node"
import { Config, Effect, Layer } from "effect"
import { createServer } from "node:http"
import { Session } from "../src/Session.js"
import * as SessionManager from "../src/SessionManager.js"
import * as SessionMiddleware from "../src/SessionMiddleware.js"
import * as MysqlStore from "../src/SessionStore/Mysql.js"
import * as PgStore from "../src/SessionStore/Pg.js"
import * as SqliteStore from "../src/SessionStore/Sqlite.js"

const table = Config.string("SESSION_TABLE").pipe(Config.withDefault("sessions"))

// Each branch reads its connection from the environment; the URL is `Redacted`, never logged.
const StoreLive = Layer.unwrapEffect(
  Effect.map(
    Config.literal("postgres", "mysql", "sqlite")("SESSION_STORE").pipe(Config.withDefault("sqlite")),
    (store) => {
      switch (store) {
        case "postgres":
          return PgStore.layerConfig({ client: { url: Config.redacted("DATABASE_URL") }, table })
        case "mysql":
          return MysqlStore.layerConfig({ client: { url: Config.redacted("DATABASE_URL") }, table })
        case "sqlite":
          return SqliteStore.layerConfig({
            client: { filename: Config.string("SQLITE_FILE").pipe(Config.withDefault("sessions.db")) },
            table
          })
      }
    }
  )
)

const SessionLive = SessionManager.layer({ lifetime: "24 hours" }).pipe(Layer.provide(StoreLive))

const router = HttpRouter.empty.pipe(
  HttpRouter.get(
    "/put",
    Effect.gen(function*() {
      const session = yield* Session
      yield* session.put("message", "Hello from a session!")
      return HttpServerResponse.empty()
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
