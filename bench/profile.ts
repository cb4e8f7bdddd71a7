/**
 * Profiles one server on one route: `npx tsx bench/profile.ts [--server effect-session] [--route get]
 * [--duration 5] [--top 25]`. Starts the server with `node --cpu-prof`, loads it with autocannon,
 * stops it and prints the functions with the most self time (the `.cpuprofile` is kept in
 * `.tmp/profiles/` for Chrome DevTools). The server runs compiled, as in `npm run bench`.
 */
import autocannon from "autocannon"
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { build, root } from "./build.js"
import { argValue, type ReadyMessage, requestsFor } from "./shared.js"

const server = argValue("server", "effect-session")
const route = argValue("route", "get")
const duration = Number(argValue("duration", "5"))
const top = Number(argValue("top", "25"))
const [framework, mode] = server.startsWith("bare-")
  ? [server.slice(5), "bare"]
  : [server.replace("-session", ""), "session"]

const compiled = build()
const dir = path.join(root, ".tmp", "profiles")
fs.mkdirSync(dir, { recursive: true })
const before = new Set(fs.readdirSync(dir))
const child = spawn(
  process.execPath,
  [
    "--cpu-prof",
    "--cpu-prof-interval",
    "100",
    "--cpu-prof-dir",
    dir,
    compiled(`servers/${framework}.ts`),
    "--mode",
    mode
  ],
  { stdio: ["ignore", "inherit", "inherit", "ipc"] }
)
process.on("exit", () => child.kill("SIGKILL"))
const port = await new Promise<number>((resolve) => child.once("message", (m: ReadyMessage) => resolve(m.port)))

const cookies: Array<string> = []
for (let i = 0; i < 64; i++) {
  const response = await fetch(`http://127.0.0.1:${port}/login`)
  await response.arrayBuffer()
  cookies.push(response.headers.getSetCookie()[0].split(";")[0])
}
const result = await autocannon({
  url: `http://127.0.0.1:${port}`,
  connections: 20,
  duration,
  requests: requestsFor(route, cookies)
})
console.log(
  `${server} ${route}: ${
    Math.round(result.requests.average)
  } req/s, p99 ${result.latency.p99} ms, ${result.requests.total} requests`
)
await new Promise<void>((resolve) => {
  child.once("exit", () => resolve())
  child.disconnect()
})

interface ProfileNode {
  readonly id: number
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number }
  readonly hitCount?: number
}
const file = fs.readdirSync(dir).find((name) => !before.has(name) && name.endsWith(".cpuprofile"))
if (file === undefined) throw new Error("no profile written")
const profile = JSON.parse(fs.readFileSync(path.join(dir, file), "utf8")) as { nodes: ReadonlyArray<ProfileNode> }
const self = new Map<string, number>()
let total = 0
for (const node of profile.nodes) {
  const hits = node.hitCount ?? 0
  total += hits
  const { functionName, lineNumber, url } = node.callFrame
  const where = `${functionName || "(anonymous)"} ${
    url.replace(/^.*node_modules\//, "").replace(/^file:\/\/.*\/work\/main\//, "")
  }:${lineNumber + 1}`
  self.set(where, (self.get(where) ?? 0) + hits)
}
console.log(`profile: ${path.join(dir, file)}`)
for (const [where, hits] of [...self].sort((a, b) => b[1] - a[1]).slice(0, top)) {
  console.log(`${((hits / total) * 100).toFixed(1).padStart(5)}%  ${where}`)
}
