// The kernel tiering engine on the host: node ranges from memory blocks, the DAMOS sysfs writes
// (paddr regions, migrate_hot/migrate_cold, target_nid, memcg + young filters, quotas), how the
// budget steers the schemes, kdamond claims, the memory cgroup and `tier --cleanup` of both —
// on fake trees. The real thing runs in the VM (tests/vm/vm_tiering_test.ts).
import assert from "node:assert/strict";
import { DamonBusyError } from "../../lib/damon.ts";
import {
  cgroup2Mount,
  type CgroupFs,
  createProgramCgroup,
  numaStatBytes,
  programNodeBytes,
  removeProgramCgroup,
} from "../../lib/tiering_cgroup.ts";
import {
  claimKdamonds,
  configureMigration,
  kernelSchemeParams,
  migrationSpecs,
  nodeMemoryRanges,
  readSchemeStats,
  releaseKdamonds,
  type SchemeInputs,
  writeSchemeParams,
} from "../../lib/tiering_kernel.ts";
import {
  chooseEngine,
  KERNEL_PID_REASON,
  kernelEngineUnavailable,
} from "../../lib/tiering_engine.ts";
import { cleanupLeftovers, recordClaim } from "../../lib/tiering_state.ts";
import { sysfsReader } from "../../lib/topology.ts";
import { FakeDamon } from "../support/fake_damon.ts";
import { fakeTree } from "../support/fake_sysfs.ts";

const MiB = 1 << 20;
const U32_MAX = "4294967295";

/** An in-memory cgroup2 tree: directories are keys ending in `/`. */
class FakeCgroups implements CgroupFs {
  readonly files = new Map<string, string>();
  readonly log: string[] = [];
  constructor(controllers = "cpu memory pids", subtree = "") {
    this.files.set("/cg/", "");
    this.files.set("/cg/cgroup.controllers", controllers);
    this.files.set("/cg/cgroup.subtree_control", subtree);
    this.files.set("/cg/cgroup.procs", "1\n");
  }
  read(path: string): string {
    const v = this.files.get(path);
    if (v === undefined) throw new Deno.errors.NotFound(path);
    return v;
  }
  write(path: string, value: string): void {
    this.log.push(`${path}=${value}`);
    if (path.endsWith("/cgroup.procs")) {
      for (const [k, v] of this.files) {
        if (k.endsWith("/cgroup.procs")) {
          this.files.set(k, v.split("\n").filter((l) => l !== "" && l !== value).join("\n"));
        }
      }
      const v = this.files.get(path) ?? "";
      this.files.set(path, v === "" ? value : `${v}\n${value}`);
    } else if (path.endsWith("/cgroup.subtree_control")) {
      this.files.set(path, value.replace(/^\+/, ""));
    } else this.files.set(path, value);
  }
  exists(path: string): boolean {
    return this.files.has(path) || this.files.has(`${path}/`);
  }
  mkdir(path: string): void {
    this.log.push(`mkdir ${path}`);
    if (this.exists(path)) throw new Deno.errors.AlreadyExists(path);
    this.files.set(`${path}/`, "");
    this.files.set(`${path}/cgroup.procs`, "");
    this.files.set(`${path}/memory.numa_stat`, "anon N0=0 N2=0\nfile N0=0 N2=0\n");
  }
  rmdir(path: string): void {
    this.log.push(`rmdir ${path}`);
    if ((this.files.get(`${path}/cgroup.procs`) ?? "") !== "") throw new Deno.errors.Busy(path);
    for (const k of [...this.files.keys()]) if (k.startsWith(`${path}/`)) this.files.delete(k);
  }
}

const inputs = (over: Partial<SchemeInputs> = {}): SchemeInputs => ({
  budgetBytes: 128 * MiB,
  fastBytes: 0,
  rateBytesPerSec: 1 << 30,
  intervalMs: 1000,
  hotHeldBack: false,
  coldMinAge: 5,
  idleMinAge: 100,
  ...over,
});

Deno.test("nodeMemoryRanges: a node's online memory blocks, contiguous ones merged", () => {
  using tree = fakeTree();
  tree.write("/sys/devices/system/memory/block_size_bytes", "8000000\n");
  for (const id of [32, 33, 34, 36]) {
    tree.write(`/sys/devices/system/node/node2/memory${id}/state`, "online\n");
  }
  tree.write("/sys/devices/system/node/node2/memory40/state", "offline\n");
  tree.write("/sys/devices/system/node/node2/memory_failure/x", "");
  const block = 128 * MiB;
  assert.deepEqual(nodeMemoryRanges(2, sysfsReader(tree.root)), [
    { start: 32 * block, end: 35 * block },
    { start: 36 * block, end: 37 * block },
  ]);
  assert.deepEqual(nodeMemoryRanges(3, sysfsReader(tree.root)), []);
});

