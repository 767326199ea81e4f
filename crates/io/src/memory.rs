//! How the process gives memory back to the system.
//!
//! The twin's sharded runs allocate and free buffers of tens to hundreds of megabytes (a
//! shard's photon lists) on several threads at once. glibc's allocator serves a request below
//! its mmap threshold from per-thread heaps and, by default, raises that threshold up to 32 MiB
//! each time a mapped block is freed: freed shard buffers then stay in the heaps, fragmented,
//! and resident memory climbs above what is in use (measured on the full-scale Pt scan at
//! 0.1 GPa, 2 shards at a time: 9.2 GB peak resident against a planned 8.0 GiB, 7.8 GB with
//! the setting below, and no slower). [`return_freed_memory`] fixes the threshold at 1 MiB
//! (every larger block is its own mapping, unmapped when freed) and bounds the heaps to the
//! thread count. Other allocators and systems: nothing to do.

/// Every block of 1 MiB or more gets its own mapping, returned to the system when freed, and
/// at most `threads` (≥ 2) heaps (see the module doc). Call once, before the threads start.
pub fn return_freed_memory(threads: usize) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let arenas = threads.clamp(2, i32::MAX as usize) as libc::c_int;
        // SAFETY: mallopt only sets allocator parameters; it is called before any other
        // thread of this process allocates.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
            libc::mallopt(libc::M_ARENA_MAX, arenas);
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = threads;
}
