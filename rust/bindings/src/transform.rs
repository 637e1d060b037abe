//! Element-wise transforms and per-instance normalization.

use crate::arrays::{in_place, new_array, rows, rows_shape, same_shape, Float, FloatKernel, InPlaceKernel};
use crate::buffers::{output_array, Init};
use crate::errors::Result;
use hms_core::transform;
use ndarray::ArrayViewD;
use numpy::PyReadonlyArrayDyn;
use pyo3::prelude::*;

/// `log(clip(nan_to_num(x, nan), lo, hi))`.
#[derive(Clone, Copy)]
struct ClipLog {
    lo: f64,
    hi: f64,
    nan: f64,
}

impl FloatKernel for ClipLog {
    fn fill<T: Float>(&self, x: ArrayViewD<'_, T>, out: &mut [T]) -> hms_core::Result<()> {
        transform::clip_log_into(x, self.lo, self.hi, self.nan, out)
    }
}

#[pyfunction]
pub fn clip_log<'py>(x: &Bound<'py, PyAny>, lo: f64, hi: f64, nan: f64) -> Result<Bound<'py, PyAny>> {
    new_array(x, "x", Init::Written, same_shape, &ClipLog { lo, hi, nan })
}

impl InPlaceKernel for ClipLog {
    fn apply<T: Float>(&self, x: &mut [T]) -> hms_core::Result<()> {
        transform::clip_log_inplace(x, self.lo, self.hi, self.nan)
    }
}

#[pyfunction]
pub fn clip_log_inplace(x: &Bound<'_, PyAny>, lo: f64, hi: f64, nan: f64) -> Result<()> {
    in_place(x, &ClipLog { lo, hi, nan })
}

/// float16 -> float32 (exact), any shape and layout.
#[pyfunction]
pub fn float16_to_float32<'py>(x: PyReadonlyArrayDyn<'py, half::f16>) -> Result<Bound<'py, PyAny>> {
    let view = x.as_array();
    output_array(x.py(), "the output for x", view.shape().to_vec(), Init::Written, |out| transform::f16_to_f32_into(view, out))
}

/// `(x - mean) / (std + eps)` of each row.
struct InstanceNormalize(f64);

impl FloatKernel for InstanceNormalize {
    fn fill<T: Float>(&self, x: ArrayViewD<'_, T>, out: &mut [T]) -> hms_core::Result<()> {
        transform::instance_normalize_into(rows(x), self.0, out)
    }
}

#[pyfunction]
pub fn instance_normalize<'py>(x: &Bound<'py, PyAny>, eps: f64) -> Result<Bound<'py, PyAny>> {
    new_array(x, "x", Init::Written, |s| rows_shape(s, "instance_normalize"), &InstanceNormalize(eps))
}

/// `instance_normalize(clip_log(x))` of each row (of `cols` elements, in place).
struct ClipLogNormalize {
    clip: ClipLog,
    eps: f64,
    cols: usize,
}

impl FloatKernel for ClipLogNormalize {
    fn fill<T: Float>(&self, x: ArrayViewD<'_, T>, out: &mut [T]) -> hms_core::Result<()> {
        let ClipLog { lo, hi, nan } = self.clip;
        transform::clip_log_normalize_into(rows(x), lo, hi, nan, self.eps, out)
    }
}

/// `instance_normalize(clip_log(x))` of each row of a 2-D array (instances, elements).
#[pyfunction]
pub fn clip_log_normalize<'py>(x: &Bound<'py, PyAny>, lo: f64, hi: f64, nan: f64, eps: f64) -> Result<Bound<'py, PyAny>> {
    let kernel = ClipLogNormalize { clip: ClipLog { lo, hi, nan }, eps, cols: 0 };
    new_array(x, "x", Init::Written, |s| rows_shape(s, "clip_log_normalize"), &kernel)
}

impl InPlaceKernel for ClipLogNormalize {
    fn apply<T: Float>(&self, x: &mut [T]) -> hms_core::Result<()> {
        let ClipLog { lo, hi, nan } = self.clip;
        transform::clip_log_normalize_inplace(x, self.cols, lo, hi, nan, self.eps)
    }
}

/// [`clip_log_normalize`] in place on a C-contiguous array, instances of `cols` elements.
#[pyfunction]
pub fn clip_log_normalize_inplace(x: &Bound<'_, PyAny>, cols: usize, lo: f64, hi: f64, nan: f64, eps: f64) -> Result<()> {
    in_place(x, &ClipLogNormalize { clip: ClipLog { lo, hi, nan }, eps, cols })
}
