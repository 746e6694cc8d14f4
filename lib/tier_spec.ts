/**
 * The memory-tiering configuration of libmemtier: `MEMKIND_MEM_TIERS` and
 * `MEMKIND_MEM_THRESHOLDS`, checked before a program is launched.
 *
 * A port of `zig-src/src/memtier/tier_spec.zig` (the interposer's parser): the same grammar and
 * the same one-line messages, e.g.
 *
 * ```text
 * MEMKIND_MEM_TIERING_LOG_ERROR: MEMKIND_MEM_TIERS: bad token "RATIO" in "KIND:DRAM,RATIO": missing value
 * ```
 *
 * Both run the case table `zig-src/src/testdata/tier_spec_cases.json`, so they cannot drift.
 * Numbers are read strictly (no leading zeros, signs, hex or trailing junk, which memkind
 * silently misreads), empty items and whitespace outside PATH values are errors, and the
 * first mistake in the string is the one named. Quoted tokens are cut at 120 UTF-16 units
 * (the Zig side cuts at 120 bytes: the same for ASCII).
 *
 * {@link tierEnvFromFlags} builds the two variables from friendlier flags
 * (`--tiers DRAM:1,KMEM_DAX:4`, `--policy dynamic`).
 *
 * @module
 */

/** A tier's memory kind. */
export type TierKind = "DRAM" | "KMEM_DAX" | "FS_DAX";
/** How allocations are split between tiers. */
export type TierPolicy = "STATIC_RATIO" | "DYNAMIC_THRESHOLD";
/** Which environment variable a failure is about. */
export type TierSpecVariable = "MEMKIND_MEM_TIERS" | "MEMKIND_MEM_THRESHOLDS";

/** One tier of a parsed configuration. */
export interface Tier {
  readonly kind: TierKind;
  /** 1..2^32-1. */
  readonly ratio: number;
  /** FS_DAX only (else ""). */
  readonly path: string;
  /** FS_DAX only; 0n = unlimited. */
  readonly pmemSizeLimitBytes: bigint;
}

/** A DYNAMIC_THRESHOLD threshold: sizes >= initBytes go to the next tier. */
export interface Threshold {
  readonly minBytes: bigint;
  readonly initBytes: bigint;
  readonly maxBytes: bigint;
}

/** A valid configuration. */
export interface TierSpec {
  readonly policy: TierPolicy;
  readonly tiers: readonly Tier[];
  /** tiers.length - 1 thresholds with DYNAMIC_THRESHOLD, none with STATIC_RATIO. */
  readonly thresholds: readonly Threshold[];
}

/** Why a configuration is invalid. */
export interface TierSpecFailure {
  readonly variable: TierSpecVariable;
  /** The offending token and its offset in the variable's string. */
  readonly token: string;
  readonly tokenOffset: number;
  /** The item holding the token, or the whole string when the token is a whole item. */
  readonly context: string;
  readonly contextOffset: number;
  /** The one-line message libmemtier prints. */
  readonly message: string;
}

/** The result of {@link parseTierSpec}. */
export type TierSpecResult =
  | { readonly ok: true; readonly spec: TierSpec }
  | { readonly ok: false; readonly failure: TierSpecFailure };

/** Most tiers a configuration may name (as in the Zig parser). */
export const MAX_TIERS = 16;
/** Smallest non-zero PMEM_SIZE_LIMIT (memkind's minimum). */
export const PMEM_SIZE_MIN_BYTES = 16n << 20n;
const RATIO_MAX = 4294967295n;
const U64_MAX = (1n << 64n) - 1n;
const QUOTE_MAX = 120;
const PREFIX = "MEMKIND_MEM_TIERING_LOG_ERROR: ";

