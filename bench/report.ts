/**
 * Results of one benchmark run and their two renderings: a plain-text table (absolute numbers,
 * then ratios to each row's reference, then two tiers vs one where a row ran both) and an SVG chart of the ratios (grouped horizontal bars on
 * a log₂ axis, no dependencies: the SVG is written as text).
 *
 * @example
 * ```ts
 * import { formatTables, renderSvg, withRatios } from "./report.ts";
 * const row = withRatios({
 *   id: "mixed-1t", title: "mixed 8 B-32 KiB, 1 thread", unit: "ns/op", reference: "best",
 *   cells: [{ peer: "glibc", value: 40, ratio: null, extra: {} },
 *           { peer: "hmalloc", value: 20, ratio: null, extra: {} }],
 * }, ["glibc"]);
 * console.log(formatTables([row]));
 * await Deno.writeTextFile("/tmp/bench.svg", renderSvg([row], "example"));
 * ```
 */

/** One allocator's number in one row. */
export interface Cell {
  /** Peer label: glibc, jemalloc, mimalloc, tcmalloc, hmalloc, memtier, memtier-2t, memkind, or a
   * bench name. */
  peer: string;
  /** The headline number (lower is better), null when the run failed or does not apply. */
  value: number | null;
  /** value / the row's reference value; null when either is missing or the reference is 0. */
  ratio: number | null;
  /** Every other `key=value` the program printed (or the runner measured). */
  extra: Record<string, number>;
  /** Why value is null. */
  error?: string;
}

/** One measured quantity across peers. */
export interface RowResult {
  /** Stable id (`mixed-1t`); `--rows` filters on it. */
  id: string;
  /** What is measured, for humans. */
  title: string;
  /** Unit of `value` (ns/op, KiB, ...). */
  unit: string;
  /**
   * What ratios divide by: `best` (the lowest value among the external peers of the row), a peer
   * label, or `none` (absolute numbers only).
   */
  reference: string;
  /** The issue's target for our peers, as text (`≤ 1.0`). */
  target?: string;
  /** The issue's target for memtier-2t / memtier (two tiers vs one), as text (`≤ 1.10`). */
  tierTarget?: string;
  /** memtier-2t / memtier, filled by withRatios when the row has both cells (null: one failed). */
  tierRatio?: number | null;
  cells: Cell[];
}

/** Our library with two tiers (DRAM + FS_DAX) and with one: the pair `tierRatio` compares. */
export const tierPair: readonly [string, string] = ["memtier-2t", "memtier"];

/** The whole run, as written to results.json. */
export interface RunResult {
  date: string;
  mode: "full" | "quick";
  host: { cpus: number; kernel: string; load: string };
  /** Set when our libraries look like a debug build. */
  buildWarning: string | null;
  rows: RowResult[];
}

/** Fills each cell's ratio from the row's reference; `external` names the peers `best` ranges over. */
export function withRatios(row: RowResult, external: readonly string[]): RowResult {
  let ref: number | null = null;
  if (row.reference === "best") {
    const values: number[] = row.cells
      .filter((c: Cell) => external.includes(c.peer) && c.value !== null)
      .map((c: Cell) => c.value as number);
    ref = values.length > 0 ? Math.min(...values) : null;
  } else if (row.reference !== "none") {
    ref = row.cells.find((c: Cell) => c.peer === row.reference)?.value ?? null;
  }
  const cells: Cell[] = row.cells.map((c: Cell) => ({
    ...c,
    ratio: ref !== null && ref > 0 && c.value !== null ? c.value / ref : null,
  }));
  const [two, one] = tierPair.map((p: string) => row.cells.find((c: Cell) => c.peer === p));
  if (two === undefined || one === undefined) return { ...row, cells };
  const tierRatio: number | null = two.value !== null && one.value !== null && one.value > 0
    ? two.value / one.value
    : null;
  return { ...row, cells, tierRatio };
}

/** A number with about 3 significant digits, without exponent notation. */
export function formatNumber(x: number): string {
  const a: number = Math.abs(x);
  if (a >= 1000) return Math.round(x).toString();
  if (a >= 100) return x.toFixed(1);
  if (a >= 10) return x.toFixed(2);
  return x.toFixed(3);
}

