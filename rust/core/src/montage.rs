//! The double-banana bipolar montage and the EEG-to-spectrogram recipes: 20-channel EEG in, one
//! image per chain (LL, LP, RL, RP) out.
//!
//! Every recipe takes the middle `n_samples`, forms the 16 bipolar differences, fills each
//! difference's NaN with its mean (zeros if all NaN), optionally filters (zero-phase, native
//! sosfiltfilt), transforms each difference and averages the four differences of each chain.

use crate::alloc;
use crate::ensure;
use crate::error::{positive, CoreError, Result};
use crate::filter::{self, Sos};
use crate::mel::{LogFloat, MelPlan, MelSpectrogram, MelWork, PowerToDb};
use crate::real::Real;
use crate::simd::simd_fn;
use crate::spectral::{allocate, Spectrogram};
use crate::stats::{exponent, pow2, Moments};
use ndarray::{Array2, ArrayD, ArrayView2, ArrayViewD, Axis};
use rayon::prelude::*;

/// Channel order of the competition's EEG files.
pub const EEG_CHANNELS: [&str; 20] =
    ["Fp1", "F3", "C3", "P3", "F7", "T3", "T5", "O1", "Fz", "Cz", "Pz", "Fp2", "F4", "C4", "P4", "F8", "T4", "T6", "O2", "EKG"];

/// The chains, in output order.
pub const CHAINS: [&str; 4] = ["LL", "LP", "RL", "RP"];

/// The 16 differences, four per chain in `CHAINS` order.
pub const BIPOLAR: [(&str, &str); 16] = [
    ("Fp1", "F7"),
    ("F7", "T3"),
    ("T3", "T5"),
    ("T5", "O1"),
    ("Fp1", "F3"),
    ("F3", "C3"),
    ("C3", "P3"),
    ("P3", "O1"),
    ("Fp2", "F8"),
    ("F8", "T4"),
    ("T4", "T6"),
    ("T6", "O2"),
    ("Fp2", "F4"),
    ("F4", "C4"),
    ("C4", "P4"),
    ("P4", "O2"),
];

/// The central chain Fz-Cz, Cz-Pz: with `BIPOLAR`, the 18 links of the "banana18" montage.
pub const CENTRAL: [(&str, &str); 2] = [("Fz", "Cz"), ("Cz", "Pz")];

/// 10-10 names of the renamed temporal electrodes, accepted for their 10-20 names.
const ALIASES: [(&str, &str); 4] = [("T3", "T7"), ("T4", "T8"), ("T5", "P7"), ("T6", "P8")];

/// Indices of each difference's two channels among `channels` (case-insensitive; T7/T8/P7/P8
/// stand for T3/T4/T5/T6).
pub fn bipolar_pairs<S: AsRef<str>>(channels: &[S]) -> Result<Vec<(usize, usize)>> {
    pairs_of(channels, &BIPOLAR)
}

/// The links of a montage by name: "banana16" (`BIPOLAR`) or "banana18" (`BIPOLAR`, then
/// `CENTRAL`), as [`bipolar_pairs`].
pub fn montage_pairs<S: AsRef<str>>(channels: &[S], montage: &str) -> Result<Vec<(usize, usize)>> {
    match montage {
        "banana16" => pairs_of(channels, &BIPOLAR),
        "banana18" => pairs_of(channels, &[&BIPOLAR[..], &CENTRAL[..]].concat()),
        _ => Err(CoreError::new(format!("montage must be 'banana16' or 'banana18', got {montage:?}"))),
    }
}

fn pairs_of<S: AsRef<str>>(channels: &[S], links: &[(&str, &str)]) -> Result<Vec<(usize, usize)>> {
    let find = |name: &str| -> Result<usize> {
        let alias = ALIASES.iter().find(|(a, _)| *a == name).map(|(_, b)| *b);
        let matches: Vec<usize> = channels
            .iter()
            .enumerate()
            .filter(|(_, c)| {
                let c = c.as_ref().trim();
                c.eq_ignore_ascii_case(name) || alias.is_some_and(|a| c.eq_ignore_ascii_case(a))
            })
            .map(|(i, _)| i)
            .collect();
        match matches[..] {
            [i] => Ok(i),
            [] => Err(CoreError::new(format!("channels lacks {name}, which the bipolar montage needs"))),
            _ => Err(CoreError::new(format!("channels names {name} more than once"))),
        }
    };
    links.iter().map(|(a, b)| Ok((find(a)?, find(b)?))).collect()
}

/// Shape of the montage of an array of `shape` (..., channels, n): (..., pairs, n).
pub fn montage_shape(shape: &[usize], pairs: &[(usize, usize)]) -> Result<Vec<usize>> {
    n_samples(shape)?;
    let nd = shape.len();
    for &(a, b) in pairs {
        ensure!(a < shape[nd - 2] && b < shape[nd - 2], "channel index out of range for {} channels", shape[nd - 2]);
    }
    let mut out = shape.to_vec();
    out[nd - 2] = pairs.len();
    Ok(out)
}

/// The differences `eeg[a] - eeg[b]` for each pair into `out` (of `montage_shape`).
pub fn bipolar_montage_into<T: Real>(eeg: ArrayViewD<T>, pairs: &[(usize, usize)], out: &mut [T]) -> Result<()> {
    let n = n_samples(eeg.shape())?;
    let inputs = leading(&eeg)?;
    ensure!(out.len() == inputs.len() * pairs.len() * n, "out has the wrong size");
    if n > 0 && !pairs.is_empty() {
        out.par_chunks_mut(pairs.len() * n).zip(inputs.par_iter()).for_each(|(o, x)| {
            for (row, &(a, b)) in o.chunks_mut(n).zip(pairs) {
                let (xa, xb) = (x.index_axis(Axis(0), a), x.index_axis(Axis(0), b));
                for ((o, &va), &vb) in row.iter_mut().zip(&xa).zip(&xb) {
                    *o = T::from_f64(va.to_f64() - vb.to_f64());
                }
            }
        });
    }
    Ok(())
}

