/**
 * What each of effect-session's guarantees costs a request, in instructions: `npx tsx
 * bench/guarantees.ts [--route incr] [--requests 10000] [--only metrics,service]`.
 *
 * The session app of `bench/app.ts` serves its requests in-process under valgrind's callgrind,
 * as built, and then as copies of the build with one guarantee taken out by a patch of the
 * compiled JavaScript (each patch must match where it says, or the run stops before counting).
 * Each build runs twice, with 20,000 requests to warm up and with `--requests` more; the
 * difference is per request. The count is the mutator's, as in the instructions section: the
 * garbage collector's and the JIT compilers' own functions are left out, as they run when they
 * run rather than when a request asks. A build's two counts run side by side; a route takes
 * about half an hour.
 *
 * No build here is one anyone should run: each drops something the library promises. The table
 * is a price list, for what the write targets would take (BENCHMARKS.md, "A tenth round").
 * `service` is valid only here, where requests run one after another: it hands the handler the
 * session through a global instead of filing it under the request for the `Session` tag to find.
 */
import { execFile } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { promisify } from "node:util"
import { build, buildDir, root } from "./build.js"
import { readDump } from "./instructions.js"
import { argValue, requireValgrind, serveArgs } from "./shared.js"

requireValgrind()

const run = promisify(execFile)
const route = argValue("route", "incr")
const requests = Number(argValue("requests", "10000"))
build()

interface Patch {
  /** A file of the build, from its root. */
  readonly file: string
  readonly from: string
  readonly to: string
  /** How many times `from` occurs in `file`. Default 1. */
  readonly count?: number
}

interface Variant {
  readonly name: string
  readonly leavesOut: string
  readonly patches: ReadonlyArray<Patch>
}

const telemetry = "src/internal/telemetry.js"

const variants: ReadonlyArray<Variant> = [
  {
    name: "metrics",
    leavesOut: "the counters and the store-call histogram (SessionMetrics)",
    patches: [
      {
        file: telemetry,
        from: "return (metric, by) => metric.unsafeUpdate(by, labels);",
        to: "return () => { };"
      },
      { file: telemetry, from: "return duration.unsafeUpdate(seconds, labels);", to: "return;" }
    ]
  },
  {
    name: "store-timing",
    leavesOut: "the store calls' timing, metrics and spans (instrumentStore)",
    patches: [{
      file: telemetry,
      from: "export const instrumentStore = (system, store, immediate) => {",
      to: "export const instrumentStore = (system, store, immediate) => { return store;"
    }]
  },
  {
    name: "hashing",
    leavesOut: "hashing at rest: the store key is the token (hashTokenInStore: false)",
    patches: [{
      file: "src/SessionManager.js",
      from: "const storeKeyOf = options.hashTokenInStore ? Token.hash",
      to: "const storeKeyOf = false ? Token.hash"
    }]
  },
  {
    name: "cache-headers",
    leavesOut: "Vary: Cookie, and the Cache-Control that keeps a token out of shared caches",
    patches: [
      {
        file: "src/SessionTransport.js",
        from: "return keepOutOfSharedCaches(HttpServerResponse.setHeader(withoutOwn, \"set-cookie\", line));",
        to: "return HttpServerResponse.setHeader(withoutOwn, \"set-cookie\", line);"
      },
      {
        file: "src/SessionTransport.js",
        from: "decorate: (response) => appendHeaderValue(response, \"Vary\", \"Cookie\"),",
        to: "decorate: (response) => response,"
      }
    ]
  },
  {
    name: "service",
    leavesOut: "the Session's service: filing it under the request, the tag's lookups, the yield*",
    patches: [
      {
        file: "src/SessionMiddleware.js",
        from: "                ? runFiled(request, session, app, continuations)",
        to: "                ? (globalThis.__session = session, Effect.matchCauseEffect(app, continuations))"
      },
      {
        file: "bench/routes.js",
        from: "const session = yield* Session;",
        to: "const session = globalThis.__session;",
        count: 4
      }
    ]
  }
]