function pad(s: string, width: number, right: boolean): string {
  return right ? s.padStart(width) : s.padEnd(width);
}

/** Columns padded to their widest cell (numbers right-aligned from the third column on). */
function renderTable(header: string[], body: string[][]): string {
  const widths: number[] = header.map((h: string, i: number) =>
    Math.max(h.length, ...body.map((b: string[]) => (b[i] ?? "").length))
  );
  const line = (cells: string[]): string =>
    cells.map((s: string, i: number) => pad(s, widths[i], i >= 2)).join("  ").trimEnd();
  return [line(header), line(widths.map((w: number) => "-".repeat(w))), ...body.map(line)].join(
    "\n",
  );
}

/** The rows that ran both tierPair peers: their numbers, memtier-2t / memtier and the target. */
function formatTiers(rows: RowResult[]): string {
  const value = (r: RowResult, peer: string): string => {
    const c: Cell | undefined = r.cells.find((x: Cell) => x.peer === peer);
    return c?.value != null ? formatNumber(c.value) : "FAIL";
  };
  const body: string[][] = rows.filter((r: RowResult) => r.tierRatio !== undefined).map((
    r: RowResult,
  ) => [
    r.title,
    r.unit,
    value(r, tierPair[1]),
    value(r, tierPair[0]),
    r.tierRatio != null ? r.tierRatio.toFixed(2) : "-",
    r.tierTarget ?? "",
  ]);
  if (body.length === 0) return "";
  const ratio = `${tierPair[0]} / ${tierPair[1]}`;
  return renderTable(["row", "unit", tierPair[1], tierPair[0], ratio, "target"], body);
}

function formatSection(rows: RowResult[], columns: string[]): string {
  const head: string[] = ["row", "unit", ...columns];
  const absolute: string[][] = rows.map((r: RowResult) => [
    r.title,
    r.unit,
    ...columns.map((p: string) => {
      const c: Cell | undefined = r.cells.find((x: Cell) => x.peer === p);
      if (c === undefined) return "";
      return c.value === null ? "FAIL" : formatNumber(c.value);
    }),
  ]);
  const ratios: string[][] = rows.map((r: RowResult) => [
    r.title,
    r.reference === "best" ? "fastest peer" : r.reference,
    ...columns.map((p: string) => {
      const c: Cell | undefined = r.cells.find((x: Cell) => x.peer === p);
      return c?.ratio != null ? c.ratio.toFixed(2) : c === undefined ? "" : "-";
    }),
    r.target ?? "",
  ]);
  const tiers: string = formatTiers(rows);
  return [
    renderTable(head, absolute),
    "",
    renderTable([...head.slice(0, 1), "ratio vs", ...columns, "target"], ratios),
    ...(tiers === "" ? [] : ["", tiers]),
  ].join("\n");
}

/** Plain-text tables; rows with different peer sets (the Deno FFI rows) get their own section. */
export function formatTables(rows: RowResult[]): string {
  const sections = new Map<string, { columns: string[]; rows: RowResult[] }>();
  for (const r of rows) {
    const columns: string[] = r.cells.map((c: Cell) => c.peer);
    const group: string = r.id.startsWith("ffi-") ? "ffi" : "main";
    const s = sections.get(group) ?? { columns: [], rows: [] };
    for (const p of columns) if (!s.columns.includes(p)) s.columns.push(p);
    s.rows.push(r);
    sections.set(group, s);
  }
  return [...sections.values()].map((s) => formatSection(s.rows, s.columns)).join("\n\n");
}

const palette: Record<string, string> = {
  glibc: "#8c8c8c",
  jemalloc: "#1f77b4",
  mimalloc: "#2ca02c",
  tcmalloc: "#ff7f0e",
  hmalloc: "#d62728",
  memtier: "#9467bd",
  "memtier-2t": "#c5b0d5",
  memkind: "#8c564b",
};
const spare: string[] = [
  "#393b79",
  "#17becf",
  "#bcbd22",
  "#e377c2",
  "#637939",
  "#e7969c",
  "#843c39",
];

