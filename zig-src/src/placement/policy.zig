//! Policy: where a pool's pages go, and the mbind calls that put them there.
//!
//! What: a mode (default, preferred, bind, interleave, preferred-many,
//! weighted-interleave — MPOL_* 0, 1, 2, 3, 5, 6), a node set and optional
//! per-node weights; parsed from `MODE[:NODES]` (`bind:2`, `preferred:3`,
//! `interleave:0-3`, `weighted-interleave:0=3,2=1`, `default`), written back
//! by `format`, and applied by `apply(addr, len)`: one mbind(2) on memory
//! nobody has touched yet (a fresh 4 MiB chunk, a huge block, an hmmap), so
//! every page the program faults in later lands where the policy says.
//! `.default` makes no syscall: such memory follows the process's own
//! policy (e.g. `numactl -p 1 prog`), as malloc's would.
//!
//! The mbind budget: at most 512 mbind calls per GiB (one per 2 MiB,
//! `stripe_bytes_min`). Native modes make exactly one call per apply.
//!
//! Weighted interleave has two paths:
//! - native: MPOL_WEIGHTED_INTERLEAVE (Linux ≥ 6.9), page-granular, the
//!   weights being the kernel's global ones in
//!   /sys/kernel/mm/mempolicy/weighted_interleave/nodeN. Used when the
//!   kernel has it and the policy names no weights of its own.
//! - emulated, when the weights are explicit (`0=3,2=1`: the kernel takes
//!   no per-policy weights) or the kernel lacks the mode. If all effective
//!   weights are equal the answer is plain MPOL_INTERLEAVE (exact, one
//!   call). Otherwise the range is cut into one contiguous, page-aligned
//!   stripe per node, sized in the weights' proportion, each bound
//!   (MPOL_BIND) to its node — provided every stripe averages ≥ 2 MiB, i.e.
//!   len ≥ nodes × 2 MiB; which node's stripe comes first, and which nodes
//!   get the pages left over by rounding, rotates from call to call. A
//!   range too short for that (a 4 MiB chunk over 3+ nodes) is bound whole
//!   to one node, chosen by weighted round-robin over successive calls:
//!   with weights 3:1, three chunks go to the first node, then one to the
//!   second. Both keep the mbind budget and keep the proportion exact over
//!   a whole round (sum-of-weights calls); the price is granularity —
//!   stripes or whole chunks rather than pages, so one small object lives
//!   on one node, and a heap only reaches the proportion once it spans a
//!   few rounds of chunks.
//!
//! Preferred-many (Linux ≥ 5.15) on an older kernel: emulated as
//! MPOL_PREFERRED of one of the nodes, round-robin per call. Why not "the
//! first node": preferred-many exists to use several nodes before falling
//! back; rotating spreads the chunks over the set, still falling back to
//! other nodes when the preferred one is full, as preferred-many does.
//!
//! Kernel support for the newer modes is probed once (numa_syscalls.zig); the
//! round-robin turns live in atomics indexed by a hash of the policy
//! (apply takes `*const`; equal policies share a sequence, still fair).
//!
//! `validate` proves a policy can be applied before anyone relies on it:
//! every node online, with memory and in Mems_allowed (naming the first
//! bad node), then a probe: map one page, apply, unmap. Why both: the
//! kernel silently narrows a mask to the allowed nodes when at least one
//! remains (`bind:0,9` would run as `bind:0`), and only a real mbind shows
//! what this kernel accepts.
//!
//! Messages (parse, then validate), all after `"SPEC": `:
//!     empty policy
//!     unknown mode "MODE" (default, preferred, bind, interleave, preferred-many, weighted-interleave)
//!     default takes no nodes: ":0"
//!     bind needs nodes, e.g. "bind:0"
//!     preferred takes exactly one node, "0-1" names 2
//!     bad weight "0" (1-255) / missing "=WEIGHT" in "2" / node "0" is given twice
//!     (node-list reasons, see node_list.zig)
//!     node 9 is not online / node 1 has no memory
//!     node 2 is not allowed (Mems_allowed_list: 0-1)
//!     the kernel rejects it: mbind: EINVAL / cannot map a probe page: ENOMEM
const std = @import("std");
const linux = std.os.linux;
const assert = std.debug.assert;
const node_mask = @import("node_mask.zig");
const node_list = @import("node_list.zig");
const quoted = node_list.quoted;
const sysfs = @import("sysfs.zig");
const numa = @import("numa_syscalls.zig");
const mpol = numa.mpol;
const NodeMask = node_mask.NodeMask;
const max_nodes = node_mask.max_nodes;

