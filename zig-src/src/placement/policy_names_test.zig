//! Holds policy.zig's Mode to the project's one naming table of policy modes
//! (zig-src/src/testdata/policy_names.json, the same file tests/unit/policy_names_test.ts
//! holds the TypeScript side to): every mode's name, Zig tag, MPOL_* name
//! and number agree, and policy.zig knows no mode the table lacks.
const std = @import("std");
const testing = std.testing;
const Mode = @import("placement").policy.Mode;
const mpol = @import("placement").numa_syscalls.mpol;

const table_json = @embedFile("policy_names.json");

/// One row of the table; the TypeScript-only columns are not read here.
const Row = struct {
    name: []const u8,
    zigTag: []const u8,
    mpolName: []const u8,
    mpol: u32,
};

fn parseTable() !std.json.Parsed([]const Row) {
    return std.json.parseFromSlice([]const Row, testing.allocator, table_json, .{ .ignore_unknown_fields = true });
}

/// The numa_syscalls.mpol constant named e.g. "MPOL_WEIGHTED_INTERLEAVE".
fn mpolConstant(mpol_name: []const u8) ?usize {
    inline for (comptime std.meta.declarations(mpol)) |decl_name| {
        var upper: [64]u8 = undefined;
        const spelled = std.ascii.upperString(&upper, decl_name);
        if (std.mem.startsWith(u8, mpol_name, "MPOL_") and std.mem.eql(u8, mpol_name[5..], spelled))
            return @field(mpol, decl_name);
    }
    return null;
}

test "every mode of the naming table has policy.zig's name, tag and MPOL number" {
    const table = try parseTable();
    defer table.deinit();
    for (table.value) |row| {
        const mode = Mode.fromName(row.name) orelse {
            std.debug.print("policy.zig does not know the mode \"{s}\"\n", .{row.name});
            return error.TestUnexpectedResult;
        };
        try testing.expectEqualStrings(row.zigTag, @tagName(mode));
        try testing.expectEqualStrings(row.name, mode.name());
        try testing.expectEqual(row.mpol, mode.mpol());
        try testing.expectEqual(mode, Mode.fromMpol(row.mpol).?);
        try testing.expectEqual(@as(?usize, row.mpol), mpolConstant(row.mpolName));
    }
}

test "policy.zig has no mode the naming table lacks, and mode_names lists them in order" {
    const table = try parseTable();
    defer table.deinit();
    try testing.expectEqual(Mode.all_modes.len, table.value.len);
    for (Mode.all_modes) |mode| {
        var found = false;
        for (table.value) |row| found = found or std.mem.eql(u8, row.name, mode.name());
        try testing.expect(found);
    }
    var listed = std.mem.splitSequence(u8, @import("placement").policy.mode_names, ", ");
    for (Mode.all_modes) |mode| try testing.expectEqualStrings(mode.name(), listed.next().?);
    try testing.expectEqual(@as(?[]const u8, null), listed.next());
}
