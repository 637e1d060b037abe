//! Python bindings of the hms native core (`hms._native`).
//!
//! This module only converts arrays, releases the GIL around the work, and maps errors (and any
//! panic) to Python exceptions. The kernels live in plain-Rust modules that know nothing of Python.

pub mod bandmel;
pub mod error;
pub mod filter;
pub mod inputs;
pub mod mel;
pub mod montage;
pub mod real;
pub mod spectral;
pub mod stats;
#[cfg(test)]
mod testing;
pub mod transform;

use error::Error;
use ndarray::Array2;
use numpy::{IntoPyArray, PyArray2, PyReadonlyArray2, PyReadonlyArrayDyn, PyReadwriteArrayDyn, PyUntypedArrayMethods};
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use std::sync::{Arc, Mutex};

fn py_err(e: Error) -> PyErr {
    match e {
        Error::Value(msg) => PyValueError::new_err(msg),
        Error::Type(msg) => PyTypeError::new_err(msg),
    }
}

/// Runs kernel work without the GIL, on this process's thread pool; a panic becomes a
/// RuntimeError instead of unwinding into Python, so the interpreter stays usable.
fn detached<T: Send>(py: Python<'_>, work: impl FnOnce() -> error::Result<T> + Send) -> PyResult<T> {
    let pool = thread_pool()?;
    match py.detach(|| std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| pool.install(work)))) {
        Ok(result) => result.map_err(py_err),
        Err(payload) => {
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Err(PyRuntimeError::new_err(format!("internal error in the hms native core: {msg}")))
        }
    }
}

/// The threads asked for by `set_num_threads` (0: rayon's default, `RAYON_NUM_THREADS` or one
/// per CPU).
static NUM_THREADS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
static THREAD_POOL: Mutex<Option<(u32, Arc<rayon::ThreadPool>)>> = Mutex::new(None);

/// The worker threads of the current process. A forked child (e.g. a DataLoader worker) inherits
/// the parent's pool without its threads, and would wait on it forever: it gets a pool of its own.
fn thread_pool() -> PyResult<Arc<rayon::ThreadPool>> {
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
            .num_threads(NUM_THREADS.load(std::sync::atomic::Ordering::Relaxed))
            .build()
            .map_err(|e| PyRuntimeError::new_err(format!("cannot start the hms native thread pool: {e}")))?,
    );
    *guard = Some((pid, pool.clone()));
    Ok(pool)
}

/// Threads of this process's pool from now on (0: the default); the current pool is replaced
/// (calls already running finish on it).
#[pyfunction]
fn set_num_threads(n: usize) -> PyResult<()> {
    NUM_THREADS.store(n, std::sync::atomic::Ordering::Relaxed);
    release(THREAD_POOL.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take());
    Ok(())
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

/// Threads of this process's pool.
#[pyfunction]
fn get_num_threads() -> PyResult<usize> {
    Ok(thread_pool()?.current_num_threads())
}

fn dtype_error(name: &str, x: &Bound<'_, PyAny>) -> PyErr {
    let found = x.getattr("dtype").map(|d| d.to_string()).unwrap_or_else(|_| x.get_type().to_string());
    PyTypeError::new_err(format!("{name} must be a float32 or float64 numpy array, got {found}"))
}

/// Evaluates `$body` with `$arr` bound to `$x` as a readonly float64 or float32 array.
macro_rules! with_float_array {
    ($x:expr, $name:expr, |$arr:ident| $body:expr) => {{
        if let Ok($arr) = $x.extract::<PyReadonlyArrayDyn<f64>>() {
            $body
        } else if let Ok($arr) = $x.extract::<PyReadonlyArrayDyn<f32>>() {
            $body
        } else {
            Err(dtype_error($name, $x))
        }
    }};
}

/// Same as `with_float_array` for an array written in place.
macro_rules! with_float_array_mut {
    ($x:expr, $name:expr, |$arr:ident| $body:expr) => {{
        if let Ok(mut $arr) = $x.extract::<PyReadwriteArrayDyn<f64>>() {
            $body
        } else if let Ok(mut $arr) = $x.extract::<PyReadwriteArrayDyn<f32>>() {
            $body
        } else {
            Err(dtype_error($name, $x))
        }
    }};
}

#[pyfunction]
fn sosfiltfilt<'py>(py: Python<'py>, sos: PyReadonlyArray2<'py, f64>, x: &Bound<'py, PyAny>, axis: usize) -> PyResult<Bound<'py, PyAny>> {
    let sos = filter::Sos::new(sos.as_array()).map_err(py_err)?;
    with_float_array!(x, "x", |arr| {
        let view = arr.as_array();
        written(py, Ok(view.shape().to_vec()), |out| filter::sosfiltfilt_into(&sos, view, axis, out))
    })
}

