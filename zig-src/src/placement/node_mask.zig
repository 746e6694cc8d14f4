//! NodeMask: a set of NUMA node numbers, and the view of it the kernel reads.
//!
//! What: a fixed bitset of `max_nodes` (1024) bits — the kernel's own
//! MAX_NUMNODES limit with NODES_SHIFT = 10 — stored as `usize` words in the
//! layout `mbind(2)`, `set_mempolicy(2)` and `get_mempolicy(2)` read (bit n of
//! word n / 64 is node n). It has the usual set operations (set, unset,
//! isSet, count, first, next, eql, union, intersection, invert-within) and
//! no allocation: 128 bytes on the stack or inside a `Policy`.
//!
//! The kernel view (`kernel()`): the syscalls take a pointer to words and
//! `maxnode`, of which the kernel reads `maxnode - 1` bits. The reference
//! passed one `unsigned long` with `maxnode = 1023`, so the kernel read 16
//! words of which 15 were whatever followed on the stack. Here the words
//! pointer always points at the full 1024-bit array (so any `maxnode` up to
//! 1025 reads only our own, zeroed, memory), and `maxnode` is
//! `bits + 1` where `bits` is the number of possible nodes from
//! `/sys/devices/system/node/possible` (highest possible node + 1), widened
//! to cover the mask's highest set node. Why widen: if the mask names a node
//! beyond the possible range and we passed the narrower `maxnode`, the
//! kernel would never see that bit — `bind:0,9` would silently become
//! `bind:0`. Widened, the kernel sees node 9 and the caller's validation (or
//! the kernel's EINVAL for a mask with no usable node) reports it.
//!
//! Trade-off: a fixed 1024-bit mask costs 128 bytes per policy even on a
//! one-node machine, in exchange for no allocation, no sizing at run time
//! and the same layout the kernel uses. Masks past 1024 nodes do not exist
//! on Linux today (NODES_SHIFT is at most 10).
const std = @import("std");
const assert = std.debug.assert;
const sysfs = @import("sysfs.zig");

/// The most node numbers a mask holds (nodes 0..1023).
pub const max_nodes = 1024;
/// A node number: always < max_nodes.
pub const Node = u16;

const word_bits = @bitSizeOf(usize);
/// Words of a full mask.
pub const word_count = max_nodes / word_bits;

comptime {
    assert(max_nodes % word_bits == 0);
    assert(max_nodes - 1 <= std.math.maxInt(Node));
}

