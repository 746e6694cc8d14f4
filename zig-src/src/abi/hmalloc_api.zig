//! libhmalloc.so's C ABI: the functions of include/hmalloc.h.
//!
//! Thin by design: each export checks its arguments the way malloc(3),
//! posix_memalign(3) and mmap(2) specify, then delegates to pool.zig /
//! registry.zig / residency_api.zig. The library constructor loads the
//! policy from the environment before `main`, so a bad policy stops the
//! program there (policy_env.zig) rather than at its first hmalloc.
const std = @import("std");
const linux = std.os.linux;
const pool_mod = @import("alloc").pool;
const registry = @import("alloc").registry;
const report = @import("alloc").report;
const chunk_source = @import("alloc").chunk_source;
const policy_mod = @import("placement").policy;
const sysfs = @import("placement").sysfs;

const Pool = pool_mod.Pool;

comptime {
    _ = @import("residency_api.zig");
}

fn constructor() callconv(.c) void {
    pinLoaded();
    _ = registry.defaultPool();
}

const DlInfo = extern struct {
    fname: ?[*:0]const u8,
    fbase: ?*anyopaque,
    sname: ?[*:0]const u8,
    saddr: ?*anyopaque,
};
extern "c" fn dladdr(address: *const anyopaque, info: *DlInfo) c_int;

/// Makes dlclose() of this library a no-op (RTLD_NODELETE). Threads that
/// used hmalloc have a pthread key destructor pointing into this library, and
/// pools' memory outlives any handle: unmapping the code would crash those
/// threads at exit (seen with Deno, which dlcloses FFI libraries).
fn pinLoaded() void {
    var info: DlInfo = undefined;
    if (dladdr(@ptrCast(&constructor), &info) == 0) return;
    const path = info.fname orelse return;
    _ = std.c.dlopen(path, .{ .NOW = true, .NOLOAD = true, .NODELETE = true });
}
export const hmalloc_init_array linksection(".init_array") = &constructor;

export fn hmalloc(size: usize) ?*anyopaque {
    return pool_mod.allocDefault(size);
}

export fn hcalloc(nmemb: usize, size: usize) ?*anyopaque {
    return registry.defaultPool().allocZeroed(nmemb, size);
}

export fn hrealloc(ptr: ?*anyopaque, size: usize) ?*anyopaque {
    const default_pool = registry.defaultPool();
    if (ptr != null and size == 0) {
        // glibc's realloc(p, 0): frees p and returns NULL.
        pool_mod.free(ptr, "hrealloc");
        return null;
    }
    return pool_mod.realloc(ptr, size, "hrealloc", default_pool);
}

export fn hfree(ptr: ?*anyopaque) void {
    pool_mod.free(ptr, "hfree");
}

export fn haligned_alloc(alignment: usize, size: usize) ?*anyopaque {
    if (alignment == 0 or !std.math.isPowerOfTwo(alignment)) return report.fail(.INVAL);
    return registry.defaultPool().allocAligned(alignment, size);
}

export fn hposix_memalign(memptr: *?*anyopaque, alignment: usize, size: usize) c_int {
    if (alignment < @sizeOf(usize) or !std.math.isPowerOfTwo(alignment)) return @backingInt(linux.E.INVAL);
    const saved = std.c._errno().*;
    const p = registry.defaultPool().allocAligned(alignment, size) orelse return @backingInt(linux.E.NOMEM);
    std.c._errno().* = saved; // posix_memalign reports through its result only
    memptr.* = p;
    return 0;
}

export fn hmalloc_usable_size(ptr: ?*anyopaque) usize {
    return pool_mod.usableSize(ptr, "hmalloc_usable_size");
}

export fn hmmap(addr: ?*anyopaque, length: usize, prot: c_int, flags: c_int, fd: c_int, offset: i64) *anyopaque {
    return poolMap(registry.defaultPool(), addr, length, prot, flags, fd, offset);
}

export fn hmunmap(addr: ?*anyopaque, length: usize) c_int {
    const rc = linux.munmap(@ptrCast(addr), length);
    if (linux.errno(rc) != .SUCCESS) {
        report.setErrno(linux.errno(rc));
        return -1;
    }
    return 0;
}

const map_failed: *anyopaque = @ptrFromInt(std.math.maxInt(usize));

