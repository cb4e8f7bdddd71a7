/**
 * The login app (`examples/app`) in a real browser: headless Chromium (Debian's, at
 * /usr/bin/chromium) driven by playwright-core, against the app served in-process on a free port
 * at http://localhost (a secure context for Chromium, so the `Secure` `__Host-` cookie works over
 * plain HTTP). Each test leaves a screenshot of its last page in `.tmp/browser-<name>.png`.
 *
 * Without Chromium the file is skipped locally (`apt-get install -y chromium`, or set CHROMIUM_PATH);
 * with `CI=true` it fails.
 */
import { HttpServer } from "@effect/platform"
import { ManagedRuntime } from "effect"
import { randomUUID } from "node:crypto"
import { existsSync, mkdirSync } from "node:fs"
import { createServer } from "node:http"
import type { AddressInfo } from "node:net"
import * as path from "node:path"
import type { Browser, BrowserContext, Page } from "playwright-core"
import { chromium } from "playwright-core"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as App from "../../examples/app/app.js"

// Debian's package; CHROMIUM_PATH for a Chromium installed elsewhere.
const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium"

/** Why the file is skipped; in CI a missing Chromium is a failure instead. */
const skip = ((): string | undefined => {
  if (existsSync(CHROMIUM)) return undefined
  const why = `Chromium is not installed at ${CHROMIUM}: install it with \`apt-get install -y chromium\``
  if (process.env.CI === "true") throw new Error(`${why} (the browser tests are required in CI, CI=true)`)
  console.warn(`test/browser/App.test.ts skipped. ${why}`)
  return why
})()

const SCREENSHOTS = path.join(import.meta.dirname, "..", "..", ".tmp")
const PASSWORD = "correct horse battery staple"

