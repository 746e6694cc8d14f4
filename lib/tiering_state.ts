/**
 * Claim records of running tiering sessions, so that `tier --cleanup` can undo what a session
 * created after it was killed with SIGKILL (which no handler sees).
 *
 * One JSON file per session, `DIR/tier-OWNERPID.json` (DIR defaults to `/run/tiermem`, a tmpfs
 * that a reboot empties — as it empties DAMON's state). {@link cleanupLeftovers} releases the
 * claims of owners that are no longer alive and removes their records; a live owner's claim is
 * never touched. A kernel-engine session also records its kdamonds (one per node) and the memory
 * cgroup it made; cleanup turns those off and removes the group (moving a program still inside
 * back to its home group first).
 *
 * @module
 */

import { type DamonFs, type KdamondClaim, releaseKdamond } from "./damon.ts";
import {
  type CgroupFs,
  type ProgramCgroup,
  realCgroupFs,
  removeProgramCgroup,
} from "./tiering_cgroup.ts";
import { releaseKdamonds } from "./tiering_kernel.ts";

/** What a session records. */
export interface ClaimRecord {
  /** The tiermem process that owns the claim. */
  owner: number;
  /** The process it tiers. */
  target: number;
  /** The kdamond it claimed (user engine). */
  claim?: KdamondClaim;
  /** The kdamonds it claimed (kernel engine: one per node). */
  claims?: KdamondClaim[];
  /** The memory cgroup it made (kernel engine). */
  cgroup?: ProgramCgroup;
}

/**
 * Writes this process's record (creating DIR).
 *
 * @example
 * ```ts ignore
 * recordClaim("/run/tiermem", { owner: Deno.pid, target: 1234, claim: { index: 0, created: true } });
 * ```
 */
export function recordClaim(dir: string, record: ClaimRecord): void {
  Deno.mkdirSync(dir, { recursive: true, mode: 0o700 });
  Deno.writeTextFileSync(`${dir}/tier-${record.owner}.json`, JSON.stringify(record) + "\n");
}

/**
 * Removes this process's record, if any.
 *
 * @example
 * ```ts ignore
 * removeClaimRecord("/run/tiermem");
 * ```
 */
export function removeClaimRecord(dir: string, owner: number = Deno.pid): void {
  try {
    Deno.removeSync(`${dir}/tier-${owner}.json`);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
}

function ownerAlive(pid: number): boolean {
  try {
    Deno.statSync(`/proc/${pid}`);
    return true;
  } catch {
    return false;
  }
}

/** What {@link cleanupLeftovers} did. */
export interface CleanupResult {
  /** Records of dead owners whose claims were released. */
  released: ClaimRecord[];
  /** Records left alone because their owner still runs. */
  live: ClaimRecord[];
}

/**
 * Releases the claims of sessions whose owner is gone, and removes their records.
 *
 * @example
 * ```ts ignore
 * import { sysfsDamonFs } from "./damon.ts";
 * const { released } = cleanupLeftovers(sysfsDamonFs(), "/run/tiermem");
 * ```
 */
export function cleanupLeftovers(
  fs: DamonFs,
  dir: string,
  isAlive: (pid: number) => boolean = ownerAlive,
  cgroupFs: CgroupFs = realCgroupFs,
): CleanupResult {
  const result: CleanupResult = { released: [], live: [] };
  let names: string[];
  try {
    names = [...Deno.readDirSync(dir)].map((e) => e.name).filter((n) => /^tier-\d+\.json$/.test(n));
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return result;
    throw error;
  }
  for (const name of names.sort()) {
    const record = JSON.parse(Deno.readTextFileSync(`${dir}/${name}`)) as ClaimRecord;
    if (record.owner !== Deno.pid && isAlive(record.owner)) {
      result.live.push(record);
      continue;
    }
    if (record.claim !== undefined) releaseKdamond(fs, record.claim);
    if (record.claims !== undefined) releaseKdamonds(fs, record.claims);
    if (record.cgroup !== undefined) removeProgramCgroup(record.cgroup, cgroupFs);
    Deno.removeSync(`${dir}/${name}`);
    result.released.push(record);
  }
  return result;
}
