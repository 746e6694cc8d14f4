/**
 * `cli.ts memtier`: run an unmodified program with libmemtier.so preloaded, its heap split
 * between memory tiers as memkind's `libmemtier` would.
 *
 * ```sh
 * deno run -A cli.ts memtier --tiers DRAM:1,KMEM_DAX:4 ./prog args...
 * deno run -A cli.ts memtier --mem-tiers "KIND:DRAM,RATIO:1;KIND:FS_DAX,PATH:/mnt/pmem,RATIO:2;POLICY:STATIC_RATIO" prog
 * ```
 *
 * The whole configuration is checked here, with `lib/tier_spec.ts` (a port of the library's
 * own parser, giving the same message), BEFORE the program starts: a bad token is one line on
 * stderr, exit status 2, and nothing runs. memkind's library instead segfaults on several
 * malformed strings, after the program has started. What is checked:
 *
 * - `--tiers`/`--policy`/`--thresholds`, or `--mem-tiers`/`--thresholds`, or, when neither
 *   tier option is given, `MEMKIND_MEM_TIERS`/`MEMKIND_MEM_THRESHOLDS` inherited from the
 *   environment (with neither, the library is a plain malloc replacement: one DRAM tier);
 * - the log level (0, 1 or 2, flag or inherited `MEMKIND_MEM_TIERING_LOG_LEVEL`);
 * - that every FS_DAX PATH is an existing directory and that a KMEM_DAX tier finds a node
 *   (`cli/kmem_dax_nodes.ts`; the library would exit at start-up);
 * - that libmemtier.so exists: `TIERMEM_MEMTIER_LIB`, else the local build
 *   `zig-src/zig-out/lib/libmemtier.so` next to this module.
 *
 * The program's environment is the launcher's, plus `LD_PRELOAD` with the library's absolute
 * path in front of any preload already there, and the variables above. Tier options given on
 * the command line replace inherited tier variables (an inherited MEMKIND_MEM_THRESHOLDS is
 * dropped unless `--thresholds` is given). Launching is `cli/launch.ts`'s: PATH search,
 * signal forwarding, the program's exit status or 128 + signal.
 *
 * @module
 */

import { libraryEnvVars, locateLibrary } from "../ffi/library.ts";
import { writeAll } from "./write_all.ts";
import { type GetoptMessages, type GetoptOption, GetoptScanner } from "./getopt.ts";
import { kmemDaxProblem } from "./kmem_dax_nodes.ts";
import { launch, LaunchError, statOrNull } from "./launch.ts";
import { parseTierSpec, tierEnvFromFlags, type TierSpec } from "../lib/tier_spec.ts";

/** Exit status for a bad configuration, a usage error or a program that cannot run. */
export const EXIT_USAGE = 2;

/** Environment variable naming libmemtier.so explicitly (the loader's name for it). */
const LIBRARY_ENV: string = libraryEnvVars.memtier;

/** The library's log levels. */
export type LogLevel = 0 | 1 | 2;

/** What `cli.ts memtier ARGS` asks for. */
export type MemtierRequest =
  | { readonly kind: "help" }
  | {
    readonly kind: "run";
    /** `--tiers` (friendly form), or null. */
    readonly tiers: string | null;
    /** `--mem-tiers` (MEMKIND_MEM_TIERS form), or null. */
    readonly memTiers: string | null;
    /** `--policy`, or null (static). Only with `--tiers`. */
    readonly policy: "static" | "dynamic" | null;
    /** `--thresholds` (MEMKIND_MEM_THRESHOLDS form), or null. */
    readonly thresholds: string | null;
    /** `--log-level`, or null (inherit). */
    readonly logLevel: LogLevel | null;
    readonly program: string;
    readonly args: readonly string[];
  };

/** memtier's options: long names only (no abbreviations), `-h` the one short form. */
const OPTIONS: readonly GetoptOption[] = [
  { long: "tiers" },
  { long: "mem-tiers" },
  { long: "policy" },
  { long: "thresholds" },
  { long: "log-level" },
  { long: "help", short: "h" },
];

const MESSAGES: GetoptMessages<GetoptOption> = {
  abbreviations: false,
  takesValue: (option) => option.long !== "help",
  unknown: (token) => `unknown option "${token}"`,
  ambiguous: (spelled) => `ambiguous option "${spelled}"`, // unreachable without abbreviations
  missingValue: (_option, spelled) => `option "${spelled}" needs a value`,
};

