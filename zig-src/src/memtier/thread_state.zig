//! A thread's booking of bytes per tier: its ledger (tier_ratio.zig), its
//! STATIC_RATIO credit, the frees it has not folded yet, its statistics deltas,
//! and the shared counts its ledger settles against; with the state's life
//! cycle (made at a thread's first tiered allocation, reused by the next
//! thread after its exit).
//!
//! Why: the two-tier hot path should cost little more than one tier's (issue
//! 13). Under STATIC_RATIO a thread asks the ledger for a tier once per
//! *credit* (1/`credit_share` of its share of the process's bytes, 8-64 KiB),
//! which is booked to the ledger whole when granted and refunded of its unspent
//! rest when it ends; so a small malloc on credit is the one-tier cache pop plus
//! a compare and a subtraction (memtier.allocateOnCredit). A free of a small
//! block adds its size to its pool cache's counter (pool.freeCounted), other
//! frees to the state's per-slot sums; both are folded into the ledger before
//! the next choice and whenever the free budget runs out, and an exiting
//! thread's caches hand theirs over (`retireCachedFrees`).
//!
//! Invariant: the ledgers plus the shared counts equal the live bytes per tier,
//! plus the threads' unspent credits, minus their unfolded frees — each term
//! bounded by one credit or one free budget per thread (1.6% of its share).
//!
//! Trade-off: the split is exact only at a choice; between choices it may be
//! off by the credits and budgets above, and the statistics (kept at log level
//! ≥ 1) by the same amounts for threads still running at exit.
const std = @import("std");
const assert = std.debug.assert;
const linux = std.os.linux;
const memtier = @import("memtier.zig");
const tier_ratio = @import("tier_ratio.zig");
const pool_mod = @import("alloc").pool;
const thread_cache = @import("alloc").thread_cache;
const Lock = @import("alloc").lock.Lock;

const max_tiers = memtier.max_tiers;

const flush_bytes: i64 = 256 * 1024;
/// STATIC_RATIO: bytes a thread allocates from the tier `choose` picked before it asks again.
/// The greedy choice keeps every tier within one block of its share; a credit widens that bound
/// by its size, which is 1/`credit_share` of the thread's share of the process's net bytes
/// (`net_estimate` / `live_states`: a thread's own ledger says little, as a thread that frees
/// what another allocated nets out near zero), at least `credit_bytes_min` and at most
/// `credit_bytes_max`: so each thread's split stays within 1.6% of what it holds plus one block
/// (and the 8 KiB floor), and a thread holding megabytes asks once per 64 KiB instead of on
/// every allocation (bench/mixed.c, 2.2 KiB per block on average: one choice per 4 mallocs at
/// 8 KiB, per 30 at 64 KiB). At most 64 KiB, the ledger's own settle interval: with 128 KiB,
/// mimalloc-bench's larson (2 server threads handing their blocks to new threads) ended 60/40
/// on a 1:1 split, within 1% at 32 or 64 KiB (the handover probe of tests/native/memtier_test.ts
/// stayed within 0.3% either way).
const credit_bytes_min: u64 = 8 * 1024;
const credit_bytes_max: u64 = 64 * 1024;
const credit_share: u64 = 64;
/// Frees are folded into the ledger (and the ledger settled) once the thread's free budget is
/// used up by the bytes it freed. The budget is 1/`credit_share` of what the thread holds (as a
/// credit), between the ledger's own settle interval (64 KiB) and 1 MiB: a consumer's frees
/// reach the shared counts within 1.6% of the bytes.
/// The ledger settles at the same interval (`batchBytes`).
const free_budget_min: i64 = @intCast(tier_ratio.settle_interval_bytes);
const free_budget_max: i64 = 1024 * 1024;
/// Net bytes handed over by threads that free more than they allocate, and
/// by exited threads (tier_ratio.zig's settle protocol).
var shared_counts: tier_ratio.Counts = .{};
/// Our lock, not a pthread mutex: a signal handler that allocates while this thread settles
/// (it holds this lock) is reported in one line and aborts, where a mutex would hang for ever.
var shared_lock: Lock = .{};
/// The process's net bytes in all tiers as of the threads' last settles (changed under
/// shared_lock, read without it), and the number of threads with a state: a thread's share of
/// the bytes sizes its credits and free budget.
var net_estimate: std.atomic.Value(i64) = .init(0);
var live_states: std.atomic.Value(u32) = .init(0);
/// Bytes of frees exited threads' caches still counted (retireCachedFrees), per tier, not yet
/// moved into the shared counts (the next settle does).
var retired_frees: [max_tiers]std.atomic.Value(u64) = @splat(.init(0));

