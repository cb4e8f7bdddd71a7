/**
 * The web-standard core: the manager, the middleware, the memory store and sealed cookies run
 * through `HttpApp.toWebHandlerLayer` with plain `Request`/`Response` objects, in a process where
 * they can reach no Node built-in module and no `Buffer`, `process` or `setImmediate`
 * (`test/fixtures/web-runtime.mjs`), as on Deno, Bun or a worker.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { execFile } from "node:child_process"
import { createHash } from "node:crypto"
import * as path from "node:path"

const root = path.join(import.meta.dirname, "..")

/** What `test/fixtures/web-app.ts` prints. */
interface Seen {
  readonly put: { readonly status: number; readonly setCookie: ReadonlyArray<string> }
  readonly get: { readonly status: number; readonly body: string; readonly setCookie: ReadonlyArray<string> }
  readonly renewed: boolean
  readonly after: string
  /** The token `renewToken` gave, and the memory store's keys at the end (none with `sealed`). */
  readonly token: string
  readonly keys: ReadonlyArray<string>
}

/** Runs `test/fixtures/web-app.ts` over `layer` in the web-standard runtime; what it printed, parsed. */
const runWebApp = (layer: "memory" | "sealed") =>
  Effect.async<Seen, Error>((resume) => {
    execFile(
      process.execPath,
      ["--import", "./test/fixtures/web-runtime.mjs", "--import", "tsx", "test/fixtures/web-app.ts", layer],
      { cwd: root, timeout: 60_000 },
      (error, stdout, stderr) => {
        if (error !== null) return resume(Effect.fail(new Error(`web-app ${layer} failed: ${stderr}`)))
        resume(Effect.try({ try: () => JSON.parse(stdout.trim().split("\n").at(-1)!), catch: () => new Error(stdout) }))
      }
    )
  })

describe("a web-standard core", () => {
  for (const [layer, value] of [["memory", /^[A-Za-z0-9_-]{43}$/], ["sealed", /^web\.[A-Za-z0-9_-]{60,}$/]] as const) {
    it.effect(
      `${layer}: put, get and renewToken through toWebHandler, without Node's built-ins`,
      () =>
        Effect.gen(function*() {
          const seen = yield* runWebApp(layer)
          expect(seen.put.status).toBe(200)
          const [cookie, ...attributes] = seen.put.setCookie[0].split("; ")
          expect(cookie.slice("session=".length)).toMatch(value)
          expect(attributes).toEqual(expect.arrayContaining(["HttpOnly", "Secure", "SameSite=Lax", "Path=/"]))
          expect(seen.get).toEqual({ status: 200, body: "hello from the web handler", setCookie: [] })
          expect(seen.renewed).toBe(true)
          expect(seen.after).toBe("hello from the web handler")
          // With no Node built-ins the core hashes with its portable SHA-256: the key is the same
          // as Node's `crypto` makes, so stores written by either runtime are read by the other.
          if (layer === "memory") {
            expect(seen.keys).toEqual([createHash("sha256").update(seen.token).digest("base64url")])
          }
        }),
      60_000
    )
  }

  it.effect("the runtime really refuses Node's built-ins to the core", () =>
    Effect.gen(function*() {
      // The guard itself, proved on a module that reaches for one: a stand-in for a regression.
      const error = yield* Effect.flip(
        Effect.async<void, Error>((resume) => {
          execFile(
            process.execPath,
            [
              "--import",
              "./test/fixtures/web-runtime.mjs",
              "--input-type=module",
              "-e",
              "await import('./src/SessionStore/Sql.ts')"
            ],
            { cwd: root, timeout: 60_000, env: { ...process.env, NODE_OPTIONS: "--import tsx" } },
            (failed, _stdout, stderr) => resume(failed === null ? Effect.void : Effect.fail(new Error(stderr)))
          )
        })
      )
      expect(error.message).toMatch(/imports the Node built-in (node:)?crypto/)
    }), 60_000)
})
