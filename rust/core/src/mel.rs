//! Mel spectrograms and power-to-decibel conversion, following librosa 0.11
//! (`feature.melspectrogram`, `power_to_db`); the filterbank is in filterbank.rs.
//!
//! A mel spectrogram needs the power of only the bins its filters touch. When the window is
//! short and those bins are few (EEG: a 128-sample window inside n_fft=1024, bins below 20 Hz),
//! the power comes from `BandDft`'s dense product instead of an FFT per frame, and the sparse
//! filterbank is applied row by row.

use crate::alloc;
use crate::bandmel::{self, BandMel, BandMelWork};
use crate::ensure;
use crate::error::{finite, positive, Result};
use crate::filterbank::{scale_into, MelFilterbank};
use crate::real::Real;
use crate::simd::simd_fn;
use crate::spectral::{self, BandDft, Framing, GemmFloat, Window};
use ndarray::{ArrayD, ArrayViewD};
use rayon::prelude::*;
use std::ops::Range;

// ------------------------------------------------------------------------------------------------
// Mel spectrogram

/// librosa.feature.melspectrogram: `mel_basis @ |stft(x)|**power`.
#[derive(Clone)]
pub struct MelSpectrogram {
    framing: Framing,
    window: Vec<f64>,
    mel: MelFilterbank,
    power: f64,
}

/// The band product pays off while it costs less than this many FFTs' worth of flops.
const BAND_DFT_ADVANTAGE: f64 = 8.0;

impl MelSpectrogram {
    pub fn new(framing: Framing, window: &Window, win_length: Option<usize>, mel: MelFilterbank, power: f64) -> Result<Self> {
        positive(power, "power")?;
        ensure!(
            mel.n_freq() == framing.n_fft / 2 + 1,
            "the mel filterbank has {} frequency bins, n_fft={} gives {}",
            mel.n_freq(),
            framing.n_fft,
            framing.n_fft / 2 + 1
        );
        let window = spectral::padded_window(window, win_length.unwrap_or(framing.n_fft), framing.n_fft)?;
        Ok(MelSpectrogram { framing, window, mel, power })
    }

    pub fn framing(&self) -> &Framing {
        &self.framing
    }

    pub fn n_mels(&self) -> usize {
        self.mel.n_mels()
    }

    /// The largest signal amplitude whose mel spectrogram, and the squared magnitudes on the way
    /// to it, stay a sixteenth of `max` (the largest value of the type they are computed in) away
    /// from overflow: `|X_k| <= A sum|w|`, `mel <= (A sum|w|)^power max_m sum_b W[m, b]`.
    pub fn safe_amplitude(&self, max: f64) -> f64 {
        let limit = max / 16.0;
        let w1: f64 = self.window.iter().map(|w| w.abs()).sum();
        let gain = self.mel.filters().map(|(_, w)| w.iter().sum::<f64>()).fold(0.0, f64::max);
        let squares = (limit / 2.0).sqrt();
        let mel = if gain > 0.0 { (limit / gain).powf(1.0 / self.power) } else { f64::INFINITY };
        squares.min(mel) / w1.max(f64::MIN_POSITIVE)
    }

    /// The transform of one signal, prepared once and applied to many signals of one length.
    pub fn plan<G: GemmFloat>(&self) -> Result<MelPlan<'_, G>> {
        let band = self.mel.band();
        // float32 power spectrograms of symmetric windows: the fused kernel, where it has the
        // registers it is written for.
        if G::as_f32(&[]).is_some() && self.power == 2.0 && bandmel::available() {
            if let Some(fused) = BandMel::new(&self.window, &self.mel, self.framing.hop)? {
                return Ok(MelPlan { spec: self, band, path: Path::Fused(fused) });
            }
        }
        let dft = BandDft::<G>::new(&self.window, band.clone())?;
        let n = self.framing.n_fft as f64;
        let fft_cost = BAND_DFT_ADVANTAGE * 2.5 * n * n.log2().max(1.0);
        let path = if (dft.cost_per_frame() as f64) <= fft_cost {
            Path::Band(dft)
        } else {
            Path::Fft(spectral::plan_fft(self.framing.n_fft, "n_fft")?)
        };
        Ok(MelPlan { spec: self, band, path })
    }

    /// Shape of the mel spectrogram of an array of `shape`: (..., n_mels, n_frames).
    pub fn output_shape(&self, shape: &[usize]) -> Result<Vec<usize>> {
        let n = spectral::lane_length(shape)?;
        spectral::batch_shape(shape, &[self.n_mels(), self.framing.n_frames(n)?])
    }

    /// The mel spectrogram of every lane along the last axis into `out` (of `output_shape`).
    pub fn compute_into<T: GemmFloat>(&self, x: ArrayViewD<T>, out: &mut [T]) -> Result<()> {
        let n_frames = self.framing.n_frames(x.shape().last().copied().unwrap_or(0))?;
        let plan = self.plan::<T>()?;
        spectral::per_lane_into(&x, out, MelWork::default, |work, lane, out| plan.run_lane(lane.view(), n_frames, work, out))
    }

    pub fn compute<T: GemmFloat>(&self, x: ArrayViewD<T>) -> Result<ArrayD<T>> {
        spectral::allocate(self.output_shape(x.shape())?, |out| self.compute_into(x, out))
    }
}

