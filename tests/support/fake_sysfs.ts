/**
 * Fake sysfs trees for topology and view tests, written to a temp dir.
 *
 * - {@link fakeVm}: the 4-node VM (`tests/numavm/`), copied from what its kernel 6.12 shows:
 *   nodes 0-1 with one CPU + ~1 GiB DRAM each in `memory_tier4`, nodes 2-3 CPU-less in
 *   `memory_tier54`, HMAT 20480 MB/s / 100 ns for DRAM and 5120 MB/s / 300 ns for 2-3 (whose best
 *   initiators are node 0 and node 1), SLIT 10/21/30/40.
 * - {@link fakeOneNode}: this machine: one node with CPUs 0-1, one tier, no HMAT.
 *
 * @example
 * ```ts
 * import { fakeVm } from "./fake_sysfs.ts";
 * using tree = fakeVm();
 * console.log(tree.root);
 * ```
 */

/** A temp dir holding a fake file system; removed on dispose. */
export interface FakeTree extends Disposable {
  /** The directory standing for `/`. */
  root: string;
  /** Writes `text` at the absolute `path` below the root (creating directories). */
  write(path: string, text: string): void;
}

/** Creates an empty fake tree. */
export function fakeTree(): FakeTree {
  const root = Deno.makeTempDirSync({ prefix: "tiermem-sysfs-" });
  return {
    root,
    write(path: string, text: string): void {
      const full = root + path;
      Deno.mkdirSync(full.slice(0, full.lastIndexOf("/")), { recursive: true });
      Deno.writeTextFileSync(full, text);
    },
    [Symbol.dispose](): void {
      Deno.removeSync(root, { recursive: true });
    },
  };
}

const node = "/sys/devices/system/node";
const tiering = "/sys/devices/virtual/memory_tiering";

function meminfo(id: number, totalKb: number, freeKb: number): string {
  return `Node ${id} MemTotal:       ${totalKb} kB\nNode ${id} MemFree:        ${freeKb} kB\n` +
    `Node ${id} MemUsed:        ${totalKb - freeKb} kB\nNode ${id} Active:          1000 kB\n`;
}

function hmat(
  tree: FakeTree,
  id: number,
  initiator: number,
  bandwidth: number,
  latency: number,
): void {
  for (const cls of [0, 1]) {
    const dir = `${node}/node${id}/access${cls}/initiators`;
    tree.write(`${dir}/read_bandwidth`, `${bandwidth}\n`);
    tree.write(`${dir}/write_bandwidth`, `${bandwidth}\n`);
    tree.write(`${dir}/read_latency`, `${latency}\n`);
    tree.write(`${dir}/write_latency`, `${latency}\n`);
    Deno.symlinkSync(`../../../node${initiator}`, `${tree.root}${dir}/node${initiator}`);
    Deno.mkdirSync(`${tree.root}${node}/node${id}/access${cls}/targets`, { recursive: true });
  }
}

/** The 4-node VM's sysfs (see the file comment). */
export function fakeVm(): FakeTree {
  const tree = fakeTree();
  tree.write(`${node}/possible`, "0-3\n");
  tree.write(`${node}/online`, "0-3\n");
  tree.write(`${node}/has_cpu`, "0-1\n");
  tree.write(`${node}/has_memory`, "0-3\n");
  tree.write(`${node}/has_normal_memory`, "0-3\n");
  const distances = ["10 21 30 40", "21 10 40 30", "30 40 10 21", "40 30 21 10"];
  const sizes: Array<[number, number]> = [
    [1030716, 1005752],
    [966092, 943516],
    [993804, 978564],
    [1029168, 1020552],
  ];
  for (let id = 0; id < 4; id++) {
    tree.write(`${node}/node${id}/cpulist`, id < 2 ? `${id}\n` : "\n");
    tree.write(`${node}/node${id}/distance`, `${distances[id]}\n`);
    tree.write(`${node}/node${id}/meminfo`, meminfo(id, sizes[id][0], sizes[id][1]));
  }
  hmat(tree, 0, 0, 20480, 100);
  hmat(tree, 1, 1, 20480, 100);
  hmat(tree, 2, 0, 5120, 300);
  hmat(tree, 3, 1, 5120, 300);
  tree.write(`${tiering}/memory_tier4/nodelist`, "0-1\n");
  tree.write(`${tiering}/memory_tier54/nodelist`, "2-3\n");
  tree.write(`${tiering}/uevent`, "");
  tree.write("/proc/self/stat", "4242 (deno (test)) R 1 2 3 " + "0 ".repeat(32) + "1 0 0\n");
  return tree;
}

/** This machine's sysfs: one node, CPUs 0-1, ~5.3 GiB, one tier, no HMAT. */
export function fakeOneNode(): FakeTree {
  const tree = fakeTree();
  for (const f of ["possible", "online", "has_cpu", "has_memory", "has_normal_memory"]) {
    tree.write(`${node}/${f}`, "0\n");
  }
  tree.write(`${node}/node0/cpulist`, "0-1\n");
  tree.write(`${node}/node0/distance`, "10\n");
  tree.write(`${node}/node0/meminfo`, meminfo(0, 5596960, 4936748));
  tree.write(`${tiering}/memory_tier4/nodelist`, "0\n");
  return tree;
}