#[pyfunction]
fn sosfilt_zi<'py>(py: Python<'py>, sos: PyReadonlyArray2<'py, f64>) -> PyResult<Bound<'py, PyAny>> {
    let sos = filter::Sos::new(sos.as_array()).map_err(py_err)?;
    let zi: Vec<f64> = sos.initial_conditions().into_iter().flatten().collect();
    let n = zi.len() / 2;
    Ok(Array2::from_shape_vec((n, 2), zi).expect("n x 2").into_pyarray(py).into_any())
}

#[pyfunction]
fn sos_padlen(sos: PyReadonlyArray2<'_, f64>) -> PyResult<usize> {
    Ok(filter::Sos::new(sos.as_array()).map_err(py_err)?.padlen())
}

#[pyfunction]
fn clip_log<'py>(py: Python<'py>, x: &Bound<'py, PyAny>, lo: f64, hi: f64, nan: f64) -> PyResult<Bound<'py, PyAny>> {
    with_float_array!(x, "x", |arr| {
        let view = arr.as_array();
        written(py, Ok(view.shape().to_vec()), |out| transform::clip_log_into(view, lo, hi, nan, out))
    })
}

/// float16 -> float32 (exact), any shape and layout.
#[pyfunction]
fn float16_to_float32<'py>(py: Python<'py>, x: PyReadonlyArrayDyn<'py, half::f16>) -> PyResult<Bound<'py, PyAny>> {
    let view = x.as_array();
    written(py, Ok(view.shape().to_vec()), |out| transform::f16_to_f32_into(view, out))
}

#[pyfunction]
fn clip_log_inplace(py: Python<'_>, x: &Bound<'_, PyAny>, lo: f64, hi: f64, nan: f64) -> PyResult<()> {
    with_float_array_mut!(x, "out", |arr| {
        let slice = arr.as_slice_mut().map_err(|_| PyValueError::new_err("out must be a C-contiguous array"))?;
        detached(py, || transform::clip_log_inplace(slice, lo, hi, nan))
    })
}

#[pyfunction]
fn instance_normalize<'py>(py: Python<'py>, x: &Bound<'py, PyAny>, eps: f64) -> PyResult<Bound<'py, PyAny>> {
    with_float_array!(x, "x", |arr| {
        if arr.ndim() != 2 {
            return Err(PyValueError::new_err(format!(
                "instance_normalize's native kernel takes (instances, elements), got {} dims",
                arr.ndim()
            )));
        }
        let view = arr.as_array().into_dimensionality::<ndarray::Ix2>().expect("2-d");
        written(py, Ok(view.shape().to_vec()), |out| transform::instance_normalize_into(view, eps, out))
    })
}

/// `instance_normalize(clip_log(x))` of each row of a 2-D array (instances, elements).
#[pyfunction]
fn clip_log_normalize<'py>(py: Python<'py>, x: &Bound<'py, PyAny>, lo: f64, hi: f64, nan: f64, eps: f64) -> PyResult<Bound<'py, PyAny>> {
    with_float_array!(x, "x", |arr| {
        if arr.ndim() != 2 {
            return Err(PyValueError::new_err(format!(
                "clip_log_normalize's native kernel takes (instances, elements), got {} dims",
                arr.ndim()
            )));
        }
        let view = arr.as_array().into_dimensionality::<ndarray::Ix2>().expect("2-d");
        written(py, Ok(view.shape().to_vec()), |out| transform::clip_log_normalize_into(view, lo, hi, nan, eps, out))
    })
}

/// [`clip_log_normalize`] in place on a C-contiguous array, instances of `cols` elements.
#[pyfunction]
fn clip_log_normalize_inplace(py: Python<'_>, x: &Bound<'_, PyAny>, cols: usize, lo: f64, hi: f64, nan: f64, eps: f64) -> PyResult<()> {
    with_float_array_mut!(x, "out", |arr| {
        let slice = arr.as_slice_mut().map_err(|_| PyValueError::new_err("out must be a C-contiguous array"))?;
        detached(py, || transform::clip_log_normalize_inplace(slice, cols, lo, hi, nan, eps))
    })
}

