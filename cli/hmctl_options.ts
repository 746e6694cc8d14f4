/**
 * hmctl's command line, `[options] PROGRAM [ARGS...]`, and the environment it implies.
 *
 * The grammar is SK hynix HMSDK's `hmctl` (itself getopt_long's): one policy option
 *
 * | option                              | policy                | MPOL_* |
 * |-------------------------------------|-----------------------|--------|
 * | `-m`, `--membind=NODES`             | `bind`                | 2      |
 * | `-p`, `--preferred=NODE`            | `preferred`           | 1      |
 * | `-P`, `--preferred-many=NODES`      | `preferred-many`      | 5      |
 * | `-i`, `--interleave=NODES`          | `interleave`          | 3      |
 * | `-w`, `--weighted-interleave=NODES` | `weighted-interleave` | 6      |
 *
 * plus `-?`/`--help` and `--usage`. Short options take their value attached (`-m2`)
 * or as the next argument (`-m 2`); long ones as `--membind=2` or `--membind 2`, and
 * may be shortened to any unique prefix (`--mem=2`; `--pref` is ambiguous). Parsing
 * stops at the first argument that is not an option — the program — or after `--`;
 * everything from the program on is passed to it untouched, its own `--` included.
 *
 * Unlike the reference, a bad node list, two different policies, an unknown option
 * or a missing program are errors (`TypeError`/`RangeError` naming the token): the
 * caller prints one line and never runs the program with a policy silently dropped.
 * Repeating the same policy option keeps the last one, as getopt-based tools do.
 *
 * The policy reaches the program's hmalloc library through the environment
 * ({@link hmctlEnv}): `HMALLOC_POLICY` in tiermem's syntax (`bind:2`,
 * `interleave:0,1,2,3`), and — when every node is below 64, so the policy fits the
 * reference's 64-bit mask — the reference's `HMALLOC_JEMALLOC`, `HMALLOC_NODEMASK`
 * and `HMALLOC_MPOL_MODE`, so SK hynix's library obeys our launcher too.
 *
 * @module
 */

import { type NodeTopology, parseNodeList } from "../lib/node_list.ts";
import { type GetoptMessages, GetoptScanner } from "./getopt.ts";
import { POLICY_MODES, type PolicyModeName } from "../lib/policy_names.ts";

/** The placement policies hmctl sets (names as in ARCHITECTURE.md and `HMALLOC_POLICY`). */
export type PolicyMode = Exclude<PolicyModeName, "default">;

/** A resolved policy: its mode and the nodes it names, ascending. */
export interface HmctlPolicy {
  readonly mode: PolicyMode;
  readonly nodes: readonly number[];
}

/** What the command line asks for. */
export type HmctlRequest =
  | { readonly kind: "help" }
  | { readonly kind: "usage" }
  | {
    readonly kind: "run";
    /** `null` when no policy option was given: the environment passes through as is. */
    readonly policy: HmctlPolicy | null;
    readonly program: string;
    readonly args: readonly string[];
  };

/** Linux's `MPOL_*` number of each mode (`HMALLOC_MPOL_MODE`). */
export const MPOL_MODE: Readonly<Record<PolicyMode, number>> = Object.fromEntries(
  POLICY_MODES.filter((m) => m.name !== "default").map((m) => [m.name, m.mpol]),
) as Record<PolicyMode, number>;

/** The environment variables hmctl owns; {@link hmctlEnv} replaces all of them. */
export const HMCTL_ENV_NAMES: readonly string[] = [
  "HMALLOC_POLICY",
  "HMALLOC_JEMALLOC",
  "HMALLOC_NODEMASK",
  "HMALLOC_MPOL_MODE",
];

/** Nodes the reference's `HMALLOC_NODEMASK` (one 64-bit word) can name. */
const REFERENCE_MASK_BITS = 64;

interface OptionSpec {
  readonly long: string;
  readonly short: string | null;
  /** A policy option's mode, or the flag's action. */
  readonly action: PolicyMode | "help" | "usage";
}

const OPTIONS: readonly OptionSpec[] = [
  ...POLICY_MODES.flatMap((m): OptionSpec[] =>
    m.hmctlLong === null || m.name === "default"
      ? []
      : [{ long: m.hmctlLong, short: m.hmctlShort, action: m.name }]
  ),
  { long: "help", short: "?", action: "help" },
  { long: "usage", short: null, action: "usage" },
];