enum Path<G> {
    Fused(BandMel),
    Band(BandDft<G>),
    Fft(std::sync::Arc<dyn realfft::RealToComplex<f64>>),
}

/// A `MelSpectrogram` ready to run in element type `G`.
pub struct MelPlan<'a, G> {
    spec: &'a MelSpectrogram,
    band: Range<usize>,
    path: Path<G>,
}

/// Reusable buffers of `MelPlan::run`.
#[derive(Default)]
pub struct MelWork<G> {
    power: Vec<G>,
    scratch: Vec<G>,
    signal: Vec<f64>,
    padded: Vec<G>,
    fused: BandMelWork,
    lane: Vec<f32>,
}

impl<G: GemmFloat> MelPlan<'_, G> {
    /// The fused float32 kernel, if this plan uses it.
    pub fn fused(&self) -> Option<&BandMel> {
        match &self.path {
            Path::Fused(fused) => Some(fused),
            _ => None,
        }
    }

    /// The exponent of the magnitudes (2: power).
    pub fn power(&self) -> f64 {
        self.spec.power
    }

    /// Samples of padding the framing adds before (and after) a signal.
    pub fn pad(&self) -> usize {
        self.spec.framing.pad()
    }

    /// The mel spectrogram (n_mels x n_frames, row-major) of one unpadded signal.
    pub fn run_lane<T: Real>(&self, x: ndarray::ArrayView1<T>, n_frames: usize, work: &mut MelWork<G>, out: &mut [G]) -> Result<()> {
        match &self.path {
            Path::Fused(fused) => {
                let out = G::as_f32_mut(out).expect("the fused path is planned for f32 only");
                if self.spec.framing.pad_mode == spectral::PadMode::Constant {
                    // The zeros of the padding are implicit.
                    alloc::clear_for(&mut work.lane, x.len(), "a float32 copy of a lane of x")?;
                    work.lane.extend(x.iter().map(|v| v.to_f64() as f32));
                    ensure!(spectral::all_finite(&work.lane), "x contains NaN or inf");
                    fused.run(&work.lane, self.spec.framing.pad(), n_frames, &mut work.fused, out, n_frames)?;
                } else {
                    self.spec.framing.extend_into(x, &mut work.lane)?;
                    fused.run(&work.lane, 0, n_frames, &mut work.fused, out, n_frames)?;
                }
            }
            Path::Band(_) => {
                let mut padded = std::mem::take(&mut work.padded);
                let result = self.spec.framing.extend_into(x, &mut padded).and_then(|()| self.run(&padded, n_frames, work, out));
                work.padded = padded;
                result?;
            }
            Path::Fft(_) => {
                let mut padded = std::mem::take(&mut work.signal);
                let result = self.spec.framing.extend_into(x, &mut padded).and_then(|()| {
                    alloc::resize(&mut work.power, self.band.len() * n_frames, G::default(), "a power spectrogram of x")?;
                    self.fft_power(&padded, n_frames, work)?;
                    self.spec.mel.apply(&work.power, n_frames, out);
                    Ok(())
                });
                work.signal = padded;
                result?;
            }
        }
        Ok(())
    }

    /// The mel spectrogram (n_mels x n_frames, row-major) of a signal already padded by the
    /// framing.
    pub fn run(&self, padded: &[G], n_frames: usize, work: &mut MelWork<G>, out: &mut [G]) -> Result<()> {
        let nb = self.band.len();
        if let Path::Fused(fused) = &self.path {
            let padded = G::as_f32(padded).expect("the fused path is planned for f32 only");
            let out = G::as_f32_mut(out).expect("the fused path is planned for f32 only");
            return fused.run(padded, 0, n_frames, &mut work.fused, out, n_frames);
        }
        alloc::resize(
            &mut work.power,
            alloc::checked_len::<G>(&[nb, n_frames], "a power spectrogram of x")?,
            G::default(),
            "a power spectrogram of x",
        )?;
        match &self.path {
            Path::Fused(_) => unreachable!("handled above"),
            Path::Band(dft) => {
                let hop = self.spec.framing.hop;
                dft.power(padded, hop, n_frames, self.spec.power, &mut work.scratch, &mut work.power)?;
            }
            Path::Fft(_) => {
                let mut signal = std::mem::take(&mut work.signal);
                let result = alloc::clear_for(&mut signal, padded.len(), "a float64 copy of a lane of x").and_then(|()| {
                    signal.extend(padded.iter().map(|v| v.to_f64()));
                    self.fft_power(&signal, n_frames, work)
                });
                work.signal = signal;
                result?;
            }
        }
        self.spec.mel.apply(&work.power, n_frames, out);
        Ok(())
    }

    /// As `run` for a float64 padded signal (no conversion on the FFT path).
    pub fn run_f64(&self, padded: &[f64], n_frames: usize, work: &mut MelWork<G>, out: &mut [G]) -> Result<()> {
        match &self.path {
            Path::Fft(_) => {
                alloc::resize(&mut work.power, self.band.len() * n_frames, G::default(), "a power spectrogram of x")?;
                self.fft_power(padded, n_frames, work)?;
                self.spec.mel.apply(&work.power, n_frames, out);
                Ok(())
            }
            Path::Band(_) | Path::Fused(_) => {
                let converted = alloc::collect(padded.len(), padded.iter().map(|&v| G::from_f64(v)), "a copy of a lane of x")?;
                self.run(&converted, n_frames, work, out)
            }
        }
    }

    fn fft_power(&self, padded: &[f64], n_frames: usize, work: &mut MelWork<G>) -> Result<()> {
        let Path::Fft(fft) = &self.path else { unreachable!() };
        let spec = self.spec;
        let (hop, nb) = (spec.framing.hop, self.band.len());
        spectral::fft_band_power(fft, padded, &spec.window, hop, n_frames, self.band.clone(), spec.power, &mut work.power[..nb * n_frames])
    }
}

