//! Where kernels run: this process's thread pool, without the GIL, with panics caught.

use crate::errors::{type_error, value_error, Error, Result};
use pyo3::exceptions::{PyOverflowError, PyRuntimeError};
use pyo3::prelude::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Runs kernel work without the GIL, on this process's thread pool; a panic becomes a
/// RuntimeError instead of unwinding into Python, so the interpreter stays usable.
pub fn detached<T: Send>(py: Python<'_>, work: impl FnOnce() -> hms_core::Result<T> + Send) -> Result<T> {
    let pool = thread_pool()?;
    match py.detach(|| std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| pool.install(work)))) {
        Ok(result) => Ok(result?),
        Err(payload) => Err(panic_error(payload)),
    }
}

/// Runs quick work (argument checks, output shapes) where it is, catching a panic as
/// [`detached`] does: no Rust panic reaches Python as a `PanicException`.
pub fn guarded<T>(work: impl FnOnce() -> Result<T>) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)).unwrap_or_else(|payload| Err(panic_error(payload)))
}

/// The RuntimeError of a caught panic.
fn panic_error(payload: Box<dyn std::any::Any + Send>) -> Error {
    let msg = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    Error::Py(PyRuntimeError::new_err(format!("internal error in the hms native core: {msg}")))
}

/// Threads per available CPU that `set_num_threads` (and `RAYON_NUM_THREADS`) may ask for.
pub const MAX_THREADS_PER_CPU: usize = 8;

/// The most threads a pool may have: `MAX_THREADS_PER_CPU` per CPU this process may use.
pub fn max_threads() -> usize {
    MAX_THREADS_PER_CPU * std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The threads asked for by `set_num_threads` (0: the default, `RAYON_NUM_THREADS` or one per
/// CPU).
static NUM_THREADS: AtomicUsize = AtomicUsize::new(0);
static THREAD_POOL: Mutex<Option<(u32, Arc<rayon::ThreadPool>)>> = Mutex::new(None);

/// The default thread count: `RAYON_NUM_THREADS` capped at `max_threads()` (a larger value would
/// start that many threads for every pool), or 0 for rayon's own default.
fn default_threads() -> usize {
    std::env::var("RAYON_NUM_THREADS").ok().and_then(|v| v.trim().parse::<usize>().ok()).map_or(0, |n| n.min(max_threads()))
}

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
    let threads = match NUM_THREADS.load(Ordering::Relaxed) {
        0 => default_threads(),
        n => n,
    };
    let pool = Arc::new(
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
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
/// (calls already running finish on it). At most `max_threads()`.
#[pyfunction]
pub fn set_num_threads(n: Option<&Bound<'_, PyAny>>) -> Result<()> {
    let cap = max_threads();
    let n = match n {
        None => 0,
        Some(n) => {
            let n: i64 = n.extract().map_err(|e: PyErr| {
                if e.is_instance_of::<PyOverflowError>(n.py()) {
                    value_error(format!("n must be at most {cap} ({MAX_THREADS_PER_CPU} per CPU), got {n}"))
                } else {
                    type_error(format!("n must be an int or None, got {n}"))
                }
            })?;
            if n < 1 {
                return Err(value_error(format!("n must be at least 1 (None for the default), got {n}")));
            }
            let n = usize::try_from(n).unwrap_or(usize::MAX);
            if n > cap {
                return Err(value_error(format!("n must be at most {cap} ({MAX_THREADS_PER_CPU} per CPU), got {n}")));
            }
            n
        }
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

/// The most threads `set_num_threads` accepts in this process.
#[pyfunction]
pub fn max_num_threads() -> usize {
    max_threads()
}

/// Panics inside kernel work, to prove that a panic reaches Python as a RuntimeError.
#[pyfunction]
pub fn _panic_for_tests(py: Python<'_>) -> Result<()> {
    detached(py, || -> hms_core::Result<()> { panic!("deliberate panic for the test suite") })
}

/// Panics in the guarded code that runs with the GIL held (plans, shapes), for the same test.
#[pyfunction]
pub fn _panic_in_plan_for_tests() -> Result<()> {
    guarded(|| -> Result<()> { panic!("deliberate panic in a plan for the test suite") })
}
