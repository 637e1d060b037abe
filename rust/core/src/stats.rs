//! Streaming mean / variance / min / max in f64.
//!
//! Each chunk of data is summarized with the corrected two-pass algorithm (exact to rounding even
//! for data with a large mean and a tiny spread), and summaries are combined with Chan et al.'s
//! pairwise update, of which Welford's one-sample update is the special case. Chunks are merged
//! in a fixed order, so results do not depend on the number of threads.
//!
//! Finite data near f64's limits stays honest: a sum that overflows is taken again on scaled
//! values (the mean always fits between the minimum and the maximum), and a sum of squared
//! deviations beyond f64's range is reported as `m2 = inf` (an infinite variance, as numpy
//! computes it), never clamped to 0 or turned into NaN.

use crate::alloc;
use crate::ensure;
use crate::error::Result;
use crate::real::Real;
use crate::simd::simd_fn;
use ndarray::{ArrayViewD, Axis};
use rayon::prelude::*;

/// Elements summarized per chunk: small enough to stay in L2 between the two passes.
const CHUNK: usize = 1 << 15;
/// Independent accumulators per pass, so the sums vectorize and round like a pairwise sum.
const ACC: usize = 32;

/// Summary of a set of values; NaN values are counted in `nan_count` and otherwise ignored.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Moments {
    pub count: u64,
    pub nan_count: u64,
    /// The mean is `mean + mean_lo`: the low part carries the rounding error of the updates,
    /// so that many small updates of data with a large mean stay exact to f64 precision.
    pub mean: f64,
    pub mean_lo: f64,
    /// Sum of squared deviations from the mean; `inf` where it exceeds f64's range.
    pub m2: f64,
    pub min: f64,
    pub max: f64,
}

impl Default for Moments {
    fn default() -> Self {
        Moments { count: 0, nan_count: 0, mean: 0.0, mean_lo: 0.0, m2: 0.0, min: f64::INFINITY, max: f64::NEG_INFINITY }
    }
}

impl Moments {
    /// Summarizes a slice; large slices are split into chunks summarized in parallel.
    pub fn of_slice<T: Real>(xs: &[T]) -> Moments {
        if xs.len() <= CHUNK {
            return chunk_moments(xs);
        }
        let parts: Vec<Moments> = xs.par_chunks(CHUNK).map(chunk_moments).collect();
        parts.iter().fold(Moments::default(), |acc, p| acc.merged(p))
    }

    /// The moments of `xs` multiplied by `scale` (a power of two, so that the products are exact
    /// unless they leave f64's range), for data whose spread lies near f64's limits.
    pub fn of_scaled<T: Real>(xs: &[T], scale: f64) -> Moments {
        const BLOCK: usize = 1024;
        let mut buf = [0.0f64; BLOCK];
        xs.chunks(BLOCK).fold(Moments::default(), |acc, block| {
            let scaled = &mut buf[..block.len()];
            for (b, v) in scaled.iter_mut().zip(block) {
                *b = v.to_f64() * scale;
            }
            acc.merged(&chunk_moments(scaled))
        })
    }

    /// Chan et al.'s combination of two disjoint summaries.
    pub fn merged(&self, other: &Moments) -> Moments {
        if other.count == 0 {
            return Moments { nan_count: self.nan_count + other.nan_count, ..*self };
        }
        if self.count == 0 {
            return Moments { nan_count: self.nan_count + other.nan_count, ..*other };
        }
        let (na, nb) = (self.count as f64, other.count as f64);
        let n = na + nb;
        let count = self.count + other.count;
        let nan_count = self.nan_count + other.nan_count;
        let (min, max) = (self.min.min(other.min), self.max.max(other.max));
        let (d_hi, d_err) = two_sum(other.mean, -self.mean);
        if !d_hi.is_finite() && self.mean.is_finite() && other.mean.is_finite() {
            // Means of opposite signs more than f64::MAX apart: the mean is their weighted
            // average (each term finite), the squared deviations are beyond f64's range.
            let mean = self.mean * (na / n) + other.mean * (nb / n);
            return Moments { count, nan_count, mean, mean_lo: 0.0, m2: f64::INFINITY, min, max };
        }
        let delta = d_hi + (d_err + (other.mean_lo - self.mean_lo));
        let (s, e) = two_sum(self.mean, delta * (nb / n));
        let (mean, mean_lo) = two_sum(s, e + self.mean_lo);
        Moments {
            count,
            nan_count,
            mean,
            mean_lo,
            // delta * (delta * w), w >= 1/2: overflows only where the product does.
            m2: self.m2 + other.m2 + delta * (delta * (na * nb / n)),
            min,
            max,
        }
    }

