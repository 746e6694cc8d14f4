//! Which tier an allocation goes to: STATIC_RATIO and DYNAMIC_THRESHOLD.
//!
//! What: a per-thread `Ledger` of net bytes per tier (allocated minus freed, in the unit the
//! interposer passes for a block — its usable size, the same at malloc and at free) and a
//! read-only `Config` made from a `tier_spec.Spec`. `Ledger.choose` is pure and deterministic.
//!
//!   STATIC_RATIO: the tier whose (net bytes + size) / ratio is smallest — the tier most
//!   behind its share after this allocation (ties: the faster tier). This is fair queueing
//!   over bytes: the greedy choice keeps every tier within one block of its exact share,
//!   |bytes_i - total * ratio_i / sum| <= largest block, whatever the size mix. Once 1 MiB is
//!   allocated in blocks up to 20 KiB, the realised share is within 2 points of the
//!   configured one; a single 1 MiB block needs 50 MiB allocated before it is 2%.
//!   The interposer asks `choose` once per credit a thread spends in the chosen
//!   tier (thread_state.zig: 1/64 of its share of the bytes, 8-64 KiB), which widens the
//!   bound by that credit.
//!
//!   DYNAMIC_THRESHOLD: size >= threshold k goes to tier k+1 (the first tier whose threshold
//!   is above the size). Every `check_interval_allocs` allocations the thread moves each
//!   threshold k (down when tiers 0..k hold too much) by a step that grows while moves keep
//!   their direction and shrinks when they reverse, clamped to [MIN_VAL, MAX_VAL] (the ranges
//!   do not overlap, so the thresholds stay ordered). The drive is the live excess (paid back
//!   over a few windows) plus the last window's excess: steering on the live excess alone
//!   (memkind's way) swings the threshold between its bounds. Within 2% once 4 MiB of
//!   8 B-64 KiB blocks are allocated. A split the size mix cannot give within [MIN_VAL,
//!   MAX_VAL] leaves the threshold at the bound (as in memkind).
//!
//! Why per thread, without atomics: the hot path touches only the thread's own ledger. The
//! global net bytes per tier are the SUM of the ledgers, and a sum of vectors each within
//! its bound of the configured ratio is within the sum of the bounds: N threads stay within
//! N blocks of the exact split. memkind instead decides on global counters that each
//! thread-hash bucket flushes only every 50 KiB, so a small program's split is off by up to
//! 50 KiB per bucket, and every allocation pays an atomic.
//!
//! The case a thread cannot fix alone: frees. A thread that frees blocks other threads
//! allocated (a consumer) holds negative counts it will never balance by allocating. So
//! every `settle_interval_ops` operations or `settle_interval_bytes` (64 KiB) moved, a thread
//! settles (`Ledger.settle`) against one shared `Counts` the interposer keeps (swapped and
//! added atomically then — never on the hot path): a thread that allocated more bytes than it freed
//! in the window absorbs the shared counts (its greedy choice then pays them back); one that
//! freed more hands its own counts over. At thread exit a ledger hands over everything
//! (`drain`). Counts only move, so sum(ledgers) + shared = the global net bytes, exactly.
//!
//! Full tiers: `choose` skips tiers in the `full` mask. STATIC_RATIO then takes the next
//! most-behind tier; DYNAMIC_THRESHOLD the nearest slower tier, then the nearest faster one
//! (`fallback`). Counts follow where blocks really went, so the ratio recovers when room does.
//!
//! Trade-off: thresholds are per thread (each thread steers its own split from INIT_VAL),
//! and a process with many short-lived threads settles through the shared counts more often.
const std = @import("std");
const tier_spec = @import("tier_spec.zig");
const assert = std.debug.assert;

