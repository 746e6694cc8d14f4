//! The memory-tiering configuration: `MEMKIND_MEM_TIERS` and `MEMKIND_MEM_THRESHOLDS`.
//!
//! What: a pure, allocation-free parser of memkind 1.14's two variables into a `Spec`
//! (tiers, policy, thresholds), or a `Failure` that names the offending token, the item
//! it sits in and the reason — rendered as ONE line with memkind's prefix:
//!
//!   MEMKIND_MEM_TIERING_LOG_ERROR: MEMKIND_MEM_TIERS: bad token "RATIO" in "KIND:DRAM,RATIO": missing value
//!   MEMKIND_MEM_TIERING_LOG_ERROR: MEMKIND_MEM_TIERS: bad value "POLICY:STATIC_RATIO": no tier before POLICY
//!
//! (`bad value` when the token is the whole variable). The grammar:
//!
//!   MEMKIND_MEM_TIERS      = tier { ";" tier } ";" "POLICY:" ( "STATIC_RATIO" | "DYNAMIC_THRESHOLD" )
//!   tier                   = param { "," param }          each of KIND, RATIO, PATH,
//!   param                  = NAME ":" VALUE               PMEM_SIZE_LIMIT at most once
//!   MEMKIND_MEM_THRESHOLDS = threshold { ";" threshold }   at most tiers - 1 of them
//!   threshold              = param { "," param }          INIT_VAL, MIN_VAL, MAX_VAL at most once
//!
//! A param splits at its FIRST ':' (so a PATH may contain ':'); KIND is DRAM, KMEM_DAX or
//! FS_DAX (case-sensitive; DRAM and KMEM_DAX in one tier each, FS_DAX in any number);
//! RATIO is 1..2^32-1 and required; PATH is required with FS_DAX and allowed only there, as
//! is PMEM_SIZE_LIMIT (a size; 0 = unlimited, else at least memkind's 16M). A size is
//! decimal digits with an optional K, M or G. Threshold k (between tier k and k+1) defaults
//! to min 513+1024k, init 1024(k+1), max 1536+1024k (memkind's man page); min <= init <=
//! max, and max of k-1 <= min of k.
//!
//! Why strict: memkind reads numbers with strtoul(base 0) and ignores what follows, so
//! `RATIO:010` is 8, `RATIO:0x10` is 16 and `RATIO:1x` is 1, and it crashes (SIGSEGV, no
//! message) on a param without value or an empty trailing threshold. Here every string is
//! either read exactly as memkind reads it or rejected with a line naming the token: leading
//! zeros, signs, hex, trailing junk, empty items (`;;`, a trailing `;` or `,`) and whitespace
//! (outside PATH values, which may hold any byte but ',' and ';') are errors. Errors are
//! reported in the order of their position, so the first mistake is the one named.
//!
//! Trade-off: fixed maxima (`max_tiers`) instead of allocation, so the interposer can parse
//! before its heap exists; a `Spec` is ~1 KiB and holds slices into the caller's string (the
//! environment, which outlives it). The TS port (`lib/tier_spec.ts`) renders the same
//! messages; both run the case table `zig-src/src/testdata/tier_spec_cases.json`.
const std = @import("std");
const assert = std.debug.assert;
const node_list = @import("placement").node_list; // its `quoted` escapes like every message here

/// Most tiers a configuration may name (memkind's 1 KiB string fits ~37 FS_DAX tiers; real
/// machines have DRAM, one KMEM_DAX and a few FS_DAX). Bounds `Spec` and per-thread state.
pub const max_tiers: usize = 16;
pub const max_thresholds: usize = max_tiers - 1;
/// Smallest non-zero PMEM_SIZE_LIMIT (memkind's MEMKIND_PMEM_MIN_SIZE).
pub const pmem_size_min_bytes: u64 = 16 << 20;
pub const ratio_max: u32 = std.math.maxInt(u32);
/// Distance between default thresholds.
pub const threshold_step_bytes: u64 = 1024;
/// Longest quoted token or context shown in a message; longer ones end in `...`.
pub const quote_bytes_max: usize = 120;
/// A buffer this large always holds a whole message (quotes escape a byte to at most 4).
pub const message_bytes_max: usize = 2 * (4 * quote_bytes_max + 8) + 256;

pub const log_error_prefix = "MEMKIND_MEM_TIERING_LOG_ERROR: ";

