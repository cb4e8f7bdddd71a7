/**
 * The longest event-loop stall while the memory store's sweep expires its sessions: run as
 * `node --expose-gc --import tsx bench/sweep.ts [--sessions 1000000] [--live 10000]`. Prints one
 * JSON object.
 *
 * The store is filled with sessions that expire a moment later and, mixed in among them, `--live`
 * sessions that do not (payloads of the size the manager writes for a two-value session). The
 * heap is then collected once: the sessions a real sweep expires have lived out their lifetime,
 * so they sit in the old generation; without it the young generation still holds the last
 * sessions the fill made, and a young collection that lands in the sweep's window copies them
 * (11–18 ms, measured: BENCHMARKS.md, "The sweep's window"). Once they have expired, the same sweep
 * the store's background fiber runs is started while two probes watch the event loop:
 * `perf_hooks.monitorEventLoopDelay` (resolution 1 ms) and a `setImmediate` chain that records
 * the longest gap between two of its turns (wall time, and the process's CPU time in a gap).
 * A `PerformanceObserver` names the garbage collections that ran inside the sweep's window and
 * the one (if any) that overlapped the longest gap.
 */
import * as Effect from "effect/Effect"
import { randomBytes } from "node:crypto"
import { constants, monitorEventLoopDelay, performance, PerformanceObserver } from "node:perf_hooks"
import type { PerformanceEntry } from "node:perf_hooks"
import * as MemoryStore from "../src/SessionStore/Memory.js"
import { argValue, userValue } from "./shared.js"

const sessions = Number(argValue("sessions", "1000000"))
const live = Number(argValue("live", "10000"))
const collect = (globalThis as { gc?: () => void }).gc
if (collect === undefined) throw new Error("run with node --expose-gc")

const kindOf = (gc: PerformanceEntry): string => {
  const kind = (gc as PerformanceEntry & { readonly detail?: { readonly kind?: number } | null }).detail?.kind
  return kind === constants.NODE_PERFORMANCE_GC_MAJOR
    ? "major"
    : kind === constants.NODE_PERFORMANCE_GC_MINOR
    ? "minor"
    : kind === constants.NODE_PERFORMANCE_GC_INCREMENTAL
    ? "incremental"
    : "weak callbacks"
}

const result = await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
  const store = yield* MemoryStore.make({ cleanupInterval: 0, maxEntries: sessions + live })
  const now = Date.now()
  const expiresAt = now + 2_000
  const total = sessions + live
  // Every `spacing`th session lives on: spread through the fill, and by their random keys through
  // the store's shards.
  const spacing = Math.floor(total / Math.max(1, live))
  for (let i = 0; i < total; i++) {
    // What the JSON codec writes for { user, count }.
    const data = `{"deadline":${now + 86_400_000},"committedAt":${now},"values":{"user":"${userValue(i)}","count":0}}`
    const lives = live > 0 && i % spacing === 0 && i < spacing * live
    yield* store.commit(randomBytes(32).toString("base64url"), data, lives ? now + 3_600_000 : expiresAt, "create")
  }
  const filled = yield* store.size
  // Collected a second before the sweep starts (the sessions have expired by then), so that the
  // collector's own work after it (sweeping freed pages on its threads) is done.
  collect()
  yield* Effect.sleep(Math.max(1_000, expiresAt - Date.now() + 50))

  const histogram = monitorEventLoopDelay({ resolution: 1 })
  // Wall time between two turns, and the CPU time this process used in that gap: on a busy
  // machine the operating system can deschedule the process, which the wall-clock gap counts
  // as a stall; the CPU gap does not.
  const cpuMs = () => {
    const usage = process.cpuUsage()
    return (usage.user + usage.system) / 1000
  }
  let longestGap = 0
  let longestGapEnd = 0
  let longestCpuGap = 0
  let probing = true
  let last = performance.now()
  let lastCpu = cpuMs()
  const probe = () => {
    const at = performance.now()
    const cpu = cpuMs()
    if (at - last > longestGap) {
      longestGap = at - last
      longestGapEnd = at
    }
    longestCpuGap = Math.max(longestCpuGap, cpu - lastCpu)
    last = at
    lastCpu = cpu
    if (probing) setImmediate(probe)
  }
  const collections: Array<PerformanceEntry> = []
  const observer = new PerformanceObserver((list) => collections.push(...list.getEntries()))
  observer.observe({ entryTypes: ["gc"] })
  histogram.enable()
  setImmediate(probe)
  const started = performance.now()
  const deleted = yield* store.sweep
  const sweepMs = performance.now() - started
  probing = false
  histogram.disable()
  // The observer is told of a collection on a later turn.
  yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 50)))
  observer.disconnect()
  const inSweep = collections.filter((gc) => gc.startTime + gc.duration >= started && gc.startTime <= started + sweepMs)
  const inLongestGap = inSweep.filter((gc) =>
    gc.startTime < longestGapEnd && gc.startTime + gc.duration > longestGapEnd - longestGap
  )
  const described = (gcs: ReadonlyArray<PerformanceEntry>) =>
    gcs.map((gc) => `${kindOf(gc)} ${Math.round(gc.duration * 10) / 10} ms`)
  return {
    sessions: filled,
    deleted,
    kept: yield* store.size,
    sweepMs: Math.round(sweepMs),
    maxStallMs: Math.round(longestGap * 10) / 10,
    maxStallCpuMs: Math.round(longestCpuGap * 10) / 10,
    eventLoopDelayMaxMs: Math.round(histogram.max / 1e5) / 10,
    eventLoopDelayP99Ms: Math.round(histogram.percentile(99) / 1e5) / 10,
    collections: described(inSweep),
    collectionsInLongestStall: described(inLongestGap)
  }
})))
console.log(JSON.stringify(result))
// The runner's IPC channel would keep this process alive.
if (process.connected) process.disconnect()
