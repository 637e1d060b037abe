//! Where kernels run: this process's thread pool, without the GIL, with panics caught.

use crate::errors::{value_error, Error, Result};
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Runs kernel work without the GIL, on this process's thread pool; a panic becomes a
/// RuntimeError instead of unwinding into Python, so the interpreter stays usable.
pub fn detached<T: Send>(py: Python<'_>, work: impl FnOnce() -> hms_core::Result<T> + Send) -> Result<T> {
    let pool = thread_pool()?;
    match py.detach(|| std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| pool.install(work)))) {
        Ok(result) => Ok(result?),
        Err(payload) => {
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Err(PyRuntimeError::new_err(format!("internal error in the hms native core: {msg}")).into())
        }
    }
}

/// The threads asked for by `set_num_threads` (0: rayon's default, `RAYON_NUM_THREADS` or one
/// per CPU).
static NUM_THREADS: AtomicUsize = AtomicUsize::new(0);
static THREAD_POOL: Mutex<Option<(u32, Arc<rayon::ThreadPool>)>> = Mutex::new(None);

/// The worker threads of the current process. A forked child (e.g. a DataLoader worker) inherits
/// the parent's pool without its threads, and would wait on it forever: it gets a pool of its own.
fn thread_pool() -> Result<Arc<rayon::ThreadPool>> {
    let pid = std::process::id();
    let mut guard = THREAD_POOL.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some((owner, pool)) = guard.as_ref() {
        if *owner == pid {
            return Ok(pool.clone());
        }
    }
    release(guard.take());
    let pool = Arc::new(
        rayon::ThreadPoolBuilder::new()
            .num_threads(NUM_THREADS.load(Ordering::Relaxed))
            .build()
            .map_err(|e| Error::Py(PyRuntimeError::new_err(format!("cannot start the hms native thread pool: {e}"))))?,
    );
    *guard = Some((pid, pool.clone()));
    Ok(pool)
}

/// Lets go of a pool: this process's is dropped (calls running on it finish first); one inherited
/// by fork is forgotten, as its threads do not exist here and dropping it would wait for them.
fn release(entry: Option<(u32, Arc<rayon::ThreadPool>)>) {
    if let Some((owner, pool)) = entry {
        if owner != std::process::id() {
            std::mem::forget(pool);
        }
    }
}

/// Threads of this process's pool from now on (None: the default); the current pool is replaced
/// (calls already running finish on it).
#[pyfunction]
pub fn set_num_threads(n: Option<isize>) -> Result<()> {
    let n = match n {
        None => 0,
        Some(n) => usize::try_from(n)
            .ok()
            .filter(|&n| n >= 1)
            .ok_or_else(|| value_error(format!("n must be at least 1 (None for the default), got {n}")))?,
    };
    NUM_THREADS.store(n, Ordering::Relaxed);
    release(THREAD_POOL.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take());
    Ok(())
}

/// Threads of this process's pool.
#[pyfunction]
pub fn get_num_threads() -> Result<usize> {
    Ok(thread_pool()?.current_num_threads())
}

/// Panics inside kernel work, to prove that a panic reaches Python as a RuntimeError.
#[pyfunction]
pub fn _panic_for_tests(py: Python<'_>) -> Result<()> {
    detached(py, || -> hms_core::Result<()> { panic!("deliberate panic for the test suite") })
}
