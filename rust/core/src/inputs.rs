//! Model inputs from raw windows, one sample at a time: each source's four 128 x 256 tiles are
//! computed straight into their place in the output and normalized there, while they are still
//! in cache. Nothing of the size of the batch is allocated besides the output.
//!
//! Sources (chain order LL, LP, RL, RP, as `montage::CHAINS`):
//! - Kaggle: a (4, F, T) window of the Kaggle spectrogram, regions reordered by `order`,
//!   `log(clip(nan_to_num(x)))` (`transform::ClipLog`), normalized over all of its values, then
//!   its F rows centred in the tile's 128 (zero rows around them) and its T frames cropped to
//!   the middle 256.
//! - EEG: a (20, N) window through the mel recipe (`montage::MelImager`), images of 128 x 256.
//!
//! Layouts of one sample's output: `Channels` (4 G, 128, 256), source g's chain c in channel
//! 4 g + c; `Stack` (1, 512, 256 G), chain c in rows 128 c.., source g in columns 256 g...

use crate::alloc;
use crate::ensure;
use crate::error::{normal_eps, CoreError, Result};
use crate::montage::{self, MelImager, MelImagerWork, MelRecipe};
use crate::simd::simd_fn;
use crate::transform::{ClipLog, ClipLogFloat};
use ndarray::{ArrayView3, ArrayView4, Axis};
use rayon::prelude::*;

pub const TILE_ROWS: usize = 128;
pub const TILE_COLS: usize = 256;
const CHAINS: usize = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    Channels,
    Stack,
}

impl Layout {
    pub fn from_name(name: &str) -> Result<Layout> {
        match name {
            "channels" => Ok(Layout::Channels),
            "stack" => Ok(Layout::Stack),
            _ => Err(crate::error::CoreError::new(format!("layout must be 'channels' or 'stack', got {name:?}"))),
        }
    }

    /// (C, H, W) of one sample with `groups` sources.
    pub fn shape(self, groups: usize) -> [usize; 3] {
        match self {
            Layout::Channels => [CHAINS * groups, TILE_ROWS, TILE_COLS],
            Layout::Stack => [1, CHAINS * TILE_ROWS, groups * TILE_COLS],
        }
    }

    /// Offset of tile (source g, chain c) in a sample's output, and its row stride.
    fn tile(self, groups: usize, g: usize, c: usize) -> (usize, usize) {
        match self {
            Layout::Channels => ((CHAINS * g + c) * TILE_ROWS * TILE_COLS, TILE_COLS),
            Layout::Stack => {
                let stride = groups * TILE_COLS;
                (c * TILE_ROWS * stride + g * TILE_COLS, stride)
            }
        }
    }
}

/// How each source is standardized.
#[derive(Debug, Clone, PartialEq)]
pub enum Normalization {
    /// Each sample's source by its own mean and population std: `(x - mean) / (std + eps)` in
    /// f64, as `transform::instance_normalize`.
    Instance { eps: f64 },
    /// One (mean, std) per source, in source order: `(x - mean) / std` in f32, as numpy
    /// computes it for a float32 array and float32 statistics.
    Fixed(Vec<(f64, f64)>),
}

/// The Kaggle source's recipe.
#[derive(Debug, Clone, Copy)]
pub struct KaggleRecipe {
    /// Region of the window that goes to chain c.
    pub order: [usize; 4],
    pub clip: ClipLog,
}

/// One source's raw windows, batch first.
pub enum Source<'a> {
    Kaggle(ArrayView4<'a, f32>, KaggleRecipe),
    Eeg(ArrayView3<'a, f32>, &'a MelRecipe, &'a [(usize, usize)]),
}

impl Source<'_> {
    fn batch(&self) -> usize {
        match self {
            Source::Kaggle(x, _) => x.len_of(Axis(0)),
            Source::Eeg(x, _, _) => x.len_of(Axis(0)),
        }
    }
}

