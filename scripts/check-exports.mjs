// Checks the published shape after `npm run build`: every public module in src/ is reachable
// through the package's `exports` map by its own name, loads (the test kit: resolves), and has
// its .d.ts; internal modules are not reachable.
import { existsSync, readdirSync } from "node:fs"
import { join, relative } from "node:path"

const root = new URL("..", import.meta.url).pathname
const walk = (dir) =>
  readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? walk(join(dir, entry.name)) : [join(dir, entry.name)]
  )

const modules = walk(join(root, "src"))
  .filter((file) => file.endsWith(".ts") && !file.includes("/internal/"))
  .map((file) => relative(join(root, "src"), file).replace(/\.ts$/, ""))

let failures = 0
for (const module of modules) {
  const specifier = module === "index" ? "effect-session" : `effect-session/${module}`
  try {
    // The test kit runs only inside vitest: resolve it here; test/TestKitExports.test.ts loads it.
    if (module === "testing" || module.startsWith("testing/")) {
      if (!import.meta.resolve(specifier).endsWith(`/dist/${module}.js`)) throw new Error("resolves outside dist/")
    } else {
      const loaded = await import(specifier)
      if (Object.keys(loaded).length === 0) throw new Error("exports nothing")
    }
    if (!existsSync(join(root, "dist", `${module}.d.ts`))) throw new Error(`dist/${module}.d.ts is missing`)
    console.log(`ok   ${specifier}`)
  } catch (error) {
    failures++
    console.log(`FAIL ${specifier}: ${error.message}`)
  }
}
try {
  await import("effect-session/internal/session")
  failures++
  console.log("FAIL effect-session/internal/session is reachable")
} catch {
  console.log("ok   internal modules are not exported")
}
if (failures > 0) process.exit(1)
