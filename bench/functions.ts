/**
 * Where the instructions and the misses effect-session adds are, by function: `npx tsx
 * bench/functions.ts [--requests 10000] [--routes incr] [--top 30] [--callers NAME,...]`. The
 * bare app and effect-session of `bench/app.ts` serve their requests in-process under valgrind's
 * callgrind, with its cache and branch simulation (the same as `bench/cache.ts`'s cachegrind),
 * once with 20,000 requests to warm up and once with `--requests` more; the difference is per
 * request. Node runs `--single-threaded` and writes `--perf-basic-prof`'s map of its compiled
 * code, which names the JavaScript functions callgrind sees only as addresses.
 *
 * Per route it prints what effect-session adds to bare, per request, by kind of code (the Effect
 * runtime, V8's builtins, effect-session's own JavaScript, ...) and then its `--top` functions by
 * added instruction-cache misses: instructions (Ir), first-level instruction and data-cache misses
 * (I1, D1) and mispredicted branches. `--callers FindOrderedHashMapEntry,...` adds, for each
 * function whose name contains one of those, who calls it how often and for how many instructions
 * (inclusive: exact for a function that calls no other, such as a `Map` lookup). A function whose
 * compiled code moved during the run may be named after what was at its address first; the totals
 * do not depend on names. The collector's and the compilers' rows move between runs (they work
 * when V8 decides to, in one app's measured requests or the other's), and the C++ row with them
 * (it holds V8's allocation); the others repeat within about 10 %. A route takes some ten minutes.
 */
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { build, root } from "./build.js"
import { argValue, requireValgrind, serveArgs } from "./shared.js"

requireValgrind()

const requests = Number(argValue("requests", "10000"))
const routes = argValue("routes", "incr").split(",")
const top = Number(argValue("top", "30"))
const watched = argValue("callers", "").split(",").filter((name) => name !== "")
const appRun = build()("app-run.ts")

/** The events read from callgrind's output, in the order printed. */
const events = ["Ir", "I1mr", "D1mr", "D1mw", "Bcm", "Bim"] as const
type Costs = Array<number>
const zero = (): Costs => events.map(() => 0)

/** `--perf-basic-prof`'s map: compiled code's address ranges, in the order V8 wrote them. */
const codeMap = (file: string) => {
  const ranges: Array<{ readonly start: number; readonly end: number; readonly name: string; readonly order: number }> =
    []
  for (const line of fs.readFileSync(file, "utf8").split("\n")) {
    const match = /^([0-9a-f]+) ([0-9a-f]+) (.*)$/.exec(line)
    if (match === null) continue
    const start = parseInt(match[1], 16)
    ranges.push({ start, end: start + parseInt(match[2], 16), name: match[3], order: ranges.length })
  }
  ranges.sort((a, b) => a.start - b.start)
  // The latest range that covers an address names it (V8 reuses the space of code it freed).
  return (address: number): string => {
    let low = 0
    let high = ranges.length - 1
    while (low <= high) {
      const middle = (low + high) >> 1
      if (ranges[middle].start <= address) low = middle + 1
      else high = middle - 1
    }
    let found: (typeof ranges)[number] | undefined
    for (let i = high; i >= 0 && i > high - 400; i--) {
      const range = ranges[i]
      if (address < range.end && (found === undefined || range.order > found.order)) found = range
    }
    return found === undefined ? "JS (unnamed)" : `JS ${found.name}`
  }
}

/**
 * What a run cost: each function's own costs, and the calls into the `--callers` functions, as
 * `callee ← caller` with the calls and their inclusive instructions.
 */
interface Profile {
  readonly own: Map<string, Costs>
  readonly calls: Map<string, Costs>
}

const addTo = (costs: Map<string, Costs>, name: string, values: Costs) => {
  const total = costs.get(name) ?? values.map(() => 0)
  values.forEach((value, i) => (total[i] += value))
  costs.set(name, total)
}

/**
 * Reads a callgrind output written with `--dump-instr=yes` (the format's compressed names,
 * relative positions, and `calls=` lines, whose next line is the call's inclusive cost). Code with
 * no symbol (V8's compiled JavaScript) is named by `nameOf`.
 */
