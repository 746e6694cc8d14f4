//! Memory tiering for unmodified programs: the state behind libmemtier.so.
//!
//! What: at the first allocation, `MEMKIND_MEM_TIERS` (and
//! `MEMKIND_MEM_THRESHOLDS`) are parsed (tier_spec.zig) and each tier becomes
//! a pool of our allocator:
//! - DRAM     → the default pool (default policy: the process's own placement,
//!              or HMALLOC_POLICY's if set — the same pool libhmalloc uses);
//! - KMEM_DAX → a pool bound to the memory-only NUMA nodes nearest to the
//!              calling CPU (from `MEMKIND_DAX_KMEM_NODES` if set, else from
//!              sysfs: nodes with memory and no CPU, nearest by SLIT distance);
//! - FS_DAX   → a pool whose chunks are ranges of one unlinked file in PATH,
//!              mapped shared once with no descriptor kept (file_heap.zig),
//!              capped at PMEM_SIZE_LIMIT.
//! Each allocation then picks its tier (tier_ratio.zig) from per-thread byte
//! counters, so the common path takes no lock and no atomic; when a tier is
//! full the next one with room serves it (a "fallback"), instead of failing;
//! realloc too. A request that fails everywhere changes no shared state (see
//! `allocate`), and a thread's state is reused by the next thread.
//!
//! Each thread books what it allocates and frees per tier in its state
//! (thread_state.zig), which also makes the two-tier hot path cost little more
//! than one tier's: a STATIC_RATIO choice is made once per credit of bytes.
//!
//! Without `MEMKIND_MEM_TIERS`, everything goes to the DRAM pool: the library
//! is then a plain malloc replacement. A malformed configuration prints one
//! line naming the bad token and exits with status 2 (`exit_status_invalid`,
//! libhmalloc's for a bad HMALLOC_POLICY) before the program runs any further
//! (memkind segfaults on several of them).
//!
//! Pointers we did not allocate (memory the dynamic loader allocated before
//! we served, a static allocator's blocks) are recognised by the page map
//! without touching them: `free` ignores them (logging at level ≥ 1) and
//! `malloc_usable_size` says 0, where reading a header would crash.
//!
//! Statistics per tier (allocations, fallbacks, bytes now and at peak) are
//! kept when log level ≥ 1 (thread_state.zig folds them into process totals),
//! and at exit one summary line per tier is printed. Nothing is
//! unmapped at exit: other destructors and stdio's final flush still use the
//! heap (memkind loses the program's last output by unmapping FS_DAX tiers).
//!
//! This file is also the root of the `memtier` module (zig-src/src/memtier/):
//! it re-exports the folder's other files, and in a test build references
//! them all, so `zig build test` runs their tests.
const std = @import("std");
const assert = std.debug.assert;
const linux = std.os.linux;
pub const tier_spec = @import("tier_spec.zig");
pub const tier_ratio = @import("tier_ratio.zig");
const pool_mod = @import("alloc").pool;
const registry = @import("alloc").registry;
const report = @import("alloc").report;
const size_class = @import("alloc").size_class;
const thread_cache = @import("alloc").thread_cache;
pub const tier_nodes = @import("tier_nodes.zig");
pub const thread_state = @import("thread_state.zig");
/// libmemtier's free and realloc book through these (thread_state.zig).
pub const account = thread_state.account;
pub const noteFree = thread_state.noteFree;
const file_heap = @import("alloc").file_heap;
const Lock = @import("alloc").lock.Lock;

comptime {
    std.testing.refAllDecls(@This()); // in test builds only: the folder's files and their tests
}
const Policy = @import("placement").policy.Policy;
const exit_status_invalid = @import("placement").policy_env.exit_status_invalid;

const Pool = pool_mod.Pool;
pub const max_tiers = tier_spec.max_tiers;
const no_tier: u8 = 0xff;

pub const TierStats = struct {
    allocations: std.atomic.Value(u64) = .init(0),
    fallbacks: std.atomic.Value(u64) = .init(0),
    bytes_now: std.atomic.Value(i64) = .init(0),
    bytes_peak: std.atomic.Value(i64) = .init(0),
};

pub const Tier = struct {
    kind: tier_spec.Kind,
    ratio: u32,
    pool: *Pool,
    stats: TierStats = .{},
};

