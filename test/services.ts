/**
 * Where the real servers started by `scripts/start-services.sh` listen, and whether they are up.
 * Every address is on loopback.
 */
import { execFileSync } from "node:child_process"
import * as net from "node:net"
import * as path from "node:path"

export const postgres = {
  host: "127.0.0.1",
  port: Number(process.env.EFFECT_SESSION_PG_PORT ?? 54329),
  database: "effect_session",
  username: "postgres"
}

export const mysql = {
  host: "127.0.0.1",
  port: Number(process.env.EFFECT_SESSION_MYSQL_PORT ?? 33069),
  database: "effect_session",
  username: "root"
}

export const redis = {
  host: "127.0.0.1",
  port: Number(process.env.EFFECT_SESSION_REDIS_PORT ?? 63790)
}

export const sentinel = {
  host: "127.0.0.1",
  port: Number(process.env.EFFECT_SESSION_SENTINEL_PORT ?? 26390),
  masterName: "effect-session"
}

/** Whether something accepts TCP connections at host:port (checked once, at collection time). */
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

/**
 * Runs `scripts/services/<name>.sh <action>`: tests use it to stop and restart a real server
 * (`crash`, where the script has it, stops it at once, as if it died).
 */
export const service = (name: string, action: "start" | "stop" | "crash"): void => {
  execFileSync("bash", [path.join(import.meta.dirname, "..", "scripts", "services", `${name}.sh`), action], {
    stdio: "inherit"
  })
}

/** A read-only replica of `redis` (scripts/services/redis-replica.sh): it answers writes with READONLY. */
export const redisReplica = {
  host: "127.0.0.1",
  port: Number(process.env.EFFECT_SESSION_REDIS_REPLICA_PORT ?? 63791)
}