const readProfile = (file: string, nameOf: (address: number) => string): Profile => {
  const names = new Map<string, string>()
  const own = new Map<string, Costs>()
  const calls = new Map<string, Costs>()
  let columns: ReadonlyArray<number> = []
  let positions = 1
  let fn = ""
  let callee = ""
  let address = 0
  let calling: number | undefined
  for (const line of fs.readFileSync(file, "utf8").split("\n")) {
    if (line.startsWith("positions:")) {
      positions = line.slice(10).trim().split(/\s+/).length
    } else if (line.startsWith("events:")) {
      const order = line.slice(7).trim().split(/\s+/)
      columns = events.map((event) => order.indexOf(event))
    } else if (line.startsWith("fn=") || line.startsWith("cfn=")) {
      const match = /^c?fn=\((\d+)\)(?: (.*))?$/.exec(line)
      if (match === null) continue
      if (match[2] !== undefined) names.set(match[1], match[2])
      if (line.startsWith("fn=")) fn = names.get(match[1]) ?? ""
      else callee = names.get(match[1]) ?? ""
    } else if (line.startsWith("calls=")) {
      calling = Number(line.slice(6).split(" ")[0])
    } else if (/^[+\-*0-9]/.test(line)) {
      const fields = line.split(" ")
      const position = fields[0]
      address = position === "*"
        ? address
        : position[0] === "+"
        ? address + Number(position.slice(1))
        : position[0] === "-"
        ? address - Number(position.slice(1))
        : Number(position)
      const name = fn.startsWith("0x") ? nameOf(address) : fn
      // The positions (instruction, line) come before the counts; a count left out is zero.
      const values = columns.map((column) => column < 0 ? 0 : Number(fields[positions + column] ?? 0))
      if (calling === undefined) {
        addTo(own, name, values)
      } else {
        if (watched.some((part) => callee.includes(part))) addTo(calls, `${callee} ← ${name}`, [calling, values[0]])
        calling = undefined
      }
    }
  }
  return { own, calls }
}

/** One run under callgrind: the warm-up and `measured` more requests. */
const profile = (app: string, route: string, measured: number): Promise<Profile> =>
  new Promise((resolve, reject) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "bench-functions-"))
    const out = path.join(dir, "callgrind.out")
    const child = spawn("valgrind", [
      "--tool=callgrind",
      "--cache-sim=yes",
      "--branch-sim=yes",
      "--dump-instr=yes",
      "--smc-check=all-non-file",
      `--callgrind-out-file=${out}`,
      process.execPath,
      "--single-threaded",
      "--perf-basic-prof",
      ...serveArgs(appRun, app, route, measured)
    ], { cwd: dir, stdio: ["ignore", "ignore", "pipe"] })
    let log = ""
    child.stderr.setEncoding("utf8").on("data", (text: string) => (log += text))
    child.on("error", reject)
    child.on("close", (code) => {
      // Node under valgrind keeps its pid; V8 writes the map to /tmp whatever TMPDIR says.
      const map = `/tmp/perf-${child.pid}.map`
      try {
        if (code !== 0) throw new Error(`${app} ${route} exited under valgrind (${code}):\n${log.slice(-2000)}`)
        resolve(readProfile(out, codeMap(map)))
      } catch (error) {
        reject(error)
      } finally {
        fs.rmSync(dir, { recursive: true, force: true })
        fs.rmSync(map, { force: true })
      }
    })
  })

/** `after` less `before`, divided by `by`, name by name (a name missing from one counts zero). */
const difference = (after: Map<string, Costs>, before: Map<string, Costs>, by = 1): Map<string, Costs> => {
  const result = new Map<string, Costs>()
  for (const name of new Set([...before.keys(), ...after.keys()])) {
    const base = before.get(name) ?? []
    addTo(result, name, (after.get(name) ?? base.map(() => 0)).map((value, i) => (value - (base[i] ?? 0)) / by))
  }
  return result
}

/** Per request: the run with the measured requests less the warm-up alone (two at a time). */
const perRequest = async (app: string, route: string): Promise<Profile> => {
  const [warm, measured] = await Promise.all([profile(app, route, 0), profile(app, route, requests)])
  return { own: difference(measured.own, warm.own, requests), calls: difference(measured.calls, warm.calls, requests) }
}

/** A shorter name: compiled-code markers and the checkout's path dropped. */
const shortName = (name: string) =>
  name.replace(/JS (JS|Function):[*~^+]?/g, "JS ").replaceAll(`file://${root}/`, "").replaceAll("node_modules/", "")

