//! Mel scale and filterbanks, following librosa 0.11 (`mel_frequencies`, `filters.mel`): the
//! filterbank that mel spectrograms (mel.rs) and the band mel kernel (bandmel.rs) both apply.

use crate::alloc;
use crate::ensure;
use crate::error::{finite, non_negative, positive, CoreError, Result};
use crate::simd::simd_fn;
use crate::spectral::GemmFloat;
use std::ops::Range;

const F_SP: f64 = 200.0 / 3.0;
const MIN_LOG_HZ: f64 = 1000.0;
const MIN_LOG_MEL: f64 = MIN_LOG_HZ / F_SP;

fn logstep() -> f64 {
    6.4f64.ln() / 27.0
}

/// Hz to mel: Slaney's scale (linear below 1 kHz, logarithmic above), or HTK's.
pub fn hz_to_mel(hz: f64, htk: bool) -> f64 {
    if htk {
        2595.0 * (1.0 + hz / 700.0).log10()
    } else if hz >= MIN_LOG_HZ {
        MIN_LOG_MEL + (hz / MIN_LOG_HZ).ln() / logstep()
    } else {
        hz / F_SP
    }
}

pub fn mel_to_hz(mel: f64, htk: bool) -> f64 {
    if htk {
        700.0 * (10f64.powf(mel / 2595.0) - 1.0)
    } else if mel >= MIN_LOG_MEL {
        MIN_LOG_HZ * (logstep() * (mel - MIN_LOG_MEL)).exp()
    } else {
        F_SP * mel
    }
}

/// One triangular filter: weights of the bins `start..start + weights.len()`.
#[derive(Debug, Clone, PartialEq)]
struct Filter {
    start: usize,
    weights: Vec<f64>,
}

/// A mel filterbank stored sparsely (each filter covers a few adjacent bins).
#[derive(Debug, Clone, PartialEq)]
pub struct MelFilterbank {
    n_freq: usize,
    filters: Vec<Filter>,
}

impl MelFilterbank {
    /// librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, htk=htk,
    /// norm="slaney" if `slaney_norm` else None), weights rounded to float32 as librosa does.
    pub fn new(sr: f64, n_fft: usize, n_mels: usize, fmin: f64, fmax: f64, htk: bool, slaney_norm: bool) -> Result<Self> {
        positive(sr, "sr")?;
        ensure!(n_fft >= 1, "n_fft must be at least 1, got {n_fft}");
        ensure!(n_mels >= 1, "n_mels must be at least 1, got {n_mels}");
        non_negative(fmin, "fmin")?;
        finite(fmax, "fmax")?;
        ensure!(fmax > fmin, "fmax must exceed fmin={fmin}, got {fmax}");
        ensure!(fmax <= sr / 2.0, "fmax must not exceed sr/2 = {}, got {fmax}", sr / 2.0);
        let n_freq = n_fft / 2 + 1;
        // numpy.fft.rfftfreq(n_fft, 1/sr) and librosa.mel_frequencies (numpy.linspace).
        let df = 1.0 / (n_fft as f64 * (1.0 / sr));
        let (lo, hi) = (hz_to_mel(fmin, htk), hz_to_mel(fmax, htk));
        let what = format!("a mel filterbank of n_mels={n_mels} filters");
        let n_points = n_mels.checked_add(2).ok_or_else(|| CoreError::alloc(&what, None))?;
        let step = (hi - lo) / (n_points - 1) as f64;
        let points = (0..n_points).map(|i| mel_to_hz(if i == n_points - 1 { hi } else { lo + i as f64 * step }, htk));
        let mut filters = alloc::with_capacity(n_mels, &what)?;
        let mel_f = alloc::collect(n_points, points, &what)?;
        let mut dense = Vec::new();
        let bins = format!("the weights of a mel filter over the bins of n_fft={n_fft}");
        for i in 0..n_mels {
            let (f0, f1, f2) = (mel_f[i], mel_f[i + 1], mel_f[i + 2]);
            let enorm = 2.0 / (f2 - f0);
            let weight = |k: usize| {
                let f = k as f64 * df;
                let lower = -(f0 - f) / (f1 - f0);
                let upper = (f2 - f) / (f2 - f1);
                let w = lower.min(upper).max(0.0) as f32 as f64;
                if slaney_norm {
                    (w * enorm) as f32 as f64
                } else {
                    w
                }
            };
            // With f0 <= f1 <= f2 every bin outside [f0, f2] weighs 0 (one of the slopes is
            // negative there): only the bins around that interval are evaluated, one more on each
            // side against rounding. Otherwise (never, short of rounding) all of them.
            let range = if f0 <= f1 && f1 <= f2 {
                let first = ((f0 / df).floor() - 1.0).max(0.0) as usize;
                let last = ((f2 / df).ceil() + 1.0).min((n_freq - 1) as f64) as usize;
                first.min(n_freq)..(last + 1).max(first.min(n_freq))
            } else {
                0..n_freq
            };
            alloc::clear_for(&mut dense, range.len(), &bins)?;
            dense.extend(range.clone().map(weight));
            let filter = match dense.iter().position(|&w| w != 0.0) {
                Some(first) => {
                    let last = dense.iter().rposition(|&w| w != 0.0).expect("a nonzero exists");
                    Filter {
                        start: range.start + first,
                        weights: alloc::collect(last + 1 - first, dense[first..=last].iter().copied(), &bins)?,
                    }
                }
                None => Filter { start: 0, weights: Vec::new() },
            };
            filters.push(filter);
        }
        Ok(MelFilterbank { n_freq, filters })
    }