pub fn bipolar_montage<T: Real + Default>(eeg: ArrayViewD<T>, pairs: &[(usize, usize)]) -> Result<ArrayD<T>> {
    allocate(montage_shape(eeg.shape(), pairs)?, |out| bipolar_montage_into(eeg, pairs, out))
}

/// The (channels, samples) matrices of an array of shape (..., channels, samples).
pub(crate) fn leading<'a, T>(x: &ArrayViewD<'a, T>) -> Result<Vec<ArrayViewD<'a, T>>> {
    let what = "the recordings of eeg";
    let count = alloc::checked_len::<ArrayViewD<'a, T>>(&x.shape()[..x.ndim().saturating_sub(2)], what)?;
    let mut views = alloc::with_capacity(count, what)?;
    push_leading(x.clone(), &mut views);
    Ok(views)
}

fn push_leading<'a, T>(x: ArrayViewD<'a, T>, out: &mut Vec<ArrayViewD<'a, T>>) {
    if x.ndim() <= 2 {
        out.push(x);
        return;
    }
    for i in 0..x.len_of(Axis(0)) {
        push_leading(x.clone().index_axis_move(Axis(0), i), out);
    }
}

/// What every recipe does before its transform.
#[derive(Debug, Clone, Default)]
pub struct Preprocessing {
    /// Keep the middle `n_samples` (None: all).
    pub(crate) n_samples: Option<usize>,
    /// Zero-phase filters applied in turn after the NaN fill.
    pub(crate) filters: Vec<Sos>,
}

impl Preprocessing {
    pub fn new(n_samples: Option<usize>, filters: Vec<Sos>) -> Result<Self> {
        if let Some(n) = n_samples {
            ensure!(n >= 1, "n_samples must be at least 1, got {n}");
        }
        Ok(Preprocessing { n_samples, filters })
    }

    /// Samples kept from a recording of `n`.
    pub fn kept(&self, n: usize) -> Result<usize> {
        let kept = self.n_samples.unwrap_or(n);
        ensure!(kept <= n, "eeg has {n} samples, fewer than n_samples={kept}");
        ensure!(kept >= 1, "eeg has no samples");
        for sos in &self.filters {
            let padlen = sos.padlen();
            ensure!(kept > padlen, "eeg has {kept} samples to filter, but the band-pass/notch filters need more than {padlen}");
        }
        Ok(kept)
    }

    /// The filled and filtered differences of one recording (channels x n), (pairs x kept).
    pub fn differences<T: Real>(&self, eeg: ArrayView2<T>, pairs: &[(usize, usize)]) -> Result<Array2<f64>> {
        let mut diffs = Array2::zeros((0, 0));
        self.differences_into(eeg, pairs, &mut diffs)?;
        Ok(diffs)
    }

    /// `differences` into a reused array.
    pub fn differences_into<T: Real>(&self, eeg: ArrayView2<T>, pairs: &[(usize, usize)], diffs: &mut Array2<f64>) -> Result<()> {
        let n = eeg.ncols();
        let kept = self.kept(n)?;
        let start = (n - kept) / 2;
        if diffs.dim() != (pairs.len(), kept) {
            *diffs = alloc::zeros2(pairs.len(), kept, "the differences of a recording of eeg")?;
        }
        for (mut row, &(a, b)) in diffs.rows_mut().into_iter().zip(pairs) {
            let row = row.as_slice_mut().expect("rows of a standard array");
            let (xa, xb) = (eeg.row(a), eeg.row(b));
            let (xa, xb) = (xa.slice(ndarray::s![start..start + kept]), xb.slice(ndarray::s![start..start + kept]));
            match (xa.as_slice(), xb.as_slice()) {
                (Some(xa), Some(xb)) => subtract(xa, xb, row),
                _ => row.iter_mut().zip(xa.iter().zip(&xb)).for_each(|(o, (&va, &vb))| *o = va.to_f64() - vb.to_f64()),
            }
            let (sum, count, inf) = nan_sum(row);
            ensure!(
                !inf,
                "eeg contains inf (or values whose difference overflows float64) (channels {a} and {b}); only NaN gaps are filled"
            );
            if count < kept {
                let mut fill = if count > 0 { sum / count as f64 } else { 0.0 };
                if !fill.is_finite() {
                    // The sum overflowed: the mean of the differences taken in a scaled form.
                    fill = Moments::of_slice(row).mean();
                }
                row.iter_mut().filter(|v| v.is_nan()).for_each(|v| *v = fill);
            }
        }
        for sos in &self.filters {
            let filtered = filter::sosfiltfilt(sos, diffs.view().into_dyn(), 1)?;
            *diffs = filtered.into_dimensionality().expect("2-d in, 2-d out");
        }
        Ok(())
    }
}

/// The public notebooks' recipe: librosa mel spectrograms in decibels, cropped to a multiple
/// of `width_multiple` frames, mapped by `(db + offset) / scale` and averaged per chain.
#[derive(Clone)]
pub struct MelRecipe {
    pub pre: Preprocessing,
    /// Builds the transform for the hop of a given number of kept samples.
    pub spec: std::sync::Arc<dyn Fn(usize) -> Result<MelSpectrogram> + Send + Sync>,
    pub db: PowerToDb,
    pub width_multiple: usize,
    pub offset: f64,
    pub scale: f64,
}

