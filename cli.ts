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
import { runTier } from "./lib/tier_run.ts";

/** A subcommand: its arguments (after its name) in, the process exit status out. */
export type Subcommand = (args: string[]) => Promise<number>;

/**
 * Subcommands by name. Reserved for modules to come — `memtier`, `topology`, `usage` —
 * each added here as one line, e.g. `["topology", topology.run]`, once it exists.
 */
const SUBCOMMANDS: ReadonlyMap<string, Subcommand> = new Map<string, Subcommand>([
  ["memtier", runMemtier],
  ["tier", runTier],
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
  const subcommand = argv.length > 0 ? SUBCOMMANDS.get(argv[0]) : undefined;
  if (subcommand !== undefined) return await subcommand(argv.slice(1));
  return await hmctl(argv);
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

if (import.meta.main) Deno.exit(await main(Deno.args));
