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
const std = @import("std");
const linux = std.os.linux;
const assert = std.debug.assert;

const spin_limit = 100;
const futex_wait_private = 128 | 0; // FUTEX_WAIT | FUTEX_PRIVATE_FLAG
const futex_wake_private = 128 | 1; // FUTEX_WAKE | FUTEX_PRIVATE_FLAG

pub const Lock = struct {
    state: std.atomic.Value(u32) = .init(0),

    pub inline fn lock(l: *Lock) void {
        if (l.state.cmpxchgWeak(0, 1, .acquire, .monotonic) == null) return;
        l.lockSlow();
    }

    fn lockSlow(l: *Lock) void {
        @branchHint(.cold);
        var spins: usize = 0;
        while (spins < spin_limit) : (spins += 1) {
            if (l.state.load(.monotonic) == 0 and l.state.cmpxchgWeak(0, 1, .acquire, .monotonic) == null) return;
            std.atomic.spinLoopHint();
        }
        // Announce a sleeper (2) and sleep until the holder hands over.
        while (l.state.swap(2, .acquire) != 0) {
            _ = linux.syscall4(.futex, @intFromPtr(&l.state.raw), futex_wait_private, 2, 0);
        }
    }

    pub inline fn unlock(l: *Lock) void {
        const previous = l.state.swap(0, .release);
        assert(previous != 0);
        if (previous == 2) _ = linux.syscall3(.futex, @intFromPtr(&l.state.raw), futex_wake_private, 1);
    }
};

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