/// Native state of `hms.dsp.RunningStats`.
#[pyclass(module = "hms._native", name = "RunningStatsCore")]
struct PyRunningStats {
    inner: stats::RunningStats,
}

#[pymethods]
impl PyRunningStats {
    #[new]
    fn new(per_channel: bool) -> Self {
        let inner = if per_channel { stats::RunningStats::per_channel() } else { stats::RunningStats::global() };
        PyRunningStats { inner }
    }

    #[getter]
    fn per_channel(&self) -> bool {
        self.inner.is_per_channel()
    }

    /// Adds the values of `x`; per channel, axis 0 is the channel axis.
    fn update(&mut self, py: Python<'_>, x: &Bound<'_, PyAny>) -> PyResult<()> {
        let inner = &mut self.inner;
        with_float_array!(x, "x", |arr| {
            let view = arr.as_array();
            detached(py, || inner.update(view))
        })
    }

    fn merge(&mut self, other: PyRef<'_, PyRunningStats>) -> PyResult<()> {
        self.inner.merge(&other.inner).map_err(py_err)
    }

    /// One row per channel: count, nan_count, mean, mean_lo, m2, min, max (see `stats::Moments`).
    fn state<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray2<f64>> {
        let rows: Vec<f64> = self
            .inner
            .channels()
            .iter()
            .flat_map(|m| [m.count as f64, m.nan_count as f64, m.mean, m.mean_lo, m.m2, m.min, m.max])
            .collect();
        let n = rows.len() / STATE_FIELDS;
        Array2::from_shape_vec((n, STATE_FIELDS), rows).expect("n x fields").into_pyarray(py)
    }

    #[staticmethod]
    fn from_state(per_channel: bool, state: PyReadonlyArray2<'_, f64>) -> PyResult<Self> {
        let state = state.as_array();
        if state.ncols() != STATE_FIELDS {
            return Err(PyValueError::new_err(format!(
                "RunningStats state must have {STATE_FIELDS} columns, got shape {:?}",
                state.shape()
            )));
        }
        let as_count = |v: f64, what: &str| -> PyResult<u64> {
            if v >= 0.0 && v.fract() == 0.0 && v < 9.007_199_254_740_992e15 {
                Ok(v as u64)
            } else {
                Err(PyValueError::new_err(format!("RunningStats state: {what} must be a non-negative integer, got {v}")))
            }
        };
        let channels = state
            .rows()
            .into_iter()
            .map(|r| {
                Ok(stats::Moments {
                    count: as_count(r[0], "count")?,
                    nan_count: as_count(r[1], "nan_count")?,
                    mean: r[2],
                    mean_lo: r[3],
                    m2: r[4],
                    min: r[5],
                    max: r[6],
                })
            })
            .collect::<PyResult<Vec<_>>>()?;
        Ok(PyRunningStats { inner: stats::RunningStats::from_moments(channels, per_channel).map_err(py_err)? })
    }
}

const STATE_FIELDS: usize = 7;

/// Panics inside kernel work, to prove that a panic reaches Python as a RuntimeError.
#[pyfunction]
fn _panic_for_tests(py: Python<'_>) -> PyResult<()> {
    detached(py, || -> error::Result<()> { panic!("deliberate panic for the test suite") })
}

// ------------------------------------------------------------------------------------------------
// Spectral core: STFT, spectrograms, mel spectrograms, the bipolar montage and the EEG recipes
// (kernels in spectral.rs, mel.rs, montage.rs).

use numpy::{PyArray1, PyArrayMethods, PyReadonlyArray1};
use spectral::{Detrend, Framing, PadMode, Scaling, Window};

/// A window given as a name, a (name, parameter) tuple or an array of float64 values.
fn window_arg(window: &Bound<'_, PyAny>) -> PyResult<Window> {
    if let Ok(name) = window.extract::<String>() {
        return Window::from_name(&name, None).map_err(py_err);
    }
    if let Ok((name, param)) = window.extract::<(String, f64)>() {
        return Window::from_name(&name, Some(param)).map_err(py_err);
    }
    if let Ok(values) = window.extract::<PyReadonlyArray1<'_, f64>>() {
        return Ok(Window::Values(values.as_array().to_vec()));
    }
    Err(PyTypeError::new_err("window must be a name, a (name, parameter) tuple or a 1-D float64 array"))
}

