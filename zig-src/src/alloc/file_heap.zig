//! The FS_DAX tier's file: one reservation, mapped once, no descriptor kept.
//!
//! What: at the tier's creation, a file is created in PATH (O_TMPFILE, else a named file
//! unlinked at once), sized with ftruncate to the whole reservation (sparse: no storage yet),
//! and mapped shared in one piece (PROT_NONE, MAP_NORESERVE). Then its descriptor is closed.
//! Chunks and huge blocks are ranges of that mapping: `take` finds free granules in a bitmap,
//! makes the range readable and writable (mprotect); `give` punches the range's pages out of
//! the file by address (madvise MADV_REMOVE) and makes it inaccessible again. Storage is
//! allocated by the filesystem when a page is first written.
//!
//! Why no descriptor: a descriptor the allocator keeps is one the program can see, close or be
//! handed. A program started with stdout closed got the heap file as fd 1 and printed into its
//! own heap; one that closed every fd >= 3 and opened a file got that file used as heap. With
//! the fd closed before the first allocation returns, the program's descriptors are its own
//! (the file is only reachable through the mapping, which also keeps it alive). Freeing needs
//! no descriptor and no /proc (freeing used to read /proc/self/maps for the file offset, and
//! kept the bytes when that open failed), and freed ranges are found again by the bitmap
//! (offsets used to come from a bump pointer: ext4's 16 TiB file limit ended a tier after
//! 2,047 rounds of malloc(8 GiB)/free).
//!
//! Limits: `limit_bytes` bounds the bytes handed out (PMEM_SIZE_LIMIT, page-granular) and is
//! at most the filesystem's free space at creation, so a tier on a filesystem smaller than its
//! cap falls back instead of faulting. The address reservation is twice that plus a granule
//! (a huge block takes whole granules: a 2 MiB + 4 KiB block holds one 4 MiB granule), capped
//! by `reservation_max_bytes`, by RLIMIT_FSIZE (ftruncate past it raises SIGXFSZ) and by a
//! quarter of RLIMIT_AS when one is set.
//!
//! Trade-off: storage is no longer reserved before use (the old code fallocate'd each chunk,
//! ~1 ms per MiB on tmpfs here, through the descriptor this design gives up). If another
//! process fills the filesystem after the tier was created, touching a page the tier handed
//! out raises SIGBUS, as with any shared file mapping. Callers serialise calls (the pool's page
//! lock).
const std = @import("std");
const assert = std.debug.assert;
const linux = std.os.linux;
const page_map = @import("page_map.zig");

pub const granule_bytes = page_map.granule_bytes;
const page_bytes = std.heap.page_size_min;
/// The largest reservation (64 TiB of addresses; also huge.zig's largest block).
pub const reservation_max_bytes: u64 = @as(u64, 1) << 46;