pub var tiers: [max_tiers]Tier = undefined;
pub var tier_count: usize = 0;
/// pool slot → tier index (no_tier for pools that are not tiers).
pub var slot_tier: [pool_mod.max_pools]u8 = @splat(no_tier);
pub var config: tier_ratio.Config = undefined;
/// Bit i set: tier i had no room for a block a chunk serves, which another tier then
/// served, since its last free or success. Only a hint about what to try first: a request
/// is never refused because of it (see `allocate`).
pub var full_mask: std.atomic.Value(tier_ratio.TierMask) = .init(0);
pub var log_level: u8 = 0;
/// Statistics per tier are kept only when they will be printed (log level ≥ 1): the two-tier
/// hot path then skips their bookkeeping.
pub var keep_stats: bool = false;

const State = enum(u8) { uninitialised, initialising, ready };
var state: std.atomic.Value(State) = .init(.uninitialised);
var init_lock: std.c.pthread_mutex_t = .{};
pub threadlocal var initialising_here: bool = false;

/// The pool an allocation of `size` bytes goes to, and its tier.
pub const Choice = struct { pool: *Pool, tier: u8 };

/// Set once loaded when there is nothing to choose or count (one tier, log
/// level 0): malloc and free then go straight to this pool.
pub var plain_pool: ?*Pool = null;
/// plain_pool is the default pool (DRAM alone): malloc is hmalloc's path.
pub var plain_default: bool = false;

pub inline fn isReady() bool {
    return state.load(.acquire) == .ready;
}

/// Makes sure the configuration is loaded. Returns false while this very
/// thread is loading it (nested allocations then use the DRAM pool).
pub fn ensureReady() bool {
    if (isReady()) return true;
    if (initialising_here) return false;
    _ = std.c.pthread_mutex_lock(&init_lock);
    defer _ = std.c.pthread_mutex_unlock(&init_lock);
    if (state.load(.acquire) == .ready) return true;
    initialising_here = true;
    defer initialising_here = false;
    state.store(.initialising, .release);
    load();
    if (tier_count <= 1 and log_level == 0) {
        plain_pool = tiers[0].pool;
        plain_default = tiers[0].pool == registry.defaultPool();
    } else {
        registry.retire_freed_hook = thread_state.retireCachedFrees;
    }
    state.store(.ready, .release);
    return true;
}

fn load() void {
    report.prefix = "memtier";
    log_level = readLogLevel();
    keep_stats = log_level >= 1;
    const dram = registry.defaultPool();
    const tiers_text = getenv("MEMKIND_MEM_TIERS") orelse {
        addTier(.dram, 1, dram);
        logInfo("MEMKIND_MEM_TIERS is not set: one DRAM tier (plain malloc replacement)", .{});
        return;
    };
    const parsed = tier_spec.parse(tiers_text, getenv("MEMKIND_MEM_THRESHOLDS"));
    const spec = switch (parsed) {
        .spec => |s| s,
        .failure => |f| {
            var buf: [tier_spec.message_bytes_max]u8 = undefined;
            const line = f.message(&buf);
            report.writeAll(line);
            report.writeAll("\n");
            std.c._exit(exit_status_invalid);
        },
    };
    config = tier_ratio.Config.init(&spec);
    for (spec.tiers()) |t| {
        const p = switch (t.kind) {
            .dram => dram,
            .kmem_dax => kmemDaxPool(),
            .fs_dax => fsDaxPool(t.path, t.pmem_size_limit_bytes),
        };
        addTier(t.kind, t.ratio, p);
    }
    if (std.c.pthread_key_create(&thread_state.thread_key, thread_state.threadExit) != .SUCCESS) thread_state.thread_key = std.math.maxInt(std.c.pthread_key_t);
    _ = std.c.pthread_atfork(thread_state.forkPrepare, thread_state.forkParent, thread_state.forkChild);
    for (tiers[0..tier_count], 0..) |t, i| logInfo("tier {d}: {s}, ratio {d}", .{ i, t.kind.name(), t.ratio });
}

fn addTier(kind: tier_spec.Kind, ratio: u32, p: *Pool) void {
    tiers[tier_count] = .{ .kind = kind, .ratio = ratio, .pool = p };
    slot_tier[p.slot] = @intCast(tier_count);
    tier_count += 1;
}

fn kmemDaxPool() *Pool {
    var why: [256]u8 = undefined;
    const nodes = tier_nodes.kmemDaxNodes(getenv("MEMKIND_DAX_KMEM_NODES"), &why) orelse
        fatal("KMEM_DAX: {s}", .{std.mem.sliceTo(&why, 0)});
    var policy: Policy = .{};
    policy.mode = .bind;
    policy.nodes = nodes;
    if (policy.validate()) |_| fatal("KMEM_DAX: the nodes found cannot be bound to", .{});
    return registry.create(&policy, .anonymous) orelse fatal("KMEM_DAX: cannot create its pool", .{});
}