/// This thread's tier choice and statistics deltas. Kept for the next thread when this one
/// exits (`spare_states`): a program starting 40,000 short threads used to keep 40,000 pages.
pub const ThreadState = struct {
    // The hot fields first (one cache line): the credit and the frees not yet folded.
    /// STATIC_RATIO: what is left of the credit granted to `credit_tier` (see `credit_bytes_max`).
    credit_bytes: u64 align(std.atomic.cache_line) = 0,
    /// What the current credit booked to the ledger when it was granted (0: no credit). Between
    /// the two counters malloc updates, which as neighbours LLVM updated with one 16-byte vector
    /// operation: five instructions for two.
    credit_granted: u64 = 0,
    /// Allocations served on the current credit (booked to the statistics when it ends).
    credit_allocs: u64 = 0,
    credit_tier: u8 = 0,
    /// The pool slot of `credit_tier` (allocateOnCredit pops from this thread's cache of it).
    credit_slot: u8 = 0,
    /// STATIC_RATIO: bytes the thread may still take from other tiers' caches on this credit
    /// (memtier.borrowCached; half the credit), and what it took, per tier, not yet folded.
    borrow_budget: u64 = 0,
    /// The tier (and its pool slot) allocateOnCredit borrows from: the one after the credit's.
    borrow_tier: u8 = 0,
    borrow_slot: u8 = 0,
    borrowed_bytes: [max_tiers]u64 = @splat(0),
    borrowed_allocs: [max_tiers]u64 = @splat(0),
    /// Left of the free budget before the frees are folded (see `free_budget_min`).
    free_budget: i64 = free_budget_min,
    /// The whole budget, as set at the last fold (`free_budget` equals it: nothing to fold).
    free_budget_full: i64 = free_budget_min,
    /// What the thread held at its last fold (`heldBytes`) / `credit_share`: sizes its free
    /// budget, settle interval and next credit, so that a fold and the credit after it read the
    /// shared estimate and divide once.
    held_share: u64 = 0,
    /// Bytes freed per pool slot since the last fold (by slot: free needs no tier lookup;
    /// slots of pools that are not tiers are never folded).
    freed_bytes: [pool_mod.max_pools]u64 = @splat(0),
    ledger: tier_ratio.Ledger,
    /// The ledger's total after its last settle: what the thread itself allocated or freed
    /// since is its total minus this (reported to `net_estimate` at the next settle).
    settled_total: i64 = 0,
    delta_bytes: [max_tiers]i64 = @splat(0),
    delta_allocations: [max_tiers]u64 = @splat(0),
    delta_fallbacks: [max_tiers]u64 = @splat(0),
    next_spare: ?*ThreadState = null,
};
/// This thread's state, in the initial-exec slot of thread_pointer.c (a Zig threadlocal in a
/// shared library costs a __tls_get_addr call per access: 13% of the two-tier path).
inline fn stateSlot() *?*anyopaque {
    return &thread_cache.tlsSlots()[@backingInt(thread_cache.TlsSlot.memtier_state)];
}
pub inline fn currentState() ?*ThreadState {
    return @ptrCast(@alignCast(stateSlot().*));
}
/// Set once this thread's state went back to `spare_states` (its key destructor ran): what
/// later destructors allocate or free is booked to the shared counts directly.
pub threadlocal var thread_exited: bool = false;
/// States of exited threads, and of the last batch mapped (under shared_lock).
var spare_states: ?*ThreadState = null;
const states_per_map = 64;
pub var thread_key: std.c.pthread_key_t = std.math.maxInt(std.c.pthread_key_t);

// ---- fork ---------------------------------------------------------------------------
//
// `shared_lock` is taken around fork like the pools' locks (registry.zig): a thread of the
// parent settling its ledger at the fork would leave it locked in the child for ever. (A
// file-backed tier's heap is copied into the child by registry.zig's fork handlers.)

pub fn forkPrepare() callconv(.c) void {
    shared_lock.lock();
}

pub fn forkParent() callconv(.c) void {
    shared_lock.unlock();
}

pub fn forkChild() callconv(.c) void {
    shared_lock = .{};
}

/// Ends the thread's credit: the unspent rest is refunded to the ledger, what was spent goes to
/// the statistics.
pub fn endCredit(ts: *ThreadState) void {
    if (ts.credit_granted == 0) return;
    const index = ts.credit_tier;
    assert(ts.credit_bytes <= ts.credit_granted);
    ts.ledger.refund(index, ts.credit_bytes);
    noteDelta(ts, index, @intCast(ts.credit_granted - ts.credit_bytes), ts.credit_allocs);
    ts.credit_bytes = 0;
    ts.credit_allocs = 0;
    ts.credit_granted = 0;
    ts.borrow_budget = 0;
}

