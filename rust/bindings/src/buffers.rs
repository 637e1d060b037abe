//! Output arrays: new numpy arrays filled without the GIL, large ones in reused buffers.

use crate::errors::Result;
use crate::runtime::{detached, guarded};
use hms_core::CoreError;
use numpy::{PyArray, PyArrayMethods};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// What a new output holds before its kernel fills it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Init {
    /// Anything: the kernel writes every element. Not zeroing saves, for arrays under glibc's
    /// mmap threshold (32 MiB), a memset of the whole output while holding the GIL.
    Written,
    /// Zeros: the kernel adds into it or leaves parts of it zero.
    Zeroed,
}

/// A new numpy array of `shape` filled by `fill` without the GIL.
///
/// Outputs of `POOL_MIN_BYTES` or more reuse the buffer of an earlier result that Python has
/// released (see [`OutputBuffer`]), zeroed in parallel when asked; smaller ones are new numpy
/// arrays (numpy's zeros come from calloc, zeroed page by page as they are first written). An
/// output whose size overflows, or whose memory the system refuses, is a MemoryError naming
/// `what` (e.g. "the output for eeg").
pub fn output_array<'py, U: numpy::Element + Default + Copy + Send + Sync>(
    py: Python<'py>,
    what: &str,
    shape: Vec<usize>,
    init: Init,
    fill: impl FnOnce(&mut [U]) -> hms_core::Result<()> + Send,
) -> Result<Bound<'py, PyAny>> {
    let what = format!("{what} (shape {shape:?})");
    let len = hms_core::alloc::checked_len::<U>(&shape, &what)?;
    let bytes = len * std::mem::size_of::<U>();
    if bytes < POOL_MIN_BYTES {
        // numpy's own allocation of under 4 MiB; the crate panics if it fails (guarded).
        let array = guarded(|| {
            Ok(if init == Init::Zeroed {
                PyArray::<U, ndarray::IxDyn>::zeros(py, shape.clone(), false)
            } else {
                // SAFETY: float elements have no invalid bit patterns, and `fill` overwrites every
                // one before the array is returned (on an error it is dropped unseen).
                unsafe { PyArray::<U, ndarray::IxDyn>::new(py, shape.clone(), false) }
            })
        })?;
        {
            let mut out = array.readwrite();
            let out = out.as_slice_mut().expect("a new array is contiguous");
            detached(py, || fill(out))?;
        }
        return Ok(array.into_any());
    }
    assert!(std::mem::align_of::<U>() <= std::mem::align_of::<u64>());
    let mut words = OutputBuffer::take(bytes.div_ceil(8), &what)?;
    let ptr = words.as_mut_ptr().cast::<U>();
    {
        // SAFETY: the buffer holds at least `len` elements of U (aligned: U is a float or a
        // complex of floats). Its words may be uninitialized (a new buffer): the kernels write
        // every element before they read it (`Init::Written`), or it is zeroed below first
        // (`Init::Zeroed`), and the array is exposed only after `fill` has succeeded; float
        // elements have no invalid bit patterns once written.
        let out = unsafe { std::slice::from_raw_parts_mut(ptr, len) };
        detached(py, || {
            if init == Init::Zeroed {
                use rayon::prelude::*;
                out.par_chunks_mut(1 << 16).for_each(|chunk| chunk.fill(U::default()));
            }
            fill(out)
        })?;
    }
    // Moving the Vec into its owner does not move its heap memory, which the array points into.
    let owner = Bound::new(py, OutputBuffer { words })?;
    // SAFETY: `ptr` addresses `len` initialized elements owned by `owner`, which becomes the
    // array's base object and is never reallocated.
    let view = unsafe { ndarray::ArrayViewD::from_shape_ptr(ndarray::IxDyn(&shape), ptr as *const U) };
    // SAFETY: `owner` keeps the memory behind `view` alive for as long as the array exists.
    Ok(unsafe { PyArray::<U, ndarray::IxDyn>::borrow_from_array(&view, owner.into_any()) }.into_any())
}

