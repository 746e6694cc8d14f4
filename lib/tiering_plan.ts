/**
 * The tiering decision, as a pure function: given DAMON's regions of one process (access
 * frequency, age) with how many of each region's pages are on the fast and the slow nodes, and the
 * program's fast-node budget, which pages to promote and which to demote this interval.
 *
 * The rules, in order:
 * 1. **Budget first.** When the program already has more pages on the fast nodes than the budget,
 *    demote until it fits: cold regions first (no access, oldest first), then the least accessed.
 *    The budget is a hard limit; hysteresis never keeps it exceeded.
 * 2. **Promote the hottest.** A region is hot when it was accessed at all (`nrAccesses >= 1`),
 *    at least `hotMinAccesses`, and at least `hotShare` of the hottest region's `nrAccesses`.
 *    Hot regions, hottest (then oldest, i.e. steadiest) first, have their slow pages promoted
 *    while the budget has room. Free budget is never filled with anything else: a region only
 *    partly hot (DAMON's `nr_accesses` is then a fraction of the hot one's) or touched once at
 *    set-up stays on the slow nodes, since promoting it would spend fast memory on cold pages.
 * 3. **Make room only from the cold.** When the budget is full, room for a hot region is made by
 *    demoting regions that have been unaccessed for `coldMinAge` aggregation intervals — never a
 *    warm or hot one. That is the hysteresis: a page promoted because it was hot stays until it has
 *    been cold for a while, and a region that merely cooled down a little is left where it is, so
 *    nothing ping-pongs between tiers.
 * 4. **Idle data leaves.** With rate left over, regions unaccessed for `idleMinAge` aggregation
 *    intervals are demoted even when the budget is not full (HMSDK's `migrate_cold` does the same
 *    after 30 s): DRAM is kept for what is hot, and the budget has room when a new hot set appears.
 * 5. **Rate.** Promotions and demotions together never exceed `ratePages` this interval;
 *    demotions that make room are counted before the promotion they allow.
 *
 * @module
 */

/** One region as the planner sees it. */
export interface PlanRegion {
  /** DAMON `nr_accesses` (samples accessed in the last aggregation interval). */
  nrAccesses: number;
  /** DAMON `age` (aggregation intervals with this access frequency). */
  age: number;
  /** Present pages of the region on the fast nodes. */
  fastPages: number;
  /** Present pages of the region on the slow nodes (promotable). */
  slowPages: number;
}

/** Limits of one planning step. */
export interface PlanLimits {
  /** The program's fast-node budget, pages. */
  budgetPages: number;
  /** The program's pages on the fast nodes now (all its memory, monitored or not). */
  fastUsedPages: number;
  /** Most pages moved (both ways) this interval. */
  ratePages: number;
  /** A region is hot from this `nr_accesses` on (1 at the least: never an unaccessed region). */
  hotMinAccesses: number;
  /**
   * A region is hot only with at least this share (0-1) of the hottest region's `nr_accesses`
   * (default 0.5), so lukewarm regions do not fill the free budget.
   */
  hotShare?: number;
  /** A region is cold (demotable to make room) after this many aggregation intervals unaccessed. */
  coldMinAge: number;
  /** A region is idle (demoted anyway) after this many aggregation intervals unaccessed. */
  idleMinAge: number;
}

/** What to move: per region (same order as the input), pages to promote and to demote. */
export interface Plan {
  /** Pages to promote from each region's slow pages. */
  promote: number[];
  /** Pages to demote from each region's fast pages. */
  demote: number[];
}

/** Default {@link PlanLimits.hotShare}. */
export const DEFAULT_HOT_SHARE = 0.5;

/** Default {@link PlanLimits.coldMinAge}: 0.5 s at DAMON's 100 ms aggregation. */
export const DEFAULT_COLD_MIN_AGE = 5;

/**
 * Default {@link PlanLimits.idleMinAge}: 5 s at DAMON's 100 ms aggregation. A window that moved
 * must be off the fast nodes within 10 s even when the budget could hold it (issue 14): with 10 s
 * here, detection (one tiering interval, longer on a slow host) came on top and the old window
 * left after 11-12 s.
 */
export const DEFAULT_IDLE_MIN_AGE = 50;

