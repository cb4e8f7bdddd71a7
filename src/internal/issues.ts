/**
 * Schema failures described without the values that failed: a `ParseError`'s message quotes
 * the input ("Expected number, actual …"), which here is session data.
 */
import * as ParseResult from "effect/ParseResult"

/** Where and how the value failed, e.g. `Type at user.id; Missing at createdAt`, never what it was. */
export const describeIssue = (issue: ParseResult.ParseIssue): string =>
  ParseResult.ArrayFormatter.formatIssueSync(issue)
    .map(({ _tag, path }) => path.length === 0 ? _tag : `${_tag} at ${path.map(String).join(".")}`)
    .join("; ")
