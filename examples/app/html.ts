/**
 * HTML made with a tagged template that escapes every value it is given: user names, labels and
 * messages go in as text, never as markup. Only an `Html` (another template's result, or `raw`
 * around markup that is already safe) is inserted as it is.
 */

/** Markup that is safe to insert as it is. */
export class Html {
  constructor(readonly value: string) {}
  toString(): string {
    return this.value
  }
}

/** What a template takes: text (escaped), markup, nothing (`undefined`, `null`, `false`), or a list of them. */
export type Value = Html | string | number | boolean | null | undefined | ReadonlyArray<Value>

const ESCAPES: Record<string, string> = {
  "&": "&amp;",
  "<": "&lt;",
  ">": "&gt;",
  "\"": "&quot;",
  "'": "&#39;"
}

/** Text as HTML text or attribute value (quoted with `"` or `'`). */
export const escape = (text: string): string => text.replace(/[&<>"']/g, (char) => ESCAPES[char])

/** Markup the caller vouches for, such as `Csrf.formField()`'s hidden input. */
export const raw = (markup: string): Html => new Html(markup)

const render = (value: Value): string => {
  if (value instanceof Html) return value.value
  if (Array.isArray(value)) return value.map(render).join("")
  if (value === undefined || value === null || value === false) return ""
  return escape(String(value))
}

/** html`<p>${name}</p>`: the values are escaped, unless they are `Html`. */
export const html = (strings: TemplateStringsArray, ...values: ReadonlyArray<Value>): Html =>
  new Html(strings.reduce((out, string, i) => out + render(values[i - 1]) + string))