pub const max_tiers = tier_spec.max_tiers;
pub const max_thresholds = tier_spec.max_thresholds;
pub const TierIndex = u8;
/// Bit i set = tier i is full.
pub const TierMask = @Int(.unsigned, max_tiers);
/// DYNAMIC_THRESHOLD: allocations between two looks at the byte ratio.
pub const check_interval_allocs: u32 = 16;
/// DYNAMIC_THRESHOLD: no move while the share is this close to the target (1/1000 units).
pub const trigger_permille: u32 = 10;
/// DYNAMIC_THRESHOLD: a move changes a threshold by threshold >> shift (at least 1 byte);
/// the shift starts at step_shift_init, shrinks (bigger steps) while moves keep the same
/// direction and grows (smaller steps) when they reverse, within [min, max].
pub const step_shift_init: u6 = 3;
pub const step_shift_min: u6 = 1;
pub const step_shift_max: u6 = 10;
/// DYNAMIC_THRESHOLD: the live excess is paid back over this many check windows.
pub const repay_windows: i128 = 4;
/// A ledger settles after this many operations (allocations and frees) or bytes
/// (allocated or freed), whichever comes first.
pub const settle_interval_ops: u32 = 1024;
pub const settle_interval_bytes: u64 = 64 * 1024;

comptime {
    assert(max_tiers <= std.math.maxInt(TierIndex) + 1);
    assert(check_interval_allocs > 0 and settle_interval_ops > 0);
}

/// Net bytes per tier; what moves between ledgers and the shared counts.
pub const Counts = struct {
    net_bytes: [max_tiers]i64 = @splat(0),

    pub fn add(counts: *Counts, other: Counts) void {
        for (&counts.net_bytes, other.net_bytes) |*mine, theirs| mine.* += theirs;
    }

    /// The net bytes of all tiers. Entries from `tier_count` on are always 0 (nothing books
    /// to a tier that does not exist), so the sum runs over the whole fixed array: a loop of
    /// runtime length cost ~20 instructions per call on the two-tier slow path.
    pub fn total(counts: *const Counts, tier_count: usize) i64 {
        for (counts.net_bytes[tier_count..]) |b| assert(b == 0);
        const lanes: @Vector(max_tiers, i64) = counts.net_bytes;
        return @reduce(.Add, lanes);
    }
};

pub const Config = struct {
    policy: tier_spec.Policy,
    tier_count: usize,
    ratios: [max_tiers]u32,
    /// ratio_prefix[k] = ratios[0] + ... + ratios[k]; the last one is the sum.
    ratio_prefix: [max_tiers]u64,
    thresholds: [max_thresholds]tier_spec.Threshold,

    pub fn init(spec: *const tier_spec.Spec) Config {
        var config: Config = .{
            .policy = spec.policy,
            .tier_count = spec.tier_count,
            .ratios = @splat(0),
            .ratio_prefix = @splat(0),
            .thresholds = undefined,
        };
        var sum: u64 = 0;
        for (spec.tiers(), 0..) |tier, i| {
            assert(tier.ratio >= 1);
            config.ratios[i] = tier.ratio;
            sum += tier.ratio;
            config.ratio_prefix[i] = sum;
        }
        const thresholds = spec.thresholds();
        @memcpy(config.thresholds[0..thresholds.len], thresholds);
        assert(config.tier_count >= 1 and config.tier_count <= max_tiers);
        assert(config.policy == .static_ratio or thresholds.len == config.tier_count - 1);
        return config;
    }

    pub fn ratioSum(config: *const Config) u64 {
        return config.ratio_prefix[config.tier_count - 1];
    }
};

const Move = enum(u2) { none, down, up };
const no_choice: TierIndex = std.math.maxInt(TierIndex);

