/**
 * The benchmark runner (`deno task bench`): builds the libraries (fast), compiles every C
 * workload of bench/ twice into bench/out/ (NAME-malloc, NAME-hmalloc; see bench/bench.h), runs
 * every row for every peer in one run, and prints a table of absolute numbers and ratios; writes
 * bench/out/results.json, bench/out/table.txt and the chart bench/out/bench.svg.
 *
 * Peers: glibc (no preload), jemalloc, mimalloc, tcmalloc (Debian's libraries by LD_PRELOAD),
 * hmalloc (our API, the NAME-hmalloc build), memtier (our libmemtier.so by LD_PRELOAD, one DRAM
 * tier), memtier-2t (the same with DRAM + an FS_DAX file tier 1:1, in a temporary directory the
 * run creates and removes; the table then also shows memtier-2t / memtier) and, for the python
 * rows, memkind (Debian memkind's libmemtier.so, one DRAM tier).
 *
 * usage: deno run -A bench/run.ts [--quick] [--instructions] [--rows ID,..] [--peers P,..]
 *                                 [--reps N] [--rounds N] [--out DIR] [--no-build]
 *   --quick         tiny sizes, 1 repetition: every program runs and reports (CI sanity)
 *   --instructions  add callgrind instruction counts for the mixed rows (repeatable numbers)
 *   --rows          only rows whose id starts with one of these (mixed,xthread,larson,...)
 *   --peers         only these peers
 *   --reps          repetitions per workload (default 5, realloc 3, python 5; quick 1)
 *   --rounds        timed rows run every peer once per round, peers interleaved, and report the
 *                   median over rounds of each process's median (default 3; quick 1): a slow
 *                   phase of a noisy machine then hits every peer alike
 *   --out           output directory (default bench/out)
 *   --no-build      do not run scripts/build.sh first
 *
 * @example
 * ```sh
 * deno run -A bench/run.ts --quick --rows mixed --peers glibc,hmalloc
 * ```
 */
import { parseOptions } from "../scripts/support/options.ts";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  type Cell,
  formatTables,
  renderSvg,
  type RowResult,
  type RunResult,
  withRatios,
} from "./report.ts";

import {
  allPeers,
  daxDirToken,
  type FfiSize,
  ffiSizes,
  includeDir,
  instructionSpecs,
  libDir,
  type Peer,
  programs,
  root,
  type RowSpec,
  rowSpecs,
  tierTarget,
} from "./rows.ts";

interface Output {
  code: number;
  stdout: string;
  stderr: string;
}