const REASONS = {
  empty: "empty string",
  emptyItem: "empty item",
  emptyParam: "empty parameter",
  missingName: "missing parameter name",
  whitespace: "whitespace is not allowed",
  missingValue: "missing value",
  unknownTierParam: "unknown parameter (expected KIND, RATIO, PATH or PMEM_SIZE_LIMIT)",
  unknownThresholdParam: "unknown parameter (expected INIT_VAL, MIN_VAL or MAX_VAL)",
  duplicateParam: "parameter given twice",
  unknownKind: "unknown kind (expected DRAM, KMEM_DAX or FS_DAX)",
  duplicateKind: "kind already used by an earlier tier (only FS_DAX may repeat)",
  missingKind: "missing KIND",
  missingRatio: "missing RATIO",
  missingPath: "missing PATH (required with KIND:FS_DAX)",
  fsDaxOnly: "allowed only with KIND:FS_DAX",
  notANumber: "not a decimal number",
  leadingZero: "leading zero (memkind would read it as octal)",
  ratioRange: "out of range 1..4294967295",
  notASize: "not a size (decimal digits with an optional K, M or G)",
  sizeOverflow: "too large (over 2^64-1 bytes)",
  pmemSizeTooSmall: "below the minimum 16M (0 = unlimited)",
  tooManyTiers: `more than ${MAX_TIERS} tiers`,
  policyNotLast: "POLICY must be the last item",
  policyExtra: "POLICY takes no other parameter",
  missingPolicy: "missing POLICY:STATIC_RATIO or POLICY:DYNAMIC_THRESHOLD as the last item",
  noTiers: "no tier before POLICY",
  unknownPolicy: "unknown policy (expected STATIC_RATIO or DYNAMIC_THRESHOLD)",
  dynamicNeedsTwoTiers: "DYNAMIC_THRESHOLD needs at least 2 tiers",
  thresholdsNeedDynamic: "allowed only with POLICY:DYNAMIC_THRESHOLD",
  tooManyThresholds: "more thresholds than tiers minus one",
} as const;

/** A piece of the variable's string: its text and where it starts. */
interface Span {
  readonly text: string;
  readonly at: number;
}

interface Param {
  readonly span: Span;
  readonly name: Span;
  readonly value: Span | null;
}

class Invalid extends Error {
  constructor(readonly failure: TierSpecFailure) {
    super(failure.message);
  }
}

function quote(text: string): string {
  const shown = text.slice(0, QUOTE_MAX);
  let out = '"';
  for (const c of shown) {
    const code = c.charCodeAt(0);
    if (c === '"') out += '\\"';
    else if (c === "\\") out += "\\\\";
    else if (c === "\n") out += "\\n";
    else if (c === "\r") out += "\\r";
    else if (c === "\t") out += "\\t";
    else if (code < 0x20 || code === 0x7f) out += "\\x" + code.toString(16).padStart(2, "0");
    else out += c;
  }
  return out + '"' + (shown.length < text.length ? "..." : "");
}

function splitSpan(span: Span, separator: string): Span[] {
  const out: Span[] = [];
  let at = 0;
  for (const text of span.text.split(separator)) {
    out.push({ text, at: span.at + at });
    at += text.length + 1;
  }
  return out;
}

function splitParam(span: Span): Param {
  const colon = span.text.indexOf(":");
  if (colon < 0) return { span, name: span, value: null };
  return {
    span,
    name: { text: span.text.slice(0, colon), at: span.at },
    value: { text: span.text.slice(colon + 1), at: span.at + colon + 1 },
  };
}

function hasWhitespace(text: string): boolean {
  return /[ \t\n\r\v\f]/.test(text);
}

class Parser {
  constructor(readonly variable: TierSpecVariable, readonly whole: Span) {}

  /** The failure for `token` inside `within` (the whole string if the token is all of it). */
  fail(reason: string, token: Span, within: Span): Invalid {
    const wholeItem = token.at === within.at && token.text.length === within.text.length;
    const context = wholeItem ? this.whole : within;
    const sameSpan = token.at === context.at && token.text.length === context.text.length;
    const where = sameSpan
      ? `bad value ${quote(context.text)}`
      : `bad token ${quote(token.text)} in ${quote(context.text)}`;
    return new Invalid({
      variable: this.variable,
      token: token.text,
      tokenOffset: token.at,
      context: context.text,
      contextOffset: context.at,
      message: `${PREFIX}${this.variable}: ${where}: ${reason}`,
    });
  }

