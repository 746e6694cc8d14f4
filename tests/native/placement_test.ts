/**
 * Placement on the machine at hand (any number of nodes; the build machine has one): the
 * example program's hmalloc pages all land on the bound node, through HMALLOC_POLICY and
 * through hmctl (`cli.ts`), and a bad policy ends the program before main. The multi-node
 * proofs are in vm_placement_test.ts.
 */

import { buildCProgram, parsePlacement, type PlacementReport } from "../support/c_programs.ts";
import { repoRoot } from "../support/vm.ts";

const decoder = new TextDecoder();

/** The first node that has memory on this machine. */
function firstMemoryNode(): number {
  try {
    const text = Deno.readTextFileSync("/sys/devices/system/node/has_memory");
    return Number(/^\d+/.exec(text)?.[0] ?? "0");
  } catch {
    return 0;
  }
}

const node: number = firstMemoryNode();

interface Run {
  rc: number;
  output: string;
}

async function run(
  cmd: string,
  args: readonly string[],
  env: Record<string, string>,
): Promise<Run> {
  const out = await new Deno.Command(cmd, {
    args: [...args],
    cwd: repoRoot,
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { rc: out.code, output: decoder.decode(out.stdout) + decoder.decode(out.stderr) };
}

function expectAllOnNode(rep: PlacementReport, context: string): void {
  const hm = rep.hmalloc;
  if (hm === undefined) throw new Error(`${context}: no hmalloc report`);
  const on = hm.nodes[node] ?? 0;
  if (on !== hm.pages || hm.absent !== 0 || hm.errors !== 0) {
    throw new Error(
      `${context}: ${on} of ${hm.pages} pages on node ${node}: ${JSON.stringify(hm)}`,
    );
  }
}

Deno.test(`HMALLOC_POLICY=bind:${node} puts every hmalloc page on node ${node}`, async () => {
  const exe = await buildCProgram("placement");
  const r = await run(exe, ["64", "16"], { HMALLOC_POLICY: `bind:${node}` });
  if (r.rc !== 0) throw new Error(`rc ${r.rc}:\n${r.output}`);
  const rep = parsePlacement(r.output);
  if (rep.policy !== `bind:${node}`) throw new Error(`pool policy ${rep.policy}`);
  expectAllOnNode(rep, "HMALLOC_POLICY");
});

Deno.test(`hmctl: deno run -A cli.ts -m ${node} ./placement puts every hmalloc page on node ${node}`, async () => {
  const exe = await buildCProgram("placement");
  const r = await run(
    Deno.execPath(),
    ["run", "-A", "cli.ts", "-m", String(node), exe, "64", "16"],
    {},
  );
  if (r.rc !== 0) throw new Error(`rc ${r.rc}:\n${r.output}`);
  expectAllOnNode(parsePlacement(r.output), `cli.ts -m ${node}`);
});

Deno.test("HMALLOC_POLICY=bind:9 (no such node) exits 2 before main with one line", async () => {
  const exe = await buildCProgram("placement");
  const r = await run(exe, ["1", "1"], { HMALLOC_POLICY: "bind:9" });
  const lines = r.output.trim().split("\n");
  if (r.rc !== 2 || lines.length !== 1 || r.output.includes("placement: main reached")) {
    throw new Error(`rc ${r.rc}, output:\n${r.output}`);
  }
  if (!lines[0].includes("HMALLOC_POLICY") || !lines[0].includes("9")) {
    throw new Error(`the line names neither HMALLOC_POLICY nor the bad token 9: ${lines[0]}`);
  }
});