/// Names, tags and MPOL numbers are held to the project's naming table
/// zig-src/src/testdata/policy_names.json by policy_names_test.zig.
pub const Mode = enum(u8) {
    default = 0,
    preferred = 1,
    bind = 2,
    interleave = 3,
    preferred_many = 5,
    weighted_interleave = 6,

    /// The name in policy strings and the CLI: "preferred-many".
    pub fn name(mode: Mode) []const u8 {
        return switch (mode) {
            .preferred_many => "preferred-many",
            .weighted_interleave => "weighted-interleave",
            else => @tagName(mode),
        };
    }

    pub fn fromName(text: []const u8) ?Mode {
        for (all_modes) |mode| if (std.mem.eql(u8, text, mode.name())) return mode;
        return null;
    }

    pub const all_modes = [_]Mode{ .default, .preferred, .bind, .interleave, .preferred_many, .weighted_interleave };

    /// The MPOL_* number (for HMALLOC_MPOL_MODE).
    pub fn mpol(mode: Mode) u32 {
        return @backingInt(mode);
    }

    pub fn fromMpol(number: u64) ?Mode {
        return switch (number) {
            0, 1, 2, 3, 5, 6 => @fromBackingInt(@intCast(number)),
            else => null,
        };
    }
};

/// Each emulated stripe averages at least this much: ≤ 512 mbind per GiB.
pub const stripe_bytes_min: usize = 2 << 20;
pub const mode_names = "default, preferred, bind, interleave, preferred-many, weighted-interleave";

pub const Reason = enum {
    empty,
    unknown_mode,
    default_takes_no_nodes,
    needs_nodes,
    preferred_needs_one,
    bad_weight,
    missing_weight,
    duplicate_node,
    node_list,
};

pub const ParseError = struct {
    /// The offending token is spec[start..end].
    start: usize,
    end: usize,
    reason: Reason,
    /// For `.node_list`: the list error (offsets into the spec); for
    /// `.preferred_needs_one`: `count` nodes named.
    list: node_list.Error = undefined,
    count: usize = 0,
    mode: Mode = .default,

    pub fn token(e: ParseError, spec: []const u8) []const u8 {
        return spec[e.start..e.end];
    }

    /// The reason naming the token, e.g. `bad token "x"`.
    pub fn describe(e: ParseError, spec: []const u8, buf: []u8) []const u8 {
        const t = e.token(spec);
        return switch (e.reason) {
            .empty => print(buf, "empty policy", .{}),
            .unknown_mode => print(buf, "unknown mode {f} (" ++ mode_names ++ ")", .{quoted(t)}),
            .default_takes_no_nodes => print(buf, "default takes no nodes: {f}", .{quoted(t)}),
            .needs_nodes => print(buf, "{s} needs nodes, e.g. \"{s}:0\"", .{ e.mode.name(), e.mode.name() }),
            .preferred_needs_one => print(buf, "preferred takes exactly one node, {f} names {d}", .{ quoted(t), e.count }),
            .bad_weight => print(buf, "bad weight {f} (1-255)", .{quoted(t)}),
            .missing_weight => print(buf, "missing \"=WEIGHT\" in {f}", .{quoted(t)}),
            .duplicate_node => print(buf, "node {f} is given twice", .{quoted(t)}),
            .node_list => e.list.describe(spec, buf),
        };
    }
};

pub const ParseResult = union(enum) {
    ok: Policy,
    err: ParseError,
};

pub const ValidateError = struct {
    reason: enum { not_online, no_memory, not_allowed, kernel_rejected, probe_unmappable },
    node: u16 = 0,
    errno: linux.E = .SUCCESS,
    allowed: NodeMask = .empty,

    pub fn describe(e: ValidateError, buf: []u8) []const u8 {
        var list: [256]u8 = undefined;
        return switch (e.reason) {
            .not_online => print(buf, "node {d} is not online", .{e.node}),
            .no_memory => print(buf, "node {d} has no memory", .{e.node}),
            .not_allowed => print(buf, "node {d} is not allowed (Mems_allowed_list: {s})", .{ e.node, node_list.format(e.allowed, &list) }),
            .kernel_rejected => print(buf, "the kernel rejects it: mbind: E{t}", .{e.errno}),
            .probe_unmappable => print(buf, "cannot map a probe page: E{t}", .{e.errno}),
        };
    }
};