/// Moves what this thread's frees left in its caches of the tiers (the pools' counting free:
/// `freed_bytes` of each cache) into its own sums per slot.
fn collectCachedFrees(ts: *ThreadState) void {
    const tc = thread_cache.current() orelse return;
    for (memtier.tiers[0..memtier.tier_count]) |*tier| {
        const cache = tc.pools[tier.pool.slot] orelse continue;
        ts.freed_bytes[tier.pool.slot] += cache.freed_bytes;
        cache.freed_bytes = 0;
    }
}

/// The bytes of frees the thread's cache of the pool in `slot` holds for the ledger.
fn cachedFrees(slot: u8) u64 {
    const tc = thread_cache.current() orelse return 0;
    const cache = tc.pools[slot] orelse return 0;
    return cache.freed_bytes;
}

/// Books the blocks borrowed from other tiers' caches and the frees gathered since the last
/// fold (the thread's and its caches') to the ledger and the statistics, and flushes the statistics of tiers that moved `flush_bytes`; settles
/// the ledger when it is due (or when `settle_now`: the free budget ran out).
pub fn foldFrees(ts: *ThreadState, settle_now: bool) void {
    collectCachedFrees(ts);
    ts.held_share = heldBytes(ts) / credit_share;
    const budget = batchBytes(ts);
    ts.free_budget = @intCast(budget);
    ts.free_budget_full = @intCast(budget);
    for (ts.borrowed_bytes[0..memtier.tier_count], ts.borrowed_allocs[0..memtier.tier_count], 0..) |*bytes, *allocs, index| {
        if (bytes.* == 0) continue;
        ts.ledger.noteAlloc(&memtier.config, @intCast(index), bytes.*);
        addDelta(ts, index, @intCast(bytes.*), allocs.*);
        bytes.* = 0;
        allocs.* = 0;
    }
    var freed_in: tier_ratio.TierMask = 0;
    for (memtier.tiers[0..memtier.tier_count], 0..) |*tier, index| {
        const freed = &ts.freed_bytes[tier.pool.slot];
        if (freed.* == 0) continue;
        const bytes = freed.*;
        freed.* = 0;
        freed_in |= @as(tier_ratio.TierMask, 1) << @intCast(index);
        if (memtier.tier_count > 1) ts.ledger.noteFree(@intCast(index), bytes);
        addDelta(ts, index, -@as(i64, @intCast(bytes)), 0);
    }
    if (memtier.tier_count > 1) {
        // Room again in a tier marked full.
        if (memtier.full_mask.load(.monotonic) & freed_in != 0) _ = memtier.full_mask.fetchAnd(~freed_in, .monotonic);
        if (settle_now or ts.ledger.settleDueAfter(budget)) settle(ts);
    }
    if (memtier.keep_stats) {
        for (0..memtier.tier_count) |index| if (@abs(ts.delta_bytes[index]) >= flush_bytes) flushTier(ts, index);
    }
}

/// The thread's free budget and settle interval in bytes (see `free_budget_min`), as of its
/// last fold.
inline fn batchBytes(ts: *const ThreadState) u64 {
    return std.math.clamp(ts.held_share, @as(u64, free_budget_min), @as(u64, free_budget_max));
}

/// What the thread holds, for sizing its batches: its share of the process's net bytes, or its
/// own ledger's total if more.
inline fn heldBytes(ts: *const ThreadState) u64 {
    const share = @divTrunc(@max(0, net_estimate.load(.monotonic)), @max(1, live_states.load(.monotonic)));
    return @intCast(@max(share, ts.ledger.counts.total(memtier.tier_count)));
}

/// noteFree without a thread state.
fn noteFreeUntracked(slot: u8, bytes: usize) void {
    @branchHint(.cold);
    const tier = memtier.slot_tier[slot];
    if (tier < max_tiers) account(tier, -@as(i64, @intCast(bytes)), false);
}

