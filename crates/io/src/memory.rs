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
//!
//! [`advise_huge_pages`] asks Linux to back a large buffer that is about to be filled with
//! transparent huge pages (2 MiB): one page fault instead of 512 per 2 MiB, and fewer TLB
//! misses when writes scatter over the buffer.

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

/// Transparent huge page size on x86-64 and aarch64 Linux (2 MiB).
const HUGE_PAGE: usize = 2 << 20;

/// Advises the kernel to back the 2 MiB-aligned part of `v`'s allocation (its capacity, used
/// or not) with transparent huge pages, when the system allows them per mapping (the
/// `madvise` setting of `/sys/kernel/mm/transparent_hugepage/enabled`; with `always` they are
/// used anyway, with `never` the advice is ignored). Only the paging changes, never the
/// contents; buffers under 4 MiB are left alone. No-op off Linux.
pub fn advise_huge_pages<T>(v: &Vec<T>) {
    #[cfg(target_os = "linux")]
    {
        let bytes = v.capacity().saturating_mul(std::mem::size_of::<T>());
        if bytes < 2 * HUGE_PAGE {
            return;
        }
        let start = v.as_ptr() as usize;
        let (a, b) = (
            start.next_multiple_of(HUGE_PAGE),
            (start + bytes) / HUGE_PAGE * HUGE_PAGE,
        );
        if b > a {
            // SAFETY: [a, b) lies inside the allocation of `v` (page-aligned, as madvise
            // needs); MADV_HUGEPAGE changes how the range is paged, not what it holds. The
            // result is advisory: an error leaves ordinary pages.
            unsafe {
                libc::madvise(a as *mut libc::c_void, b - a, libc::MADV_HUGEPAGE);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = v;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advised_buffers_keep_their_contents() {
        for n in [0usize, 100, 3 << 20, 5 << 20] {
            let mut v: Vec<u32> = (0..n as u32).collect();
            advise_huge_pages(&v);
            v.extend(0..7);
            assert!(v[..n].iter().enumerate().all(|(i, &x)| x == i as u32));
            assert_eq!(&v[n..], &[0, 1, 2, 3, 4, 5, 6]);
        }
    }
}
