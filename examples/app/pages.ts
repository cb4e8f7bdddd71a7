/**
 * The app's pages, as plain functions from what they show to `Html`: no session, no request.
 * Everything the user typed (names, device labels, messages) goes through the escaping template.
 */
import { DateTime, Option } from "effect"
import * as Crypto from "node:crypto"
import type { OwnerSession } from "../../src/Session.js"
import type { Html } from "./html.js"
import { html, raw } from "./html.js"
import type { User } from "./Users.js"

const STYLE = `
  *, *::before, *::after { box-sizing: border-box }
  body { margin: 0; font: 16px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; background: #f6f7f9; color: #1f2328 }
  header { background: #24292f; padding: .75rem 1.5rem }
  header a { color: #fff; text-decoration: none; font-weight: 600 }
  main { max-width: 48rem; margin: 2rem auto; padding: 0 1.5rem }
  h1 { font-size: 1.6rem; margin: 0 0 1rem }
  h2 { font-size: 1.2rem; margin: 0 0 .75rem }
  .card { background: #fff; border: 1px solid #d0d7de; border-radius: 8px; padding: 1.25rem 1.5rem; margin-bottom: 1.25rem }
  .flash { padding: .75rem 1rem; border-radius: 6px; margin: 0 0 1.25rem }
  .notice { background: #dafbe1; border: 1px solid #4ac26b }
  .alert { background: #ffebe9; border: 1px solid #ff8182 }
  label { display: block; margin-bottom: .9rem; font-weight: 600 }
  input { display: block; width: 100%; margin-top: .3rem; padding: .5rem .6rem; font: inherit; font-weight: 400;
    border: 1px solid #d0d7de; border-radius: 6px }
  button { font: inherit; padding: .4rem 1rem; border-radius: 6px; border: 1px solid #1f883d; background: #1f883d;
    color: #fff; cursor: pointer }
  button.secondary { background: #f6f8fa; color: #1f2328; border-color: #d0d7de }
  button.danger { background: #fff; color: #cf222e; border-color: #cf222e }
  form.inline { display: inline; margin: 0 }
  table { width: 100%; border-collapse: collapse; margin-bottom: 1rem }
  th, td { text-align: left; padding: .5rem .4rem; border-bottom: 1px solid #d8dee4 }
  th { font-size: .85rem; color: #59636e; font-weight: 600 }
  .muted { color: #59636e }
  .tag { background: #ddf4ff; color: #0969da; border-radius: 1em; padding: .05em .6em; font-size: .8rem; margin-left: .4rem;
    white-space: nowrap }
  time { white-space: nowrap }
  .row { display: flex; gap: .75rem; align-items: center; justify-content: space-between; flex-wrap: wrap }
`

/**
 * The headers of every page. The policy allows no script at all and only the one inline style
 * sheet above (by its hash); forms may post only to this origin.
 */
export const headers: Readonly<Record<string, string>> = {
  "content-security-policy": `default-src 'none'; style-src 'sha256-${
    Crypto.createHash("sha256").update(STYLE).digest("base64")
  }'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'`,
  "x-content-type-options": "nosniff",
  "referrer-policy": "same-origin",
  // Pages carry CSRF tokens and one-time messages: never reused from a cache.
  "cache-control": "no-store"
}

/** The one-time messages of the page: `notice` after a success, `alert` after a failure ("" for none). */
export interface Flash {
  readonly notice: string
  readonly alert: string
}

export const noFlash: Flash = { notice: "", alert: "" }

export const layout = (title: string, flash: Flash, body: Html): Html =>
  html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title} · effect-session demo</title>
<style>${raw(STYLE)}</style>
</head>
<body>
<header><a href="/">effect-session demo</a></header>
<main>
<h1>${title}</h1>
${flash.notice !== "" && html`<p class="flash notice" role="status">${flash.notice}</p>`}
${flash.alert !== "" && html`<p class="flash alert" role="alert">${flash.alert}</p>`}
${body}
</main>
</body>
</html>
`

const credentialsForm = (action: string, csrf: Html, submit: string, passwordAutocomplete: string): Html =>
  html`<form method="post" action="${action}" class="card">
${csrf}
<label>User name <input name="name" autocomplete="username" required maxlength="64"></label>
<label>Password <input name="password" type="password" autocomplete="${passwordAutocomplete}" required></label>
<button type="submit">${submit}</button>
</form>`

export const signIn = (csrf: Html): Html =>
  html`${credentialsForm("/sign-in", csrf, "Sign in", "current-password")}
<p class="muted">No account yet? <a href="/sign-up">Sign up</a>.</p>`

export const signUp = (csrf: Html): Html =>
  html`${credentialsForm("/sign-up", csrf, "Create account", "new-password")}
<p class="muted">A user name of 1 to 64 characters, a password of at least 8.
Already signed up? <a href="/sign-in">Sign in</a>.</p>`

const time = (date: DateTime.Utc): Html => {
  const iso = DateTime.formatIso(date)
  return html`<time datetime="${iso}">${iso.slice(0, 16).replace("T", " ")} UTC</time>`
}

const deviceRow = (device: OwnerSession, csrf: Html): Html =>
  html`<tr class="device"${device.current && raw(" aria-current=\"true\"")}>
<td>${Option.getOrElse(device.label, () => "Unknown device")}${
    device.current && html`<span class="tag">this device</span>`
  }</td>
<td>${time(device.createdAt)}</td>
<td>${time(device.lastActiveAt)}</td>
<td>${
    !device.current &&
    html`<form method="post" action="/devices/${encodeURIComponent(device.handle)}/revoke" class="inline">
${csrf}<button type="submit" class="danger">Revoke</button></form>`
  }</td>
</tr>`

export const account = (user: User, devices: ReadonlyArray<OwnerSession>, csrf: Html): Html =>
  html`<section class="card row">
<span>Signed in as <strong class="user-name">${user.name}</strong></span>
<form method="post" action="/sign-out" class="inline">${csrf}<button type="submit" class="secondary">Sign out</button></form>
</section>
<section class="card">
<h2>Your devices</h2>
<table>
<thead><tr><th>Device</th><th>Session started</th><th>Last active</th><th></th></tr></thead>
<tbody>
${devices.map((device) => deviceRow(device, csrf))}
</tbody>
</table>
<form method="post" action="/sign-out-everywhere">${csrf}<button type="submit" class="danger">Log out everywhere</button></form>
</section>`

export const refused: Html = html`<section class="card">
<p>This form came from another site, or the page it was on is too old. Nothing was changed.</p>
<p><a href="/">Back to the app</a>, reload the page and try again.</p>
</section>`

export const notFound: Html =
  html`<section class="card"><p>There is no page here. <a href="/">Back to the app</a>.</p></section>`
