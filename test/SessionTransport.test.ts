import { describe, expect, it } from "@effect/vitest"
import * as Config from "effect/Config"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as fs from "node:fs"
import * as path from "node:path"
import * as SessionTransport from "../src/SessionTransport.js"

describe("cookie transport settings", () => {
  const invalid = (options: SessionTransport.CookieOptions, reason: RegExp) =>
    it.effect(`rejects ${JSON.stringify(options)}`, () =>
      Effect.gen(function*() {
        const result = yield* Effect.either(SessionTransport.cookie(options))
        expect(Either.isLeft(result) && result.left._tag).toBe("SessionConfigError")
        expect(Either.isLeft(result) ? result.left.message : "").toMatch(reason)
        // The layer fails with the same error.
        const built = yield* Effect.either(Layer.build(SessionTransport.layerCookie(options)).pipe(Effect.scoped))
        expect(Either.isLeft(built) && built.left._tag).toBe("SessionConfigError")
      }))

  invalid({ name: "__Host-session" }, /cookie\.secure must be true for a __Host- cookie/)
  invalid({ name: "__Host-session", secure: true, domain: "example.com" }, /cookie\.domain must be unset/)
  invalid({ name: "__Host-session", secure: true, path: "/app" }, /cookie\.path must be "\/" for a __Host-/)
  invalid({ name: "__Secure-session" }, /cookie\.secure must be true for a __Secure- cookie/)
  invalid({ sameSite: "none" }, /cookie\.secure must be true for sameSite "none"/)
  invalid({ partitioned: true }, /cookie\.secure must be true for a partitioned cookie/)
  invalid({ name: "bad name;" }, /cookie\.name must be a cookie name/)
  invalid({ path: "relative" }, /cookie\.path must start with/)
  invalid({ path: "/a;b" }, /cookie\.path is not a valid cookie path/)
  invalid({ domain: "example.com; path=/x" }, /cookie\.domain is not a valid domain/)

  it.effect("accepts a valid __Host- cookie", () =>
    Effect.gen(function*() {
      const result = yield* Effect.either(SessionTransport.cookie({ name: "__Host-s", secure: true }))
      expect(Either.isRight(result)).toBe(true)
    }))

  it.effect("layerCookieConfig reads the settings from Config, with the same checks", () =>
    Effect.gen(function*() {
      const layer = SessionTransport.layerCookieConfig({
        name: Config.string("SESSION_COOKIE"),
        secure: Config.boolean("SESSION_SECURE")
      })
      const read = (secure: string) =>
        Effect.either(Effect.provide(SessionTransport.SessionTransport, layer)).pipe(
          Effect.withConfigProvider(
            ConfigProvider.fromMap(new Map([["SESSION_COOKIE", "__Host-sid"], ["SESSION_SECURE", secure]]))
          )
        )
      expect(Either.isRight(yield* read("true"))).toBe(true)
      const insecure = yield* read("false")
      expect(Either.isLeft(insecure) && insecure.left._tag).toBe("SessionConfigError")
    }))
})

describe("module boundaries", () => {
  // Follows relative imports from a module and collects every package it reaches.
  const packagesReachedFrom = (entry: string): Set<string> => {
    const seen = new Set<string>()
    const packages = new Set<string>()
    const visit = (file: string) => {
      if (seen.has(file)) return
      seen.add(file)
      const source = fs.readFileSync(file, "utf8")
      for (const match of source.matchAll(/^import[^"]*"([^"]+)"/gm)) {
        const specifier = match[1]
        if (specifier.startsWith(".")) visit(path.resolve(path.dirname(file), specifier.replace(/\.js$/, ".ts")))
        else packages.add(specifier.split("/").slice(0, specifier.startsWith("@") ? 2 : 1).join("/"))
      }
    }
    visit(path.join(import.meta.dirname, "..", "src", entry))
    return packages
  }

  it("SessionManager and SessionStore, and all they import, need nothing from @effect/platform", () => {
    for (const entry of ["SessionManager.ts", "SessionStore.ts", "Session.ts", "SessionConfigError.ts"]) {
      expect([...packagesReachedFrom(entry)].filter((p) => p !== "effect" && !p.startsWith("node:"))).toEqual([])
    }
  })
})