pub const Kind = enum {
    dram,
    kmem_dax,
    fs_dax,

    pub fn name(kind: Kind) []const u8 {
        return switch (kind) {
            .dram => "DRAM",
            .kmem_dax => "KMEM_DAX",
            .fs_dax => "FS_DAX",
        };
    }
};

pub const Policy = enum {
    static_ratio,
    dynamic_threshold,

    pub fn name(policy: Policy) []const u8 {
        return switch (policy) {
            .static_ratio => "STATIC_RATIO",
            .dynamic_threshold => "DYNAMIC_THRESHOLD",
        };
    }
};

pub const Tier = struct {
    kind: Kind,
    ratio: u32,
    /// FS_DAX only (else empty): a slice of the MEMKIND_MEM_TIERS string.
    path: []const u8 = "",
    /// FS_DAX only; 0 = unlimited.
    pmem_size_limit_bytes: u64 = 0,
};

/// Allocations of `init_bytes` or more go to the next tier; the threshold moves within
/// [min_bytes, max_bytes].
pub const Threshold = struct {
    min_bytes: u64,
    init_bytes: u64,
    max_bytes: u64,

    pub fn default(index: usize) Threshold {
        assert(index < max_thresholds);
        const k: u64 = index;
        return .{
            .min_bytes = 513 + threshold_step_bytes * k,
            .init_bytes = threshold_step_bytes * (k + 1),
            .max_bytes = 1536 + threshold_step_bytes * k,
        };
    }
};

pub const Spec = struct {
    policy: Policy,
    tier_count: usize,
    tier_buf: [max_tiers]Tier,
    threshold_buf: [max_thresholds]Threshold,

    pub fn tiers(spec: *const Spec) []const Tier {
        return spec.tier_buf[0..spec.tier_count];
    }

    /// tier_count - 1 thresholds with DYNAMIC_THRESHOLD, none with STATIC_RATIO.
    pub fn thresholds(spec: *const Spec) []const Threshold {
        return switch (spec.policy) {
            .static_ratio => spec.threshold_buf[0..0],
            .dynamic_threshold => spec.threshold_buf[0 .. spec.tier_count - 1],
        };
    }
};

pub const Variable = enum {
    tiers,
    thresholds,

    pub fn name(variable: Variable) []const u8 {
        return switch (variable) {
            .tiers => "MEMKIND_MEM_TIERS",
            .thresholds => "MEMKIND_MEM_THRESHOLDS",
        };
    }
};

pub const Reason = enum {
    empty,
    empty_item,
    empty_param,
    missing_name,
    whitespace,
    missing_value,
    unknown_tier_param,
    unknown_threshold_param,
    duplicate_param,
    unknown_kind,
    duplicate_kind,
    missing_kind,
    missing_ratio,
    missing_path,
    fs_dax_only,
    not_a_number,
    leading_zero,
    ratio_range,
    not_a_size,
    size_overflow,
    pmem_size_too_small,
    too_many_tiers,
    policy_not_last,
    policy_extra,
    missing_policy,
    no_tiers,
    unknown_policy,
    dynamic_needs_two_tiers,
    thresholds_need_dynamic,
    too_many_thresholds,
    // The three below carry numbers (`Failure.values`); `text` is their fixed part.
    init_below_min,
    init_above_max,
    ranges_overlap,

    pub fn text(reason: Reason) []const u8 {
        return switch (reason) {
            .empty => "empty string",
            .empty_item => "empty item",
            .empty_param => "empty parameter",
            .missing_name => "missing parameter name",
            .whitespace => "whitespace is not allowed",
            .missing_value => "missing value",
            .unknown_tier_param => "unknown parameter (expected KIND, RATIO, PATH or PMEM_SIZE_LIMIT)",
            .unknown_threshold_param => "unknown parameter (expected INIT_VAL, MIN_VAL or MAX_VAL)",
            .duplicate_param => "parameter given twice",
            .unknown_kind => "unknown kind (expected DRAM, KMEM_DAX or FS_DAX)",
            .duplicate_kind => "kind already used by an earlier tier (only FS_DAX may repeat)",
            .missing_kind => "missing KIND",
            .missing_ratio => "missing RATIO",
            .missing_path => "missing PATH (required with KIND:FS_DAX)",
            .fs_dax_only => "allowed only with KIND:FS_DAX",
            .not_a_number => "not a decimal number",
            .leading_zero => "leading zero (memkind would read it as octal)",
            .ratio_range => "out of range 1..4294967295",
            .not_a_size => "not a size (decimal digits with an optional K, M or G)",
            .size_overflow => "too large (over 2^64-1 bytes)",
            .pmem_size_too_small => "below the minimum 16M (0 = unlimited)",
            .too_many_tiers => std.fmt.comptimePrint("more than {d} tiers", .{max_tiers}),
            .policy_not_last => "POLICY must be the last item",
            .policy_extra => "POLICY takes no other parameter",
            .missing_policy => "missing POLICY:STATIC_RATIO or POLICY:DYNAMIC_THRESHOLD as the last item",
            .no_tiers => "no tier before POLICY",
            .unknown_policy => "unknown policy (expected STATIC_RATIO or DYNAMIC_THRESHOLD)",
            .dynamic_needs_two_tiers => "DYNAMIC_THRESHOLD needs at least 2 tiers",
            .thresholds_need_dynamic => "allowed only with POLICY:DYNAMIC_THRESHOLD",
            .too_many_thresholds => "more thresholds than tiers minus one",
            .init_below_min => "INIT_VAL is below MIN_VAL",
            .init_above_max => "INIT_VAL is above MAX_VAL",
            .ranges_overlap => "MAX_VAL of a threshold is above MIN_VAL of the next",
        };
    }
};