    /// Variance with `ddof` delta degrees of freedom; NaN when `count <= ddof`, inf when the
    /// squared deviations exceed f64's range.
    pub fn variance(&self, ddof: u64) -> f64 {
        if self.count <= ddof {
            f64::NAN
        } else {
            self.m2 / (self.count - ddof) as f64
        }
    }

    /// The mean rounded to f64.
    pub fn mean(&self) -> f64 {
        self.mean + self.mean_lo
    }

    /// Whether the summarized values include inf or -inf (NaN is counted apart).
    pub fn has_inf(&self) -> bool {
        self.count > 0 && !(self.min.is_finite() && self.max.is_finite())
    }
}

/// `a + b` as a rounded sum and its exact rounding error (Knuth's TwoSum).
#[inline(always)]
fn two_sum(a: f64, b: f64) -> (f64, f64) {
    let s = a + b;
    let bb = s - a;
    (s, (a - (s - bb)) + (b - bb))
}

/// 2^k for k in [-1022, 1023].
pub fn pow2(k: i32) -> f64 {
    assert!((-1022..=1023).contains(&k), "2^{k} is not a normal f64");
    f64::from_bits(((k + 1023) as u64) << 52)
}

/// The binary exponent of a finite nonzero `x` (e with |x| in [2^e, 2^(e+1))); subnormals
/// count as -1023.
pub fn exponent(x: f64) -> i32 {
    ((x.to_bits() >> 52) & 0x7ff) as i32 - 1023
}

/// A power of two that brings values of magnitude up to `max_abs` (finite) into [1, 2), within
/// 2^-1000..2^1000 (so that it and its inverse are normal).
pub fn unit_scale(max_abs: f64) -> f64 {
    if max_abs == 0.0 {
        return 1.0;
    }
    pow2((-exponent(max_abs)).clamp(-1000, 1000))
}

/// The mean of the non-NaN values of `xs`, all finite, within `lo..=hi`, summed on scaled
/// values: for the rare chunk whose plain sum overflows.
fn scaled_mean<T: Real>(xs: &[T], lo: f64, hi: f64) -> f64 {
    let scale = unit_scale(lo.abs().max(hi.abs()));
    let (mut sum, mut count) = (0.0f64, 0u64);
    for v in xs {
        let v = v.to_f64();
        if !v.is_nan() {
            sum += v * scale;
            count += 1;
        }
    }
    (sum / count as f64 / scale).clamp(lo, hi)
}

