//! Fuzz target: MEMKIND_MEM_TIERS / MEMKIND_MEM_THRESHOLDS (tier_spec.zig).
//!
//! Input: `TIERS` or `TIERS \x00 THRESHOLDS` (no NUL: thresholds unset).
//! Rejected: the message is one line with memkind's prefix and the
//! variable's name, its token is a slice of that variable's string, and a
//! token with nothing to escape appears verbatim (up to the quoting limit).
//! Accepted: 1..max_tiers tiers, every ratio >= 1, a PATH exactly for
//! FS_DAX and inside the input, and thresholds that satisfy the range rules.
const std = @import("std");
const tier_spec = @import("memtier").tier_spec;
const check = @import("fuzz_check");

pub const panic = std.debug.FullPanic(check.panic);

export fn fuzz_tier_spec(data: [*]const u8, len: usize) void {
    const input = data[0..len];
    const nul = std.mem.indexOfScalar(u8, input, 0);
    const tiers = if (nul) |i| input[0..i] else input;
    const thresholds: ?[]const u8 = if (nul) |i| input[i + 1 ..] else null;
    switch (tier_spec.parse(tiers, thresholds)) {
        .spec => |spec| expectSpec(&spec, tiers),
        .failure => |failure| expectFailure(&failure, tiers, thresholds),
    }
}

fn expectFailure(failure: *const tier_spec.Failure, tiers: []const u8, thresholds: ?[]const u8) void {
    var buf: [tier_spec.message_bytes_max]u8 = undefined;
    const message = failure.message(&buf);
    if (message.len == buf.len) check.fail("fuzz: message filled message_bytes_max: ", message);
    check.expectOneLine(message);
    const head = tier_spec.log_error_prefix;
    if (!std.mem.startsWith(u8, message, head) or
        !std.mem.startsWith(u8, message[head.len..], failure.variable.name()))
        check.fail("fuzz: message lacks the prefix and variable: ", message);
    const text = switch (failure.variable) {
        .tiers => tiers,
        .thresholds => thresholds orelse "",
    };
    check.expectSliceOf(failure.context, text);
    check.expectSliceOf(failure.token, failure.context);
    if (failure.token.len <= tier_spec.quote_bytes_max and check.printable(failure.token)) {
        var quoted: [tier_spec.quote_bytes_max + 2]u8 = undefined;
        quoted[0] = '"';
        @memcpy(quoted[1..][0..failure.token.len], failure.token);
        quoted[failure.token.len + 1] = '"';
        check.expectContains(message, quoted[0 .. failure.token.len + 2]);
    }
}

fn expectSpec(spec: *const tier_spec.Spec, tiers_text: []const u8) void {
    const tiers = spec.tiers();
    if (tiers.len < 1 or tiers.len > tier_spec.max_tiers) check.fail("fuzz: tier count out of range", "");
    for (tiers) |tier| {
        if (tier.ratio == 0) check.fail("fuzz: accepted RATIO 0: ", tiers_text);
        if ((tier.kind == .fs_dax) != (tier.path.len > 0)) check.fail("fuzz: PATH without FS_DAX or FS_DAX without PATH: ", tiers_text);
        if (tier.path.len > 0) check.expectSliceOf(tier.path, tiers_text);
        if (tier.pmem_size_limit_bytes != 0 and tier.pmem_size_limit_bytes < tier_spec.pmem_size_min_bytes)
            check.fail("fuzz: accepted PMEM_SIZE_LIMIT below 16M: ", tiers_text);
    }
    const thresholds = spec.thresholds();
    const want: usize = if (spec.policy == .dynamic_threshold) tiers.len - 1 else 0;
    if (thresholds.len != want) check.fail("fuzz: wrong threshold count: ", tiers_text);
    for (thresholds, 0..) |t, k| {
        if (!(t.min_bytes <= t.init_bytes and t.init_bytes <= t.max_bytes)) check.fail("fuzz: threshold not min <= init <= max: ", tiers_text);
        if (k > 0 and thresholds[k - 1].max_bytes > t.min_bytes) check.fail("fuzz: thresholds overlap: ", tiers_text);
    }
}
