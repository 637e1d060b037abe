//! The one dtype dispatch: kernels are generic over float64 and float32, and Python hands over
//! either. A kernel is a small struct implementing [`ArrayKernel`] (a new output array),
//! [`InPlaceKernel`] (an array changed in place) or, for anything else, [`WithFloatArray`].

use crate::buffers::output_array;
use crate::errors::{type_error, value_error, Result};
use crate::runtime::detached;
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

/// A kernel whose result is a new array.
pub trait ArrayKernel: Sync {
    /// The output's elements for input elements `T`.
    type Out<T: Float>: numpy::Element + Default + Copy + Send + Sync;
    /// Whether the output starts zeroed (the kernel adds into it or leaves parts of it zero);
    /// otherwise `fill` writes every element.
    const ZEROED: bool;
    fn output_shape(&self, shape: &[usize]) -> hms_core::Result<Vec<usize>>;
    fn fill<T: Float>(&self, x: ArrayViewD<'_, T>, out: &mut [Self::Out<T>]) -> hms_core::Result<()>;
}

/// `kernel`'s output for the array `x` (`name` in errors).
pub fn new_array<'py>(x: &Bound<'py, PyAny>, name: &str, kernel: &impl ArrayKernel) -> Result<Bound<'py, PyAny>> {
    with_float_array(x, name, NewArray(kernel))
}

struct NewArray<'k, K>(&'k K);

impl<'py, K: ArrayKernel> WithFloatArray<'py> for NewArray<'_, K> {
    type Output = Bound<'py, PyAny>;
    fn apply<T: Float>(self, x: &Bound<'py, PyArrayDyn<T>>) -> Result<Self::Output> {
        let x = x.try_readonly()?;
        let view = x.as_array();
        let shape = self.0.output_shape(view.shape())?;
        output_array(x.py(), shape, K::ZEROED, |out| self.0.fill(view, out))
    }
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
    x.into_dimensionality().expect("checked by the kernel's output_shape")
}

/// The shape check of row kernels: `what` takes a 2-D array.
pub fn rows_shape(shape: &[usize], what: &str) -> hms_core::Result<Vec<usize>> {
    hms_core::ensure!(shape.len() == 2, "{what}'s native kernel takes (instances, elements), got {} dims", shape.len());
    Ok(shape.to_vec())
}
