/**
 * Runs a program the way a launcher such as `hmctl` or `numactl` should: found like
 * execvp(3), stdio shared, signals passed on, its exit status handed back.
 *
 * Deno cannot `exec` itself away, so the launcher stays as the program's parent and
 * must act transparent:
 *
 * - **Finding the program.** A name containing a slash is used as given; any other is
 *   searched in the directories of `PATH` (the child's, defaulting to execvp's
 *   `/bin:/usr/bin`; an empty entry means the current directory), taking the first
 *   regular file with an execute bit. A program that is not there or not executable
 *   is a {@link LaunchError} *before* anything runs — the reference `hmctl` did not
 *   search `PATH` at all.
 * - **Signals.** SIGINT, SIGTERM, SIGHUP and SIGQUIT sent to the launcher are sent on
 *   to the program instead of killing the launcher (which would orphan the program).
 *   A Ctrl-C at a terminal reaches both processes (same process group), so such a
 *   program sees SIGINT twice — the price of not being able to exec.
 * - **Exit status.** The program's exit code, or 128 + the signal number when a
 *   signal ended it, as shells report it.
 *
 * The program's `argv[0]` is its resolved path (Deno offers no way to set it).
 *
 * @module
 */

import { constants } from "node:os";

/** The signals {@link launch} forwards to the program while it runs. */
export const FORWARDED_SIGNALS: readonly Deno.Signal[] = [
  "SIGINT",
  "SIGTERM",
  "SIGHUP",
  "SIGQUIT",
];

/** execvp's search path when `PATH` is unset. */
export const DEFAULT_PATH = "/bin:/usr/bin";

/** A program that cannot be run; its message names the program. */
export class LaunchError extends Error {
  /** The program as the caller named it. */
  readonly program: string;

  /**
   * @example
   * ```ts
   * import { LaunchError } from "./launch.ts";
   * const error = new LaunchError("nope", `program "nope" not found in PATH`);
   * error.program; // "nope"
   * ```
   */
  constructor(program: string, message: string) {
    super(message);
    this.name = "LaunchError";
    this.program = program;
  }
}

/**
 * Where execvp(3) would find `program`: itself when it contains a slash, else the first
 * executable regular file of that name in `searchPath`'s directories.
 *
 * @param program the name or path as given by the user.
 * @param searchPath a `PATH` value (colon-separated; an empty entry is the current directory).
 * @throws {LaunchError} `program "X" not found`, `program "X" not found in PATH`,
 *   `program "X" is a directory` or `program "X" is not executable`.
 *
 * @example
 * ```ts
 * import { findProgram } from "./launch.ts";
 * findProgram("sh", "/usr/bin:/bin"); // "/usr/bin/sh"
 * findProgram("/bin/sh", ""); // "/bin/sh": a name with a slash is used as given
 * ```
 */
export function findProgram(program: string, searchPath: string = DEFAULT_PATH): string {
  if (program === "") throw new LaunchError(program, `program "" not found`);
  if (program.includes("/")) {
    const info = statOrNull(program);
    if (info === null) throw new LaunchError(program, `program "${program}" not found`);
    if (info.isDirectory) throw new LaunchError(program, `program "${program}" is a directory`);
    if (!isExecutable(info)) {
      throw new LaunchError(program, `program "${program}" is not executable`);
    }
    return program;
  }
  let notExecutable: string | null = null;
  for (const dir of searchPath.split(":")) {
    const candidate = `${dir === "" ? "." : dir.replace(/\/+$/, "")}/${program}`;
    const info = statOrNull(candidate);
    if (info === null || !info.isFile) continue;
    if (isExecutable(info)) return candidate;
    notExecutable ??= candidate;
  }
  if (notExecutable !== null) {
    throw new LaunchError(program, `program "${program}" is not executable (${notExecutable})`);
  }
  throw new LaunchError(program, `program "${program}" not found in PATH`);
}

/**
 * The exit status a shell reports for a process ended by `signal`: 128 + its number.
 *
 * @example
 * ```ts
 * import { signalExitCode } from "./launch.ts";
 * signalExitCode("SIGTERM"); // 143
 * ```
 */
export function signalExitCode(signal: Deno.Signal): number {
  const number = (constants.signals as Readonly<Record<string, number | undefined>>)[signal];
  if (number === undefined) throw new RangeError(`unknown signal "${signal}"`);
  return 128 + number;
}

/**
 * Runs `program` with `args` and exactly the environment `env`, stdio inherited, and
 * resolves to its exit code (128 + signal number if a signal ended it). SIGINT,
 * SIGTERM, SIGHUP and SIGQUIT received meanwhile are forwarded to it.
 *
 * @param program a name searched in `env.PATH` (execvp's default when unset), or a path.
 * @param args the program's arguments, passed untouched.
 * @param env the program's whole environment (nothing else is inherited).
 * @throws {LaunchError} when the program is not found, not executable or cannot be
 *   started; nothing has run then.
 *
 * @example
 * ```ts
 * import { launch } from "./launch.ts";
 * const code = await launch("sh", ["-c", "exit 7"], Deno.env.toObject());
 * code; // 7
 * ```
 */
export async function launch(
  program: string,
  args: readonly string[],
  env: Readonly<Record<string, string>>,
): Promise<number> {
  const resolved = findProgram(program, env.PATH ?? DEFAULT_PATH);
  let child: Deno.ChildProcess | null = null;
  const pending: Deno.Signal[] = []; // signals that arrived before the child existed
  const forward = (signal: Deno.Signal): void => {
    if (child === null) {
      pending.push(signal);
      return;
    }
    try {
      child.kill(signal);
    } catch {
      // The child has already exited; its status is on the way.
    }
  };
  const listeners = FORWARDED_SIGNALS.map((signal) => {
    const listener = (): void => forward(signal);
    Deno.addSignalListener(signal, listener);
    return { signal, listener };
  });
  try {
    try {
      child = new Deno.Command(resolved, {
        args: [...args],
        env: { ...env },
        clearEnv: true,
        stdin: "inherit",
        stdout: "inherit",
        stderr: "inherit",
      }).spawn();
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      throw new LaunchError(program, `cannot run program "${program}": ${reason}`);
    }
    for (const signal of pending.splice(0)) forward(signal);
    const status = await child.status;
    return status.signal === null ? status.code : signalExitCode(status.signal);
  } finally {
    for (const { signal, listener } of listeners) Deno.removeSignalListener(signal, listener);
  }
}

/**
 * stat(2), or null when nothing is there (a permission error is thrown, not hidden).
 *
 * @example
 * ```ts
 * import { statOrNull } from "./launch.ts";
 * console.log(statOrNull("/no/such/file")); // null
 * ```
 */
export function statOrNull(path: string): Deno.FileInfo | null {
  try {
    return Deno.statSync(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound || error instanceof Deno.errors.NotADirectory) {
      return null;
    }
    throw error;
  }
}

/** Any execute bit; a finer access(2) check would need the supplementary groups. */
function isExecutable(info: Deno.FileInfo): boolean {
  return info.isFile && info.mode !== null && (info.mode & 0o111) !== 0;
}
