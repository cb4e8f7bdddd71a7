/**
 * Compiles the library and the benchmark's servers with `tsc` (bench/tsconfig.json) into
 * `.tmp/bench-build`, so that the servers run as plain JavaScript the way users run the
 * published package, not through a TypeScript loader (tsx adds a `__name` call to every named
 * closure, which would tax effect-session's per-request closures and not the JavaScript peers).
 */
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import { createRequire } from "node:module"
import * as path from "node:path"

export const root = path.join(import.meta.dirname, "..")
export const buildDir = path.join(root, ".tmp", "bench-build")

/** Builds, and returns the absolute path of a compiled bench file (`servers/effect.ts` → `.js`). */
export const build = (): (file: string) => string => {
  const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc")
  const result = spawnSync(process.execPath, [tsc, "-p", path.join(root, "bench", "tsconfig.json")], {
    encoding: "utf8"
  })
  const compiled = (file: string) => path.join(buildDir, "bench", file.replace(/\.ts$/, ".js"))
  if (result.status !== 0) {
    // Type errors elsewhere in the tree still emit JavaScript; only a missing output is fatal.
    process.stderr.write(`bench: tsc reported errors (the build is used anyway):\n${result.stdout.slice(0, 2000)}\n`)
  }
  for (
    const file of [
      "servers/effect.ts",
      "servers/express.ts",
      "servers/fastify.ts",
      "memory.ts",
      "sweep.ts",
      "owners.ts",
      "parts-run.ts",
      "app-run.ts"
    ]
  ) {
    if (!fs.existsSync(compiled(file))) throw new Error(`bench: tsc did not emit ${compiled(file)}`)
  }
  return compiled
}
