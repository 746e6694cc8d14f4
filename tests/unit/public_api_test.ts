/**
 * The public surface: `mod.ts` exports exactly the names a user needs, none of which can free
 * memory without detaching it; the raw FFI layer is reachable only through `ffi/mod.ts`.
 */
import { deepStrictEqual, strictEqual } from "node:assert/strict";
import * as main from "../../mod.ts";
import * as ffi from "../../ffi/mod.ts";
import denoConfig from "../../deno.json" with { type: "json" };

Deno.test("mod.ts exports exactly the user-facing values (types are checked by deno doc)", () => {
  deepStrictEqual(Object.keys(main).sort(), [
    "Pool",
    "TieringError",
    "allocScoped",
    "checkAccess",
    "checkTiering",
    "createProgramCgroup",
    "currentNode",
    "defaultPool",
    "halignedAlloc",
    "hcalloc",
    "hfree",
    "highestBandwidthNodes",
    "highestCapacityNodes",
    "hmalloc",
    "hmallocManaged",
    "hmallocUsableSize",
    "hmmap",
    "hmunmap",
    "hrealloc",
    "isHmallocBuffer",
    "livePoolCount",
    "loadHmalloc",
    "lowerTierNodes",
    "lowestLatencyNodes",
    "migrate",
    "moveToCgroup",
    "nodeDistance",
    "parseMappingPolicy",
    "parseNumaMaps",
    "policyString",
    "processNumaUsage",
    "readMemoryTiers",
    "readNumaMaps",
    "readTopology",
    "residency",
    "startTiering",
    "summarizeNumaMaps",
    "sysfsReader",
    "topTierNodes",
  ]);
});

Deno.test("mod.ts hands out no raw symbol table or library handle (no free without detaching)", () => {
  const names = Object.keys(main);
  for (const raw of ["symbols", "HmallocLibrary", "openLibrary", "openLibrarySync"]) {
    strictEqual(names.includes(raw), false, `${raw} must not be in mod.ts`);
  }
});

Deno.test("the FFI layer is the documented advanced entry ./ffi", () => {
  strictEqual(denoConfig.exports["./ffi"], "./ffi/mod.ts");
  strictEqual(typeof ffi.openLibrary, "function");
  strictEqual(typeof ffi.symbols.hfree, "object");
});
