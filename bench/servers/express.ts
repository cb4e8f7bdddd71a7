/**
 * Express 5, bare (`--mode bare`) or with express-session and its MemoryStore (`--mode session`).
 *
 * express-session is configured as effect-session behaves: a session is saved only when it was
 * modified (`resave: false`, `saveUninitialized: false`) and the cookie is sent only when the
 * session is new (`rolling: false`).
 */
import express from "express"
import session from "express-session"
import { randomBytes } from "node:crypto"
import type { AddressInfo } from "node:net"
import { announce, argValue, BARE_USER, cpuMicros, userValue } from "../shared.js"

declare module "express-session" {
  interface SessionData {
    user: string
    count: number
  }
}

const mode = argValue("mode", "session")
const app = express()
app.disable("x-powered-by")
app.disable("etag")
app.get("/__cpu", (_req, res) => {
  res.send(String(cpuMicros()))
})

if (mode === "bare") {
  let counter = 0
  app.get("/login", (_req, res) => {
    res.setHeader("Set-Cookie", `sid=${randomBytes(32).toString("base64url")}; Path=/; HttpOnly`)
    res.send("ok")
  })
  app.get("/get", (_req, res) => {
    res.send(BARE_USER)
  })
  app.get("/incr", (_req, res) => {
    res.send(String(++counter))
  })
  app.get("/new", (_req, res) => {
    res.send("ok")
  })
} else {
  let logins = 0
  app.use(session({
    secret: "a benchmark secret that is long enough",
    resave: false,
    saveUninitialized: false,
    rolling: false,
    store: new session.MemoryStore()
  }))
  app.get("/login", (req, res) => {
    req.session.user = userValue(logins++)
    req.session.count = 0
    res.send("ok")
  })
  app.get("/get", (req, res) => {
    res.send(req.session.user ?? "")
  })
  app.get("/incr", (req, res) => {
    const count = (req.session.count ?? 0) + 1
    req.session.count = count
    res.send(String(count))
  })
  app.get("/new", (req, res) => {
    req.session.user = userValue(logins++)
    res.send("ok")
  })
}

const server = app.listen(0, "127.0.0.1", () => announce((server.address() as AddressInfo).port))