/**
 * The smallest `nr_accesses` that counts as hot among `regions` (rule 2 of the module doc).
 *
 * @example
 * ```ts
 * import { hotThreshold } from "./tiering_plan.ts";
 * const t = hotThreshold([{ nrAccesses: 20, age: 1, fastPages: 0, slowPages: 1 }], {
 *   hotMinAccesses: 1,
 * });
 * console.log(t); // 10
 * ```
 */
export function hotThreshold(
  regions: readonly PlanRegion[],
  limits: Pick<PlanLimits, "hotMinAccesses" | "hotShare">,
): number {
  const hottest = regions.reduce((m, r) => Math.max(m, r.nrAccesses), 0);
  const share = limits.hotShare ?? DEFAULT_HOT_SHARE;
  return Math.max(1, limits.hotMinAccesses, Math.ceil(share * hottest));
}

/**
 * Plans one interval's moves (see the module doc for the rules).
 *
 * @example
 * ```ts
 * import { planMoves } from "./tiering_plan.ts";
 * const plan = planMoves(
 *   [
 *     { nrAccesses: 20, age: 3, fastPages: 0, slowPages: 100 }, // hot, all slow
 *     { nrAccesses: 0, age: 50, fastPages: 80, slowPages: 0 }, // long cold, on fast
 *   ],
 *   {
 *     budgetPages: 120,
 *     fastUsedPages: 80,
 *     ratePages: 1000,
 *     hotMinAccesses: 1,
 *     coldMinAge: 10,
 *     idleMinAge: 100,
 *   },
 * );
 * console.log(plan); // { promote: [ 100, 0 ], demote: [ 0, 60 ] }
 * ```
 */
export function planMoves(regions: readonly PlanRegion[], limits: PlanLimits): Plan {
  const promote = regions.map(() => 0);
  const demote = regions.map(() => 0);
  let used = limits.fastUsedPages;
  let rate = Math.max(0, limits.ratePages);
  const index = regions.map((_, i) => i);
  const hotFrom = hotThreshold(regions, limits);
  const isHot = (r: PlanRegion): boolean => r.nrAccesses >= hotFrom;
  const isCold = (r: PlanRegion): boolean => r.nrAccesses === 0 && r.age >= limits.coldMinAge;
  // Coldest first: unaccessed for longest, then least accessed.
  const coldOrder = index
    .filter((i) => isCold(regions[i]))
    .sort((a, b) => regions[b].age - regions[a].age);
  const demoteFrom = (order: readonly number[], pages: number): number => {
    let freed = 0;
    for (const i of order) {
      if (freed >= pages || rate === 0) break;
      const take = Math.min(regions[i].fastPages - demote[i], pages - freed, rate);
      if (take <= 0) continue;
      demote[i] += take;
      freed += take;
      rate -= take;
    }
    used -= freed;
    return freed;
  };

  // 1. Over budget: cold first, then the least accessed of everything else on fast.
  if (used > limits.budgetPages) {
    demoteFrom(coldOrder, used - limits.budgetPages);
    if (used > limits.budgetPages) {
      const leastAccessed = index
        .filter((i) => !isCold(regions[i]) && regions[i].fastPages > 0)
        .sort((a, b) => regions[a].nrAccesses - regions[b].nrAccesses);
      demoteFrom(leastAccessed, used - limits.budgetPages);
    }
  }

  // 2./3. Hottest first; room from the cold only.
  const hotOrder = index
    .filter((i) => isHot(regions[i]) && regions[i].slowPages > 0)
    .sort((a, b) =>
      regions[b].nrAccesses - regions[a].nrAccesses || regions[b].age - regions[a].age
    );
  for (const i of hotOrder) {
    if (rate === 0) break;
    let want = Math.min(regions[i].slowPages, rate);
    const room = limits.budgetPages - used;
    if (room < want) {
      // Demoting k pages leaves rate for (rate - k) promotions: free at most half the rate.
      const shortfall = Math.min(want - Math.max(0, room), Math.floor(rate / 2));
      demoteFrom(coldOrder, shortfall);
      want = Math.min(want, limits.budgetPages - used, rate);
    }
    if (want <= 0) continue;
    promote[i] += want;
    used += want;
    rate -= want;
  }

  // 4. Idle data leaves the fast nodes.
  const idleOrder = coldOrder.filter((i) => regions[i].age >= limits.idleMinAge);
  demoteFrom(idleOrder, Number.MAX_SAFE_INTEGER);
  return { promote, demote };
}
