//! Streaming mean / variance / min / max in f64.
//!
//! Each chunk of data is summarized with the corrected two-pass algorithm (exact to rounding even
//! for data with a large mean and a tiny spread), and summaries are combined with Chan et al.'s
//! pairwise update, of which Welford's one-sample update is the special case. Chunks are merged
//! in a fixed order, so results do not depend on the number of threads.

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
    /// Sum of squared deviations from the mean.
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
        let (d_hi, d_err) = two_sum(other.mean, -self.mean);
        let delta = d_hi + (d_err + (other.mean_lo - self.mean_lo));
        let (s, e) = two_sum(self.mean, delta * (nb / n));
        let (mean, mean_lo) = two_sum(s, e + self.mean_lo);
        Moments {
            count: self.count + other.count,
            nan_count: self.nan_count + other.nan_count,
            mean,
            mean_lo,
            m2: self.m2 + other.m2 + delta * delta * (na * nb / n),
            min: self.min.min(other.min),
            max: self.max.max(other.max),
        }
    }

    /// Variance with `ddof` delta degrees of freedom; NaN when `count <= ddof`.
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

    pub fn is_finite(&self) -> bool {
        self.count == 0 || (self.mean.is_finite() && self.m2.is_finite())
    }
}

/// `a + b` as a rounded sum and its exact rounding error (Knuth's TwoSum).
#[inline(always)]
fn two_sum(a: f64, b: f64) -> (f64, f64) {
    let s = a + b;
    let bb = s - a;
    (s, (a - (s - bb)) + (b - bb))
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
        let mean0 = first.sum.iter().sum::<f64>() / count as f64;
        let mut second = SecondPass::default();
        for block in xs.chunks_exact(ACC) {
            second.add(block, mean0);
        }
        second.add(xs.chunks_exact(ACC).remainder(), mean0);
        let dev: f64 = second.dev.iter().sum();
        let sq: f64 = second.sq.iter().sum();
        let n = count as f64;
        let (mean, mean_lo) = two_sum(mean0, dev / n);
        Moments {
            count,
            nan_count,
            mean,
            mean_lo,
            m2: (sq - dev * dev / n).max(0.0),
            min: first.lo.iter().copied().fold(f64::INFINITY, f64::min),
            max: first.hi.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        }
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
pub fn moments_of<T: Real>(x: &ArrayViewD<T>) -> Moments {
    match x.as_slice_memory_order() {
        Some(slice) => Moments::of_slice(slice),
        None => {
            let owned = x.as_standard_layout();
            Moments::of_slice(owned.as_slice().expect("standard layout is contiguous"))
        }
    }
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

    pub fn is_per_channel(&self) -> bool {
        self.per_channel
    }

    pub fn channels(&self) -> &[Moments] {
        &self.channels
    }

    /// Adds the values of `x`; per channel, axis 0 of `x` is the channel axis. The state is left
    /// unchanged when an error is returned.
    pub fn update<T: Real>(&mut self, x: ArrayViewD<T>) -> Result<()> {
        let new: Vec<Moments> = if self.per_channel {
            ensure!(x.ndim() >= 1, "per-channel statistics need an array with a channel axis, got a 0-d array");
            let n_channels = x.len_of(Axis(0));
            ensure!(
                self.channels.is_empty() || self.channels.len() == n_channels,
                "the channel axis has {n_channels} entries, but these statistics have {} channels",
                self.channels.len()
            );
            (0..n_channels).into_par_iter().map(|c| moments_of(&x.index_axis(Axis(0), c))).collect()
        } else {
            vec![moments_of(&x)]
        };
        if let Some(c) = new.iter().position(|m| !m.is_finite()) {
            let where_ = if self.per_channel { format!(" in channel {c}") } else { String::new() };
            return Err(crate::error::CoreError::new(format!(
                "x contains inf (or values whose sum overflows){where_}; only NaN is skipped"
            )));
        }
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
}