/// One thread's state: its net bytes per tier and, for DYNAMIC_THRESHOLD, its thresholds.
pub const Ledger = struct {
    counts: Counts = .{},
    threshold_bytes: [max_thresholds]u64 = @splat(0),
    step_shift: [max_thresholds]u6 = @splat(step_shift_init),
    last_move: [max_thresholds]Move = @splat(.none),
    allocs_until_check: u32 = check_interval_allocs,
    ops_until_settle: u32 = settle_interval_ops,
    /// Bytes allocated per tier since the last threshold check.
    check_tier_bytes: [max_tiers]u64 = @splat(0),
    settle_alloc_bytes: u64 = 0,
    settle_free_bytes: u64 = 0,

    pub fn init(config: *const Config) Ledger {
        var ledger: Ledger = .{};
        if (config.policy == .dynamic_threshold) {
            for (config.thresholds[0 .. config.tier_count - 1], 0..) |t, k| ledger.threshold_bytes[k] = t.init_bytes;
        }
        return ledger;
    }

    /// The tier for an allocation of `size_bytes`, skipping `full` tiers; null if all are full.
    pub fn choose(ledger: *const Ledger, config: *const Config, size_bytes: u64, full: TierMask) ?TierIndex {
        return switch (config.policy) {
            .static_ratio => ledger.chooseStatic(config, size_bytes, full),
            .dynamic_threshold => fallback(ledger.thresholdTier(config, size_bytes), config.tier_count, full),
        };
    }

    fn chooseStatic(ledger: *const Ledger, config: *const Config, size_bytes: u64, full: TierMask) ?TierIndex {
        return ledger.chooseStatic64(config, size_bytes, full) orelse ledger.chooseStatic128(config, size_bytes, full);
    }

    /// chooseStatic in 64-bit arithmetic, the common case (a few GiB per tier, small ratios):
    /// null (no answer) if a product would overflow, or if no tier has room.
    inline fn chooseStatic64(ledger: *const Ledger, config: *const Config, size_bytes: u64, full: TierMask) ?TierIndex {
        if (size_bytes > std.math.maxInt(i32)) return null;
        var best: TierIndex = no_choice;
        var best_load: i64 = 0;
        var best_ratio: i64 = 1;
        for (0..config.tier_count) |i| {
            if (isFull(full, i)) continue;
            const load = ledger.counts.net_bytes[i] +% @as(i64, @intCast(size_bytes));
            const ratio: i64 = config.ratios[i];
            const left = @mulWithOverflow(load, best_ratio);
            const right = @mulWithOverflow(best_load, ratio);
            if (left[1] | right[1] != 0) return null;
            if (best == no_choice or left[0] < right[0]) {
                best = @intCast(i);
                best_load = load;
                best_ratio = ratio;
            }
        }
        return if (best == no_choice) null else best;
    }

    fn chooseStatic128(ledger: *const Ledger, config: *const Config, size_bytes: u64, full: TierMask) ?TierIndex {
        @branchHint(.cold);
        var best: ?TierIndex = null;
        var best_load: i128 = 0;
        var best_ratio: i128 = 1;
        for (0..config.tier_count) |i| {
            if (isFull(full, i)) continue;
            const load = @as(i128, ledger.counts.net_bytes[i]) + size_bytes;
            const ratio: i128 = config.ratios[i];
            // load / ratio < best_load / best_ratio, without division.
            if (best == null or load * best_ratio < best_load * ratio) {
                best = @intCast(i);
                best_load = load;
                best_ratio = ratio;
            }
        }
        return best;
    }

    /// DYNAMIC_THRESHOLD's first choice: the first tier whose threshold is above the size.
    pub fn thresholdTier(ledger: *const Ledger, config: *const Config, size_bytes: u64) TierIndex {
        assert(config.policy == .dynamic_threshold);
        var tier: usize = 0;
        while (tier + 1 < config.tier_count and size_bytes >= ledger.threshold_bytes[tier]) tier += 1;
        return @intCast(tier);
    }

    pub fn noteAlloc(ledger: *Ledger, config: *const Config, tier: TierIndex, size_bytes: u64) void {
        assert(tier < config.tier_count);
        ledger.counts.net_bytes[tier] += @intCast(size_bytes);
        ledger.settle_alloc_bytes +|= size_bytes;
        ledger.ops_until_settle -|= 1;
        if (config.policy == .dynamic_threshold) {
            ledger.check_tier_bytes[tier] +|= size_bytes;
            ledger.allocs_until_check -= 1;
            if (ledger.allocs_until_check == 0) {
                ledger.allocs_until_check = check_interval_allocs;
                ledger.moveThresholds(config);
            }
        }
    }

    /// Takes back `size_bytes` of an earlier `noteAlloc` to `tier` that were never handed out
    /// (the unspent rest of a credit); not an operation of its own.
    pub fn refund(ledger: *Ledger, tier: TierIndex, size_bytes: u64) void {
        assert(tier < max_tiers);
        ledger.counts.net_bytes[tier] -= @intCast(size_bytes);
        ledger.settle_alloc_bytes -|= size_bytes;
    }

    /// `size_bytes` must be what `noteAlloc` was given for the block; any thread may free it.
    pub fn noteFree(ledger: *Ledger, tier: TierIndex, size_bytes: u64) void {
        assert(tier < max_tiers);
        ledger.counts.net_bytes[tier] -= @intCast(size_bytes);
        ledger.settle_free_bytes +|= size_bytes;
        ledger.ops_until_settle -|= 1;
    }

    pub fn settleDue(ledger: *const Ledger) bool {
        return ledger.settleDueAfter(settle_interval_bytes);
    }

    /// settleDue with a byte interval of `interval_bytes` (≥ settle_interval_bytes): for a
    /// caller that books in batches (memtier's credits), which sizes the interval by what its
    /// thread holds.
    pub fn settleDueAfter(ledger: *const Ledger, interval_bytes: u64) bool {
        assert(interval_bytes >= settle_interval_bytes);
        return ledger.ops_until_settle == 0 or
            ledger.settle_alloc_bytes >= interval_bytes or ledger.settle_free_bytes >= interval_bytes;
    }

    /// `shared` holds the counts the interposer took (swapped to zero) from the shared
    /// counts. An allocating thread absorbs them and leaves `shared` empty; a freeing thread
    /// adds its own counts to `shared` and empties itself. Returns true when `shared` must
    /// be added back to the shared counts.
    pub fn settle(ledger: *Ledger, shared: *Counts) bool {
        const allocating = ledger.settle_alloc_bytes >= ledger.settle_free_bytes;
        ledger.ops_until_settle = settle_interval_ops;
        ledger.settle_alloc_bytes = 0;
        ledger.settle_free_bytes = 0;
        if (allocating) {
            ledger.counts.add(shared.*);
            shared.* = .{};
            return false;
        }
        shared.add(ledger.drain());
        return true;
    }

    /// Empties the ledger (at thread exit), returning its counts for the shared counts.
    pub fn drain(ledger: *Ledger) Counts {
        const counts = ledger.counts;
        ledger.counts = .{};
        return counts;
    }

    /// A PD controller per threshold k: the integral term is the live excess of bytes in
    /// tiers 0..k over their share (repaid over `repay_windows` windows), the proportional
    /// term the excess of the last window's allocations. Acting on the excess alone (a pure
    /// integral) makes the threshold swing between its bounds; the window term damps it.
    fn moveThresholds(ledger: *Ledger, config: *const Config) void {
        defer ledger.check_tier_bytes = @splat(0);
        const sum: i128 = config.ratioSum();
        const total: i128 = ledger.counts.total(config.tier_count);
        var window: i128 = 0;
        for (ledger.check_tier_bytes[0..config.tier_count]) |b| window += b;
        if (total <= 0 or window == 0) return; // Nothing to steer by (a thread that mostly frees).
        var below: i128 = 0;
        var window_below: i128 = 0;
        for (0..config.tier_count - 1) |k| {
            below += ledger.counts.net_bytes[k];
            window_below += ledger.check_tier_bytes[k];
            const prefix: i128 = config.ratio_prefix[k];
            // Both terms in bytes * sum: > 0 when tiers 0..k hold too much.
            const excess = below * sum - total * prefix;
            const window_excess = window_below * sum - window * prefix;
            const drive = repay_windows * window_excess + excess;
            const deadband = @divTrunc(repay_windows * window * sum * trigger_permille, 1000);
            const move: Move = if (drive > deadband) .down else if (drive < -deadband) .up else continue;
            const bounds = config.thresholds[k];
            const t = &ledger.threshold_bytes[k];
            const shift = &ledger.step_shift[k];
            if (move == ledger.last_move[k]) {
                shift.* = @max(step_shift_min, shift.* - 1);
            } else if (ledger.last_move[k] != .none) {
                shift.* = @min(step_shift_max, shift.* + 1);
            }
            ledger.last_move[k] = move;
            const step = @max(1, t.* >> shift.*);
            t.* = switch (move) {
                .down => @max(bounds.min_bytes, t.* -| step),
                .up => @min(bounds.max_bytes, t.* +| step),
                .none => unreachable,
            };
            assert(t.* >= bounds.min_bytes and t.* <= bounds.max_bytes);
            assert(k == 0 or ledger.threshold_bytes[k - 1] <= t.*);
        }
    }
};