// ------------------------------------------------------------------------------------------------
// Decibels

/// librosa.power_to_db applied to one spectrogram at a time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PowerToDb {
    /// The reference power; None: each spectrogram's maximum.
    pub reference: Option<f64>,
    pub amin: f64,
    pub top_db: Option<f64>,
}

impl PowerToDb {
    pub fn new(reference: Option<f64>, amin: f64, top_db: Option<f64>) -> Result<Self> {
        positive(amin, "amin")?;
        if let Some(r) = reference {
            finite(r, "ref")?;
        }
        if let Some(t) = top_db {
            ensure!(finite(t, "top_db")? >= 0.0, "top_db must be non-negative, got {t}");
        }
        Ok(PowerToDb { reference: reference.map(f64::abs), amin, top_db })
    }

    /// The decibels of one spectrogram `s` into `out` (same length), with the reference and
    /// floor of this spectrogram. A NaN anywhere makes the whole spectrogram NaN, as in librosa.
    pub fn apply<G: LogFloat>(&self, s: &[G], out: &mut [G]) {
        assert_eq!(s.len(), out.len(), "one output per value");
        let (max, nan) = max_and_nan(s);
        if nan {
            out.fill(G::from_f64(f64::NAN));
            return;
        }
        let reference = self.reference.unwrap_or(max);
        let amin = self.amin_in::<G>();
        // The fast log for finite values at or above a normal amin, else the standard one; the
        // same log for the reference, so that the maximum maps to exactly 0 dB with ref=max.
        let fast = max.is_finite() && reference.is_finite() && amin >= G::MIN_NORMAL;
        let db = |v: f64| {
            let ln = if fast { G::from_f64(v).ln_normal().to_f64() } else { v.ln() };
            10.0 * std::f64::consts::LOG10_E * ln
        };
        let ref_db = db(reference.max(amin));
        // The floor is anchored at the largest value's decibels.
        let floor = self.top_db.map_or(f64::NEG_INFINITY, |t| db(max.max(amin)) - ref_db - t);
        if fast {
            G::db_kernel(s, out, G::from_f64(amin), G::from_f64(ref_db), G::from_f64(floor));
        } else {
            for (o, v) in out.iter_mut().zip(s) {
                *o = G::from_f64((db(v.to_f64().max(amin)) - ref_db).max(floor));
            }
        }
    }
}

impl PowerToDb {
    /// `amin` in `G`: rounded to it, and at least its smallest positive value (a subnormal
    /// float64 amin would round to 0 in float32, and log(0) - log(0) to NaN).
    fn amin_in<G: LogFloat>(&self) -> f64 {
        G::from_f64(self.amin).to_f64().max(G::TINY)
    }

