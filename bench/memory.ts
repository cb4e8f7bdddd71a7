/**
 * Bytes per stored session: run as `node --expose-gc --import tsx bench/memory.ts --library
 * effect-session|express-session [--sessions 100000]`, one library per process. Prints one JSON
 * object.
 *
 * Each session holds two values (`user`, a short string, and `count`, a number) and is stored
 * through the library's own API: for effect-session `SessionManager` load / put / commit on the
 * memory store (so the store holds exactly what a request would write), for express-session
 * `MemoryStore.set` with the object express-session itself stores (its `Cookie` plus the values).
 *
 * `bytesPerSession` is the JavaScript heap (`heapUsed`); `arrayBufferBytesPerSession` is what
 * typed arrays hold outside it (`arrayBuffers`: the memory store keeps expiries in a
 * `Float64Array` and its free slots in an `Int32Array`, each grown by doubling).
 */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import session from "express-session"
import { randomBytes } from "node:crypto"
import * as SessionManager from "../src/SessionManager.js"
import { SessionStore } from "../src/SessionStore.js"
import * as MemoryStore from "../src/SessionStore/Memory.js"
import { argValue, userValue } from "./shared.js"

const library = argValue("library", "effect-session")
const sessions = Number(argValue("sessions", "100000"))

const collect = (): void => {
  if (globalThis.gc === undefined) throw new Error("run with node --expose-gc")
  for (let i = 0; i < 4; i++) globalThis.gc()
}

const used = (): { readonly heap: number; readonly arrayBuffers: number } => {
  collect()
  const { arrayBuffers, heapUsed } = process.memoryUsage()
  return { heap: heapUsed, arrayBuffers }
}

interface Measurement {
  readonly library: string
  readonly sessions: number
  readonly stored: number
  readonly bytesPerSession: number
  readonly arrayBufferBytesPerSession: number
  readonly sampleKeyLength: number
  readonly samplePayloadLength: number
}

const measureEffectSession = (): Promise<Measurement> =>
  Effect.runPromise(Effect.scoped(Effect.gen(function*() {
    const store = yield* MemoryStore.make({ cleanupInterval: 0, maxEntries: Math.max(1, sessions) })
    const manager = yield* SessionManager.make({ lifetime: "24 hours" }).pipe(
      Effect.provideService(SessionStore, store)
    )
    const before = used()
    for (let i = 0; i < sessions; i++) {
      const current = yield* manager.load(undefined)
      yield* current.put("user", userValue(i))
      yield* current.put("count", 0)
      yield* manager.commit(current)
    }
    const after = used()
    const stored = yield* store.size
    const sample = store.all === undefined
      ? Option.none()
      : yield* Stream.runHead(store.all).pipe(Effect.orDie)
    const key = Option.match(sample, { onNone: () => "", onSome: (s) => s.key })
    const data = Option.match(sample, { onNone: () => "", onSome: (s) => s.data })
    return {
      library: "effect-session",
      sessions,
      stored,
      bytesPerSession: Math.round((after.heap - before.heap) / sessions),
      arrayBufferBytesPerSession: Math.round((after.arrayBuffers - before.arrayBuffers) / sessions),
      sampleKeyLength: key.length,
      samplePayloadLength: data.length
    }
  })))

const measureExpressSession = (): Promise<Measurement> =>
  new Promise((resolve) => {
    const store = new session.MemoryStore()
    const before = used()
    let firstKey = ""
    for (let i = 0; i < sessions; i++) {
      // express-session's ids: uid-safe(24), 32 base64url characters.
      const id = randomBytes(24).toString("base64url")
      if (i === 0) firstKey = id
      const data = { cookie: new session.Cookie(), user: userValue(i), count: 0 }
      store.set(id, data as unknown as session.SessionData)
    }
    // MemoryStore.set defers its callback; let those run before measuring.
    setImmediate(() => {
      const after = used()
      store.length((_error, stored) => {
        store.get(firstKey, (_e, found) => {
          resolve({
            library: "express-session",
            sessions,
            stored: stored ?? 0,
            bytesPerSession: Math.round((after.heap - before.heap) / sessions),
            arrayBufferBytesPerSession: Math.round((after.arrayBuffers - before.arrayBuffers) / sessions),
            sampleKeyLength: firstKey.length,
            samplePayloadLength: JSON.stringify(found).length
          })
        })
      })
    })
  })

const result = library === "express-session" ? await measureExpressSession() : await measureEffectSession()
console.log(JSON.stringify(result))
// The runner's IPC channel would keep this process alive.
if (process.connected) process.disconnect()