/// A new numpy array of `shape` filled by `fill` without the GIL, for kernels that write every
/// element: it skips the zeroing, which for arrays under glibc's mmap threshold (32 MiB) is a
/// memset of the whole output while holding the GIL.
fn written<'py, U: numpy::Element + Default + Copy + Send + Sync>(
    py: Python<'py>,
    shape: error::Result<Vec<usize>>,
    fill: impl FnOnce(&mut [U]) -> error::Result<()> + Send,
) -> PyResult<Bound<'py, PyAny>> {
    output_array(py, shape, false, fill)
}

/// A new numpy array of `shape`, zeroed, then filled by `fill` without the GIL (for kernels that
/// add into their output or leave parts of it zero).
fn filled<'py, U: numpy::Element + Default + Copy + Send + Sync>(
    py: Python<'py>,
    shape: error::Result<Vec<usize>>,
    fill: impl FnOnce(&mut [U]) -> error::Result<()> + Send,
) -> PyResult<Bound<'py, PyAny>> {
    output_array(py, shape, true, fill)
}

/// Outputs of `POOL_MIN_BYTES` or more reuse the buffer of an earlier result that Python has
/// released (see [`OutputBuffer`]), zeroed in parallel when asked; smaller ones are new numpy
/// arrays (numpy's zeros come from calloc, zeroed page by page as they are first written).
fn output_array<'py, U: numpy::Element + Default + Copy + Send + Sync>(
    py: Python<'py>,
    shape: error::Result<Vec<usize>>,
    zero: bool,
    fill: impl FnOnce(&mut [U]) -> error::Result<()> + Send,
) -> PyResult<Bound<'py, PyAny>> {
    let shape = shape.map_err(py_err)?;
    let len: usize = shape.iter().product();
    let bytes = len.saturating_mul(std::mem::size_of::<U>());
    if bytes < POOL_MIN_BYTES {
        let array = if zero {
            numpy::PyArray::<U, ndarray::IxDyn>::zeros(py, shape, false)
        } else {
            // SAFETY: float elements have no invalid bit patterns, and `fill` overwrites every
            // one before the array is returned (on an error it is dropped unseen).
            unsafe { numpy::PyArray::<U, ndarray::IxDyn>::new(py, shape, false) }
        };
        {
            let mut out = array.readwrite();
            let out = out.as_slice_mut().expect("a new array is contiguous");
            detached(py, || fill(out))?;
        }
        return Ok(array.into_any());
    }
    assert!(std::mem::align_of::<U>() <= std::mem::align_of::<u64>());
    let mut words = OutputBuffer::take(bytes.div_ceil(8));
    let ptr = words.as_mut_ptr().cast::<U>();
    {
        // SAFETY: the buffer holds at least `len` elements of U (aligned: U is f32 or f64); float
        // elements have no invalid bit patterns, and the array is exposed only after `fill` (which
        // writes every element, or every one that is not zeroed here) has succeeded.
        let out = unsafe { std::slice::from_raw_parts_mut(ptr, len) };
        detached(py, || {
            if zero {
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
    Ok(unsafe { numpy::PyArray::<U, ndarray::IxDyn>::borrow_from_array(&view, owner.into_any()) }.into_any())
}

/// Outputs this large come from the pool: below it, faulting in fresh pages costs little.
const POOL_MIN_BYTES: usize = 4 << 20;
/// At most this many released buffers, and this many bytes, wait in the pool.
const POOL_BUFFERS: usize = 4;
const POOL_BYTES: usize = 512 << 20;
static POOL: Mutex<Vec<Vec<u64>>> = Mutex::new(Vec::new());

/// The memory behind a large output array (its numpy base object). When the array and all its
/// views are gone, the buffer goes back to a small pool that the next output of the same size
/// takes: a fresh 50 MB array costs more to fault in (page zeroing, huge-page allocation; much
/// more in a virtual machine) than `sosfiltfilt` takes to fill it, and batch loops ask for the
/// same sizes again and again. The pool holds at most `POOL_BUFFERS` buffers and `POOL_BYTES`
/// bytes, dropping the oldest first.
#[pyclass(frozen, module = "hms._native")]
struct OutputBuffer {
    words: Vec<u64>,
}

impl OutputBuffer {
    /// A buffer of exactly `n_words` (contents unspecified): a pooled one, or a new one.
    fn take(n_words: usize) -> Vec<u64> {
        let mut pool = POOL.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(i) = pool.iter().position(|b| b.len() == n_words) {
            return pool.remove(i);
        }
        drop(pool);
        let mut words = Vec::with_capacity(n_words);
        // SAFETY: u64 has no invalid bit patterns; callers overwrite what they expose.
        #[allow(clippy::uninit_vec)]
        unsafe {
            words.set_len(n_words)
        };
        advise_huge_pages(&mut words);
        words
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
fn advise_huge_pages(words: &mut [u64]) {
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

fn sos_list(filters: Vec<PyReadonlyArray2<'_, f64>>) -> PyResult<Vec<filter::Sos>> {
    filters.iter().map(|f| filter::Sos::new(f.as_array()).map_err(py_err)).collect()
}

#[pyfunction]
fn get_window<'py>(py: Python<'py>, window: &Bound<'py, PyAny>, n: usize) -> PyResult<Bound<'py, PyArray1<f64>>> {
    Ok(window_arg(window)?.periodic(n).map_err(py_err)?.into_pyarray(py))
}

/// STFT with frames first: (..., n_frames, n_freq).
#[pyfunction]
#[allow(clippy::too_many_arguments)]
fn stft<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    n_fft: usize,
    hop_length: usize,
    win_length: usize,
    window: &Bound<'py, PyAny>,
    center: bool,
    pad_mode: &str,
) -> PyResult<Bound<'py, PyAny>> {
    let framing = Framing::new(n_fft, hop_length, center, PadMode::from_name(pad_mode).map_err(py_err)?).map_err(py_err)?;
    let plan = spectral::Stft::new(framing, &window_arg(window)?, Some(win_length)).map_err(py_err)?;
    with_float_array!(x, "x", |arr| {
        let view = arr.as_array();
        filled(py, plan.output_shape(view.shape()), |out| plan.compute_into(view, out))
    })
}

/// scipy.signal.spectrogram's Sxx with segments first: (..., n_segments, n_freq).
#[pyfunction]
#[allow(clippy::too_many_arguments)]
fn spectrogram<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    fs: f64,
    window: &Bound<'py, PyAny>,
    nperseg: usize,
    noverlap: usize,
    nfft: usize,
    detrend: &str,
    scaling: &str,
) -> PyResult<Bound<'py, PyAny>> {
    let detrend = Detrend::from_name(detrend).map_err(py_err)?;
    let scaling = Scaling::from_name(scaling).map_err(py_err)?;
    let plan = spectral::Spectrogram::new(fs, &window_arg(window)?, nperseg, noverlap, nfft, detrend, scaling).map_err(py_err)?;
    with_float_array!(x, "x", |arr| {
        let view = arr.as_array();
        filled(py, plan.output_shape(view.shape()), |out| plan.compute_into(view, out))
    })
}

#[pyfunction]
#[allow(clippy::too_many_arguments)]
fn mel_filterbank<'py>(
    py: Python<'py>,
    sr: f64,
    n_fft: usize,
    n_mels: usize,
    fmin: f64,
    fmax: f64,
    htk: bool,
    slaney_norm: bool,
) -> PyResult<Bound<'py, PyArray2<f32>>> {
    let mel = mel::MelFilterbank::new(sr, n_fft, n_mels, fmin, fmax, htk, slaney_norm).map_err(py_err)?;
    let dense: Vec<f32> = mel.to_dense().into_iter().map(|v| v as f32).collect();
    Ok(Array2::from_shape_vec((n_mels, mel.n_freq()), dense).expect("n_mels x n_freq").into_pyarray(py))
}

