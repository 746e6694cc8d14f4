//! The allocator core: the `alloc` module (zig-src/src/alloc/).
//!
//! Pools of 4 MiB chunks carved into size-class slabs, huge blocks in
//! mappings of their own, per-thread caches, the page map that recognises
//! our pointers, the slow paths' lock, and the reports of failure and misuse.
//! It places memory only through the `placement` module (a `Policy` applied
//! to each mapping before its first touch) and knows nothing of tiers or of
//! the C ABI. ARCHITECTURE.md lists what each file owns.
//!
//! This file only re-exports the folder's files; in a test build it
//! references them all, so `zig build test` runs their tests.
const std = @import("std");

pub const size_class = @import("size_class.zig");
pub const page_map = @import("page_map.zig");
pub const chunk = @import("chunk.zig");
pub const chunk_source = @import("chunk_source.zig");
pub const file_heap = @import("file_heap.zig");
pub const slab = @import("slab.zig");
pub const thread_cache = @import("thread_cache.zig");
pub const lock = @import("lock.zig");
pub const pool = @import("pool.zig");
pub const huge = @import("huge.zig");
pub const huge_cache = @import("huge_cache.zig");
pub const registry = @import("registry.zig");
pub const report = @import("report.zig");
pub const bulk_bytes = @import("bulk_bytes.zig");

comptime {
    std.testing.refAllDecls(@This()); // in test builds only
}
