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
 * `./prog` with its hmalloc pool bound to node 2 (see `--help`, `cli/hmctl_options.ts`
 * for the grammar and environment, `cli/launch.ts` for PATH search, signals and exit
 * status).
 *
 * A subcommand is recognised only as the *first* argument, by an exact entry in
 * `SUBCOMMANDS` (each maps to a module's `run(args): Promise<number>`). A program
 * literally named like a subcommand is run in hmctl mode with `cli.ts -- NAME ...` or
 * `cli.ts ./NAME ...` (or after any option: `cli.ts -m 0 NAME`).
 *
 * Usage errors print one line, `hmctl: <problem>`, on stderr and exit with 2 without
 * running anything.
 *
 * Installed (`scripts/install.sh`), the same code runs under three names, chosen by
 * {@link runAs}: `tiermem` (this whole command line), `hmctl` (hmctl mode only, no
 * subcommands: `hmctl topology` runs a program named topology, as SK hynix's hmctl would)
 * and `memtier` (the `memtier` subcommand alone: `memtier --tiers DRAM:1 prog`).
 *
 * Output that cannot be written (stdout on a full disk, `> /dev/full`, a closed pipe) ends any
 * subcommand with one line, e.g. `tiermem: cannot write to stdout: No space left on device
 * (ENOSPC)`, and exit status 1: the standard streams' writes are tagged with their name here, and
 * {@link main} turns such an error into that line, whichever subcommand wrote.
 *
 * This file only parses and delegates: the command line's logic lives in `cli/` (over the library
 * of `lib/`), tested in `tests/unit/`.
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
} from "./cli/hmctl_options.ts";
import { launch, LaunchError } from "./cli/launch.ts";
import { runMemtier } from "./cli/memtier_launch.ts";
import { readNodeTopology } from "./lib/node_list.ts";
import { runTopologyView, runUsageView } from "./cli/views.ts";
import { runTier } from "./cli/tier_run.ts";
import { writeAll, writeAllSync } from "./cli/write_all.ts";

/** A subcommand: its arguments (after its name) in, the process exit status out. */
export type Subcommand = (args: string[]) => Promise<number>;

/** Subcommands by name: a new one is one line here, `["name", run]`. */
const SUBCOMMANDS: ReadonlyMap<string, Subcommand> = new Map<string, Subcommand>([
  ["memtier", runMemtier],
  ["tier", runTier],
  ["topology", runTopologyView],
  ["usage", runUsageView],
]);

/** The names this command line runs under: from a checkout, or installed. */
export type CommandName = "cli.ts" | "tiermem" | "hmctl" | "memtier";

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
  return await runAs("cli.ts", argv);
}

/**
 * Runs the command line `argv` as the command `name` would (see the module's doc): `tiermem`
 * and `cli.ts` know the subcommands, `hmctl` is hmctl mode only, `memtier` is the memtier
 * launcher only. Help texts name the command as invoked.
 *
 * @example
 * ```ts
 * import { runAs } from "./cli.ts";
 * await runAs("memtier", ["--tiers", "DRAM:1", "true"]); // 0, like `tiermem memtier --tiers DRAM:1 true`
 * await runAs("hmctl", ["-m", "0", "true"]); // 0
 * ```
 */
export async function runAs(name: CommandName, argv: readonly string[]): Promise<number> {
  try {
    if (name === "hmctl") return await hmctl(argv, name);
    if (name === "memtier") return await runMemtier([...argv], "memtier");
    const subcommand = argv.length > 0 ? SUBCOMMANDS.get(argv[0]) : undefined;
    if (subcommand === runMemtier) return await runMemtier(argv.slice(1), `${name} memtier`);
    if (subcommand !== undefined) return await subcommand(argv.slice(1));
    return await hmctl(argv, name);
  } catch (error) {
    if (error instanceof OutputError) return outputFailed(error);
    throw error;
  }
}

/**
 * The process entry of the command `name` (`cli.ts` itself, and the installed `tiermem`,
 * `hmctl` and `memtier`): a failed write to stdout or stderr becomes one line and status 1,
 * then {@link runAs}.
 *
 * @example
 * ```ts ignore
 * import { runCommand } from "./cli.ts";
 * Deno.exit(await runCommand("hmctl", Deno.args));
 * ```
 */
export async function runCommand(name: CommandName, argv: readonly string[]): Promise<number> {
  tagStandardStreams();
  return await runAs(name, argv);
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
    writeAllSync(Deno.stderr, `tiermem: ${error.message}\n`);
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
async function hmctl(argv: readonly string[], name: CommandName): Promise<number> {
  let request: HmctlRequest;
  try {
    request = parseHmctlArgs(argv, readNodeTopology());
  } catch (error) {
    if (error instanceof TypeError || error instanceof RangeError) {
      return await usageError(error.message);
    }
    throw error;
  }
  if (request.kind === "help") return await print(Deno.stdout, hmctlHelp(name), 0);
  if (request.kind === "usage") return await print(Deno.stdout, hmctlUsage(name), 0);
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
  return print(Deno.stderr, hmctlErrorText(message), EXIT_USAGE);
}

async function print(stream: ByteSink, text: string, status: number): Promise<number> {
  await writeAll(stream, text);
  return status;
}

if (import.meta.main) {
  Deno.exit(await runCommand("cli.ts", Deno.args));
}
