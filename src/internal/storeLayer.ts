/**
 * How every backend layer is built: the store under its own tag and under `SessionStore`, so that
 * what only that backend offers is reachable without a cast.
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import { SessionStore } from "../SessionStore.js"

export const provideBoth = <I, S extends SessionStore, E, R>(
  tag: Context.Tag<I, S>,
  make: Effect.Effect<S, E, R>
): Layer.Layer<I | SessionStore, E, Exclude<R, Scope.Scope>> =>
  Layer.scopedContext(Effect.map(make, (store) => Context.make(tag, store).pipe(Context.add(SessionStore, store))))
