//! Mel scale and filterbanks, following librosa 0.11 (`mel_frequencies`, `filters.mel`): the
//! filterbank that mel spectrograms (mel.rs) and the band mel kernel (bandmel.rs) both apply.

use crate::ensure;
use crate::error::{finite, non_negative, positive, Result};
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
        let fft_freqs: Vec<f64> = (0..n_freq).map(|k| k as f64 * df).collect();
        let (lo, hi) = (hz_to_mel(fmin, htk), hz_to_mel(fmax, htk));
        let n_points = n_mels + 2;
        let step = (hi - lo) / (n_points - 1) as f64;
        let mel_f: Vec<f64> = (0..n_points).map(|i| mel_to_hz(if i == n_points - 1 { hi } else { lo + i as f64 * step }, htk)).collect();
        let filters = (0..n_mels)
            .map(|i| {
                let (f0, f1, f2) = (mel_f[i], mel_f[i + 1], mel_f[i + 2]);
                let enorm = 2.0 / (f2 - f0);
                let dense: Vec<f64> = fft_freqs
                    .iter()
                    .map(|&f| {
                        let lower = -(f0 - f) / (f1 - f0);
                        let upper = (f2 - f) / (f2 - f1);
                        let w = lower.min(upper).max(0.0) as f32 as f64;
                        if slaney_norm {
                            (w * enorm) as f32 as f64
                        } else {
                            w
                        }
                    })
                    .collect();
                let start = dense.iter().position(|&w| w != 0.0).unwrap_or(0);
                let end = dense.iter().rposition(|&w| w != 0.0).map_or(start, |e| e + 1);
                Filter { start, weights: dense[start..end].to_vec() }
            })
            .collect();
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

    /// The dense (n_mels x n_freq) matrix, row-major.
    pub fn to_dense(&self) -> Vec<f64> {
        let mut out = vec![0.0; self.n_mels() * self.n_freq];
        for (m, f) in self.filters.iter().enumerate() {
            out[m * self.n_freq + f.start..][..f.weights.len()].copy_from_slice(&f.weights);
        }
        out
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
        let dense = mel.to_dense();
        // Slaney normalization: each triangle of height 2/(f2-f0) has area 1 in Hz, so its
        // weights times the bin spacing sum to about 1 (a coarse check: bins are wide here).
        let wide = MelFilterbank::new(22050.0, 2048, 40, 0.0, 11025.0, false, true).unwrap();
        let df = 22050.0 / 2048.0;
        for m in 5..40 {
            let area: f64 = wide.to_dense()[m * 1025..(m + 1) * 1025].iter().sum::<f64>() * df;
            assert!((area - 1.0).abs() < 0.05, "filter {m}: {area}");
        }
        assert!(dense.iter().all(|&w| w >= 0.0));
        assert!(MelFilterbank::new(200.0, 1024, 128, 0.0, 101.0, false, true).is_err());
        assert!(MelFilterbank::new(200.0, 1024, 128, 10.0, 10.0, false, true).is_err());
        assert!(MelFilterbank::new(f64::NAN, 1024, 128, 0.0, 10.0, false, true).is_err());
    }

    #[test]
    fn apply_equals_the_dense_product() {
        let mel = MelFilterbank::new(200.0, 256, 20, 1.0, 40.0, false, true).unwrap();
        let band = mel.band();
        let n_frames = 5;
        let power: Vec<f64> = (0..band.len() * n_frames).map(|i| (i as f64 * 0.37).sin().abs()).collect();
        let mut out = vec![0.0; 20 * n_frames];
        mel.apply(&power, n_frames, &mut out);
        let dense = Array2::from_shape_vec((20, 129), mel.to_dense()).unwrap();
        for m in 0..20 {
            for t in 0..n_frames {
                let e: f64 = band.clone().map(|b| dense[[m, b]] * power[(b - band.start) * n_frames + t]).sum();
                assert!((out[m * n_frames + t] - e).abs() < 1e-12);
            }
        }
    }
}