Deno.test("migrationSpecs: each fast node demotes to a slow node, each slow node promotes to a fast one", () => {
  const specs = migrationSpecs([0, 1], [2, 3, 4], (n) => [{ start: n, end: n + 1 }]);
  assert.deepEqual(specs.map((s) => `${s.node}:${s.action}->${s.targetNid}`), [
    "0:migrate_cold->2",
    "1:migrate_cold->3",
    "2:migrate_hot->0",
    "3:migrate_hot->1",
    "4:migrate_hot->0",
  ]);
});

Deno.test("kernelSchemeParams: a third of the room for promotions, cold pages sooner when short, any page not accessed lately when full or over", () => {
  // Plenty of room: promote up to a third of the room (and half the rate), demote only the idle.
  assert.deepEqual(kernelSchemeParams(inputs({ fastBytes: 8 * MiB })), {
    mode: "room",
    hotQuotaBytes: 40 * MiB,
    coldQuotaBytes: 512 * MiB,
    coldMaxAccesses: 0,
    coldMinAge: 100,
  });
  // The rate caps the promotions.
  assert.equal(
    kernelSchemeParams(inputs({ rateBytesPerSec: 16 * MiB, intervalMs: 500 })).hotQuotaBytes,
    4 * MiB,
  );
  // Under a quarter of the budget left: cold pages (5 aggregation intervals) make room.
  const short = kernelSchemeParams(inputs({ fastBytes: 104 * MiB }));
  assert.equal(short.mode, "short");
  assert.equal(short.hotQuotaBytes, 8 * MiB);
  assert.equal(short.coldMinAge, 5);
  assert.equal(short.coldMaxAccesses, 0);
  // Promotions held back by their quota: short too, though the room is large.
  assert.equal(kernelSchemeParams(inputs({ hotHeldBack: true })).mode, "short");
  // No room: promotions paused, any region's pages not accessed lately go.
  assert.deepEqual(kernelSchemeParams(inputs({ fastBytes: 128 * MiB - 4096 })), {
    mode: "full",
    hotQuotaBytes: 0,
    coldQuotaBytes: 512 * MiB,
    coldMaxAccesses: 4294967295,
    coldMinAge: 0,
  });
  // Over: the same, named so.
  const over = kernelSchemeParams(inputs({ fastBytes: 130 * MiB }));
  assert.equal(over.mode, "over");
  assert.equal(over.hotQuotaBytes, 0);
  assert.equal(over.coldMaxAccesses, 4294967295);
});

