/**
 * The instructions section of `npm run bench`: the http section's servers run under Valgrind's
 * callgrind, which counts the instructions each request costs the server. The work a request
 * asks for counts the same whatever else the machine is doing (only when V8 collects and compiles
 * moves with the load, and those are counted apart), so it ranks two servers a few percent apart,
 * which the CPU column of the http section cannot on a shared host (see BENCHMARKS.md, "Method").
 *
 * Each server and route: the server starts under callgrind with counting off, is warmed up with
 * `warmup` requests (V8 has optimized the hot code by then), then counts `windows` windows of
 * `requests` requests each, zeroing and dumping the count around each window. A window's count
 * is every instruction the process ran in user space while it served those requests, in all its
 * threads (the garbage collector's and the compiler's too). The kernel's share (the socket
 * calls) is not counted: it is about the same for two servers on one framework.
 *
 * The median window is the headline; the mean is beside it, as a major collection lands in some
 * windows and not others. Each window is also split by function name: the garbage collector's,
 * the JIT compilers' and the rest (the mutator), which is steadier still (see `InstructionCount`).
 */
import autocannon from "autocannon"
import { type ChildProcess, execFile, spawn, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { promisify } from "node:util"
import { median, type ReadyMessage, requestsFor } from "./shared.js"

const run = promisify(execFile)

export type Route = "get" | "incr" | "new"

export interface ServerSpec {
  readonly name: string
  readonly file: string
  readonly args: ReadonlyArray<string>
  readonly routes?: ReadonlyArray<Route> | undefined
}

export interface Settings {
  /** Requests before counting starts. */
  readonly warmup: number
  /** Windows counted per server and route. */
  readonly windows: number
  /** Requests per window. */
  readonly requests: number
  readonly connections: number
  /** Measurements run at once (each is one server process and its load). */
  readonly parallel: number
}

export interface InstructionCount {
  readonly server: string
  readonly route: Route
  /** Instructions per request, window by window. */
  readonly windows: ReadonlyArray<number>
  readonly median: number
  readonly mean: number
  /**
   * The median window without the garbage collector's and the JIT compilers' own functions:
   * the work the requests asked for, steadier than the total (a collection or a compilation
   * lands in some windows and not others).
   */
  readonly mutator: number
  /** The garbage collector's own functions, mean per request over the windows. */
  readonly gc: number
  /** The JIT compilers' own functions, mean per request over the windows. */
  readonly compiler: number
}

/** Why the section cannot run here, or undefined when it can. */
export const unavailable = (): string | undefined =>
  spawnSync("valgrind", ["--version"]).status === 0 && spawnSync("callgrind_control", ["--version"]).status === 0
    ? undefined
    : "valgrind (with callgrind_control) is not installed: apt-get install -y valgrind"

/** Starts `spec` under callgrind, counting off; resolves with the process and its port. */
const start = (command: ReadonlyArray<string>, out: string, track: (child: ChildProcess) => void) =>
  new Promise<{ readonly child: ChildProcess; readonly port: number }>((resolve, reject) => {
    const [executable, ...args] = [
      "valgrind",
      "--tool=callgrind",
      "--instr-atstart=no",
      // V8 writes and rewrites its machine code in memory: Valgrind must notice (not in files).
      "--smc-check=all-non-file",
      `--callgrind-out-file=${out}`,
      ...command
    ]
    const child = spawn(executable, args, { stdio: ["ignore", "ignore", "pipe", "ipc"] })
    track(child)
    let stderr = ""
    child.stderr?.on("data", (chunk: Buffer) => {
      stderr = (stderr + chunk.toString()).slice(-4000)
    })
    const timer = setTimeout(() => {
      child.kill("SIGKILL")
      reject(new Error(`${command.join(" ")} did not start under valgrind within 180 s: ${stderr}`))
    }, 180_000)
    child.once("message", (message: ReadyMessage) => {
      clearTimeout(timer)
      resolve({ child, port: message.port })
    })
    child.once("exit", (code) => {
      clearTimeout(timer)
      reject(new Error(`${command.join(" ")} exited under valgrind (${code}): ${stderr}`))
    })
  })

const load = async (
  port: number,
  route: Route,
  cookies: ReadonlyArray<string>,
  amount: number,
  connections: number
) => {
  const requests = requestsFor(route, cookies)
  const result = await autocannon({ url: `http://127.0.0.1:${port}`, connections, amount, requests, timeout: 120 })
  if (result.errors > 0 || result.non2xx > 0 || result.requests.total !== amount) {
    throw new Error(`${result.requests.total} of ${amount} requests, ${result.errors} errors, ${result.non2xx} non-2xx`)
  }
}

// V8's garbage collector and its compilers, by the C++ names callgrind gives their functions
// (self cost: a function they call elsewhere, `malloc` say, stays with the rest).
const GC_FUNCTIONS = new RegExp(
  "v8::internal::(Heap::|HeapAllocator|Scaveng|MarkCompact|Minor|MarkingVisitor|MarkingState|MarkingWorklist|" +
    "MarkingBarrier|ConcurrentMarking|IncrementalMarking|Sweeper|Evacuat|PagedSpace|NewSpace|SemiSpace|" +
    "LargeObjectSpace|MemoryAllocator|MemoryChunk|GCTracer|RememberedSet|SlotSet|TypedSlot|Pretenuring|" +
    "ArrayBufferSweeper|EphemeronRemembered|RecordMigratedSlot|FreeList|MainAllocator|GlobalHandles|WeakObjects|" +
    "RootScavengeVisitor|IterateAndScavenge|PointersUpdating|HeapObject::SizeFromMap|" +
    "BodyDescriptorBase::IteratePointers<v8::internal::(Scaveng|Marking|Concurrent|IterateAndScavenge|Evacuat|" +
    "Record|Pointers|Main))|heap::base::|cppgc::|_Map_base<v8::internal::MemoryChunk"
)
const COMPILER_FUNCTIONS = new RegExp(
  "v8::internal::(compiler::|maglev::|turboshaft::|baseline::|interpreter::|Compiler::|OptimizingCompileDispatcher|" +
    "Zone::|ZoneList|Deoptimizer|Parser|Scanner|AstNode|SourcePosition|CodeGenerator|Assembler|MacroAssembler|" +
    "OptimizedCompilationInfo|BytecodeGenerator|RelocIterator|AccountingAllocator)"
)

/** One dump's instructions: all of them, and those of the garbage collector and the JIT compilers. */
export interface Dump {
  readonly total: number
  readonly gc: number
  readonly compiler: number
}

export const readDump = async (file: string): Promise<Dump> => {
  const { stdout } = await run("callgrind_annotate", ["--inclusive=no", "--threshold=100", file], {
    maxBuffer: 1 << 28
  })
  let total = 0
  let gc = 0
  let compiler = 0
  for (const line of stdout.split("\n")) {
    const match = /^\s*([\d,]+)(?: \([^)]*\))?\s+(.*)$/.exec(line)
    if (match === null) continue
    const count = Number(match[1].replaceAll(",", ""))
    if (match[2].includes("PROGRAM TOTALS")) total = count
    else if (GC_FUNCTIONS.test(match[2])) gc += count
    else if (COMPILER_FUNCTIONS.test(match[2])) compiler += count
  }
  if (total === 0) throw new Error(`${file}: no program totals`)
  return { total, gc, compiler }
}