    /// `acc += (db + offset) * scale` for the decibels `db` of one spectrogram `s` (rows of
    /// `n_frames`, as `apply` computes them), its first `width` frames only: `acc` has rows of
    /// `width`. The same values as `apply` followed by the sum, without the decibels array.
    pub fn accumulate<G: LogFloat>(&self, s: &[G], n_frames: usize, width: usize, offset: f64, scale: f64, acc: &mut [G]) -> Result<()> {
        assert!(width <= n_frames && s.len() % n_frames.max(1) == 0, "rows of n_frames, width <= n_frames");
        assert_eq!(acc.len(), s.len() / n_frames.max(1) * width, "acc has rows of width");
        let (max, nan) = max_and_nan(s);
        let reference = self.reference.unwrap_or(max);
        let amin = self.amin_in::<G>();
        let fast = !nan && max.is_finite() && reference.is_finite() && amin >= G::MIN_NORMAL;
        if !fast {
            // Rare (NaN, inf, subnormal amin): the general path, row by row.
            let mut db = alloc::vec_of(s.len(), G::default(), "the decibels of a spectrogram of S")?;
            self.apply(s, &mut db);
            for (a, row) in acc.chunks_mut(width).zip(db.chunks(n_frames)) {
                for (a, &v) in a.iter_mut().zip(row) {
                    *a += (v + G::from_f64(offset)) * G::from_f64(scale);
                }
            }
            return Ok(());
        }
        let db = |v: f64| 10.0 * std::f64::consts::LOG10_E * G::from_f64(v).ln_normal().to_f64();
        let ref_db = db(reference.max(amin));
        let floor = self.top_db.map_or(f64::NEG_INFINITY, |t| db(max.max(amin)) - ref_db - t);
        let params = DbParams {
            amin: G::from_f64(amin),
            ref_db: G::from_f64(ref_db),
            floor: G::from_f64(floor),
            offset: G::from_f64(offset),
            scale: G::from_f64(scale),
        };
        for (a, row) in acc.chunks_mut(width).zip(s.chunks(n_frames)) {
            G::db_accumulate(&row[..width], a, &params);
        }
        Ok(())
    }

    /// Whether `count` power ratios, each at least the floor `10^(-top_db / 10)`, multiply
    /// without leaving `G`'s normal range.
    fn product_fits<G: LogFloat>(&self, count: usize) -> bool {
        self.top_db.is_some_and(|t| -t * count as f64 / 10.0 >= (2.0 * G::MIN_NORMAL).log10())
    }

    /// The mean over `count` spectrograms of their mapped decibels `(db + offset) * scale`
    /// (decibels as `apply` computes them, each with its own reference and floor), first
    /// `width` frames: row m into `out[m * stride..][..width]`. `specs` holds the spectrograms
    /// one after another, each rows of `n_frames`; `work` is scratch.
    ///
    /// With a floor (`top_db`) low enough that `count` floors multiply without leaving `G`'s
    /// normal range, the decibels are summed as one log of the product of power ratios,
    /// `sum 10 log10(r_d) = 10 log10(prod r_d)`: one log per value instead of `count`.
    #[allow(clippy::too_many_arguments)]
    pub fn mean_mapped<G: LogFloat>(
        &self,
        specs: &[G],
        count: usize,
        n_frames: usize,
        width: usize,
        offset: f64,
        scale: f64,
        work: &mut Vec<G>,
        out: &mut [G],
        stride: usize,
    ) -> Result<()> {
        assert!(count > 0 && specs.len() % count == 0, "count spectrograms of one size");
        let size = specs.len() / count;
        assert!(width <= n_frames && size % n_frames.max(1) == 0, "rows of n_frames, width <= n_frames");
        let rows = size / n_frames.max(1);
        assert!(rows == 0 || out.len() >= (rows - 1) * stride + width, "out too small");
        let amin = self.amin_in::<G>();
        // The floor as a power ratio, where `count` of them multiply within G's normal range.
        let floor = self.top_db.filter(|_| self.product_fits::<G>(count) && amin >= G::MIN_NORMAL).map(|t| 10f64.powf(-t / 10.0));
        let ratios: Option<Vec<(G, G, f64)>> = floor.and_then(|floor| {
            specs
                .chunks(size)
                .map(|s| {
                    let (max, nan) = max_and_nan(s);
                    let reference = self.reference.unwrap_or(max);
                    if nan || !max.is_finite() || !reference.is_finite() {
                        return None;
                    }
                    // r = max(p, amin, floor) / max(max, amin) lies in [floor, 1]; the reference
                    // enters as a constant (0 dB when it is the maximum).
                    let top = max.max(amin);
                    let shift = 10.0 * (top / reference.max(amin)).log10();
                    Some((G::from_f64(amin.max(top * floor)), G::from_f64(1.0 / top), shift))
                })
                .collect()
        });
        let inv_count = 1.0 / count as f64;
        let Some(ratios) = ratios else {
            // The general path: each spectrogram's decibels summed, then scaled.
            work.clear();
            alloc::resize(work, rows * width, G::default(), "the decibel sums of an eeg image")?;
            for s in specs.chunks(size) {
                self.accumulate(s, n_frames, width, offset, scale, work)?;
            }
            for (o, a) in out.chunks_mut(stride).zip(work.chunks(width)) {
                scale_into(&mut o[..width], G::from_f64(inv_count), a);
            }
            return Ok(());
        };
        let shift: f64 = ratios.iter().map(|r| r.2).sum();
        let a = G::from_f64(10.0 * std::f64::consts::LOG10_E * scale * inv_count);
        let b = G::from_f64((shift + count as f64 * offset) * scale * inv_count);
        work.clear();
        alloc::resize(work, width, G::default(), "the decibel sums of an eeg image")?;
        for (m, o) in out.chunks_mut(stride).take(rows).enumerate() {
            for (d, &(lower, inv, _)) in ratios.iter().enumerate() {
                let row = &specs[d * size + m * n_frames..][..width];
                ratio_product(row, lower, inv, work, d == 0);
            }
            log_affine(work, a, b, &mut o[..width]);
        }
        Ok(())
    }
}

