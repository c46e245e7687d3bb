/**
 * Exit codes of `qml`, and the one place an error becomes one. Scripts
 * branch on them, so they are part of the interface (`qml --help` and the
 * README list them):
 *
 *   0  done
 *   1  failure: the store is unreachable or refused, a job was in the wrong state …
 *   2  usage: a bad flag or argument, input the core refuses (its ValidationError
 *      message), a bad environment variable (as `qml-server`)
 *   3  not found: an id (job, recurring job) that does not exist
 */
import { ConfigError, NotFoundError, ValidationError } from "../index.js";
import { CommanderError } from "commander";

export const ExitCode = { Ok: 0, Failure: 1, Usage: 2, NotFound: 3 } as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/** An outcome a command decided itself: its message for stderr and its exit code. */
export class CliError extends Error {
  override readonly name = "CliError";
  constructor(
    message: string,
    readonly exitCode: ExitCode,
  ) {
    super(message);
  }
}

/** Bad input the CLI itself catches before the core sees it (JSON that does not parse, flags that exclude each other). */
export function usage(message: string): CliError {
  return new CliError(message, ExitCode.Usage);
}

/**
 * The environment is read before anything else: a bad variable is the
 * caller's mistake (exit 2, as `qml-server`), whereas a ConfigError the
 * store raises later (tables missing) is a failure.
 */
export function configProblem(e: unknown): unknown {
  return e instanceof ConfigError ? new CliError(e.message, ExitCode.Usage) : e;
}

export const EXIT_CODES_HELP = `Exit codes:
  0  done
  1  failure (the store is unreachable or refused, a job in the wrong state, …)
  2  usage error: a bad flag or argument, input the core refuses, a bad environment variable
  3  not found: an unknown job or recurring job id`;

/** The exit code and the message (null: already printed) for an error that ended a command. */
export function exitFor(e: unknown): { code: ExitCode; message: string | null } {
  if (e instanceof CommanderError) {
    // Help and --version exit 0; commander has already printed its usage message.
    if (e.exitCode === 0) return { code: ExitCode.Ok, message: null };
    return { code: ExitCode.Usage, message: null };
  }
  if (e instanceof CliError) return { code: e.exitCode, message: e.message };
  if (e instanceof ValidationError) return { code: ExitCode.Usage, message: e.message };
  if (e instanceof NotFoundError) return { code: ExitCode.NotFound, message: e.message };
  if (e instanceof ConfigError && /migrate\(\)/.test(e.message)) return { code: ExitCode.Failure, message: `${e.message}; run \`qml migrate\`` };
  if (e instanceof Error) {
    const cause = e.cause instanceof Error && !e.message.includes(e.cause.message) ? `: ${e.cause.message}` : "";
    return { code: ExitCode.Failure, message: `${e.message}${cause}` };
  }
  return { code: ExitCode.Failure, message: JSON.stringify(e) };
}