simd_fn! {
    /// Corrected two-pass summary of one chunk: a first pass for the (approximate) mean, a second
    /// for the deviations and their sum, which corrects the mean's rounding error.
    fn chunk_moments<T: Real>(xs: &[T]) -> Moments {
        // Helpers are #[inline(always)] plain functions: closures would not inherit the SIMD target.
        let mut first = FirstPass::default();
        for block in xs.chunks_exact(ACC) {
            first.add(block);
        }
        first.add(xs.chunks_exact(ACC).remainder());
        let count: u64 = first.cnt.iter().sum();
        let nan_count = xs.len() as u64 - count;
        if count == 0 {
            return Moments { nan_count, ..Moments::default() };
        }
        let min = first.lo.iter().copied().fold(f64::INFINITY, f64::min);
        let max = first.hi.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if !(min.is_finite() && max.is_finite()) {
            // inf among the values: the caller refuses them.
            return Moments { count, nan_count, mean: f64::NAN, mean_lo: 0.0, m2: f64::NAN, min, max };
        }
        // Within [min, max], as the mean is: exact for constant data, whose deviations are then
        // 0 (an ulp of 1e300 squared would overflow).
        let sum = first.sum.iter().sum::<f64>();
        let mean0 = if sum.is_finite() {
            (sum / count as f64).clamp(min, max)
        } else {
            // Finite values whose sum overflows.
            scaled_mean(xs, min, max)
        };
        let mut second = SecondPass::default();
        for block in xs.chunks_exact(ACC) {
            second.add(block, mean0);
        }
        second.add(xs.chunks_exact(ACC).remainder(), mean0);
        let dev: f64 = second.dev.iter().sum();
        let sq: f64 = second.sq.iter().sum();
        let n = count as f64;
        if !(dev.is_finite() && sq.is_finite()) {
            // Squared deviations (or a deviation itself) beyond f64's range: so is m2.
            let mean = if dev.is_finite() { (mean0 + dev / n).clamp(min, max) } else { mean0 };
            return Moments { count, nan_count, mean, mean_lo: 0.0, m2: f64::INFINITY, min, max };
        }
        let (mean, mean_lo) = two_sum(mean0, dev / n);
        Moments { count, nan_count, mean, mean_lo, m2: (sq - dev * (dev / n)).max(0.0), min, max }
    }
}

/// Sums, counts, minima and maxima of the non-NaN values, one accumulator per lane.
struct FirstPass {
    sum: [f64; ACC],
    cnt: [u64; ACC],
    lo: [f64; ACC],
    hi: [f64; ACC],
}

impl Default for FirstPass {
    fn default() -> Self {
        FirstPass { sum: [0.0; ACC], cnt: [0; ACC], lo: [f64::INFINITY; ACC], hi: [f64::NEG_INFINITY; ACC] }
    }
}

impl FirstPass {
    #[inline(always)]
    fn add<T: Real>(&mut self, block: &[T]) {
        for (k, &v) in block.iter().enumerate() {
            let v = v.to_f64();
            let ok = !v.is_nan();
            self.sum[k] += if ok { v } else { 0.0 };
            self.cnt[k] += ok as u64;
            self.lo[k] = if v < self.lo[k] { v } else { self.lo[k] };
            self.hi[k] = if v > self.hi[k] { v } else { self.hi[k] };
        }
    }
}

/// Sums of the deviations from a provisional mean and of their squares (NaN skipped).
#[derive(Default)]
struct SecondPass {
    dev: [f64; ACC],
    sq: [f64; ACC],
}

impl SecondPass {
    #[inline(always)]
    fn add<T: Real>(&mut self, block: &[T], mean0: f64) {
        for (k, &v) in block.iter().enumerate() {
            let d = v.to_f64() - mean0;
            let d = if d.is_nan() { 0.0 } else { d };
            self.dev[k] += d;
            self.sq[k] += d * d;
        }
    }
}

/// Summarizes any array (any strides); memory order is irrelevant to the result.
pub fn moments_of<T: Real>(x: &ArrayViewD<T>) -> Result<Moments> {
    Ok(match x.as_slice_memory_order() {
        Some(slice) => Moments::of_slice(slice),
        None => {
            let owned = alloc::standard_layout(x.view(), "a contiguous copy of x")?;
            Moments::of_slice(owned.as_slice().expect("standard layout is contiguous"))
        }
    })
}

/// Running statistics, global (one channel) or per index of a channel axis.
#[derive(Debug, Clone, PartialEq)]
pub struct RunningStats {
    channels: Vec<Moments>,
    per_channel: bool,
}

impl RunningStats {
    /// Global statistics over every element.
    pub fn global() -> Self {
        RunningStats { channels: vec![Moments::default()], per_channel: false }
    }

    /// Per-channel statistics; the channel count is fixed by the first update.
    pub fn per_channel() -> Self {
        RunningStats { channels: Vec::new(), per_channel: true }
    }

