/**
 * The argument loop the `hmctl` and `memtier` front ends share: GNU-getopt-like options before
 * a program, the program and everything after it left alone.
 *
 * Options end at the first argument that does not start with `-` (or is `-` alone), or after
 * `--`. A long option takes its value as `--name=value` or as the next argument, a short one as
 * `-xVALUE` or as the next argument; long names may be abbreviated to a unique prefix when the
 * front end allows it. `node:util`'s `parseArgs` cannot stop at the program name (it would take
 * the program's own options for ours), which is why this loop is hand-written. The wording of
 * every error belongs to the front end ({@link GetoptMessages}): each keeps its own messages,
 * which its tests pin, and only the scanning is shared.
 *
 * @module
 */

/** One option a front end accepts. */
export interface GetoptOption {
  /** The long name without `--`. */
  readonly long: string;
  /** The one-character short name, or null for none. */
  readonly short?: string | null;
}

/** How a front end words its errors and which of its options take a value. */
export interface GetoptMessages<O extends GetoptOption> {
  /** Whether `--pre` may stand for the one long name starting with `pre`. */
  readonly abbreviations: boolean;
  /** Whether `option` takes a value (from `=`, the rest of a short token, or the next argument). */
  takesValue(option: O): boolean;
  /** No such option: `token` is the whole argument, `spelled` the option part (`-x`, `--xy`). */
  unknown(token: string, spelled: string): string;
  /** `spelled` is a prefix of several long names (only with `abbreviations`). */
  ambiguous(spelled: string, candidates: readonly O[]): string;
  /** `option`, spelled `spelled`, needs a value and the arguments ran out. */
  missingValue(option: O, spelled: string): string;
}

/** One option as the user wrote it. */
export interface ParsedOption<O extends GetoptOption> {
  readonly option: O;
  /** The option as written, without any value: `-m`, `--mem`, `--membind`. */
  readonly spelled: string;
  /** The whole argument it came from (the first one, if the value was the next argument). */
  readonly token: string;
  /** Its value; for an option that takes none, whatever was attached (`--help=x`, `-?x`). */
  readonly value: string | undefined;
}

/**
 * Scans options one at a time, so a front end can stop (at `--help`) or reject a combination
 * before later arguments are looked at. Errors are `TypeError`s with the front end's words.
 *
 * @example
 * ```ts
 * import { GetoptScanner } from "./getopt.ts";
 * const options = [{ long: "tiers", short: "t" }, { long: "help", short: "h" }];
 * const scan = new GetoptScanner(["-tDRAM:1", "--help=no", "ls", "-l"], options, {
 *   abbreviations: true,
 *   takesValue: (o) => o.long !== "help",
 *   unknown: (token) => `unknown option "${token}"`,
 *   ambiguous: (spelled) => `ambiguous option "${spelled}"`,
 *   missingValue: (_o, spelled) => `option "${spelled}" needs a value`,
 * });
 * for (let o = scan.next(); o !== undefined; o = scan.next()) console.log(o.option.long, o.value);
 * // tiers DRAM:1, then help no
 * console.log(scan.index); // 2: "ls" is the program
 * ```
 */
export class GetoptScanner<O extends GetoptOption> {
  readonly #argv: readonly string[];
  readonly #options: readonly O[];
  readonly #messages: GetoptMessages<O>;
  #index = 0;
  #done = false;

  /** Scans `argv` for `options`, wording errors with `messages`. */
  constructor(argv: readonly string[], options: readonly O[], messages: GetoptMessages<O>) {
    this.#argv = argv;
    this.#options = options;
    this.#messages = messages;
  }

  /**
   * Where the operands (the program) start: `argv.length` when there is none. Final once
   * {@link next} has returned undefined.
   */
  get index(): number {
    return this.#index;
  }

  /** The next option, or undefined at the program, after `--` or at the end. */
  next(): ParsedOption<O> | undefined {
    if (this.#done || this.#index >= this.#argv.length) return this.#finish();
    const token = this.#argv[this.#index];
    if (token === "--") {
      this.#index++;
      return this.#finish();
    }
    if (!token.startsWith("-") || token === "-") return this.#finish();
    this.#index++;
    let option: O;
    let spelled: string;
    let value: string | undefined;
    if (token.startsWith("--")) {
      const eq = token.indexOf("=");
      spelled = eq < 0 ? token : token.slice(0, eq);
      option = this.#matchLong(spelled, token);
      if (eq >= 0) value = token.slice(eq + 1);
    } else {
      spelled = token.slice(0, 2);
      const found = this.#options.find((o) => o.short === token[1]);
      if (found === undefined) throw new TypeError(this.#messages.unknown(token, spelled));
      option = found;
      if (token.length > 2) value = token.slice(2);
    }
    if (value === undefined && this.#messages.takesValue(option)) {
      if (this.#index >= this.#argv.length) {
        throw new TypeError(this.#messages.missingValue(option, spelled));
      }
      value = this.#argv[this.#index++];
    }
    return { option, spelled, token, value };
  }

  #finish(): undefined {
    this.#done = true;
    return undefined;
  }

  /** Exact long name, else (with abbreviations) the one long name `spelled` is a prefix of. */
  #matchLong(spelled: string, token: string): O {
    const name = spelled.slice(2);
    const exact = this.#options.find((o) => o.long === name);
    if (exact !== undefined) return exact;
    const candidates = !this.#messages.abbreviations || name === ""
      ? []
      : this.#options.filter((o) => o.long.startsWith(name));
    if (candidates.length === 1) return candidates[0];
    if (candidates.length === 0) throw new TypeError(this.#messages.unknown(token, spelled));
    throw new TypeError(this.#messages.ambiguous(spelled, candidates));
  }
}