pub const Policy = struct {
    mode: Mode = .default,
    nodes: NodeMask = .empty,
    /// Weighted interleave's explicit weights by node (1..255); all 0 = the
    /// kernel's (sysfs) weights.
    weights: [max_nodes]u8 = @splat(0),

    pub fn hasExplicitWeights(self: *const Policy) bool {
        return std.mem.indexOfNone(u8, &self.weights, &.{0}) != null;
    }

    /// Parses `MODE[:NODES]`; NODES in numactl's syntax against `allowed`.
    pub fn parse(spec: []const u8, allowed: NodeMask) ParseResult {
        if (spec.len == 0) return failAt(0, 0, .empty);
        const colon = std.mem.indexOfScalar(u8, spec, ':');
        const mode_text = spec[0 .. colon orelse spec.len];
        const mode = Mode.fromName(mode_text) orelse return failAt(0, mode_text.len, .unknown_mode);
        var p: Policy = .{ .mode = mode };
        if (mode == .default) {
            if (colon) |c| return failAt(c, spec.len, .default_takes_no_nodes);
            return .{ .ok = p };
        }
        const at = (colon orelse spec.len) + 1;
        if (at > spec.len or at == spec.len) {
            var e = failAt(0, spec.len, .needs_nodes);
            e.err.mode = mode;
            return e;
        }
        const list = spec[at..];
        if (mode == .weighted_interleave and std.mem.indexOfScalar(u8, list, '=') != null)
            return parseWeights(spec, at, allowed);
        switch (node_list.parse(list, allowed)) {
            .ok => |m| p.nodes = m,
            .err => |e| return listError(e.shifted(at)),
        }
        if (mode == .preferred and p.nodes.count() != 1) {
            var e = failAt(at, spec.len, .preferred_needs_one);
            e.err.count = p.nodes.count();
            return e;
        }
        return .{ .ok = p };
    }

    /// `weighted-interleave:NODES=W,NODES=W...` (spec[at..] is the list).
    fn parseWeights(spec: []const u8, at: usize, allowed: NodeMask) ParseResult {
        var p: Policy = .{ .mode = .weighted_interleave };
        var start = at;
        while (start <= spec.len) {
            const stop = std.mem.indexOfScalarPos(u8, spec, start, ',') orelse spec.len;
            if (stop == start) return listError(.{ .start = start, .end = start, .reason = .empty_element });
            const eq = std.mem.indexOfScalarPos(u8, spec[0..stop], start, '=') orelse
                return failAt(start, stop, .missing_weight);
            const weight_text = spec[eq + 1 .. stop];
            const weight = parseWeight(weight_text) orelse return failAt(eq + 1, stop, .bad_weight);
            const nodes = switch (node_list.parse(spec[start..eq], allowed)) {
                .ok => |m| m,
                .err => |e| return listError(e.shifted(start)),
            };
            if (nodes.intersect(p.nodes).first() != null) return failAt(start, eq, .duplicate_node);
            p.nodes = p.nodes.unionWith(nodes);
            var it = nodes.iterator();
            while (it.next()) |n| p.weights[n] = weight;
            start = stop + 1;
        }
        assert(!p.nodes.isEmpty() and p.hasExplicitWeights());
        return .{ .ok = p };
    }

    /// Parses against this machine's usable nodes and validates. On error,
    /// `message` holds a NUL-terminated line: `invalid policy "bind:9": node 9 is not online`.
    pub fn parseChecked(spec: []const u8, message: []u8) error{ InvalidPolicy, OutOfMemory }!Policy {
        assert(message.len > 0);
        var reason: [256]u8 = undefined;
        const p = switch (parse(spec, sysfs.usableNodes())) {
            .ok => |p| p,
            .err => |e| {
                writeLine(message, spec, e.describe(spec, &reason));
                return error.InvalidPolicy;
            },
        };
        if (p.validate()) |e| {
            writeLine(message, spec, e.describe(&reason));
            return if (e.reason == .probe_unmappable and e.errno == .NOMEM) error.OutOfMemory else error.InvalidPolicy;
        }
        return p;
    }

    /// Writes the policy in `parse`'s syntax (empty if `buf` is too short).
    pub fn format(self: *const Policy, buf: []u8) []const u8 {
        const name = self.mode.name();
        if (buf.len < name.len + 1) return buf[0..0];
        @memcpy(buf[0..name.len], name);
        if (self.mode == .default) return buf[0..name.len];
        buf[name.len] = ':';
        var used = name.len + 1;
        if (!self.hasExplicitWeights()) {
            const list = node_list.format(self.nodes, buf[used..]);
            return buf[0 .. used + list.len];
        }
        var it = self.nodes.iterator();
        while (it.next()) |n| {
            const sep: []const u8 = if (used == name.len + 1) "" else ",";
            const part = std.fmt.bufPrint(buf[used..], "{s}{d}={d}", .{ sep, n, self.weights[n] }) catch return buf[0..0];
            used += part.len;
        }
        return buf[0..used];
    }

    /// The MPOL_* number, for HMALLOC_MPOL_MODE.
    pub fn mpolNumber(self: *const Policy) u32 {
        return self.mode.mpol();
    }

    /// The reference's HMALLOC_NODEMASK (nodes 0..63 as a decimal u64's
    /// value); null when a node is ≥ 64 or the weights are explicit (the
    /// reference has no way to say them).
    pub fn referenceNodemask(self: *const Policy) ?u64 {
        if (self.hasExplicitWeights()) return null;
        return self.nodes.toU64();
    }

    /// Places [addr, addr + len) — page-aligned, not touched yet — by the
    /// policy. Returns .SUCCESS or the first mbind's errno.
    pub fn apply(self: *const Policy, addr: usize, len: usize) linux.E {
        var calls: usize = 0;
        return self.applyCounted(addr, len, &calls);
    }

    /// `apply`, adding the number of mbind calls made to `calls`.
    pub fn applyCounted(self: *const Policy, addr: usize, len: usize, calls: *usize) linux.E {
        assert(addr % std.heap.pageSize() == 0);
        assert(len > 0);
        assert(self.mode == .default or !self.nodes.isEmpty());
        assert(self.mode != .preferred or self.nodes.count() == 1);
        assert(self.mode == .weighted_interleave or !self.hasExplicitWeights());
        switch (self.mode) {
            .default => return .SUCCESS,
            .preferred, .bind, .interleave => return numa.mbind(addr, len, self.mode.mpol(), &self.nodes, calls),
            .preferred_many => {
                if (numa.kernelSupports(mpol.preferred_many, self.nodes)) return numa.mbind(addr, len, self.mode.mpol(), &self.nodes, calls);
                const node = self.nodes.nth(self.nextTurn() % self.nodes.count()).?;
                return numa.mbind(addr, len, mpol.preferred, &NodeMask.single(node), calls);
            },
            .weighted_interleave => {
                const explicit = self.hasExplicitWeights();
                if (!explicit and numa.kernelSupports(mpol.weighted_interleave, self.nodes))
                    return numa.mbind(addr, len, self.mode.mpol(), &self.nodes, calls);
                return self.applyEmulated(addr, len, calls);
            },
        }
    }

    /// Not inlined: its node and stripe arrays (~11 KiB) must not enlarge the
    /// frame of every apply() — threads with 16 KiB stacks map chunks too.
    noinline fn applyEmulated(self: *const Policy, addr: usize, len: usize, calls: *usize) linux.E {
        const calls_before = calls.*;
        defer assert(calls.* - calls_before <= @max(1, len / stripe_bytes_min)); // the mbind budget
        var nodes: [max_nodes]u16 = undefined;
        var weights: [max_nodes]u8 = undefined;
        const n = self.effectiveWeights(&nodes, &weights);
        assert(n > 0);
        if (std.mem.allEqual(u8, weights[0..n], weights[0])) return numa.mbind(addr, len, mpol.interleave, &self.nodes, calls);
        const turn = self.nextTurn();
        if (len / n < stripe_bytes_min) {
            const node = nodes[numa.roundRobinIndex(weights[0..n], turn)];
            return numa.mbind(addr, len, mpol.bind, &NodeMask.single(node), calls);
        }
        const page_bytes = std.heap.pageSize();
        var stripes: [max_nodes]usize = undefined;
        numa.stripePages(weights[0..n], len / page_bytes, turn, stripes[0..n]);
        var at = addr;
        for (0..n) |k| {
            const i = (turn + k) % n;
            if (stripes[i] == 0) continue;
            const bytes = stripes[i] * page_bytes;
            const e = numa.mbind(at, bytes, mpol.bind, &NodeMask.single(nodes[i]), calls);
            if (e != .SUCCESS) return e;
            at += bytes;
        }
        assert(at == addr + len);
        return .SUCCESS;
    }

    /// The policy's nodes ascending and their weights (explicit, else sysfs).
    fn effectiveWeights(self: *const Policy, nodes: *[max_nodes]u16, weights: *[max_nodes]u8) usize {
        const explicit = self.hasExplicitWeights();
        var it = self.nodes.iterator();
        var n: usize = 0;
        while (it.next()) |node| : (n += 1) {
            nodes[n] = node;
            weights[n] = if (explicit) self.weights[node] else sysfs.interleaveWeight(node);
            assert(weights[n] > 0);
        }
        return n;
    }

    fn nextTurn(self: *const Policy) usize {
        var h = std.hash.Wyhash.init(@backingInt(self.mode));
        h.update(std.mem.asBytes(&self.nodes.words));
        var it = self.nodes.iterator();
        while (it.next()) |n| h.update(&.{self.weights[n]});
        return turns[h.final() % turns.len].fetchAdd(1, .monotonic);
    }

    /// Checks nodes against the machine and probes the kernel; null = the
    /// policy applies. Costs ~4 file reads and an mmap/mbind/munmap.
    pub fn validate(self: *const Policy) ?ValidateError {
        if (self.mode == .default) return null;
        if (sysfs.onlineNodes()) |online| if (self.nodes.firstNotIn(online)) |n| return .{ .reason = .not_online, .node = n };
        if (sysfs.nodesWithMemory()) |memory| if (self.nodes.firstNotIn(memory)) |n| return .{ .reason = .no_memory, .node = n };
        if (sysfs.memsAllowed()) |allowed| if (self.nodes.firstNotIn(allowed)) |n| return .{ .reason = .not_allowed, .node = n, .allowed = allowed };
        const page_bytes = std.heap.pageSize();
        var map_errno: linux.E = .SUCCESS;
        const base = numa.mapScratch(&map_errno) orelse return .{ .reason = .probe_unmappable, .errno = map_errno };
        defer _ = linux.munmap(@ptrFromInt(base), page_bytes);
        const e = self.apply(base, page_bytes);
        if (e != .SUCCESS) return .{ .reason = .kernel_rejected, .errno = e };
        return null;
    }
};