#[allow(clippy::too_many_arguments)]
fn mel_spec(
    sr: f64,
    n_fft: usize,
    hop_length: usize,
    win_length: usize,
    window: &Window,
    center: bool,
    pad_mode: &str,
    power: f64,
    n_mels: usize,
    fmin: f64,
    fmax: f64,
    htk: bool,
    slaney_norm: bool,
) -> error::Result<mel::MelSpectrogram> {
    let framing = Framing::new(n_fft, hop_length, center, PadMode::from_name(pad_mode)?)?;
    let bank = mel::MelFilterbank::new(sr, n_fft, n_mels, fmin, fmax, htk, slaney_norm)?;
    mel::MelSpectrogram::new(framing, window, Some(win_length), bank, power)
}

/// Mel power spectrogram: (..., n_mels, n_frames).
#[pyfunction]
#[allow(clippy::too_many_arguments)]
fn melspectrogram<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    sr: f64,
    n_fft: usize,
    hop_length: usize,
    win_length: usize,
    window: &Bound<'py, PyAny>,
    center: bool,
    pad_mode: &str,
    power: f64,
    n_mels: usize,
    fmin: f64,
    fmax: f64,
    htk: bool,
    slaney_norm: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let window = window_arg(window)?;
    let plan = mel_spec(sr, n_fft, hop_length, win_length, &window, center, pad_mode, power, n_mels, fmin, fmax, htk, slaney_norm)
        .map_err(py_err)?;
    with_float_array!(x, "x", |arr| {
        let view = arr.as_array();
        filled(py, plan.output_shape(view.shape()), |out| plan.compute_into(view, out))
    })
}