pub const NodeMask = struct {
    words: [word_count]usize,

    pub const empty: NodeMask = .{ .words = @splat(0) };

    /// Every node number 0..max_nodes-1.
    pub const full: NodeMask = .{ .words = @splat(std.math.maxInt(usize)) };

    /// The mask holding only `node`.
    pub fn single(node: usize) NodeMask {
        var m: NodeMask = .empty;
        m.set(node);
        return m;
    }

    /// Nodes `first_node..last_node` inclusive.
    pub fn range(first_node: usize, last_node: usize) NodeMask {
        assert(first_node <= last_node and last_node < max_nodes);
        var m: NodeMask = .empty;
        for (first_node..last_node + 1) |n| m.set(n);
        return m;
    }

    pub fn set(self: *NodeMask, node: usize) void {
        assert(node < max_nodes);
        self.words[node / word_bits] |= bit(node);
    }

    pub fn unset(self: *NodeMask, node: usize) void {
        assert(node < max_nodes);
        self.words[node / word_bits] &= ~bit(node);
    }

    pub fn isSet(self: NodeMask, node: usize) bool {
        if (node >= max_nodes) return false;
        return self.words[node / word_bits] & bit(node) != 0;
    }

    pub fn count(self: NodeMask) usize {
        var total: usize = 0;
        for (self.words) |w| total += @popCount(w);
        return total;
    }

    pub fn isEmpty(self: NodeMask) bool {
        for (self.words) |w| if (w != 0) return false;
        return true;
    }

    /// The lowest node in the mask.
    pub fn first(self: NodeMask) ?Node {
        return self.nextFrom(0);
    }

    /// The highest node in the mask.
    pub fn last(self: NodeMask) ?Node {
        var i: usize = word_count;
        while (i > 0) {
            i -= 1;
            const w = self.words[i];
            if (w != 0) return @intCast(i * word_bits + (word_bits - 1 - @clz(w)));
        }
        return null;
    }

    /// The lowest node ≥ `from` in the mask.
    pub fn nextFrom(self: NodeMask, from: usize) ?Node {
        if (from >= max_nodes) return null;
        var i = from / word_bits;
        var w = self.words[i] & (~@as(usize, 0) << @intCast(from % word_bits));
        while (true) {
            if (w != 0) return @intCast(i * word_bits + @ctz(w));
            i += 1;
            if (i == word_count) return null;
            w = self.words[i];
        }
    }

    /// The `index`-th node of the mask in ascending order (0 = first).
    pub fn nth(self: NodeMask, index: usize) ?Node {
        var it = self.iterator();
        var i: usize = 0;
        while (it.next()) |n| : (i += 1) if (i == index) return n;
        return null;
    }

    pub fn iterator(self: *const NodeMask) Iterator {
        return .{ .mask = self, .at = 0 };
    }

    pub const Iterator = struct {
        mask: *const NodeMask,
        at: usize,

        pub fn next(it: *Iterator) ?Node {
            const n = it.mask.nextFrom(it.at) orelse {
                it.at = max_nodes;
                return null;
            };
            it.at = @as(usize, n) + 1;
            return n;
        }
    };

    pub fn eql(a: NodeMask, b: NodeMask) bool {
        return std.mem.eql(usize, &a.words, &b.words);
    }

    pub fn unionWith(a: NodeMask, b: NodeMask) NodeMask {
        var m = a;
        for (&m.words, b.words) |*w, o| w.* |= o;
        return m;
    }

    pub fn intersect(a: NodeMask, b: NodeMask) NodeMask {
        var m = a;
        for (&m.words, b.words) |*w, o| w.* &= o;
        return m;
    }

    /// The nodes of `within` that are not in `self` (numactl's `!`).
    pub fn invertWithin(self: NodeMask, within: NodeMask) NodeMask {
        var m = within;
        for (&m.words, self.words) |*w, o| w.* &= ~o;
        return m;
    }

    /// Every node of `self` is in `other`.
    pub fn isSubsetOf(self: NodeMask, other: NodeMask) bool {
        for (self.words, other.words) |a, b| if (a & ~b != 0) return false;
        return true;
    }

    /// The lowest node of `self` not in `other`.
    pub fn firstNotIn(self: NodeMask, other: NodeMask) ?Node {
        return other.invertWithin(self).first();
    }

    /// The reference's `HMALLOC_NODEMASK` form: nodes 0..63 as a u64.
    pub fn fromU64(value: u64) NodeMask {
        var m: NodeMask = .empty;
        var v = value;
        while (v != 0) : (v &= v - 1) m.set(@ctz(v));
        return m;
    }

    /// The mask as a u64 (nodes 0..63), or null if it holds a node ≥ 64.
    pub fn toU64(self: NodeMask) ?u64 {
        const highest = self.last() orelse return 0;
        if (highest >= 64) return null;
        var v: u64 = 0;
        var it = self.iterator();
        while (it.next()) |n| v |= @as(u64, 1) << @intCast(n);
        return v;
    }

    /// What mbind/set_mempolicy take: words sized for this machine's
    /// possible nodes (read once from sysfs), widened to the mask's highest node.
    pub fn kernel(self: *const NodeMask) KernelView {
        return self.kernelSized(sysfs.possibleBits());
    }

    /// `kernel()` with the possible-node bit count given (pure; for tests).
    pub fn kernelSized(self: *const NodeMask, possible_bits: usize) KernelView {
        assert(possible_bits >= 1 and possible_bits <= max_nodes);
        const needed = if (self.last()) |n| @as(usize, n) + 1 else 0;
        const bits = @max(possible_bits, needed);
        const view: KernelView = .{ .words = &self.words, .maxnode = bits + 1 };
        // The kernel reads maxnode - 1 bits, rounded up to whole words: they
        // must all lie inside our array, and cover every set bit.
        assert(view.wordCount() <= word_count);
        assert(view.maxnode >= 2);
        return view;
    }

    fn bit(node: usize) usize {
        return @as(usize, 1) << @intCast(node % word_bits);
    }
};

/// A mask as the kernel reads it: `words` points at (at least) `wordCount()`
/// words, of which the kernel reads `maxnode - 1` bits.
pub const KernelView = struct {
    words: *const [word_count]usize,
    maxnode: usize,

    /// Words the kernel reads: ceil((maxnode - 1) / bits per word).
    pub fn wordCount(view: KernelView) usize {
        return (view.maxnode - 1 + word_bits - 1) / word_bits;
    }

    pub fn ptr(view: KernelView) usize {
        return @intFromPtr(view.words);
    }
};

const testing = std.testing;