  checkParam(span: Span, item: Span): Param {
    if (span.text.length === 0) throw this.fail(REASONS.emptyParam, span, item);
    const param = splitParam(span);
    if (hasWhitespace(param.name.text)) throw this.fail(REASONS.whitespace, param.name, item);
    if (param.name.text.length === 0) throw this.fail(REASONS.missingName, span, item);
    return param;
  }

  /** Digits without a leading zero; null when over 2^64-1. */
  digits(digits: string, token: Span, item: Span, reason: string): bigint | null {
    if (!/^[0-9]+$/.test(digits)) throw this.fail(reason, token, item);
    if (digits.length > 1 && digits[0] === "0") throw this.fail(REASONS.leadingZero, token, item);
    const value = BigInt(digits);
    return value > U64_MAX ? null : value;
  }

  ratio(value: Span, item: Span): number {
    const ratio = this.digits(value.text, value, item, REASONS.notANumber);
    if (ratio === null || ratio === 0n || ratio > RATIO_MAX) {
      throw this.fail(REASONS.ratioRange, value, item);
    }
    return Number(ratio);
  }

  size(value: Span, item: Span): bigint {
    const last = value.text[value.text.length - 1];
    const shift = last === "K" ? 10n : last === "M" ? 20n : last === "G" ? 30n : 0n;
    const digits = shift === 0n ? value.text : value.text.slice(0, -1);
    if (digits.length === 0) throw this.fail(REASONS.notASize, value, item);
    const count = this.digits(digits, value, item, REASONS.notASize);
    if (count === null || count > U64_MAX >> shift) {
      throw this.fail(REASONS.sizeOverflow, value, item);
    }
    return count << shift;
  }
}

function parseTier(p: Parser, item: Span, earlier: readonly Tier[]): Tier {
  const seen = new Map<string, Param>();
  let kind: TierKind | null = null;
  let ratio = 0;
  let path = "";
  let limit = 0n;
  for (const span of splitSpan(item, ",")) {
    const param = p.checkParam(span, item);
    const name = param.name.text;
    if (name === "POLICY") throw p.fail(REASONS.policyNotLast, param.name, item);
    if (!["KIND", "RATIO", "PATH", "PMEM_SIZE_LIMIT"].includes(name)) {
      throw p.fail(REASONS.unknownTierParam, param.name, item);
    }
    if (seen.has(name)) throw p.fail(REASONS.duplicateParam, param.name, item);
    seen.set(name, param);
    const value = param.value;
    if (value === null || value.text.length === 0) throw p.fail(REASONS.missingValue, span, item);
    if (name !== "PATH" && hasWhitespace(value.text)) throw p.fail(REASONS.whitespace, value, item);
    if (name === "KIND") {
      if (value.text !== "DRAM" && value.text !== "KMEM_DAX" && value.text !== "FS_DAX") {
        throw p.fail(REASONS.unknownKind, value, item);
      }
      kind = value.text;
      if (kind !== "FS_DAX" && earlier.some((e) => e.kind === kind)) {
        throw p.fail(REASONS.duplicateKind, value, item);
      }
    } else if (name === "RATIO") ratio = p.ratio(value, item);
    else if (name === "PATH") path = value.text;
    else limit = p.size(value, item);
  }
  if (kind === null) throw p.fail(REASONS.missingKind, item, item);
  if (ratio === 0) throw p.fail(REASONS.missingRatio, item, item);
  const pathParam = seen.get("PATH");
  const limitParam = seen.get("PMEM_SIZE_LIMIT");
  if (kind === "FS_DAX") {
    if (pathParam === undefined) throw p.fail(REASONS.missingPath, item, item);
    if (limitParam !== undefined && limit !== 0n && limit < PMEM_SIZE_MIN_BYTES) {
      throw p.fail(REASONS.pmemSizeTooSmall, limitParam.value as Span, item);
    }
  } else {
    const first = [pathParam, limitParam]
      .filter((x): x is Param => x !== undefined)
      .sort((a, b) => a.span.at - b.span.at)[0];
    if (first !== undefined) throw p.fail(REASONS.fsDaxOnly, first.name, item);
  }
  return { kind, ratio, path, pmemSizeLimitBytes: limit };
}