const kindOf = (name: string): string => {
  if (name.startsWith("JS ")) {
    if (name.includes("/src/")) return "effect-session's JavaScript"
    if (name.includes("effect/dist")) return "the Effect runtime"
    if (name.includes("@effect/platform") || name.includes("find-my-way")) return "@effect/platform and its router"
    if (name.includes("/bench/")) return "the bench's routes and loop"
    if (name.includes("RegExp:")) return "regular expressions"
    return "other JavaScript (Node's own)"
  }
  if (name.startsWith("Builtins_")) return "V8's builtins (property and Map access, calls)"
  if (/Json/.test(name)) return "V8's JSON"
  if (/Scaveng|Evacuat|MarkCompact|Sweeper|Heap::|GCTracer|Marking|RecordMigratedSlot/.test(name)) {
    return "the garbage collector"
  }
  if (/compiler|Compile|Maglev|Turbofan|Baseline/.test(name)) return "the compilers"
  if (/sha256|OPENSSL|EVP_|ossl_/.test(name)) return "OpenSSL (SHA-256)"
  return "V8, Node and libc C++ (allocation, runtime calls)"
}

const sum = (rows: Iterable<Costs>): Costs => {
  const total = zero()
  for (const row of rows) row.forEach((value, i) => (total[i] += value))
  return total
}

const at = (costs: Costs, event: (typeof events)[number]) => costs[events.indexOf(event)]
const cell = (value: number, width = 9) => value.toFixed(0).padStart(width)
const header = `${"Ir".padStart(9)}${"I1".padStart(9)}${"D1".padStart(9)}${"mispred.".padStart(9)}`
const row = (costs: Costs) =>
  `${cell(at(costs, "Ir"))}${cell(at(costs, "I1mr"))}${cell(at(costs, "D1mr") + at(costs, "D1mw"))}${
    cell(at(costs, "Bcm") + at(costs, "Bim"))
  }`

/** `costs` under shorter names, merged where two names become one. */
const renamed = (costs: Map<string, Costs>): Map<string, Costs> => {
  const result = new Map<string, Costs>()
  for (const [name, values] of costs) addTo(result, shortName(name), values)
  return result
}

const byKind = (costs: Map<string, Costs>): Map<string, Costs> => {
  const kinds = new Map<string, Costs>()
  for (const [name, values] of costs) addTo(kinds, kindOf(name), values)
  return kinds
}

console.log(`callgrind, in-process HttpApp, ${requests} requests after 20,000 to warm up (per request)`)
for (const route of routes) {
  const bare = await perRequest("bare", route)
  const session = await perRequest("session", route)
  const bareOwn = renamed(bare.own)
  const added = difference(renamed(session.own), bareOwn)
  const bareKinds = byKind(bareOwn)
  const addedKinds = byKind(added)
  console.log(`\n${route}: bare, and what effect-session adds to it, by kind of code`)
  console.log(`${"".padEnd(50)}${header}   | added ${header}`)
  const kinds = [...new Set([...bareKinds.keys(), ...addedKinds.keys()])].sort((a, b) =>
    at(addedKinds.get(b) ?? zero(), "Ir") - at(addedKinds.get(a) ?? zero(), "Ir")
  )
  for (const kind of kinds) {
    console.log(
      `${kind.padEnd(50)}${row(bareKinds.get(kind) ?? zero())}   |       ${row(addedKinds.get(kind) ?? zero())}`
    )
  }
  console.log(`${"all".padEnd(50)}${row(sum(bareOwn.values()))}   |       ${row(sum(added.values()))}`)
  console.log(`\n${route}: the ${top} functions adding the most instruction-cache misses`)
  console.log(`${header}   function`)
  const ranked = [...added].sort(([, a], [, b]) => at(b, "I1mr") - at(a, "I1mr")).slice(0, top)
  for (const [name, costs] of ranked) console.log(`${row(costs)}   ${name.slice(0, 110)}`)
  if (watched.length === 0) continue
  console.log(`\n${route}: calls into ${watched.join(", ")}, added by effect-session (callee ← caller)`)
  console.log(`${"calls".padStart(9)}${"Ir".padStart(9)}   call`)
  const calls = difference(renamed(session.calls), renamed(bare.calls))
  for (const [name, [count, instructions]] of [...calls].sort(([, a], [, b]) => b[1] - a[1]).slice(0, top)) {
    console.log(`${count.toFixed(1).padStart(9)}${cell(instructions)}   ${name.slice(0, 140)}`)
  }
}
