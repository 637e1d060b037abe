//! Element-wise and per-instance transforms: NaN fill + clip + natural log, and per-instance
//! standardization.

use crate::alloc;
use crate::ensure;
use crate::error::{finite, normal_eps, Result};
use crate::real::Real;
use crate::simd::simd_fn;
use crate::stats::{unit_scale, Moments};
use ndarray::{Array2, ArrayD, ArrayView2, ArrayViewD};
use rayon::prelude::*;

/// Elements per parallel task of the element-wise kernels.
const TASK: usize = 1 << 15;

/// `log(clip(nan_to_num(x, nan), lo, hi))` with bounds rounded to the element type first, as
/// numpy does for a float32 array and Python float bounds.
#[derive(Debug, Clone, Copy)]
pub struct ClipLog {
    lo: f64,
    hi: f64,
    nan: f64,
}

impl ClipLog {
    pub fn new<T: Real>(lo: f64, hi: f64, nan: f64) -> Result<Self> {
        ensure!(finite(lo, "lo")? > 0.0, "lo must be positive (the log of the clipped values), got {lo}");
        ensure!(lo <= finite(hi, "hi")?, "lo must not exceed hi, got lo={lo}, hi={hi}");
        finite(nan, "nan")?;
        let (lo_t, hi_t) = (T::from_f64(lo).to_f64(), T::from_f64(hi).to_f64());
        ensure!(lo_t > 0.0 && hi_t.is_finite(), "lo={lo} or hi={hi} is not representable as {}", T::NAME);
        Ok(ClipLog { lo: lo_t, hi: hi_t, nan: T::from_f64(nan).to_f64() })
    }

    #[inline(always)]
    fn apply(&self, v: f64) -> f64 {
        let v = if v.is_nan() { self.nan } else { v };
        let v = if v < self.lo {
            self.lo
        } else if v > self.hi {
            self.hi
        } else {
            v
        };
        ln_positive(v)
    }

    /// Writes the transform of `x` into `out` (same length).
    pub fn apply_into<T: ClipLogFloat>(&self, x: &[T], out: &mut [T]) -> Result<()> {
        ensure!(x.len() == out.len(), "out has {} elements, x has {}", out.len(), x.len());
        out.par_chunks_mut(TASK).zip(x.par_chunks(TASK)).for_each(|(o, i)| clip_log_slice(self, i, o));
        Ok(())
    }

    pub fn apply_inplace<T: ClipLogFloat>(&self, x: &mut [T]) {
        x.par_chunks_mut(TASK).for_each(|chunk| clip_log_in_place(self, chunk));
    }
}

/// `log(clip(nan_to_num(x, nan), lo, hi))` of any array, in standard layout.
pub fn clip_log<T: ClipLogFloat>(x: ArrayViewD<T>, lo: f64, hi: f64, nan: f64) -> Result<ArrayD<T>> {
    let mut out = alloc::vec_of(x.len(), T::from_f64(0.0), "the output for x")?;
    clip_log_into(x.view(), lo, hi, nan, &mut out)?;
    Ok(ArrayD::from_shape_vec(x.raw_dim(), out).expect("x's shape"))
}

/// [`clip_log`] into `out`, a buffer of `x`'s size holding the result in standard layout.
pub fn clip_log_into<T: ClipLogFloat>(x: ArrayViewD<T>, lo: f64, hi: f64, nan: f64, out: &mut [T]) -> Result<()> {
    let op = ClipLog::new::<T>(lo, hi, nan)?;
    let x = alloc::standard_layout(x, "a contiguous copy of x")?;
    op.apply_into(x.as_slice().expect("standard layout"), out)
}

/// `x` (float16, any layout) as float32 in `out` (x's elements in standard order). Exact: every
/// float16 value is a float32 value.
pub fn f16_to_f32_into(x: ArrayViewD<half::f16>, out: &mut [f32]) -> Result<()> {
    use half::slice::HalfFloatSliceExt;
    ensure!(out.len() == x.len(), "out has {} elements, x has {}", out.len(), x.len());
    let x = alloc::standard_layout(x, "a contiguous copy of x")?;
    let x = x.as_slice().expect("standard layout");
    // Chunks large enough that a thread's start costs little next to its conversions.
    const CHUNK: usize = 1 << 16;
    out.par_chunks_mut(CHUNK).zip(x.par_chunks(CHUNK)).for_each(|(o, x)| x.convert_to_f32_slice(o));
    Ok(())
}