function parseTiers(text: string): { policy: TierPolicy; tiers: Tier[] } {
  const whole: Span = { text, at: 0 };
  const p = new Parser("MEMKIND_MEM_TIERS", whole);
  if (text.length === 0) throw p.fail(REASONS.empty, whole, whole);
  const lastSemicolon = text.lastIndexOf(";");
  const last: Span = { text: text.slice(lastSemicolon + 1), at: lastSemicolon + 1 };
  const hasPolicy = splitParam(last).name.text === "POLICY";
  const tierText = !hasPolicy ? text : lastSemicolon >= 0 ? text.slice(0, lastSemicolon) : "";
  const tiers: Tier[] = [];
  if (tierText.length > 0 || lastSemicolon >= 0) {
    for (const item of splitSpan({ text: tierText, at: 0 }, ";")) {
      if (item.text.length === 0) throw p.fail(REASONS.emptyItem, item, whole);
      if (tiers.length === MAX_TIERS) throw p.fail(REASONS.tooManyTiers, item, whole);
      tiers.push(parseTier(p, item, tiers));
    }
  }
  if (!hasPolicy) throw p.fail(REASONS.missingPolicy, last, whole);
  if (tiers.length === 0) throw p.fail(REASONS.noTiers, whole, whole);
  const [first, extra] = splitSpan(last, ",");
  if (extra !== undefined) throw p.fail(REASONS.policyExtra, extra, last);
  const param = splitParam(first);
  const value = param.value;
  if (value === null || value.text.length === 0) {
    throw p.fail(REASONS.missingValue, param.span, last);
  }
  if (hasWhitespace(value.text)) throw p.fail(REASONS.whitespace, value, last);
  if (value.text === "STATIC_RATIO") return { policy: "STATIC_RATIO", tiers };
  if (value.text !== "DYNAMIC_THRESHOLD") throw p.fail(REASONS.unknownPolicy, value, last);
  if (tiers.length < 2) throw p.fail(REASONS.dynamicNeedsTwoTiers, value, last);
  return { policy: "DYNAMIC_THRESHOLD", tiers };
}

const THRESHOLD_PARAMS = ["INIT_VAL", "MIN_VAL", "MAX_VAL"] as const;
type ThresholdParam = typeof THRESHOLD_PARAMS[number];

interface ThresholdSource {
  item: Span;
  given: Map<ThresholdParam, Span>;
}

/** memkind's defaults for threshold k (its man page). */
function defaultThreshold(k: number): Threshold {
  const step = 1024n * BigInt(k);
  return { minBytes: 513n + step, initBytes: 1024n + step, maxBytes: 1536n + step };
}