/// The constants of one spectrogram's decibels and their affine map.
pub struct DbParams<G> {
    amin: G,
    ref_db: G,
    floor: G,
    offset: G,
    scale: G,
}

simd_fn! {
    /// Largest value of `s`, and whether it holds a NaN (lane-wise, so that it vectorizes).
    fn max_and_nan<G: Real>(s: &[G]) -> (f64, bool) {
        const L: usize = 16;
        // Compared in G itself (exact: widening is monotonic), so that f32 fills whole registers.
        let mut max = [G::from_f64(f64::NEG_INFINITY); L];
        let mut nan = [false; L];
        let chunks = s.chunks_exact(L);
        let rest = chunks.remainder();
        for chunk in chunks {
            for l in 0..L {
                let v = chunk[l];
                #[allow(clippy::eq_op)]
                let is_nan = v != v;
                nan[l] |= is_nan;
                max[l] = if v > max[l] { v } else { max[l] };
            }
        }
        let mut m = max.iter().fold(f64::NEG_INFINITY, |a, &b| a.max(b.to_f64()));
        let mut any_nan = nan.iter().any(|&b| b);
        for v in rest {
            let v = v.to_f64();
            any_nan |= v.is_nan();
            m = m.max(v);
        }
        (m, any_nan)
    }
}

/// Element types with a natural log that vectorizes, accurate to their own precision.
pub trait LogFloat: GemmFloat {
    /// The smallest positive normal value.
    const MIN_NORMAL: f64;
    /// The smallest positive (subnormal) value.
    const TINY: f64;
    /// Natural log of a positive, normal, finite value.
    fn ln_normal(self) -> Self;
    /// `out = max(10 log10(max(s, amin)) - ref_db, floor)` for finite `s` and a normal `amin`.
    fn db_kernel(s: &[Self], out: &mut [Self], amin: Self, ref_db: Self, floor: Self);
    /// `acc += (db + offset) * scale` with `db` as `db_kernel` computes it.
    fn db_accumulate(s: &[Self], acc: &mut [Self], p: &DbParams<Self>);
}

// Both logs split x = 2^k m with m in [sqrt(1/2), sqrt(2)) and take ln(m) = f g(f) for f = m - 1,
// g a polynomial fitted (Chebyshev, then expanded) to ln(1 + f) / f on that interval: degree 12
// in f64 (about 2e-11 absolute), degree 8 in f32 (about 6e-8). No division or branch, so that
// loops over them vectorize.
const LN_POLY_F64: [f64; 13] = [
    0.9999999999906874,
    -0.5000000002392267,
    0.3333333405567612,
    -0.24999994813854523,
    0.1999990725881136,
    -0.16666933288130603,
    0.14290130075774443,
    -0.12496769969638816,
    0.11016357386206183,
    -0.09942024163841946,
    0.09986665936018586,
    -0.09776815375961911,
    0.0530141139120252,
];
const LN_POLY_F32: [f32; 9] = [1.0, -0.49999994, 0.33334, -0.25001356, 0.19962999, -0.1658325, 0.14908719, -0.14196017, 0.08632377];

impl LogFloat for f64 {
    const MIN_NORMAL: f64 = f64::MIN_POSITIVE;
    const TINY: f64 = 5e-324;