/// power_to_db per 2-D spectrogram; `reference` None is each spectrogram's maximum.
#[pyfunction]
fn power_to_db<'py>(
    py: Python<'py>,
    s: &Bound<'py, PyAny>,
    reference: Option<f64>,
    amin: f64,
    top_db: Option<f64>,
) -> PyResult<Bound<'py, PyAny>> {
    let db = mel::PowerToDb::new(reference, amin, top_db).map_err(py_err)?;
    with_float_array!(s, "S", |arr| {
        let view = arr.as_array();
        filled(py, Ok(view.shape().to_vec()), |out| mel::power_to_db_into(view, &db, out))
    })
}

#[pyfunction]
fn bipolar_montage<'py>(py: Python<'py>, eeg: &Bound<'py, PyAny>, channels: Vec<String>) -> PyResult<Bound<'py, PyAny>> {
    let pairs = montage::bipolar_pairs(&channels).map_err(py_err)?;
    with_float_array!(eeg, "eeg", |arr| {
        let view = arr.as_array();
        filled(py, montage::montage_shape(view.shape(), &pairs), |out| montage::bipolar_montage_into(view, &pairs, out))
    })
}

/// The mel recipe: (..., 4, n_mels, width).
#[pyfunction]
fn eeg_mel_spectrograms<'py>(py: Python<'py>, eeg: &Bound<'py, PyAny>, recipe: PyRef<'py, PyEegMelRecipe>) -> PyResult<Bound<'py, PyAny>> {
    let (pairs, recipe) = (&recipe.pairs, &recipe.recipe);
    with_float_array!(eeg, "eeg", |arr| {
        let view = arr.as_array();
        filled(py, montage::mel_shape(view.shape(), recipe), |out| montage::mel_images_into(view, pairs, recipe, out))
    })
}

/// The EEG mel recipe's arguments, checked once (`hop_length` None: kept samples // 256), for
/// `eeg_mel_spectrograms` and `model_inputs`.
#[pyclass(module = "hms._native", name = "EegMelRecipe", frozen)]
struct PyEegMelRecipe {
    pairs: Vec<(usize, usize)>,
    recipe: montage::MelRecipe,
}

#[pymethods]
impl PyEegMelRecipe {
    #[new]
    #[allow(clippy::too_many_arguments)]
    fn new(
        channels: Vec<String>,
        n_samples: Option<usize>,
        filters: Vec<PyReadonlyArray2<'_, f64>>,
        sr: f64,
        n_fft: usize,
        hop_length: Option<usize>,
        win_length: usize,
        window: &Bound<'_, PyAny>,
        n_mels: usize,
        fmin: f64,
        fmax: f64,
        power: f64,
        amin: f64,
        top_db: Option<f64>,
        width_multiple: usize,
        offset: f64,
        scale: f64,
    ) -> PyResult<Self> {
        let pairs = montage::bipolar_pairs(&channels).map_err(py_err)?;
        let window = window_arg(window)?;
        // Checked now, so that bad parameters are reported before any work.
        mel_spec(sr, n_fft, 1, win_length, &window, true, "constant", power, n_mels, fmin, fmax, false, true).map_err(py_err)?;
        let recipe = montage::MelRecipe {
            pre: montage::Preprocessing { n_samples, filters: sos_list(filters)? },
            spec: std::sync::Arc::new(move |kept: usize| {
                let hop = hop_length.unwrap_or(kept / 256);
                crate::ensure!(hop >= 1, "hop_length: {kept} samples give a hop of {kept} // 256 = 0; pass hop_length");
                mel_spec(sr, n_fft, hop, win_length, &window, true, "constant", power, n_mels, fmin, fmax, false, true)
            }),
            db: mel::PowerToDb::new(None, amin, top_db).map_err(py_err)?,
            width_multiple,
            offset,
            scale,
        };
        Ok(PyEegMelRecipe { pairs, recipe })
    }
}

