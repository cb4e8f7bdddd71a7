/**
 * What the benchmark's servers and runner agree on: the routes, the session's two values, and
 * how a server child tells the runner it is listening.
 */
import { spawnSync } from "node:child_process"

/** The value every session holds under `user` (and what the bare servers answer instead). */
export const userValue = (i: number): string => `user-${String(i).padStart(6, "0")}`

/** Same length as any `userValue`: the bare servers' answer to `get`, so the work is comparable. */
export const BARE_USER = userValue(0)

/** The message a server child sends over IPC once it listens. */
export interface ReadyMessage {
  readonly ready: true
  readonly port: number
}

// A child of the runner exits as soon as the runner goes away, even if it crashed or was killed,
// and even while it is still starting (a server pre-filling a million sessions, for example).
if (process.send !== undefined) {
  process.once("disconnect", () => process.exit(0))
}

/** Tells the runner the server listens (or prints the address when started by hand). */
export const announce = (port: number): void => {
  if (process.send === undefined) {
    console.log(`listening on http://127.0.0.1:${port}`)
    return
  }
  const message: ReadyMessage = { ready: true, port }
  if (process.connected) process.send(message)
}

/** `--name value` from argv, or the fallback. */
export const argValue = (name: string, fallback: string): string => {
  const index = process.argv.indexOf(`--${name}`)
  return index >= 0 && index + 1 < process.argv.length ? process.argv[index + 1] : fallback
}

/** Exits with the install command when valgrind is missing (`bench/cache.ts`, `bench/functions.ts`). */
export const requireValgrind = (): void => {
  if (spawnSync("valgrind", ["--version"]).status === 0) return
  console.error("valgrind is not installed: apt-get install -y valgrind")
  process.exit(1)
}

/**
 * The command line after Node's options that runs compiled `app-run.ts` to serve only: 20,000
 * requests to warm up and `requests` more of `route` through `app` (`bench/cache.ts` and
 * `bench/functions.ts` run it under valgrind).
 */
export const serveArgs = (appRun: string, app: string, route: string, requests: number): Array<string> => [
  appRun,
  "--serve",
  app,
  "--route",
  route,
  "--requests",
  String(requests)
]

/** CPU time (user + system) this process has used, in microseconds: served at `GET /__cpu`. */
export const cpuMicros = (): number => {
  const usage = process.cpuUsage()
  return usage.user + usage.system
}

/** The median of `values` (the mean of the middle two for an even count). */
export const median = (values: ReadonlyArray<number>): number => {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
}

/**
 * The load generator's requests for `route`: one prebuilt request per session cookie, which each
 * connection cycles through (a `setupRequest` would rebuild every request and load the load
 * generator instead); `new`, or no cookies, sends none.
 */
export const requestsFor = (
  route: string,
  cookies: ReadonlyArray<string>
): Array<{ method: "GET"; path: string; headers?: Record<string, string> }> =>
  route === "new" || cookies.length === 0
    ? [{ method: "GET", path: `/${route}` }]
    : cookies.map((cookie) => ({ method: "GET", path: `/${route}`, headers: { cookie } }))