    #[inline(always)]
    fn ln_normal(self) -> f64 {
        let bits = self.to_bits();
        let mut k = ((bits >> 52) as i64) - 1023;
        let mut m = f64::from_bits((bits & 0x000f_ffff_ffff_ffff) | 0x3ff0_0000_0000_0000);
        let big = m > std::f64::consts::SQRT_2;
        m = if big { m * 0.5 } else { m };
        k += big as i64;
        let f = m - 1.0;
        let mut g = LN_POLY_F64[12];
        for &c in LN_POLY_F64[..12].iter().rev() {
            g = g.mul_add(f, c);
        }
        f.mul_add(g, k as f64 * std::f64::consts::LN_2)
    }

    fn db_kernel(s: &[f64], out: &mut [f64], amin: f64, ref_db: f64, floor: f64) {
        db_kernel(s, out, amin, ref_db, floor)
    }

    fn db_accumulate(s: &[f64], acc: &mut [f64], p: &DbParams<f64>) {
        db_accumulate(s, acc, p)
    }
}

impl LogFloat for f32 {
    const MIN_NORMAL: f64 = f32::MIN_POSITIVE as f64;
    const TINY: f64 = 1e-45f32 as f64;

    #[inline(always)]
    fn ln_normal(self) -> f32 {
        let bits = self.to_bits();
        let mut k = ((bits >> 23) as i32) - 127;
        let mut m = f32::from_bits((bits & 0x007f_ffff) | 0x3f80_0000);
        let big = m > std::f32::consts::SQRT_2;
        m = if big { m * 0.5 } else { m };
        k += big as i32;
        let f = m - 1.0;
        let mut g = LN_POLY_F32[8];
        for &c in LN_POLY_F32[..8].iter().rev() {
            g = g.mul_add(f, c);
        }
        // ln 2 in two parts: k * LN2_HI is exact, so only the final sum rounds.
        const LN2_HI: f32 = 0.693_359_4; // 0.693359375, exact in f32
        const LN2_LO: f32 = -2.121_944_4e-4;
        let k = k as f32;
        f.mul_add(g, k * LN2_LO) + k * LN2_HI
    }

    fn db_kernel(s: &[f32], out: &mut [f32], amin: f32, ref_db: f32, floor: f32) {
        db_kernel(s, out, amin, ref_db, floor)
    }

    fn db_accumulate(s: &[f32], acc: &mut [f32], p: &DbParams<f32>) {
        db_accumulate(s, acc, p)
    }
}

simd_fn! {
    fn db_kernel<G: LogFloat>(s: &[G], out: &mut [G], amin: G, ref_db: G, floor: G) {
        let ten_log10_e = G::from_f64(10.0 * std::f64::consts::LOG10_E);
        for (o, &v) in out.iter_mut().zip(s) {
            let db = ten_log10_e * (if v > amin { v } else { amin }).ln_normal() - ref_db;
            *o = if db > floor { db } else { floor };
        }
    }
}

simd_fn! {
    fn db_accumulate<G: LogFloat>(s: &[G], acc: &mut [G], p: &DbParams<G>) {
        let ten_log10_e = G::from_f64(10.0 * std::f64::consts::LOG10_E);
        let (amin, ref_db, floor, offset, scale) = (p.amin, p.ref_db, p.floor, p.offset, p.scale);
        for (a, &v) in acc.iter_mut().zip(s) {
            let db = ten_log10_e * (if v > amin { v } else { amin }).ln_normal() - ref_db;
            let db = if db > floor { db } else { floor };
            *a += (db + offset) * scale;
        }
    }
}

simd_fn! {
    /// `prod = max(s, lower) * inv`, times `prod` unless `first`.
    fn ratio_product<G: LogFloat>(s: &[G], lower: G, inv: G, prod: &mut [G], first: bool) {
        for (p, &v) in prod.iter_mut().zip(s) {
            let r = (if v > lower { v } else { lower }) * inv;
            *p = if first { r } else { *p * r };
        }
    }
}

simd_fn! {
    /// `out = a ln(x) + b` for positive normal `x`.
    fn log_affine<G: LogFloat>(x: &[G], a: G, b: G, out: &mut [G]) {
        for (o, &v) in out.iter_mut().zip(x) {
            *o = a * v.ln_normal() + b;
        }
    }
}