pub fn clip_log_inplace<T: ClipLogFloat>(x: &mut [T], lo: f64, hi: f64, nan: f64) -> Result<()> {
    ClipLog::new::<T>(lo, hi, nan)?.apply_inplace(x);
    Ok(())
}

simd_fn! {
    fn clip_log_slice<T: ClipLogFloat>(op: &ClipLog, x: &[T], out: &mut [T]) {
        for (o, &v) in out.iter_mut().zip(x) {
            *o = v.clip_log(op);
        }
    }
}

simd_fn! {
    fn clip_log_in_place<T: ClipLogFloat>(op: &ClipLog, x: &mut [T]) {
        for v in x.iter_mut() {
            *v = v.clip_log(op);
        }
    }
}

/// Element types of `clip_log`: float64 computes in float64; float32 in float32 with a float32
/// log of under an ulp (twice the SIMD lanes, and what numpy computes for a float32 array).
pub trait ClipLogFloat: Real {
    fn clip_log(self, op: &ClipLog) -> Self;
}

impl ClipLogFloat for f64 {
    #[inline(always)]
    fn clip_log(self, op: &ClipLog) -> f64 {
        op.apply(self)
    }
}

impl ClipLogFloat for f32 {
    #[inline(always)]
    fn clip_log(self, op: &ClipLog) -> f32 {
        // The bounds were rounded to float32 by ClipLog::new, so these casts are exact.
        let (lo, hi) = (op.lo as f32, op.hi as f32);
        let v = if self.is_nan() { op.nan as f32 } else { self };
        let v = if v < lo {
            lo
        } else if v > hi {
            hi
        } else {
            v
        };
        ln_positive_f32(v)
    }
}

/// Natural log of a positive finite float32 (fdlibm's logf reduction and polynomial).
// fdlibm's published constants, digit for digit.
#[allow(clippy::excessive_precision)]
#[inline(always)]
pub fn ln_positive_f32(x: f32) -> f32 {
    const LN2_HI: f32 = 6.931_381_225_6e-01;
    const LN2_LO: f32 = 9.058_000_614_5e-06;
    const LG1: f32 = 0.666_666_626_93;
    const LG2: f32 = 0.400_009_721_52;
    const LG3: f32 = 0.284_987_866_88;
    const LG4: f32 = 0.242_790_788_41;
    const TWO25: f32 = 33_554_432.0;
    let subnormal = x < f32::MIN_POSITIVE;
    let xs = if subnormal { x * TWO25 } else { x };
    let bits = xs.to_bits();
    let mut k = ((bits >> 23) as i32) - 127 - if subnormal { 25 } else { 0 };
    let mut m = f32::from_bits((bits & 0x007f_ffff) | 0x3f80_0000);
    let big = m > std::f32::consts::SQRT_2;
    m = if big { m * 0.5 } else { m };
    k += big as i32;
    let f = m - 1.0;
    let s = f / (2.0 + f);
    let z = s * s;
    let w = z * z;
    let t1 = w * (LG2 + w * LG4);
    let t2 = z * (LG1 + w * LG3);
    let r = t2 + t1;
    let hfsq = 0.5 * f * f;
    let dk = k as f32;
    dk * LN2_HI - ((hfsq - (s * (hfsq + r) + dk * LN2_LO)) - f)
}

