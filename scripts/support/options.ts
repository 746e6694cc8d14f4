/**
 * Command-line options for the project's scripts: `node:util`'s parseArgs, strict, with a bad
 * option reported as one line naming it (`build: Unknown option '--bogus'. ...`) and exit status
 * 2, where parseArgs alone throws and Deno prints a stack trace.
 *
 * @module
 */
import { parseArgs, type ParseArgsConfig } from "node:util";

/** What parseArgs returns for `config`. */
export type ParsedOptions<T extends ParseArgsConfig> = ReturnType<typeof parseArgs<T>>;

/**
 * parseArgs(`config`) over `config.args` (default `Deno.args`); on a bad option or value, prints
 * `program: <what is wrong>` to stderr and exits with status 2.
 *
 * @example
 * ```ts
 * const { values } = parseOptions("build", { options: { prefix: { type: "string" } } });
 * console.log(values.prefix ?? "zig-out");
 * ```
 */
export function parseOptions<T extends ParseArgsConfig>(
  program: string,
  config: T,
): ParsedOptions<T> {
  try {
    const withArgs: T = { args: Deno.args, ...config };
    return parseArgs(withArgs);
  } catch (error) {
    console.error(`${program}: ${error instanceof Error ? error.message : String(error)}`);
    Deno.exit(2);
  }
}