function parseThresholds(text: string | null, policy: TierPolicy, tierCount: number): Threshold[] {
  const count = policy === "DYNAMIC_THRESHOLD" ? tierCount - 1 : 0;
  const values = Array.from({ length: count }, (_, k) => ({ ...defaultThreshold(k) }));
  if (text === null) return values;
  const whole: Span = { text, at: 0 };
  const p = new Parser("MEMKIND_MEM_THRESHOLDS", whole);
  if (policy !== "DYNAMIC_THRESHOLD") throw p.fail(REASONS.thresholdsNeedDynamic, whole, whole);
  if (text.length === 0) throw p.fail(REASONS.empty, whole, whole);
  const sources: ThresholdSource[] = Array.from({ length: count }, () => ({
    item: { text: "", at: 0 },
    given: new Map<ThresholdParam, Span>(),
  }));
  splitSpan(whole, ";").forEach((item, k) => {
    if (item.text.length === 0) throw p.fail(REASONS.emptyItem, item, whole);
    if (k >= count) throw p.fail(REASONS.tooManyThresholds, item, whole);
    sources[k].item = item;
    for (const span of splitSpan(item, ",")) {
      const param = p.checkParam(span, item);
      const name = THRESHOLD_PARAMS.find((n) => n === param.name.text);
      if (name === undefined) throw p.fail(REASONS.unknownThresholdParam, param.name, item);
      if (sources[k].given.has(name)) throw p.fail(REASONS.duplicateParam, param.name, item);
      sources[k].given.set(name, span);
      const value = param.value;
      if (value === null || value.text.length === 0) throw p.fail(REASONS.missingValue, span, item);
      if (hasWhitespace(value.text)) throw p.fail(REASONS.whitespace, value, item);
      const bytes = p.size(value, item);
      if (name === "INIT_VAL") values[k].initBytes = bytes;
      else if (name === "MIN_VAL") values[k].minBytes = bytes;
      else values[k].maxBytes = bytes;
    }
  });
  checkRanges(p, values, sources);
  return values;
}

interface Given {
  readonly source: ThresholdSource;
  readonly param: ThresholdParam;
}

function checkRanges(p: Parser, values: readonly Threshold[], sources: ThresholdSource[]): void {
  const mark = (g: Given): string => g.source.given.has(g.param) ? "" : " (default)";
  const failRange = (a: Given, b: Given, text: string): Invalid => {
    const blamed = b.source.given.has(b.param) ? b : a;
    const token = blamed.source.given.get(blamed.param) as Span;
    return p.fail(text, token, blamed.source.item);
  };
  values.forEach((t, k) => {
    const s = sources[k];
    const init: Given = { source: s, param: "INIT_VAL" };
    const min: Given = { source: s, param: "MIN_VAL" };
    const max: Given = { source: s, param: "MAX_VAL" };
    if (t.initBytes < t.minBytes) {
      throw failRange(
        init,
        min,
        `threshold ${k}: INIT_VAL ${t.initBytes}${mark(init)} is below MIN_VAL ${t.minBytes}${
          mark(min)
        }`,
      );
    }
    if (t.initBytes > t.maxBytes) {
      throw failRange(
        init,
        max,
        `threshold ${k}: INIT_VAL ${t.initBytes}${mark(init)} is above MAX_VAL ${t.maxBytes}${
          mark(max)
        }`,
      );
    }
    if (k > 0 && values[k - 1].maxBytes > t.minBytes) {
      const before: Given = { source: sources[k - 1], param: "MAX_VAL" };
      throw failRange(
        before,
        min,
        `MAX_VAL ${values[k - 1].maxBytes}${mark(before)} of threshold ${
          k - 1
        } is above MIN_VAL ${t.minBytes}${mark(min)} of threshold ${k}`,
      );
    }
  });
}

/**
 * Parses the two variables as libmemtier does; `thresholds` is null or undefined when
 * MEMKIND_MEM_THRESHOLDS is unset (set-but-empty is an error, as in memkind).
 *
 * @example
 * ```ts
 * import { parseTierSpec } from "./tier_spec.ts";
 * const good = parseTierSpec("KIND:DRAM,RATIO:1;KIND:KMEM_DAX,RATIO:4;POLICY:STATIC_RATIO");
 * if (good.ok) console.log(good.spec.tiers.length); // 2
 * const bad = parseTierSpec("KIND:DRAM,RATIO;POLICY:STATIC_RATIO");
 * if (!bad.ok) console.error(bad.failure.message);
 * // MEMKIND_MEM_TIERING_LOG_ERROR: MEMKIND_MEM_TIERS: bad token "RATIO" in "KIND:DRAM,RATIO": missing value
 * ```
 */
export function parseTierSpec(tiers: string, thresholds?: string | null): TierSpecResult {
  try {
    const parsed = parseTiers(tiers);
    const values = parseThresholds(thresholds ?? null, parsed.policy, parsed.tiers.length);
    return { ok: true, spec: { policy: parsed.policy, tiers: parsed.tiers, thresholds: values } };
  } catch (error) {
    if (error instanceof Invalid) return { ok: false, failure: error.failure };
    throw error;
  }
}