/**
 * Parses hmctl's arguments (without the command's own name) up to the program.
 *
 * @param argv the arguments, e.g. `Deno.args`.
 * @param topology the nodes node lists are resolved against (see `readNodeTopology`).
 * @throws {TypeError} for an unknown, ambiguous or incomplete option, conflicting
 *   policies, a malformed node list or a missing program.
 * @throws {RangeError} for a node that is not online or not allowed.
 *
 * @example
 * ```ts
 * import { parseHmctlArgs } from "./hmctl_options.ts";
 * const fourNodes = { online: [0, 1, 2, 3], allowed: [0, 1, 2, 3] };
 * parseHmctlArgs(["--mem=2", "./prog", "--", "-m"], fourNodes);
 * // { kind: "run", policy: { mode: "bind", nodes: [2] }, program: "./prog", args: ["--", "-m"] }
 * ```
 */
export function parseHmctlArgs(argv: readonly string[], topology: NodeTopology): HmctlRequest {
  let policy: HmctlPolicy | null = null;
  let policyOption = "";
  const scan = new GetoptScanner(argv, OPTIONS, HMCTL_MESSAGES);
  for (let parsed = scan.next(); parsed !== undefined; parsed = scan.next()) {
    const { option: spec, spelled, token } = parsed;
    const action = spec.action;
    if (action === "help" || action === "usage") {
      if (parsed.value !== undefined && token.startsWith("--")) {
        throw new TypeError(`option "--${spec.long}" takes no argument`);
      }
      return { kind: action };
    }
    const value = parsed.value as string; // a policy option always has one
    if (policy !== null && policy.mode !== action) {
      throw new TypeError(`conflicting policies "${policyOption}" and "${spelled}"`);
    }
    const nodes = parseNodeList(value, topology);
    if (action === "preferred" && nodes.length !== 1) {
      throw new TypeError(
        `option "${spelled}" takes one node, but "${value}" selects ${nodes.length}`,
      );
    }
    policy = { mode: action, nodes };
    policyOption = spelled;
  }
  const i = scan.index;
  if (i >= argv.length) throw new TypeError("missing program");
  return { kind: "run", policy, program: argv[i], args: argv.slice(i + 1) };
}

/** hmctl's words for argument errors (numactl's); long names abbreviate to a unique prefix. */
const HMCTL_MESSAGES: GetoptMessages<OptionSpec> = {
  abbreviations: true,
  takesValue: (spec) => spec.action !== "help" && spec.action !== "usage",
  unknown: (token, spelled) =>
    spelled.startsWith("--") ? `unrecognized option "${token}"` : `invalid option "${spelled}"`,
  ambiguous: (spelled, candidates) =>
    `ambiguous option "${spelled}" (could be ${candidates.map((o) => `--${o.long}`).join(", ")})`,
  missingValue: (spec, spelled) =>
    `option "${spelled}" requires ${spec.action === "preferred" ? "a node" : "a node list"}`,
};

/**
 * Writes a policy in `HMALLOC_POLICY` syntax, nodes as a plain comma list.
 *
 * @example
 * ```ts
 * import { hmctlPolicyString } from "./hmctl_options.ts";
 * hmctlPolicyString({ mode: "interleave", nodes: [0, 1, 2, 3] }); // "interleave:0,1,2,3"
 * ```
 */
export function hmctlPolicyString(policy: HmctlPolicy): string {
  return `${policy.mode}:${policy.nodes.join(",")}`;
}

/**
 * The variables a policy sets: always `HMALLOC_POLICY`; with every node below 64 also
 * the reference's `HMALLOC_JEMALLOC=1`, `HMALLOC_NODEMASK` (decimal 64-bit mask) and
 * `HMALLOC_MPOL_MODE` (the `MPOL_*` number).
 *
 * @example
 * ```ts
 * import { policyEnv } from "./hmctl_options.ts";
 * policyEnv({ mode: "preferred-many", nodes: [2, 3] });
 * // { HMALLOC_POLICY: "preferred-many:2,3", HMALLOC_JEMALLOC: "1",
 * //   HMALLOC_NODEMASK: "12", HMALLOC_MPOL_MODE: "5" }
 * ```
 */
export function policyEnv(policy: HmctlPolicy): Record<string, string> {
  const env: Record<string, string> = { HMALLOC_POLICY: hmctlPolicyString(policy) };
  if (policy.nodes.every((n) => n < REFERENCE_MASK_BITS)) {
    let mask = 0n;
    for (const n of policy.nodes) mask |= 1n << BigInt(n);
    env.HMALLOC_JEMALLOC = "1";
    env.HMALLOC_NODEMASK = mask.toString();
    env.HMALLOC_MPOL_MODE = String(MPOL_MODE[policy.mode]);
  }
  return env;
}

