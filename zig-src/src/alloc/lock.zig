//! Lock: the mutex of the allocator's slow paths (bins, pages).
//!
//! What: a futex mutex whose word holds the holder's thread pointer (0:
//! free) with bit 0 set when someone sleeps (Drepper's "Futexes Are Tricky",
//! mutex 3, with the holder in place of "1") that spins briefly before
//! sleeping. The sections it guards are short (moving a batch of blocks,
//! carving a page run), so a waiter usually gets the lock within the spin
//! and never enters the kernel; glibc's default pthread mutex goes to the
//! futex at once, which made a producer/consumer pair pay a syscall per batch.
//!
//! Trade-off: spinning burns a little CPU when the holder was preempted; the
//! spin is bounded (`spin_limit` pauses) so the cost is capped, and unlock
//! only enters the kernel when someone sleeps. Not recursive, not fair.
//! fork(): the child re-initialises every lock (registry.zig).
//!
//! Re-entry: the allocator never takes a lock it holds, so a thread that finds
//! a lock held by itself was interrupted inside the allocator by a signal
//! whose handler called malloc or free (undefined behaviour: they are not
//! async-signal-safe). Waiting would never end, so the lock word names its
//! holder — the thread pointer, one register read per acquisition, written
//! by the acquiring compare-exchange itself and cleared by the releasing
//! exchange, so no instruction boundary leaves the lock held with no holder
//! — and the contended path, the only one that can meet itself, compares it
//! and ends the program with one line (report.reentered). The lock-free paths
//! (thread caches) pay nothing. (A holder stored apart from a 0/1/2 state left
//! two such windows, after the acquire and before the release: mimalloc-bench
//! style signal storms — a 100 µs timer whose handler allocates — deadlocked
//! in one, 1 run in 2 once the page lock was held longer.)
//!
//! The futex waits on the word's low 32 bits (little-endian: its first four
//! bytes). Bit 0 is among them, so a sleeper's expected value (holder | 1)
//! never equals a new holder's word without sleepers, and any holder whose
//! word has bit 0 wakes one sleeper when it releases.
//! The same record lets a function named `…Locked` check its precondition
//! (`assertHeld`, debug builds) instead of trusting its name.
const std = @import("std");
const builtin = @import("builtin");
const linux = std.os.linux;
const assert = std.debug.assert;
const report = @import("report.zig");

const spin_limit = 100;
const futex_wait_private: linux.FUTEX_OP = .{ .cmd = .WAIT, .private = true };
const futex_wake_private: linux.FUTEX_OP = .{ .cmd = .WAKE, .private = true };

comptime {
    assert(builtin.cpu.arch.endian() == .little); // the futex word is the first half
}

/// Bit 0 of a held lock's word: a thread sleeps (or is about to) on it.
const sleepers: usize = 1;

pub const Lock = struct {
    /// 0: free; else the holder's thread pointer, `| sleepers` when someone waits.
    word: std.atomic.Value(usize) = .init(0),

    pub inline fn lock(l: *Lock) void {
        const self = threadPointer();
        assert(self != 0 and self & sleepers == 0); // an aligned thread control block
        if (l.word.cmpxchgWeak(0, self, .acquire, .monotonic) != null) l.lockSlow(self);
    }

    /// The holder's thread pointer, 0 when free.
    inline fn holder(l: *const Lock) usize {
        return l.word.load(.monotonic) & ~sleepers;
    }

    /// Debug builds: the calling thread holds `l` (the precondition of every
    /// `…Locked` function). Release builds: nothing.
    pub inline fn assertHeld(l: *const Lock) void {
        assert(l.holder() == threadPointer());
    }

    /// Debug builds: the calling thread does not hold `l`. Release builds: nothing.
    pub inline fn assertNotHeld(l: *const Lock) void {
        assert(l.holder() != threadPointer());
    }

    fn lockSlow(l: *Lock, self: usize) void {
        @branchHint(.cold);
        if (l.holder() == self) report.reentered();
        var spins: usize = 0;
        while (spins < spin_limit) : (spins += 1) {
            if (l.word.load(.monotonic) == 0 and l.word.cmpxchgWeak(0, self, .acquire, .monotonic) == null) return;
            std.atomic.spinLoopHint();
        }
        // Announce a sleeper and sleep until the holder hands over; a lock taken after
        // sleeping keeps the mark, since others may still sleep (mutex 3's rule).
        while (true) {
            var word = l.word.load(.monotonic);
            if (word == 0) {
                if (l.word.cmpxchgWeak(0, self | sleepers, .acquire, .monotonic) == null) return;
                continue;
            }
            if (word & sleepers == 0) {
                if (l.word.cmpxchgWeak(word, word | sleepers, .monotonic, .monotonic) != null) continue;
                word |= sleepers;
            }
            _ = linux.futex_4arg(futexWord(l), futex_wait_private, @truncate(word), null);
        }
    }

    pub inline fn unlock(l: *Lock) void {
        const previous = l.word.swap(0, .release);
        assert(previous & ~sleepers == threadPointer());
        if (previous & sleepers != 0) _ = linux.futex_3arg(futexWord(l), futex_wake_private, 1);
    }

    inline fn futexWord(l: *Lock) *const u32 {
        return @ptrCast(&l.word.raw);
    }
};