/// Outputs this large come from the pool: below it, faulting in fresh pages costs little.
const POOL_MIN_BYTES: usize = 4 << 20;
/// At most this many released buffers, and this many bytes, wait in the pool.
const POOL_BUFFERS: usize = 4;
const POOL_BYTES: usize = 512 << 20;
static POOL: Mutex<Vec<Vec<MaybeUninit<u64>>>> = Mutex::new(Vec::new());
/// Pooled-size outputs served from the pool, and newly allocated, since the process started.
static REUSED: AtomicUsize = AtomicUsize::new(0);
static ALLOCATED: AtomicUsize = AtomicUsize::new(0);

/// The memory behind a large output array (its numpy base object). When the array and all its
/// views are gone, the buffer goes back to a small pool that the next output of the same size
/// takes: a fresh 50 MB array costs more to fault in (page zeroing, huge-page allocation; much
/// more in a virtual machine) than `sosfiltfilt` takes to fill it, and batch loops ask for the
/// same sizes again and again. The pool holds at most `POOL_BUFFERS` buffers and `POOL_BYTES`
/// bytes, dropping the oldest first.
#[pyclass(frozen, module = "hms._native")]
pub struct OutputBuffer {
    words: Vec<MaybeUninit<u64>>,
}

impl OutputBuffer {
    /// A buffer of exactly `n_words` (contents unspecified, possibly uninitialized): a pooled
    /// one, or a new one; `what` names it if the memory cannot be had.
    fn take(n_words: usize, what: &str) -> hms_core::Result<Vec<MaybeUninit<u64>>> {
        let mut pool = POOL.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(i) = pool.iter().position(|b| b.len() == n_words) {
            REUSED.fetch_add(1, Ordering::Relaxed);
            return Ok(pool.remove(i));
        }
        drop(pool);
        let mut words = Vec::new();
        words.try_reserve_exact(n_words).map_err(|_| CoreError::alloc(what, n_words.checked_mul(8)))?;
        // SAFETY: the capacity was reserved above, and uninitialized memory is a valid value of
        // `MaybeUninit<u64>`.
        unsafe { words.set_len(n_words) };
        ALLOCATED.fetch_add(1, Ordering::Relaxed);
        advise_huge_pages(&mut words);
        Ok(words)
    }
}

impl Drop for OutputBuffer {
    fn drop(&mut self) {
        let words = std::mem::take(&mut self.words);
        if words.is_empty() {
            return;
        }
        let mut pool = POOL.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        pool.push(words);
        while pool.len() > POOL_BUFFERS || pool.iter().map(|b| b.len() * 8).sum::<usize>() > POOL_BYTES {
            pool.remove(0);
        }
    }
}

/// Asks Linux for transparent huge pages behind a new buffer (where THP is in "madvise" mode, as
/// numpy does for its large arrays): 512 times fewer page faults when it is first written.
fn advise_huge_pages(words: &mut [MaybeUninit<u64>]) {
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 2 << 20;
        let start = words.as_mut_ptr() as usize;
        let end = start + std::mem::size_of_val(words);
        let (first, last) = (start.next_multiple_of(HUGE), end / HUGE * HUGE);
        if first < last {
            // SAFETY: the range lies inside this live allocation; madvise only sets a hint and
            // its failure (e.g. THP unavailable) changes nothing.
            unsafe { libc::madvise(first as *mut libc::c_void, last - first, libc::MADV_HUGEPAGE) };
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = words;
}

/// The output pool now, for tests: buffers and bytes waiting in it, and how many pooled-size
/// outputs were served from it (`reused`) or newly allocated (`allocated`) so far.
#[pyfunction]
pub fn _output_pool_stats(py: Python<'_>) -> Result<Bound<'_, PyDict>> {
    let (buffers, bytes) = {
        let pool = POOL.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        (pool.len(), pool.iter().map(|b| b.len() * 8).sum::<usize>())
    };
    let stats = PyDict::new(py);
    stats.set_item("buffers", buffers)?;
    stats.set_item("bytes", bytes)?;
    stats.set_item("reused", REUSED.load(Ordering::Relaxed))?;
    stats.set_item("allocated", ALLOCATED.load(Ordering::Relaxed))?;
    Ok(stats)
}