/// `first` if it has room, else the nearest slower tier with room, else the nearest faster.
pub fn fallback(first: TierIndex, tier_count: usize, full: TierMask) ?TierIndex {
    assert(first < tier_count);
    if (!isFull(full, first)) return first;
    for (first + 1..tier_count) |i| if (!isFull(full, i)) return @intCast(i);
    var i: usize = first;
    while (i > 0) {
        i -= 1;
        if (!isFull(full, i)) return @intCast(i);
    }
    return null;
}

fn isFull(full: TierMask, tier: usize) bool {
    return (full >> @intCast(tier)) & 1 != 0;
}

/// The largest gap between a tier's bytes and its exact share: max |b_i - B r_i / R|.
pub fn deviationBytes(config: *const Config, counts: *const Counts) u64 {
    const sum = config.ratioSum();
    const total = counts.total(config.tier_count);
    var worst: u128 = 0;
    for (0..config.tier_count) |i| {
        const gap = @as(i128, counts.net_bytes[i]) * sum - @as(i128, total) * config.ratios[i];
        worst = @max(worst, @abs(gap));
    }
    return @intCast(worst / sum);
}

// ---------------------------------------------------------------------------------------
// Tests: synthetic workloads on simulated counts (no memory is allocated).

const testing = std.testing;
const KiB: u64 = 1024;
const MiB: u64 = 1024 * KiB;