/// registry.retire_freed_hook: an exiting thread's cache of the pool in `slot` still counted
/// `bytes` of frees. Booked to the thread's state if it still has one (its own exit folds
/// them), else straight to the shared counts.
pub fn retireCachedFrees(slot: u8, bytes: u64) void {
    if (currentState()) |ts| {
        ts.freed_bytes[slot] += bytes;
        ts.free_budget -= @intCast(bytes);
        return;
    }
    // Called under the registry's lock, so no shared_lock here (fork takes shared_lock, then the
    // registry's): parked for the next settle.
    const tier = memtier.slot_tier[slot];
    if (tier >= max_tiers) return;
    _ = retired_frees[tier].fetchAdd(bytes, .monotonic);
    _ = net_estimate.fetchSub(@intCast(bytes), .monotonic);
    if (memtier.keep_stats) _ = memtier.tiers[tier].stats.bytes_now.fetchSub(@intCast(bytes), .monotonic);
}

/// STATIC_RATIO: the block of `usable` bytes just served by tier `index` opens a credit there,
/// booked to the ledger whole (the credit's size, or the block's if bigger). Sized by what the
/// thread held at its last fold: the caller folded its frees just before.
pub fn grantCredit(ts: *ThreadState, index: u8, usable: usize) void {
    assert(ts.credit_granted == 0);
    const granted = @max(usable, std.math.clamp(ts.held_share, credit_bytes_min, credit_bytes_max));
    ts.ledger.noteAlloc(&memtier.config, index, granted);
    ts.credit_tier = index;
    ts.credit_slot = memtier.tiers[index].pool.slot;
    ts.credit_granted = granted;
    ts.credit_bytes = granted - usable;
    ts.credit_allocs = 1;
    ts.borrow_budget = granted / 2;
    ts.borrow_tier = @intCast((index + 1) % memtier.tier_count);
    ts.borrow_slot = memtier.tiers[ts.borrow_tier].pool.slot;
    if (ts.ledger.settleDueAfter(batchBytes(ts))) settle(ts);
}

/// Books a block straight to the shared counts and the statistics (no thread state).
pub fn accountShared(index: usize, bytes: i64) void {
    shared_lock.lock();
    shared_counts.net_bytes[index] += bytes;
    _ = net_estimate.fetchAdd(bytes, .monotonic);
    shared_lock.unlock();
    const stats = &memtier.tiers[index].stats;
    if (bytes > 0) _ = stats.allocations.fetchAdd(1, .monotonic);
    const now = stats.bytes_now.fetchAdd(bytes, .monotonic) + bytes;
    _ = stats.bytes_peak.fetchMax(now, .monotonic);
}

/// Books a block of `bytes` allocated in (positive) or freed from (negative)
/// tier `index` to this thread's ledger and statistics.
pub inline fn account(index: usize, bytes: i64, fallback: bool) void {
    if (memtier.tier_count <= 1 and memtier.log_level == 0) return;
    const ts = threadState() orelse {
        if (thread_exited) accountShared(index, bytes);
        return;
    };
    if (bytes > 0) {
        if (fallback and memtier.keep_stats) ts.delta_fallbacks[index] += 1;
        return accountAlloc(ts, index, bytes);
    }
    if (memtier.tier_count > 1) {
        ts.ledger.noteFree(@intCast(index), @intCast(-bytes));
        // Room again in a tier marked full.
        if (memtier.full_mask.load(.monotonic) >> @intCast(index) & 1 != 0)
            _ = memtier.full_mask.fetchAnd(~(@as(tier_ratio.TierMask, 1) << @intCast(index)), .monotonic);
        if (ts.ledger.settleDue()) settle(ts);
    }
    noteDelta(ts, index, bytes, 0);
}

/// `account` of an allocation, for a caller that holds the thread's state.
pub inline fn accountAlloc(ts: *ThreadState, index: usize, bytes: i64) void {
    assert(bytes > 0);
    if (memtier.tier_count > 1) {
        ts.ledger.noteAlloc(&memtier.config, @intCast(index), @intCast(bytes));
        if (ts.ledger.settleDue()) settle(ts);
    }
    noteDelta(ts, index, bytes, 1);
}

/// Books `bytes` and `allocations` of tier `index` to the thread's statistics (if kept); once
/// they moved `flush_bytes`, the thread's frees are folded and the statistics flushed (so that
/// a peak never counts blocks freed but not yet folded).
inline fn noteDelta(ts: *ThreadState, index: usize, bytes: i64, allocations: u64) void {
    if (!memtier.keep_stats) return;
    addDelta(ts, index, bytes, allocations);
    if (@abs(ts.delta_bytes[index]) >= flush_bytes) foldFrees(ts, false);
}

inline fn addDelta(ts: *ThreadState, index: usize, bytes: i64, allocations: u64) void {
    if (!memtier.keep_stats) return;
    ts.delta_allocations[index] += allocations;
    ts.delta_bytes[index] += bytes;
}

