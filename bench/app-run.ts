/**
 * The measuring half of `bench/app.ts`, run compiled: the bench servers' routes as an `HttpApp`,
 * bare and under `SessionMiddleware.loadAndSave` on the memory store, run in-process on requests
 * made beforehand (`HttpServerRequest.fromWeb`, with a plain headers object as on Node). No
 * server and no socket: what the middleware and the session add to the app itself.
 *
 * Per route, for the bare app and the session app:
 * - Effect steps per request: the fiber's operation count when the request ends (deterministic);
 * - bytes allocated per request: V8's sampling heap profiler over the measured requests, with
 *   the objects already collected counted (it scales its samples to an estimate of the total);
 * - CPU µs per request: median of five rounds. On a shared host this moves by ±20 % between
 *   runs: read it beside the two columns above, not alone.
 *
 * `--trace ROUTE` prints instead every Effect step of one session request on ROUTE; `--dump DIR`
 * keeps each allocation profile as `DIR/<route>-<app>.heapprofile` (for Chrome DevTools).
 * `--serve APP --route ROUTE --requests N` only serves (bench/cache.ts and bench/functions.ts run it
 * under valgrind).
 */
import * as Headers from "@effect/platform/Headers"
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as RuntimeFlags from "effect/RuntimeFlags"
import * as RuntimeFlagsPatch from "effect/RuntimeFlagsPatch"
import * as Scope from "effect/Scope"
import * as Supervisor from "effect/Supervisor"
import * as fs from "node:fs"
import { Session as Inspector } from "node:inspector/promises"
import * as path from "node:path"
import * as SessionManager from "../src/SessionManager.js"
import * as SessionMiddleware from "../src/SessionMiddleware.js"
import * as MemoryStore from "../src/SessionStore/Memory.js"
import * as Minimal from "./minimal.js"
import { sessionRoutes } from "./routes.js"
import { argValue, BARE_USER } from "./shared.js"

const iterations = Number(argValue("iterations", "20000"))
const traced = argValue("trace", "")
const dump = argValue("dump", "")

type Route = "get" | "incr" | "new"
const routes: ReadonlyArray<Route> = ["get", "incr", "new"]

let counter = 0
const bare = HttpRouter.empty.pipe(
  HttpRouter.get("/get", Effect.sync(() => HttpServerResponse.text(BARE_USER))),
  HttpRouter.get("/incr", Effect.sync(() => HttpServerResponse.text(String(++counter)))),
  HttpRouter.get("/new", Effect.sync(() => HttpServerResponse.text("ok")))
)

// The session routes of bench/servers/effect.ts.
const withSession = SessionMiddleware.loadAndSave(sessionRoutes())

const minimal = Minimal.middleware(Minimal.routes)

type App = typeof bare | typeof withSession | typeof minimal

const runtime = ManagedRuntime.make(
  SessionManager.layer({ lifetime: "24 hours" }).pipe(Layer.provide(MemoryStore.layer()))
)

const requestOf = (path: string, cookie: string | undefined) =>
  HttpServerRequest.fromWeb(new Request(`http://localhost${path}`)).modify({
    headers: Headers.fromInput(cookie === undefined ? {} : { cookie })
  })

/** One request through `app`, in a scope of its own as a server gives it. */
const serve = (app: App, request: HttpServerRequest.HttpServerRequest) =>
  Effect.flatMap(Scope.make(), (scope) =>
    Effect.flatMap(
      Effect.exit(Scope.extend(Effect.provideService(app, HttpServerRequest.HttpServerRequest, request), scope)),
      (exit) => Effect.zipRight(Scope.close(scope, Exit.void), exit)
    ))

// 256 sessions for each app, as the HTTP bench's clients hold.
const loginCookies = (app: App): ReadonlyArray<string> =>
  Array.from(
    { length: 256 },
    () => String(runtime.runSync(serve(app, requestOf("/login", undefined))).headers["set-cookie"]).split(";")[0]
  )
const cookiesOf = new Map<App, ReadonlyArray<string>>([
  [bare, []],
  [withSession, loginCookies(withSession)],
  [minimal, loginCookies(minimal)]
])

const requestsFor = (route: Route, count: number, app: App = withSession) => {
  const cookies = cookiesOf.get(app) ?? []
  return Array.from(
    { length: count },
    (_, i) => requestOf(`/${route}`, route === "new" || cookies.length === 0 ? undefined : cookies[i & 255])
  )
}

if (traced !== "") {
  const steps: Array<string> = []
  class StepTracer extends Supervisor.AbstractSupervisor<void> {
    get value() {
      return Effect.void
    }
    override onEffect(_fiber: unknown, effect: Effect.Effect<unknown, unknown, unknown>) {
      const step = effect as unknown as {
        _op: string
        effect_instruction_i0?: unknown
        effect_instruction_i1?: unknown
      }
      const f = [step.effect_instruction_i0, step.effect_instruction_i1].find((x) => typeof x === "function")
      steps.push(`${step._op.padEnd(20)} ${f === undefined ? "" : String(f).replace(/\s+/g, " ").slice(0, 120)}`)
    }
  }
  const [request] = requestsFor(traced as Route, 1)
  runtime.runSync(serve(withSession, request))
  runtime.runSync(
    Effect.supervised(serve(withSession, request), new StepTracer()).pipe(
      Effect.withRuntimeFlagsPatch(RuntimeFlagsPatch.enable(RuntimeFlags.OpSupervision))
    )
  )
  console.log(steps.join("\n"))
  console.log(`${steps.length} steps`)
  process.exit(0)
}