fn testConfig(tiers: []const u8, thresholds: ?[]const u8) !Config {
    return switch (tier_spec.parse(tiers, thresholds)) {
        .spec => |*spec| Config.init(spec),
        .failure => error.TestBadSpec,
    };
}

/// Largest |share_i - ratio_i / sum| in 1/1000 units (2% = 20).
fn shareErrorPermille(config: *const Config, counts: *const Counts) u64 {
    const total = counts.total(config.tier_count);
    assert(total > 0);
    const sum: i128 = config.ratioSum();
    var worst: u128 = 0;
    for (0..config.tier_count) |i| {
        const gap = (@as(i128, counts.net_bytes[i]) * sum - @as(i128, total) * config.ratios[i]) * 1000;
        worst = @max(worst, @abs(gap) / @as(u128, @intCast(total * sum)));
    }
    return @intCast(worst);
}

/// Log-uniform sizes in [min_bytes, max_bytes]: many small blocks, a few large ones.
fn logUniformSize(random: std.Random, min_bytes: u64, max_bytes: u64) u64 {
    const lo: f64 = @log2(@as(f64, @floatFromInt(min_bytes)));
    const hi: f64 = @log2(@as(f64, @floatFromInt(max_bytes)));
    const size: u64 = @intFromFloat(@exp2(lo + (hi - lo) * random.float(f64)));
    return std.math.clamp(size, min_bytes, max_bytes);
}

fn allocOne(ledger: *Ledger, config: *const Config, size: u64) !TierIndex {
    const tier = ledger.choose(config, size, 0) orelse return error.TestNoTier;
    ledger.noteAlloc(config, tier, size);
    return tier;
}

test "STATIC_RATIO, uniform 64 B blocks: within 2% from the first MiB, 1:4 and 1:2:5" {
    for ([_][]const u8{
        "KIND:DRAM,RATIO:1;KIND:KMEM_DAX,RATIO:4;POLICY:STATIC_RATIO",
        "KIND:DRAM,RATIO:1;KIND:KMEM_DAX,RATIO:2;KIND:FS_DAX,PATH:/p,RATIO:5;POLICY:STATIC_RATIO",
    }) |text| {
        const config = try testConfig(text, null);
        var ledger: Ledger = .init(&config);
        var total: u64 = 0;
        while (total < 8 * MiB) : (total += 64) {
            _ = try allocOne(&ledger, &config, 64);
            try testing.expect(deviationBytes(&config, &ledger.counts) <= 64);
            if (total >= MiB) try testing.expect(shareErrorPermille(&config, &ledger.counts) <= 20);
        }
        try testing.expect(shareErrorPermille(&config, &ledger.counts) == 0);
    }
}