function escapeXml(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

/** The chart: one group of bars per row that has ratios, one bar per peer, log₂ ratio axis. */
export function renderSvg(rows: RowResult[], subtitle: string): string {
  const charted: RowResult[] = rows.filter((r: RowResult) =>
    r.cells.some((c: Cell) => c.ratio !== null)
  );
  const peers: string[] = [];
  for (const r of charted) for (const c of r.cells) if (!peers.includes(c.peer)) peers.push(c.peer);
  const color = (p: string): string =>
    palette[p] ?? spare[peers.filter((x: string) => !(x in palette)).indexOf(p) % spare.length];
  const ratios: number[] = charted.flatMap((r: RowResult) =>
    r.cells.filter((c: Cell) => c.ratio !== null && c.ratio > 0).map((c: Cell) => c.ratio as number)
  );
  const lo: number = Math.pow(2, Math.floor(Math.log2(Math.min(0.25, ...ratios))));
  const hi: number = Math.pow(2, Math.ceil(Math.log2(Math.max(4, ...ratios))));
  const labelW = 300, plotW = 560, barH = 9, groupGap = 14, top = 60, lineH = 18;
  const width: number = labelW + plotW + 60;
  // Legend items flow left to right and wrap at the chart's width.
  const legend: { peer: string; x: number; line: number }[] = [];
  let lx = 10, line = 0;
  for (const p of peers) {
    const w: number = 24 + p.length * 7;
    if (lx + w > width - 10 && lx > 10) [lx, line] = [10, line + 1];
    legend.push({ peer: p, x: lx, line });
    lx += w;
  }
  const x = (r: number): number =>
    labelW + (Math.log2(r) - Math.log2(lo)) / (Math.log2(hi) - Math.log2(lo)) * plotW;
  const heights: number[] = charted.map((r: RowResult) => r.cells.length * barH + groupGap);
  const plotH: number = heights.reduce((a: number, b: number) => a + b, 0);
  const height: number = top + plotH + 30 + (line + 1) * lineH;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" ` +
    `viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="10" y="20" font-size="14" font-weight="bold">tiermem bench: ratio to each row's ` +
    `reference (lower is better; 1.0 = reference)</text>`,
    `<text x="10" y="38" fill="#555">${escapeXml(subtitle)}</text>`,
  ];
  for (let t = lo; t <= hi; t *= 2) {
    const tx: number = x(t);
    out.push(
      `<line x1="${tx.toFixed(1)}" y1="${top - 6}" x2="${tx.toFixed(1)}" y2="${top + plotH}" ` +
        `stroke="${t === 1 ? "#000" : "#ddd"}" stroke-width="${t === 1 ? 1.5 : 1}"/>`,
      `<text x="${tx.toFixed(1)}" y="${top + plotH + 14}" text-anchor="middle">${
        t >= 1 ? t : `1/${1 / t}`
      }</text>`,
    );
  }
  let y: number = top;
  for (const r of charted) {
    const ref: string = r.reference === "best" ? "fastest peer" : r.reference;
    out.push(
      `<text x="${labelW - 8}" y="${y + 9}" text-anchor="end">${escapeXml(r.title)}</text>`,
      `<text x="${labelW - 8}" y="${y + 21}" text-anchor="end" fill="#777">vs ${
        escapeXml(ref)
      }</text>`,
    );
    for (const c of r.cells) {
      if (c.ratio !== null && c.ratio > 0) {
        const w: number = Math.max(1, x(Math.min(c.ratio, hi)) - labelW);
        out.push(
          `<rect x="${labelW}" y="${y}" width="${w.toFixed(1)}" height="${barH - 1}" ` +
            `fill="${color(c.peer)}"><title>${escapeXml(c.peer)}: ${
              c.ratio.toFixed(3)
            }</title></rect>`,
          `<text x="${(labelW + w + 3).toFixed(1)}" y="${y + barH - 1}" font-size="8">${
            c.ratio.toFixed(2)
          }</text>`,
        );
      }
      y += barH;
    }
    y += groupGap;
  }
  for (const item of legend) {
    const ly: number = top + plotH + 34 + item.line * lineH;
    out.push(
      `<rect x="${item.x}" y="${ly - 9}" width="10" height="10" fill="${color(item.peer)}"/>`,
      `<text x="${item.x + 14}" y="${ly}">${escapeXml(item.peer)}</text>`,
    );
  }
  out.push(`</svg>`);
  return out.join("\n") + "\n";
}