/// A block of the pool in `slot` is being freed (libmemtier's free) off the pools' fast path
/// (a small block its cache cannot take, a large or huge block): its bytes join the thread's
/// unfolded frees (see `foldFrees`), which are folded once they, or those its cache of the
/// pool counted, exceed the free budget.
pub fn noteFree(slot: u8, bytes: usize) void {
    const ts = currentState() orelse return noteFreeUntracked(slot, bytes);
    ts.freed_bytes[slot] += bytes;
    ts.free_budget -= @intCast(bytes);
    if (ts.free_budget < 0 or cachedFrees(slot) >= ts.free_budget_full) foldFrees(ts, true);
}

fn settle(ts: *ThreadState) void {
    shared_lock.lock();
    defer shared_lock.unlock();
    var taken = shared_counts;
    shared_counts = .{};
    for (retired_frees[0..memtier.tier_count], 0..) |*retired, index| taken.net_bytes[index] -= @intCast(retired.swap(0, .monotonic));
    reportNet(ts);
    if (ts.ledger.settle(&taken)) shared_counts.add(taken);
    ts.settled_total = ts.ledger.counts.total(memtier.tier_count);
}

pub inline fn threadState() ?*ThreadState {
    if (currentState()) |ts| {
        @branchHint(.likely);
        return ts;
    }
    return threadStateSlow();
}

fn threadStateSlow() ?*ThreadState {
    @branchHint(.cold);
    if (memtier.initialising_here or thread_exited or !memtier.isReady()) return null;
    const ts = spareState() orelse return null;
    ts.* = .{ .ledger = if (memtier.tier_count > 1) tier_ratio.Ledger.init(&memtier.config) else .{} };
    _ = live_states.fetchAdd(1, .monotonic);
    stateSlot().* = ts;
    if (thread_key != std.math.maxInt(std.c.pthread_key_t)) _ = std.c.pthread_setspecific(thread_key, ts);
    return ts;
}

/// A state an exited thread left, else one of a new batch of `states_per_map`.
fn spareState() ?*ThreadState {
    shared_lock.lock();
    defer shared_lock.unlock();
    if (spare_states == null) {
        const raw = linux.mmap(null, states_per_map * @sizeOf(ThreadState), .{ .READ = true, .WRITE = true }, .{ .TYPE = .PRIVATE, .ANONYMOUS = true }, -1, 0);
        if (linux.errno(raw) != .SUCCESS) return null;
        const batch: [*]ThreadState = @ptrFromInt(raw);
        for (batch[0..states_per_map]) |*spare| {
            spare.next_spare = spare_states;
            spare_states = spare;
        }
    }
    const ts = spare_states.?;
    spare_states = ts.next_spare;
    return ts;
}

/// Adds what the thread allocated net since its last settle to `net_estimate` (under shared_lock).
fn reportNet(ts: *const ThreadState) void {
    _ = net_estimate.fetchAdd(ts.ledger.counts.total(memtier.tier_count) - ts.settled_total, .monotonic);
}

fn flushTier(ts: *ThreadState, index: usize) void {
    const stats = &memtier.tiers[index].stats;
    _ = stats.allocations.fetchAdd(ts.delta_allocations[index], .monotonic);
    _ = stats.fallbacks.fetchAdd(ts.delta_fallbacks[index], .monotonic);
    const now = stats.bytes_now.fetchAdd(ts.delta_bytes[index], .monotonic) + ts.delta_bytes[index];
    _ = stats.bytes_peak.fetchMax(now, .monotonic);
    ts.delta_allocations[index] = 0;
    ts.delta_fallbacks[index] = 0;
    ts.delta_bytes[index] = 0;
}

pub fn flushAll(ts: *ThreadState) void {
    for (0..memtier.tier_count) |i| flushTier(ts, i);
}

pub fn threadExit(value: *anyopaque) callconv(.c) void {
    const ts: *ThreadState = @ptrCast(@alignCast(value));
    endCredit(ts);
    foldFrees(ts, false);
    flushAll(ts);
    shared_lock.lock();
    defer shared_lock.unlock();
    if (memtier.tier_count > 1) {
        reportNet(ts);
        shared_counts.add(ts.ledger.drain());
    }
    _ = live_states.fetchSub(1, .monotonic);
    // The state serves the next thread; later destructors of this one book to the shared counts.
    assert(currentState() == ts);
    stateSlot().* = null;
    thread_exited = true;
    ts.next_spare = spare_states;
    spare_states = ts;
}