    pub fn n_mels(&self) -> usize {
        self.filters.len()
    }

    pub fn n_freq(&self) -> usize {
        self.n_freq
    }

    /// The bins that some filter touches (empty filters ignored).
    pub fn band(&self) -> Range<usize> {
        let used = self.filters.iter().filter(|f| !f.weights.is_empty());
        let start = used.clone().map(|f| f.start).min().unwrap_or(0);
        let end = used.map(|f| f.start + f.weights.len()).max().unwrap_or(0);
        start..end.max(start)
    }

    /// Each filter's first bin and weights, in mel order.
    pub fn filters(&self) -> impl Iterator<Item = (usize, &[f64])> + '_ {
        self.filters.iter().map(|f| (f.start, f.weights.as_slice()))
    }

    /// The dense (n_mels x n_freq) matrix, row-major, of `U` (the weights rounded to it).
    pub fn to_dense<U: Copy + Default>(&self, from_f64: impl Fn(f64) -> U) -> Result<Vec<U>> {
        let what = format!("a dense mel filterbank of n_mels x (n_fft / 2 + 1) = {} x {} weights", self.n_mels(), self.n_freq);
        let mut out = alloc::vec_of(alloc::checked_len::<U>(&[self.n_mels(), self.n_freq], &what)?, U::default(), &what)?;
        for (m, f) in self.filters.iter().enumerate() {
            for (o, &w) in out[m * self.n_freq + f.start..][..f.weights.len()].iter_mut().zip(&f.weights) {
                *o = from_f64(w);
            }
        }
        Ok(out)
    }

    /// `out[m, t] = sum_b W[m, b] * power[b - band.start, t]` for `power` of shape
    /// (band.len() x n_frames) and `out` (n_mels x n_frames), both row-major.
    pub fn apply<G: GemmFloat>(&self, power: &[G], n_frames: usize, out: &mut [G]) {
        let band = self.band();
        for (f, row) in self.filters.iter().zip(out.chunks_mut(n_frames)) {
            let rows = f.weights.iter().enumerate().map(|(i, &w)| {
                let b = f.start + i - band.start;
                (G::from_f64(w), &power[b * n_frames..(b + 1) * n_frames])
            });
            weighted_sum(row, rows);
        }
    }
}

/// `y = sum_i a_i x_i` over the (weight, row) pairs (0 for none).
fn weighted_sum<'a, G: GemmFloat>(y: &mut [G], mut terms: impl Iterator<Item = (G, &'a [G])>) {
    match terms.next() {
        None => y.fill(G::default()),
        Some((a, x)) => {
            scale_into(y, a, x);
            terms.for_each(|(a, x)| axpy(y, a, x));
        }
    }
}

simd_fn! {
    pub(crate) fn scale_into<G: GemmFloat>(y: &mut [G], a: G, x: &[G]) {
        for (y, &x) in y.iter_mut().zip(x) {
            *y = a * x;
        }
    }
}

