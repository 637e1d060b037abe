//! Fallible allocation. Every buffer whose size follows from the caller's arguments or arrays is
//! reserved here: a size that overflows, or memory the system refuses, is a
//! [`CoreError::alloc`] (MemoryError in Python) instead of a process abort.

use crate::error::{CoreError, Result};
use ndarray::{Array, ArrayView, CowArray, Dimension};

/// The bytes of `len` values of `T`, if they fit in an allocation (at most `isize::MAX`).
pub fn bytes_of<T>(len: usize) -> Option<usize> {
    len.checked_mul(std::mem::size_of::<T>()).filter(|&b| b <= isize::MAX as usize)
}

/// The number of elements of an array of `shape`, or an allocation error naming `what` when the
/// product (or its size in bytes of `T`) overflows.
pub fn checked_len<T>(shape: &[usize], what: &str) -> Result<usize> {
    let len = shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
    match len {
        Some(len) if bytes_of::<T>(len).is_some() => Ok(len),
        _ => Err(CoreError::alloc(what, None)),
    }
}

/// The error of a failed reservation of `len` values of `T` for `what`.
fn failed<T>(len: usize, what: &str) -> CoreError {
    CoreError::alloc(what, bytes_of::<T>(len))
}

/// An empty vector with room for exactly `len` values.
pub fn with_capacity<T>(len: usize, what: &str) -> Result<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(len).map_err(|_| failed::<T>(len, what))?;
    Ok(v)
}

/// `len` copies of `value`.
pub fn vec_of<T: Clone>(len: usize, value: T, what: &str) -> Result<Vec<T>> {
    let mut v = with_capacity(len, what)?;
    v.resize(len, value);
    Ok(v)
}

/// The values of `iter`, of which there are `len` (the room reserved up front).
pub fn collect<T>(len: usize, iter: impl IntoIterator<Item = T>, what: &str) -> Result<Vec<T>> {
    let mut v = with_capacity(len, what)?;
    v.extend(iter);
    Ok(v)
}

/// `v` resized to `len` (new values `value`); reserves fallibly where it grows beyond its room.
pub fn resize<T: Clone>(v: &mut Vec<T>, len: usize, value: T, what: &str) -> Result<()> {
    if len > v.capacity() {
        v.try_reserve_exact(len - v.len()).map_err(|_| failed::<T>(len, what))?;
    }
    v.resize(len, value);
    Ok(())
}

/// `v` cleared, with room for `len` values.
pub fn clear_for<T>(v: &mut Vec<T>, len: usize, what: &str) -> Result<()> {
    v.clear();
    v.try_reserve_exact(len).map_err(|_| failed::<T>(len, what))
}

/// `x` in standard (C) layout: itself if it is, else a copy made in fallibly reserved memory
/// (a view with zero strides can stand for far more values than memory holds).
pub fn standard_layout<'a, T: Clone, D: Dimension>(x: ArrayView<'a, T, D>, what: &str) -> Result<CowArray<'a, T, D>> {
    if x.is_standard_layout() {
        return Ok(x.into());
    }
    let values = collect(x.len(), x.iter().cloned(), what)?;
    let owned = Array::from_shape_vec(x.raw_dim(), values).expect("the view's shape holds its values");
    Ok(owned.into())
}

/// A zeroed 2-D array of `rows x cols`.
pub fn zeros2<T: Clone + num_zero::Zero>(rows: usize, cols: usize, what: &str) -> Result<ndarray::Array2<T>> {
    let len = checked_len::<T>(&[rows, cols], what)?;
    Ok(ndarray::Array2::from_shape_vec((rows, cols), vec_of(len, T::zero(), what)?).expect("rows x cols values"))
}

/// Fails unless `bytes` (None: an overflowed size) can be reserved now; for structures built by
/// other crates, which allocate without a way to fail (FFT plans). The memory is released at once.
pub fn probe(bytes: Option<usize>, what: &str) -> Result<()> {
    let bytes = bytes.filter(|&b| b <= isize::MAX as usize).ok_or_else(|| CoreError::alloc(what, None))?;
    let mut v: Vec<u8> = Vec::new();
    v.try_reserve_exact(bytes).map_err(|_| CoreError::alloc(what, Some(bytes)))?;
    Ok(())
}

/// The zero of the element types of zeroed arrays.
pub mod num_zero {
    pub trait Zero {
        fn zero() -> Self;
    }
    impl Zero for f64 {
        fn zero() -> Self {
            0.0
        }
    }
    impl Zero for f32 {
        fn zero() -> Self {
            0.0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn impossible_sizes_are_errors_not_aborts() {
        let err = vec_of(1usize << 60, 0.0f64, "a window of n values").unwrap_err();
        assert!(err.is_alloc() && err.to_string().starts_with("cannot allocate a window of n values"), "{err}");
        // 2^61 f64 values are 2^64 bytes: the size itself overflows.
        let err = with_capacity::<f64>(1usize << 61, "the output of x").unwrap_err();
        assert!(err.to_string().contains("more bytes than the address space holds"), "{err}");
        assert!(checked_len::<f64>(&[1 << 20, 1 << 20, 1 << 20], "out").unwrap_err().is_alloc());
        assert_eq!(checked_len::<f64>(&[3, 0, 1 << 62], "out"), Ok(0));
        assert_eq!(checked_len::<f32>(&[2, 3], "out"), Ok(6));
        assert!(probe(Some(1 << 62), "an FFT plan").unwrap_err().is_alloc());
        assert!(probe(None, "an FFT plan").unwrap_err().is_alloc());
        assert!(probe(Some(1 << 20), "an FFT plan").is_ok());
        assert!(zeros2::<f64>(1 << 40, 1 << 30, "diffs").unwrap_err().is_alloc());
        let mut v = vec![1.0f32; 4];
        assert!(resize(&mut v, 1 << 62, 0.0, "work").unwrap_err().is_alloc());
        assert_eq!(v.len(), 4);
        resize(&mut v, 6, 0.5, "work").unwrap();
        assert_eq!(v, [1.0, 1.0, 1.0, 1.0, 0.5, 0.5]);
        assert!(clear_for(&mut v, 1 << 62, "work").unwrap_err().is_alloc());
        assert_eq!(collect(3, [1, 2, 3], "v").unwrap(), vec![1, 2, 3]);
    }

    #[test]
    fn zero_strided_views_are_not_copied_beyond_memory() {
        use ndarray::ShapeBuilder;
        let one = [0.0f64];
        // 2^57 values: more bytes than any address space holds.
        let huge =
            ArrayView::from_shape(ndarray::IxDyn(&[1 << 30, 1 << 20, 1 << 7]).strides(ndarray::IxDyn(&[0, 0, 0])), &one[..]).unwrap();
        let err = standard_layout(huge, "a contiguous copy of x").unwrap_err();
        assert!(err.is_alloc(), "{err}");
        let small = ArrayView::from_shape(ndarray::IxDyn(&[2, 3]).strides(ndarray::IxDyn(&[0, 0])), &one[..]).unwrap();
        let copy = standard_layout(small, "a copy").unwrap();
        assert!(copy.is_standard_layout() && copy.len() == 6);
    }
}