async function exec(
  cmd: string,
  args: string[],
  env: Record<string, string> = {},
  timeoutMs = 900_000,
): Promise<Output> {
  const out = await new Deno.Command(cmd, {
    args,
    env,
    cwd: root,
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(timeoutMs),
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** `key=value` lines (numbers only) of a workload's output. */
export function parseKeyValues(text: string): Record<string, number> {
  const values: Record<string, number> = {};
  for (const m of text.matchAll(/^(\w+)=(-?[0-9.]+)\s*$/gm)) values[m[1]] = Number(m[2]);
  return values;
}

/** Calls of mbind in an `strace -c` summary (0 when the syscall never ran). */
export function straceCalls(summary: string, syscall: string): number {
  for (const line of summary.split("\n")) {
    const cols: string[] = line.trim().split(/\s+/);
    if (cols[cols.length - 1] === syscall && cols.length >= 5) return Number(cols[3]);
  }
  return 0;
}

function median(xs: number[]): number {
  const s: number[] = [...xs].sort((a: number, b: number) => a - b);
  const m: number = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function fail(what: string, out: Output): never {
  const tail: string = (out.stderr.trim() || out.stdout.trim()).split("\n").slice(-3).join(" | ");
  throw new Error(`${what} exited with ${out.code}: ${tail}`);
}

interface Context {
  quick: boolean;
  reps: number | null;
  rounds: number;
  outDir: string;
  python: string;
  /** Snapshot of our built libraries for this run (bench/out/lib). */
  libDir: string;
  /** The run's temporary directory for memtier-2t's FS_DAX tier file (replaces daxDirToken). */
  daxDir: string;
  /** Whether a peer was selected (--peers). */
  selected: (peer: string) => boolean;
}

/** The library a peer preloads ("" for none). */
function preloadPath(peer: Peer, ctx: Context): string {
  if (peer.preload === undefined) return "";
  return peer.ours ? `${ctx.libDir}/${peer.preload}` : peer.preload;
}

function peerEnv(peer: Peer, spec: RowSpec, ctx: Context): Record<string, string> {
  const env: Record<string, string> = { ...peer.env, ...(spec.env?.[peer.name] ?? {}) };
  for (const [k, v] of Object.entries(env)) env[k] = v.replaceAll(daxDirToken, ctx.daxDir);
  return { ...env, LD_PRELOAD: preloadPath(peer, ctx) };
}

/**
 * Copies our libraries into `${outDir}/lib` so that a rebuild by someone else during the run (a
 * debug build, say) cannot change what is measured halfway; warns when the copy looks like a
 * debug build (Zig's std.debug.assert survives as a function only there).
 */
async function snapshotLibraries(outDir: string): Promise<string | null> {
  const dir = `${outDir}/lib`;
  mkdirSync(dir, { recursive: true });
  let warning: string | null = null;
  // libhmalloc.so.1 is the soname the bench programs are linked against (copyFileSync follows
  // the build's symlinks, so each name is a full copy).
  for (const name of ["libhmalloc.so", "libhmalloc.so.1", "libmemtier.so"]) {
    if (!existsSync(`${libDir}/${name}`)) continue;
    copyFileSync(`${libDir}/${name}`, `${dir}/${name}`);
    // Programs linked with -lhmalloc load it by its soname, libhmalloc.so.1.
    if (name === "libhmalloc.so") copyFileSync(`${libDir}/${name}`, `${dir}/${name}.1`);
    const nm: Output = await exec("nm", ["--defined-only", `${dir}/${name}`]);
    if (/\sdebug\.assert\b/.test(nm.stdout)) {
      warning = `${name} looks like a debug build (debug.assert is a function): ` +
        "numbers of hmalloc/memtier are not those of the fast build";
      console.error(`bench: WARNING ${warning}`);
    }
  }
  return warning;
}

async function measureOnce(
  spec: RowSpec,
  peer: Peer,
  ctx: Context,
): Promise<Record<string, number>> {
  const exe = `${ctx.outDir}/${spec.program}-${peer.build}`;
  const args: string[] = spec.args(ctx.quick);
  const reps: number = ctx.reps ?? (ctx.quick ? 1 : spec.reps);
  const env: Record<string, string> = peerEnv(peer, spec, ctx);
  if (spec.kind === "time" || spec.kind === "footprint") {
    const out: Output = await exec(exe, args, { ...env, BENCH_REPS: `${reps}` });
    if (out.code !== 0) fail(spec.program, out);
    return parseKeyValues(out.stdout);
  }
  if (spec.kind === "strace") {
    const file = `${ctx.outDir}/strace-${spec.id}-${peer.name}.txt`;
    const setEnv: string[] = Object.entries(env).flatMap(([k, v]: [string, string]) => [
      "-E",
      `${k}=${v}`,
    ]);
    const out: Output = await exec("strace", [
      "-f",
      "-c",
      "-e",
      "trace=mbind",
      "-o",
      file,
      ...setEnv,
      exe,
      ...args,
    ]);
    if (out.code !== 0) fail(`strace ${spec.program}`, out);
    const values: Record<string, number> = parseKeyValues(out.stdout);
    const calls: number = straceCalls(readFileSync(file, "utf8"), "mbind");
    const counter: number = values.mbind_calls;
    delete values.mbind_calls;
    delete values.mbind_per_gib;
    if (counter >= 0) values.counter_calls = counter;
    return { mbind_per_gib: calls / values.gib, strace_calls: calls, ...values };
  }
  if (spec.kind === "callgrind") {
    const dir = `${ctx.outDir}/callgrind`;
    mkdirSync(dir, { recursive: true });
    const base = `${spec.id}-${peer.name}.out`;
    for (const f of readdirSync(dir)) if (f.startsWith(base)) rmSync(`${dir}/${f}`);
    const out: Output = await exec("valgrind", [
      "--tool=callgrind",
      `--callgrind-out-file=${dir}/${base}`,
      exe,
      ...args,
    ], { ...env, BENCH_REPS: "1" });
    if (out.code !== 0) fail(`valgrind ${spec.program}`, out);
    let total = 0, parts = 0;
    for (const f of readdirSync(dir).filter((n: string) => n.startsWith(`${base}.`))) {
      const text: string = readFileSync(`${dir}/${f}`, "utf8");
      if (!text.includes("Client Request: bench region")) continue;
      total += Number(/^summary: (\d+)/m.exec(text)?.[1] ?? "NaN");
      parts++;
    }
    if (parts === 0) throw new Error(`no "bench region" part in ${dir}/${base}.*`);
    return { instructions: total / (spec.ops?.(ctx.quick) ?? 1), total_instructions: total };
  }
  pythonRuns ??= pythonAll(spec, ctx);
  const r: Record<string, number> | Error | undefined = (await pythonRuns).get(peer.name);
  if (r instanceof Error) throw r;
  if (r === undefined) throw new Error(`python workload not run for ${peer.name}`);
  return r;
}

/** One python run: [seconds, peak RSS KiB] from /usr/bin/time around env(1) (time not preloaded). */
async function pythonOnce(spec: RowSpec, peer: Peer, ctx: Context): Promise<[number, number]> {
  const setEnv: string[] = Object.entries(peerEnv(peer, spec, ctx)).map((
    [k, v]: [string, string],
  ) => `${k}=${v}`);
  const timeFile = `${ctx.outDir}/time-${peer.name}.txt`;
  const out: Output = await exec("/usr/bin/time", [
    "-o",
    timeFile,
    "-f",
    "%e %M",
    "env",
    ...setEnv,
    ctx.python,
    `${root}/bench/${spec.program}`,
    ...spec.args(ctx.quick),
  ]);
  if (out.code !== 0 || !out.stdout.includes("objects=")) fail(spec.program, out);
  const [e, m] = readFileSync(timeFile, "utf8").trim().split("\n").pop()!.split(" ").map(Number);
  return [e, m];
}

let pythonRuns: Promise<Map<string, Record<string, number> | Error>> | null = null;

/**
 * The python workload for every selected peer, repetition by repetition with the peers
 * interleaved, so a burst of noise from the machine's other users hits them all alike; medians.
 */
async function pythonAll(
  spec: RowSpec,
  ctx: Context,
): Promise<Map<string, Record<string, number> | Error>> {
  const reps: number = ctx.reps ?? (ctx.quick ? 1 : spec.reps);
  const peers: Peer[] = spec.peers.filter(ctx.selected)
    .map((n: string) => allPeers.find((p: Peer) => p.name === n)!)
    .filter((p: Peer) => p.preload === undefined || existsSync(preloadPath(p, ctx)));
  const samples = new Map<string, [number[], number[]]>();
  const results = new Map<string, Record<string, number> | Error>();
  for (let i = 0; i < reps; i++) {
    for (const peer of peers) {
      if (results.has(peer.name)) continue;
      try {
        const [e, m] = await pythonOnce(spec, peer, ctx);
        const s: [number[], number[]] = samples.get(peer.name) ?? [[], []];
        s[0].push(e);
        s[1].push(m);
        samples.set(peer.name, s);
      } catch (err: unknown) {
        results.set(peer.name, err instanceof Error ? err : new Error(String(err)));
      }
    }
  }
  for (const [name, [e, m]] of samples) {
    if (!results.has(name)) {
      results.set(name, { seconds: median(e), peak_rss_kib: median(m), reps });
    }
  }
  return results;
}

const cache = new Map<string, Promise<Record<string, number>>>();

function cacheKey(spec: RowSpec, peer: Peer, ctx: Context): string {
  return JSON.stringify([spec.kind, spec.program, spec.args(ctx.quick), peer.name]);
}

/**
 * A timed row in `ctx.rounds` rounds, each running every peer once in turn: the row's value per
 * peer is the median of its rounds (each itself a median of the process's repetitions), with
 * `round_min` and `round_max` beside it. Fills `cache`, which `measure` then reads.
 */
async function measureRounds(spec: RowSpec, peers: Peer[], ctx: Context): Promise<void> {
  const samples = new Map<string, Record<string, number>[]>();
  const errors = new Map<string, unknown>();
  for (let round = 0; round < ctx.rounds; round++) {
    for (const peer of peers) {
      if (errors.has(peer.name) || cache.has(cacheKey(spec, peer, ctx))) continue;
      try {
        const values: Record<string, number> = await measureOnce(spec, peer, ctx);
        samples.set(peer.name, [...(samples.get(peer.name) ?? []), values]);
      } catch (e: unknown) {
        errors.set(peer.name, e);
      }
    }
  }
  for (const peer of peers) {
    const key: string = cacheKey(spec, peer, ctx);
    if (cache.has(key)) continue;
    const runs: Record<string, number>[] = samples.get(peer.name) ?? [];
    if (errors.has(peer.name) || runs.length === 0) {
      const failure: Promise<Record<string, number>> = Promise.reject(errors.get(peer.name));
      failure.catch(() => {}); // read (and reported) by measure
      cache.set(key, failure);
      continue;
    }
    const headline: number[] = runs.map((r: Record<string, number>) => r[spec.key]);
    cache.set(
      key,
      Promise.resolve({
        ...runs[runs.length - 1],
        [spec.key]: median(headline),
        round_min: Math.min(...headline),
        round_max: Math.max(...headline),
        rounds: runs.length,
      }),
    );
  }
}

async function measure(spec: RowSpec, peer: Peer, ctx: Context): Promise<Cell> {
  const key: string = cacheKey(spec, peer, ctx);
  if (!cache.has(key)) cache.set(key, measureOnce(spec, peer, ctx));
  try {
    const values: Record<string, number> = { ...(await cache.get(key)!) };
    const value: number | undefined = values[spec.key];
    delete values[spec.key];
    if (value === undefined || !Number.isFinite(value)) {
      return { peer: peer.name, value: null, ratio: null, extra: values, error: `no ${spec.key}` };
    }
    return { peer: peer.name, value, ratio: null, extra: values };
  } catch (e: unknown) {
    const error: string = e instanceof Error ? e.message : String(e);
    return { peer: peer.name, value: null, ratio: null, extra: {}, error };
  }
}

/**
 * Hook for the Deno FFI rows (hmalloc+hfree at 64 B / 4 KiB / 1 MiB vs new ArrayBuffer): runs
 * `deno bench --json bench/ffi_bench.ts` when that file exists; one row per bench group, one cell
 * per bench (average ns), ratios vs the group's baseline bench.
 */
async function ffiRows(): Promise<RowResult[]> {
  const file = `${root}/bench/ffi_bench.ts`;
  if (!existsSync(file)) {
    console.error("bench: bench/ffi_bench.ts not found, Deno FFI rows skipped (hook: ffiRows)");
    return [];
  }
  const out: Output = await exec(Deno.execPath(), ["bench", "-A", "--json", file]);
  interface Bench {
    group?: string | null;
    name: string;
    baseline: boolean;
    results: { ok?: { avg: number } }[];
  }
  let benches: Bench[];
  try {
    benches = (JSON.parse(out.stdout) as { benches: Bench[] }).benches;
  } catch {
    return [{
      id: "ffi",
      title: "Deno FFI (bench/ffi_bench.ts)",
      unit: "ns",
      reference: "none",
      cells: [{ peer: "deno bench", value: null, ratio: null, extra: {}, error: out.stderr }],
    }];
  }
  const groups = new Map<string, Bench[]>();
  for (const b of benches) {
    groups.set(b.group ?? "ffi", [...(groups.get(b.group ?? "ffi") ?? []), b]);
  }
  return [...groups.entries()].map(([group, bs]: [string, Bench[]]): RowResult => {
    // "hmalloc(64 B) + hfree" → "hmalloc + hfree": the same column in every group.
    const label = (name: string): string =>
      name.replace(`(${group})`, "").replace(`, ${group})`, ")").trim();
    const baseline: Bench | undefined = bs.find((b: Bench) => b.baseline);
    const targets: Record<string, string> = { "64 B": "hmalloc ≤ 1.0", "1 MiB": "hmalloc ≤ 0.02" };
    return withRatios({
      id: `ffi-${group.replace(/[^A-Za-z0-9]+/g, "-")}`,
      title: `Deno FFI, ${group}`,
      unit: "ns",
      reference: baseline === undefined ? "none" : label(baseline.name),
      target: targets[group],
      cells: bs.map((b: Bench): Cell => {
        const batch: number = ffiSizes.find((f: FfiSize) => f.label === group)?.batch ?? 1;
        const total: number | undefined = b.results[0]?.ok?.avg;
        const avg: number | undefined = total === undefined ? undefined : total / batch;
        return avg === undefined
          ? { peer: label(b.name), value: null, ratio: null, extra: {}, error: "bench failed" }
          : { peer: label(b.name), value: avg, ratio: null, extra: {} };
      }),
    }, []);
  });
}

async function compile(outDir: string, ourLibDir: string, withHmalloc: boolean): Promise<void> {
  const jobs: Promise<void>[] = [];
  for (const p of programs) {
    for (const build of withHmalloc ? ["malloc", "hmalloc"] : ["malloc"]) {
      const args: string[] = ["-O2", "-Wall", "-pthread", "-I", includeDir, `${root}/bench/${p}.c`];
      if (build === "hmalloc") {
        args.push("-DBENCH_HMALLOC", "-L", ourLibDir, "-lhmalloc", `-Wl,-rpath,${ourLibDir}`);
      }
      args.push("-lm", "-o", `${outDir}/${p}-${build}`);
      jobs.push(
        exec("gcc", args).then((o: Output) => {
          if (o.code !== 0) fail(`gcc ${p}.c (${build})`, o);
        }),
      );
    }
  }
  await Promise.all(jobs);
}

/** The run; `daxDir` is an empty directory for memtier-2t's FS_DAX file, removed by the caller. */
async function main(daxDir: string): Promise<number> {
  const { values } = parseOptions("bench", {
    options: {
      quick: { type: "boolean", default: false },
      instructions: { type: "boolean", default: false },
      rows: { type: "string" },
      peers: { type: "string" },
      reps: { type: "string" },
      rounds: { type: "string" },
      out: { type: "string", default: `${root}/bench/out` },
      "no-build": { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) {
    console.log(
      readFileSync(new URL(import.meta.url), "utf8").split(" * usage:")[1].split("\n *\n")[0],
    );
    return 0;
  }
  const reps: number | null = values.reps === undefined ? null : Number(values.reps);
  if (reps !== null && !(Number.isInteger(reps) && reps >= 1 && reps <= 64)) {
    throw new RangeError(`--reps must be an integer 1..64, got '${values.reps}'`);
  }
  const quick: boolean = values.quick;
  const rounds: number = values.rounds === undefined ? (quick ? 1 : 3) : Number(values.rounds);
  if (!(Number.isInteger(rounds) && rounds >= 1 && rounds <= 64)) {
    throw new RangeError(`--rounds must be an integer 1..64, got '${values.rounds}'`);
  }
  const outDir: string = values.out;
  mkdirSync(outDir, { recursive: true });
  if (!values["no-build"]) {
    const b: Output = await exec("bash", [`${root}/scripts/build.sh`], { OPTIMIZE: "fast" });
    if (b.code !== 0) console.error(`bench: build failed, using what is there:\n${b.stderr}`);
  }
  const buildWarning: string | null = await snapshotLibraries(outDir);
  const ourLibDir = `${outDir}/lib`;
  await compile(outDir, ourLibDir, existsSync(`${ourLibDir}/libhmalloc.so`));
  const py: Output = await exec("python3", ["-c", "import sys; print(sys.executable)"]);
  const wantRows: string[] | null = values.rows?.split(",") ?? null;
  const wantPeers: string[] | null = values.peers?.split(",") ?? null;
  const ctx: Context = {
    quick,
    reps,
    rounds,
    outDir,
    python: py.stdout.trim() || "python3",
    libDir: ourLibDir,
    daxDir,
    selected: (peer: string) => wantPeers === null || wantPeers.includes(peer),
  };
  const specs: RowSpec[] = [...rowSpecs, ...(values.instructions ? instructionSpecs : [])]
    .filter((s: RowSpec) => wantRows === null || wantRows.some((w: string) => s.id.startsWith(w)));
  const external: string[] = allPeers.filter((p: Peer) => p.external).map((p: Peer) => p.name);
  const rows: RowResult[] = [];
  const available = (name: string): boolean => {
    const peer: Peer | undefined = allPeers.find((p: Peer) => p.name === name);
    return peer !== undefined && (wantPeers === null || wantPeers.includes(name)) &&
      (peer.preload === undefined || existsSync(preloadPath(peer, ctx)));
  };
  for (const spec of specs) {
    const cells: Cell[] = [];
    if (spec.kind === "time") {
      const runnable: Peer[] = spec.peers.filter(available).map((n: string) =>
        allPeers.find((p: Peer) => p.name === n)!
      );
      await measureRounds(spec, runnable, ctx);
    }
    for (const name of spec.peers) {
      if (wantPeers !== null && !wantPeers.includes(name)) continue;
      const peer: Peer = allPeers.find((p: Peer) => p.name === name)!;
      if (peer.preload !== undefined && !existsSync(preloadPath(peer, ctx))) {
        cells.push({
          peer: name,
          value: null,
          ratio: null,
          extra: {},
          error: `no ${preloadPath(peer, ctx)}`,
        });
        continue;
      }
      const cell: Cell = await measure(spec, peer, ctx);
      console.error(
        `bench: ${spec.id} ${name}: ${cell.value ?? `FAILED (${cell.error})`} ${spec.unit}`,
      );
      cells.push(cell);
    }
    const { id, title, unit, reference, target } = spec;
    rows.push(
      withRatios(
        { id, title, unit, reference, target, tierTarget: tierTarget(spec), cells },
        external,
      ),
    );
  }
  if (
    wantRows === null || wantRows.some((w: string) => "ffi".startsWith(w) || w.startsWith("ffi"))
  ) {
    rows.push(...await ffiRows());
  }

  const result: RunResult = {
    date: new Date().toISOString(),
    mode: quick ? "quick" : "full",
    host: {
      cpus: navigator.hardwareConcurrency,
      kernel: Deno.osRelease(),
      load: Deno.loadavg().map((x: number) => x.toFixed(2)).join(" "),
    },
    buildWarning,
    rows,
  };
  const table: string = formatTables(rows) + (buildWarning ? `\n\nWARNING: ${buildWarning}` : "");
  console.log(table);
  const subtitle = `${result.date.slice(0, 16)} ${result.mode} run, ${result.host.cpus} CPUs, ` +
    `kernel ${result.host.kernel}, load ${result.host.load}`;
  await Deno.writeTextFile(`${outDir}/results.json`, JSON.stringify(result, null, 2) + "\n");
  await Deno.writeTextFile(`${outDir}/table.txt`, table + "\n");
  await Deno.writeTextFile(`${outDir}/bench.svg`, renderSvg(rows, subtitle));
  const failed: number =
    rows.flatMap((r: RowResult) => r.cells).filter((c: Cell) => c.value === null)
      .length;
  console.error(
    `bench: wrote ${outDir}/results.json, table.txt, bench.svg; ${failed} failed cells`,
  );
  return failed === 0 ? 0 : 1;
}

if (import.meta.main) {
  const daxDir: string = mkdtempSync(join(tmpdir(), "tiermem-bench-dax-"));
  let code = 1;
  try {
    code = await main(daxDir);
  } finally {
    rmSync(daxDir, { recursive: true, force: true });
  }
  Deno.exit(code);
}
