/**
 * What each part of a request costs in-process, with no HTTP and no server around it:
 * `npx tsx bench/parts.ts [--iterations 100000]`. The library runs compiled (as in `npm run
 * bench`), in a child pinned to one core where `taskset` exists; each row is the median of five
 * timed loops of `--iterations` calls, after a warm-up. The manager runs on the memory store with
 * the bench servers' options, on 256 sessions of the servers' two values.
 *
 * This is the account's magnifying glass, not its verdict: a request over HTTP also pays for the
 * platform, Node's HTTP and the garbage these parts leave, which only the http section measures.
 */
import { spawnSync } from "node:child_process"
import { build } from "./build.js"
import { argValue } from "./shared.js"

const compiled = build()
const child = [process.execPath, compiled("parts-run.ts"), "--iterations", argValue("iterations", "100000")]
const pinned = spawnSync("taskset", ["-V"]).status === 0
const [command, ...args] = pinned ? ["taskset", "-c", "1", ...child] : child
process.exitCode = spawnSync(command, args, { stdio: "inherit" }).status ?? 1