fn fsDaxPool(path: []const u8, limit_bytes: u64) *Pool {
    var z: [4096]u8 = undefined;
    if (path.len >= z.len) fatal("FS_DAX: PATH too long", .{});
    @memcpy(z[0..path.len], path);
    z[path.len] = 0;
    const heap = file_heap.create(@ptrCast(&z), limit_bytes) catch |err| switch (err) {
        error.CannotCreateFile => fatal("FS_DAX: cannot create a file in PATH \"{s}\"", .{path}),
        error.CannotMap => fatal("FS_DAX: cannot map a file in PATH \"{s}\"", .{path}),
    };
    if (limit_bytes == 0 or heap.limit_bytes < limit_bytes)
        logInfo("FS_DAX in \"{s}\": holds at most {d} bytes (the free space of its filesystem)", .{ path, heap.limit_bytes });
    const policy: Policy = .{};
    return registry.create(&policy, .{ .file = heap }) orelse fatal("FS_DAX: cannot create its pool", .{});
}

fn fatal(comptime fmt: []const u8, args: anytype) noreturn {
    var buf: [512]u8 = undefined;
    const line = std.fmt.bufPrint(&buf, tier_spec.log_error_prefix ++ fmt ++ "\n", args) catch buf[0..0];
    report.writeAll(line);
    std.c._exit(exit_status_invalid);
}

pub fn logInfo(comptime fmt: []const u8, args: anytype) void {
    if (log_level < 1) return;
    var buf: [512]u8 = undefined;
    const line = std.fmt.bufPrint(&buf, "MEMKIND_MEM_TIERING_LOG_INFO: " ++ fmt ++ "\n", args) catch return;
    report.writeAll(line);
}

fn readLogLevel() u8 {
    const text = getenv("MEMKIND_MEM_TIERING_LOG_LEVEL") orelse return 0;
    const level = std.fmt.parseInt(u8, text, 10) catch fatal("MEMKIND_MEM_TIERING_LOG_LEVEL: bad value \"{s}\": expected 0, 1 or 2", .{text});
    if (level > 2) fatal("MEMKIND_MEM_TIERING_LOG_LEVEL: bad value \"{s}\": expected 0, 1 or 2", .{text});
    return level;
}

fn getenv(name: [*:0]const u8) ?[]const u8 {
    const value = std.c.getenv(name) orelse return null;
    return std.mem.span(value);
}

// ---- the per-allocation path ----------------------------------------------------

/// Allocates `size` bytes (aligned if `alignment` > 0, zeroed if asked) from
/// the tier the ratio logic picks, falling back to the tiers with room.
pub fn allocate(size: usize, alignment: usize, zeroed: bool) ?[*]u8 {
    if (tier_count <= 1 or !isReady()) {
        @branchHint(.likely);
        const p = registry.defaultPool();
        const block = allocFrom(p, size, alignment, zeroed) orelse return null;
        if (log_level > 0 and isReady()) thread_state.account(0, @intCast(usableFor(block, size, alignment)), false);
        return block;
    }
    const ts = thread_state.threadState() orelse return allocateUntracked(size, alignment, zeroed);
    const marked = full_mask.load(.monotonic);
    var failed: tier_ratio.TierMask = 0;
    if (size <= ts.credit_bytes) {
        @branchHint(.likely);
        // STATIC_RATIO within a credit: the tier chosen last time, unless marked full since.
        const index = ts.credit_tier;
        const bit = @as(tier_ratio.TierMask, 1) << @intCast(index);
        if (marked & bit == 0) {
            if (alignment == 0 and !zeroed and size <= size_class.small_max_bytes) {
                if (borrowCached(ts, size, marked)) |block| return block;
            }
            if (allocFrom(tiers[index].pool, size, alignment, zeroed)) |block| {
                @branchHint(.likely);
                const usable = usableFor(block, size, alignment);
                if (usable <= ts.credit_bytes) {
                    @branchHint(.likely);
                    ts.credit_bytes -= usable;
                    ts.credit_allocs += 1;
                    return block;
                }
                // An aligned block bigger than the credit's rest: booked as a block of its own.
                thread_state.endCredit(ts);
                thread_state.accountAlloc(ts, index, @intCast(usable));
                return block;
            }
            failed = bit;
        }
    }
    return allocateChoosing(ts, marked, failed, size, alignment, zeroed);
}

