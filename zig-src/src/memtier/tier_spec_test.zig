//! Tests of tier_spec.zig: the shared case table (zig-src/src/testdata/tier_spec_cases.json,
//! also run by the TypeScript port), slices into the input, limits, defaults.
const std = @import("std");
const Spec = tier_spec.Spec;
const max_thresholds = tier_spec.max_thresholds;
const max_tiers = tier_spec.max_tiers;
const parse = tier_spec.parse;
const quote_bytes_max = tier_spec.quote_bytes_max;
const Reason = tier_spec.Reason;
const Threshold = tier_spec.Threshold;
const message_bytes_max = tier_spec.message_bytes_max;
const tier_spec = @import("memtier").tier_spec;
// ---------------------------------------------------------------------------------------
// Tests: the shared case table (also run by tests/unit/tier_spec_test.ts), then Zig specifics.

const cases_json = @embedFile("tier_spec_cases.json");

const Case = struct {
    name: []const u8,
    tiers: []const u8,
    thresholds: ?[]const u8 = null,
    message: ?[]const u8 = null,
    expect: ?struct {
        policy: []const u8,
        tiers: []const struct {
            kind: []const u8,
            ratio: u32,
            path: []const u8 = "",
            pmemSizeLimitBytes: []const u8 = "0",
        },
        thresholds: []const struct { minBytes: []const u8, initBytes: []const u8, maxBytes: []const u8 } = &.{},
    } = null,
};

fn expectSpec(case: Case, spec: *const Spec) !void {
    const expect = case.expect orelse return error.TestUnexpectedSpec;
    const t = std.testing;
    try t.expectEqualStrings(expect.policy, spec.policy.name());
    try t.expectEqual(expect.tiers.len, spec.tiers().len);
    for (expect.tiers, spec.tiers()) |want, got| {
        try t.expectEqualStrings(want.kind, got.kind.name());
        try t.expectEqual(want.ratio, got.ratio);
        try t.expectEqualStrings(want.path, got.path);
        try t.expectEqual(try std.fmt.parseInt(u64, want.pmemSizeLimitBytes, 10), got.pmem_size_limit_bytes);
    }
    try t.expectEqual(expect.thresholds.len, spec.thresholds().len);
    for (expect.thresholds, spec.thresholds()) |want, got| {
        try t.expectEqual(try std.fmt.parseInt(u64, want.minBytes, 10), got.min_bytes);
        try t.expectEqual(try std.fmt.parseInt(u64, want.initBytes, 10), got.init_bytes);
        try t.expectEqual(try std.fmt.parseInt(u64, want.maxBytes, 10), got.max_bytes);
    }
}

test "every case of the shared table parses or fails with its exact message" {
    const parsed = try std.json.parseFromSlice([]const Case, std.testing.allocator, cases_json, .{});
    defer parsed.deinit();
    try std.testing.expect(parsed.value.len >= 80);
    for (parsed.value) |case| {
        errdefer std.debug.print("case \"{s}\" failed\n", .{case.name});
        try std.testing.expect((case.message == null) != (case.expect == null));
        switch (parse(case.tiers, case.thresholds)) {
            .spec => |*spec| try expectSpec(case, spec),
            .failure => |failure| {
                var buf: [message_bytes_max]u8 = undefined;
                const want = case.message orelse {
                    std.debug.print("unexpected: {s}\n", .{failure.message(&buf)});
                    return error.TestUnexpectedFailure;
                };
                try std.testing.expectEqualStrings(want, failure.message(&buf));
            },
        }
    }
}

test "a failure's token is a slice of its context, which is a slice of the input" {
    const input = "KIND:DRAM,RATIO:1;KIND:FS_DAX,RATIO:2,PATH:/mnt/a:b,PMEM_SIZE_LIMIT:8M;POLICY:STATIC_RATIO";
    const failure = parse(input, null).failure;
    try std.testing.expectEqual(Reason.pmem_size_too_small, failure.reason);
    try std.testing.expectEqualStrings("8M", failure.token);
    const base = @intFromPtr(input.ptr);
    try std.testing.expect(@intFromPtr(failure.context.ptr) >= base);
    try std.testing.expect(@intFromPtr(failure.context.ptr) + failure.context.len <= base + input.len);
    try std.testing.expect(@intFromPtr(failure.token.ptr) >= @intFromPtr(failure.context.ptr));
}

test "a spec's FS_DAX path is a slice of the input, colons included" {
    const input = "KIND:FS_DAX,PATH:/mnt/pmem:0,RATIO:1;POLICY:STATIC_RATIO";
    const spec = parse(input, null).spec;
    try std.testing.expectEqualStrings("/mnt/pmem:0", spec.tiers()[0].path);
    try std.testing.expect(@intFromPtr(spec.tiers()[0].path.ptr) > @intFromPtr(input.ptr));
}

test "max_tiers tiers parse; one more fails naming the first extra tier" {
    var input: [4096]u8 = undefined;
    var w: std.Io.Writer = .fixed(&input);
    for (0..max_tiers) |i| try w.print("KIND:FS_DAX,PATH:/p{d},RATIO:1;", .{i});
    try w.writeAll("POLICY:DYNAMIC_THRESHOLD");
    const spec = parse(w.buffered(), null).spec;
    try std.testing.expectEqual(max_tiers, spec.tiers().len);
    try std.testing.expectEqual(max_thresholds, spec.thresholds().len);
    try std.testing.expectEqual(Threshold.default(max_thresholds - 1), spec.thresholds()[max_thresholds - 1]);

    w = .fixed(&input);
    for (0..max_tiers + 1) |i| try w.print("KIND:FS_DAX,PATH:/p{d},RATIO:1;", .{i});
    try w.writeAll("POLICY:STATIC_RATIO");
    const failure = parse(w.buffered(), null).failure;
    try std.testing.expectEqual(Reason.too_many_tiers, failure.reason);
    try std.testing.expectEqualStrings("KIND:FS_DAX,PATH:/p16,RATIO:1", failure.token);
}

test "a long token is quoted up to quote_bytes_max bytes and the message fits message_bytes_max" {
    var input: [3 * quote_bytes_max]u8 = undefined;
    @memset(&input, '\x01');
    @memcpy(input[0..5], "KIND:");
    const failure = parse(&input, null).failure;
    try std.testing.expectEqual(Reason.unknown_kind, failure.reason);
    var buf: [message_bytes_max]u8 = undefined;
    const text = failure.message(&buf);
    try std.testing.expect(text.len < message_bytes_max);
    try std.testing.expect(std.mem.endsWith(u8, text, "\"...: " ++ comptime Reason.unknown_kind.text()));
    try std.testing.expect(std.mem.findScalar(u8, text, '\n') == null);
}

test "default thresholds follow the man page and satisfy the range rules" {
    for (0..max_thresholds) |k| {
        const t = Threshold.default(k);
        try std.testing.expect(t.min_bytes <= t.init_bytes and t.init_bytes <= t.max_bytes);
        if (k > 0) try std.testing.expect(Threshold.default(k - 1).max_bytes <= t.min_bytes);
    }
    try std.testing.expectEqual(Threshold{ .min_bytes = 513, .init_bytes = 1024, .max_bytes = 1536 }, Threshold.default(0));
}
