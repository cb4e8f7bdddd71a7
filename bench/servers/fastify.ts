/**
 * Fastify 5, bare (`--mode bare`) or with @fastify/cookie + @fastify/session and its default
 * memory store (`--mode session`).
 *
 * @fastify/session is configured as effect-session behaves: a session is saved only when it was
 * modified (`saveUninitialized: false`) and the cookie is sent only when it changed (`rolling: false`).
 */
import fastifyCookie from "@fastify/cookie"
import fastifySession from "@fastify/session"
import Fastify from "fastify"
import { randomBytes } from "node:crypto"
import type { AddressInfo } from "node:net"
import { announce, argValue, BARE_USER, cpuMicros, userValue } from "../shared.js"

declare module "fastify" {
  interface Session {
    user?: string
    count?: number
  }
}

const mode = argValue("mode", "session")
const app = Fastify({ logger: false })
app.get("/__cpu", async () => String(cpuMicros()))

if (mode === "bare") {
  let counter = 0
  app.get("/login", async (_request, reply) => {
    reply.header("Set-Cookie", `sid=${randomBytes(32).toString("base64url")}; Path=/; HttpOnly`)
    return "ok"
  })
  app.get("/get", async () => BARE_USER)
  app.get("/incr", async () => String(++counter))
  app.get("/new", async () => "ok")
} else {
  let logins = 0
  await app.register(fastifyCookie)
  await app.register(fastifySession, {
    secret: "a benchmark secret that is long enough",
    saveUninitialized: false,
    rolling: false,
    cookie: { secure: false }
  })
  app.get("/login", async (request) => {
    request.session.set("user", userValue(logins++))
    request.session.set("count", 0)
    return "ok"
  })
  app.get("/get", async (request) => request.session.get("user") ?? "")
  app.get("/incr", async (request) => {
    const count = (request.session.get("count") ?? 0) + 1
    request.session.set("count", count)
    return String(count)
  })
  app.get("/new", async (request) => {
    request.session.set("user", userValue(logins++))
    return "ok"
  })
}

await app.listen({ port: 0, host: "127.0.0.1" })
announce((app.server.address() as AddressInfo).port)