pub const FileHeap = struct {
    /// The reservation: [base, base + granules * granule_bytes), granule-aligned.
    base: usize,
    granules: usize,
    /// Bit i set: granule i is (part of) a range handed out.
    used: [*]u64,
    /// Bytes handed out (page-granular) and the most that may be.
    used_bytes: u64 = 0,
    limit_bytes: u64,
    /// No granule below this one is free.
    lowest_free: usize = 0,

    /// A range of `length` bytes (a multiple of the page size) aligned to `alignment` (a
    /// power of two >= a granule), readable and writable; null when the limit or the
    /// reservation has no room for it (nothing changed then).
    pub fn take(heap: *FileHeap, length: usize, alignment: usize) ?usize {
        assert(length > 0 and length % page_bytes == 0);
        assert(alignment >= granule_bytes and std.math.isPowerOfTwo(alignment));
        if (length > heap.limit_bytes - heap.used_bytes) return null;
        const n = std.math.divCeil(usize, length, granule_bytes) catch unreachable;
        const first = heap.findFree(n, alignment / granule_bytes) orelse return null;
        const address = heap.base + first * granule_bytes;
        if (linux.errno(linux.mprotect(@ptrFromInt(address), length, .{ .READ = true, .WRITE = true })) != .SUCCESS) return null;
        heap.mark(first, n, true);
        if (first == heap.lowest_free) heap.lowest_free = first + n;
        heap.used_bytes += length;
        assert(heap.used_bytes <= heap.limit_bytes);
        return address;
    }

    /// Gives back what `take(length, _)` returned at `address`: its pages leave the file
    /// (storage back to the filesystem) and the range can be taken again.
    pub fn give(heap: *FileHeap, address: usize, length: usize) void {
        removePages(address, length);
        heap.giveRemoved(address, length);
    }

    /// `give`'s first half, the slow one (MADV_REMOVE of a few MiB takes a millisecond on
    /// tmpfs): the range's pages leave the file and the range becomes inaccessible. Touches
    /// no state of the heap, so it needs no lock: the range stays handed out (nobody else can
    /// take it) until `giveRemoved`.
    pub fn removePages(address: usize, length: usize) void {
        // Either may fail only on a filesystem without hole punching (the bytes then stay,
        // and are written over when the range is taken again) or out of kernel memory.
        _ = linux.madvise(@ptrFromInt(address), length, linux.MADV.REMOVE);
        _ = linux.mprotect(@ptrFromInt(address), length, .{});
    }

    /// `give`'s second half: the range `removePages` emptied can be taken again.
    pub fn giveRemoved(heap: *FileHeap, address: usize, length: usize) void {
        assert(heap.owns(address) and (address - heap.base) % granule_bytes == 0);
        assert(length > 0 and length <= heap.used_bytes);
        const first = (address - heap.base) / granule_bytes;
        const n = std.math.divCeil(usize, length, granule_bytes) catch unreachable;
        assert(heap.isMarked(first, n));
        heap.mark(first, n, false);
        heap.lowest_free = @min(heap.lowest_free, first);
        heap.used_bytes -= length;
    }

    pub fn owns(heap: *const FileHeap, address: usize) bool {
        return address >= heap.base and address - heap.base < heap.granules * granule_bytes;
    }

    /// fork() child, after the live ranges were copied into private memory: unmaps the
    /// reservation's free granules, the rest of the parent's file the child will never use.
    pub fn unmapFreeInChild(heap: *FileHeap) void {
        var i: usize = 0;
        while (i < heap.granules) {
            if (heap.isMarked(i, 1)) {
                i += 1;
                continue;
            }
            var end = i + 1;
            while (end < heap.granules and !heap.isMarked(end, 1)) end += 1;
            _ = linux.munmap(@ptrFromInt(heap.base + i * granule_bytes), (end - i) * granule_bytes);
            i = end;
        }
    }

    /// First-fit: the lowest free run of `n` granules starting at a multiple of `stride`.
    fn findFree(heap: *const FileHeap, n: usize, stride: usize) ?usize {
        const base_granule = heap.base / granule_bytes;
        var i = alignedIndex(base_granule, heap.lowest_free, stride);
        while (i + n <= heap.granules) {
            const busy = heap.firstMarked(i, i + n) orelse return i;
            i = alignedIndex(base_granule, busy + 1, stride);
        }
        return null;
    }

    /// The first index >= `from` whose address is a multiple of `stride` granules.
    fn alignedIndex(base_granule: usize, from: usize, stride: usize) usize {
        return std.mem.alignForward(usize, base_granule + from, stride) - base_granule;
    }

    fn firstMarked(heap: *const FileHeap, from: usize, to: usize) ?usize {
        var i = from;
        while (i < to) {
            const word = heap.used[i / 64] >> @intCast(i % 64);
            if (word == 0) {
                i = (i / 64 + 1) * 64;
                continue;
            }
            const hit = i + @ctz(word);
            return if (hit < to) hit else null;
        }
        return null;
    }

    fn isMarked(heap: *const FileHeap, first: usize, n: usize) bool {
        for (first..first + n) |i| if (heap.used[i / 64] >> @intCast(i % 64) & 1 == 0) return false;
        return true;
    }

    fn mark(heap: *FileHeap, first: usize, n: usize, on: bool) void {
        for (first..first + n) |i| {
            const bit = @as(u64, 1) << @intCast(i % 64);
            if (on) heap.used[i / 64] |= bit else heap.used[i / 64] &= ~bit;
        }
    }
};

pub const CreateError = error{ CannotCreateFile, CannotMap };

/// A heap in a new unnamed file in `path` (NUL-terminated), holding at most `limit_bytes`
/// (0 = as much as the filesystem has free). No descriptor stays open.
pub fn create(path: [*:0]const u8, limit_bytes: u64) CreateError!FileHeap {
    const fd = createFile(path) orelse return error.CannotCreateFile;
    return fromFile(fd, limit_bytes);
}

