//! The one dtype dispatch: kernels are generic over float64 and float32, and Python hands over
//! either. A kernel is a small struct implementing [`FloatKernel`] (a new output array),
//! [`InPlaceKernel`] (an array changed in place) or, for anything else, [`WithFloatArray`].

use crate::buffers::{output_array, Init};
use crate::errors::{type_error, value_error, Result};
use crate::runtime::{detached, guarded};
use hms_core::mel::LogFloat;
use hms_core::transform::ClipLogSum;
use ndarray::ArrayViewD;
use num_complex::Complex;
use numpy::{PyArrayDyn, PyArrayMethods};
use pyo3::prelude::*;

/// The element types of the arrays the kernels take.
pub trait Float: numpy::Element + LogFloat + ClipLogSum {
    /// `Complex<Self>`, named so that generic code knows it is a numpy element.
    type Complex: numpy::Element + Default + Copy + Send + Sync;
    fn complex_mut(out: &mut [Self::Complex]) -> &mut [Complex<Self>];
}

impl Float for f64 {
    type Complex = Complex<f64>;
    fn complex_mut(out: &mut [Self::Complex]) -> &mut [Complex<f64>] {
        out
    }
}

impl Float for f32 {
    type Complex = Complex<f32>;
    fn complex_mut(out: &mut [Self::Complex]) -> &mut [Complex<f32>] {
        out
    }
}

/// Work on a numpy array of either float type.
pub trait WithFloatArray<'py> {
    type Output;
    fn apply<T: Float>(self, x: &Bound<'py, PyArrayDyn<T>>) -> Result<Self::Output>;
}

/// Runs `work` on `x` as a float64 or float32 array; any other dtype is a TypeError naming `name`.
pub fn with_float_array<'py, W: WithFloatArray<'py>>(x: &Bound<'py, PyAny>, name: &str, work: W) -> Result<W::Output> {
    if let Ok(x) = x.cast::<PyArrayDyn<f64>>() {
        return work.apply(x);
    }
    if let Ok(x) = x.cast::<PyArrayDyn<f32>>() {
        return work.apply(x);
    }
    let found = x.getattr("dtype").map(|d| d.to_string()).unwrap_or_else(|_| x.get_type().to_string());
    Err(type_error(format!("{name} must be a float32 or float64 numpy array, got {found}")))
}

/// A kernel whose result is a new array of its input's element type.
pub trait FloatKernel: Sync {
    fn fill<T: Float>(&self, x: ArrayViewD<'_, T>, out: &mut [T]) -> hms_core::Result<()>;
}

/// `kernel`'s output, of `shape(x.shape)`, for the array `x` (`name` in errors).
pub fn new_array<'py, S>(x: &Bound<'py, PyAny>, name: &str, init: Init, shape: S, kernel: &impl FloatKernel) -> Result<Bound<'py, PyAny>>
where
    S: FnOnce(&[usize]) -> hms_core::Result<Vec<usize>>,
{
    with_float_array(x, name, NewArray { name, init, shape, kernel })
}

/// The same shape as the input's.
pub fn same_shape(shape: &[usize]) -> hms_core::Result<Vec<usize>> {
    Ok(shape.to_vec())
}

struct NewArray<'k, S, K> {
    name: &'k str,
    init: Init,
    shape: S,
    kernel: &'k K,
}

impl<'py, S, K> WithFloatArray<'py> for NewArray<'_, S, K>
where
    S: FnOnce(&[usize]) -> hms_core::Result<Vec<usize>>,
    K: FloatKernel,
{
    type Output = Bound<'py, PyAny>;
    fn apply<T: Float>(self, x: &Bound<'py, PyArrayDyn<T>>) -> Result<Self::Output> {
        filled_from(x, self.name, self.init, self.shape, |x, out| self.kernel.fill(x, out))
    }
}

/// A new array of `shape(x.shape)` filled by `fill` from `x` (read-only, without the GIL);
/// `name` is x's argument name, for the MemoryError of an output that cannot be allocated.
pub fn filled_from<'py, T: Float, U: numpy::Element + Default + Copy + Send + Sync>(
    x: &Bound<'py, PyArrayDyn<T>>,
    name: &str,
    init: Init,
    shape: impl FnOnce(&[usize]) -> hms_core::Result<Vec<usize>>,
    fill: impl FnOnce(ArrayViewD<'_, T>, &mut [U]) -> hms_core::Result<()> + Send,
) -> Result<Bound<'py, PyAny>> {
    let x = x.try_readonly()?;
    let view = x.as_array();
    // The shape may take building a plan (the mel recipe's): guarded against panics too.
    let shape = guarded(|| Ok(shape(view.shape())?))?;
    output_array(x.py(), &format!("the output for {name}"), shape, init, |out| fill(view, out))
}

/// A kernel that changes a C-contiguous array in place.
pub trait InPlaceKernel: Sync {
    fn apply<T: Float>(&self, x: &mut [T]) -> hms_core::Result<()>;
}

/// `kernel` applied to `out` in place.
pub fn in_place(out: &Bound<'_, PyAny>, kernel: &impl InPlaceKernel) -> Result<()> {
    with_float_array(out, "out", InPlace(kernel))
}

struct InPlace<'k, K>(&'k K);

impl<'py, K: InPlaceKernel> WithFloatArray<'py> for InPlace<'_, K> {
    type Output = ();
    fn apply<T: Float>(self, x: &Bound<'py, PyArrayDyn<T>>) -> Result<()> {
        let mut x = x.try_readwrite()?;
        let py = x.py();
        let slice = x.as_slice_mut().map_err(|_| value_error("out must be C-contiguous and writeable"))?;
        detached(py, || self.0.apply(slice))
    }
}

/// `x` (N-d) as the 2-D (instances, elements) array a row kernel takes.
pub fn rows<'a, T>(x: ArrayViewD<'a, T>) -> ndarray::ArrayView2<'a, T> {
    x.into_dimensionality().expect("checked by rows_shape")
}

/// The output shape of row kernels: `what` takes a 2-D array.
pub fn rows_shape(shape: &[usize], what: &str) -> hms_core::Result<Vec<usize>> {
    hms_core::ensure!(shape.len() == 2, "{what}'s native kernel takes (instances, elements), got {} dims", shape.len());
    Ok(shape.to_vec())
}
