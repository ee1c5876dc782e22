//! The C allocator's setting for a process that handles frames. Frames, tensors and encoded images
//! are hundreds of KB to tens of MB, freed as soon as a frame is done. glibc serves blocks over its
//! mmap threshold with their own mappings, returned to the system when freed, but raises that
//! threshold up to 32 MiB each time such a block is freed; after the first frames, buffers of a
//! frame's size come from the heap instead, fragment it, and the process keeps what it held at its
//! peak. A fixed threshold keeps large buffers in their own mappings: on the 2-core benchmark
//! machine the 60- and 150-frame talking-clip swaps (costed stand-ins) peak at ~145-160 MiB instead
//! of ~200-216 MiB, at the same speed.

/// Blocks from this size up get their own mapping (a frame of 256×340 BGR and up).
const MMAP_THRESHOLD: i32 = 256 * 1024;

/// Fixes glibc's mmap threshold, unless `MALLOC_MMAP_THRESHOLD_` already set one. Call it at the
/// start of `main`, before any frame is handled; glibc applies it to later allocations from any
/// thread. Elsewhere than glibc it does nothing.
pub fn keep_large_buffers_out_of_the_heap() {
    if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_some() {
        return;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes a setting of glibc's allocator (under its own lock), which it
    // applies to later allocations; it takes no pointers.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
    }
}