    pub fn from_moments(channels: Vec<Moments>, per_channel: bool) -> Result<Self> {
        ensure!(per_channel || channels.len() == 1, "global statistics hold exactly one summary, got {}", channels.len());
        Ok(RunningStats { channels, per_channel })
    }

    /// What `summarize` needs to know of these statistics: whether they are per channel, and
    /// their channel count once fixed.
    pub fn kind(&self) -> (bool, Option<usize>) {
        (self.per_channel, (!self.channels.is_empty()).then_some(self.channels.len()))
    }

    pub fn is_per_channel(&self) -> bool {
        self.per_channel
    }

    pub fn channels(&self) -> &[Moments] {
        &self.channels
    }

    /// Adds the values of `x`; per channel, axis 0 of `x` is the channel axis. The state is left
    /// unchanged when an error is returned.
    pub fn update<T: Real>(&mut self, x: ArrayViewD<T>) -> Result<()> {
        let new = self.summarize(x)?;
        self.absorb(new)
    }

    /// The summaries that `update(x)` would add (one per channel), without changing the state: the
    /// work of an update, which needs no lock on shared statistics.
    pub fn summarize<T: Real>(&self, x: ArrayViewD<T>) -> Result<Vec<Moments>> {
        let (per_channel, channels) = self.kind();
        Self::summarize_as(per_channel, channels, x)
    }

    /// [`RunningStats::summarize`] for statistics of `kind()` (per channel, channel count).
    pub fn summarize_as<T: Real>(per_channel: bool, channels: Option<usize>, x: ArrayViewD<T>) -> Result<Vec<Moments>> {
        let new: Vec<Moments> = if per_channel {
            ensure!(x.ndim() >= 1, "per-channel statistics need an array with a channel axis, got a 0-d array");
            let n_channels = x.len_of(Axis(0));
            if let Some(expected) = channels {
                ensure!(expected == n_channels, "the channel axis has {n_channels} entries, but these statistics have {expected} channels");
            }
            let what = "the summaries of x's channels";
            let mut results = alloc::with_capacity(n_channels, what)?;
            (0..n_channels).into_par_iter().map(|c| moments_of(&x.index_axis(Axis(0), c))).collect_into_vec(&mut results);
            let mut new = alloc::with_capacity(n_channels, what)?;
            for r in results {
                new.push(r?);
            }
            new
        } else {
            vec![moments_of(&x)?]
        };
        if let Some(c) = new.iter().position(Moments::has_inf) {
            let where_ = if per_channel { format!(" in channel {c}") } else { String::new() };
            return Err(crate::error::CoreError::new(format!("x contains inf{where_}; only NaN is skipped")));
        }
        Ok(new)
    }

    /// Adds summaries made by `summarize` (one per channel).
    pub fn absorb(&mut self, new: Vec<Moments>) -> Result<()> {
        ensure!(
            self.channels.is_empty() || self.channels.len() == new.len(),
            "the channel axis has {} entries, but these statistics have {} channels",
            new.len(),
            self.channels.len()
        );
        ensure!(self.per_channel || new.len() == 1, "global statistics take one summary, got {}", new.len());
        if self.channels.is_empty() {
            self.channels = new;
        } else {
            for (acc, m) in self.channels.iter_mut().zip(&new) {
                *acc = acc.merged(m);
            }
        }
        Ok(())
    }