impl MelRecipe {
    /// The image mapping's arguments (checked when a recipe is built, and before it is used).
    pub fn check(&self) -> Result<()> {
        ensure!(self.width_multiple >= 1, "width_multiple must be at least 1, got {}", self.width_multiple);
        ensure!(
            self.scale != 0.0 && self.scale.is_finite() && self.offset.is_finite(),
            "scale and offset must be finite, scale nonzero, got scale={}, offset={}",
            self.scale,
            self.offset
        );
        Ok(())
    }
}

simd_fn! {
    fn subtract<T: Real>(a: &[T], b: &[T], out: &mut [f64]) {
        for ((o, &a), &b) in out.iter_mut().zip(a).zip(b) {
            *o = a.to_f64() - b.to_f64();
        }
    }
}

simd_fn! {
    /// Sum and count of the non-NaN values, and whether one is infinite.
    fn nan_sum(x: &[f64]) -> (f64, usize, bool) {
        const L: usize = 8;
        let (mut sum, mut count, mut inf) = ([0.0; L], [0usize; L], [false; L]);
        let chunks = x.chunks_exact(L);
        let rest = chunks.remainder();
        for c in chunks {
            for l in 0..L {
                let v = c[l];
                let ok = !v.is_nan();
                sum[l] += if ok { v } else { 0.0 };
                count[l] += ok as usize;
                inf[l] |= v.abs() == f64::INFINITY;
            }
        }
        let (mut s, mut n, mut i) = (sum.iter().sum::<f64>(), count.iter().sum::<usize>(), inf.iter().any(|&b| b));
        for &v in rest {
            if !v.is_nan() {
                s += v;
                n += 1;
            }
            i |= v.is_infinite();
        }
        (s, n, i)
    }
}

/// The scipy recipe: natural log of `max(Sxx, amin)`, the first `n_freq` bins, per chain mean.
#[derive(Clone)]
pub struct ScipyRecipe {
    pub pre: Preprocessing,
    pub spec: Spectrogram,
    pub amin: f64,
    /// Frequency bins kept (None: all).
    pub n_freq: Option<usize>,
}

/// Runs `chain_image(state, differences, chain, image)` for every recording of `eeg` (...,
/// channels, n) and chain, in parallel, into `out` of shape (..., 4, rows, cols); each task
/// reuses the state that `init` makes.
fn chain_images_into<T, S, I, F>(
    eeg: &ArrayViewD<T>,
    pairs: &[(usize, usize)],
    pre: &Preprocessing,
    out: &mut [T],
    init: I,
    chain_image: F,
) -> Result<()>
where
    T: Real,
    I: Fn() -> S + Sync + Send,
    F: Fn(&mut S, &Array2<f64>, usize, &mut [T]) -> Result<()> + Sync + Send,
{
    ensure!(pairs.len() == BIPOLAR.len(), "the montage needs {} channel pairs", BIPOLAR.len());
    let recordings = leading(eeg)?;
    if recordings.is_empty() || out.is_empty() {
        return Ok(());
    }
    let per_recording = out.len() / recordings.len();
    out.par_chunks_mut(per_recording).zip(recordings.par_iter()).try_for_each_init(
        || Array2::zeros((0, 0)),
        |diffs, (o, rec)| {
            let rec = rec.view().into_dimensionality::<ndarray::Ix2>().expect("2-d");
            pre.differences_into(rec, pairs, diffs)?;
            let diffs = &*diffs;
            o.par_chunks_mut(per_recording / CHAINS.len())
                .enumerate()
                .try_for_each_init(&init, |state, (chain, img)| chain_image(state, diffs, chain, img))
        },
    )
}

/// The samples axis of an EEG shape (..., channels, samples).
pub(crate) fn n_samples(shape: &[usize]) -> Result<usize> {
    ensure!(shape.len() >= 2, "eeg must have shape (..., channels, samples), got {} dimension(s)", shape.len());
    Ok(shape[shape.len() - 1])
}

/// Output shape (..., 4, rows, cols) for an EEG shape (..., channels, samples).
fn images_shape(shape: &[usize], rows: usize, cols: usize) -> Vec<usize> {
    shape[..shape.len() - 2].iter().copied().chain([CHAINS.len(), rows, cols]).collect()
}

/// The mel recipe's transform and image width for recordings of `n` samples.
pub fn mel_geometry(n: usize, recipe: &MelRecipe) -> Result<(MelSpectrogram, usize, usize)> {
    let kept = recipe.pre.kept(n)?;
    let spec = (recipe.spec)(kept)?;
    let n_frames = spec.framing().n_frames(kept)?;
    recipe.check()?;
    let width = n_frames / recipe.width_multiple * recipe.width_multiple;
    ensure!(width >= 1, "the spectrogram has {n_frames} frames, fewer than width_multiple={}", recipe.width_multiple);
    Ok((spec, n_frames, width))
}

/// Shape of the mel recipe's images of an EEG of `shape`: (..., 4, n_mels, width).
pub fn mel_shape(shape: &[usize], recipe: &MelRecipe) -> Result<Vec<usize>> {
    let (spec, _, width) = mel_geometry(n_samples(shape)?, recipe)?;
    Ok(images_shape(shape, spec.n_mels(), width))
}

