/**
 * The one error for invalid configuration, shared by the manager, the transports, the
 * middleware, the stores and the locks: a layer built with invalid options fails with it.
 *
 * @since 0.2.0
 */
import * as Data from "effect/Data"

/**
 * Some option is invalid: `option` names it, `reason` says what to change. Never a silent
 * clamp: an option that cannot be honoured fails the layer that was given it.
 *
 * @since 0.2.0
 * @category errors
 */
export class SessionConfigError extends Data.TaggedError("SessionConfigError")<{
  readonly option: string
  readonly reason: string
}> {
  /**
   * @since 0.2.0
   */
  override get message(): string {
    return `Invalid session configuration: ${this.option} ${this.reason}`
  }
}