/// power_to_db of each 2-D spectrogram of `s` (the last two axes) into `out` (`s`'s shape).
pub fn power_to_db_into<T: LogFloat>(s: ArrayViewD<T>, db: &PowerToDb, out: &mut [T]) -> Result<()> {
    ensure!(s.ndim() >= 2, "S must have at least two dimensions (..., freq, time), got {}", s.ndim());
    ensure!(out.len() == s.len(), "out has {} elements, S has {}", out.len(), s.len());
    let s = alloc::standard_layout(s, "a contiguous copy of S")?;
    let nd = s.ndim();
    let block = s.shape()[nd - 2] * s.shape()[nd - 1];
    if block > 0 {
        out.par_chunks_mut(block).zip(s.as_slice().expect("standard layout").par_chunks(block)).for_each(|(o, x)| db.apply(x, o));
    }
    Ok(())
}

pub fn power_to_db<T: LogFloat>(s: ArrayViewD<T>, db: &PowerToDb) -> Result<ArrayD<T>> {
    spectral::allocate(s.shape().to_vec(), |out| power_to_db_into(s, db, out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spectral::PadMode;

    /// `mean_mapped` against the mean of `accumulate`d spectrograms (the general path), on
    /// `count` spectrograms of 5 x 40 (width 33) spanning 16 decades, zeros included.
    fn check_mean_mapped<G: LogFloat>(db: PowerToDb, count: usize, nan_in: Option<usize>, tol: f64) -> Vec<G> {
        let (rows, n_frames, width, stride) = (5, 40, 33, 37);
        let mut specs: Vec<G> = crate::testing::noise(count * rows * n_frames, 11)
            .iter()
            .map(|v| G::from_f64(if v.abs() < 0.02 { 0.0 } else { 10f64.powf(8.0 * v) }))
            .collect();
        if let Some(d) = nan_in {
            specs[d * rows * n_frames + 17] = G::from_f64(f64::NAN);
        }
        let (offset, scale) = (40.0, 1.0 / 40.0);
        let mut expected = vec![G::default(); rows * width];
        for s in specs.chunks(rows * n_frames) {
            db.accumulate(s, n_frames, width, offset, scale, &mut expected).unwrap();
        }
        let mut out = vec![G::from_f64(-7.0); rows * stride];
        db.mean_mapped(&specs, count, n_frames, width, offset, scale, &mut Vec::new(), &mut out, stride).unwrap();
        for m in 0..rows {
            for t in 0..stride {
                let got = out[m * stride + t].to_f64();
                if t >= width {
                    assert_eq!(got, -7.0, "row {m} frame {t} is beyond width");
                    continue;
                }
                let want = expected[m * width + t].to_f64() / count as f64;
                assert!(
                    (got - want).abs() <= tol || (got.is_nan() && want.is_nan()),
                    "{db:?} x{count}, row {m} frame {t}: {got} vs {want}"
                );
            }
        }
        out
    }

    #[test]
    fn mean_mapped_equals_the_mean_of_each_spectrograms_decibels() {
        let eeg = PowerToDb::new(None, 1e-10, Some(80.0)).unwrap();
        assert!(eeg.product_fits::<f32>(4) && eeg.product_fits::<f64>(4));
        // One log of the product: the recipe's floor, and a fixed reference (constant shift).
        check_mean_mapped::<f32>(eeg, 4, None, 2e-6);
        check_mean_mapped::<f64>(eeg, 4, None, 1e-9);
        let fixed = PowerToDb::new(Some(3.0), 1e-10, Some(50.0)).unwrap();
        check_mean_mapped::<f32>(fixed, 3, None, 2e-6);
        check_mean_mapped::<f32>(eeg, 1, None, 2e-6);
        // The general path: no floor, or floors whose product leaves float32's range.
        let unfloored = PowerToDb::new(None, 1e-10, None).unwrap();
        assert!(!unfloored.product_fits::<f32>(1));
        check_mean_mapped::<f32>(unfloored, 4, None, 2e-6);
        let deep = PowerToDb::new(None, 1e-10, Some(120.0)).unwrap();
        assert!(!deep.product_fits::<f32>(4) && deep.product_fits::<f64>(4));
        check_mean_mapped::<f32>(deep, 4, None, 2e-6);
        check_mean_mapped::<f64>(deep, 4, None, 1e-9);
        // A NaN makes its spectrogram's decibels NaN, and so the mean (as librosa would).
        let out = check_mean_mapped::<f32>(eeg, 4, Some(2), 0.0);
        assert!(out[0].is_nan());
    }

    #[test]
    fn max_and_nan_in_f32_lanes() {
        for n in [1usize, 15, 16, 17, 40] {
            let mut x: Vec<f32> = (0..n).map(|i| -((i * 7 % 13) as f32) - 0.5).collect();
            let top = n * 2 / 3;
            x[top] = 3.25;
            assert_eq!(max_and_nan(&x), (3.25, false), "n={n}");
            x[n - 1] = f32::NAN;
            assert!(max_and_nan(&x).1, "n={n}");
            x[0] = f32::INFINITY;
            assert_eq!(max_and_nan(&x).0, f64::INFINITY);
        }
        assert_eq!(max_and_nan(&[f32::NEG_INFINITY; 20]), (f64::NEG_INFINITY, false));
        assert!(max_and_nan::<f64>(&[1.0, f64::NAN, -2.0]).1);
    }

    #[test]
    fn band_and_fft_paths_agree() {
        let n = 3000;
        let x: Vec<f64> = (0..n).map(|i| (i as f64 * 0.05).sin() * 30.0 + (i as f64 * 0.71).cos()).collect();
        let framing = Framing::new(1024, 39, true, PadMode::Constant).unwrap();
        let mel = MelFilterbank::new(200.0, 1024, 128, 0.0, 20.0, false, true).unwrap();
        let spec = MelSpectrogram::new(framing, &Window::Hann, Some(128), mel, 2.0).unwrap();
        let plan = spec.plan::<f64>().unwrap();
        assert!(matches!(plan.path, Path::Band(_)));
        let padded = framing.extend::<f64, f64>(ndarray::ArrayView1::from(&x)).unwrap();
        let n_frames = framing.n_frames(n).unwrap();
        let mut band_out = vec![0.0; 128 * n_frames];
        plan.run(&padded, n_frames, &mut MelWork::default(), &mut band_out).unwrap();
        let fft_plan = MelPlan { spec: &spec, band: plan.band.clone(), path: Path::<f64>::Fft(spectral::plan_fft(1024, "n_fft").unwrap()) };
        let mut fft_out = vec![0.0; 128 * n_frames];
        fft_plan.run_f64(&padded, n_frames, &mut MelWork::default(), &mut fft_out).unwrap();
        let scale = fft_out.iter().fold(0.0f64, |m, v| m.max(*v));
        for (a, b) in band_out.iter().zip(&fft_out) {
            assert!((a - b).abs() <= 1e-10 * scale);
        }
    }

    #[test]
    #[allow(clippy::approx_constant)] // values on both sides of the reduction's sqrt(2) boundary
    fn fast_logs_are_accurate() {
        let mut x = 1e-300f64;
        while x < 1e300 {
            for v in [x, x * 1.234_567, x * 1.414_213_5, x * 1.414_213_6, x * 1.999] {
                assert!((v.ln_normal() - v.ln()).abs() <= 3e-11 + 1e-15 * v.ln().abs(), "ln({v})");
                let v32 = v as f32;
                if v32.is_normal() {
                    let (a, b) = (v32.ln_normal() as f64, (v32 as f64).ln());
                    assert!((a - b).abs() <= 1.5e-7 + 1.2e-7 * b.abs(), "ln({v32}) = {a}, not {b}");
                }
            }
            x *= 3.7;
        }
        assert_eq!(1.0f64.ln_normal(), 0.0);
        assert_eq!(1.0f32.ln_normal(), 0.0);
    }

    #[test]
    fn power_to_db_reference_and_floor() {
        let db = PowerToDb::new(None, 1e-10, Some(80.0)).unwrap();
        let s = [1.0f64, 10.0, 100.0, 1e-20, 0.0];
        let mut out = vec![0.0; 5];
        db.apply(&s, &mut out);
        let expected = [-20.0, -10.0, 0.0, -80.0, -80.0];
        for (a, b) in out.iter().zip(expected) {
            assert!((a - b).abs() < 1e-9, "{out:?}");
        }
        assert_eq!(out[2], 0.0);
        let fixed = PowerToDb::new(Some(-1.0), 1e-10, None).unwrap();
        fixed.apply(&s, &mut out);
        assert!((out[2] - 20.0).abs() < 1e-9 && (out[3] + 100.0).abs() < 1e-9, "{out:?}");
        let nan = [1.0, f64::NAN];
        let mut o = [0.0; 2];
        db.apply(&nan, &mut o);
        assert!(o.iter().all(|v| v.is_nan()));
        assert!(PowerToDb::new(None, 0.0, None).is_err());
        // An amin below float32's smallest value: zeros are its smallest value, not log(0).
        let tiny = PowerToDb::new(None, 5e-324, None).unwrap();
        let mut o32 = [1.0f32; 3];
        tiny.apply(&[0.0f32; 3], &mut o32);
        assert_eq!(o32, [0.0; 3]);
        let mut acc = [0.0f32; 4];
        tiny.accumulate(&[0.0f32; 4], 2, 2, 40.0, 0.025, &mut acc).unwrap();
        assert_eq!(acc, [1.0; 4]);
        assert!(PowerToDb::new(None, 1e-10, Some(-1.0)).is_err());
    }
}
