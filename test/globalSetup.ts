/**
 * Builds `dist/` before the tests when it is missing or older than `src/`: `TestKitExports.test.ts`
 * imports this package by its own name, which Node resolves through `package.json` `exports` to `dist/`.
 */
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import { createRequire } from "node:module"
import * as path from "node:path"

const root = path.join(import.meta.dirname, "..")

const newestChange = (dir: string): number =>
  fs.readdirSync(dir, { withFileTypes: true }).reduce((newest, entry) => {
    const full = path.join(dir, entry.name)
    return Math.max(newest, entry.isDirectory() ? newestChange(full) : fs.statSync(full).mtimeMs)
  }, 0)

export default function setup(): void {
  const built = path.join(root, "dist", "testing.js")
  if (fs.existsSync(built) && fs.statSync(built).mtimeMs >= newestChange(path.join(root, "src"))) return
  const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc")
  try {
    execFileSync(process.execPath, [tsc, "-p", "tsconfig.build.json"], { cwd: root, stdio: "inherit" })
  } catch {
    // tsc still emits when some file has a type error (that is `npm run check`'s to report);
    // the kit's own test fails if what it needs was not built.
  }
}