/// The mel recipe's images into `out` (of `mel_shape`).
pub fn mel_images_into<T: LogFloat>(eeg: ArrayViewD<T>, pairs: &[(usize, usize)], recipe: &MelRecipe, out: &mut [T]) -> Result<()> {
    ensure!(pairs.len() == BIPOLAR.len(), "the montage needs {} channel pairs", BIPOLAR.len());
    let n = n_samples(eeg.shape())?;
    let (spec, n_frames, width) = mel_geometry(n, recipe)?;
    let imager = MelImager::new(&spec, recipe, n, n_frames, width)?;
    let recordings = leading(&eeg)?;
    if recordings.is_empty() || out.is_empty() {
        return Ok(());
    }
    // One task per (recording, chain): enough of them to balance the threads for any batch.
    let per_image = out.len() / recordings.len() / CHAINS.len();
    out.par_chunks_mut(per_image).enumerate().try_for_each_init(MelImagerWork::default, |work, (i, img)| {
        let (r, chain) = (i / CHAINS.len(), i % CHAINS.len());
        let rec = recordings[r].view().into_dimensionality::<ndarray::Ix2>().expect("2-d");
        imager.image(rec, &pairs[4 * chain..4 * chain + 4], work, img, width)
    })
}

/// The mel recipe prepared for recordings of one length: one chain image at a time.
pub struct MelImager<'a, T: LogFloat> {
    recipe: &'a MelRecipe,
    plan: MelPlan<'a, T>,
    n: usize,
    n_mels: usize,
    n_frames: usize,
    width: usize,
    /// The largest difference amplitude whose power spectrogram stays within `T`'s range.
    safe_amplitude: f64,
}

/// Reusable buffers of `MelImager::image`.
pub struct MelImagerWork<T> {
    signal: Vec<f32>,
    diffs: Array2<f64>,
    mel_work: MelWork<T>,
    fused: crate::bandmel::BandMelWork,
    mel: Vec<T>,
    acc: Vec<T>,
}

impl<T: Default> Default for MelImagerWork<T> {
    fn default() -> Self {
        MelImagerWork {
            signal: Vec::new(),
            diffs: Array2::zeros((0, 0)),
            mel_work: MelWork::default(),
            fused: Default::default(),
            mel: Vec::new(),
            acc: Vec::new(),
        }
    }
}

impl<'a, T: LogFloat> MelImager<'a, T> {
    /// `spec`, `n_frames` and `width` as `mel_geometry` gives them for recordings of `n` samples.
    pub fn new(spec: &'a MelSpectrogram, recipe: &'a MelRecipe, n: usize, n_frames: usize, width: usize) -> Result<Self> {
        let safe_amplitude = spec.safe_amplitude(T::MAX);
        Ok(MelImager { recipe, plan: spec.plan::<T>()?, n, n_mels: spec.n_mels(), n_frames, width, safe_amplitude })
    }

    /// The decibels of spectrograms of differences multiplied by `scale`: the same values, as
    /// power ratios (and so decibels, with `ref` the maximum) do not change when every power is
    /// multiplied by `scale^power`; `amin` and a fixed `ref` are multiplied along.
    fn scaled_db(&self, scale: f64) -> Result<PowerToDb> {
        let db = self.recipe.db;
        if scale == 1.0 {
            return Ok(db);
        }
        let factor = scale.powf(self.plan.power());
        let scaled = PowerToDb { reference: db.reference.map(|r| r * factor), amin: db.amin * factor, top_db: db.top_db };
        // With a top_db floor under the maximum, amin only matters where it lies above the floor,
        // and then its scaled value is far from underflow; otherwise it must stay a normal float.
        let exact = db.top_db.is_some() && db.reference.is_none();
        let normal = |v: f64| v == 0.0 || v >= T::MIN_NORMAL;
        ensure!(
            exact || (normal(scaled.amin) && scaled.reference.is_none_or(normal)),
            "eeg: differences up to {:e} overflow the {} power spectrogram, and with amin={:e}, ref={:?}, top_db=None \
             the decibels cannot be computed in a scaled form; scale the EEG down",
            self.safe_amplitude / scale,
            T::NAME,
            db.amin,
            db.reference
        );
        Ok(scaled)
    }

