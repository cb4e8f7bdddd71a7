/**
 * Two app processes, one Redis: sessions in Redis (`RedisStore`) and a Redis lock per session
 * (`RedisLock`), so a client can hit either process, even with overlapping requests, and no
 * update is lost.
 *
 *   bash scripts/services/redis.sh start        # Redis on 127.0.0.1:63790 (or set REDIS_URL)
 *   npx tsx examples/multi-instance.ts          # starts two processes, on ports 4001 and 4002
 *
 * Then, from another shell, 100 concurrent increments spread over both processes:
 *
 *   curl -s -c cj localhost:4001/
 *   for i in $(seq 1 100); do curl -s -b cj -X POST localhost:$((4001 + i % 2))/increment >/dev/null & done; wait
 *   curl -s -b cj localhost:4002/                # count: 100
 *
 * Run a single process with `PORT=4001 npx tsx examples/multi-instance.ts`. Without the `lock`
 * option (and the lock layer) the same loop ends below 100: the last writer wins.
 */
import { HttpRouter, HttpServer, HttpServerResponse } from "@effect/platform"
import { NodeHttpServer, NodeRuntime } from "@effect/platform-node"
import { Effect, Layer } from "effect"
import { fork } from "node:child_process"
import { createServer } from "node:http"
import { Session } from "../src/Session.js"
import * as RedisLock from "../src/SessionLock/Redis.js"
import * as SessionManager from "../src/SessionManager.js"
import * as SessionMiddleware from "../src/SessionMiddleware.js"
import * as RedisStore from "../src/SessionStore/Redis.js"

const url = process.env.REDIS_URL ?? "redis://127.0.0.1:63790"

if (process.env.PORT === undefined) {
  // The parent only starts the two app processes and stops them with itself.
  const children = [4001, 4002].map((port) =>
    fork(process.argv[1]!, [], { env: { ...process.env, PORT: String(port) }, execArgv: process.execArgv })
  )
  const stop = () => children.forEach((child) => child.kill("SIGTERM"))
  process.on("SIGINT", stop)
  process.on("SIGTERM", stop)
} else {
  const router = HttpRouter.empty.pipe(
    HttpRouter.get(
      "/",
      Effect.gen(function*() {
        const session = yield* Session
        if (!(yield* session.exists("count"))) yield* session.put("count", 0)
        return HttpServerResponse.text(`count: ${yield* session.getInt("count")} (served by pid ${process.pid})\n`)
      })
    ),
    HttpRouter.post(
      "/increment",
      Effect.gen(function*() {
        const session = yield* Session
        const count = yield* session.getInt("count")
        yield* session.put("count", count + 1)
        return HttpServerResponse.text(`${count + 1}\n`)
      })
    )
  )

  const SessionLive = SessionManager.layer({ lifetime: "24 hours", idleTimeout: "30 minutes" }).pipe(
    Layer.provide(RedisStore.layer({ url, prefix: "example:session:" }))
  )
  const LockLive = RedisLock.layer({ url, prefix: "example:session-lock:", lease: "10 seconds" })

  HttpServer.serve(SessionMiddleware.make({ lock: { timeout: "5 seconds", retryAfter: "1 second" } })(router)).pipe(
    HttpServer.withLogAddress,
    Layer.provide(SessionLive),
    Layer.provide(LockLive),
    Layer.provide(NodeHttpServer.layer(createServer, { port: Number(process.env.PORT), host: "127.0.0.1" })),
    Layer.launch,
    NodeRuntime.runMain
  )
}
