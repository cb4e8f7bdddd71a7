/**
 * The app's accounts: a user name and a password, hashed with scrypt and a random salt. One
 * service (`Users`) over a small backend (`UserRecords`) that only keeps rows: in memory
 * (`layerMemory`) or in a SQL table (`layerSql`, on the app's `SqlClient`).
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import { Context, Data, Effect, Layer, Option, Redacted } from "effect"
import * as Crypto from "node:crypto"

/** @category models */
export interface User {
  readonly id: string
  readonly name: string
}

/**
 * Why an account operation failed: `NameTaken` at sign-up, `WrongCredentials` at sign-in (an
 * unknown name and a wrong password look the same), `Unavailable` when the records could not be read.
 */
export class UsersError extends Data.TaggedError("UsersError")<{
  readonly reason: "NameTaken" | "WrongCredentials" | "Unavailable"
  readonly cause?: unknown
}> {}

/** @category models */
export interface Users {
  /** Creates an account; fails with `NameTaken` if the name is in use. */
  readonly register: (name: string, password: Redacted.Redacted<string>) => Effect.Effect<User, UsersError>
  /** The account with this name and password; fails with `WrongCredentials` otherwise. */
  readonly authenticate: (name: string, password: Redacted.Redacted<string>) => Effect.Effect<User, UsersError>
  /** The account with this id, if it (still) exists. */
  readonly find: (id: string) => Effect.Effect<Option.Option<User>, UsersError>
}

/** @category tags */
export const Users: Context.Tag<Users, Users> = Context.GenericTag<Users>("app/Users")

/** A stored account. The hash holds its own parameters and salt: `scrypt$N$r$p$salt$key`. */
export interface UserRow extends User {
  readonly passwordHash: string
}

/** Where accounts are kept. It sees only hashes, never a password. */
export interface UserRecords {
  /** Adds the row unless its name is taken; `false` when it is. */
  readonly insert: (row: UserRow) => Effect.Effect<boolean, UsersError>
  readonly byName: (name: string) => Effect.Effect<Option.Option<UserRow>, UsersError>
  readonly byId: (id: string) => Effect.Effect<Option.Option<UserRow>, UsersError>
}

// ---------------------------------------------------------------------------------------------
// Passwords
// ---------------------------------------------------------------------------------------------

// One of OWASP's equivalent minimums for scrypt (N=2^17, r=8, p=1 is the first; N=2^14, r=8, p=5 costs
// the same work with 16 MiB of memory instead of 128).
const PARAMETERS = { N: 2 ** 14, r: 8, p: 5 }
const KEY_BYTES = 32
const SALT_BYTES = 16

const scrypt = (
  password: Redacted.Redacted<string>,
  salt: Buffer,
  parameters: typeof PARAMETERS,
  keyBytes: number
): Effect.Effect<Buffer> =>
  Effect.async<Buffer>((resume) => {
    // Fails only for parameters out of range, which are fixed here or come from our own hashes.
    Crypto.scrypt(Redacted.value(password), salt, keyBytes, { ...parameters, maxmem: 64 * 1024 * 1024 }, (error, key) =>
      resume(error === null ? Effect.succeed(key) : Effect.die(error)))
  })

/** A new hash of `password` with a fresh random salt. */
const hashPassword = (password: Redacted.Redacted<string>): Effect.Effect<string> => {
  const salt = Crypto.randomBytes(SALT_BYTES)
  return Effect.map(
    scrypt(password, salt, PARAMETERS, KEY_BYTES),
    (key) =>
      `scrypt$${PARAMETERS.N}$${PARAMETERS.r}$${PARAMETERS.p}$${salt.toString("base64url")}$${
        key.toString("base64url")
      }`
  )
}

/** Whether `password` matches `hash`, compared in constant time. A malformed hash matches nothing. */
const verifyPassword = (password: Redacted.Redacted<string>, hash: string): Effect.Effect<boolean> => {
  const parts = hash.split("$")
  if (parts.length !== 6 || parts[0] !== "scrypt") return Effect.succeed(false)
  const [, N, r, p, salt, key] = parts
  const expected = Buffer.from(key, "base64url")
  if (expected.length < KEY_BYTES) return Effect.succeed(false)
  return Effect.map(
    scrypt(password, Buffer.from(salt, "base64url"), { N: Number(N), r: Number(r), p: Number(p) }, expected.length),
    (actual) => Crypto.timingSafeEqual(actual, expected)
  )
}