Deno.test("configureMigration writes a paddr kdamond on the node's ranges with its action, target_nid, memcg and young filters, and quota", () => {
  const fake = new FakeDamon();
  const [hot, cold] = claimKdamonds(fake, 2);
  const params = kernelSchemeParams(inputs());
  configureMigration(
    fake,
    hot.index,
    {
      node: 2,
      action: "migrate_hot",
      targetNid: 0,
      ranges: [{ start: 4 * 2 ** 30, end: 5 * 2 ** 30 }],
    },
    "/tiermem-42",
    params,
    1000,
    1,
  );
  configureMigration(
    fake,
    cold.index,
    { node: 0, action: "migrate_cold", targetNid: 2, ranges: [{ start: 0, end: 2 ** 30 }] },
    "/tiermem-42",
    params,
    1000,
    1,
  );
  const f = (k: number, p: string): string => fake.read(`kdamonds/${k}/contexts/0/${p}`);
  assert.equal(f(0, "operations"), "paddr");
  assert.equal(f(0, "targets/nr_targets"), "1");
  assert.equal(f(0, "targets/0/regions/nr_regions"), "1");
  assert.equal(f(0, "targets/0/regions/0/start"), String(4 * 2 ** 30));
  assert.equal(f(0, "targets/0/regions/0/end"), String(5 * 2 ** 30));
  assert.equal(f(0, "schemes/0/action"), "migrate_hot");
  assert.equal(f(0, "schemes/0/target_nid"), "0");
  assert.equal(f(1, "schemes/0/action"), "migrate_cold");
  assert.equal(f(1, "schemes/0/target_nid"), "2");
  for (const k of [0, 1]) {
    assert.equal(f(k, "schemes/0/filters/nr_filters"), "2");
    assert.equal(f(k, "schemes/0/filters/0/type"), "memcg");
    assert.equal(f(k, "schemes/0/filters/0/memcg_path"), "/tiermem-42");
    // 6.12 filters exclude what matches: "not in the group" is excluded.
    assert.equal(f(k, "schemes/0/filters/0/matching"), "N");
    assert.equal(f(k, "schemes/0/filters/1/type"), "young");
    assert.equal(f(k, "schemes/0/quotas/reset_interval_ms"), "1000");
    assert.equal(f(k, "schemes/0/access_pattern/sz/max"), "18446744073709551615");
  }
  assert.equal(f(0, "schemes/0/filters/1/matching"), "N"); // promote only pages accessed lately
  assert.equal(f(1, "schemes/0/filters/1/matching"), "Y"); // demote none accessed lately
  assert.equal(f(0, "schemes/0/quotas/bytes"), String(Math.floor(128 * MiB / 3 / 4096) * 4096));
  assert.equal(f(0, "schemes/0/access_pattern/nr_accesses/min"), "1");
  assert.equal(f(0, "schemes/0/access_pattern/age/min"), "0");
  assert.equal(f(1, "schemes/0/quotas/bytes"), String(512 * MiB));
  assert.equal(f(1, "schemes/0/access_pattern/nr_accesses/max"), "0");
  assert.equal(f(1, "schemes/0/access_pattern/age/min"), "100");
  // Paused promotions: an age no region reaches (a byte quota of 0 would mean unlimited).
  writeSchemeParams(
    fake,
    0,
    "migrate_hot",
    kernelSchemeParams(inputs({ fastBytes: 129 * MiB })),
    1,
  );
  assert.equal(f(0, "schemes/0/access_pattern/age/min"), U32_MAX);
  assert.notEqual(f(0, "schemes/0/quotas/bytes"), "0");
  // Over budget: demotion takes any region, coldest first.
  writeSchemeParams(
    fake,
    1,
    "migrate_cold",
    kernelSchemeParams(inputs({ fastBytes: 129 * MiB })),
    1,
  );
  assert.equal(f(1, "schemes/0/access_pattern/nr_accesses/max"), U32_MAX);
  assert.equal(f(1, "schemes/0/access_pattern/age/min"), "0");
});

Deno.test("readSchemeStats asks for fresh statistics first", () => {
  const fake = new FakeDamon();
  claimKdamonds(fake, 1);
  fake.write("kdamonds/0/contexts/nr_contexts", "1");
  fake.write("kdamonds/0/state", "on");
  const dir = "kdamonds/0/contexts/0/schemes/0/stats";
  for (
    const [k, v] of Object.entries({
      nr_tried: 7,
      sz_tried: 9,
      nr_applied: 3,
      sz_applied: 8192,
      qt_exceeds: 2,
    })
  ) {
    fake.files.set(`${dir}/${k}`, String(v));
  }
  assert.deepEqual(readSchemeStats(fake, 0), {
    nrTried: 7,
    szTried: 9,
    nrApplied: 3,
    szApplied: 8192,
    qtExceeds: 2,
  });
  assert.equal(fake.writes.at(-1), "kdamonds/0/state=update_schemes_stats");
});

Deno.test("claimKdamonds takes one kdamond per node only when none exists (or enough free ones), and releaseKdamonds gives them back", () => {
  const fake = new FakeDamon();
  const claims = claimKdamonds(fake, 2);
  assert.deepEqual(claims, [{ index: 0, created: true }, { index: 1, created: true }]);
  assert.throws(() => claimKdamonds(fake, 2), DamonBusyError);
  // Two free ones exist: reused, and left existing on release.
  assert.deepEqual(claimKdamonds(fake, 2, true), [
    { index: 0, created: false },
    { index: 1, created: false },
  ]);
  assert.throws(() => claimKdamonds(fake, 3, true), /2 kdamond\(s\) exist and none is free/);
  releaseKdamonds(fake, [{ index: 0, created: false }, { index: 1, created: false }]);
  assert.equal(fake.read("kdamonds/nr_kdamonds"), "2");
  fake.write("kdamonds/0/contexts/nr_contexts", "1");
  fake.write("kdamonds/0/state", "on");
  releaseKdamonds(fake, claims);
  assert.equal(fake.read("kdamonds/nr_kdamonds"), "0");
  releaseKdamonds(fake, claims); // twice is fine
});