describe.skipIf(skip !== undefined)(`the login app in Chromium${skip ? ` (skipped: ${skip})` : ""}`, () => {
  let runtime: ManagedRuntime.ManagedRuntime<HttpServer.HttpServer, unknown>
  let browser: Browser
  let base = ""

  beforeAll(async () => {
    mkdirSync(SCREENSHOTS, { recursive: true })
    // Loopback only; Chromium's "localhost" tries 127.0.0.1 when ::1 does not answer.
    runtime = ManagedRuntime.make(App.layer({ port: 0, host: "127.0.0.1" }))
    const server = await runtime.runPromise(HttpServer.HttpServer)
    base = `http://localhost:${(server.address as HttpServer.TcpAddress).port}`
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync"
      ]
    })
  })

  afterAll(async () => {
    await browser?.close()
    await runtime?.dispose()
  })

  /** A user name no other test uses (the app's accounts live as long as the file's server). */
  const uniqueName = (prefix: string) => `${prefix}-${randomUUID().slice(0, 8)}`

  const screenshot = (page: Page, name: string) =>
    page.screenshot({ path: path.join(SCREENSHOTS, `browser-${name}.png`), fullPage: true })

  const fillCredentials = async (page: Page, name: string) => {
    await page.getByLabel("User name").fill(name)
    await page.getByLabel("Password").fill(PASSWORD)
  }

  const signUp = async (page: Page, name: string) => {
    await page.goto(`${base}/sign-up`)
    await fillCredentials(page, name)
    await page.getByRole("button", { name: "Create account" }).click()
    await page.waitForURL(`${base}/account`)
  }

  const signIn = async (page: Page, name: string) => {
    await page.goto(`${base}/sign-in`)
    await fillCredentials(page, name)
    await page.getByRole("button", { name: "Sign in" }).click()
    await page.waitForURL(`${base}/account`)
  }

  /** The one-time messages on the page (`role="status"`: notices, `role="alert"`: failures). */
  const notices = (page: Page) => page.getByRole("status").allTextContents()

  const withContexts = async <A>(count: number, use: (contexts: Array<BrowserContext>) => Promise<A>) => {
    const contexts = await Promise.all(Array.from({ length: count }, () => browser.newContext()))
    try {
      return await use(contexts)
    } finally {
      await Promise.all(contexts.map((context) => context.close()))
    }
  }

  it("two devices of one user see each other; one revokes the other, whose next page is the sign-in page", async () => {
    await withContexts(2, async ([laptopContext, phoneContext]) => {
      const name = uniqueName("ada")
      const laptop = await laptopContext.newPage()
      const phone = await phoneContext.newPage()
      await signUp(laptop, name)
      await signIn(phone, name)

      await laptop.goto(`${base}/account`)
      for (const page of [laptop, phone]) {
        expect(await page.locator("tr.device").count()).toBe(2)
        expect(await page.locator("tr.device[aria-current=true]").count()).toBe(1)
        expect(await page.locator(".user-name").textContent()).toBe(name)
      }
      await screenshot(laptop, "devices-two")

      await laptop.locator("tr.device:not([aria-current])").getByRole("button", { name: "Revoke" }).click()
      await laptop.getByRole("status").filter({ hasText: "That device is signed out." }).waitFor()
      expect(laptop.url()).toBe(`${base}/account`)
      expect(await laptop.locator("tr.device").count()).toBe(1)
      expect(await laptop.locator("tr.device[aria-current=true]").count()).toBe(1)
      await screenshot(laptop, "devices-revoked")

      await phone.goto(`${base}/account`)
      expect(phone.url()).toBe(`${base}/sign-in`)
      expect(await phone.getByRole("heading", { level: 1 }).textContent()).toBe("Sign in")
      expect(await phone.getByRole("alert").textContent()).toBe("Please sign in first.")
      await screenshot(phone, "revoked-device")
    })
  }, 60_000)

  it("a form posted from another origin is refused with 403 and changes nothing", async () => {
    // Another port on localhost: another origin, but the same site, so the SameSite=Lax cookie is
    // sent with the form: only the CSRF check stands between it and the account.
    const attacker = createServer((request, response) => {
      const url = new URL(request.url ?? "/", "http://localhost")
      const token = url.searchParams.get("token")
      response.writeHead(200, { "content-type": "text/html; charset=utf-8" })
      response.end(`<!doctype html><title>Win a prize</title>
<form method="post" action="${base}/sign-out-everywhere">
${token === null ? "" : `<input type="hidden" name="_csrf" value="${token}">`}
<button type="submit">Claim your prize</button>
</form>`)
    })
    await new Promise<void>((resolve) => attacker.listen(0, "127.0.0.1", resolve))
    const attackerBase = `http://localhost:${(attacker.address() as AddressInfo).port}`
    try {
      await withContexts(1, async ([context]) => {
        const name = uniqueName("bob")
        const page = await context.newPage()
        await signUp(page, name)
        // A genuine token of this session, as if it had leaked: the origin check refuses the form anyway.
        const leaked = await page.locator("form[action=\"/sign-out\"] input[name=_csrf]").getAttribute("value")
        expect(leaked).toMatch(/^[A-Za-z0-9_-]{86}$/)

        for (const query of ["", `?token=${leaked}`]) {
          await page.goto(`${attackerBase}/${query}`)
          const answered = page.waitForResponse(`${base}/sign-out-everywhere`)
          await page.getByRole("button", { name: "Claim your prize" }).click()
          const response = await answered
          expect(response.status()).toBe(403)
          await page.waitForURL(`${base}/sign-out-everywhere`)
          expect(await page.getByRole("heading", { level: 1 }).textContent()).toBe("Request refused")
        }
        await screenshot(page, "cross-origin-refused")

        await page.goto(`${base}/account`)
        expect(page.url()).toBe(`${base}/account`)
        expect(await page.locator(".user-name").textContent()).toBe(name)
        expect(await page.locator("tr.device").count()).toBe(1)
      })
    } finally {
      await new Promise((resolve) => attacker.close(resolve))
    }
  }, 60_000)

  it("the session cookie is __Host-session, HttpOnly, Secure, SameSite=Lax, for this host only", async () => {
    await withContexts(1, async ([context]) => {
      const page = await context.newPage()
      await signUp(page, uniqueName("carol"))
      const cookies = await context.cookies(base)
      expect(cookies.map((cookie) => cookie.name)).toEqual(["__Host-session"])
      const [cookie] = cookies
      expect(cookie).toMatchObject({ domain: "localhost", path: "/", httpOnly: true, secure: true, sameSite: "Lax" })
      expect(cookie.value).toMatch(/^[A-Za-z0-9_-]{43}$/)
      // HttpOnly: the page's own scripts cannot read it.
      expect(await page.evaluate("document.cookie")).toBe("")
      await screenshot(page, "cookie")
    })
  }, 60_000)

  it("the CSRF token of a page from before the sign-in no longer works after it", async () => {
    await withContexts(1, async ([context]) => {
      const page = await context.newPage()
      const name = uniqueName("dan")
      await signUp(page, name)
      await page.getByRole("button", { name: "Sign out" }).click()
      await page.waitForURL(`${base}/sign-in`)
      const before = await page.locator("input[name=_csrf]").getAttribute("value")
      await fillCredentials(page, name)
      await page.getByRole("button", { name: "Sign in" }).click()
      await page.waitForURL(`${base}/account`)

      // The same origin and the browser's cookies: only the token is stale.
      const response = await context.request.post(`${base}/sign-out`, {
        form: { _csrf: before ?? "" },
        headers: { origin: base },
        maxRedirects: 0
      })
      expect(response.status()).toBe(403)
      await page.reload()
      expect(await page.locator(".user-name").textContent()).toBe(name)

      // The same request with the page's current token goes through.
      const current = await page.locator("form[action=\"/sign-out\"] input[name=_csrf]").getAttribute("value")
      const signedOut = await context.request.post(`${base}/sign-out`, {
        form: { _csrf: current ?? "" },
        headers: { origin: base },
        maxRedirects: 0
      })
      expect(signedOut.status()).toBe(303)
      await page.reload()
      expect(page.url()).toBe(`${base}/sign-in`)
      await screenshot(page, "stale-token")
    })
  }, 60_000)

  it("a flash message shows once, escaped like everything the user typed", async () => {
    await withContexts(1, async ([context]) => {
      const page = await context.newPage()
      const name = `<i>eve</i> & "co" ${randomUUID().slice(0, 8)}`
      await signUp(page, name)
      expect(await notices(page)).toEqual([`Welcome, ${name}! Your account is ready.`])
      expect(await page.locator(".user-name").textContent()).toBe(name)
      expect(await page.locator("main i").count()).toBe(0)
      await screenshot(page, "escaped")
      await page.reload()
      expect(await notices(page)).toEqual([])
      expect(await page.locator(".user-name").textContent()).toBe(name)

      await page.getByRole("button", { name: "Sign out" }).click()
      await page.waitForURL(`${base}/sign-in`)
      expect(await notices(page)).toEqual(["You are signed out."])
      await screenshot(page, "flash-shown")
      await page.reload()
      expect(await notices(page)).toEqual([])
      await screenshot(page, "flash-once")
    })
  }, 60_000)
})
