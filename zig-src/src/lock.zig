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
//! Debug builds (runtime safety on) also record the holder's thread id, so a
//! function named `…Locked` can check its precondition (`assertHeld`) instead
//! of trusting its name; release builds store nothing extra.
const std = @import("std");
const linux = std.os.linux;
const assert = std.debug.assert;

const spin_limit = 100;
const futex_wait_private: linux.FUTEX_OP = .{ .cmd = .WAIT, .private = true };
const futex_wake_private: linux.FUTEX_OP = .{ .cmd = .WAKE, .private = true };
const track_owner = std.debug.runtime_safety;

pub const Lock = struct {
    state: std.atomic.Value(u32) = .init(0),
    /// The holder's thread id (0: none); debug builds only.
    owner: if (track_owner) std.atomic.Value(i32) else void = if (track_owner) .init(0) else {},

    pub inline fn lock(l: *Lock) void {
        if (l.state.cmpxchgWeak(0, 1, .acquire, .monotonic) != null) l.lockSlow();
        if (track_owner) l.owner.store(linux.gettid(), .monotonic);
    }

    /// Debug builds: the calling thread holds `l` (the precondition of every
    /// `…Locked` function). Release builds: nothing.
    pub inline fn assertHeld(l: *const Lock) void {
        if (track_owner) assert(l.owner.load(.monotonic) == linux.gettid());
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
            _ = linux.futex_4arg(&l.state.raw, futex_wait_private, 2, null);
        }
    }

    pub inline fn unlock(l: *Lock) void {
        l.assertHeld();
        if (track_owner) l.owner.store(0, .monotonic);
        const previous = l.state.swap(0, .release);
        assert(previous != 0);
        if (previous == 2) _ = linux.futex_3arg(&l.state.raw, futex_wake_private, 1);
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

test "a held lock knows its holder: assertHeld passes for the thread that locked it" {
    var l: Lock = .{};
    l.lock();
    l.assertHeld();
    if (track_owner) try std.testing.expectEqual(linux.gettid(), l.owner.load(.monotonic));
    l.unlock();
    if (track_owner) try std.testing.expectEqual(@as(i32, 0), l.owner.load(.monotonic));
}