pub const Failure = struct {
    variable: Variable,
    reason: Reason,
    /// The offending token: a slice of `context`, which is a slice of the variable's string.
    token: []const u8,
    /// The item holding the token, or the whole string when the token is a whole item.
    context: []const u8,
    /// For init_below_min / init_above_max / ranges_overlap: the threshold (the later one of
    /// an overlapping pair), the two values compared and whether each is a default.
    threshold_index: usize = 0,
    values: [2]u64 = .{ 0, 0 },
    defaulted: [2]bool = .{ false, false },

    /// The one-line message (no newline), as `writeMessage` renders it, in `buf`
    /// (truncated if `buf` is shorter than `message_bytes_max`).
    pub fn message(failure: *const Failure, buf: []u8) []const u8 {
        var w: std.Io.Writer = .fixed(buf);
        failure.writeMessage(&w) catch {};
        return w.buffered();
    }

    pub fn writeMessage(failure: *const Failure, w: *std.Io.Writer) std.Io.Writer.Error!void {
        try w.print("{s}{s}: ", .{ log_error_prefix, failure.variable.name() });
        if (failure.token.ptr == failure.context.ptr and failure.token.len == failure.context.len) {
            try w.writeAll("bad value ");
            try writeQuoted(w, failure.context);
        } else {
            try w.writeAll("bad token ");
            try writeQuoted(w, failure.token);
            try w.writeAll(" in ");
            try writeQuoted(w, failure.context);
        }
        try w.writeAll(": ");
        const v = failure.values;
        const k = failure.threshold_index;
        switch (failure.reason) {
            .init_below_min, .init_above_max => {
                const bound = if (failure.reason == .init_below_min) "is below MIN_VAL" else "is above MAX_VAL";
                try w.print("threshold {d}: INIT_VAL {d}{s} {s} {d}{s}", .{
                    k, v[0], defaultMark(failure.defaulted[0]), bound, v[1], defaultMark(failure.defaulted[1]),
                });
            },
            .ranges_overlap => {
                assert(k > 0);
                try w.print("MAX_VAL {d}{s} of threshold {d} is above MIN_VAL {d}{s} of threshold {d}", .{
                    v[0], defaultMark(failure.defaulted[0]), k - 1, v[1], defaultMark(failure.defaulted[1]), k,
                });
            },
            else => try w.writeAll(failure.reason.text()),
        }
    }
};

fn defaultMark(defaulted: bool) []const u8 {
    return if (defaulted) " (default)" else "";
}

/// `"text"`, escaping `"`, `\` and control bytes so the message stays one line; at most
/// `quote_bytes_max` bytes of `text`, then `...` after the closing quote.
fn writeQuoted(w: *std.Io.Writer, text: []const u8) std.Io.Writer.Error!void {
    const shown = text[0..@min(text.len, quote_bytes_max)];
    try node_list.quoted(shown).format(w);
    if (shown.len < text.len) try w.writeAll("...");
}

pub const Parsed = union(enum) {
    spec: Spec,
    failure: Failure,
};