    /// The image (n_mels x width, row m at `img[m * stride..]`) of one chain of a recording
    /// (channels x n): the mean of the mapped decibels of its differences `pairs`.
    pub fn image(
        &self,
        rec: ArrayView2<T>,
        pairs: &[(usize, usize)],
        work: &mut MelImagerWork<T>,
        img: &mut [T],
        stride: usize,
    ) -> Result<()> {
        ensure!(rec.ncols() == self.n, "recordings of {} samples expected, got {}", self.n, rec.ncols());
        let (n_mels, n_frames, width) = (self.n_mels, self.n_frames, self.width);
        let recipe = self.recipe;
        let (offset, inv_scale) = (recipe.offset, 1.0 / recipe.scale);
        // The spectrograms of all differences first: each one's decibels need its maximum, and
        // their mean is then formed in one pass.
        let size = n_mels * n_frames;
        let what = "the spectrograms of an eeg chain (n_mels x frames)";
        alloc::resize(&mut work.mel, alloc::checked_len::<T>(&[pairs.len(), size], what)?, T::default(), what)?;
        // Differences too large for the power spectrogram's type are scaled by a power of two
        // (the decibels are computed with amin and ref scaled along: the same values).
        let scale;
        match (self.plan.fused(), recipe.pre.filters.is_empty()) {
            (Some(fused), true) => {
                // The fused float32 kernel straight from each difference: no float64 copy of the
                // recording's differences, no padded copy.
                let kept = recipe.pre.kept(self.n)?;
                let start = (self.n - kept) / 2;
                let what = "the differences of an eeg chain";
                alloc::resize(&mut work.signal, alloc::checked_len::<f32>(&[pairs.len(), kept], what)?, 0.0, what)?;
                let differences = |scale: f64, signal: &mut [f32]| -> Result<f64> {
                    let mut amplitude = 0.0f64;
                    for (&(a, b), out) in pairs.iter().zip(signal.chunks_mut(kept)) {
                        ensure!(a < rec.nrows() && b < rec.nrows(), "channel index out of range for {} channels", rec.nrows());
                        let (xa, xb) = (rec.row(a), rec.row(b));
                        let (xa, xb) = (xa.slice(ndarray::s![start..start + kept]), xb.slice(ndarray::s![start..start + kept]));
                        let a_max = filled_difference(xa, xb, scale, out).map_err(|e| {
                            if e.is_alloc() {
                                e
                            } else {
                                CoreError::new(format!("{e} (channels {a} and {b})"))
                            }
                        })?;
                        amplitude = amplitude.max(a_max);
                    }
                    Ok(amplitude)
                };
                scale = self.scale_for(differences(1.0, &mut work.signal)?);
                if scale != 1.0 {
                    differences(scale, &mut work.signal)?;
                }
                let mels = T::as_f32_mut(&mut work.mel).expect("the fused path is planned for f32 only");
                for (signal, mel) in work.signal.chunks(kept).zip(mels.chunks_mut(size)) {
                    fused.run(signal, self.plan.pad(), n_frames, &mut work.fused, mel, n_frames)?;
                }
            }
            _ => {
                recipe.pre.differences_into(rec, pairs, &mut work.diffs)?;
                let diffs = work.diffs.as_slice_mut().expect("a standard array");
                scale = self.scale_for(max_abs(diffs));
                if scale != 1.0 {
                    diffs.iter_mut().for_each(|v| *v *= scale);
                }
                for (d, mel) in work.mel.chunks_mut(size).enumerate() {
                    self.plan.run_lane(work.diffs.row(d), n_frames, &mut work.mel_work, mel)?;
                }
            }
        }
        let db = self.scaled_db(scale)?;
        db.mean_mapped(&work.mel, pairs.len(), n_frames, width, offset, inv_scale, &mut work.acc, img, stride)
    }

    /// The power of two that brings differences of `amplitude` within `safe_amplitude` (1 for
    /// any ordinary EEG).
    fn scale_for(&self, amplitude: f64) -> f64 {
        scale_for(amplitude, self.safe_amplitude)
    }
}

/// The power of two (at most 1) that brings `amplitude` within `safe`.
fn scale_for(amplitude: f64, safe: f64) -> f64 {
    let needed = amplitude.is_finite() && safe > 0.0 && amplitude > safe;
    if !needed {
        return 1.0;
    }
    pow2(-(exponent(amplitude / safe) + 1).clamp(0, 1022))
}

simd_fn! {
    /// The largest magnitude of `x` (NaN ignored).
    fn max_abs(x: &[f64]) -> f64 {
        const L: usize = 8;
        let mut m = [0.0f64; L];
        let chunks = x.chunks_exact(L);
        let rest = chunks.remainder();
        for c in chunks {
            for l in 0..L {
                let v = c[l].abs();
                m[l] = if v > m[l] { v } else { m[l] };
            }
        }
        rest.iter().fold(m.iter().copied().fold(0.0, f64::max), |a, v| a.max(v.abs()))
    }
}

/// `(a - b) * scale` rounded to f32 into `out` (of a's length), NaN replaced by the mean of the
/// rest (0 if all NaN), as `Preprocessing::differences` computes it in f64; returns the largest
/// magnitude of the unscaled differences. Err for an infinite difference.
fn filled_difference<T: Real>(a: ndarray::ArrayView1<T>, b: ndarray::ArrayView1<T>, scale: f64, out: &mut [f32]) -> Result<f64> {
    let (sum, count, inf, amplitude) = match (a.as_slice(), b.as_slice()) {
        (Some(a), Some(b)) => difference_f32(a, b, scale, out),
        _ => {
            let what = "a contiguous copy of an eeg channel";
            let (a, b) = (alloc::collect(a.len(), a.iter().copied(), what)?, alloc::collect(b.len(), b.iter().copied(), what)?);
            difference_f32(&a, &b, scale, out)
        }
    };
    ensure!(!inf, "eeg contains inf; only NaN gaps are filled");
    if count < out.len() {
        replace_nan(out, if count > 0 { (sum / count as f64 * scale) as f32 } else { 0.0 });
    }
    Ok(amplitude)
}

simd_fn! {
    fn replace_nan(x: &mut [f32], fill: f32) {
        for v in x.iter_mut() {
            *v = if v.is_nan() { fill } else { *v };
        }
    }
}