fn createFile(path: [*:0]const u8) ?i32 {
    const rc = linux.open(path, .{ .ACCMODE = .RDWR, .TMPFILE = true, .CLOEXEC = true }, 0o600);
    if (linux.errno(rc) == .SUCCESS) return @intCast(rc);
    // No O_TMPFILE here: a named file, unlinked at once.
    const dir = std.mem.span(path);
    const name = "/memtier.XXXXXX";
    var z: [4096 + name.len + 1]u8 = undefined;
    if (dir.len > 4096) return null;
    @memcpy(z[0..dir.len], dir);
    @memcpy(z[dir.len..][0..name.len], name);
    z[dir.len + name.len] = 0;
    const fd = mkostemp(@ptrCast(&z), @bitCast(linux.O{ .CLOEXEC = true }));
    if (fd < 0) return null;
    _ = linux.unlink(@ptrCast(&z));
    return fd;
}

extern "c" fn mkostemp(template: [*:0]u8, flags: c_int) c_int;

/// Sizes and maps the file `fd` (which it closes, whatever happens) as a heap.
pub fn fromFile(fd: i32, limit_bytes: u64) CreateError!FileHeap {
    defer _ = linux.close(fd);
    var limit = @min(if (limit_bytes == 0) std.math.maxInt(u64) else limit_bytes, freeBytes(fd));
    limit = @min(limit, reservation_max_bytes / 2) / page_bytes * page_bytes;
    var reservation = std.math.mul(u64, limit, 2) catch unreachable;
    reservation = @min(reservation + granule_bytes, reservation_max_bytes, rlimitBytes(.FSIZE), rlimitBytes(.AS) / 4);
    var granules: usize = @intCast(reservation / granule_bytes);
    // A filesystem may refuse a file that large (ext4: 16 TiB): halve until it does not.
    while (granules > 0 and linux.errno(linux.ftruncate(fd, @intCast(granules * granule_bytes))) != .SUCCESS) granules /= 2;
    if (granules == 0) return error.CannotMap;
    const bytes = granules * granule_bytes;
    const words = std.math.divCeil(usize, granules, 64) catch unreachable;
    const bitmap_bytes = std.mem.alignForward(usize, words * 8, page_bytes);
    const bitmap = linux.mmap(null, bitmap_bytes, .{ .READ = true, .WRITE = true }, .{ .TYPE = .PRIVATE, .ANONYMOUS = true }, -1, 0);
    if (linux.errno(bitmap) != .SUCCESS) return error.CannotMap;
    errdefer _ = linux.munmap(@ptrFromInt(bitmap), bitmap_bytes);
    // Over-reserve by a granule to align, map the file over the aligned part, trim the rest.
    const span = bytes + granule_bytes;
    const raw = linux.mmap(null, span, .{}, .{ .TYPE = .PRIVATE, .ANONYMOUS = true, .NORESERVE = true }, -1, 0);
    if (linux.errno(raw) != .SUCCESS) return error.CannotMap;
    const base = std.mem.alignForward(usize, raw, granule_bytes);
    const mapped = linux.mmap(@ptrFromInt(base), bytes, .{}, .{ .TYPE = .SHARED, .FIXED = true, .NORESERVE = true }, fd, 0);
    if (linux.errno(mapped) != .SUCCESS) {
        _ = linux.munmap(@ptrFromInt(raw), span);
        return error.CannotMap;
    }
    if (base > raw) _ = linux.munmap(@ptrFromInt(raw), base - raw);
    if (raw + span > base + bytes) _ = linux.munmap(@ptrFromInt(base + bytes), raw + span - (base + bytes));
    return .{
        .base = base,
        .granules = granules,
        .used = @ptrFromInt(bitmap),
        .limit_bytes = @min(limit, bytes),
    };
}

const Statfs = extern struct {
    f_type: c_long,
    f_bsize: c_long,
    f_blocks: u64,
    f_bfree: u64,
    f_bavail: u64,
    f_files: u64,
    f_ffree: u64,
    f_fsid: [2]c_int,
    f_namelen: c_long,
    f_frsize: c_long,
    f_flags: c_long,
    f_spare: [4]c_long,
};
extern "c" fn fstatfs(fd: c_int, buf: *Statfs) c_int;