const only = argValue("only", "").split(",").filter((name) => name !== "")
const unknown = only.filter((name) => !variants.some((variant) => variant.name === name))
if (unknown.length > 0) {
  console.error(`--only: no guarantee named ${unknown.join(", ")} (${variants.map((v) => v.name).join(", ")})`)
  process.exit(2)
}
const chosen = only.length === 0 ? variants : variants.filter((variant) => only.includes(variant.name))
const all: Variant = {
  name: "all",
  leavesOut: "all of the above",
  patches: chosen.flatMap((variant) => variant.patches)
}

const work = fs.mkdtempSync(path.join(os.tmpdir(), "bench-guarantees-"))
process.on("exit", () => fs.rmSync(work, { recursive: true, force: true }))

/** A copy of the build with `patches` applied; throws when one does not match as it says. */
const patched = (variant: Variant): string => {
  const dir = path.join(work, variant.name)
  fs.cpSync(buildDir, dir, { recursive: true })
  for (const patch of variant.patches) {
    const file = path.join(dir, patch.file)
    const text = fs.readFileSync(file, "utf8")
    const found = text.split(patch.from).length - 1
    if (found !== (patch.count ?? 1)) {
      throw new Error(`${variant.name}: ${patch.file} has ${found} of the text to patch, not ${patch.count ?? 1}`)
    }
    fs.writeFileSync(file, text.replaceAll(patch.from, patch.to))
  }
  // Node resolves the build's packages from the project's node_modules, as the build does.
  fs.symlinkSync(path.join(root, "node_modules"), path.join(dir, "node_modules"))
  return dir
}

/** Mutator instructions of `app` in the build at `dir` after `extra` requests past the warm-up. */
const count = async (dir: string, app: string, extra: number): Promise<number> => {
  const out = path.join(work, `${path.basename(dir)}-${app}-${extra}.out`)
  await run(
    "valgrind",
    [
      "--tool=callgrind",
      `--callgrind-out-file=${out}`,
      process.execPath,
      "--single-threaded",
      // Fixed seeds: the same hash-table layouts in every count (a `Map` lookup's cost depends on them).
      "--hash-seed=1",
      "--random-seed=1",
      ...serveArgs(path.join(dir, "bench", "app-run.js"), app, route, extra)
    ],
    { maxBuffer: 1 << 26 }
  )
  const dump = await readDump(out)
  fs.rmSync(out)
  return dump.total - dump.gc - dump.compiler
}

/** Mutator instructions per request of `app` in the build at `dir`. */
const perRequest = async (dir: string, app: string): Promise<number> => {
  const [warm, measured] = await Promise.all([count(dir, app, 0), count(dir, app, requests)])
  return (measured - warm) / requests
}

const builds: Array<{ readonly variant: Variant | undefined; readonly app: string; readonly dir: string }> = [
  { variant: undefined, app: "bare", dir: buildDir },
  { variant: undefined, app: "session", dir: buildDir },
  ...[...chosen, ...(chosen.length > 1 ? [all] : [])].map((variant) => ({
    variant,
    app: "session",
    dir: patched(variant)
  }))
]

const k = (n: number) => `${(n / 1000).toFixed(1)} K`

console.error(`${builds.length} builds, ${requests} requests of ${route} each after 20,000 to warm up`)
const results: Array<number> = []
for (const { app, dir, variant } of builds) {
  // Two counts of one build at a time: the machine has two cores to spare at most.
  const result = await perRequest(dir, app)
  results.push(result)
  console.error(`  ${variant?.name ?? app}: ${k(result)}`)
}

const [bare, full] = results
console.log(`\n${route}: mutator instructions per request, in-process (bench/app.ts's apps)`)
console.log("| build | leaves out | instructions | added to bare | less than effect-session |")
console.log("|---|---|---|---|---|")
console.log(`| bare | everything | ${k(bare)} | | |`)
console.log(`| effect-session | nothing | ${k(full)} | +${k(full - bare)} | |`)
builds.slice(2).forEach(({ variant }, i) => {
  const value = results[i + 2]
  const saved = full - value
  console.log(
    `| ${variant?.name} | ${variant?.leavesOut} | ${k(value)} | +${k(value - bare)} | ${k(saved)} (${
      Math.round(saved / (full - bare) * 100)
    } %) |`
  )
})