simd_fn! {
    /// `out = (a - b) * scale` (computed in f64), and the sum and count of the non-NaN
    /// differences (unscaled), whether one is infinite, and their largest magnitude.
    fn difference_f32<T: Real>(a: &[T], b: &[T], scale: f64, out: &mut [f32]) -> (f64, usize, bool, f64) {
        const L: usize = 8;
        let (mut sum, mut count, mut inf, mut amp) = ([0.0; L], [0usize; L], [false; L], [0.0f64; L]);
        let n = out.len().min(a.len()).min(b.len());
        let (a, b, out) = (&a[..n], &b[..n], &mut out[..n]);
        let mut o_chunks = out.chunks_exact_mut(L);
        for ((o, a), b) in (&mut o_chunks).zip(a.chunks_exact(L)).zip(b.chunks_exact(L)) {
            for l in 0..L {
                let d = a[l].to_f64() - b[l].to_f64();
                let ok = !d.is_nan();
                sum[l] += if ok { d } else { 0.0 };
                count[l] += ok as usize;
                inf[l] |= d.abs() == f64::INFINITY;
                amp[l] = if d.abs() > amp[l] { d.abs() } else { amp[l] };
                o[l] = (d * scale) as f32;
            }
        }
        let (mut s, mut c, mut i) = (sum.iter().sum::<f64>(), count.iter().sum::<usize>(), inf.iter().any(|&x| x));
        let mut m = amp.iter().copied().fold(0.0, f64::max);
        let done = n / L * L;
        for ((o, a), b) in o_chunks.into_remainder().iter_mut().zip(&a[done..]).zip(&b[done..]) {
            let d = a.to_f64() - b.to_f64();
            if !d.is_nan() {
                s += d;
                c += 1;
                m = m.max(d.abs());
            }
            i |= d.is_infinite();
            *o = (d * scale) as f32;
        }
        (s, c, i, m)
    }
}

/// The mel recipe's images, (..., 4, n_mels, width).
pub fn mel_images<T: LogFloat>(eeg: ArrayViewD<T>, pairs: &[(usize, usize)], recipe: &MelRecipe) -> Result<ArrayD<T>> {
    allocate(mel_shape(eeg.shape(), recipe)?, |out| mel_images_into(eeg, pairs, recipe, out))
}

/// The scipy recipe's segment count and kept frequency rows for recordings of `n` samples.
fn scipy_geometry(n: usize, recipe: &ScipyRecipe) -> Result<(usize, usize)> {
    let kept = recipe.pre.kept(n)?;
    let n_seg = recipe.spec.n_segments(kept)?;
    let n_freq = recipe.spec.n_freq();
    let rows = recipe.n_freq.unwrap_or(n_freq).min(n_freq);
    ensure!(rows >= 1, "no frequency bin is kept");
    positive(recipe.amin, "amin")?;
    Ok((n_seg, rows))
}

/// Shape of the scipy recipe's images of an EEG of `shape`: (..., 4, n_freq, n_segments).
pub fn scipy_shape(shape: &[usize], recipe: &ScipyRecipe) -> Result<Vec<usize>> {
    let (n_seg, rows) = scipy_geometry(n_samples(shape)?, recipe)?;
    Ok(images_shape(shape, rows, n_seg))
}

/// The scipy recipe's images into `out` (of `scipy_shape`).
pub fn scipy_images_into<T: Real>(eeg: ArrayViewD<T>, pairs: &[(usize, usize)], recipe: &ScipyRecipe, out: &mut [T]) -> Result<()> {
    let (n_seg, rows) = scipy_geometry(n_samples(eeg.shape())?, recipe)?;
    let spec = &recipe.spec;
    let n_freq = spec.n_freq();
    let amin = recipe.amin;
    // The fast log takes normal values only.
    let normal_amin = amin >= f64::MIN_POSITIVE;
    let (ln_amin, safe) = (amin.ln(), spec.safe_amplitude());
    let init = || (Vec::new(), Vec::new(), Vec::new());
    chain_images_into(&eeg, pairs, &recipe.pre, out, init, |(logs, acc, scaled): &mut (Vec<f64>, Vec<f64>, Vec<f64>), diffs, chain, img| {
        let what = "the log spectrograms of an eeg chain";
        alloc::resize(logs, alloc::checked_len::<f64>(&[n_seg, n_freq], what)?, 0.0, what)?;
        alloc::resize(acc, alloc::checked_len::<f64>(&[rows, n_seg], what)?, 0.0, what)?;
        acc.fill(0.0);
        let chain_rows = (4 * chain..4 * chain + 4).map(|d| diffs.row(d));
        // Differences whose power would overflow float64 are scaled by a power of two k, and
        // ln(max(p, amin)) = max(ln(k^2 p) - ln(k^2), ln(amin)).
        let k = scale_for(chain_rows.map(|r| max_abs(r.as_slice().expect("rows of a standard array"))).fold(0.0, f64::max), safe);
        for d in 0..4 {
            let row = diffs.row(4 * chain + d);
            let signal = row.as_slice().expect("rows of a standard array");
            if k == 1.0 {
                spec.segments_into(signal, logs, |p| {
                    let v = p.max(amin);
                    if normal_amin {
                        v.ln_normal()
                    } else {
                        v.ln()
                    }
                })?;
            } else {
                alloc::clear_for(scaled, signal.len(), "a scaled difference of eeg channels")?;
                scaled.extend(signal.iter().map(|v| v * k));
                let shift = 2.0 * k.ln();
                spec.segments_into(scaled, logs, |p| (p.ln() - shift).max(ln_amin))?;
            }
            for s in 0..n_seg {
                for f in 0..rows {
                    acc[f * n_seg + s] += logs[s * n_freq + f];
                }
            }
        }
        for (o, a) in img.iter_mut().zip(acc.iter()) {
            *o = T::from_f64(a / 4.0);
        }
        Ok(())
    })
}

