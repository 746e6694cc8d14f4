/**
 * The grammar of `cli.ts tier`: options up to the program name (the program's own arguments are
 * never read), sizes, percentages, durations and rates. Pure: the machine is consulted later.
 *
 * ```text
 * cli.ts tier [--fast NODES] [--slow NODES] [--fast-max SIZE|PCT%] [--interval DURATION]
 *             [--rate SIZE/s] [--json] [--engine user|kernel|auto] [--use-free-kdamond]
 *             (PROGRAM [ARGS...] | --pid PID)
 * cli.ts tier --cleanup
 * ```
 *
 * Every problem is a `TypeError` whose message is the line to print (after `tier: `).
 *
 * @module
 */

import { type GetoptMessages, type GetoptOption, GetoptScanner } from "./getopt.ts";
import type { EngineChoice } from "../lib/tiering_engine.ts";

/** A parsed `tier` command line. */
export type TierRequest =
  | { kind: "help" }
  | { kind: "cleanup" }
  | {
    kind: "run";
    /** Node list text of `--fast`, if given. */
    fast?: string;
    /** Node list text of `--slow`, if given. */
    slow?: string;
    /** `--fast-max`: bytes or a percentage. */
    fastMax?: number | { percent: number };
    /** `--interval`, ms (default 1000). */
    intervalMs: number;
    /** `--rate`, bytes per second (default 1 GiB/s). */
    rateBytesPerSec: number;
    /** `--json`. */
    json: boolean;
    /** `--engine` (default user). */
    engine: EngineChoice;
    /** `--use-free-kdamond`. */
    useFreeKdamond: boolean;
    /** `--pid`, or undefined when a program is given. */
    pid?: number;
    /** The program and its arguments (empty with `--pid`). */
    command: string[];
  };

/** `tier --help`. */
export const TIER_USAGE: string = [
  "Usage: cli.ts tier [options] PROGRAM [ARGS...]",
  "       cli.ts tier [options] --pid PID",
  "       cli.ts tier --cleanup",
  "Keep a program's hot pages on the fast nodes, within a budget, and the rest on the slow ones.",
  "  --fast NODES         promotion nodes (default: top tier nodes nearest the program's CPUs)",
  "  --slow NODES         demotion nodes (default: the lower memory tiers)",
  "  --fast-max SIZE|PCT% the program's budget on the fast nodes (default 100%)",
  "  --interval DURATION  how often to decide (default 1s; 500ms, 2s)",
  "  --rate SIZE/s        migration quota, both ways together (default 1G/s)",
  "  --json               one JSON line of figures per interval on stderr",
  "  --engine E           user (default: DAMON + move_pages), kernel (DAMOS migrate_hot/cold),",
  "                       auto (kernel where it can run, else user)",
  "  --use-free-kdamond   reuse a free kdamond when other kdamonds exist",
  "  --cleanup            remove what a killed tier session left (kdamonds, cgroup)",
  "",
].join("\n");

const UNITS: Record<string, number> = { "": 1, K: 1 << 10, M: 1 << 20, G: 1 << 30, T: 2 ** 40 };

/**
 * Parses a size: a number with an optional binary unit `K`, `M`, `G`, `T` (`KiB`, `MB` … too).
 *
 * @throws {TypeError} naming the text when it is not a positive size.
 *
 * @example
 * ```ts
 * import { parseSize } from "./tier_options.ts";
 * parseSize("128M"); // 134217728
 * ```
 */
export function parseSize(text: string, what: string = "size"): number {
  const m = /^(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?$/i.exec(text);
  if (m === null) throw new TypeError(`invalid ${what} "${text}" (want e.g. 128M, 2G, 4096)`);
  const bytes = Math.floor(Number(m[1]) * UNITS[m[2].toUpperCase()]);
  if (!(bytes > 0) || !Number.isSafeInteger(bytes)) {
    throw new TypeError(`invalid ${what} "${text}" (must be positive)`);
  }
  return bytes;
}

/**
 * Parses a duration in ms: `500ms`, `2s`, `1.5` (seconds).
 *
 * @throws {TypeError} naming the text.
 *
 * @example
 * ```ts
 * import { parseDuration } from "./tier_options.ts";
 * parseDuration("500ms"); // 500
 * ```
 */
export function parseDuration(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s)?$/.exec(text);
  const ms = m === null ? NaN : Number(m[1]) * (m[2] === "ms" ? 1 : 1000);
  if (!(ms >= 10) || ms > 3_600_000) {
    throw new TypeError(`invalid interval "${text}" (want 10ms to 1h, e.g. 500ms, 2s)`);
  }
  return Math.round(ms);
}