/**
 * The program's environment: `base` with the policy's variables. With a policy, any
 * inherited hmctl variables are dropped first (a stale `HMALLOC_NODEMASK` from an outer
 * launcher must not contradict ours); without one, `base` passes through unchanged.
 *
 * @example
 * ```ts
 * import { hmctlEnv } from "./hmctl_options.ts";
 * const env = hmctlEnv(Deno.env.toObject(), { mode: "bind", nodes: [0] });
 * env.HMALLOC_POLICY; // "bind:0"
 * ```
 */
export function hmctlEnv(
  base: Readonly<Record<string, string>>,
  policy: HmctlPolicy | null,
): Record<string, string> {
  const env: Record<string, string> = { ...base };
  if (policy === null) return env;
  for (const name of HMCTL_ENV_NAMES) delete env[name];
  return Object.assign(env, policyEnv(policy));
}

/**
 * The short synopsis printed by `--usage`.
 *
 * @example
 * ```ts
 * import { hmctlUsage } from "./hmctl_options.ts";
 * console.log(hmctlUsage("cli.ts"));
 * ```
 */
export function hmctlUsage(command: string = "cli.ts"): string {
  const pad = " ".repeat(`Usage: ${command} `.length);
  return [
    `Usage: ${command} [-?] [-m NODES] [-p NODE] [-P NODES] [-i NODES] [-w NODES]`,
    `${pad}[--membind=NODES] [--preferred=NODE] [--preferred-many=NODES]`,
    `${pad}[--interleave=NODES] [--weighted-interleave=NODES] [--help] [--usage]`,
    `${pad}PROGRAM [ARGS...]`,
    "",
  ].join("\n");
}

/**
 * The full help printed by `-?`/`--help`.
 *
 * @example
 * ```ts
 * import { hmctlHelp } from "./hmctl_options.ts";
 * console.log(hmctlHelp("cli.ts"));
 * ```
 */
export function hmctlHelp(command: string = "cli.ts"): string {
  return `Usage: ${command} [OPTION] PROGRAM [ARGS...]
Run PROGRAM with the NUMA policy of its hmalloc pool set (tiermem's hmctl).
Only memory from hmalloc(), hmmap() and friends follows the policy; the rest of
the program's memory is placed as usual.

Policy (at most one):
  -m, --membind=NODES              allocate only on NODES (MPOL_BIND)
  -p, --preferred=NODE             prefer NODE, fall back to others (MPOL_PREFERRED)
  -P, --preferred-many=NODES       prefer NODES, fall back to others
                                   (MPOL_PREFERRED_MANY)
  -i, --interleave=NODES           interleave pages over NODES (MPOL_INTERLEAVE)
  -w, --weighted-interleave=NODES  interleave pages over NODES in the proportion of
                                   /sys/kernel/mm/mempolicy/weighted_interleave/nodeN
                                   (MPOL_WEIGHTED_INTERLEAVE)
Other:
  -?, --help                       print this help and exit
      --usage                      print a short usage message and exit

NODES is a list in numactl's syntax: 2, 0-3, 0,2, 1-2,5, all, !0 (all allowed
nodes but 0), +0 (the first allowed node). Every node must be online and allowed.

Long options may be shortened to a unique prefix and take their value as
--membind=NODES or --membind NODES; short ones as -mNODES or -m NODES. Options end
at PROGRAM or at --; everything after PROGRAM is passed to it untouched. PROGRAM
is searched on PATH unless its name contains a slash.

PROGRAM's environment gets HMALLOC_POLICY (e.g. bind:2) and, when every node is
below 64, SK hynix hmctl's HMALLOC_JEMALLOC, HMALLOC_NODEMASK and HMALLOC_MPOL_MODE.
SIGINT, SIGTERM, SIGHUP and SIGQUIT are forwarded to PROGRAM.

Exit status: PROGRAM's; 128+N when signal N killed it; 2 for a usage error or a
PROGRAM that cannot be run (which is then not run at all).
`;
}

/**
 * The one line printed on stderr for a usage error (no "Try --help" line: every error of
 * tiermem's tools, the CLI's and the libraries', is exactly one line, for scripts and logs).
 *
 * @example
 * ```ts
 * import { hmctlErrorText } from "./hmctl_options.ts";
 * hmctlErrorText("missing program"); // "hmctl: missing program\n"
 * ```
 */
export function hmctlErrorText(message: string): string {
  return `hmctl: ${message}\n`;
}