/// The scipy recipe's images, (..., 4, n_freq, n_segments).
pub fn scipy_images<T: Real + Default>(eeg: ArrayViewD<T>, pairs: &[(usize, usize)], recipe: &ScipyRecipe) -> Result<ArrayD<T>> {
    allocate(scipy_shape(eeg.shape(), recipe)?, |out| scipy_images_into(eeg, pairs, recipe, out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spectral::{Detrend, Scaling, Window};
    use ndarray::{Array3, ArrayView1};

    fn competition_pairs() -> Vec<(usize, usize)> {
        bipolar_pairs(&EEG_CHANNELS).unwrap()
    }

    #[test]
    fn pairs_from_names() {
        let pairs = competition_pairs();
        assert_eq!(pairs[0], (0, 4)); // Fp1 - F7
        assert_eq!(pairs[15], (14, 18)); // P4 - O2
                                         // Order and case do not matter; 10-10 aliases work.
        let mut names: Vec<String> = EEG_CHANNELS.iter().rev().map(|s| s.to_uppercase()).collect();
        names[19 - 5] = "T7".into(); // T3
        let rev = bipolar_pairs(&names).unwrap();
        assert_eq!(rev[1], (19 - 4, 19 - 5)); // F7 - T7
        let err = bipolar_pairs(&EEG_CHANNELS[..18]).unwrap_err();
        assert!(err.to_string().contains("lacks O2"), "{err}");
        let mut dup = EEG_CHANNELS.to_vec();
        dup[19] = "Fp1";
        assert!(bipolar_pairs(&dup).unwrap_err().to_string().contains("more than once"));
    }

    #[test]
    fn montage_is_the_difference_of_named_channels() {
        let eeg = Array3::from_shape_fn((2, 20, 5), |(b, c, t)| (b * 100 + c * 10 + t) as f32);
        let m = bipolar_montage(eeg.view().into_dyn(), &competition_pairs()).unwrap();
        assert_eq!(m.shape(), &[2, 16, 5]);
        // Fp1 - F7 = channel 0 - channel 4 = -40 everywhere.
        assert!(m.slice(ndarray::s![.., 0, ..]).iter().all(|&v| v == -40.0));
        assert!(bipolar_montage(eeg.view().into_dyn(), &[(0, 20)]).is_err());
    }

    #[test]
    fn differences_fill_nan_with_the_mean_and_crop_the_middle() {
        let mut eeg = Array2::<f64>::zeros((20, 12));
        for t in 0..12 {
            eeg[[0, t]] = t as f64; // Fp1
        }
        eeg[[0, 5]] = f64::NAN;
        eeg.row_mut(11).fill(f64::NAN); // Fp2: its differences are all NaN
        let pre = Preprocessing { n_samples: Some(8), filters: vec![] };
        let d = pre.differences(eeg.view(), &competition_pairs()).unwrap();
        assert_eq!(d.dim(), (16, 8));
        // Middle 8 of 12: samples 2..10; the NaN at 5 becomes the mean of the rest.
        let mean = (2 + 3 + 4 + 6 + 7 + 8 + 9) as f64 / 7.0;
        assert_eq!(d.row(0).to_vec(), vec![2.0, 3.0, 4.0, mean, 6.0, 7.0, 8.0, 9.0]);
        assert!(d.row(8).iter().all(|&v| v == 0.0));
        assert!(pre.kept(7).is_err());
        eeg[[4, 3]] = f64::INFINITY;
        assert!(pre.differences(eeg.view(), &competition_pairs()).is_err());
    }

    fn noisy_eeg(n: usize) -> Array2<f64> {
        Array2::from_shape_fn((20, n), |(c, t)| ((t * (c + 3)) as f64 * 0.013).sin() * 50.0 + ((t * 7 + c) % 11) as f64)
    }

    #[test]
    fn mel_images_average_the_chain_of_single_spectrograms() {
        let eeg = noisy_eeg(2100);
        let recipe = crate::testing::short_mel_recipe();
        let out = mel_images(eeg.view().into_dyn(), &competition_pairs(), &recipe).unwrap();
        // hop 2000/256 = 7: 1 + 2000/7 = 286 frames, cropped to 256.
        assert_eq!(out.shape(), &[4, 128, 256]);
        // Chain RL (index 2) from its four differences, one at a time.
        let diffs = recipe.pre.differences(eeg.view(), &competition_pairs()).unwrap();
        let spec = (recipe.spec)(2000).unwrap();
        let mut expected = Array2::<f64>::zeros((128, 256));
        for d in 8..12 {
            let mel = spec.compute(diffs.row(d).into_dyn()).unwrap();
            let mut db = vec![0.0; mel.len()];
            recipe.db.apply(mel.as_slice().unwrap(), &mut db);
            let db = Array2::from_shape_vec((128, 286), db).unwrap();
            expected += &((&db.slice(ndarray::s![.., ..256]) + 40.0) / 40.0 / 4.0);
        }
        let got = out.index_axis(Axis(0), 2);
        for (a, b) in got.iter().zip(expected.iter()) {
            assert!((a - b).abs() < 1e-9, "{a} vs {b}");
        }
        assert!(out.iter().all(|v| (-1.0..=1.5).contains(v)));
    }

    #[test]
    fn scipy_images_are_chain_means_of_log_power() {
        let eeg = noisy_eeg(1000);
        let spec = Spectrogram::new(200.0, &Window::Tukey(0.25), 128, 64, 256, Detrend::Constant, Scaling::Density).unwrap();
        let recipe = ScipyRecipe { pre: Preprocessing::default(), spec: spec.clone(), amin: 1e-10, n_freq: Some(60) };
        let out = scipy_images(eeg.view().into_dyn(), &competition_pairs(), &recipe).unwrap();
        assert_eq!(out.shape(), &[4, 60, 14]);
        let diffs = recipe.pre.differences(eeg.view(), &competition_pairs()).unwrap();
        let mut expected = Array2::<f64>::zeros((60, 14));
        for d in 0..4 {
            let s = spec.compute(diffs.row(d).into_dyn()).unwrap(); // (14, 129)
            let s2 = s.into_dimensionality::<ndarray::Ix2>().unwrap();
            expected += &(s2.slice(ndarray::s![.., ..60]).t().mapv(|v| v.max(1e-10).ln()) / 4.0);
        }
        for (a, b) in out.index_axis(Axis(0), 0).iter().zip(expected.iter()) {
            assert!((a - b).abs() < 1e-9, "{a} vs {b}");
        }
    }

    #[test]
    fn recipes_refuse_short_recordings() {
        let eeg = noisy_eeg(1500);
        let err = mel_images(eeg.view().into_dyn(), &competition_pairs(), &crate::testing::short_mel_recipe()).unwrap_err();
        assert!(err.to_string().contains("fewer than n_samples=2000"), "{err}");
        let sos = Sos::new(ndarray::array![[0.5, 0.5, 0.0, 1.0, -0.2, 0.0]].view()).unwrap();
        let pre = Preprocessing { n_samples: None, filters: vec![sos] };
        assert!(pre.kept(6).is_err() && pre.kept(7).is_ok());
        let flat = ArrayView1::from(&[1.0f64; 3][..]);
        assert!(bipolar_montage(flat.into_dyn(), &[(0, 1)]).is_err());
    }

    #[test]
    fn differences_beyond_the_power_range_are_scaled() {
        // float32 EEG times 1e18 (and f64 times 1e200): power spectrograms beyond their type's
        // range, the same decibel images (ref = max) as the unscaled EEG.
        let eeg = noisy_eeg(2100);
        let pairs = competition_pairs();
        let recipe = crate::testing::short_mel_recipe();
        let eeg32 = eeg.mapv(|v| v as f32);
        let expected32 = mel_images(eeg32.view().into_dyn(), &pairs, &recipe).unwrap();
        let loud32 = eeg.mapv(|v| (v * 1e18) as f32);
        let got32 = mel_images(loud32.view().into_dyn(), &pairs, &recipe).unwrap();
        for (a, b) in got32.iter().zip(expected32.iter()) {
            // float32 rounding of the cancellations in bins far below the peak (as for the parity
            // with the public recipe, 1e-4).
            assert!(a.is_finite() && (a - b).abs() <= 1e-4, "{a} vs {b}");
        }
        let expected = mel_images(eeg.view().into_dyn(), &pairs, &recipe).unwrap();
        let got = mel_images(eeg.mapv(|v| v * 1e200).view().into_dyn(), &pairs, &recipe).unwrap();
        for (a, b) in got.iter().zip(expected.iter()) {
            assert!((a - b).abs() <= 1e-9, "{a} vs {b}");
        }
        // Without a floor the decibels cannot be scaled exactly where amin underflows: refused.
        let mut no_floor = recipe.clone();
        no_floor.db = PowerToDb::new(None, 1e-10, None).unwrap();
        let err = mel_images(eeg.mapv(|v| v * 1e300).view().into_dyn(), &pairs, &no_floor).unwrap_err();
        assert!(err.to_string().contains("overflow the float64 power spectrogram"), "{err}");
        mel_images(eeg.view().into_dyn(), &pairs, &no_floor).unwrap();
        // The scipy recipe: log power shifts by 2 ln(k).
        let spec = Spectrogram::new(200.0, &Window::Tukey(0.25), 128, 64, 256, Detrend::Linear, Scaling::Density).unwrap();
        let recipe = ScipyRecipe { pre: Preprocessing::default(), spec, amin: 1e-10, n_freq: Some(60) };
        let base = scipy_images(eeg.view().into_dyn(), &pairs, &recipe).unwrap();
        let loud = scipy_images(eeg.mapv(|v| v * 1e300).view().into_dyn(), &pairs, &recipe).unwrap();
        let shift = 2.0 * 1e300f64.ln();
        for (a, b) in loud.iter().zip(base.iter()) {
            assert!((a - shift - b).abs() <= 1e-9 * shift, "{a} vs {b} + {shift}");
        }
        assert_eq!(scale_for(10.0, 100.0), 1.0);
        assert_eq!(scale_for(1000.0, 100.0), 0.0625);
        assert_eq!(scale_for(f64::NAN, 100.0), 1.0);
    }

    #[test]
    fn zero_strided_batches_beyond_memory_are_allocation_errors() {
        use ndarray::ShapeBuilder;
        let one = [0.0f32];
        let huge =
            ArrayViewD::from_shape(ndarray::IxDyn(&[1 << 30, 1 << 20, 20, 16]).strides(ndarray::IxDyn(&[0, 0, 0, 0])), &one[..]).unwrap();
        let err = bipolar_montage(huge.view(), &competition_pairs()).unwrap_err();
        assert!(err.is_alloc(), "{err}");
        let err = mel_images_into(huge, &competition_pairs(), &crate::testing::short_mel_recipe(), &mut []).unwrap_err();
        assert!(err.to_string().contains("fewer than n_samples") || err.is_alloc(), "{err}");
        let err = leading(
            &ArrayViewD::from_shape(ndarray::IxDyn(&[1 << 38, 1 << 20, 20, 1]).strides(ndarray::IxDyn(&[0; 4])), &one[..]).unwrap(),
        );
        assert!(err.unwrap_err().is_alloc());
    }
}
