/**
 * The stores the effect-session server can run on. The memory store is always there; the Redis
 * and PostgreSQL stores are used when their modules exist and their servers answer, and are
 * otherwise reported as unavailable with the reason (the runner prints it and skips their rows).
 */
import * as Layer from "effect/Layer"
import * as net from "node:net"
import type { SessionStore } from "../src/SessionStore.js"
import * as MemoryStore from "../src/SessionStore/Memory.js"

export type StoreLayer =
  | { readonly _tag: "Available"; readonly layer: Layer.Layer<SessionStore, unknown> }
  | { readonly _tag: "Unavailable"; readonly reason: string }

export const redisAddress = { host: "127.0.0.1", port: Number(process.env.EFFECT_SESSION_REDIS_PORT ?? 63790) }
export const pgAddress = {
  host: "127.0.0.1",
  port: Number(process.env.EFFECT_SESSION_PG_PORT ?? 54329),
  database: "effect_session",
  username: "postgres"
}

export const isReachable = (host: string, port: number, timeoutMs = 1000): Promise<boolean> =>
  new Promise((resolve) => {
    const socket = net.connect({ host, port })
    const done = (ok: boolean) => {
      socket.destroy()
      resolve(ok)
    }
    socket.setTimeout(timeoutMs, () => done(false))
    socket.once("connect", () => done(true))
    socket.once("error", () => done(false))
  })

/** Imports an optional store module; a missing module (or driver) makes the store unavailable. */
const importOptional = async <A>(path: string): Promise<A | undefined> => {
  try {
    return (await import(path)) as A
  } catch (error) {
    if (error instanceof Error && "code" in error && error.code === "ERR_MODULE_NOT_FOUND") return undefined
    throw error
  }
}

/**
 * The store a server runs on. `sessions`: how many the server will hold at most (the memory
 * store's entry cap is set above it: the bench measures speed, not the cap).
 */
export const storeLayer = async (name: string, sessions = 0): Promise<StoreLayer> => {
  switch (name) {
    case "memory":
      return { _tag: "Available", layer: MemoryStore.layer({ maxEntries: sessions + 1_000_000 }) }
    case "redis":
      return redisLayer()
    case "pg":
      return pgLayer()
    default:
      return { _tag: "Unavailable", reason: `unknown store ${name}` }
  }
}

const redisLayer = async (): Promise<StoreLayer> => {
  const module = await importOptional<typeof import("../src/SessionStore/Redis.js")>("../src/SessionStore/Redis.js")
  if (module === undefined) {
    return { _tag: "Unavailable", reason: "src/SessionStore/Redis.ts or its driver ioredis is missing" }
  }
  if (!(await isReachable(redisAddress.host, redisAddress.port))) {
    return {
      _tag: "Unavailable",
      reason: `no Redis at ${redisAddress.host}:${redisAddress.port} (scripts/services/redis.sh start)`
    }
  }
  return {
    _tag: "Available",
    layer: module.layer({
      client: { host: redisAddress.host, port: redisAddress.port },
      prefix: "effect-session-bench:"
    })
  }
}

const pgLayer = async (): Promise<StoreLayer> => {
  const module = await importOptional<typeof import("../src/SessionStore/Pg.js")>("../src/SessionStore/Pg.js")
  if (module === undefined) {
    return { _tag: "Unavailable", reason: "src/SessionStore/Pg.ts or its driver @effect/sql-pg is missing" }
  }
  if (!(await isReachable(pgAddress.host, pgAddress.port))) {
    return {
      _tag: "Unavailable",
      reason: `no PostgreSQL at ${pgAddress.host}:${pgAddress.port} (scripts/services/postgres.sh start)`
    }
  }
  return {
    _tag: "Available",
    layer: module.layer({
      client: {
        host: pgAddress.host,
        port: pgAddress.port,
        database: pgAddress.database,
        username: pgAddress.username
      },
      table: "bench_sessions"
    })
  }
}