    pub fn merge(&mut self, other: &RunningStats) -> Result<()> {
        ensure!(self.per_channel == other.per_channel, "cannot merge global and per-channel statistics");
        if other.channels.is_empty() {
            return Ok(());
        }
        if self.channels.is_empty() {
            self.channels = other.channels.clone();
            return Ok(());
        }
        ensure!(
            self.channels.len() == other.channels.len(),
            "cannot merge statistics of {} and {} channels",
            self.channels.len(),
            other.channels.len()
        );
        for (acc, m) in self.channels.iter_mut().zip(&other.channels) {
            *acc = acc.merged(m);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array, Array2};

    fn two_pass(xs: &[f64]) -> (f64, f64) {
        let n = xs.len() as f64;
        let mean0 = xs.iter().sum::<f64>() / n;
        let dev = xs.iter().map(|v| v - mean0).sum::<f64>();
        let sq = xs.iter().map(|v| (v - mean0) * (v - mean0)).sum::<f64>();
        (mean0 + dev / n, (sq - dev * dev / n) / n)
    }

    fn lcg(n: usize, seed: u64) -> Vec<f64> {
        let mut s = seed.wrapping_add(0x9E3779B97F4A7C15);
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                (s >> 11) as f64 / (1u64 << 53) as f64 - 0.5
            })
            .collect()
    }

    #[test]
    fn chunked_and_merged_equals_two_pass_on_hostile_data() {
        // Mean 1e6, spread 1e-3: a naive sum of squares loses every digit here.
        let xs: Vec<f64> = lcg(200_003, 1).iter().map(|v| 1e6 + 3.46e-3 * v).collect();
        let (mean, var) = two_pass(&xs);
        let m = Moments::of_slice(&xs);
        assert_eq!(m.count, xs.len() as u64);
        assert!((m.mean() - mean).abs() <= 1e-12 * mean.abs());
        assert!((m.variance(0) - var).abs() <= 1e-12 * var, "{} vs {var}", m.variance(0));
        // Welford-style updates of one value at a time agree too.
        let mut w = Moments::default();
        for &v in &xs[..1000] {
            w = w.merged(&Moments::of_slice(&[v]));
        }
        let (mean1k, var1k) = two_pass(&xs[..1000]);
        assert!((w.mean() - mean1k).abs() <= 1e-12 * mean1k);
        assert!((w.variance(0) - var1k).abs() <= 1e-12 * var1k, "{} vs {var1k}", w.variance(0));
    }

    #[test]
    fn nan_is_counted_and_skipped() {
        let xs = [1.0f32, f32::NAN, 3.0, f32::NAN];
        let m = Moments::of_slice(&xs);
        assert_eq!((m.count, m.nan_count), (2, 2));
        assert_eq!((m.mean(), m.variance(0), m.min, m.max), (2.0, 1.0, 1.0, 3.0));
        let all_nan = Moments::of_slice(&[f64::NAN; 3]);
        assert_eq!((all_nan.count, all_nan.nan_count), (0, 3));
        assert!(all_nan.variance(0).is_nan());
    }

    #[test]
    fn per_channel_update_and_merge() {
        let x = Array2::from_shape_vec((3, 50), lcg(150, 3)).unwrap();
        let mut a = RunningStats::per_channel();
        a.update(x.slice(ndarray::s![.., ..20]).into_dyn()).unwrap();
        let mut b = RunningStats::per_channel();
        b.update(x.slice(ndarray::s![.., 20..]).into_dyn()).unwrap();
        a.merge(&b).unwrap();
        for c in 0..3 {
            let row: Vec<f64> = x.row(c).to_vec();
            let (mean, var) = two_pass(&row);
            let m = a.channels()[c];
            assert!((m.mean() - mean).abs() < 1e-14 && (m.variance(0) - var).abs() < 1e-14);
        }
        let wrong = Array::<f64, _>::zeros((4, 2)).into_dyn();
        assert!(a.update(wrong.view()).is_err());
        let inf = Array::from_elem((3, 2), f64::INFINITY).into_dyn();
        let before = a.clone();
        assert!(a.update(inf.view()).is_err());
        assert_eq!(a, before);
    }

    #[test]
    fn overflowing_squares_are_inf_not_zero() {
        // randn(6) * 1e300: the deviations' squares exceed f64, the mean does not.
        let xs: Vec<f64> = lcg(6, 5).iter().map(|v| v * 3e300).collect();
        let m = Moments::of_slice(&xs);
        let mean = xs.iter().map(|v| v / 6.0).sum::<f64>();
        assert!((m.mean() - mean).abs() <= 1e-15 * xs.iter().fold(0.0f64, |a, v| a.max(v.abs())), "{} vs {mean}", m.mean());
        assert_eq!(m.m2, f64::INFINITY);
        assert_eq!(m.variance(0), f64::INFINITY);
        assert!(!m.has_inf());
        let mut stats = RunningStats::global();
        stats.update(ndarray::ArrayView1::from(&xs).into_dyn()).unwrap();
        assert_eq!(stats.channels()[0].variance(1), f64::INFINITY);
    }

    #[test]
    fn means_of_values_near_f64_max_stay_finite() {
        // Two updates whose means are more than f64::MAX apart.
        let mut stats = RunningStats::global();
        stats.update(ndarray::ArrayView1::from(&[1.5e308]).into_dyn()).unwrap();
        stats.update(ndarray::ArrayView1::from(&[-1.5e308]).into_dyn()).unwrap();
        let m = stats.channels()[0];
        assert_eq!((m.count, m.mean(), m.m2, m.min, m.max), (2, 0.0, f64::INFINITY, -1.5e308, 1.5e308));
        // A sum that overflows within a chunk (values in different accumulator lanes).
        let xs = [1.5e308, 1.5e308, -1.5e308, 1.5e308];
        let m = Moments::of_slice(&xs);
        assert!((m.mean() - 0.75e308).abs() <= 1e-15 * 0.75e308, "{}", m.mean());
        assert_eq!(m.m2, f64::INFINITY);
        // All alike: the sum overflows, the squares do not.
        let m = Moments::of_slice(&[1e306; 300]);
        assert_eq!((m.mean(), m.m2), (1e306, 0.0));
        // All alike, and a sum that rounds: the mean stays exact (an ulp of 1e300 squared would
        // overflow).
        for v in [-1e300, 1.2345e299, 3e250] {
            for n in [3, 7, 100, 40_000] {
                let m = Moments::of_slice(&vec![v; n]);
                assert_eq!((m.mean(), m.m2), (v, 0.0), "{v} x {n}");
            }
        }
        // Merging summaries that straddle f64's range keeps the mean finite too.
        let a = Moments::of_slice(&[1.7e308; 3]);
        let b = Moments::of_slice(&[-1.7e308]);
        let ab = a.merged(&b);
        assert!((ab.mean() - 0.85e308).abs() <= 1e-15 * 1.7e308 && ab.m2 == f64::INFINITY, "{ab:?}");
    }

    #[test]
    fn scaled_moments_and_inf() {
        let xs: Vec<f64> = lcg(3000, 9).iter().map(|v| 1e-310 + v * 1e-312).collect();
        let s = unit_scale(xs.iter().fold(0.0f64, |a, v| a.max(v.abs())));
        let m = Moments::of_scaled(&xs, s);
        let scaled: Vec<f64> = xs.iter().map(|v| v * s).collect();
        let (mean, var) = two_pass(&scaled);
        assert!((m.mean() - mean).abs() <= 1e-12 * mean && (m.variance(0) - var).abs() <= 1e-9 * var);
        assert_eq!(pow2(-3), 0.125);
        assert_eq!(exponent(6.0), 2);
        assert_eq!(unit_scale(0.0), 1.0);
        assert!((1.0..2.0).contains(&(unit_scale(1e300) * 1e300)));
        assert!(Moments::of_slice(&[1.0, f64::NEG_INFINITY]).has_inf());
        let mut stats = RunningStats::per_channel();
        let x = ndarray::array![[1.0, 2.0], [3.0, f64::INFINITY]];
        let err = stats.update(x.view().into_dyn()).unwrap_err();
        assert_eq!(err.to_string(), "x contains inf in channel 1; only NaN is skipped");
        // Summaries of the wrong number of channels are refused when they are absorbed.
        stats.update(ndarray::array![[1.0], [2.0]].view().into_dyn()).unwrap();
        assert!(stats.absorb(vec![Moments::default(); 3]).is_err());
        assert!(RunningStats::global().absorb(vec![Moments::default(); 2]).is_err());
    }
}
