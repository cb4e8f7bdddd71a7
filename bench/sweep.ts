/**
 * The longest event-loop stall while the memory store's sweep expires its sessions: run as
 * `node --import tsx bench/sweep.ts [--sessions 1000000]`. Prints one JSON object.
 *
 * The store is filled with sessions that expire a moment later (payloads of the size the
 * manager writes for a two-value session); once they have expired, the same sweep the store's
 * background fiber runs is started while two probes watch the event loop:
 * `perf_hooks.monitorEventLoopDelay` (resolution 1 ms) and a `setImmediate` chain that records
 * the longest gap between two of its turns (wall time, and the process's CPU time in a gap).
 */
import * as Effect from "effect/Effect"
import { randomBytes } from "node:crypto"
import { monitorEventLoopDelay, performance } from "node:perf_hooks"
import * as MemoryStore from "../src/SessionStore/Memory.js"
import { argValue, userValue } from "./shared.js"

const sessions = Number(argValue("sessions", "1000000"))

const result = await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
  const store = yield* MemoryStore.make({ cleanupInterval: 0, maxEntries: sessions })
  const now = Date.now()
  const expiresAt = now + 2_000
  for (let i = 0; i < sessions; i++) {
    // What the JSON codec writes for { user, count }.
    const data = `{"deadline":${now + 86_400_000},"committedAt":${now},"values":{"user":"${userValue(i)}","count":0}}`
    yield* store.commit(randomBytes(32).toString("base64url"), data, expiresAt, "create")
  }
  const filled = yield* store.size
  yield* Effect.sleep(Math.max(0, expiresAt - Date.now()) + 50)

  const histogram = monitorEventLoopDelay({ resolution: 1 })
  // Wall time between two turns, and the CPU time this process used in that gap: on a busy
  // machine the operating system can deschedule the process, which the wall-clock gap counts
  // as a stall; the CPU gap does not.
  const cpuMs = () => {
    const usage = process.cpuUsage()
    return (usage.user + usage.system) / 1000
  }
  let longestGap = 0
  let longestCpuGap = 0
  let probing = true
  let last = performance.now()
  let lastCpu = cpuMs()
  const probe = () => {
    const at = performance.now()
    const cpu = cpuMs()
    longestGap = Math.max(longestGap, at - last)
    longestCpuGap = Math.max(longestCpuGap, cpu - lastCpu)
    last = at
    lastCpu = cpu
    if (probing) setImmediate(probe)
  }
  histogram.enable()
  setImmediate(probe)
  const started = performance.now()
  const deleted = yield* store.sweep
  const sweepMs = performance.now() - started
  probing = false
  histogram.disable()
  return {
    sessions: filled,
    deleted,
    sweepMs: Math.round(sweepMs),
    maxStallMs: Math.round(longestGap * 10) / 10,
    maxStallCpuMs: Math.round(longestCpuGap * 10) / 10,
    eventLoopDelayMaxMs: Math.round(histogram.max / 1e5) / 10,
    eventLoopDelayP99Ms: Math.round(histogram.percentile(99) / 1e5) / 10
  }
})))
console.log(JSON.stringify(result))
// The runner's IPC channel would keep this process alive.
if (process.connected) process.disconnect()