/// The bytes free for us on `fd`'s filesystem; unbounded when it does not say.
fn freeBytes(fd: i32) u64 {
    var s: Statfs = undefined;
    if (fstatfs(fd, &s) != 0 or s.f_blocks == 0) return std.math.maxInt(u64);
    const unit: u64 = @intCast(if (s.f_frsize > 0) s.f_frsize else s.f_bsize);
    return std.math.mul(u64, s.f_bavail, unit) catch std.math.maxInt(u64);
}

fn rlimitBytes(resource: linux.rlimit_resource) u64 {
    var r: linux.rlimit = undefined;
    if (linux.errno(linux.getrlimit(resource, &r)) != .SUCCESS) return std.math.maxInt(u64);
    return r.cur;
}

// ---- tests ------------------------------------------------------------------------

fn testHeap(limit_bytes: u64) !FileHeap {
    const fd = linux.memfd_create("file-heap-test", linux.MFD.CLOEXEC);
    try std.testing.expect(linux.errno(fd) == .SUCCESS);
    return fromFile(@intCast(fd), limit_bytes);
}

fn openFds() !usize {
    var count: usize = 0;
    var fd: i32 = 0;
    while (fd < 1024) : (fd += 1) {
        if (linux.errno(linux.fcntl(fd, linux.F.GETFD, 0)) == .SUCCESS) count += 1;
    }
    return count;
}

test "a file heap keeps no descriptor open" {
    const before = try openFds();
    var heap = try testHeap(16 * granule_bytes);
    try std.testing.expectEqual(before, try openFds());
    const a = heap.take(granule_bytes, granule_bytes).?;
    @as(*volatile u8, @ptrFromInt(a + 100)).* = 7;
    heap.give(a, granule_bytes);
    try std.testing.expectEqual(before, try openFds());
}

test "a file heap enforces its limit page by page and reuses what was given back" {
    var heap = try testHeap(2 * granule_bytes);
    const a = heap.take(granule_bytes, granule_bytes).?;
    const b = heap.take(granule_bytes - page_bytes, granule_bytes).?;
    try std.testing.expect(a != b and a % granule_bytes == 0 and b % granule_bytes == 0);
    try std.testing.expectEqual(@as(?usize, null), heap.take(2 * page_bytes, granule_bytes));
    const c = heap.take(page_bytes, granule_bytes).?;
    heap.give(c, page_bytes);
    heap.give(a, granule_bytes);
    // The same range again: freed file space is reused, not a fresh offset.
    try std.testing.expectEqual(a, heap.take(granule_bytes, granule_bytes).?);
    heap.give(a, granule_bytes);
    heap.give(b, granule_bytes - page_bytes);
    try std.testing.expectEqual(@as(u64, 0), heap.used_bytes);
}

test "a file heap's freed range reads as zero when taken again (its pages left the file)" {
    var heap = try testHeap(4 * granule_bytes);
    const a = heap.take(granule_bytes, granule_bytes).?;
    @memset(@as([*]u8, @ptrFromInt(a))[0..granule_bytes], 0xa5);
    heap.give(a, granule_bytes);
    const again = heap.take(granule_bytes, granule_bytes).?;
    try std.testing.expectEqual(a, again);
    for (@as([*]const u8, @ptrFromInt(again))[0..granule_bytes]) |byte| try std.testing.expectEqual(@as(u8, 0), byte);
    heap.give(again, granule_bytes);
}

test "a file heap serves round after round of the largest block it can hold" {
    var heap = try testHeap(64 * granule_bytes);
    const first = heap.take(64 * granule_bytes, granule_bytes).?;
    heap.give(first, 64 * granule_bytes);
    for (0..5000) |_| {
        const p = heap.take(64 * granule_bytes, granule_bytes) orelse return error.TestNoRoom;
        try std.testing.expectEqual(first, p);
        heap.give(p, 64 * granule_bytes);
    }
}

test "a file heap aligns ranges beyond a granule, first fit around busy granules" {
    var heap = try testHeap(32 * granule_bytes);
    const small = heap.take(page_bytes, granule_bytes).?;
    const aligned = heap.take(granule_bytes, 4 * granule_bytes).?;
    try std.testing.expect(aligned % (4 * granule_bytes) == 0);
    const next = heap.take(granule_bytes, granule_bytes).?;
    // The gap below the aligned range (if the alignment left one) is used first.
    if (aligned - heap.base > granule_bytes) try std.testing.expect(next < aligned);
    heap.give(next, granule_bytes);
    heap.give(aligned, granule_bytes);
    heap.give(small, page_bytes);
}
