/**
 * The fenced code blocks of README.md and where each one runs (issue 10: "every README code block
 * is run by a test"). The info string after the language says where:
 *
 * | info string        | run                                                                    |
 * |--------------------|------------------------------------------------------------------------|
 * | `sh`               | on this machine, in the checkout, with the pinned Deno first on PATH    |
 * | `sh install`       | after `scripts/install.sh --prefix TMP`: PREFIX/bin on PATH, pkg-config at PREFIX, in a temp dir holding the `file=` blocks |
 * | `sh root`          | as root in the checkout, in a private mount namespace whose `/usr/local`, `/opt` and `/etc` are throw-away overlays (the install commands, as written) |
 * | `sh vm`            | in the 4-node VM (`tests/support/vm.ts`), in the checkout, as root             |
 * | `sh bare-machine`  | by the bare Debian 12 root test (the quick start), not here             |
 * | `c file=NAME`      | written as NAME for the `sh install` blocks                             |
 * | `ts`               | `deno run -A` of the block as written, saved in the checkout's root     |
 *
 * @example
 * ```ts
 * import { readmeBlocks } from "./readme_blocks.ts";
 * for (const block of readmeBlocks()) console.log(block.line, block.kind);
 * ```
 */

import { repoRoot } from "./vm.ts";

/** Where a block runs. */
export type BlockKind =
  | "sh"
  | "sh install"
  | "sh root"
  | "sh vm"
  | "sh bare-machine"
  | "file"
  | "ts";

/** One fenced block of the README. */
export interface ReadmeBlock {
  /** The line of its opening fence (1-based). */
  readonly line: number;
  /** The whole info string, e.g. `c file=ex.c`. */
  readonly info: string;
  /** Where it runs, or null when the info string is not one of {@link BlockKind}. */
  readonly kind: BlockKind | null;
  /** For `file` blocks, the file name. */
  readonly file?: string;
  /** The block's text, with its final newline. */
  readonly text: string;
}

const SH_KINDS: readonly BlockKind[] = ["sh", "sh install", "sh root", "sh vm", "sh bare-machine"];

/** Parses README.md (or `text`) into its fenced blocks. */
export function readmeBlocks(
  text: string = Deno.readTextFileSync(`${repoRoot}/README.md`),
): ReadmeBlock[] {
  const blocks: ReadmeBlock[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(.*)$/.exec(lines[i]);
    if (open === null) continue;
    const info = open[1].trim().replace(/\s+/g, " ");
    const body: string[] = [];
    let j = i + 1;
    for (; j < lines.length && !/^```\s*$/.test(lines[j]); j++) body.push(lines[j]);
    if (j >= lines.length) throw new Error(`README.md:${i + 1}: unclosed code block`);
    const fileMatch = /^\S+ file=(\S+)$/.exec(info);
    let kind: BlockKind | null = null;
    if (fileMatch !== null) kind = "file";
    else if ((SH_KINDS as readonly string[]).includes(info)) kind = info as BlockKind;
    else if (info === "ts") kind = "ts";
    blocks.push({
      line: i + 1,
      info,
      kind,
      ...(fileMatch !== null ? { file: fileMatch[1] } : {}),
      text: body.join("\n") + "\n",
    });
    i = j;
  }
  return blocks;
}