/// This thread's identity, unique among live threads and never 0: the thread
/// pointer register (%fs base, tpidr_el0), read without a call or a syscall.
inline fn threadPointer() usize {
    return switch (builtin.cpu.arch) {
        .x86_64 => asm ("movq %%fs:0, %[ret]"
            : [ret] "=r" (-> usize),
        ),
        .aarch64 => asm ("mrs %[ret], tpidr_el0"
            : [ret] "=r" (-> usize),
        ),
        else => @compileError("lock.zig: no thread pointer for this architecture"),
    };
}

test "a lock excludes: two threads incrementing under it lose no update" {
    var l: Lock = .{};
    var counter: usize = 0;
    const Worker = struct {
        fn run(lk: *Lock, c: *usize) void {
            for (0..100_000) |_| {
                lk.lock();
                c.* += 1;
                lk.unlock();
            }
        }
    };
    const a = try std.Thread.spawn(.{}, Worker.run, .{ &l, &counter });
    const b = try std.Thread.spawn(.{}, Worker.run, .{ &l, &counter });
    a.join();
    b.join();
    try std.testing.expectEqual(@as(usize, 200_000), counter);
}

test "a thread taking a lock it already holds (a signal handler re-entering) aborts with one line" {
    var fds: [2]i32 = undefined;
    try std.testing.expectEqual(@as(c_int, 0), std.c.pipe(&fds));
    const pid = std.c.fork();
    if (pid == 0) {
        _ = std.c.dup2(fds[1], 2);
        var l: Lock = .{};
        l.lock();
        l.lock(); // aborts: waiting for itself would never end
        std.c._exit(0);
    }
    try std.testing.expect(pid > 0);
    _ = std.c.close(fds[1]);
    var buf: [512]u8 = undefined;
    var len: usize = 0;
    while (len < buf.len) {
        const n = std.c.read(fds[0], buf[len..].ptr, buf.len - len);
        if (n <= 0) break;
        len += @intCast(n);
    }
    _ = std.c.close(fds[0]);
    var status: c_int = 0;
    _ = std.c.waitpid(pid, &status, 0);
    const s: u32 = @bitCast(status);
    try std.testing.expect(std.posix.W.IFSIGNALED(s));
    try std.testing.expectEqual(std.posix.SIG.ABRT, std.posix.W.TERMSIG(s));
    try std.testing.expectEqualStrings("hmalloc: allocator re-entered while this thread holds its lock (malloc or free called from a signal handler?)\n", buf[0..len]);
}

test "a lock held by another thread is waited for, not taken for re-entry" {
    var l: Lock = .{};
    l.lock();
    const Taker = struct {
        fn run(lk: *Lock) void {
            lk.lock();
            lk.unlock();
        }
    };
    const t = try std.Thread.spawn(.{}, Taker.run, .{&l});
    std.Thread.yield() catch {};
    l.unlock();
    t.join();
}

test "a held lock knows its holder: assertHeld passes for the thread that locked it" {
    var l: Lock = .{};
    l.lock();
    l.assertHeld();
    try std.testing.expectEqual(threadPointer(), l.holder());
    l.unlock();
    try std.testing.expectEqual(@as(usize, 0), l.holder());
}
