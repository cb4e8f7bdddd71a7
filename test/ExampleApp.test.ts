/**
 * The login app (`examples/app`) over real HTTP, without a browser: on the memory store and, with
 * its one flag, on SQLite, where an account and a signed-in session outlive a restart of the server.
 * (`test/browser/App.test.ts` drives it in Chromium.)
 */
import * as HttpServer from "@effect/platform/HttpServer"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as App from "../examples/app/app.js"

/** Serves the app for the scope; requests are a same-origin browser's, with its one cookie. */
const start = (options: Omit<App.Options, "port" | "host">) =>
  Effect.gen(function*() {
    const server = yield* Effect.provide(
      HttpServer.HttpServer,
      yield* Layer.build(App.layer({ port: 0, host: "127.0.0.1", ...options }))
    )
    const base = `http://127.0.0.1:${(server.address as HttpServer.TcpAddress).port}`
    return base
  })

const browserLike = () => {
  let cookie = ""
  const send = (base: string, path: string, init: { method?: string; form?: Record<string, string> } = {}) =>
    Effect.promise(async () => {
      const response = await fetch(base + path, {
        method: init.method ?? "GET",
        redirect: "manual",
        headers: {
          "sec-fetch-site": "same-origin",
          ...(cookie === "" ? {} : { cookie }),
          ...(init.form === undefined ? {} : { "content-type": "application/x-www-form-urlencoded" })
        },
        ...(init.form === undefined ? {} : { body: new URLSearchParams(init.form).toString() })
      })
      const line = response.headers.getSetCookie().find((value) => value.startsWith("__Host-session="))
      if (line !== undefined) cookie = line.split(";")[0]
      return { status: response.status, location: response.headers.get("location"), body: await response.text() }
    })
  const token = (base: string, path: string) =>
    Effect.map(send(base, path), (page) => /name="_csrf" value="([^"]+)"/.exec(page.body)?.[1] ?? "")
  return { send, token }
}

const signUpAndIn = (base: string, client: ReturnType<typeof browserLike>, name: string) =>
  Effect.gen(function*() {
    const signedUp = yield* client.send(base, "/sign-up", {
      method: "POST",
      form: { _csrf: yield* client.token(base, "/sign-up"), name, password: "correct horse battery" }
    })
    expect([signedUp.status, signedUp.location]).toEqual([303, "/account"])
    const account = yield* client.send(base, "/account")
    expect(account.status).toBe(200)
    expect(account.body).toContain(`<strong class="user-name">${name}</strong>`)
  })

describe("the login app", () => {
  it.scoped("on the memory store: sign up, the account page, a form without its token refused", () =>
    Effect.gen(function*() {
      const base = yield* start({})
      const client = browserLike()
      yield* signUpAndIn(base, client, "ada")
      const refused = yield* client.send(base, "/sign-out", { method: "POST", form: {} })
      expect(refused.status).toBe(403)
      expect((yield* client.send(base, "/account")).status).toBe(200)
    }))

  it.live("with --sqlite: the account and the signed-in session outlive a restart", () =>
    Effect.gen(function*() {
      const directory = mkdtempSync(join(tmpdir(), "effect-session-app-"))
      yield* Effect.addFinalizer(() => Effect.sync(() => rmSync(directory, { recursive: true, force: true })))
      const sqlite = join(directory, "app.db")
      const client = browserLike()
      yield* Effect.scoped(Effect.flatMap(start({ sqlite }), (base) => signUpAndIn(base, client, "grace")))
      // A new server process over the same file: the same cookie is still signed in.
      const base = yield* start({ sqlite })
      const account = yield* client.send(base, "/account")
      expect(account.status).toBe(200)
      expect(account.body).toContain(`<strong class="user-name">grace</strong>`)
      // And the password was stored, not just the session: sign out, then in again.
      const signedOut = yield* client.send(base, "/sign-out", {
        method: "POST",
        form: { _csrf: yield* client.token(base, "/account") }
      })
      expect(signedOut.status).toBe(303)
      expect((yield* client.send(base, "/account")).location).toBe("/sign-in")
      const signedIn = yield* client.send(base, "/sign-in", {
        method: "POST",
        form: { _csrf: yield* client.token(base, "/sign-in"), name: "grace", password: "correct horse battery" }
      })
      expect([signedIn.status, signedIn.location]).toEqual([303, "/account"])
    }).pipe(Effect.scoped))
})