/// Round-robin turns of emulated policies (see the essay).
var turns: [64]std.atomic.Value(usize) = @splat(.init(0));

/// 1..255, digits only.
fn parseWeight(text: []const u8) ?u8 {
    if (text.len == 0 or text.len > 3) return null;
    for (text) |c| if (!std.ascii.isDigit(c)) return null;
    const w = std.fmt.parseInt(u16, text, 10) catch return null;
    return if (w >= 1 and w <= 255) @intCast(w) else null;
}

fn failAt(start: usize, end: usize, reason: Reason) ParseResult {
    return .{ .err = .{ .start = start, .end = end, .reason = reason } };
}

fn listError(e: node_list.Error) ParseResult {
    return .{ .err = .{ .start = e.start, .end = e.end, .reason = .node_list, .list = e } };
}

/// `invalid policy "SPEC": REASON`, cut to fit, NUL-terminated.
fn writeLine(message: []u8, spec: []const u8, reason: []const u8) void {
    const line = print(message[0 .. message.len - 1], "invalid policy {f}: {s}", .{ quoted(spec), reason });
    message[line.len] = 0;
}

fn print(buf: []u8, comptime fmt: []const u8, args: anytype) []const u8 {
    return std.fmt.bufPrint(buf, fmt, args) catch buf[0..buf.len];
}