/**
 * Parses the arguments after `memtier`. Options come before PROGRAM (or `--`); everything
 * from PROGRAM on is the program's. Throws `TypeError` naming the bad option or value.
 *
 * @example
 * ```ts
 * import { parseMemtierArgs } from "./memtier_launch.ts";
 * const r = parseMemtierArgs(["--tiers", "DRAM:1,KMEM_DAX:4", "ls", "-l"]);
 * if (r.kind === "run") console.log(r.program, r.args); // ls [ "-l" ]
 * ```
 */
export function parseMemtierArgs(argv: readonly string[]): MemtierRequest {
  const values = new Map<string, string>();
  const scan = new GetoptScanner(argv, OPTIONS, MESSAGES);
  for (let parsed = scan.next(); parsed !== undefined; parsed = scan.next()) {
    const { spelled, token, value } = parsed;
    if (parsed.option.long === "help") {
      if (value !== undefined) throw new TypeError(MESSAGES.unknown(token, spelled)); // -hx, --help=x
      return { kind: "help" };
    }
    if (values.has(spelled)) throw new TypeError(`option "${spelled}" given twice`);
    values.set(spelled, value as string); // every other option takes a value
  }
  const i = scan.index;
  if (i >= argv.length) throw new TypeError("no program given");
  const tiers = values.get("--tiers") ?? null;
  const memTiers = values.get("--mem-tiers") ?? null;
  if (tiers !== null && memTiers !== null) {
    throw new TypeError(`options "--tiers" and "--mem-tiers" exclude each other`);
  }
  const policyText = values.get("--policy") ?? null;
  if (policyText !== null && policyText !== "static" && policyText !== "dynamic") {
    throw new TypeError(`--policy: bad value "${policyText}": expected static or dynamic`);
  }
  if (policyText !== null && tiers === null) {
    throw new TypeError(
      `option "--policy" goes with "--tiers" (with --mem-tiers, POLICY is part of the string)`,
    );
  }
  const levelText = values.get("--log-level") ?? null;
  return {
    kind: "run",
    tiers,
    memTiers,
    policy: policyText,
    thresholds: values.get("--thresholds") ?? null,
    logLevel: levelText === null ? null : parseLogLevel("--log-level", levelText),
    program: argv[i],
    args: argv.slice(i + 1),
  };
}

function parseLogLevel(what: string, text: string): LogLevel {
  if (text === "0" || text === "1" || text === "2") return Number(text) as LogLevel;
  throw new TypeError(`${what}: bad value "${text}": expected 0, 1 or 2`);
}

/** The variables libmemtier reads, as the program will see them. */
export interface MemtierConfig {
  /** null: unset (one DRAM tier). */
  readonly MEMKIND_MEM_TIERS: string | null;
  readonly MEMKIND_MEM_THRESHOLDS: string | null;
  readonly MEMKIND_MEM_TIERING_LOG_LEVEL: string | null;
  /** The parsed configuration (null without MEMKIND_MEM_TIERS). */
  readonly spec: TierSpec | null;
}

/**
 * Resolves and checks the configuration of a run request against the inherited environment
 * `env`. Throws `TypeError` with one line: libmemtier's own message for a bad tier or
 * threshold string, or one naming the flag, the log level or the FS_DAX PATH.
 *
 * @example
 * ```ts
 * import { memtierConfig, parseMemtierArgs } from "./memtier_launch.ts";
 * const r = parseMemtierArgs(["--tiers", "DRAM:1,FS_DAX:4:/tmp", "prog"]);
 * if (r.kind === "run") memtierConfig(r, {}).MEMKIND_MEM_TIERS;
 * // "KIND:DRAM,RATIO:1;KIND:FS_DAX,PATH:/tmp,RATIO:4;POLICY:STATIC_RATIO"
 * ```
 */
