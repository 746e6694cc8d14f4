/**
 * An in-memory DAMON sysfs tree for host tests (tiering decisions, kdamond ownership, cleanup):
 * it reacts to writes the way 6.12's `/sys/kernel/mm/damon/admin` does for the files tiermem uses
 * — `nr_kdamonds` replaces every kdamond, `nr_contexts` creates/removes contexts, `state` turns a
 * kdamond on/off and `update_schemes_tried_regions` fills the scheme's `tried_regions` from
 * {@link FakeDamon.regions}; `update_schemes_stats` and `commit` are accepted while it runs (a
 * test sets the `stats/` files itself). Every write is logged.
 *
 * @example
 * ```ts
 * import { FakeDamon } from "./fake_damon.ts";
 * const fake = new FakeDamon();
 * fake.write("kdamonds/nr_kdamonds", "1");
 * fake.read("kdamonds/0/state"); // "off"
 * ```
 */

import type { DamonFs, DamonRegion } from "../../lib/damon.ts";

/** The fake tree. */
export class FakeDamon implements DamonFs {
  /** Files by path. */
  readonly files: Map<string, string> = new Map([["kdamonds/nr_kdamonds", "0"]]);
  /** Every write, in order, as `path=value`. */
  readonly writes: string[] = [];
  /** What `update_schemes_tried_regions` reports. */
  regions: DamonRegion[] = [];

  read(path: string): string {
    const v = this.files.get(path);
    if (v === undefined) throw new Deno.errors.NotFound(path);
    return v;
  }

  exists(path: string): boolean {
    if (this.files.has(path)) return true;
    for (const k of this.files.keys()) if (k.startsWith(`${path}/`)) return true;
    return false;
  }

  list(path: string): string[] {
    const names = new Set<string>();
    for (const k of this.files.keys()) {
      if (k.startsWith(`${path}/`)) names.add(k.slice(path.length + 1).split("/")[0]);
    }
    return [...names];
  }

  write(path: string, value: string): void {
    this.writes.push(`${path}=${value}`);
    if (path === "kdamonds/nr_kdamonds") {
      for (let i = 0; this.exists(`kdamonds/${i}`); i++) {
        if (this.files.get(`kdamonds/${i}/state`) === "on") {
          throw new Deno.errors.Busy("a kdamond is running");
        }
      }
      this.removeUnder("kdamonds/");
      this.files.set(path, value);
      for (let i = 0; i < Number(value); i++) {
        this.files.set(`kdamonds/${i}/state`, "off");
        this.files.set(`kdamonds/${i}/pid`, "-1");
        this.files.set(`kdamonds/${i}/contexts/nr_contexts`, "0");
      }
    } else if (/^kdamonds\/\d+\/contexts\/nr_contexts$/.test(path)) {
      const dir = path.replace(/nr_contexts$/, "");
      this.removeUnder(dir);
      this.files.set(path, value);
      for (let i = 0; i < Number(value); i++) this.files.set(`${dir}${i}/operations`, "vaddr");
    } else if (/^kdamonds\/\d+\/state$/.test(path)) {
      const dir = path.replace(/\/state$/, "");
      const on = this.files.get(path) === "on";
      if (value === "on") {
        if (on) throw new Deno.errors.Busy("already on");
        this.files.set(path, "on");
      } else if (value === "off") {
        if (!on) throw new TypeError("EINVAL: not running");
        this.files.set(path, "off");
      } else if (value === "update_schemes_tried_regions") {
        if (!on) throw new TypeError("EINVAL: not running");
        const tried = `${dir}/contexts/0/schemes/0/tried_regions`;
        this.removeUnder(`${tried}/`);
        this.files.set(`${tried}/total_bytes`, "0");
        this.regions.forEach((r, i) => {
          this.files.set(`${tried}/${i}/start`, String(r.start));
          this.files.set(`${tried}/${i}/end`, String(r.end));
          this.files.set(`${tried}/${i}/nr_accesses`, String(r.nrAccesses));
          this.files.set(`${tried}/${i}/age`, String(r.age));
        });
      } else if (value === "update_schemes_stats" || value === "commit") {
        if (!on) throw new TypeError("EINVAL: not running");
      } else throw new TypeError(`EINVAL: state ${value}`);
    } else {
      this.files.set(path, value);
    }
  }

  private removeUnder(prefix: string): void {
    for (const k of [...this.files.keys()]) {
      if (k.startsWith(prefix) && k !== "kdamonds/nr_kdamonds") this.files.delete(k);
    }
  }
}