test "STATIC_RATIO, mixed 8 B - 1 MiB: never more than one block off, within 2% from 50 MiB" {
    const config = try testConfig("KIND:DRAM,RATIO:1;KIND:KMEM_DAX,RATIO:4;POLICY:STATIC_RATIO", null);
    var prng: std.Random.DefaultPrng = .init(1);
    var ledger: Ledger = .init(&config);
    var total: u64 = 0;
    var largest: u64 = 0;
    while (total < 256 * MiB) {
        const size = logUniformSize(prng.random(), 8, MiB);
        _ = try allocOne(&ledger, &config, size);
        total += size;
        largest = @max(largest, size);
        try testing.expect(deviationBytes(&config, &ledger.counts) <= largest);
        if (total >= 50 * MiB) try testing.expect(shareErrorPermille(&config, &ledger.counts) <= 20);
    }
}

test "STATIC_RATIO, mixed 8 B - 20 KiB: within 2% once 1 MiB is allocated" {
    const config = try testConfig("KIND:DRAM,RATIO:3;KIND:KMEM_DAX,RATIO:7;POLICY:STATIC_RATIO", null);
    var prng: std.Random.DefaultPrng = .init(2);
    var ledger: Ledger = .init(&config);
    var total: u64 = 0;
    while (total < 64 * MiB) {
        const size = logUniformSize(prng.random(), 8, 20 * KiB);
        _ = try allocOne(&ledger, &config, size);
        total += size;
        if (total >= MiB) try testing.expect(shareErrorPermille(&config, &ledger.counts) <= 20);
    }
}

const Block = struct { tier: TierIndex, size: u64 };

test "STATIC_RATIO with frees: live bytes within 2% while a 1-64 KiB working set churns" {
    const config = try testConfig("KIND:DRAM,RATIO:1;KIND:KMEM_DAX,RATIO:4;POLICY:STATIC_RATIO", null);
    var prng: std.Random.DefaultPrng = .init(3);
    const random = prng.random();
    var ledger: Ledger = .init(&config);
    var live: [2048]Block = undefined;
    for (&live) |*b| {
        const size = logUniformSize(random, 8, 64 * KiB);
        b.* = .{ .tier = try allocOne(&ledger, &config, size), .size = size };
    }
    for (0..200_000) |_| {
        const victim = &live[random.uintLessThan(usize, live.len)];
        ledger.noteFree(victim.tier, victim.size);
        const size = logUniformSize(random, 8, 64 * KiB);
        victim.* = .{ .tier = try allocOne(&ledger, &config, size), .size = size };
        try testing.expect(ledger.counts.total(config.tier_count) >= MiB);
        try testing.expect(shareErrorPermille(&config, &ledger.counts) <= 20);
    }
}

/// Four threads round-robin: two allocate, two free what the allocators made, but only
/// the blocks of 4 KiB and more (a biased consumer). Settles go through `shared`.
fn runProducersConsumers(settling: bool) !u64 {
    const config = try testConfig("KIND:DRAM,RATIO:1;KIND:KMEM_DAX,RATIO:4;POLICY:STATIC_RATIO", null);
    var prng: std.Random.DefaultPrng = .init(4);
    const random = prng.random();
    var ledgers: [4]Ledger = @splat(.init(&config));
    var shared: Counts = .{};
    var queue: [4096]Block = undefined;
    var queued: usize = 0;
    var worst_after_warmup: u64 = 0;
    for (0..400_000) |step| {
        const who = step % ledgers.len;
        const ledger = &ledgers[who];
        if (who < 2) {
            const size = logUniformSize(random, 16, 16 * KiB);
            const tier = try allocOne(ledger, &config, size);
            if (size >= 4 * KiB and queued < queue.len) {
                queue[queued] = .{ .tier = tier, .size = size };
                queued += 1;
            }
        } else if (queued > 0) {
            queued -= 1;
            ledger.noteFree(queue[queued].tier, queue[queued].size);
        }
        if (settling and ledger.settleDue()) {
            var taken = shared;
            shared = .{};
            if (ledger.settle(&taken)) shared.add(taken);
        }
        var global = shared;
        for (&ledgers) |*l| global.add(l.counts);
        if (step > 20_000) worst_after_warmup = @max(worst_after_warmup, shareErrorPermille(&config, &global));
    }
    return worst_after_warmup;
}