fn poolMap(p: *Pool, addr: ?*anyopaque, length: usize, prot: c_int, flags: c_int, fd: c_int, offset: i64) *anyopaque {
    const rc = linux.syscall6(.mmap, @intFromPtr(addr), length, @as(u32, @bitCast(prot)), @as(u32, @bitCast(flags)), @as(usize, @bitCast(@as(isize, fd))), @bitCast(offset));
    if (linux.errno(rc) != .SUCCESS) {
        report.setErrno(linux.errno(rc));
        return map_failed;
    }
    var calls: usize = 0;
    const e = p.policy.applyCounted(rc, length, &calls);
    _ = p.stats.mbind_calls.fetchAdd(calls, .monotonic);
    if (e != .SUCCESS) {
        _ = linux.munmap(@ptrFromInt(rc), length);
        report.setErrno(e);
        return map_failed;
    }
    chunk_source.keepSmallPagesIfInterleaved(&p.policy, rc, length);
    return @ptrFromInt(rc);
}

// ---- pools ------------------------------------------------------------------

export fn hm_pool_create(spec: ?[*:0]const u8, err_buf: ?[*]u8, err_size: usize) ?*Pool {
    const text = std.mem.span(spec orelse {
        writeError(err_buf, err_size, "policy is NULL");
        report.setErrno(.INVAL);
        return null;
    });
    var message: [256]u8 = undefined;
    const policy = policy_mod.Policy.parseChecked(text, &message) catch |e| {
        writeError(err_buf, err_size, message[0..std.mem.indexOfScalar(u8, &message, 0).?]);
        report.setErrno(if (e == error.OutOfMemory) .NOMEM else .INVAL);
        return null;
    };
    return registry.create(&policy, .anonymous) orelse {
        writeError(err_buf, err_size, "no free pool slot or out of memory");
        return null;
    };
}

fn writeError(buf: ?[*]u8, size: usize, message: []const u8) void {
    const out = buf orelse return;
    if (size == 0) return;
    const n = @min(message.len, size - 1);
    @memcpy(out[0..n], message[0..n]);
    out[n] = 0;
}

export fn hm_pool_destroy(p: ?*Pool) void {
    const pool = p orelse return;
    if (pool.slot == 0) return; // the default pool lives as long as the process
    registry.destroy(pool);
}

export fn hm_default_pool() *Pool {
    return registry.defaultPool();
}

export fn hm_pool_malloc(p: *Pool, size: usize) ?*anyopaque {
    return p.alloc(size);
}

export fn hm_pool_calloc(p: *Pool, nmemb: usize, size: usize) ?*anyopaque {
    return p.allocZeroed(nmemb, size);
}

export fn hm_pool_aligned_alloc(p: *Pool, alignment: usize, size: usize) ?*anyopaque {
    if (alignment == 0 or !std.math.isPowerOfTwo(alignment)) return report.fail(.INVAL);
    return p.allocAligned(alignment, size);
}

export fn hm_pool_mmap(p: *Pool, addr: ?*anyopaque, length: usize, prot: c_int, flags: c_int, fd: c_int, offset: i64) *anyopaque {
    return poolMap(p, addr, length, prot, flags, fd, offset);
}

export fn hm_pool_policy(p: *Pool, buf: ?[*]u8, size: usize) c_int {
    var text: [4096]u8 = undefined;
    const s = p.policy.format(&text);
    if (buf) |out| if (size > 0) {
        const n = @min(s.len, size - 1);
        @memcpy(out[0..n], s[0..n]);
        out[n] = 0;
    };
    return @intCast(s.len);
}

/// mbind calls made so far for a pool (chunks, huge blocks, hmmap): lets the
/// tests and benchmarks prove the ≤ 512 per GiB bound from inside.
export fn hm_pool_mbind_calls(p: *Pool) u64 {
    return p.stats.mbind_calls.load(.monotonic);
}

/// Bytes of address space a pool holds in chunks and huge mappings.
export fn hm_pool_mapped_bytes(p: *Pool) u64 {
    return p.stats.mapped_bytes.load(.monotonic) + p.stats.huge_bytes.load(.monotonic);
}

comptime {
    _ = sysfs;
    _ = chunk_source;
}
