//! Hands the memory the process freed back to the system. glibc's allocator keeps what a
//! thread frees in that thread's arena for reuse: the routes and OpenAPI path items each HTTP
//! worker builds at start, and the buffers of a burst of requests, stay resident (about 30 MiB
//! of a fresh server's 80). `malloc_trim` returns the free pages; other allocators and
//! platforms need nothing.

use std::time::Duration;

/// How often the free memory is handed back after the first time, two seconds after start.
pub const EVERY: Duration = Duration::from_secs(30);

/// Trims now and then every [`EVERY`], off the async workers, until aborted.
pub async fn run_trimmer() {
    tokio::time::sleep(Duration::from_secs(2)).await;
    loop {
        // A trim takes each arena's lock for a moment; on a blocking thread it delays no
        // request's task.
        let _ = tokio::task::spawn_blocking(release_free_memory).await;
        tokio::time::sleep(EVERY).await;
    }
}

/// Returns the allocator's free pages to the system.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn release_free_memory() {
    unsafe extern "C" {
        // glibc: `int malloc_trim(size_t pad)`.
        fn malloc_trim(pad: usize) -> std::ffi::c_int;
    }
    // SAFETY: `malloc_trim` takes no pointer and is thread-safe (it locks each arena while
    // trimming it); it only releases pages the allocator holds free.
    unsafe {
        malloc_trim(0);
    }
}

/// Returns the allocator's free pages to the system (nothing to do here).
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn release_free_memory() {}