/// Natural log of a positive finite `x`, within an ulp of the correctly rounded result; written
/// without branches so that loops over it vectorize (fdlibm's reduction and polynomial).
// fdlibm's published constants, digit for digit.
#[allow(clippy::excessive_precision)]
#[inline(always)]
pub fn ln_positive(x: f64) -> f64 {
    const LN2_HI: f64 = 6.931_471_803_691_238_164_90e-01;
    const LN2_LO: f64 = 1.908_214_929_270_587_700_02e-10;
    const LG1: f64 = 6.666_666_666_666_735_130e-01;
    const LG2: f64 = 3.999_999_999_940_941_908e-01;
    const LG3: f64 = 2.857_142_874_366_239_149e-01;
    const LG4: f64 = 2.222_219_843_214_978_396e-01;
    const LG5: f64 = 1.818_357_216_161_805_012e-01;
    const LG6: f64 = 1.531_383_769_920_937_332e-01;
    const LG7: f64 = 1.479_819_860_511_658_591e-01;
    const TWO54: f64 = 18_014_398_509_481_984.0;
    // Subnormals are scaled into the normal range first.
    let subnormal = x < f64::MIN_POSITIVE;
    let xs = if subnormal { x * TWO54 } else { x };
    let bits = xs.to_bits();
    let mut k = ((bits >> 52) as i64) - 1023 - if subnormal { 54 } else { 0 };
    let mut m = f64::from_bits((bits & 0x000f_ffff_ffff_ffff) | 0x3ff0_0000_0000_0000);
    // Reduce the mantissa to [sqrt(2)/2, sqrt(2)] so that f = m - 1 is small.
    let big = m > std::f64::consts::SQRT_2;
    m = if big { m * 0.5 } else { m };
    k += big as i64;
    let f = m - 1.0;
    let s = f / (2.0 + f);
    let z = s * s;
    let w = z * z;
    let t1 = w * (LG2 + w * (LG4 + w * LG6));
    let t2 = z * (LG1 + w * (LG3 + w * (LG5 + w * LG7)));
    let r = t2 + t1;
    let hfsq = 0.5 * f * f;
    let dk = k as f64;
    dk * LN2_HI - ((hfsq - (s * (hfsq + r) + dk * LN2_LO)) - f)
}

/// Standardizes each row: `(x - mean) / (std + eps)` with the population std, computed in f64.
pub fn instance_normalize<T: Real>(x: ArrayView2<T>, eps: f64) -> Result<Array2<T>> {
    let mut out = alloc::vec_of(x.len(), T::from_f64(0.0), "the output for x")?;
    instance_normalize_into(x.view(), eps, &mut out)?;
    Ok(Array2::from_shape_vec(x.raw_dim(), out).expect("x's shape"))
}

/// [`instance_normalize`] into `out`, a buffer of `x`'s size (rows in standard layout).
pub fn instance_normalize_into<T: Real>(x: ArrayView2<T>, eps: f64, out: &mut [T]) -> Result<()> {
    normal_eps(eps, "eps")?;
    let x = alloc::standard_layout(x, "a contiguous copy of x")?;
    let cols = x.ncols();
    ensure!(cols > 0, "cannot normalize instances of 0 elements");
    ensure!(out.len() == x.len(), "out has {} elements, x has {}", out.len(), x.len());
    let data = x.as_slice().expect("standard layout");
    out.par_chunks_mut(cols).zip(data.par_chunks(cols)).enumerate().try_for_each(|(i, (o, row))| normalize_row(i, row, o, eps))
}

/// Spreads (max - min) below this lose digits to underflow in their squared deviations.
const TINY_SPREAD: f64 = 3.054936363499605e-151; // 2^-500

/// One instance of [`instance_normalize`]. Rows whose squared deviations leave f64's range
/// (values near 1e308, or spreads below 1e-150), or whose `1 / (std + eps)` overflows, are
/// standardized in a scaled form: `(x s - mean s) / (std s + eps s)` for a power of two `s`
/// that brings the largest magnitude to 1, which is exact and has the same value.
fn normalize_row<T: Real>(i: usize, row: &[T], out: &mut [T], eps: f64) -> Result<()> {
    let m = Moments::of_slice(row);
    ensure!(m.nan_count == 0 && !m.has_inf(), "instance {i} contains NaN or inf (x must be finite)");
    let spread = m.max - m.min;
    let std = m.variance(0).sqrt();
    let inv = 1.0 / (std + eps);
    if std.is_finite() && inv.is_finite() && !(spread > 0.0 && spread < TINY_SPREAD) {
        ensure!(std + eps > 0.0, "instance {i} is constant and eps is 0: its std is 0");
        standardize_into(row, out, m.mean(), inv);
        return Ok(());
    }
    ensure!(spread > 0.0 || eps > 0.0, "instance {i} is constant and eps is 0: its std is 0");
    let s = unit_scale(m.min.abs().max(m.max.abs()));
    let scaled = Moments::of_scaled(row, s);
    let inv = 1.0 / (scaled.variance(0).sqrt() + eps * s);
    ensure!(inv.is_finite(), "instance {i}: its std ({std:e}) and eps ({eps:e}) are too small to divide by");
    standardize_scaled_into(row, out, s, scaled.mean(), inv);
    Ok(())
}

