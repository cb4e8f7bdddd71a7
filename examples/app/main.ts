/**
 * The login app (`examples/app/app.ts`) from the command line:
 *
 *   npm run example:app                          # http://localhost:4000, sessions and accounts in memory
 *   npm run example:app -- --sqlite app.db       # both in a SQLite file, kept across restarts
 *   PORT=8080 npm run example:app
 *
 * Open it at http://localhost:<port>: the session cookie, `__Host-session`, is `Secure`, which
 * browsers accept over plain HTTP from `localhost` (a secure context), not from a host on the network.
 */
import { HttpServer } from "@effect/platform"
import { NodeRuntime } from "@effect/platform-node"
import { Config, Data, Effect, Layer } from "effect"
import * as App from "./app.js"

class UsageError extends Data.TaggedError("UsageError")<{ readonly reason: string }> {
  override get message(): string {
    return `${this.reason}\nusage: npm run example:app [-- --sqlite <file>]   (PORT=4000 by default)`
  }
}

/** The one flag there is: `--sqlite <file>`. */
const parseArguments = (args: ReadonlyArray<string>): Effect.Effect<{ readonly sqlite?: string }, UsageError> => {
  if (args.length === 0) return Effect.succeed({})
  const [flag, file, ...rest] = args
  if (flag !== "--sqlite") return Effect.fail(new UsageError({ reason: `unknown argument ${JSON.stringify(flag)}` }))
  if (file === undefined || file.startsWith("--")) {
    return Effect.fail(new UsageError({ reason: "--sqlite needs a file name" }))
  }
  if (rest.length > 0) return Effect.fail(new UsageError({ reason: `unexpected ${JSON.stringify(rest.join(" "))}` }))
  return Effect.succeed({ sqlite: file })
}

const main = Effect.gen(function*() {
  const { sqlite } = yield* parseArguments(process.argv.slice(2))
  const port = yield* Config.port("PORT").pipe(Config.withDefault(4000))
  const announce = Layer.effectDiscard(Effect.gen(function*() {
    const address = (yield* HttpServer.HttpServer).address
    const where = address._tag === "TcpAddress" ? `http://localhost:${address.port}` : HttpServer.formatAddress(address)
    yield* Effect.log(
      `Login app on ${where} (sessions and accounts ${sqlite === undefined ? "in memory" : `in ${sqlite}`})`
    )
  }))
  return yield* Layer.launch(Layer.provide(announce, App.layer({ port, sqlite })))
})

NodeRuntime.runMain(main)
