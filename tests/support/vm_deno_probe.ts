/**
 * Run inside the 4-node VM by tests/vm/vm_deno_test.ts (`deno run -A tests/support/vm_deno_probe.ts`):
 * exercises the Deno API where placement can be seen and prints ONE JSON line (`ProbeReport`)
 * for the host to assert on. Every check records its own error instead of stopping the rest.
 *
 * Page counts come from two independent sources: `residency()` (hm_residency in the library)
 * and a direct move_pages(2) query made here through libc's `syscall`.
 */

import { hfree } from "../../lib/buffers.ts";
import { Pool, type PoolPolicy } from "../../lib/pool.ts";
import { migrate, residency } from "../../lib/residency.ts";
import { lowerTierNodes, readTopology } from "../../lib/topology.ts";

const mib = 1 << 20;
const bufferBytes = 64 * mib;
const pageBytes = 4096;
const sysMovePages = 279n; // x86-64
const nodeSlots = 4;

/** Per-node page counts of one buffer by both methods. */
export interface Placement {
  policy: string;
  residency: number[];
  notPresent: number;
  movePages: number[];
  movePagesAbsent: number;
}

/** What the probe prints. */
export interface ProbeReport {
  topology?: { cpuLess: number[]; lowerTier: number[]; cpus: number[][] };
  bind2?: Placement;
  interleave?: Placement;
  weighted?: Placement;
  migrate?: {
    before: number[];
    after: number[];
    afterMovePages: number[];
    notPresent: number;
    notMoved: number;
    contentsIntact: boolean;
  };
  errors: Record<string, string>;
}

const libc = Deno.dlopen("libc.so.6", {
  syscall: {
    parameters: ["i64", "i64", "i64", "buffer", "pointer", "buffer", "i64"],
    result: "i64",
  },
});

/** move_pages(0, n, pages, NULL, status, 0): where each page of `buf` is, counted per node. */
function movePagesCount(buf: ArrayBuffer): { nodes: number[]; absent: number } {
  const base = Deno.UnsafePointer.value(Deno.UnsafePointer.of(buf));
  const n = buf.byteLength / pageBytes;
  const pages = new BigUint64Array(n);
  for (let i = 0; i < n; i++) pages[i] = base + BigInt(i * pageBytes);
  const status = new Int32Array(n);
  const rc = libc.symbols.syscall(sysMovePages, 0n, BigInt(n), pages, null, status, 0n);
  if (rc !== 0n) throw new Error(`move_pages returned ${rc}`);
  const nodes = new Array(nodeSlots).fill(0);
  let absent = 0;
  for (const s of status) {
    if (s >= 0 && s < nodeSlots) nodes[s]++;
    else absent++;
  }
  return { nodes, absent };
}

function placed(policy: PoolPolicy): Placement {
  using pool = new Pool(policy);
  const buf = pool.hmalloc(bufferBytes);
  new Uint8Array(buf).fill(0x5a);
  const r = residency(buf);
  const m = movePagesCount(buf);
  hfree(buf);
  return {
    policy: pool.policy,
    residency: r.pagesPerNode.slice(0, nodeSlots),
    notPresent: r.notPresent,
    movePages: m.nodes,
    movePagesAbsent: m.absent,
  };
}

function migrated(): NonNullable<ProbeReport["migrate"]> {
  using pool = new Pool({ bind: [0] });
  const buf = pool.hmalloc(bufferBytes);
  const words = new Uint32Array(buf);
  for (let i = 0; i < words.length; i++) words[i] = Math.imul(i, 2654435761) >>> 0;
  const before = residency(buf).pagesPerNode.slice(0, nodeSlots);
  const { notMoved } = migrate(buf, 3);
  const after = residency(buf);
  const afterMovePages = movePagesCount(buf).nodes;
  let contentsIntact = true;
  for (let i = 0; i < words.length; i++) {
    if (words[i] !== Math.imul(i, 2654435761) >>> 0) {
      contentsIntact = false;
      break;
    }
  }
  return {
    before,
    after: after.pagesPerNode.slice(0, nodeSlots),
    afterMovePages,
    notPresent: after.notPresent,
    notMoved,
    contentsIntact,
  };
}

const report: ProbeReport = { errors: {} };

function attempt(name: string, run: () => void): void {
  try {
    run();
  } catch (error) {
    report.errors[name] = error instanceof Error
      ? `${error.name}: ${error.message}`
      : String(error);
  }
}

attempt("topology", () => {
  const topology = readTopology();
  report.topology = {
    cpuLess: topology.cpuLessNodes,
    lowerTier: lowerTierNodes(topology),
    cpus: topology.nodes.map((n) => n.cpus),
  };
});
attempt("bind2", () => (report.bind2 = placed({ bind: [2] })));
attempt("interleave", () => (report.interleave = placed({ interleave: "0-3" })));
attempt("weighted", () => (report.weighted = placed({ weighted: { 0: 3, 2: 1 } })));
attempt("migrate", () => (report.migrate = migrated()));

console.log(JSON.stringify(report));