/** The friendlier flags of `cli.ts memtier`. */
export interface TierFlags {
  /**
   * Comma-separated tiers: `KIND:RATIO`, or `FS_DAX:RATIO[:LIMIT]:PATH` with an absolute
   * PATH (which may contain ':'), e.g. `DRAM:1,KMEM_DAX:4,FS_DAX:2:16G:/mnt/pmem`.
   */
  readonly tiers: string;
  /** `static` (STATIC_RATIO, the default) or `dynamic` (DYNAMIC_THRESHOLD). */
  readonly policy?: "static" | "dynamic";
  /** MEMKIND_MEM_THRESHOLDS, as is (e.g. `INIT_VAL:4K,MIN_VAL:1K,MAX_VAL:16K`). */
  readonly thresholds?: string;
}

/** The environment libmemtier reads. */
export interface TierEnv {
  readonly MEMKIND_MEM_TIERS: string;
  readonly MEMKIND_MEM_THRESHOLDS?: string;
}

/**
 * Builds MEMKIND_MEM_TIERS (and MEMKIND_MEM_THRESHOLDS) from {@link TierFlags} and checks
 * the result with {@link parseTierSpec}. Throws `TypeError` naming the bad flag token, or
 * carrying libmemtier's message when the built configuration is invalid.
 *
 * @example
 * ```ts
 * import { tierEnvFromFlags } from "./tier_spec.ts";
 * tierEnvFromFlags({ tiers: "DRAM:1,KMEM_DAX:4" }).MEMKIND_MEM_TIERS;
 * // "KIND:DRAM,RATIO:1;KIND:KMEM_DAX,RATIO:4;POLICY:STATIC_RATIO"
 * ```
 */
export function tierEnvFromFlags(flags: TierFlags): TierEnv {
  const items: string[] = [];
  for (const tier of flags.tiers.split(",")) {
    const fields = tier.split(":");
    const kind = fields[0];
    if (kind === "DRAM" || kind === "KMEM_DAX") {
      if (fields.length !== 2) {
        throw new TypeError(`--tiers: bad tier "${tier}": expected ${kind}:RATIO`);
      }
      items.push(`KIND:${kind},RATIO:${fields[1]}`);
    } else if (kind === "FS_DAX") {
      const pathAt = fields.findIndex((f, i) => i >= 2 && f.startsWith("/"));
      if (pathAt < 2 || pathAt > 3) {
        throw new TypeError(
          `--tiers: bad tier "${tier}": expected FS_DAX:RATIO[:LIMIT]:PATH with an absolute PATH`,
        );
      }
      const limit = pathAt === 3 ? `,PMEM_SIZE_LIMIT:${fields[2]}` : "";
      items.push(`KIND:FS_DAX,PATH:${fields.slice(pathAt).join(":")},RATIO:${fields[1]}${limit}`);
    } else {
      throw new TypeError(
        `--tiers: bad tier "${tier}": unknown kind (expected DRAM, KMEM_DAX or FS_DAX)`,
      );
    }
  }
  const policy = flags.policy ?? "static";
  if (policy !== "static" && policy !== "dynamic") {
    throw new TypeError(`--policy: bad value "${policy}": expected static or dynamic`);
  }
  items.push(policy === "static" ? "POLICY:STATIC_RATIO" : "POLICY:DYNAMIC_THRESHOLD");
  const env: TierEnv = flags.thresholds === undefined
    ? { MEMKIND_MEM_TIERS: items.join(";") }
    : { MEMKIND_MEM_TIERS: items.join(";"), MEMKIND_MEM_THRESHOLDS: flags.thresholds };
  const result = parseTierSpec(env.MEMKIND_MEM_TIERS, env.MEMKIND_MEM_THRESHOLDS);
  if (!result.ok) throw new TypeError(result.failure.message);
  return env;
}