/**
 * One server on one route: `settings.windows` counts, per request. `command` starts the server
 * (it announces its port over IPC, as the http section's do); `sessions` logs in on it.
 */
export const measure = async (
  command: ReadonlyArray<string>,
  spec: ServerSpec,
  route: Route,
  settings: Settings,
  sessions: (port: number) => Promise<ReadonlyArray<string>>,
  track: (child: ChildProcess) => void
): Promise<InstructionCount> => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "bench-callgrind-"))
  const out = path.join(dir, "callgrind.out")
  const { child, port } = await start(command, out, track)
  const control = (option: string) => run("callgrind_control", [option, String(child.pid)])
  try {
    const cookies = route === "new" ? [] : await sessions(port)
    await load(port, route, cookies, settings.warmup, settings.connections)
    await control("--instr=on")
    for (let window = 0; window < settings.windows; window++) {
      await control("--zero")
      await load(port, route, cookies, settings.requests, settings.connections)
      await control("--dump")
    }
    await control("--instr=off")
    const dumps = await Promise.all(Array.from({ length: settings.windows }, (_, i) => readDump(`${out}.${i + 1}`)))
    const perRequest = (pick: (dump: Dump) => number) => dumps.map((dump) => Math.round(pick(dump) / settings.requests))
    const windows = perRequest((dump) => dump.total)
    const mean = (values: ReadonlyArray<number>) => Math.round(values.reduce((sum, n) => sum + n, 0) / values.length)
    return {
      server: spec.name,
      route,
      windows,
      median: Math.round(median(windows)),
      mean: mean(windows),
      mutator: Math.round(median(perRequest((dump) => dump.total - dump.gc - dump.compiler))),
      gc: mean(perRequest((dump) => dump.gc)),
      compiler: mean(perRequest((dump) => dump.compiler))
    }
  } finally {
    child.kill("SIGKILL")
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

/**
 * Counts every server of `specs` on each of its routes, `settings.parallel` at a time (the work
 * counts the same on a shared machine; only the collector's timing moves).
 */
export const runInstructions = async (
  specs: ReadonlyArray<ServerSpec>,
  routes: ReadonlyArray<Route>,
  settings: Settings,
  commandOf: (spec: ServerSpec) => ReadonlyArray<string>,
  sessions: (spec: ServerSpec, port: number) => Promise<ReadonlyArray<string>>,
  track: (child: ChildProcess) => void,
  log: (message: string) => void
): Promise<Array<InstructionCount>> => {
  const jobs = routes.flatMap((route) =>
    specs.filter((spec) => spec.routes?.includes(route) ?? true).map((spec) => ({ spec, route }))
  )
  const results: Array<InstructionCount> = []
  let next = 0
  const worker = async () => {
    while (next < jobs.length) {
      const { route, spec } = jobs[next++]
      const count = await measure(commandOf(spec), spec, route, settings, (port) => sessions(spec, port), track)
      log(
        `  ${route.padEnd(4)} ${spec.name.padEnd(22)} ${count.median} instructions/request (windows ${
          count.windows.join(" ")
        })`
      )
      results.push(count)
    }
  }
  await Promise.all(Array.from({ length: Math.max(1, settings.parallel) }, worker))
  return routes.flatMap((route) =>
    specs.flatMap((spec) => results.filter((r) => r.route === route && r.server === spec.name))
  )
}