/// The model inputs of a batch into `out` (batch x `layout.shape(sources.len())`).
pub fn build_into(sources: &[Source<'_>], layout: Layout, norm: &Normalization, out: &mut [f32]) -> Result<()> {
    ensure!(!sources.is_empty(), "sources must name at least one source");
    let batch = sources[0].batch();
    ensure!(sources.iter().all(|s| s.batch() == batch), "the eeg and kaggle windows of sources need the same batch size");
    let groups = sources.len();
    let per_sample: usize = layout.shape(groups).iter().product();
    ensure!(out.len() == batch * per_sample, "out has {} elements, {batch} samples need {}", out.len(), batch * per_sample);
    match norm {
        Normalization::Instance { eps } => {
            normal_eps(*eps, "eps")?;
        }
        Normalization::Fixed(stats) => {
            ensure!(stats.len() == groups, "stats must hold one (mean, std) pair per source ({groups}), got {}", stats.len());
            for (g, &(mean, std)) in stats.iter().enumerate() {
                // Applied in float32: both must be float32 values, the std a normal positive one
                // (a std that rounds to 0 or a subnormal would turn every value into inf).
                ensure!(mean.is_finite() && (mean as f32).is_finite(), "stats[{g}]: the mean must be finite in float32, got {mean:e}");
                ensure!(
                    std.is_finite() && std >= f32::MIN_POSITIVE as f64 && (std as f32).is_finite(),
                    "stats[{g}]: the std must be a positive normal float32 (between {:e} and {:e}), got {std:e}",
                    f32::MIN_POSITIVE,
                    f32::MAX
                );
            }
        }
    }
    // Everything that depends on the window sizes only, prepared once.
    let mut specs = Vec::new();
    for s in sources {
        match s {
            Source::Kaggle(x, recipe) => {
                let (_, regions, rows, cols) = x.dim();
                ensure!(
                    recipe.order.iter().all(|&r| r < regions),
                    "kaggle windows have {regions} regions; kaggle_order {:?} is out of range",
                    recipe.order
                );
                ensure!(
                    rows <= TILE_ROWS && cols >= TILE_COLS,
                    "kaggle windows must have at most {TILE_ROWS} rows and at least {TILE_COLS} frames, got {rows} x {cols}"
                );
                specs.push(None);
            }
            Source::Eeg(x, recipe, pairs) => {
                ensure!(pairs.len() == montage::BIPOLAR.len(), "the montage needs {} channel pairs", montage::BIPOLAR.len());
                let n = x.len_of(Axis(2));
                let geometry = montage::mel_geometry(n, recipe)?;
                ensure!(
                    geometry.0.n_mels() == TILE_ROWS && geometry.2 == TILE_COLS,
                    "eeg_recipe gives {} x {} images, the tiles are {TILE_ROWS} x {TILE_COLS}",
                    geometry.0.n_mels(),
                    geometry.2
                );
                specs.push(Some(geometry));
            }
        }
    }
    let imagers = sources
        .iter()
        .zip(&specs)
        .map(|(s, spec)| match (s, spec) {
            (Source::Eeg(x, recipe, _), Some((spec, n_frames, width))) => {
                Ok(Some(MelImager::new(spec, recipe, x.len_of(Axis(2)), *n_frames, *width)?))
            }
            _ => Ok(None),
        })
        .collect::<Result<Vec<_>>>()?;
    out.par_chunks_mut(per_sample).enumerate().try_for_each_init(Work::default, |work, (b, block)| {
        for (g, source) in sources.iter().enumerate() {
            let stats = match norm {
                Normalization::Instance { .. } => None,
                Normalization::Fixed(s) => Some(s[g]),
            };
            match source {
                Source::Kaggle(x, recipe) => kaggle_tiles(x.index_axis(Axis(0), b), recipe, layout, groups, g, stats, norm, work, block)
                    .map_err(|e| e.context(format!("sample {b}")))?,
                Source::Eeg(x, _, pairs) => {
                    let imager = imagers[g].as_ref().expect("prepared for every EEG source");
                    let rec = x.index_axis(Axis(0), b);
                    for c in 0..CHAINS {
                        let (offset, stride) = layout.tile(groups, g, c);
                        imager.image(rec, &pairs[4 * c..4 * c + 4], &mut work.eeg, &mut block[offset..], stride)?;
                    }
                    let (mean, scale) = match stats {
                        Some(s) => s,
                        None => instance_stats(layout, groups, g, block, norm).map_err(|e| e.context(format!("sample {b}, source {g}")))?,
                    };
                    for c in 0..CHAINS {
                        let (offset, stride) = layout.tile(groups, g, c);
                        for row in block[offset..].chunks_mut(stride).take(TILE_ROWS) {
                            standardize(&mut row[..TILE_COLS], mean, scale, stats.is_some());
                        }
                    }
                }
            }
        }
        Ok(())
    })
}

#[derive(Default)]
struct Work {
    eeg: MelImagerWork<f32>,
    logs: Vec<f32>,
}

/// (mean, std + eps) of source g's four tiles.
fn instance_stats(layout: Layout, groups: usize, g: usize, block: &[f32], norm: &Normalization) -> Result<(f64, f64)> {
    let mut acc = Sums::default();
    let (first, _) = layout.tile(groups, g, 0);
    let shift = rough_mean(&block[first..first + TILE_COLS]);
    for c in 0..CHAINS {
        let (offset, stride) = layout.tile(groups, g, c);
        for row in block[offset..].chunks(stride).take(TILE_ROWS) {
            acc.add(sums(&row[..TILE_COLS], shift));
        }
    }
    acc.checked_mean_scale(norm)
}

/// Source g's tiles of one Kaggle window (regions x rows x frames).
#[allow(clippy::too_many_arguments)]
fn kaggle_tiles(
    x: ArrayView3<'_, f32>,
    recipe: &KaggleRecipe,
    layout: Layout,
    groups: usize,
    g: usize,
    stats: Option<(f64, f64)>,
    norm: &Normalization,
    work: &mut Work,
    block: &mut [f32],
) -> Result<()> {
    let (_, rows, cols) = x.dim();
    let size = rows * cols;
    let what = "the logs of a kaggle window";
    alloc::resize(&mut work.logs, alloc::checked_len::<f32>(&[CHAINS, size], what)?, 0.0, what)?;
    let mut acc = Sums::default();
    for (c, logs) in work.logs.chunks_mut(size).enumerate() {
        let region = x.index_axis(Axis(0), recipe.order[c]);
        let shift = (c > 0).then_some(acc.shift as f32);
        match region.as_slice() {
            Some(v) => acc.add(clip_log_sums(&recipe.clip, v, logs, shift)),
            None => {
                let region = alloc::collect(region.len(), region.iter().copied(), "a contiguous copy of a kaggle window")?;
                acc.add(clip_log_sums(&recipe.clip, &region, logs, shift))
            }
        }
    }
    let (mean, scale) = match stats {
        Some(s) => s,
        None => acc.checked_mean_scale(norm).map_err(|e| e.context(format!("source {g} (kaggle)")))?,
    };
    let top = (TILE_ROWS - rows) / 2;
    let first = (cols - TILE_COLS) / 2;
    for (c, logs) in work.logs.chunks(size).enumerate() {
        let (offset, stride) = layout.tile(groups, g, c);
        for (r, row) in block[offset..].chunks_mut(stride).take(TILE_ROWS).enumerate() {
            let row = &mut row[..TILE_COLS];
            if (top..top + rows).contains(&r) {
                let src = &logs[(r - top) * cols + first..][..TILE_COLS];
                row.copy_from_slice(src);
                standardize(row, mean, scale, stats.is_some());
            } else {
                // Padding is the normalized mean.
                row.fill(0.0);
            }
        }
    }
    Ok(())
}

/// Sums of the deviations from `shift` and of their squares, and the count of values.
#[derive(Default, Clone, Copy)]
struct Sums {
    shift: f64,
    sum: f64,
    sq: f64,
    n: usize,
}

impl Sums {
    /// Adds sums taken with the same shift.
    fn add(&mut self, other: Sums) {
        debug_assert!(self.n == 0 || self.shift == other.shift, "one shift for all parts");
        self.shift = other.shift;
        self.sum += other.sum;
        self.sq += other.sq;
        self.n += other.n;
    }

    /// Mean and `std + eps`, which must be something to divide by.
    fn checked_mean_scale(&self, norm: &Normalization) -> Result<(f64, f64)> {
        let (mean, scale) = self.mean_scale(norm);
        if !(scale > 0.0 && (1.0 / scale).is_finite() && mean.is_finite()) {
            return Err(CoreError::new(format!(
                "the values are constant (or their spread underflows) and eps is 0: their std {scale:e} cannot be divided by"
            )));
        }
        Ok((mean, scale))
    }

    /// Mean and `std + eps` (population std).
    fn mean_scale(&self, norm: &Normalization) -> (f64, f64) {
        let eps = match norm {
            Normalization::Instance { eps } => *eps,
            Normalization::Fixed(_) => 0.0,
        };
        let n = self.n.max(1) as f64;
        let dev = self.sum / n;
        let var = (self.sq / n - dev * dev).max(0.0);
        (self.shift + dev, var.sqrt() + eps)
    }
}

simd_fn! {
    /// Sums of `x - shift` and of its square, and the count. Blocks are summed in f32 lanes (which
    /// vectorize, unlike widening to f64) and the block sums in f64; with `shift` near the mean the
    /// deviations are small, so the variance does not cancel.
    fn sums(x: &[f32], shift: f32) -> Sums {
        const L: usize = 16;
        const BLOCK: usize = 1024;
        let mut total = Sums { shift: shift as f64, ..Sums::default() };
        for block in x.chunks(BLOCK) {
            // Two lane sets per sum: independent chains, so the adds do not wait on each other.
            let (mut s, mut q) = ([[0.0f32; L]; 2], [[0.0f32; L]; 2]);
            let chunks = block.chunks_exact(2 * L);
            let rest = chunks.remainder();
            for c in chunks {
                for h in 0..2 {
                    for l in 0..L {
                        let d = c[h * L + l] - shift;
                        s[h][l] += d;
                        q[h][l] += d * d;
                    }
                }
            }
            for (l, &v) in rest.iter().enumerate() {
                let d = v - shift;
                s[l / L][l % L] += d;
                q[l / L][l % L] += d * d;
            }
            total.sum += s.iter().flatten().map(|&v| v as f64).sum::<f64>();
            total.sq += q.iter().flatten().map(|&v| v as f64).sum::<f64>();
        }
        total.n = x.len();
        total
    }
}

simd_fn! {
    /// `out = log(clip(nan_to_num(x)))`, and the sums of `out`.
    fn clip_log_sums(op: &ClipLog, x: &[f32], out: &mut [f32], shift: Option<f32>) -> Sums {
        for (o, &v) in out.iter_mut().zip(x) {
            *o = v.clip_log(op);
        }
        sums(out, shift.unwrap_or_else(|| rough_mean(out)))
    }
}

/// The mean of the first few values: a shift that keeps the deviations small.
fn rough_mean(x: &[f32]) -> f32 {
    let head = &x[..x.len().min(256)];
    (head.iter().map(|&v| v as f64).sum::<f64>() / head.len().max(1) as f64) as f32
}

simd_fn! {
    /// `x = (x - mean) / scale`: in f32 for fixed statistics (numpy's float32 arithmetic), else in
    /// f64 as `transform::instance_normalize`.
    fn standardize(x: &mut [f32], mean: f64, scale: f64, float32: bool) {
        if float32 {
            let (mean, scale) = (mean as f32, scale as f32);
            for v in x.iter_mut() {
                *v = (*v - mean) / scale;
            }
        } else {
            let inv = 1.0 / scale;
            for v in x.iter_mut() {
                *v = ((*v as f64 - mean) * inv) as f32;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::montage::{bipolar_pairs, mel_images, EEG_CHANNELS};
    use crate::transform::{clip_log, instance_normalize};
    use ndarray::{s, Array2, Array3, Array4};

    fn kaggle_recipe() -> KaggleRecipe {
        KaggleRecipe { order: [0, 2, 1, 3], clip: ClipLog::new::<f32>((-6f64).exp(), 10f64.exp(), -1.0).unwrap() }
    }

    fn windows(batch: usize) -> (Array3<f32>, Array4<f32>) {
        let eeg = Array3::from_shape_fn((batch, 20, 2100), |(b, c, t)| {
            let v = ((t * (c + 3 + b)) as f32 * 0.013).sin() * 50.0 + ((t * 7 + c) % 11) as f32;
            if (500..520).contains(&t) && c < 5 {
                f32::NAN
            } else {
                v
            }
        });
        let kaggle = Array4::from_shape_fn((batch, 4, 100, 300), |(b, r, f, t)| {
            if t == 150 {
                f32::NAN
            } else {
                (((b + 1) * (r + 2) * (f + 1) * (t + 3)) % 997) as f32 * 0.37
            }
        });
        (eeg, kaggle)
    }

    /// The same inputs the slow way: whole sources, then normalization, then placement.
    fn reference(eeg: &Array3<f32>, kaggle: &Array4<f32>, layout: Layout) -> Vec<f32> {
        let pairs = bipolar_pairs(&EEG_CHANNELS).unwrap();
        let batch = eeg.dim().0;
        let images = mel_images(eeg.view().into_dyn(), &pairs, &crate::testing::short_mel_recipe()).unwrap();
        let logs = clip_log(kaggle.select(Axis(1), &[0, 2, 1, 3]).view().into_dyn(), (-6f64).exp(), 10f64.exp(), -1.0).unwrap();
        let e = instance_normalize(images.view().into_shape_with_order((batch, 4 * 128 * 256)).unwrap(), 1e-6).unwrap();
        let k = instance_normalize(logs.view().into_shape_with_order((batch, 4 * 100 * 300)).unwrap(), 1e-6).unwrap();
        let [c, h, w] = layout.shape(2);
        let mut out = vec![f32::NAN; batch * c * h * w];
        for b in 0..batch {
            let block = &mut out[b * c * h * w..(b + 1) * c * h * w];
            for ch in 0..4 {
                let (ko, stride) = layout.tile(2, 0, ch);
                let (eo, _) = layout.tile(2, 1, ch);
                for r in 0..128 {
                    for t in 0..256 {
                        block[eo + r * stride + t] = e[[b, (ch * 128 + r) * 256 + t]];
                        block[ko + r * stride + t] = if (14..114).contains(&r) { k[[b, (ch * 100 + r - 14) * 300 + t + 22]] } else { 0.0 };
                    }
                }
            }
        }
        out
    }

    #[test]
    fn both_sources_equal_the_step_by_step_pipeline() {
        let (eeg, kaggle) = windows(3);
        let pairs = bipolar_pairs(&EEG_CHANNELS).unwrap();
        let recipe = crate::testing::short_mel_recipe();
        for layout in [Layout::Stack, Layout::Channels] {
            let sources = [Source::Kaggle(kaggle.view(), kaggle_recipe()), Source::Eeg(eeg.view(), &recipe, &pairs)];
            let mut out = vec![f32::NAN; 3 * 512 * 512];
            build_into(&sources, layout, &Normalization::Instance { eps: 1e-6 }, &mut out).unwrap();
            let expected = reference(&eeg, &kaggle, layout);
            for (i, (a, b)) in out.iter().zip(&expected).enumerate() {
                assert!((a - b).abs() <= 1e-4, "{layout:?} element {i}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn sums_equal_f64_sums_for_any_length() {
        for n in [0, 1, 15, 31, 32, 33, 1023, 1024, 1025, 2100, 32768 + 7] {
            let x: Vec<f32> = (0..n).map(|i| ((i * 37 % 101) as f32 * 0.13).sin() * 3.0 + 5.0).collect();
            let got = sums(&x, 5.0);
            let sum: f64 = x.iter().map(|&v| v as f64 - 5.0).sum();
            let sq: f64 = x.iter().map(|&v| (v as f64 - 5.0).powi(2)).sum();
            assert_eq!(got.n, n);
            assert!((got.sum - sum).abs() <= 1e-5 * (n as f64 + 1.0), "n={n}: {} vs {sum}", got.sum);
            assert!((got.sq - sq).abs() <= 1e-6 * sq + 1e-9, "n={n}: {} vs {sq}", got.sq);
        }
    }

    #[test]
    fn fixed_statistics_and_single_sources() {
        let (eeg, kaggle) = windows(2);
        let pairs = bipolar_pairs(&EEG_CHANNELS).unwrap();
        let recipe = crate::testing::short_mel_recipe();
        let sources = [Source::Eeg(eeg.view(), &recipe, &pairs)];
        let mut out = vec![0.0f32; 2 * 4 * 128 * 256];
        build_into(&sources, Layout::Channels, &Normalization::Fixed(vec![(0.5, 0.25)]), &mut out).unwrap();
        let images = mel_images(eeg.view().into_dyn(), &pairs, &recipe).unwrap();
        for (a, &v) in out.iter().zip(images.iter()) {
            assert_eq!(*a, (v - 0.5) / 0.25);
        }
        let sources = [Source::Kaggle(kaggle.view(), kaggle_recipe())];
        let mut out = vec![0.0f32; 2 * 512 * 256];
        build_into(&sources, Layout::Stack, &Normalization::Instance { eps: 1e-6 }, &mut out).unwrap();
        let tile = Array2::from_shape_vec((512, 256), out[..512 * 256].to_vec()).unwrap();
        assert!(tile.slice(s![0..14, ..]).iter().all(|&v| v == 0.0));
        assert!(tile.slice(s![114..142, ..]).iter().all(|&v| v == 0.0));
        // Errors: mismatched batches, bad statistics, wrong output size.
        let (eeg3, _) = windows(3);
        let both = [Source::Kaggle(kaggle.view(), kaggle_recipe()), Source::Eeg(eeg3.view(), &recipe, &pairs)];
        assert!(build_into(&both, Layout::Stack, &Normalization::Instance { eps: 1e-6 }, &mut vec![0.0; 3 * 512 * 512]).is_err());
        let one = [Source::Kaggle(kaggle.view(), kaggle_recipe())];
        assert!(build_into(&one, Layout::Stack, &Normalization::Fixed(vec![(0.0, 0.0)]), &mut out).is_err());
        assert!(build_into(&one, Layout::Stack, &Normalization::Instance { eps: 1e-6 }, &mut out[1..]).is_err());
    }

    #[test]
    fn statistics_that_float32_cannot_divide_by_are_refused() {
        let (_, kaggle) = windows(1);
        let one = [Source::Kaggle(kaggle.view(), kaggle_recipe())];
        let mut out = vec![0.0f32; 512 * 256];
        for (stats, needle) in [
            ((0.0, 1e-300), "stats[0]: the std must be a positive normal float32"),
            ((0.0, 1e-40), "stats[0]: the std must be a positive normal float32"),
            ((0.0, 1e39), "stats[0]: the std must be a positive normal float32"),
            ((1e39, 1.0), "stats[0]: the mean must be finite in float32"),
            ((f64::NAN, 1.0), "stats[0]: the mean must be finite"),
        ] {
            let err = build_into(&one, Layout::Stack, &Normalization::Fixed(vec![stats]), &mut out).unwrap_err();
            assert!(err.to_string().starts_with(needle), "{stats:?}: {err}");
        }
        let err = build_into(&one, Layout::Stack, &Normalization::Instance { eps: 5e-324 }, &mut out).unwrap_err();
        assert!(err.to_string().starts_with("eps must be 0 or a normal"), "{err}");
        // A constant window (all NaN: every value the NaN fill) with eps 0 has nothing to divide by.
        let nan = Array4::from_elem((2, 4, 100, 300), f32::NAN);
        let src = [Source::Kaggle(nan.view(), kaggle_recipe())];
        let mut out2 = vec![0.0f32; 2 * 512 * 256];
        let err = build_into(&src, Layout::Stack, &Normalization::Instance { eps: 0.0 }, &mut out2).unwrap_err();
        assert!(err.to_string().starts_with("sample ") && err.to_string().contains("eps is 0"), "{err}");
        build_into(&src, Layout::Stack, &Normalization::Instance { eps: 1e-6 }, &mut out2).unwrap();
        assert!(out2.iter().all(|&v| v == 0.0));
    }
}
