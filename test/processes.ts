/**
 * Fixture processes for the tests that need more than one: a script under `test/fixtures/` run
 * with `tsx`, ready once it prints a line matching a pattern, stopped when the scope closes.
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { type ChildProcess, spawn } from "node:child_process"
import * as path from "node:path"
import * as readline from "node:readline"
import { postgres, redis } from "./services.js"

export interface Started {
  readonly child: ChildProcess
  /** The ready line's match. */
  readonly match: RegExpMatchArray
  /** Asks the process to stop (SIGTERM) and waits for it to exit. */
  readonly stop: Effect.Effect<void>
}

/**
 * Spawns `test/fixtures/<name>` with the test services' ports in its environment, and waits (at
 * most 30 s) for a stdout line matching `ready`. A process that exits or never gets ready fails
 * with what it wrote (both streams: Effect's logger writes to stdout).
 */
export const spawnFixture = (
  name: string,
  env: Record<string, string>,
  ready: RegExp
): Effect.Effect<Started, Error, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.async<Started, Error>((resume) => {
      const child = spawn(process.execPath, ["--import", "tsx", path.join(import.meta.dirname, "fixtures", name)], {
        cwd: path.join(import.meta.dirname, ".."),
        env: { ...process.env, REDIS_PORT: String(redis.port), PG_PORT: String(postgres.port), ...env },
        stdio: ["ignore", "pipe", "pipe"]
      })
      const stop = Effect.async<void>((done) => {
        if (child.exitCode !== null || child.signalCode !== null) return done(Effect.void)
        child.once("exit", () => done(Effect.void))
        child.kill("SIGTERM")
      })
      let output = ""
      let settled = false
      const settle = (effect: Effect.Effect<Started, Error>) => {
        if (settled) return
        settled = true
        clearTimeout(timer)
        resume(effect)
      }
      child.stderr!.on("data", (chunk) => (output += chunk))
      const timer = setTimeout(() => settle(Effect.fail(new Error(`${name} did not start: ${output}`))), 30_000)
      readline.createInterface({ input: child.stdout! }).on("line", (line) => {
        const match = line.match(ready)
        if (match === null) return void (output += `${line}\n`)
        settle(Effect.succeed({ child, match, stop }))
      })
      child.once("exit", (code) => settle(Effect.fail(new Error(`${name} exited with ${code}: ${output}`))))
      return Effect.sync(() => child.kill("SIGKILL"))
    }),
    ({ stop }) => stop
  )
