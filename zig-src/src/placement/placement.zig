//! Placement: the `placement` module (zig-src/src/placement/).
//!
//! Which NUMA nodes memory may come from, and making the kernel keep to it:
//! node masks and numactl's node-list syntax, allocation-free sysfs readers,
//! the mbind/get_mempolicy/move_pages calls, `Policy` (parse, format,
//! validate, apply), the policy the environment asks for, and residency
//! (pages per node, migration). It allocates nothing and imports no other
//! folder, so the allocator, memtier and the C ABI can all build on it.
//! ARCHITECTURE.md lists what each file owns.
//!
//! This file only re-exports the folder's files; in a test build it
//! references them all, so `zig build test` runs their tests.
const std = @import("std");

pub const node_mask = @import("node_mask.zig");
pub const node_list = @import("node_list.zig");
pub const sysfs = @import("sysfs.zig");
pub const numa_syscalls = @import("numa_syscalls.zig");
pub const policy = @import("policy.zig");
pub const policy_env = @import("policy_env.zig");
pub const residency = @import("residency.zig");

comptime {
    std.testing.refAllDecls(@This()); // in test builds only
}
