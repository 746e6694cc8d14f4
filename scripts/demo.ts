/**
 * The quick-start demo: installs what it needs when missing (Debian packages as root, Zig, the
 * VM kernel), builds libhmalloc, compiles the example program (tests/c/placement.c: 512 MiB
 * through hmalloc, 256 MiB through malloc, every page written) and runs it under hmctl
 * (`deno run -A cli.ts`), printing how many MiB of the hmalloc pool and of the rest of the
 * program landed on each NUMA node, counted page by page with move_pages(2):
 *   1. on this machine: `cli.ts -m N` with N its first node with memory;
 *   2. if the 4-node test VM can run here (tests/numavm/): the seed example,
 *      `numactl -p 1 deno run -A cli.ts -m 2 ./placement` — hmalloc pages on node 2, the rest on 1.
 * DEMO_HM_MIB / DEMO_MALLOC_MIB change the sizes; DEMO_VM=0 skips the VM (and its packages).
 *
 * @module
 */
import $ from "dax";
import { join } from "node:path";
import { ensurePackages, type Profile } from "./support/debian.ts";
import { logStep, repoRoot } from "./support/toolchain.ts";
import { buildLibraries } from "./build.ts";

const hmMib = Deno.env.get("DEMO_HM_MIB") ?? "512";
const mallocMib = Deno.env.get("DEMO_MALLOC_MIB") ?? "256";
const withVm = Deno.env.get("DEMO_VM") !== "0";
const out = join(repoRoot, "build", "demo");
const lib = join(repoRoot, "zig-src", "zig-out", "lib");
const deno = Deno.execPath();

/** Drops the probe's machine-readable lines from its output. */
function shown(text: string): string {
  return text.split("\n").filter((l) => l !== "placement: main reached" && !l.startsWith("{"))
    .join("\n");
}

function firstNodeWithMemory(): string {
  try {
    return Deno.readTextFileSync("/sys/devices/system/node/has_memory").match(/^\d+/)?.[0] ?? "0";
  } catch {
    return "0";
  }
}

try {
  const profiles: Profile[] = ["bootstrap", "build", "demo", ...(withVm ? ["vm" as const] : [])];
  await ensurePackages(profiles);
  console.log("== building libhmalloc.so");
  await buildLibraries({ optimize: "fast" });
  await Deno.mkdir(out, { recursive: true });
  console.log("== compiling the example program (tests/c/placement.c)");
  const gcc = ["-O2", "-std=gnu11", "-I", "zig-src/zig-out/include", "-o", join(out, "placement")];
  await $`gcc ${gcc} tests/c/placement.c -L ${lib} -lhmalloc -Wl,-rpath,${lib}`.cwd(repoRoot);

  const node = firstNodeWithMemory();
  let online = "?";
  try {
    online = Deno.readTextFileSync("/sys/devices/system/node/online").trim();
  } catch { /* no sysfs: shown as ? */ }
  console.log(`\n== this machine (${online} online):`);
  console.log(`   deno run -A cli.ts -m ${node} ./placement ${hmMib} ${mallocMib}`);
  const program = [join(out, "placement"), "--table", hmMib, mallocMib];
  const here = await $`${deno} run -A cli.ts -m ${node} ${program}`.cwd(repoRoot).text();
  console.log(shown(here));

  if (withVm) {
    console.log();
    const check = await $`bash tests/numavm/numavm.sh --check`.cwd(repoRoot).noThrow().text();
    if (check.trim() === "ok") {
      console.log(
        "== the 4-node VM (nodes 0,1: CPU + DRAM; 2,3: memory-only, lower tier), ~1 min:",
      );
      console.log(`   numactl -p 1 deno run -A cli.ts -m 2 ./placement ${hmMib} ${mallocMib}`);
      const vm =
        await $`bash tests/numavm/numavm.sh numactl -p 1 ${deno} run -A cli.ts -m 2 ${program}`
          .cwd(repoRoot).captureCombined().noThrow();
      console.log(shown(vm.combined));
      if (vm.code !== 0) throw new Error(`the VM run exited with status ${vm.code} (output above)`);
    } else {
      console.log(`== the 4-node VM is not available here: ${check.trim()}`);
    }
  }
} catch (error) {
  logStep(`demo failed: ${error instanceof Error ? error.message : String(error)}`);
  Deno.exit(1);
}