/// Parses both variables; `thresholds_text` is null when MEMKIND_MEM_THRESHOLDS is unset
/// (set-but-empty is an error, as in memkind). The Spec's slices point into `tiers_text`.
pub fn parse(tiers_text: []const u8, thresholds_text: ?[]const u8) Parsed {
    var spec: Spec = undefined;
    var p: Parser = .{ .variable = .tiers, .whole = tiers_text };
    p.parseTiers(&spec) catch return .{ .failure = p.failure };
    p = .{ .variable = .thresholds, .whole = thresholds_text orelse "" };
    p.parseThresholds(&spec, thresholds_text) catch return .{ .failure = p.failure };
    assert(spec.tier_count >= 1 and spec.tier_count <= max_tiers);
    return .{ .spec = spec };
}

const Invalid = error{Invalid};

const TierParam = enum { KIND, RATIO, PATH, PMEM_SIZE_LIMIT };
const ThresholdParam = enum { INIT_VAL, MIN_VAL, MAX_VAL };

const Param = struct {
    text: []const u8,
    name: []const u8,
    value: ?[]const u8,

    fn split(text: []const u8) Param {
        const colon = std.mem.findScalar(u8, text, ':') orelse
            return .{ .text = text, .name = text, .value = null };
        return .{ .text = text, .name = text[0..colon], .value = text[colon + 1 ..] };
    }
};

/// The param texts a threshold item gave (null = default), to name them in range errors.
const ThresholdSource = struct {
    item: []const u8 = "",
    given: [3]?[]const u8 = .{ null, null, null },
};

const Given = struct {
    source: *const ThresholdSource,
    param: ThresholdParam,

    fn token(given: Given) ?[]const u8 {
        return given.source.given[@backingInt(given.param)];
    }
};

