/**
 * Writing a whole text to a stream: `write`/`writeSync` on a Deno stream may take fewer bytes than
 * offered (a pipe that is nearly full), so every front end loops until all of it is written. This is
 * the one copy of that loop; errors (a closed pipe, a full disk) reach the caller unchanged.
 *
 * @module
 */

/** A stream written asynchronously, like `Deno.stdout`. */
export interface AsyncByteSink {
  /** Writes some of `bytes`, resolving to how many. */
  write(bytes: Uint8Array): Promise<number>;
}

/** A stream written synchronously, like `Deno.stdout`. */
export interface SyncByteSink {
  /** Writes some of `bytes`, returning how many. */
  writeSync(bytes: Uint8Array): number;
}

/**
 * Writes all of `text` (UTF-8) to `stream`.
 *
 * @example
 * ```ts
 * import { writeAll } from "./write_all.ts";
 * await writeAll(Deno.stdout, "hello\n");
 * ```
 */
export async function writeAll(stream: AsyncByteSink, text: string): Promise<void> {
  const bytes = new TextEncoder().encode(text);
  for (let done = 0; done < bytes.length;) done += await stream.write(bytes.subarray(done));
}

/**
 * Writes all of `text` (UTF-8) to `stream`, synchronously.
 *
 * @example
 * ```ts
 * import { writeAllSync } from "./write_all.ts";
 * writeAllSync(Deno.stderr, "warning\n");
 * ```
 */
export function writeAllSync(stream: SyncByteSink, text: string): void {
  const bytes = new TextEncoder().encode(text);
  for (let done = 0; done < bytes.length;) done += stream.writeSync(bytes.subarray(done));
}