/// `allocate`'s fast path, inlined into malloc: a small block (≤ 32 KiB) on the thread's STATIC_RATIO
/// credit, popped from its cache of the credit's tier. Null (nothing changed) whenever that is
/// not the whole story — no state or credit yet, too little credit left, an empty cache — and
/// malloc then takes `allocate`.
pub inline fn allocateOnCredit(size: usize) ?[*]u8 {
    if (size > size_class.small_max_bytes) return null;
    // Both thread-locals from one look-up of the thread's slots.
    const slots = thread_cache.tlsSlots();
    const ts: *thread_state.ThreadState = @ptrCast(@alignCast(slots[@backingInt(thread_cache.TlsSlot.memtier_state)] orelse return null));
    const key = if (size <= size_class.lookup_max_bytes) size_class.keyOfLookup(size) else size_class.keyOf(size_class.classByArithmetic(size));
    const usable = size_class.sizeOfKey(key);
    if (usable > ts.credit_bytes) return null;
    const tc: *thread_cache.ThreadCache = @ptrCast(@alignCast(slots[@backingInt(thread_cache.TlsSlot.thread_cache)] orelse return null));
    const block = pool_mod.allocCachedIn(tc, ts.credit_slot, key) orelse return borrowOnCredit(ts, key, usable);
    ts.credit_bytes -= usable;
    ts.credit_allocs += 1;
    return block;
}

/// allocateOnCredit when the credit tier's cache has no block of the class: one from the
/// thread's cache of the credit's borrow tier (see `borrowCached`), within the borrow budget.
inline fn borrowOnCredit(ts: *thread_state.ThreadState, key: usize, usable: usize) ?[*]u8 {
    if (usable > ts.borrow_budget) return null;
    const block = pool_mod.allocCachedByKey(ts.borrow_slot, key) orelse return null;
    ts.borrow_budget -= usable;
    ts.borrowed_bytes[ts.borrow_tier] += usable;
    ts.borrowed_allocs[ts.borrow_tier] += 1;
    return block;
}

/// A small block on credit when the credit tier's cache has none: from this thread's cache of
/// another tier, booked there (`ThreadState.borrowed_bytes`), within the credit's borrow budget.
/// A thread's frees go to the caches of their blocks' tiers while its allocations come from
/// the credit tier's: without borrowing, one cache empties and the other fills, and the blocks
/// travel back through the bins — glibc's thread benchmark made 4,600 refills and 4,550
/// flushes per 2.5M operations with two tiers (13 and 63 with one), which two threads then
/// fought over (2.2-2.6x the one-tier time). Reusing a freed block in its own tier also keeps
/// the live split where it was.
fn borrowCached(ts: *thread_state.ThreadState, size: usize, marked: tier_ratio.TierMask) ?[*]u8 {
    const key = if (size <= size_class.lookup_max_bytes) size_class.keyOfLookup(size) else size_class.keyOf(size_class.classByArithmetic(size));
    const usable = size_class.sizeOfKey(key);
    if (usable > ts.credit_bytes) return null;
    // The credit tier's own cache first (the fast path may not have tried: not malloc).
    if (pool_mod.allocCachedByKey(ts.credit_slot, key)) |block| {
        ts.credit_bytes -= usable;
        ts.credit_allocs += 1;
        return block;
    }
    if (usable > ts.borrow_budget) return null;
    for (tiers[0..tier_count], 0..) |*tier, index| {
        if (index == ts.credit_tier or (marked >> @intCast(index)) & 1 != 0) continue;
        const block = pool_mod.allocCachedByKey(tier.pool.slot, key) orelse continue;
        ts.borrow_budget -= usable;
        ts.borrowed_bytes[index] += usable;
        ts.borrowed_allocs[index] += 1;
        return block;
    }
    return null;
}