// ---------------------------------------------------------------------------------------------
// The service
// ---------------------------------------------------------------------------------------------

const toUser = (row: UserRow): User => ({ id: row.id, name: row.name })

/** The service over a backend. */
export const make = (records: UserRecords): Effect.Effect<Users> =>
  Effect.gen(function*() {
    // An unknown name costs a hash too, so that the time taken does not tell which names exist.
    const decoy = yield* hashPassword(Redacted.make(Crypto.randomUUID()))
    const wrongCredentials = new UsersError({ reason: "WrongCredentials" })
    return Users.of({
      register: (name, password) =>
        Effect.gen(function*() {
          const row: UserRow = { id: Crypto.randomUUID(), name, passwordHash: yield* hashPassword(password) }
          const inserted = yield* records.insert(row)
          return inserted ? toUser(row) : yield* new UsersError({ reason: "NameTaken" })
        }),
      authenticate: (name, password) =>
        Effect.gen(function*() {
          const row = yield* records.byName(name)
          const matches = yield* verifyPassword(
            password,
            Option.match(row, {
              onNone: () => decoy,
              onSome: (row) => row.passwordHash
            })
          )
          return Option.isSome(row) && matches ? toUser(row.value) : yield* wrongCredentials
        }),
      find: (id) => Effect.map(records.byId(id), Option.map(toUser))
    })
  })

/** Accounts in memory, gone when the process stops. */
export const layerMemory: Layer.Layer<Users> = Layer.effect(
  Users,
  Effect.suspend(() => {
    // Each check-and-set runs in one synchronous step: nothing can come between them.
    const byName = new Map<string, UserRow>()
    const byId = new Map<string, UserRow>()
    return make({
      insert: (row) =>
        Effect.sync(() => {
          if (byName.has(row.name)) return false
          byName.set(row.name, row)
          byId.set(row.id, row)
          return true
        }),
      byName: (name) => Effect.sync(() => Option.fromNullable(byName.get(name))),
      byId: (id) => Effect.sync(() => Option.fromNullable(byId.get(id)))
    })
  })
)

interface SqlRow {
  readonly id: string
  readonly name: string
  readonly password_hash: string
}

const fromSql = (rows: ReadonlyArray<SqlRow>): Option.Option<UserRow> =>
  Option.map(Option.fromNullable(rows[0]), (row) => ({ id: row.id, name: row.name, passwordHash: row.password_hash }))

const unavailable = (cause: SqlError) => new UsersError({ reason: "Unavailable", cause })

/**
 * Accounts in the table `users` of the app's database, created on start when missing. The
 * statements are portable (`ON CONFLICT ... DO NOTHING RETURNING` is SQLite 3.35+ and PostgreSQL).
 */
export const layerSql: Layer.Layer<Users, SqlError, SqlClient.SqlClient> = Layer.effect(
  Users,
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql`CREATE TABLE IF NOT EXISTS users (
      id TEXT PRIMARY KEY,
      name TEXT NOT NULL UNIQUE,
      password_hash TEXT NOT NULL
    )`
    return yield* make({
      insert: (row) =>
        sql`INSERT INTO users (id, name, password_hash) VALUES (${row.id}, ${row.name}, ${row.passwordHash})
          ON CONFLICT (name) DO NOTHING RETURNING id`.pipe(
          Effect.map((rows) => rows.length === 1),
          Effect.mapError(unavailable)
        ),
      byName: (name) =>
        sql<SqlRow>`SELECT id, name, password_hash FROM users WHERE name = ${name}`.pipe(
          Effect.map(fromSql),
          Effect.mapError(unavailable)
        ),
      byId: (id) =>
        sql<SqlRow>`SELECT id, name, password_hash FROM users WHERE id = ${id}`.pipe(
          Effect.map(fromSql),
          Effect.mapError(unavailable)
        )
    })
  })
)