// 20,000 requests to warm up, then `--requests` more, and nothing else: no profiler, no timing.
// bench/cache.ts and bench/functions.ts run this twice under valgrind; the difference is the
// measured requests.
const served = argValue("serve", "")
if (served !== "") {
  const app = new Map<string, App>([["bare", bare], ["minimal", minimal], ["session", withSession]]).get(served)
  const route = argValue("route", "incr") as Route
  if (app === undefined || !routes.includes(route)) {
    console.error(`--serve bare|minimal|session --route ${routes.join("|")}`)
    process.exit(2)
  }
  const requests = requestsFor(route, 20_000 + Number(argValue("requests", "0")), app)
  // A request the app answered with an error would count an error page's work, not the route's.
  let failed = 0
  for (const request of requests) {
    if (runtime.runSync(serve(app, request)).status !== 200) failed++
  }
  if (failed > 0) console.error(`${failed} of ${requests.length} requests were not answered 200`)
  // The memory store's sweep fiber would keep the process alive.
  process.exit(failed > 0 ? 1 : 0)
}

const stepsOf = (app: App, route: Route): number =>
  runtime.runSync(
    Effect.zipRight(
      serve(app, requestsFor(route, 1, app)[0]),
      Effect.withFiberRuntime((fiber): Effect.Effect<number> =>
        Effect.succeed((fiber as unknown as { currentOpCount: number }).currentOpCount)
      )
    )
  )

const inspector = new Inspector()
inspector.connect()
await inspector.post("HeapProfiler.enable")

interface ProfileNode {
  readonly selfSize: number
  readonly children: ReadonlyArray<ProfileNode>
}
const totalOf = (node: ProfileNode): number => node.children.reduce((sum, child) => sum + totalOf(child), node.selfSize)

const nameOf = (app: App): string => app === bare ? "bare" : app === minimal ? "minimal" : "session"

const bytesPerRequest = async (app: App, route: Route): Promise<number> => {
  const requests = requestsFor(route, iterations, app)
  for (const request of requests) runtime.runSync(serve(app, request))
  await inspector.post("HeapProfiler.startSampling", {
    samplingInterval: 512,
    includeObjectsCollectedByMajorGC: true,
    includeObjectsCollectedByMinorGC: true
  })
  for (const request of requests) runtime.runSync(serve(app, request))
  const { profile } = await inspector.post("HeapProfiler.stopSampling")
  if (dump !== "") {
    fs.mkdirSync(dump, { recursive: true })
    fs.writeFileSync(path.join(dump, `${route}-${nameOf(app)}.heapprofile`), JSON.stringify(profile))
  }
  return totalOf(profile.head as unknown as ProfileNode) / iterations
}

const cpuPerRequest = (app: App, route: Route): number => {
  const requests = requestsFor(route, iterations, app)
  for (const request of requests) runtime.runSync(serve(app, request))
  const rounds: Array<number> = []
  for (let round = 0; round < 5; round++) {
    const started = process.cpuUsage()
    for (const request of requests) runtime.runSync(serve(app, request))
    const used = process.cpuUsage(started)
    rounds.push((used.user + used.system) / iterations)
  }
  return rounds.sort((a, b) => a - b)[2]
}

const columns = (values: readonly [bare: number, minimal: number, session: number], digits: number) => {
  const [bareValue, ...others] = values
  const added = (value: number) => `${value - bareValue >= 0 ? "+" : ""}${(value - bareValue).toFixed(digits)}`
  return [bareValue.toFixed(digits), ...others.map(added)].map((text) => text.padStart(8)).join("")
}

const apps = [bare, minimal, withSession] as const
console.log(`in-process HttpApp, ${iterations} requests per measurement`)
console.log("columns: the bare app, then what the minimal middleware (bench/minimal.ts) and effect-session add to it")
console.log(`${"route".padEnd(6)}${"Effect steps".padEnd(26)}${"KB allocated".padEnd(26)}CPU µs (noisy)`)
for (const route of routes) {
  const steps = apps.map((app) => stepsOf(app, route)) as unknown as [number, number, number]
  const bytes: Array<number> = []
  for (const app of apps) bytes.push((await bytesPerRequest(app, route)) / 1024)
  const cpu = apps.map((app) => cpuPerRequest(app, route)) as unknown as [number, number, number]
  console.log(
    `${route.padEnd(6)}${columns(steps, 0).padEnd(26)}${
      columns(bytes as unknown as [number, number, number], 2).padEnd(26)
    }${columns(cpu, 1)}`
  )
}
await runtime.dispose()
