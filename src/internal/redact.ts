/**
 * The one scrubbing function: what a driver error may carry into the library. Drivers keep the
 * inputs of a failed command on their errors (ioredis's `command.args` on `ReplyError` and on
 * "Command aborted" errors, pg's `detail`/`where`, mysql2's `sql` with inlined values, a
 * parser's `buffer`), and some messages quote them (mysql2's "Duplicate entry '<token>'",
 * pg's "invalid input syntax ... \"<value>\"", Redis's "unknown command ... with args").
 * Session keys are tokens or derived from them, payloads are session data: a log line, a span
 * or a printed error must show neither. So an error that enters the library keeps only, per
 * link of its cause chain, its name, the first line of its message (cut at the first quoted
 * value, token-like runs masked) and its code.
 */

/** How many links of a cause chain are kept (the driver error and what it wraps). */
const MAX_DEPTH = 4
const MAX_MESSAGE = 200
const MASK = "…"

// A quoted segment is kept only when it is a short identifier (a constraint, column, type or
// option name); anything else quoted is a value. 20 characters: tokens and hashed keys are 43.
const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_$]{0,19}(?:\.[A-Za-z_][A-Za-z0-9_$]{0,19})?$/
// A run that could be a token, a hashed key or an encoded value, quoted or not.
const TOKEN_LIKE = /[A-Za-z0-9_+/=-]{21,}/g
// An opening quote; a `'` between letters is an apostrophe ("can't"), not a quote.
const OPENING = /["`]|(?<![A-Za-z0-9])'/
const isClosing = (text: string, index: number, quote: string): boolean =>
  text[index] === quote && (quote !== "'" || !/[A-Za-z0-9]/.test(text[index + 1] ?? ""))

/**
 * The first line of a message with what could be a secret masked: token-like runs, and from the
 * first quoted segment that is not a short identifier on, everything (a value may itself hold
 * quotes, so nothing after it can be trusted).
 */
export const safeMessage = (message: string): string => {
  const line = message.split(/\r?\n/, 1)[0].slice(0, MAX_MESSAGE)
  let out = ""
  let rest = line
  while (rest.length > 0) {
    const open = rest.search(OPENING)
    if (open === -1) {
      out += rest
      break
    }
    const quote = rest[open]
    out += rest.slice(0, open)
    let close = open + 1
    while (close < rest.length && !isClosing(rest, close, quote)) close++
    const inner = rest.slice(open + 1, close)
    if (close >= rest.length || !IDENTIFIER.test(inner)) {
      out += quote + MASK
      break
    }
    out += quote + inner + quote
    rest = rest.slice(close + 1)
  }
  return out.replace(TOKEN_LIKE, MASK)
}

const field = (value: unknown, name: string): unknown =>
  typeof value === "object" && value !== null && name in value ? (value as Record<string, unknown>)[name] : undefined

const codeOf = (error: unknown): string | number | undefined => {
  for (const name of ["code", "errno"]) {
    const code = field(error, name)
    if ((typeof code === "string" && /^[A-Za-z0-9_.-]{1,64}$/.test(code)) || typeof code === "number") return code
  }
  return undefined
}

/**
 * What is left of a driver error: its name, the first line of its message (masked by
 * `safeMessage`) and its code, with what it wraps scrubbed the same way. Prints, inspects and
 * serialises to that and nothing else.
 */
export class ScrubbedError extends Error {
  readonly code: string | number | undefined
  constructor(name: string, message: string, code: string | number | undefined, cause: ScrubbedError | undefined) {
    super(message, cause === undefined ? undefined : { cause })
    this.name = name
    this.code = code
    // The frames would be the scrubber's, not the driver's: the first line says it all.
    this.stack = code === undefined ? `${name}: ${message}` : `${name}: ${message} (${code})`
  }
  toJSON(): Record<string, unknown> {
    return {
      name: this.name,
      message: this.message,
      ...(this.code === undefined ? {} : { code: this.code }),
      ...(this.cause === undefined ? {} : { cause: this.cause })
    }
  }
}

/** The nested error a driver error wraps: its `cause`, or an AggregateError's first error. */
const wrapped = (error: unknown): unknown => {
  const cause = field(error, "cause")
  if (cause !== undefined && cause !== null) return cause
  const errors = field(error, "errors")
  return Array.isArray(errors) ? errors[0] : undefined
}

/**
 * The one scrubbing function: a driver error (or anything thrown) as a `ScrubbedError`. Apply
 * it where a driver error enters the library, before it becomes the `cause` of an error.
 */
export const scrub = (error: unknown, depth = 0): ScrubbedError => {
  if (error instanceof ScrubbedError) return error
  const isObject = typeof error === "object" && error !== null
  const name = isObject && typeof field(error, "name") === "string" ? field(error, "name") as string : typeof error
  const message = field(error, "message")
  const text = typeof message === "string" ? message : isObject ? "" : String(error)
  const inner = depth + 1 < MAX_DEPTH ? wrapped(error) : undefined
  return new ScrubbedError(
    safeMessage(name).slice(0, 64),
    safeMessage(text),
    codeOf(error),
    inner === undefined || inner === error ? undefined : scrub(inner, depth + 1)
  )
}

/** A one-line description of a scrubbed error: the messages of its chain, outermost first, and its first code. */
export const describe = (error: ScrubbedError): string => {
  const chain: Array<ScrubbedError> = []
  let link: unknown = error
  while (link instanceof ScrubbedError) {
    chain.push(link)
    link = link.cause
  }
  const messages = chain.map((link) => link.message).filter((message, i, all) =>
    message !== "" && all.indexOf(message) === i
  )
  const codes = chain.map((link) => link.code).filter((code) => code !== undefined)
  const code = codes.find((code) => typeof code === "string") ?? codes[0]
  const message = messages.join(": ")
  if (message === "") return code === undefined ? error.name : String(code)
  return code === undefined || message.includes(String(code)) ? message : `${message} (${code})`
}