Deno.test("the program's cgroup: +memory enabled when off, created, read, and removed with any process moved home", () => {
  assert.equal(cgroup2Mount("proc /proc proc rw 0 0\nnone /cg cgroup2 rw 0 0\n"), "/cg");
  assert.equal(cgroup2Mount("proc /proc proc rw 0 0\n"), undefined);
  const fs = new FakeCgroups();
  const cg = createProgramCgroup("/cg", 42, fs, "/");
  assert.deepEqual(cg, { mount: "/cg", path: "/tiermem-42", home: "/" });
  assert.deepEqual(fs.log.slice(0, 2), [
    "/cg/cgroup.subtree_control=+memory",
    "mkdir /cg/tiermem-42",
  ]);
  fs.files.set(
    "/cg/tiermem-42/memory.numa_stat",
    "anon N0=8192 N2=4096\nfile N0=4096 N2=0\nshmem N0=4096 N2=0\n",
  );
  assert.deepEqual(programNodeBytes(cg, fs), [12288, 0, 4096]);
  fs.write("/cg/tiermem-42/cgroup.procs", "777");
  removeProgramCgroup(cg, fs);
  assert.equal(fs.exists("/cg/tiermem-42"), false);
  assert.match(fs.read("/cg/cgroup.procs"), /^777$/m);
  removeProgramCgroup(cg, fs); // twice is fine
  // Memory already enabled: subtree_control untouched. No memory controller: refused.
  const on = new FakeCgroups("memory", "memory");
  createProgramCgroup("/cg", 7, on);
  assert.deepEqual(on.log, ["mkdir /cg/tiermem-7"]);
  assert.throws(
    () => createProgramCgroup("/cg", 8, new FakeCgroups("cpu pids")),
    /no memory controller/,
  );
  assert.deepEqual(numaStatBytes("anon N0=1 N1=2\nfile N0=3 N1=4\nkernel_stack N0=100\n"), [4, 6]);
});

Deno.test("tier --cleanup turns off a dead kernel session's kdamonds and removes its cgroup", () => {
  const fake = new FakeDamon();
  const claims = claimKdamonds(fake, 2);
  for (const c of claims) {
    fake.write(`kdamonds/${c.index}/contexts/nr_contexts`, "1");
    fake.write(`kdamonds/${c.index}/state`, "on");
  }
  const fs = new FakeCgroups("memory", "memory");
  const cg = createProgramCgroup("/cg", 999_999_999, fs);
  fs.write("/cg/tiermem-999999999/cgroup.procs", "4321"); // the program still runs
  const dir = Deno.makeTempDirSync();
  try {
    recordClaim(dir, { owner: 999_999_999, target: 4321, claims, cgroup: cg });
    const { released, live } = cleanupLeftovers(fake, dir, () => false, fs);
    assert.equal(released.length, 1);
    assert.equal(live.length, 0);
    assert.equal(fake.read("kdamonds/nr_kdamonds"), "0");
    assert.equal(fs.exists("/cg/tiermem-999999999"), false);
    assert.match(fs.read("/cg/cgroup.procs"), /^4321$/m);
    assert.deepEqual([...Deno.readDirSync(dir)], []);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("engine choice: kernel when it can run, why not otherwise, never for --pid", () => {
  const ok = {
    release: "6.12.9",
    mounts: "none /sys/fs/cgroup cgroup2 rw 0 0\n",
    controllers: "cpu memory",
    paddr: true,
  };
  assert.equal(kernelEngineUnavailable(ok), undefined);
  const auto = chooseEngine("auto", ok);
  assert.equal(auto.engine, "kernel");
  assert.match(auto.note, /^engine kernel \(Linux 6\.12\.9: DAMOS migrate_hot\/migrate_cold/);
  assert.equal(chooseEngine("kernel", ok).engine, "kernel");
  assert.equal(chooseEngine("user", ok).engine, "user");
  assert.equal(
    kernelEngineUnavailable({ ...ok, paddr: false }),
    "Linux 6.12.9 is built without DAMON's paddr operations (CONFIG_DAMON_PADDR)",
  );
  assert.match(
    kernelEngineUnavailable({ ...ok, controllers: "cpu" }) ?? "",
    /no memory controller/,
  );
  // --pid: the process's pages stay charged elsewhere.
  assert.throws(
    () => chooseEngine("kernel", ok, true),
    (e: Error) => e.message === `the kernel engine cannot run: ${KERNEL_PID_REASON}`,
  );
  assert.match(
    chooseEngine("auto", ok, true).note,
    /^engine user \(kernel engine unavailable: --pid/,
  );
});