function parseFastMax(text: string): number | { percent: number } {
  const p = /^(\d+(?:\.\d+)?)%$/.exec(text);
  if (p !== null) {
    const percent = Number(p[1]);
    if (!(percent > 0 && percent <= 100)) {
      throw new TypeError(`invalid --fast-max "${text}" (a percentage from 0 to 100)`);
    }
    return { percent };
  }
  return parseSize(text, "--fast-max");
}

const FLAGS = ["help", "json", "use-free-kdamond", "cleanup"];

/** tier's options: long names only (no abbreviations), `-h` the one short form. */
const OPTIONS: readonly GetoptOption[] = [
  ...["fast", "slow", "fast-max", "interval", "rate", "engine", "pid"].map((long) => ({ long })),
  ...FLAGS.map((long) => ({ long, short: long === "help" ? "h" : null })),
];

const MESSAGES: GetoptMessages<GetoptOption> = {
  abbreviations: false,
  takesValue: (option) => !FLAGS.includes(option.long),
  unknown: (token) => `unknown option ${token}`,
  ambiguous: (spelled) => `ambiguous option ${spelled}`, // unreachable without abbreviations
  missingValue: (_option, spelled) => `option ${spelled} needs a value`,
};

/**
 * Parses `tier`'s arguments (after the word `tier`).
 *
 * @throws {TypeError} with the line to print.
 *
 * @example
 * ```ts
 * import { parseTierArgs } from "./tier_options.ts";
 * const r = parseTierArgs(["--fast", "0", "--fast-max", "128M", "./prog", "-x"]);
 * if (r.kind === "run") console.log(r.fastMax, r.command); // 134217728 [ "./prog", "-x" ]
 * ```
 */
export function parseTierArgs(args: readonly string[]): TierRequest {
  const values = new Map<string, string>();
  let json = false;
  let useFree = false;
  let cleanup = false;
  const scan = new GetoptScanner(args, OPTIONS, MESSAGES);
  for (let parsed = scan.next(); parsed !== undefined; parsed = scan.next()) {
    const { option, spelled, token, value } = parsed;
    if (FLAGS.includes(option.long)) {
      if (value !== undefined) throw new TypeError(MESSAGES.unknown(token, spelled)); // --json=x
      if (option.long === "help") return { kind: "help" };
      if (option.long === "json") json = true;
      else if (option.long === "use-free-kdamond") useFree = true;
      else cleanup = true;
      continue;
    }
    if (values.has(spelled)) throw new TypeError(`option ${spelled} given twice`);
    values.set(spelled, value as string); // every other option takes a value
  }
  const command = args.slice(scan.index);
  if (cleanup) {
    if (values.size > 0 || command.length > 0 || json) {
      throw new TypeError("--cleanup takes no other option and no program");
    }
    return { kind: "cleanup" };
  }
  const engine = values.get("--engine") ?? "user";
  if (engine !== "user" && engine !== "kernel" && engine !== "auto") {
    throw new TypeError(`invalid --engine "${engine}" (user, kernel or auto)`);
  }
  let pid: number | undefined;
  const pidText = values.get("--pid");
  if (pidText !== undefined) {
    if (!/^\d+$/.test(pidText) || Number(pidText) <= 0) {
      throw new TypeError(`invalid --pid "${pidText}" (a process id)`);
    }
    pid = Number(pidText);
    if (command.length > 0) {
      throw new TypeError(`--pid and a program (${command[0]}) exclude each other`);
    }
  } else if (command.length === 0) {
    throw new TypeError("missing PROGRAM (or --pid PID)");
  }
  const rateText = values.get("--rate");
  const fastMaxText = values.get("--fast-max");
  const intervalText = values.get("--interval");
  return {
    kind: "run",
    fast: values.get("--fast"),
    slow: values.get("--slow"),
    fastMax: fastMaxText === undefined ? undefined : parseFastMax(fastMaxText),
    intervalMs: intervalText === undefined ? 1000 : parseDuration(intervalText),
    rateBytesPerSec: rateText === undefined
      ? 1 << 30
      : parseSize(rateText.replace(/\/s$/, ""), "--rate"),
    json,
    engine,
    useFreeKdamond: useFree,
    pid,
    command,
  };
}
