//! libmemtier.so's C ABI: the whole malloc family, interposed with LD_PRELOAD.
//!
//! Thin: each function checks its arguments as glibc documents them, then
//! asks memtier.zig for a tier and pool.zig for the block. Everything that a
//! program may pass to free() comes from here: malloc, calloc, realloc,
//! reallocarray, posix_memalign, aligned_alloc, memalign, valloc, pvalloc —
//! memkind's libmemtier missed the last four, so freeing their memory crashed.
//! malloc(0) returns a unique block (memkind returned NULL, which breaks
//! grep); free(NULL) does nothing and allocates nothing.
//!
//! C++'s operator new and delete come here too (cxx_operators.zig).
//!
//! These work before the library's constructor runs (the dynamic loader and
//! libc allocate early): the first call loads the configuration.
const std = @import("std");
const linux = std.os.linux;
const pool_mod = @import("alloc").pool;
const memtier = @import("memtier");
const report = @import("alloc").report;
const size_class = @import("alloc").size_class;

const page_bytes = size_class.page_size_bytes;

comptime {
    _ = @import("cxx_operators.zig"); // C++'s operator new and delete
}

fn constructor() callconv(.c) void {
    _ = memtier.ensureReady();
}
fn destructor() callconv(.c) void {
    memtier.summary();
}
export const memtier_init_array linksection(".init_array") = &constructor;
export const memtier_fini_array linksection(".fini_array") = &destructor;

inline fn allocate(size: usize, alignment: usize, zeroed: bool) ?*anyopaque {
    _ = memtier.ensureReady();
    return memtier.allocate(size, alignment, zeroed);
}

pub export fn malloc(size: usize) ?*anyopaque {
    if (memtier.plain_default) {
        @branchHint(.likely);
        return pool_mod.allocDefault(size);
    }
    if (memtier.allocateOnCredit(size)) |block| return block;
    return mallocTiered(size);
}

/// malloc with tiers to choose from, a tier other than DRAM alone, or before
/// the configuration is loaded (kept out of line: malloc stays a leaf).
fn mallocTiered(size: usize) ?*anyopaque {
    if (memtier.plain_pool) |p| return p.alloc(size);
    return allocate(size, 0, false);
}

export fn calloc(nmemb: usize, size: usize) ?*anyopaque {
    const total = std.math.mul(usize, nmemb, size) catch return report.fail(.NOMEM);
    return allocate(total, 0, true);
}

pub export fn free(ptr: ?*anyopaque) void {
    const address = @intFromPtr(ptr);
    if (memtier.plain_pool != null) {
        @branchHint(.likely);
        return pool_mod.freeOrForeign(address, "free", foreignFree);
    }
    if (address == 0) return;
    freeTiered(address);
}

/// free with tiers to account (out of line: free stays a leaf).
fn freeTiered(address: usize) void {
    pool_mod.freeCounted(address, "free", foreignFree, memtier.noteFree);
}

/// A pointer from before we served (the dynamic loader's early blocks) or
/// from a static allocator: not ours to free, and reading it could crash.
fn foreignFree(address: usize) void {
    memtier.logInfo("free(0x{x}): not allocated by memtier, ignored", .{address});
}

export fn realloc(ptr: ?*anyopaque, size: usize) ?*anyopaque {
    const address = @intFromPtr(ptr orelse return malloc(size));
    if (size == 0) {
        free(ptr);
        return null;
    }
    _ = memtier.ensureReady();
    const owner = pool_mod.ownerOf(address, "realloc");
    const old_size = pool_mod.ownedSize(owner);
    const p = pool_mod.ownedPool(owner);
    const fresh = pool_mod.realloc(ptr, size, "realloc", p) orelse return reallocElsewhere(ptr, old_size, size);
    const tier = memtier.tierOf(p);
    // Moved, or a huge block grown in place (mremap): the ledger follows.
    if (tier < memtier.max_tiers and (@intFromPtr(fresh) != address or size > old_size)) {
        memtier.account(tier, -@as(i64, @intCast(old_size)), false);
        memtier.account(tier, @intCast(pool_mod.usableSize(fresh, "realloc")), false);
    }
    return fresh;
}

/// realloc when the block's own tier has no room for `size`: a block from the tiers with room
/// (as malloc would pick, with its fallback), the contents copied, the old block freed. With
/// one tier there is nowhere else to go: NULL, the block untouched.
fn reallocElsewhere(ptr: ?*anyopaque, old_size: usize, size: usize) ?*anyopaque {
    @branchHint(.cold);
    if (memtier.tierCount() <= 1) return null;
    const saved = std.c._errno().*;
    const fresh = memtier.allocate(size, 0, false) orelse return null;
    std.c._errno().* = saved;
    const keep = @min(old_size, size);
    @memcpy(fresh[0..keep], @as([*]const u8, @ptrCast(ptr))[0..keep]);
    free(ptr);
    return fresh;
}

export fn reallocarray(ptr: ?*anyopaque, nmemb: usize, size: usize) ?*anyopaque {
    const total = std.math.mul(usize, nmemb, size) catch return report.fail(.NOMEM);
    return realloc(ptr, total);
}

export fn posix_memalign(memptr: *?*anyopaque, alignment: usize, size: usize) c_int {
    if (alignment < @sizeOf(usize) or !std.math.isPowerOfTwo(alignment)) return @backingInt(linux.E.INVAL);
    const saved = std.c._errno().*;
    const p = allocate(size, alignment, false) orelse return @backingInt(linux.E.NOMEM);
    std.c._errno().* = saved;
    memptr.* = p;
    return 0;
}

pub export fn aligned_alloc(alignment: usize, size: usize) ?*anyopaque {
    if (alignment == 0 or !std.math.isPowerOfTwo(alignment)) return report.fail(.INVAL);
    return allocate(size, alignment, false);
}

export fn memalign(alignment: usize, size: usize) ?*anyopaque {
    // glibc rounds a non-power-of-two alignment up instead of failing.
    if (alignment == 0) return malloc(size);
    const a = std.math.ceilPowerOfTwo(usize, alignment) catch return report.fail(.INVAL);
    return allocate(size, a, false);
}

export fn valloc(size: usize) ?*anyopaque {
    return allocate(size, page_bytes, false);
}

export fn pvalloc(size: usize) ?*anyopaque {
    const rounded = std.math.add(usize, size, page_bytes - 1) catch return report.fail(.NOMEM);
    return allocate(@max(rounded & ~(page_bytes - 1), page_bytes), page_bytes, false);
}

export fn malloc_usable_size(ptr: ?*anyopaque) usize {
    const address = @intFromPtr(ptr orelse return 0);
    if (!pool_mod.isOurs(address)) return 0;
    return pool_mod.usableSize(ptr, "malloc_usable_size");
}