const Parser = struct {
    variable: Variable,
    whole: []const u8,
    failure: Failure = undefined,

    /// Records a failure; the context is `within`, or the whole string when the token
    /// spans all of `within`.
    fn fail(p: *Parser, reason: Reason, token: []const u8, within: []const u8) Invalid {
        p.record(reason, token, within);
        return error.Invalid;
    }

    fn record(p: *Parser, reason: Reason, token: []const u8, within: []const u8) void {
        assert(@intFromPtr(token.ptr) >= @intFromPtr(within.ptr));
        assert(@intFromPtr(token.ptr) + token.len <= @intFromPtr(within.ptr) + within.len);
        const whole_item = token.ptr == within.ptr and token.len == within.len;
        p.failure = .{
            .variable = p.variable,
            .reason = reason,
            .token = token,
            .context = if (whole_item) p.whole else within,
        };
    }

    fn parseTiers(p: *Parser, spec: *Spec) Invalid!void {
        if (p.whole.len == 0) return p.fail(.empty, p.whole, p.whole);
        const last_semicolon = std.mem.findScalarLast(u8, p.whole, ';');
        const last = if (last_semicolon) |i| p.whole[i + 1 ..] else p.whole;
        const has_policy = std.mem.eql(u8, Param.split(last).name, "POLICY");
        // Without a POLICY item every item is read as a tier, so a broken tier is named
        // before the missing policy.
        const tier_text = if (!has_policy) p.whole else if (last_semicolon) |i| p.whole[0..i] else "";

        spec.tier_count = 0;
        if (tier_text.len > 0 or last_semicolon != null) {
            var items = std.mem.splitScalar(u8, tier_text, ';');
            while (items.next()) |item| {
                if (item.len == 0) return p.fail(.empty_item, item, p.whole);
                if (spec.tier_count == max_tiers) return p.fail(.too_many_tiers, item, p.whole);
                spec.tier_buf[spec.tier_count] = try p.parseTier(item, spec.tier_buf[0..spec.tier_count]);
                spec.tier_count += 1;
            }
        }
        if (!has_policy) return p.fail(.missing_policy, last, p.whole);
        if (spec.tier_count == 0) return p.fail(.no_tiers, p.whole, p.whole);

        var params = std.mem.splitScalar(u8, last, ',');
        const policy_param = Param.split(params.first());
        if (params.next()) |extra| return p.fail(.policy_extra, extra, last);
        const value = policy_param.value orelse "";
        if (value.len == 0) return p.fail(.missing_value, policy_param.text, last);
        if (hasWhitespace(value)) return p.fail(.whitespace, value, last);
        if (std.mem.eql(u8, value, "STATIC_RATIO")) {
            spec.policy = .static_ratio;
        } else if (std.mem.eql(u8, value, "DYNAMIC_THRESHOLD")) {
            spec.policy = .dynamic_threshold;
            if (spec.tier_count < 2) return p.fail(.dynamic_needs_two_tiers, value, last);
        } else return p.fail(.unknown_policy, value, last);
    }

    fn parseTier(p: *Parser, item: []const u8, earlier: []const Tier) Invalid!Tier {
        assert(item.len > 0);
        var seen: [4]?Param = .{ null, null, null, null };
        var kind: ?Kind = null;
        var tier: Tier = .{ .kind = .dram, .ratio = 0 };
        var params = std.mem.splitScalar(u8, item, ',');
        while (params.next()) |text| {
            const param = try p.checkParam(text, item);
            if (std.mem.eql(u8, param.name, "POLICY")) return p.fail(.policy_not_last, param.name, item);
            const which = std.meta.stringToEnum(TierParam, param.name) orelse
                return p.fail(.unknown_tier_param, param.name, item);
            if (seen[@backingInt(which)] != null) return p.fail(.duplicate_param, param.name, item);
            seen[@backingInt(which)] = param;
            const value = param.value orelse "";
            if (value.len == 0) return p.fail(.missing_value, param.text, item);
            if (which != .PATH and hasWhitespace(value)) return p.fail(.whitespace, value, item);
            switch (which) {
                .KIND => {
                    const k = kindNamed(value) orelse return p.fail(.unknown_kind, value, item);
                    kind = k;
                    if (k != .fs_dax) for (earlier) |e| {
                        if (e.kind == k) return p.fail(.duplicate_kind, value, item);
                    };
                },
                .RATIO => tier.ratio = try p.parseRatio(value, item),
                .PATH => tier.path = value,
                .PMEM_SIZE_LIMIT => tier.pmem_size_limit_bytes = try p.parseSize(value, item),
            }
        }
        tier.kind = kind orelse return p.fail(.missing_kind, item, item);
        if (tier.ratio == 0) return p.fail(.missing_ratio, item, item);
        if (tier.kind == .fs_dax) {
            if (seen[@backingInt(TierParam.PATH)] == null) return p.fail(.missing_path, item, item);
            if (seen[@backingInt(TierParam.PMEM_SIZE_LIMIT)]) |limit| {
                if (tier.pmem_size_limit_bytes != 0 and tier.pmem_size_limit_bytes < pmem_size_min_bytes)
                    return p.fail(.pmem_size_too_small, limit.value.?, item);
            }
        } else {
            // Named in the order they were written.
            const path = seen[@backingInt(TierParam.PATH)];
            const limit = seen[@backingInt(TierParam.PMEM_SIZE_LIMIT)];
            const first = if (path != null and limit != null)
                (if (@intFromPtr(path.?.name.ptr) < @intFromPtr(limit.?.name.ptr)) path else limit)
            else
                path orelse limit;
            if (first) |param| return p.fail(.fs_dax_only, param.name, item);
        }
        assert(tier.ratio >= 1);
        return tier;
    }

    fn parseThresholds(p: *Parser, spec: *Spec, thresholds_text: ?[]const u8) Invalid!void {
        const count = if (spec.policy == .dynamic_threshold) spec.tier_count - 1 else 0;
        for (spec.threshold_buf[0..count], 0..) |*t, k| t.* = .default(k);
        const text = thresholds_text orelse return;
        if (spec.policy != .dynamic_threshold) return p.fail(.thresholds_need_dynamic, text, text);
        if (text.len == 0) return p.fail(.empty, text, text);

        var sources: [max_thresholds]ThresholdSource = @splat(.{});
        var items = std.mem.splitScalar(u8, text, ';');
        var k: usize = 0;
        while (items.next()) |item| : (k += 1) {
            if (item.len == 0) return p.fail(.empty_item, item, text);
            if (k >= count) return p.fail(.too_many_thresholds, item, text);
            sources[k].item = item;
            var params = std.mem.splitScalar(u8, item, ',');
            while (params.next()) |param_text| {
                const param = try p.checkParam(param_text, item);
                const which = std.meta.stringToEnum(ThresholdParam, param.name) orelse
                    return p.fail(.unknown_threshold_param, param.name, item);
                const slot = &sources[k].given[@backingInt(which)];
                if (slot.* != null) return p.fail(.duplicate_param, param.name, item);
                slot.* = param.text;
                const value = param.value orelse "";
                if (value.len == 0) return p.fail(.missing_value, param.text, item);
                if (hasWhitespace(value)) return p.fail(.whitespace, value, item);
                const bytes = try p.parseSize(value, item);
                const t = &spec.threshold_buf[k];
                switch (which) {
                    .INIT_VAL => t.init_bytes = bytes,
                    .MIN_VAL => t.min_bytes = bytes,
                    .MAX_VAL => t.max_bytes = bytes,
                }
            }
        }
        try p.checkRanges(spec.threshold_buf[0..count], sources[0..count]);
    }

    fn checkRanges(p: *Parser, thresholds: []const Threshold, sources: []const ThresholdSource) Invalid!void {
        for (thresholds, sources, 0..) |t, *s, k| {
            const init: Given = .{ .source = s, .param = .INIT_VAL };
            if (t.init_bytes < t.min_bytes)
                return p.failRange(.init_below_min, k, init, .{ .source = s, .param = .MIN_VAL }, .{ t.init_bytes, t.min_bytes });
            if (t.init_bytes > t.max_bytes)
                return p.failRange(.init_above_max, k, init, .{ .source = s, .param = .MAX_VAL }, .{ t.init_bytes, t.max_bytes });
            if (k > 0 and thresholds[k - 1].max_bytes > t.min_bytes) {
                const max_before: Given = .{ .source = &sources[k - 1], .param = .MAX_VAL };
                return p.failRange(.ranges_overlap, k, max_before, .{ .source = s, .param = .MIN_VAL }, .{ thresholds[k - 1].max_bytes, t.min_bytes });
            }
        }
    }

    /// A range rule broken between `a` and `b` (their values in that order): names `b`'s
    /// param if the user gave it, else `a`'s.
    fn failRange(p: *Parser, reason: Reason, k: usize, a: Given, b: Given, values: [2]u64) Invalid {
        const blamed = if (b.token() != null) b else a;
        // Defaults satisfy every range rule, so a broken one involves a given param.
        const token = blamed.token() orelse unreachable;
        p.record(reason, token, blamed.source.item);
        p.failure.threshold_index = k;
        p.failure.values = values;
        p.failure.defaulted = .{ a.token() == null, b.token() == null };
        return error.Invalid;
    }

    /// The checks every param shares, before its name is looked up.
    fn checkParam(p: *Parser, text: []const u8, item: []const u8) Invalid!Param {
        if (text.len == 0) return p.fail(.empty_param, text, item);
        const param = Param.split(text);
        if (hasWhitespace(param.name)) return p.fail(.whitespace, param.name, item);
        if (param.name.len == 0) return p.fail(.missing_name, text, item);
        return param;
    }

    /// `digits` must be decimal digits (else `reason`) without a leading zero; null when
    /// the number overflows 64 bits. Errors name `token` (the whole value).
    fn parseDigits(p: *Parser, digits: []const u8, token: []const u8, item: []const u8, reason: Reason) Invalid!?u64 {
        assert(digits.len > 0);
        for (digits) |c| if (c < '0' or c > '9') return p.fail(reason, token, item);
        if (digits.len > 1 and digits[0] == '0') return p.fail(.leading_zero, token, item);
        var value: u64 = 0;
        for (digits) |c| {
            value = std.math.mul(u64, value, 10) catch return null;
            value = std.math.add(u64, value, c - '0') catch return null;
        }
        return value;
    }

    fn parseRatio(p: *Parser, text: []const u8, item: []const u8) Invalid!u32 {
        const ratio = try p.parseDigits(text, text, item, .not_a_number) orelse
            return p.fail(.ratio_range, text, item);
        if (ratio == 0 or ratio > ratio_max) return p.fail(.ratio_range, text, item);
        return @intCast(ratio);
    }

    fn parseSize(p: *Parser, text: []const u8, item: []const u8) Invalid!u64 {
        assert(text.len > 0);
        const shift: u6 = switch (text[text.len - 1]) {
            'K' => 10,
            'M' => 20,
            'G' => 30,
            else => 0,
        };
        const digits = if (shift == 0) text else text[0 .. text.len - 1];
        if (digits.len == 0) return p.fail(.not_a_size, text, item);
        const count = try p.parseDigits(digits, text, item, .not_a_size) orelse
            return p.fail(.size_overflow, text, item);
        if (count > @as(u64, std.math.maxInt(u64)) >> shift) return p.fail(.size_overflow, text, item);
        return count << shift;
    }
};

fn kindNamed(name: []const u8) ?Kind {
    inline for (comptime std.enums.values(Kind)) |kind| {
        if (std.mem.eql(u8, name, kind.name())) return kind;
    }
    return null;
}

fn hasWhitespace(text: []const u8) bool {
    return std.mem.findAny(u8, text, " \t\n\r\x0b\x0c") != null;
}