/// A float32 array of shape (..., *tail) as (batch, *tail) in standard layout (a copy only if
/// it is not), and its leading shape.
fn batch_first<'a, D: ndarray::Dimension>(
    x: &'a PyReadonlyArrayDyn<'_, f32>,
    tail: usize,
    name: &str,
) -> PyResult<(ndarray::CowArray<'a, f32, D>, Vec<usize>)> {
    let view = x.as_array();
    let shape = view.shape().to_vec();
    if shape.len() < tail + 1 {
        return Err(PyValueError::new_err(format!("{name} must have a batch axis and {tail} more, got shape {shape:?}")));
    }
    let lead = shape[..shape.len() - tail].to_vec();
    let mut dims = vec![lead.iter().product::<usize>()];
    dims.extend_from_slice(&shape[shape.len() - tail..]);
    let standard: ndarray::CowArray<'a, f32, ndarray::IxDyn> =
        if view.is_standard_layout() { view.into() } else { view.as_standard_layout().into_owned().into() };
    let reshaped =
        standard.into_shape_with_order(dims).expect("standard layout reshapes").into_dimensionality::<D>().expect("dimensions match");
    Ok((reshaped, lead))
}

/// Normalized model inputs (..., C, H, W) from raw windows: `sources` in order ("kaggle",
/// "eeg"), `layout` "channels" or "stack", instance normalization with `eps` unless `stats`
/// gives one (mean, std) per source.
#[pyfunction]
#[pyo3(signature = (sources, layout, eps, stats=None, eeg=None, eeg_recipe=None, kaggle=None, kaggle_order=None, clip=None))]
#[allow(clippy::too_many_arguments)]
fn model_inputs<'py>(
    py: Python<'py>,
    sources: Vec<String>,
    layout: &str,
    eps: f64,
    stats: Option<Vec<(f64, f64)>>,
    eeg: Option<PyReadonlyArrayDyn<'py, f32>>,
    eeg_recipe: Option<Bound<'py, PyEegMelRecipe>>,
    kaggle: Option<PyReadonlyArrayDyn<'py, f32>>,
    kaggle_order: Option<[usize; 4]>,
    clip: Option<(f64, f64, f64)>,
) -> PyResult<Bound<'py, PyAny>> {
    let layout = inputs::Layout::from_name(layout).map_err(py_err)?;
    let norm = match stats {
        Some(s) => inputs::Normalization::Fixed(s),
        None => inputs::Normalization::Instance { eps },
    };
    let eeg = eeg.as_ref().map(|x| batch_first::<ndarray::Ix3>(x, 2, "eeg")).transpose()?;
    let kaggle = kaggle.as_ref().map(|x| batch_first::<ndarray::Ix4>(x, 3, "kaggle")).transpose()?;
    let recipe = eeg_recipe.as_ref().map(|r| r.get());
    let mut built = Vec::new();
    let mut lead: Option<Vec<usize>> = None;
    for name in &sources {
        let (source, this_lead) = match name.as_str() {
            "kaggle" => {
                let (x, l) = kaggle.as_ref().ok_or_else(|| PyValueError::new_err("source 'kaggle' needs kaggle windows"))?;
                let (order, (lo, hi, nan)) =
                    kaggle_order.zip(clip).ok_or_else(|| PyValueError::new_err("source 'kaggle' needs kaggle_order and clip"))?;
                let clip = transform::ClipLog::new::<f32>(lo, hi, nan).map_err(py_err)?;
                (inputs::Source::Kaggle(x.view(), inputs::KaggleRecipe { order, clip }), l)
            }
            "eeg" => {
                let (x, l) = eeg.as_ref().ok_or_else(|| PyValueError::new_err("source 'eeg' needs eeg windows"))?;
                let r = recipe.ok_or_else(|| PyValueError::new_err("source 'eeg' needs eeg_recipe"))?;
                (inputs::Source::Eeg(x.view(), &r.recipe, &r.pairs), l)
            }
            other => return Err(PyValueError::new_err(format!("sources must be 'kaggle' or 'eeg', got {other:?}"))),
        };
        if lead.as_ref().is_some_and(|l| l != this_lead) {
            return Err(PyValueError::new_err(format!("the windows' batch shapes differ: {:?} and {this_lead:?}", lead.unwrap())));
        }
        lead = Some(this_lead.clone());
        built.push(source);
    }
    let lead = lead.ok_or_else(|| PyValueError::new_err("at least one source is needed"))?;
    let shape: Vec<usize> = lead.iter().copied().chain(layout.shape(built.len())).collect();
    // Every tile is written whole (the Kaggle rows around the data as zeros).
    written(py, Ok(shape), |out| inputs::build_into(&built, layout, &norm, out))
}