test "STATIC_RATIO, per-thread ledgers: the global split stays within 2% when consumers free a biased subset" {
    try testing.expect(try runProducersConsumers(true) <= 20);
}

test "STATIC_RATIO, per-thread ledgers: without settling, a biased consumer breaks the split" {
    try testing.expect(try runProducersConsumers(false) > 20);
}

test "settle and drain move counts without losing a byte" {
    const config = try testConfig("KIND:DRAM,RATIO:1;KIND:KMEM_DAX,RATIO:4;POLICY:STATIC_RATIO", null);
    var consumer: Ledger = .init(&config);
    consumer.noteFree(1, 4096);
    var taken: Counts = .{};
    taken.net_bytes[0] = 100;
    try testing.expect(consumer.settle(&taken));
    try testing.expectEqual(@as(i64, 100), taken.net_bytes[0]);
    try testing.expectEqual(@as(i64, -4096), taken.net_bytes[1]);
    try testing.expectEqual(@as(i64, 0), consumer.counts.total(2));
    var producer: Ledger = .init(&config);
    _ = try allocOne(&producer, &config, 64);
    try testing.expect(!producer.settle(&taken));
    try testing.expectEqual(Counts{}, taken);
    try testing.expectEqual(@as(i64, 64 + 100 - 4096), producer.counts.total(2));
    try testing.expectEqual(@as(i64, 64 + 100 - 4096), producer.drain().total(2));
    try testing.expectEqual(Counts{}, producer.counts);
}

test "DYNAMIC_THRESHOLD: size >= threshold k goes to tier k+1" {
    const config = try testConfig(
        "KIND:DRAM,RATIO:1;KIND:KMEM_DAX,RATIO:1;KIND:FS_DAX,PATH:/p,RATIO:1;POLICY:DYNAMIC_THRESHOLD",
        "INIT_VAL:100,MIN_VAL:100,MAX_VAL:100;INIT_VAL:1K,MIN_VAL:1K,MAX_VAL:1K",
    );
    const ledger: Ledger = .init(&config);
    for ([_]struct { u64, TierIndex }{ .{ 0, 0 }, .{ 99, 0 }, .{ 100, 1 }, .{ 1023, 1 }, .{ 1024, 2 }, .{ 1 << 40, 2 } }) |c| {
        try testing.expectEqual(c[1], ledger.choose(&config, c[0], 0).?);
    }
}

test "DYNAMIC_THRESHOLD, mixed 8 B - 64 KiB: the threshold finds the 1:4 split, within 2% from 4 MiB" {
    const config = try testConfig("KIND:DRAM,RATIO:1;KIND:KMEM_DAX,RATIO:4;POLICY:DYNAMIC_THRESHOLD", "MIN_VAL:8,INIT_VAL:1K,MAX_VAL:64K");
    var prng: std.Random.DefaultPrng = .init(5);
    var ledger: Ledger = .init(&config);
    var total: u64 = 0;
    while (total < 64 * MiB) {
        const size = logUniformSize(prng.random(), 8, 64 * KiB);
        _ = try allocOne(&ledger, &config, size);
        total += size;
        if (total >= 4 * MiB) try testing.expect(shareErrorPermille(&config, &ledger.counts) <= 20);
        try testing.expect(ledger.threshold_bytes[0] >= 8 and ledger.threshold_bytes[0] <= 64 * KiB);
    }
}

test "DYNAMIC_THRESHOLD, three tiers with frees: thresholds stay ordered and the split within 2%" {
    const config = try testConfig(
        "KIND:DRAM,RATIO:2;KIND:KMEM_DAX,RATIO:3;KIND:FS_DAX,PATH:/p,RATIO:5;POLICY:DYNAMIC_THRESHOLD",
        "MIN_VAL:8,INIT_VAL:1K,MAX_VAL:16K;MIN_VAL:16K,INIT_VAL:32K,MAX_VAL:64K",
    );
    var prng: std.Random.DefaultPrng = .init(6);
    const random = prng.random();
    var ledger: Ledger = .init(&config);
    var live: [4096]Block = undefined;
    for (&live) |*b| {
        const size = logUniformSize(random, 8, 64 * KiB);
        b.* = .{ .tier = try allocOne(&ledger, &config, size), .size = size };
    }
    for (0..200_000) |i| {
        const victim = &live[random.uintLessThan(usize, live.len)];
        ledger.noteFree(victim.tier, victim.size);
        const size = logUniformSize(random, 8, 64 * KiB);
        victim.* = .{ .tier = try allocOne(&ledger, &config, size), .size = size };
        try testing.expect(ledger.threshold_bytes[0] <= ledger.threshold_bytes[1]);
        if (i > 20_000) try testing.expect(shareErrorPermille(&config, &ledger.counts) <= 20);
    }
}

