/**
 * Serves an app on a real loopback port for the test's scope and talks to it with `fetch`,
 * the way a browser or curl would.
 */
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as HttpApp from "@effect/platform/HttpApp"
import * as HttpServer from "@effect/platform/HttpServer"
import type { ServeError } from "@effect/platform/HttpServerError"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import { createServer } from "node:http"

export interface Served {
  readonly url: string
  readonly fetch: (path: string, init?: RequestInit) => Effect.Effect<Response>
}

export interface Reply {
  readonly status: number
  readonly body: string
  readonly headers: Headers
  readonly setCookies: ReadonlyArray<string>
}

export const serve = <E, R>(
  app: HttpApp.Default<E, R>
): Effect.Effect<Served, never, Scope.Scope | Exclude<R, HttpServer.HttpServer | Scope.Scope>> =>
  Effect.orDie(serveLayer(
    HttpServer.serve(app) as Layer.Layer<
      never,
      never,
      HttpServer.HttpServer | Exclude<R, HttpServer.HttpServer | Scope.Scope>
    >
  ))

/** Serves a layer that serves on the `HttpServer` (such as `HttpLayerRouter.serve(...)`). */
export const serveLayer = <E, R>(
  app: Layer.Layer<never, E, R>
): Effect.Effect<
  Served,
  E | ServeError,
  Scope.Scope | Exclude<R, Layer.Layer.Success<ReturnType<typeof NodeHttpServer.layer>>>
> =>
  Effect.gen(function*() {
    const context = yield* Layer.build(
      app.pipe(Layer.provideMerge(NodeHttpServer.layer(createServer, { port: 0, host: "127.0.0.1" })))
    )
    const server = yield* Effect.provide(HttpServer.HttpServer, context)
    const address = server.address as HttpServer.TcpAddress
    const url = `http://127.0.0.1:${address.port}`
    const served: Served = {
      url,
      fetch: (path, init) => Effect.promise(() => fetch(url + path, init))
    }
    return served
  })

/** One request, read whole. */
export const call = (served: Served, path: string, init?: RequestInit): Effect.Effect<Reply> =>
  Effect.gen(function*() {
    const response = yield* served.fetch(path, init)
    const body = yield* Effect.promise(() => response.text())
    return { status: response.status, body, headers: response.headers, setCookies: response.headers.getSetCookie() }
  })

/** The value of the first Set-Cookie for `name`, as a `Cookie` request header would send it. */
export const cookieFrom = (reply: Reply, name = "session"): string => {
  const line = reply.setCookies.find((c) => c.startsWith(`${name}=`))
  if (line === undefined) throw new Error(`no Set-Cookie for ${name} in ${JSON.stringify(reply.setCookies)}`)
  return line.split(";")[0]
}

/** A tiny cookie jar: sends what it was last told to keep. */
export const jar = () => {
  const cookies = new Map<string, string>()
  return {
    header: (): Record<string, string> =>
      cookies.size === 0 ? {} : { cookie: [...cookies].map(([k, v]) => `${k}=${v}`).join("; ") },
    keep: (reply: Reply) => {
      for (const line of reply.setCookies) {
        const [pair] = line.split(";")
        const index = pair.indexOf("=")
        const name = pair.slice(0, index)
        const value = pair.slice(index + 1)
        if (value === "" || /Max-Age=0/.test(line)) cookies.delete(name)
        else cookies.set(name, value)
      }
    }
  }
}

export { HttpApp }