simd_fn! {
    fn standardize_into<T: Real>(x: &[T], out: &mut [T], mean: f64, inv_scale: f64) {
        for (o, &v) in out.iter_mut().zip(x) {
            *o = T::from_f64((v.to_f64() - mean) * inv_scale);
        }
    }
}

/// `(x s - mean) * inv_scale`, for values standardized in a scaled form (rare: not vectorized).
fn standardize_scaled_into<T: Real>(x: &[T], out: &mut [T], s: f64, mean: f64, inv_scale: f64) {
    for (o, &v) in out.iter_mut().zip(x) {
        *o = T::from_f64((v.to_f64() * s - mean) * inv_scale);
    }
}

/// `instance_normalize(clip_log(x))` row by row, in one pass over memory: each row is
/// transformed a chunk at a time into `out`, the chunk's moments are taken while it is in L1,
/// and the row (still in L2) is standardized at the end. Statistics as in
/// [`instance_normalize`]: float64, corrected two-pass per chunk, chunks combined exactly.
#[derive(Debug, Clone, Copy)]
pub struct ClipLogNormalize {
    op: ClipLog,
    eps: f64,
}

/// Elements per chunk of a row: the chunk stays in L1 between its transform and its moments.
const NORM_CHUNK: usize = 4096;

impl ClipLogNormalize {
    pub fn new<T: Real>(lo: f64, hi: f64, nan: f64, eps: f64) -> Result<Self> {
        normal_eps(eps, "eps")?;
        Ok(ClipLogNormalize { op: ClipLog::new::<T>(lo, hi, nan)?, eps })
    }

    /// Rows of `cols` elements from `x` into `out` (both in standard layout, same length).
    pub fn apply_into<T: ClipLogSum>(&self, x: &[T], cols: usize, out: &mut [T]) -> Result<()> {
        ensure!(x.len() == out.len(), "out has {} elements, x has {}", out.len(), x.len());
        ensure!(cols > 0, "cannot normalize instances of 0 elements");
        ensure!(x.len() % cols == 0, "{} elements do not make rows of {cols}", x.len());
        out.par_chunks_mut(cols).zip(x.par_chunks(cols)).enumerate().try_for_each(|(i, (o, row))| self.row(i, Some(row), o))
    }

    /// Rows of `cols` elements of `x`, in place.
    pub fn apply_inplace<T: ClipLogSum>(&self, x: &mut [T], cols: usize) -> Result<()> {
        ensure!(cols > 0, "cannot normalize instances of 0 elements");
        ensure!(x.len() % cols == 0, "{} elements do not make rows of {cols}", x.len());
        x.par_chunks_mut(cols).enumerate().try_for_each(|(i, row)| self.row(i, None, row))
    }