test "set, unset, isSet, count, first, last" {
    var m: NodeMask = .empty;
    try testing.expect(m.isEmpty());
    try testing.expectEqual(@as(?Node, null), m.first());
    try testing.expectEqual(@as(?Node, null), m.last());
    m.set(3);
    m.set(64);
    m.set(1023);
    try testing.expect(m.isSet(3) and m.isSet(64) and m.isSet(1023));
    try testing.expect(!m.isSet(4) and !m.isSet(1024) and !m.isSet(5000));
    try testing.expectEqual(@as(usize, 3), m.count());
    try testing.expectEqual(@as(?Node, 3), m.first());
    try testing.expectEqual(@as(?Node, 1023), m.last());
    m.unset(3);
    try testing.expectEqual(@as(?Node, 64), m.first());
    try testing.expectEqual(@as(usize, 2), m.count());
}

test "iterator visits nodes in ascending order across words" {
    const m = NodeMask.single(0).unionWith(NodeMask.single(63)).unionWith(NodeMask.single(64)).unionWith(NodeMask.single(700));
    var it = m.iterator();
    const want = [_]Node{ 0, 63, 64, 700 };
    for (want) |n| try testing.expectEqual(@as(?Node, n), it.next());
    try testing.expectEqual(@as(?Node, null), it.next());
    try testing.expectEqual(@as(?Node, null), it.next());
    try testing.expectEqual(@as(?Node, 64), m.nth(2));
    try testing.expectEqual(@as(?Node, null), m.nth(4));
    try testing.expectEqual(@as(?Node, 700), m.nextFrom(65));
}

test "eql, union, intersect, invertWithin, isSubsetOf" {
    const a = NodeMask.range(0, 3);
    const b = NodeMask.range(2, 5);
    try testing.expect(a.unionWith(b).eql(NodeMask.range(0, 5)));
    try testing.expect(a.intersect(b).eql(NodeMask.range(2, 3)));
    try testing.expect(NodeMask.single(0).invertWithin(a).eql(NodeMask.range(1, 3)));
    try testing.expect(a.invertWithin(a).isEmpty());
    try testing.expect(NodeMask.range(1, 2).isSubsetOf(a));
    try testing.expect(!b.isSubsetOf(a));
    try testing.expect(!a.eql(b));
    try testing.expectEqual(@as(?Node, 4), b.firstNotIn(a));
    try testing.expectEqual(@as(?Node, null), a.firstNotIn(a));
}

test "u64 form: the reference's HMALLOC_NODEMASK" {
    const m = NodeMask.fromU64(0b1010_0001);
    try testing.expect(m.eql(NodeMask.single(0).unionWith(NodeMask.single(5)).unionWith(NodeMask.single(7))));
    try testing.expectEqual(@as(?u64, 0b1010_0001), m.toU64());
    try testing.expectEqual(@as(?u64, 1 << 63), NodeMask.single(63).toU64());
    try testing.expectEqual(@as(?u64, null), NodeMask.single(64).toU64());
    try testing.expectEqual(@as(?u64, 0), NodeMask.empty.toU64());
}

test "kernel view: maxnode is possible bits + 1, widened to the highest set node" {
    // One possible node (this machine): the kernel reads 1 bit of 1 word.
    const node0 = NodeMask.single(0);
    const v1 = node0.kernelSized(1);
    try testing.expectEqual(@as(usize, 2), v1.maxnode);
    try testing.expectEqual(@as(usize, 1), v1.wordCount());
    // Four possible nodes: 4 bits.
    try testing.expectEqual(@as(usize, 5), node0.kernelSized(4).maxnode);
    // A node beyond the possible range stays visible to the kernel (EINVAL
    // rather than a silently narrowed mask).
    const far = NodeMask.single(0).unionWith(NodeMask.single(9));
    try testing.expectEqual(@as(usize, 11), far.kernelSized(1).maxnode);
    // 1024 possible nodes: 16 words, all inside the mask's own array.
    const big = NodeMask.single(1023).kernelSized(max_nodes);
    try testing.expectEqual(@as(usize, 1025), big.maxnode);
    try testing.expectEqual(@as(usize, word_count), big.wordCount());
    try testing.expectEqual(@intFromPtr(&big.words[0]), big.ptr());
}

test "kernel view on this machine is sized from sysfs possible" {
    const v = NodeMask.single(0).kernel();
    try testing.expect(v.maxnode >= 2 and v.maxnode <= max_nodes + 1);
    try testing.expectEqual(sysfs.possibleBits() + 1, v.maxnode);
}
