//! Tuning glibc's allocator for long-running commands (bench/NOTES.md has the measurements).
//!
//! glibc keeps memory it got back from the program in its arenas, so a process's RSS is its
//! high-water mark, not what it holds. Ingest's background compaction briefly holds a merge's
//! worth of rows; without a trim afterwards RSS would stay at the largest merge ever made.
//! (mimalloc, tried instead, held more: its per-thread heaps keep the pages of the short-lived
//! threads that file I/O runs on.)

/// Fewer arenas: glibc gives every thread that allocates its own (up to 8 per core), and
/// ingest's poll, decode and commit threads each churning through batches inflates peak RSS.
/// Called before any other thread starts.
pub(crate) fn limit_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        const M_ARENA_MAX: i32 = -8;
        // SAFETY: mallopt only tunes the allocator; no other thread runs yet.
        unsafe {
            libc::mallopt(M_ARENA_MAX, 2);
        }
    }
}

/// For a server whose every large answer allocates and frees the same sizes again: freed memory
/// stays with the allocator instead of going back to the system at once, so the next scan does
/// not fault in and zero its pages anew, a large share of a full scan's server CPU otherwise
/// (bench/NOTES.md, "Merged files encoded for reading"). Blocks up to 32 MiB come from the heap
/// rather than their own mapping, and up to 128 MiB free at a heap's top is kept. Called before
/// any other thread starts.
pub(crate) fn keep_freed_for_reuse() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // Setting the trim threshold stops glibc from raising the mmap threshold by itself, so
        // both are set (glibc accepts no larger mmap threshold on 64-bit).
        // SAFETY: mallopt only tunes the allocator; no other thread runs yet.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 32 * 1024 * 1024);
            libc::mallopt(libc::M_TRIM_THRESHOLD, 128 * 1024 * 1024);
        }
    }
}

/// Hands memory the allocator holds but the program freed back to the system.
pub(crate) fn release_freed() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free pages; it is thread-safe.
    unsafe {
        libc::malloc_trim(0);
    }
}
