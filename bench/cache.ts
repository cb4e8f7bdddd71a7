/**
 * What a request's instructions cost beyond their count: `npx tsx bench/cache.ts [--requests
 * 10000] [--routes get,incr,new]`. Each app of `bench/app.ts` (bare, the minimal middleware,
 * effect-session) serves its requests in-process under valgrind's cachegrind, which simulates the
 * host's caches: once with 20,000 requests to warm up and once with `--requests` more, so the
 * difference is what the measured requests did. Node runs `--single-threaded` (no compiler or
 * collector threads, which cachegrind would count with the main thread).
 *
 * Per request: instructions, first-level instruction-cache misses (I1), data-cache misses (D1)
 * and mispredicted branches (cachegrind's simple predictor); for bare, each per 100 of its
 * instructions, and for the minimal middleware and effect-session, per 100 of the instructions
 * they add to bare. A miss or a mispredict costs a dozen cycles or more where an instruction
 * costs a fraction of one, so added work that misses more often per instruction costs more time
 * than its count says: the kind of cost that keeps the http section's req/s ratios below the
 * instructions section's. At 10,000 requests (the default) the counts repeat to within a few
 * percent; with far fewer, a collection that lands in one run and not the other swamps them. A
 * route takes some ten minutes.
 */
import { spawn } from "node:child_process"
import { build } from "./build.js"
import { argValue, requireValgrind, serveArgs } from "./shared.js"

requireValgrind()

const requests = Number(argValue("requests", "10000"))
const routes = argValue("routes", "get,incr,new").split(",")
const apps = ["bare", "minimal", "session"] as const
const appRun = build()("app-run.ts")

interface Counts {
  readonly instructions: number
  readonly i1: number
  readonly d1: number
  readonly mispredicts: number
}

// The first number of a line of cachegrind's summary (`==pid== D1  misses:   1,234 ( ... )`).
const countOf = (summary: string, label: string): number => {
  const line = summary.split("\n").find((text) => new RegExp(`==\\s${label}\\s*:`).test(text))
  if (line === undefined) throw new Error(`cachegrind printed no "${label}" line:\n${summary.slice(-2000)}`)
  return Number(line.split(":")[1].trim().split(/\s+/)[0].replace(/,/g, ""))
}

/** The whole process's counts for `app` serving the warm-up and then `measured` requests. */
const simulate = (app: string, route: string, measured: number): Promise<Counts> =>
  new Promise((resolve, reject) => {
    const child = spawn("valgrind", [
      "--tool=cachegrind",
      "--cache-sim=yes",
      "--branch-sim=yes",
      "--smc-check=all-non-file",
      "--cachegrind-out-file=/dev/null",
      process.execPath,
      "--single-threaded",
      ...serveArgs(appRun, app, route, measured)
    ], { stdio: ["ignore", "ignore", "pipe"] })
    let summary = ""
    child.stderr.setEncoding("utf8").on("data", (text: string) => (summary += text))
    child.on("error", reject)
    child.on("close", (code) => {
      if (code !== 0) {
        return reject(new Error(`${app} ${route} exited under valgrind (${code}):\n${summary.slice(-2000)}`))
      }
      resolve({
        instructions: countOf(summary, "I +refs"),
        i1: countOf(summary, "I1 +misses"),
        d1: countOf(summary, "D1 +misses"),
        mispredicts: countOf(summary, "Mispredicts")
      })
    })
  })

/** Per request: the run with the measured requests less the warm-up alone (two at a time). */
const perRequest = async (app: string, route: string): Promise<Counts> => {
  const [warm, measured] = await Promise.all([simulate(app, route, 0), simulate(app, route, requests)])
  return {
    instructions: (measured.instructions - warm.instructions) / requests,
    i1: (measured.i1 - warm.i1) / requests,
    d1: (measured.d1 - warm.d1) / requests,
    mispredicts: (measured.mispredicts - warm.mispredicts) / requests
  }
}

const cell = (text: string, width: number) => text.padStart(width)
const thousands = (value: number) => `${(value / 1000).toFixed(1)} K`
const per100 = (misses: number, instructions: number) =>
  (instructions > 0 ? (100 * misses) / instructions : 0).toFixed(2)

const columns: ReadonlyArray<readonly [name: string, short: string, of: (counts: Counts) => number]> = [
  ["I1 misses", "I1", (counts) => counts.i1],
  ["D1 misses", "D1", (counts) => counts.d1],
  ["mispredicts", "mispred.", (counts) => counts.mispredicts]
]

console.log(`cachegrind, in-process HttpApp, ${requests} requests after 20,000 to warm up (per request)`)
console.log("per 100 instructions: bare's own, then what the minimal middleware and effect-session add to bare")
console.log(
  `${"route".padEnd(6)}${"app".padEnd(9)}${cell("instructions", 13)}` +
    columns.map(([name]) => cell(name, 13)).join("") +
    columns.map(([, short]) => cell(`${short} /100`, 14)).join("")
)
for (const route of routes) {
  const counts = new Map<string, Counts>()
  for (const app of apps) counts.set(app, await perRequest(app, route))
  const bare = counts.get("bare")!
  for (const app of apps) {
    const own = counts.get(app)!
    const added = (of: (counts: Counts) => number) => app === "bare" ? of(own) : of(own) - of(bare)
    const instructions = added((counts) => counts.instructions)
    console.log(
      `${route.padEnd(6)}${app.padEnd(9)}${cell(thousands(own.instructions), 13)}` +
        columns.map(([, , of]) => cell(thousands(of(own)), 13)).join("") +
        columns.map(([, , of]) => cell(per100(added(of), instructions), 14)).join("")
    )
  }
}