export function memtierConfig(
  request: Extract<MemtierRequest, { kind: "run" }>,
  env: Readonly<Record<string, string>>,
): MemtierConfig {
  let tiers: string | null;
  let thresholds: string | null;
  if (request.tiers !== null) {
    const built = tierEnvFromFlags({
      tiers: request.tiers,
      policy: request.policy ?? undefined,
      thresholds: request.thresholds ?? undefined,
    });
    tiers = built.MEMKIND_MEM_TIERS;
    thresholds = built.MEMKIND_MEM_THRESHOLDS ?? null;
  } else if (request.memTiers !== null) {
    tiers = request.memTiers;
    thresholds = request.thresholds;
  } else {
    tiers = env.MEMKIND_MEM_TIERS ?? null;
    thresholds = request.thresholds ?? env.MEMKIND_MEM_THRESHOLDS ?? null;
  }
  let spec: TierSpec | null = null;
  if (tiers !== null) {
    const result = parseTierSpec(tiers, thresholds);
    if (!result.ok) throw new TypeError(result.failure.message);
    spec = result.spec;
    for (const tier of spec.tiers) {
      if (tier.kind === "FS_DAX" && !isDirectory(tier.path)) {
        throw new TypeError(`FS_DAX: bad PATH "${tier.path}": not an existing directory`);
      }
    }
    if (spec.tiers.some((tier) => tier.kind === "KMEM_DAX")) {
      const problem = kmemDaxProblem(env.MEMKIND_DAX_KMEM_NODES);
      if (problem !== null) throw new TypeError(problem);
    }
  } else if (thresholds !== null) {
    throw new TypeError(
      `MEMKIND_MEM_THRESHOLDS: bad value "${thresholds}": allowed only with POLICY:DYNAMIC_THRESHOLD`,
    );
  }
  let level: string | null = null;
  if (request.logLevel !== null) level = String(request.logLevel);
  else if (env.MEMKIND_MEM_TIERING_LOG_LEVEL !== undefined) {
    level = String(
      parseLogLevel("MEMKIND_MEM_TIERING_LOG_LEVEL", env.MEMKIND_MEM_TIERING_LOG_LEVEL),
    );
  }
  return {
    MEMKIND_MEM_TIERS: tiers,
    MEMKIND_MEM_THRESHOLDS: thresholds,
    MEMKIND_MEM_TIERING_LOG_LEVEL: level,
    spec,
  };
}

function isDirectory(path: string): boolean {
  return statOrNull(path)?.isDirectory ?? false;
}

/**
 * The absolute path of libmemtier.so through the library chain of `ffi/library.ts`:
 * `TIERMEM_MEMTIER_LIB` when set (it must exist; a relative path is taken from the current
 * directory), else the local build, else the prebuilt binary shipped with the package (verified,
 * cached), else a build with Zig. Throws `TypeError` saying what is wrong with the variable, or
 * listing every place tried.
 *
 * @example
 * ```ts
 * import { findMemtierLibrary } from "./memtier_launch.ts";
 * console.log(await findMemtierLibrary(Deno.env.toObject())); // ".../libmemtier.so"
 * ```
 */
export async function findMemtierLibrary(env: Readonly<Record<string, string>>): Promise<string> {
  const given = env[LIBRARY_ENV];
  if (given !== undefined) {
    const path = given.startsWith("/") ? given : `${Deno.cwd()}/${given}`;
    if (!isFile(path)) throw new TypeError(`${LIBRARY_ENV}: "${given}" is not a file`);
    return path;
  }
  try {
    return (await locateLibrary({ library: "memtier", env: (name) => env[name] })).path;
  } catch (error) {
    throw new TypeError(error instanceof Error ? error.message : String(error), { cause: error });
  }
}

function isFile(path: string): boolean {
  return statOrNull(path)?.isFile ?? false;
}

/**
 * The program's environment: `env` with `LD_PRELOAD` = library first, then any preload already
 * there, and the tier variables of `config` set (or removed when null).
 *
 * @example
 * ```ts
 * import { memtierEnv } from "./memtier_launch.ts";
 * const config = {
 *   MEMKIND_MEM_TIERS: null,
 *   MEMKIND_MEM_THRESHOLDS: null,
 *   MEMKIND_MEM_TIERING_LOG_LEVEL: "1",
 *   spec: null,
 * };
 * memtierEnv({ LD_PRELOAD: "/x.so" }, config, "/lib/libmemtier.so").LD_PRELOAD;
 * // "/lib/libmemtier.so:/x.so"
 * ```
 */
export function memtierEnv(
  env: Readonly<Record<string, string>>,
  config: MemtierConfig,
  library: string,
): Record<string, string> {
  const out: Record<string, string> = { ...env };
  const existing = (env.LD_PRELOAD ?? "").split(/[: ]/).filter((p: string) => p !== "");
  out.LD_PRELOAD = [library, ...existing.filter((p: string) => p !== library)].join(":");
  const vars = [
    "MEMKIND_MEM_TIERS",
    "MEMKIND_MEM_THRESHOLDS",
    "MEMKIND_MEM_TIERING_LOG_LEVEL",
  ] as const;
  for (const name of vars) {
    const value = config[name];
    if (value === null) delete out[name];
    else out[name] = value;
  }
  return out;
}