/// The scipy recipe: (..., 4, n_freq, n_segments).
#[pyfunction]
#[allow(clippy::too_many_arguments)]
fn eeg_scipy_spectrograms<'py>(
    py: Python<'py>,
    eeg: &Bound<'py, PyAny>,
    channels: Vec<String>,
    n_samples: Option<usize>,
    filters: Vec<PyReadonlyArray2<'py, f64>>,
    fs: f64,
    window: &Bound<'py, PyAny>,
    nperseg: usize,
    noverlap: usize,
    nfft: usize,
    detrend: &str,
    scaling: &str,
    amin: f64,
    n_freq: Option<usize>,
) -> PyResult<Bound<'py, PyAny>> {
    let pairs = montage::bipolar_pairs(&channels).map_err(py_err)?;
    let detrend = Detrend::from_name(detrend).map_err(py_err)?;
    let scaling = Scaling::from_name(scaling).map_err(py_err)?;
    let spec = spectral::Spectrogram::new(fs, &window_arg(window)?, nperseg, noverlap, nfft, detrend, scaling).map_err(py_err)?;
    let recipe = montage::ScipyRecipe { pre: montage::Preprocessing { n_samples, filters: sos_list(filters)? }, spec, amin, n_freq };
    with_float_array!(eeg, "eeg", |arr| {
        let view = arr.as_array();
        filled(py, montage::scipy_shape(view.shape(), &recipe), |out| montage::scipy_images_into(view, &pairs, &recipe, out))
    })
}

fn add_spectral(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(get_window, m)?)?;
    m.add_function(wrap_pyfunction!(stft, m)?)?;
    m.add_function(wrap_pyfunction!(spectrogram, m)?)?;
    m.add_function(wrap_pyfunction!(mel_filterbank, m)?)?;
    m.add_function(wrap_pyfunction!(melspectrogram, m)?)?;
    m.add_function(wrap_pyfunction!(power_to_db, m)?)?;
    m.add_function(wrap_pyfunction!(bipolar_montage, m)?)?;
    m.add_function(wrap_pyfunction!(eeg_mel_spectrograms, m)?)?;
    m.add_function(wrap_pyfunction!(eeg_scipy_spectrograms, m)?)?;
    m.add_class::<PyEegMelRecipe>()?;
    m.add_function(wrap_pyfunction!(model_inputs, m)?)?;
    m.add_function(wrap_pyfunction!(float16_to_float32, m)?)?;
    m.add_function(wrap_pyfunction!(set_num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(get_num_threads, m)?)?;
    m.add("EEG_CHANNELS", montage::EEG_CHANNELS.to_vec())?;
    m.add("CHAINS", montage::CHAINS.to_vec())?;
    m.add("BIPOLAR", montage::BIPOLAR.to_vec())?;
    Ok(())
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(_panic_for_tests, m)?)?;
    m.add_function(wrap_pyfunction!(sosfiltfilt, m)?)?;
    m.add_function(wrap_pyfunction!(sosfilt_zi, m)?)?;
    m.add_function(wrap_pyfunction!(sos_padlen, m)?)?;
    m.add_function(wrap_pyfunction!(clip_log, m)?)?;
    m.add_function(wrap_pyfunction!(clip_log_inplace, m)?)?;
    m.add_function(wrap_pyfunction!(instance_normalize, m)?)?;
    m.add_function(wrap_pyfunction!(clip_log_normalize, m)?)?;
    m.add_function(wrap_pyfunction!(clip_log_normalize_inplace, m)?)?;
    m.add_class::<PyRunningStats>()?;
    add_spectral(m)?;
    Ok(())
}
