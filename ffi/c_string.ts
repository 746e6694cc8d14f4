/**
 * Strings for C: every string this package hands the library goes through {@link cString}, so
 * each is checked whole. C reads a string up to its first NUL; a JS string holding one would
 * reach C cut short and be taken for its prefix (`"0\u0000garbage"` as node list `0`).
 *
 * @module
 */

const encoder = new TextEncoder();

/**
 * `text` as a NUL-terminated UTF-8 buffer for a `"buffer"` parameter of the FFI.
 *
 * @param text the string to pass.
 * @param what who passes it and as what, for the error (e.g. `Pool: policy`).
 * @throws {TypeError} when `text` holds a NUL character, naming the string and the index.
 *
 * @example
 * ```ts
 * import { cString } from "./c_string.ts";
 * console.log(cString("bind:0", "Pool: policy")); // Uint8Array(7) [ 98, 105, 110, 100, 58, 48, 0 ]
 * try {
 *   cString("bind:0\u0000garbage", "Pool: policy");
 * } catch (e) {
 *   console.log((e as Error).message);
 *   // Pool: policy "bind:0\u0000garbage" has a NUL character at index 6 (C would read only "bind:0")
 * }
 * ```
 */
export function cString(text: string, what: string): Uint8Array<ArrayBuffer> {
  const nul = text.indexOf("\0");
  if (nul >= 0) {
    throw new TypeError(
      `${what} ${JSON.stringify(text)} has a NUL character at index ${nul} ` +
        `(C would read only ${JSON.stringify(text.slice(0, nul))})`,
    );
  }
  return encoder.encode(`${text}\0`);
}