    /// One instance: `src` into `dst`, or `dst` in place when `src` is None.
    fn row<T: ClipLogSum>(&self, i: usize, src: Option<&[T]>, dst: &mut [T]) -> Result<()> {
        let mut total = Moments::default();
        for (c, chunk) in dst.chunks_mut(NORM_CHUNK).enumerate() {
            let sum = match src {
                Some(src) => clip_log_sum(&self.op, &src[c * NORM_CHUNK..c * NORM_CHUNK + chunk.len()], chunk),
                None => clip_log_sum_in_place(&self.op, chunk),
            };
            total = total.merged(&finite_moments(chunk, sum));
        }
        // Every logged value is finite (clipped to finite bounds, so within +-745), so only a zero
        // spread can fail (a nonzero one is at least an ulp of a log, far from underflow).
        let scale = total.variance(0).sqrt() + self.eps;
        ensure!(scale > 0.0, "instance {i} is constant and eps is 0: its std is 0");
        ensure!((1.0 / scale).is_finite(), "instance {i}: its std ({scale:e}) is too small to divide by");
        // The row is still in L2 (under 1 MiB for a Kaggle spectrogram).
        standardize_in_place(dst, total.mean(), 1.0 / scale);
        Ok(())
    }
}

/// `instance_normalize(clip_log(x, lo, hi, nan), eps)` of the rows of `x`, into `out` (standard
/// layout, `x`'s size).
pub fn clip_log_normalize_into<T: ClipLogSum>(x: ArrayView2<T>, lo: f64, hi: f64, nan: f64, eps: f64, out: &mut [T]) -> Result<()> {
    let op = ClipLogNormalize::new::<T>(lo, hi, nan, eps)?;
    let x = alloc::standard_layout(x, "a contiguous copy of x")?;
    op.apply_into(x.as_slice().expect("standard layout"), x.ncols(), out)
}

/// [`clip_log_normalize_into`] in place, on rows of `cols` elements.
pub fn clip_log_normalize_inplace<T: ClipLogSum>(x: &mut [T], cols: usize, lo: f64, hi: f64, nan: f64, eps: f64) -> Result<()> {
    ClipLogNormalize::new::<T>(lo, hi, nan, eps)?.apply_inplace(x, cols)
}

/// Independent accumulators of the chunk sums: they vectorize, and round like a pairwise sum.
const ACC: usize = 16;

simd_fn! {
    /// [`clip_log_slice`] that also returns the sum of the results: the first pass of the moments,
    /// done while the values are in registers. Summed in `T` so that the log keeps its full SIMD
    /// width: the sum only provides the provisional mean of the corrected two-pass algorithm, whose
    /// second pass (float64) corrects its error.
    fn clip_log_sum<T: ClipLogSum>(op: &ClipLog, x: &[T], out: &mut [T]) -> f64 {
        let mut sum = [T::from_f64(0.0); ACC];
        let (blocks, rest) = (x.chunks_exact(ACC), x.chunks_exact(ACC).remainder());
        let mut outs = out.chunks_exact_mut(ACC);
        for (o, i) in (&mut outs).zip(blocks) {
            for k in 0..ACC {
                o[k] = i[k].clip_log(op);
                sum[k] = sum[k] + o[k];
            }
        }
        for (o, &v) in outs.into_remainder().iter_mut().zip(rest) {
            *o = v.clip_log(op);
            sum[0] = sum[0] + *o;
        }
        sum.iter().map(|v| v.to_f64()).sum()
    }
}

simd_fn! {
    /// [`clip_log_sum`] in place.
    fn clip_log_sum_in_place<T: ClipLogSum>(op: &ClipLog, x: &mut [T]) -> f64 {
        let mut sum = [T::from_f64(0.0); ACC];
        let mut blocks = x.chunks_exact_mut(ACC);
        for b in &mut blocks {
            for k in 0..ACC {
                b[k] = b[k].clip_log(op);
                sum[k] = sum[k] + b[k];
            }
        }
        for v in blocks.into_remainder() {
            *v = v.clip_log(op);
            sum[0] = sum[0] + *v;
        }
        sum.iter().map(|v| v.to_f64()).sum()
    }
}

/// Element types of the fused kernel.
pub trait ClipLogSum: ClipLogFloat + std::ops::Add<Output = Self> {}
impl<T: ClipLogFloat + std::ops::Add<Output = T>> ClipLogSum for T {}