test "DYNAMIC_THRESHOLD: a split the sizes cannot give leaves the threshold at its bound" {
    const config = try testConfig("KIND:DRAM,RATIO:1;KIND:KMEM_DAX,RATIO:4;POLICY:DYNAMIC_THRESHOLD", null);
    var ledger: Ledger = .init(&config);
    for (0..10_000) |_| try testing.expectEqual(@as(TierIndex, 0), try allocOne(&ledger, &config, 64));
    try testing.expectEqual(config.thresholds[0].min_bytes, ledger.threshold_bytes[0]);
}

test "a full tier is skipped: STATIC_RATIO takes the next most-behind tier, null when all are full" {
    const config = try testConfig(
        "KIND:DRAM,RATIO:1;KIND:KMEM_DAX,RATIO:4;KIND:FS_DAX,PATH:/p,RATIO:2;POLICY:STATIC_RATIO",
        null,
    );
    var ledger: Ledger = .init(&config);
    for (0..1000) |_| {
        const tier = ledger.choose(&config, 4096, 0b010).?;
        try testing.expect(tier != 1);
        ledger.noteAlloc(&config, tier, 4096);
    }
    // Tiers 0 and 2 keep their 1:2 split between themselves, to one block.
    try testing.expect(@abs(ledger.counts.net_bytes[0] * 2 - ledger.counts.net_bytes[2]) <= 2 * 4096);
    try testing.expectEqual(@as(?TierIndex, null), ledger.choose(&config, 1, 0b111));
}

test "fallback: the nearest slower tier with room, then the nearest faster" {
    try testing.expectEqual(@as(?TierIndex, 1), fallback(1, 4, 0b0000));
    try testing.expectEqual(@as(?TierIndex, 2), fallback(1, 4, 0b0010));
    try testing.expectEqual(@as(?TierIndex, 3), fallback(1, 4, 0b0110));
    try testing.expectEqual(@as(?TierIndex, 0), fallback(1, 4, 0b1110));
    try testing.expectEqual(@as(?TierIndex, 2), fallback(3, 4, 0b1000));
    try testing.expectEqual(@as(?TierIndex, null), fallback(0, 4, 0b1111));
}

test "STATIC_RATIO: the 64-bit choice agrees with the 128-bit one, and defers to it near overflow" {
    const config = try testConfig("KIND:DRAM,RATIO:3;KIND:KMEM_DAX,RATIO:7;KIND:FS_DAX,PATH:/p,RATIO:5;POLICY:STATIC_RATIO", null);
    var prng: std.Random.DefaultPrng = .init(7);
    const random = prng.random();
    var ledger: Ledger = .init(&config);
    for (0..100_000) |_| {
        for (ledger.counts.net_bytes[0..3]) |*b| b.* = random.intRangeAtMost(i64, -(1 << 40), 1 << 40);
        const size = random.intRangeAtMost(u64, 0, 1 << 30);
        const full: TierMask = random.uintLessThan(TierMask, 8);
        try testing.expectEqual(ledger.chooseStatic128(&config, size, full), ledger.chooseStatic(&config, size, full));
        try testing.expectEqual(ledger.chooseStatic128(&config, size, full), ledger.chooseStatic64(&config, size, full));
    }
    ledger.counts.net_bytes[1] = std.math.maxInt(i64) / 2;
    try testing.expectEqual(@as(?TierIndex, null), ledger.chooseStatic64(&config, 64, 0));
    try testing.expectEqual(ledger.chooseStatic128(&config, 64, 0), ledger.chooseStatic(&config, 64, 0));
}
