//! Lock: the mutex of the allocator's slow paths (bins, pages).
//!
//! What: a three-state futex mutex (0 free, 1 held, 2 held with sleepers —
//! Drepper's "Futexes Are Tricky", mutex 3) that spins briefly before
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
//! async-signal-safe). Waiting would never end, so the lock remembers its
//! holder — the thread pointer, one register read and one store per
//! acquisition — and the contended path, the only one that can meet itself,
//! compares it and ends the program with one line (report.reentered). The
//! lock-free paths (thread caches) pay nothing. A signal landing between the
//! acquiring exchange and the store of the holder is not recognised (a window
//! of one instruction).
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

pub const Lock = struct {
    state: std.atomic.Value(u32) = .init(0),
    /// The holder's thread pointer (0: none), for recognising re-entry. Only
    /// the holder writes it; a thread reading its own pointer here holds the lock.
    holder: std.atomic.Value(usize) = .init(0),

    pub inline fn lock(l: *Lock) void {
        if (l.state.cmpxchgWeak(0, 1, .acquire, .monotonic) != null) l.lockSlow();
        l.holder.store(threadPointer(), .monotonic);
    }

    /// Debug builds: the calling thread holds `l` (the precondition of every
    /// `…Locked` function). Release builds: nothing.
    pub inline fn assertHeld(l: *const Lock) void {
        assert(l.holder.load(.monotonic) == threadPointer());
    }

    fn lockSlow(l: *Lock) void {
        @branchHint(.cold);
        if (l.holder.load(.monotonic) == threadPointer()) report.reentered();
        var spins: usize = 0;
        while (spins < spin_limit) : (spins += 1) {
            if (l.state.load(.monotonic) == 0 and l.state.cmpxchgWeak(0, 1, .acquire, .monotonic) == null) return;
            std.atomic.spinLoopHint();
        }
        // Announce a sleeper (2) and sleep until the holder hands over.
        while (l.state.swap(2, .acquire) != 0) {
            _ = linux.futex_4arg(&l.state.raw, futex_wait_private, 2, null);
        }
    }

    pub inline fn unlock(l: *Lock) void {
        assert(l.holder.load(.monotonic) == threadPointer());
        l.holder.store(0, .monotonic);
        const previous = l.state.swap(0, .release);
        assert(previous != 0);
        if (previous == 2) _ = linux.futex_3arg(&l.state.raw, futex_wake_private, 1);
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
    try std.testing.expectEqual(threadPointer(), l.holder.load(.monotonic));
    l.unlock();
    try std.testing.expectEqual(@as(usize, 0), l.holder.load(.monotonic));
}