simd_fn! {
    /// Moments of finite values whose sum is `sum`, by the corrected two-pass algorithm (count,
    /// mean and m2 only; min and max are left unset).
    fn finite_moments<T: Real>(xs: &[T], sum: f64) -> Moments {
        // Twice the accumulators of the sums: each update is an add chain, and these hide its latency.
        const ACC: usize = 32;
        let n = xs.len() as f64;
        if xs.is_empty() {
            return Moments::default();
        }
        let blocks = xs.chunks_exact(ACC);
        let rest = blocks.remainder();
        let mean0 = sum / n;
        let (mut dev, mut sq) = ([0.0; ACC], [0.0; ACC]);
        for block in blocks {
            for k in 0..ACC {
                let d = block[k].to_f64() - mean0;
                dev[k] += d;
                sq[k] += d * d;
            }
        }
        for v in rest {
            let d = v.to_f64() - mean0;
            dev[0] += d;
            sq[0] += d * d;
        }
        let (dev, sq) = (dev.iter().sum::<f64>(), sq.iter().sum::<f64>());
        Moments { count: xs.len() as u64, mean: mean0 + dev / n, m2: (sq - dev * dev / n).max(0.0), ..Moments::default() }
    }
}

simd_fn! {
    fn standardize_in_place<T: Real>(x: &mut [T], mean: f64, inv_scale: f64) {
        for v in x.iter_mut() {
            *v = T::from_f64((v.to_f64() - mean) * inv_scale);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn every_float16_converts_exactly() {
        // All 65,536 bit patterns, in a strided (non-standard) view: the value IEEE 754 gives
        // (the reference widening of the sign, exponent and mantissa fields), NaN for NaN.
        let bits: Vec<u16> = (0..=u16::MAX).collect();
        let x: Vec<half::f16> = bits.iter().map(|&b| half::f16::from_bits(b)).collect();
        let grid = ndarray::Array2::from_shape_vec((256, 256), x).unwrap();
        let transposed = grid.t();
        let mut out = vec![0.0f32; 1 << 16];
        f16_to_f32_into(transposed.into_dyn(), &mut out).unwrap();
        for (i, &got) in out.iter().enumerate() {
            let b = bits[(i % 256) * 256 + i / 256];
            let (sign, exp, man) = ((b >> 15) as i32, ((b >> 10) & 0x1f) as i32, (b & 0x3ff) as f64);
            let magnitude = match exp {
                0 => man * 2f64.powi(-24),
                31 if man == 0.0 => f64::INFINITY,
                31 => f64::NAN,
                _ => (1.0 + man / 1024.0) * 2f64.powi(exp - 15),
            };
            let want = if sign == 1 { -magnitude } else { magnitude };
            if want.is_nan() {
                assert!(got.is_nan(), "bits {b:#06x}: {got}");
            } else {
                assert_eq!(got.to_bits(), (want as f32).to_bits(), "bits {b:#06x}");
            }
        }
        assert!(f16_to_f32_into(ndarray::ArrayViewD::from_shape(vec![2], &[half::f16::ZERO; 2][..]).unwrap(), &mut [0.0; 3]).is_err());
    }

    #[test]
    #[allow(clippy::approx_constant)] // values on both sides of the reduction's sqrt(2) boundary
    fn ln_matches_std_within_an_ulp() {
        let mut x = 1e-300f64;
        while x < 1e300 {
            for v in [x, x * 1.234_567, x * 1.414_213_5, x * 1.999] {
                let (a, b) = (ln_positive(v), v.ln());
                assert!((a - b).abs() <= 2.3e-16 * b.abs().max(1e-300), "ln({v}) = {a}, std {b}");
            }
            x *= 3.7;
        }
        for v in [4.9e-324, 1e-310, 1.0, f64::MAX] {
            assert!((ln_positive(v) - v.ln()).abs() <= 1e-15 * v.ln().abs().max(1.0));
        }
        assert_eq!(ln_positive(1.0), 0.0);
    }

    #[test]
    #[allow(clippy::approx_constant)] // values on both sides of the reduction's sqrt(2) boundary
    fn ln_f32_is_within_an_ulp() {
        let mut x = f32::from_bits(1); // the smallest subnormal
        while x < f32::MAX / 1.3 {
            for v in [x, x * 1.1, x * 1.414_2, x * 1.9] {
                let exact = (v as f64).ln();
                let ulp = (exact as f32).abs() * f32::EPSILON;
                let err = (ln_positive_f32(v) as f64 - exact).abs();
                assert!(err <= ulp.max(f32::MIN_POSITIVE) as f64, "ln({v}) = {} vs {exact}", ln_positive_f32(v));
            }
            x *= 1.7;
        }
        assert_eq!(ln_positive_f32(1.0), 0.0);
    }

    #[test]
    fn clip_log_replaces_nan_and_clips() {
        let op = ClipLog::new::<f64>((-6f64).exp(), 10f64.exp(), -1.0).unwrap();
        let x = [f64::NAN, 0.0, -5.0, 1.0, 1e9, f64::INFINITY, f64::NEG_INFINITY];
        let mut out = [0.0; 7];
        op.apply_into(&x, &mut out).unwrap();
        let expected = [-6.0, -6.0, -6.0, 0.0, 10.0, 10.0, -6.0];
        for (a, b) in out.iter().zip(expected) {
            assert!((a - b).abs() < 1e-14, "{a} vs {b}");
        }
        assert!(ClipLog::new::<f64>(0.0, 1.0, 0.0).is_err());
        assert!(ClipLog::new::<f64>(2.0, 1.0, 0.0).is_err());
        assert!(ClipLog::new::<f32>(1e-50, 1.0, 0.0).is_err());
    }

    #[test]
    fn clip_log_normalize_equals_the_two_steps() {
        let (lo, hi) = ((-6f64).exp(), 10f64.exp());
        let cols = 3 * NORM_CHUNK + 17; // whole chunks and a partial one
        let mut x: Vec<f32> = crate::testing::noise(2 * cols, 3).iter().map(|v| (v * 30.0).exp() as f32).collect();
        x[5] = f32::NAN;
        x[cols + 9] = f32::INFINITY;
        let x = Array2::from_shape_vec((2, cols), x).unwrap();
        let logged = clip_log(x.view().into_dyn(), lo, hi, -1.0).unwrap();
        let logged = logged.into_dimensionality::<ndarray::Ix2>().unwrap();
        let expected = instance_normalize(logged.view(), 1e-6).unwrap();
        let mut out = vec![0f32; x.len()];
        clip_log_normalize_into(x.view(), lo, hi, -1.0, 1e-6, &mut out).unwrap();
        let mut inplace = x.as_slice().unwrap().to_vec();
        clip_log_normalize_inplace(&mut inplace, cols, lo, hi, -1.0, 1e-6).unwrap();
        for ((a, b), c) in out.iter().zip(expected.iter()).zip(&inplace) {
            assert!((a - b).abs() <= 1e-6 * b.abs().max(1.0), "{a} vs {b}");
            assert_eq!(a, c);
        }
        // A constant instance (every value clipped to lo) has no spread to divide by.
        let err = clip_log_normalize_into(array![[0.0f64, -1.0]].view(), lo, hi, -1.0, 0.0, &mut [0.0; 2]).unwrap_err();
        assert!(err.to_string().contains("instance 0 is constant"), "{err}");
        assert!(clip_log_normalize_into(array![[1.0f64]].view(), lo, hi, -1.0, -1.0, &mut [0.0]).is_err());
        assert!(clip_log_normalize_into(array![[1.0f64]].view(), 0.0, hi, -1.0, 0.0, &mut [0.0]).is_err());
    }

    #[test]
    fn instance_normalize_rows() {
        let x = array![[1.0f32, 2.0, 3.0, 4.0], [10.0, 10.0, 10.0, 14.0]];
        let y = instance_normalize(x.view(), 0.0).unwrap();
        let std0 = 1.25f64.sqrt();
        assert!((y[[0, 0]] as f64 - (-1.5 / std0)).abs() < 1e-6);
        assert!((y.row(1).sum()).abs() < 1e-6);
        assert!(instance_normalize(array![[1.0f64, 1.0]].view(), 0.0).is_err());
        assert!(instance_normalize(array![[1.0f64, f64::NAN]].view(), 1e-6).is_err());
    }

    /// (x - mean) / (std + eps) of one row, from exact-enough f64 arithmetic on scaled values.
    fn reference_row(row: &[f64], eps: f64) -> Vec<f64> {
        let s = 2f64.powi(-1000) * 2f64.powi(-20);
        let scaled: Vec<f64> = row.iter().map(|v| v * s).collect();
        let n = row.len() as f64;
        let mean = scaled.iter().sum::<f64>() / n;
        let std = (scaled.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n).sqrt();
        scaled.iter().map(|v| (v - mean) / (std + eps * s)).collect()
    }

    #[test]
    fn instance_normalize_near_the_limits_of_f64() {
        // A row holding -1e308: its squared deviations overflow, its std (4.3e307) does not.
        let x = array![[-1e308, 0.0, 1.0, 2.0], [1.5e308, -1.5e308, 1.5e308, -1.5e308]];
        let y = instance_normalize(x.view(), 1e-6).unwrap();
        for (r, row) in x.rows().into_iter().enumerate() {
            let expected = reference_row(row.as_slice().unwrap(), 1e-6);
            for (a, b) in y.row(r).iter().zip(&expected) {
                assert!(a.is_finite() && (a - b).abs() <= 1e-12, "row {r}: {a} vs {b}");
            }
        }
        // A spread so small that its squares underflow, with eps 0: not a constant instance.
        let tiny = array![[1e-200f64, 2e-200, 4e-200], [0.0, 5e-324, 1e-323]];
        let y = instance_normalize(tiny.view(), 0.0).unwrap();
        let expected = [-1.0690449676496976, -0.2672612419124244, 1.3363062095621219];
        for (a, b) in y.row(0).iter().zip(expected) {
            assert!((a - b).abs() <= 1e-12, "{a} vs {b}");
        }
        assert!(y.row(1).iter().all(|v| v.is_finite()) && (y[[1, 0]] + 1.224744871391589).abs() < 1e-12, "{y}");
        // With eps far above the spread, eps decides (as without scaling).
        let y = instance_normalize(tiny.view(), 1e-6).unwrap();
        assert!((y[[0, 2]] - (4e-200 - 7e-200 / 3.0) / 1e-6).abs() <= 1e-206, "{}", y[[0, 2]]);
        // float32 rows too.
        let y32 = instance_normalize(array![[f32::MAX, -f32::MAX, 0.0]].view(), 0.0).unwrap();
        assert!(y32.iter().all(|v| v.is_finite()) && (y32[[0, 0]] - 1.2247449).abs() < 1e-6, "{y32}");
    }

    #[test]
    fn subnormal_eps_is_refused_and_constant_rows_are_zero() {
        for eps in [5e-324, 1e-310] {
            let err = instance_normalize(array![[1.0, 1.0, 1.0]].view(), eps).unwrap_err();
            assert!(err.to_string().starts_with("eps must be 0 or a normal positive float"), "{err}");
            assert!(ClipLogNormalize::new::<f64>(1.0, 2.0, 0.0, eps).is_err());
        }
        let y = instance_normalize(array![[1.0, 1.0, 1.0]].view(), f64::MIN_POSITIVE).unwrap();
        assert_eq!(y.as_slice().unwrap(), &[0.0; 3]);
        let err = instance_normalize(array![[3.0, 3.0]].view(), 0.0).unwrap_err();
        assert!(err.to_string().contains("instance 0 is constant"), "{err}");
        // Copies of zero-strided views beyond memory are allocation errors.
        use ndarray::ShapeBuilder;
        let one = [1.0f64];
        let huge = ndarray::ArrayView2::from_shape((1 << 40, 1 << 20).strides((0, 0)), &one[..]).unwrap();
        let err = instance_normalize_into(huge, 1e-6, &mut [0.0; 4]).unwrap_err();
        assert!(err.is_alloc(), "{err}");
        let err = instance_normalize(huge, 1e-6).unwrap_err();
        assert!(err.is_alloc(), "{err}");
        assert!(clip_log(huge.into_dyn(), 1.0, 2.0, 0.0).unwrap_err().is_alloc());
    }
}