simd_fn! {
    fn axpy<G: GemmFloat>(y: &mut [G], a: G, x: &[G]) {
        for (y, &x) in y.iter_mut().zip(x) {
            *y += a * x;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    #[test]
    fn slaney_scale_round_trips_and_is_linear_below_1khz() {
        assert_eq!(hz_to_mel(0.0, false), 0.0);
        assert!((hz_to_mel(200.0, false) - 3.0).abs() < 1e-12);
        assert!((hz_to_mel(1000.0, false) - 15.0).abs() < 1e-12);
        for f in [0.0, 20.0, 999.0, 1000.0, 4000.0, 11025.0] {
            for htk in [false, true] {
                assert!((mel_to_hz(hz_to_mel(f, htk), htk) - f).abs() < 1e-9 * f.max(1.0));
            }
        }
    }

    #[test]
    fn filterbank_has_slaney_area_and_covers_the_band() {
        let mel = MelFilterbank::new(200.0, 1024, 128, 0.0, 20.0, false, true).unwrap();
        assert_eq!(mel.n_mels(), 128);
        assert_eq!(mel.n_freq(), 513);
        // DC and the bins above fmax = 20 Hz (bin 102 is 19.92 Hz) get no weight.
        let band = mel.band();
        assert!(band.start == 1 && band.end == 103, "{band:?}");
        let dense = mel.to_dense(|w| w).unwrap();
        // Slaney normalization: each triangle of height 2/(f2-f0) has area 1 in Hz, so its
        // weights times the bin spacing sum to about 1 (a coarse check: bins are wide here).
        let wide = MelFilterbank::new(22050.0, 2048, 40, 0.0, 11025.0, false, true).unwrap();
        let df = 22050.0 / 2048.0;
        for m in 5..40 {
            let area: f64 = wide.to_dense(|w| w).unwrap()[m * 1025..(m + 1) * 1025].iter().sum::<f64>() * df;
            assert!((area - 1.0).abs() < 0.05, "filter {m}: {area}");
        }
        assert!(dense.iter().all(|&w| w >= 0.0));
        assert!(MelFilterbank::new(200.0, 1024, 128, 0.0, 101.0, false, true).is_err());
        assert!(MelFilterbank::new(200.0, 1024, 128, 10.0, 10.0, false, true).is_err());
        assert!(MelFilterbank::new(f64::NAN, 1024, 128, 0.0, 10.0, false, true).is_err());
    }

    /// librosa's formula evaluated at every bin (the filterbank evaluates only the bins around
    /// each filter).
    fn dense_reference(sr: f64, n_fft: usize, n_mels: usize, fmin: f64, fmax: f64, htk: bool, slaney: bool) -> Vec<f64> {
        let n_freq = n_fft / 2 + 1;
        let df = 1.0 / (n_fft as f64 * (1.0 / sr));
        let (lo, hi) = (hz_to_mel(fmin, htk), hz_to_mel(fmax, htk));
        let n_points = n_mels + 2;
        let step = (hi - lo) / (n_points - 1) as f64;
        let mel_f: Vec<f64> = (0..n_points).map(|i| mel_to_hz(if i == n_points - 1 { hi } else { lo + i as f64 * step }, htk)).collect();
        let mut out = Vec::new();
        for i in 0..n_mels {
            let (f0, f1, f2) = (mel_f[i], mel_f[i + 1], mel_f[i + 2]);
            for k in 0..n_freq {
                let f = k as f64 * df;
                let w = (-(f0 - f) / (f1 - f0)).min((f2 - f) / (f2 - f1)).max(0.0) as f32 as f64;
                out.push(if slaney { (w * (2.0 / (f2 - f0))) as f32 as f64 } else { w });
            }
        }
        out
    }

    #[test]
    fn sparse_build_equals_the_dense_formula() {
        let cases = [
            (200.0, 1024, 128, 0.0, 20.0, false, true),
            (22050.0, 2048, 128, 0.0, 11025.0, false, true),
            (22050.0, 512, 40, 300.0, 8000.0, true, false),
            (16000.0, 64, 300, 0.0, 8000.0, false, true), // more filters than bins: empty ones
            (100.0, 7, 5, 1.0, 50.0, true, true),
            (1.0, 1, 3, 0.0, 0.5, false, true),
        ];
        for (sr, n_fft, n_mels, fmin, fmax, htk, slaney) in cases {
            let bank = MelFilterbank::new(sr, n_fft, n_mels, fmin, fmax, htk, slaney).unwrap();
            let expected = dense_reference(sr, n_fft, n_mels, fmin, fmax, htk, slaney);
            let got = bank.to_dense(|w| w).unwrap();
            assert_eq!(got.len(), expected.len());
            for (i, (a, b)) in got.iter().zip(&expected).enumerate() {
                assert_eq!(a.to_bits(), b.to_bits(), "{sr} {n_fft} {n_mels}: weight {i}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn impossible_filterbanks_are_allocation_errors() {
        let err = MelFilterbank::new(200.0, 1024, usize::MAX, 0.0, 20.0, false, true).unwrap_err();
        assert!(err.is_alloc() && err.to_string().contains("n_mels="), "{err}");
        let err = MelFilterbank::new(200.0, 1024, 1 << 60, 0.0, 20.0, false, true).unwrap_err();
        assert!(err.is_alloc(), "{err}");
        // Millions of (mostly empty) filters are built in time proportional to their number.
        let many = MelFilterbank::new(200.0, 1024, 2_000_000, 0.0, 20.0, false, true).unwrap();
        assert_eq!(many.n_mels(), 2_000_000);
        // Filters of more bins than the address space holds.
        let err = MelFilterbank::new(200.0, 1 << 62, 1, 0.0, 100.0, false, true).unwrap_err();
        assert!(err.is_alloc(), "{err}");
    }

    #[test]
    fn apply_equals_the_dense_product() {
        let mel = MelFilterbank::new(200.0, 256, 20, 1.0, 40.0, false, true).unwrap();
        let band = mel.band();
        let n_frames = 5;
        let power: Vec<f64> = (0..band.len() * n_frames).map(|i| (i as f64 * 0.37).sin().abs()).collect();
        let mut out = vec![0.0; 20 * n_frames];
        mel.apply(&power, n_frames, &mut out);
        let dense = Array2::from_shape_vec((20, 129), mel.to_dense(|w| w).unwrap()).unwrap();
        for m in 0..20 {
            for t in 0..n_frames {
                let e: f64 = band.clone().map(|b| dense[[m, b]] * power[(b - band.start) * n_frames + t]).sum();
                assert!((out[m * n_frames + t] - e).abs() < 1e-12);
            }
        }
    }
}
