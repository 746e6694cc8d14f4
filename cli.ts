#!/usr/bin/env -S deno run -A
/**
 * tiermem's command line.
 *
 * ```sh
 * deno run -A cli.ts [hmctl options] PROGRAM [ARGS...]   # hmctl: run PROGRAM under a policy
 * deno run -A cli.ts SUBCOMMAND [ARGS...]                # a subcommand of the table below
 * ```
 *
 * Without a subcommand this is SK hynix `hmctl`: `deno run -A cli.ts -m 2 ./prog` runs
 * `./prog` with its hmalloc pool bound to node 2 (see `--help`, `lib/hmctl_options.ts`
 * for the grammar and environment, `lib/launch.ts` for PATH search, signals and exit
 * status).
 *
 * A subcommand is recognised only as the *first* argument, by an exact entry in
 * `SUBCOMMANDS` (each maps to a module's `run(args): Promise<number>`). A program
 * literally named like a subcommand is run in hmctl mode with `cli.ts -- NAME ...` or
 * `cli.ts ./NAME ...` (or after any option: `cli.ts -m 0 NAME`).
 *
 * Usage errors print `hmctl: <problem>` and `Try 'cli.ts --help' for more information.`
 * on stderr and exit with 2 without running anything.
 *
 * Output that cannot be written (stdout on a full disk, `> /dev/full`, a closed pipe) ends any
 * subcommand with one line, e.g. `tiermem: cannot write to stdout: No space left on device
 * (ENOSPC)`, and exit status 1: the standard streams' writes are tagged with their name here, and
 * {@link main} turns such an error into that line, whichever subcommand wrote.
 *
 * This file only parses and delegates; the logic lives in `lib/`, tested there.
 *
 * @module
 */

import {
  hmctlEnv,
  hmctlErrorText,
  hmctlHelp,
  type HmctlRequest,
  hmctlUsage,
  parseHmctlArgs,
} from "./lib/hmctl_options.ts";
import { launch, LaunchError } from "./lib/launch.ts";
import { runMemtier } from "./lib/memtier_launch.ts";
import { readNodeTopology } from "./lib/node_list.ts";
import { runTopologyView, runUsageView } from "./lib/views.ts";

/** A subcommand: its arguments (after its name) in, the process exit status out. */
export type Subcommand = (args: string[]) => Promise<number>;

/**
 * Subcommands by name. Reserved for modules to come — `memtier`, `topology`, `usage` —
 * each added here as one line, e.g. `["topology", topology.run]`, once it exists.
 */
const SUBCOMMANDS: ReadonlyMap<string, Subcommand> = new Map<string, Subcommand>([
  ["memtier", runMemtier],
  ["topology", runTopologyView],
  ["usage", runUsageView],
]);

/** How the command names itself in help and error hints. */
const COMMAND_NAME = "cli.ts";

/** Exit status for usage errors and programs that cannot be run. */
const EXIT_USAGE = 2;

/**
 * Runs the command line `argv` (without the command's own name) and returns the exit
 * status: a subcommand's, or hmctl's (the program's own status, 128 + signal, or 2).
 *
 * @example
 * ```ts
 * import { main } from "./cli.ts";
 * const status = await main(["-m", "0", "sh", "-c", "echo $HMALLOC_POLICY"]); // prints bind:0
 * status; // 0
 * ```
 */
export async function main(argv: readonly string[]): Promise<number> {
  try {
    const subcommand = argv.length > 0 ? SUBCOMMANDS.get(argv[0]) : undefined;
    if (subcommand !== undefined) return await subcommand(argv.slice(1));
    return await hmctl(argv);
  } catch (error) {
    if (error instanceof OutputError) return outputFailed(error);
    throw error;
  }
}

/** Exit status when output cannot be written. */
const EXIT_OUTPUT = 1;

/** A write to stdout or stderr failed; `cause` is Deno's error (its `code` is the errno name). */
class OutputError extends Error {
  /** The stream the write went to. */
  readonly stream: "stdout" | "stderr";

  /** Wraps `cause`, the error of a write to `stream`. */
  constructor(stream: "stdout" | "stderr", cause: unknown) {
    const why = cause instanceof Error
      ? cause.message.replace(/ \(os error \d+\)$/, "")
      : String(cause);
    const code = (cause as { code?: unknown } | null)?.code;
    super(`cannot write to ${stream}: ${why}${typeof code === "string" ? ` (${code})` : ""}`, {
      cause,
    });
    this.name = "OutputError";
    this.stream = stream;
  }
}

/** One line on stderr (if stderr itself can take it), then the exit status. */
function outputFailed(error: OutputError): number {
  try {
    Deno.stderr.writeSync(new TextEncoder().encode(`tiermem: ${error.message}\n`));
  } catch {
    // stderr is unwritable too: the exit status alone tells.
  }
  return EXIT_OUTPUT;
}

/** The writes of a standard stream, as `stdout`/`stderr` hold them. */
interface StandardStream {
  write(bytes: Uint8Array): Promise<number>;
  writeSync(bytes: Uint8Array): number;
}

/**
 * Makes every write to Deno.stdout and Deno.stderr (whoever makes it: cli.ts or a subcommand's
 * module) throw an {@link OutputError} naming the stream when it fails. Done once, by the
 * command itself; modules imported elsewhere see the streams unchanged.
 */
function tagStandardStreams(): void {
  const tag = (stream: StandardStream, name: "stdout" | "stderr"): void => {
    const write = stream.write.bind(stream);
    const writeSync = stream.writeSync.bind(stream);
    stream.write = async (bytes: Uint8Array): Promise<number> => {
      try {
        return await write(bytes);
      } catch (error) {
        throw new OutputError(name, error);
      }
    };
    stream.writeSync = (bytes: Uint8Array): number => {
      try {
        return writeSync(bytes);
      } catch (error) {
        throw new OutputError(name, error);
      }
    };
  };
  tag(Deno.stdout, "stdout");
  tag(Deno.stderr, "stderr");
}

/** hmctl mode: parse up to the program, then launch it with the policy's environment. */
async function hmctl(argv: readonly string[]): Promise<number> {
  let request: HmctlRequest;
  try {
    request = parseHmctlArgs(argv, readNodeTopology());
  } catch (error) {
    if (error instanceof TypeError || error instanceof RangeError) {
      return await usageError(error.message);
    }
    throw error;
  }
  if (request.kind === "help") return await print(Deno.stdout, hmctlHelp(COMMAND_NAME), 0);
  if (request.kind === "usage") return await print(Deno.stdout, hmctlUsage(COMMAND_NAME), 0);
  const env = hmctlEnv(Deno.env.toObject(), request.policy);
  try {
    return await launch(request.program, request.args, env);
  } catch (error) {
    if (error instanceof LaunchError) return await usageError(error.message);
    throw error;
  }
}

/** Where {@link print} writes: stdout or stderr. */
interface ByteSink {
  write(bytes: Uint8Array): Promise<number>;
}

function usageError(message: string): Promise<number> {
  return print(Deno.stderr, hmctlErrorText(message, COMMAND_NAME), EXIT_USAGE);
}

async function print(stream: ByteSink, text: string, status: number): Promise<number> {
  const bytes = new TextEncoder().encode(text);
  for (let done = 0; done < bytes.length;) done += await stream.write(bytes.subarray(done));
  return status;
}

if (import.meta.main) {
  tagStandardStreams();
  Deno.exit(await main(Deno.args));
}
