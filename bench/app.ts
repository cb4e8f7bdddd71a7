/**
 * What the session middleware adds to an `HttpApp` in-process, with no server around it:
 * `npx tsx bench/app.ts [--iterations 20000] [--trace incr]`. Effect steps, bytes allocated and
 * CPU per request, bare and with `SessionMiddleware.loadAndSave` (see `bench/app-run.ts`). The
 * library runs compiled, in a child pinned to one core where `taskset` exists.
 *
 * The first two columns do not depend on the machine's load, so they tell apart changes of a
 * microsecond or two that the HTTP section's CPU column cannot.
 */
import { spawnSync } from "node:child_process"
import { build } from "./build.js"

const compiled = build()
const child = [process.execPath, compiled("app-run.ts"), ...process.argv.slice(2)]
const pinned = spawnSync("taskset", ["-V"]).status === 0
const [command, ...args] = pinned ? ["taskset", "-c", "1", ...child] : child
process.exitCode = spawnSync(command, args, { stdio: "inherit" }).status ?? 1