/// `allocate`'s choice through the ledger: the tier `choose` picks, then the others with room.
/// `failed`: tiers that already failed this request.
fn allocateChoosing(ts: *thread_state.ThreadState, marked: tier_ratio.TierMask, failed_before: tier_ratio.TierMask, size: usize, alignment: usize, zeroed: bool) ?[*]u8 {
    // The choice sees the ledger as it is: no credit outstanding, every free booked.
    thread_state.endCredit(ts);
    thread_state.foldFrees(ts, false);
    var hint = marked;
    // Tiers that failed this request: a failure concerns this request only.
    var failed = failed_before;
    while (true) {
        const index = ts.ledger.choose(&config, size, hint | failed) orelse {
            if (hint & ~failed == 0) break;
            hint = 0; // Tiers marked full by other requests: still tried before failing this one.
            continue;
        };
        const bit = @as(tier_ratio.TierMask, 1) << @intCast(index);
        var usable: usize = undefined;
        if (allocSized(tiers[index].pool, size, alignment, zeroed, &usable)) |block| {
            @branchHint(.likely);
            if (failed | (marked & bit) != 0) noteFallback(ts, index, failed, size, alignment);
            if (config.policy == .static_ratio) {
                thread_state.grantCredit(ts, index, usable);
            } else {
                thread_state.accountAlloc(ts, index, @intCast(usable));
            }
            return block;
        }
        failed |= bit;
    }
    // Every tier failed: nothing shared was changed (no tier is marked full by a request
    // that fails everywhere, such as malloc(64 GiB)).
    report.setErrno(.NOMEM);
    return null;
}

/// A request served by `index` after `failed` tiers could not: counted as a fallback, and when
/// the request was one a chunk serves, each failed tier is marked full (it could not even map a
/// chunk). A huge request failing says nothing about the room for others and marks nothing.
/// A success in a tier marked full clears its mark.
fn noteFallback(ts: *thread_state.ThreadState, index: usize, failed: tier_ratio.TierMask, size: usize, alignment: usize) void {
    @branchHint(.cold);
    const bit = @as(tier_ratio.TierMask, 1) << @intCast(index);
    assert(failed & bit == 0);
    if (full_mask.load(.monotonic) & bit != 0) _ = full_mask.fetchAnd(~bit, .monotonic);
    if (failed == 0) return;
    if (keep_stats) ts.delta_fallbacks[index] += 1;
    if (size <= pool_mod.large_max_bytes and alignment <= pool_mod.page_bytes) _ = full_mask.fetchOr(failed, .monotonic);
}

/// An allocation without a thread state (while the configuration loads, or in a thread's
/// last destructors): the first tier, booked to the shared counts.
fn allocateUntracked(size: usize, alignment: usize, zeroed: bool) ?[*]u8 {
    @branchHint(.cold);
    const block = allocFrom(tiers[0].pool, size, alignment, zeroed) orelse return null;
    if (thread_state.thread_exited) thread_state.accountShared(0, @intCast(usableFor(block, size, alignment)));
    return block;
}

inline fn allocFrom(p: *Pool, size: usize, alignment: usize, zeroed: bool) ?[*]u8 {
    if (zeroed) return p.allocZeroed(1, size);
    if (alignment > 0) return p.allocAligned(alignment, size);
    return p.alloc(size);
}

/// allocFrom, also giving the block's usable size (known from its class for a small malloc).
inline fn allocSized(p: *Pool, size: usize, alignment: usize, zeroed: bool, usable: *usize) ?[*]u8 {
    if (!zeroed and alignment == 0 and size <= size_class.small_max_bytes) {
        const class = size_class.classOf(size);
        usable.* = size_class.sizeOf(class);
        return p.allocClass(class);
    }
    const block = allocFrom(p, size, alignment, zeroed) orelse return null;
    usable.* = usableFor(block, size, alignment);
    return block;
}

inline fn usableFor(block: [*]u8, size: usize, alignment: usize) usize {
    if (alignment > 0) return pool_mod.usableSize(block, "aligned_alloc");
    return size_class.usableSizeFor(size);
}

/// The tier of a block (no_tier if its pool is not one).
pub inline fn tierOf(p: *Pool) usize {
    return slot_tier[p.slot];
}

/// At exit (level ≥ 1): one line per tier. Unmaps nothing.
pub fn summary() void {
    if (log_level < 1 or !isReady()) return;
    if (thread_state.currentState()) |ts| {
        thread_state.endCredit(ts);
        thread_state.foldFrees(ts, false);
        thread_state.flushAll(ts);
    }
    for (tiers[0..tier_count], 0..) |*t, i| {
        logInfo("tier {d} {s}: {d} bytes now, {d} bytes peak, {d} allocations, {d} fallbacks", .{
            i,                                    t.kind.name(),
            t.stats.bytes_now.load(.monotonic),   t.stats.bytes_peak.load(.monotonic),
            t.stats.allocations.load(.monotonic), t.stats.fallbacks.load(.monotonic),
        });
    }
}

pub fn tierCount() usize {
    return tier_count;
}

comptime {
    assert(max_tiers <= no_tier);
    _ = size_class;
}