/**
 * The help text of `cli.ts memtier`.
 *
 * @example
 * ```ts
 * import { memtierHelp } from "./memtier_launch.ts";
 * memtierHelp().startsWith("Usage: cli.ts memtier"); // true
 * memtierHelp("memtier").startsWith("Usage: memtier [OPTION]"); // true (the installed command)
 * ```
 */
export function memtierHelp(invocation: string = "cli.ts memtier"): string {
  return `Usage: ${invocation} [OPTION]... [--] PROGRAM [ARGS...]
Run PROGRAM with libmemtier.so preloaded: its malloc, calloc, realloc, free, the
aligned allocators and malloc_usable_size are served from memory tiers, as with
memkind's libmemtier (same MEMKIND_MEM_* variables).

Configuration (checked before PROGRAM starts):
  --tiers=TIERS          comma-separated tiers: DRAM:RATIO, KMEM_DAX:RATIO,
                         FS_DAX:RATIO[:LIMIT]:/abs/dir (LIMIT like 16G; 0 = none)
  --policy=static|dynamic
                         STATIC_RATIO (default) or DYNAMIC_THRESHOLD (with --tiers)
  --mem-tiers=STRING     a MEMKIND_MEM_TIERS string instead of --tiers, e.g.
                         "KIND:DRAM,RATIO:1;KIND:KMEM_DAX,RATIO:4;POLICY:STATIC_RATIO"
  --thresholds=STRING    MEMKIND_MEM_THRESHOLDS (DYNAMIC_THRESHOLD only), e.g.
                         "INIT_VAL:4K,MIN_VAL:1K,MAX_VAL:16K"
  --log-level=0|1|2      MEMKIND_MEM_TIERING_LOG_LEVEL; 1 prints the tiers at start
                         and one summary line per tier at exit
  -h, --help             print this help and exit

Without --tiers or --mem-tiers, MEMKIND_MEM_TIERS and MEMKIND_MEM_THRESHOLDS are
taken from the environment (and checked); with neither, PROGRAM gets one DRAM tier.

Examples:
  ${invocation} --tiers DRAM:1,KMEM_DAX:4 ./prog
  ${invocation} --tiers DRAM:1,FS_DAX:4:16G:/mnt/pmem --log-level 1 python3 x.py

KMEM_DAX binds to the memory-only NUMA nodes nearest the CPU (MEMKIND_DAX_KMEM_NODES
overrides). FS_DAX allocates from a file created and unlinked in the directory.
libmemtier.so is ${LIBRARY_ENV} if set, else the local build (zig-src/zig-out/lib/), else the
prebuilt binary shipped with the package, else one built with Zig.

Exit status: PROGRAM's; 128+N when signal N killed it; 2 for a bad configuration,
a usage error or a PROGRAM that cannot be run (which is then not run at all).
`;
}

/**
 * The `memtier` subcommand: parse, check, launch. Errors are one line on stderr
 * (`memtier: ...`, or libmemtier's own message for a bad tier string) and status 2.
 *
 * @example
 * ```ts
 * import { runMemtier } from "./memtier_launch.ts";
 * const status = await runMemtier(["--tiers", "DRAM:1", "true"]); // 0
 * ```
 *
 * @param invocation how the command is named in its help (`memtier` when installed).
 */
export async function runMemtier(
  args: string[],
  invocation: string = "cli.ts memtier",
): Promise<number> {
  const env = Deno.env.toObject();
  let request: MemtierRequest;
  let childEnv: Record<string, string>;
  try {
    request = parseMemtierArgs(args);
    if (request.kind === "help") {
      await writeAll(Deno.stdout, memtierHelp(invocation));
      return 0;
    }
    const config = memtierConfig(request, env);
    childEnv = memtierEnv(env, config, await findMemtierLibrary(env));
  } catch (error) {
    if (error instanceof TypeError) return await fail(error.message);
    throw error;
  }
  try {
    return await launch(request.program, request.args, childEnv);
  } catch (error) {
    if (error instanceof LaunchError) return await fail(error.message);
    throw error;
  }
}

/** One line on stderr; libmemtier's messages keep their own prefix. */
async function fail(message: string): Promise<number> {
  const line = message.startsWith("MEMKIND_") ? message : `memtier: ${message}`;
  await writeAll(Deno.stderr, `${line}\n`);
  return EXIT_USAGE;
}
