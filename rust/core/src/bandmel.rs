//! Mel power spectrograms of short symmetric windows, with frames in SIMD lanes.
//!
//! When the window is short and the filterbank touches few bins (EEG: 127 nonzero samples of a
//! 1024-point frame, bins up to 20 Hz), a mel spectrogram is a dense product of folded frames by
//! a cos/sin basis (as `spectral::BandDft`), squared magnitudes, and a sparse filterbank. Here
//! the three are one pass: 32 consecutive frames sit in the lanes of two 16-lane vectors, each
//! basis value is broadcast against them, the power of a tile of `NR` bins is formed in
//! registers and added straight into the mel rows it feeds. Nothing is packed per product and
//! no power matrix is written.
//!
//! Frames enter the lanes without gathers because consecutive frames start `hop` samples apart:
//! with the signal laid out as `hop` rows (row r holds samples r, r + hop, r + 2 hop, ...),
//! sample `c + j` of frames t..t+32 is one contiguous run of row `(c + j) % hop`.

use crate::alloc;
use crate::ensure;
use crate::error::{CoreError, Result};
use crate::filterbank::MelFilterbank;
use crate::simd::simd_fn;
use multiversion::target::selected_target;
use std::f64::consts::PI;

/// Bins per register tile: 6 bins x 2 vectors x (cos, sin) accumulators fill 24 of the 32
/// AVX-512 registers; 102 EEG bins are exactly 17 tiles.
const NR: usize = 6;
/// Frames per panel: two 16-lane f32 vectors.
const PANEL: usize = 32;
/// The narrower panel for the last frames (one vector).
const HALF_PANEL: usize = 16;

/// Whether the running machine has the registers the kernel is written for (AVX-512); elsewhere
/// `spectral::BandDft` and a matrix product do the same work.
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Mel power spectrogram (`power` 2) of frames of a padded signal, for a window whose nonzero
/// support has odd length and is symmetric about its centre.
#[derive(Debug, Clone)]
pub struct BandMel {
    hop: usize,
    /// The window's support is centre - half ..= centre + half.
    half: usize,
    /// Index in the padded signal of frame 0's window centre.
    centre: usize,
    tiles: usize,
    n_mels: usize,
    /// [tile][j = 0..=half][NR]: w_j cos(2 pi k j / n_fft) (j = 0: the centre weight).
    basis_re: Vec<[f32; NR]>,
    /// [tile][j = 1..=half][NR]: -w_j sin(2 pi k j / n_fft).
    basis_im: Vec<[f32; NR]>,
    /// The same bases with bins contiguous ([j][tiles * NR]), for frames taken one at a time.
    by_bin_re: Vec<f32>,
    by_bin_im: Vec<f32>,
    /// (mel row, weight, first) fed by padded bin b: `feeds[feed_start[b]..feed_start[b + 1]]`;
    /// `first` marks the lowest bin of the row, which writes it instead of adding.
    feeds: Vec<(usize, f32, bool)>,
    /// Rows that no bin feeds (written as zeros).
    empty_rows: Vec<usize>,
    feed_start: Vec<usize>,
}

/// A signal with `pad` implicit zeros before it (and any number after it).
#[derive(Clone, Copy)]
struct Padded<'a> {
    x: &'a [f32],
    pad: usize,
}

impl Padded<'_> {
    #[inline(always)]
    fn get(&self, p: usize) -> f32 {
        p.checked_sub(self.pad).and_then(|i| self.x.get(i)).copied().unwrap_or(0.0)
    }
}

/// Reusable buffers of `BandMel::run`.
#[derive(Default)]
pub struct BandMelWork {
    /// The padded signal as `hop` rows.
    rows: Vec<f32>,
    /// One panel's folded frames: sums (half + 1 rows), then differences (half rows).
    folded: Vec<[f32; PANEL]>,
    /// One frame's folded samples and bin accumulators (frames taken one at a time).
    frame: Vec<f32>,
    acc: Vec<f32>,
}

impl BandMel {
    /// The plan for frames of `window.len()` samples every `hop` samples and `bank`'s bins.
    /// None if the window's support is not odd-length and symmetric (or is empty).
    pub fn new(window: &[f64], bank: &MelFilterbank, hop: usize) -> Result<Option<BandMel>> {
        let n_fft = window.len();
        ensure!(hop >= 1, "hop must be at least 1");
        ensure!(bank.n_freq() == n_fft / 2 + 1, "the filterbank has {} bins, n_fft={n_fft} gives {}", bank.n_freq(), n_fft / 2 + 1);
        let Some(first) = window.iter().position(|&w| w != 0.0) else { return Ok(None) };
        let last = window.iter().rposition(|&w| w != 0.0).expect("a nonzero exists");
        let w = &window[first..=last];
        let len = w.len();
        let wmax = w.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        if len % 2 == 0 || !(0..len / 2).all(|i| (w[i] - w[len - 1 - i]).abs() <= 1e-13 * wmax) {
            return Ok(None);
        }
        let half = len / 2;
        let band = bank.band();
        let tiles = band.len().div_ceil(NR);
        let padded_bins = tiles * NR;
        let what = "the band mel basis of win_length and n_mels' bins";
        // Angles 2 pi k j / n_fft reduced exactly by integer arithmetic, as BandDft does.
        let table = alloc::collect(n_fft, (0..n_fft).map(|m| (2.0 * PI * m as f64 / n_fft as f64).sin_cos()), what)?;
        let size = |a: usize, b: usize| alloc::checked_len::<[f32; NR]>(&[a, b], what);
        let mut basis_re = alloc::vec_of(size(tiles, half + 1)?, [0.0f32; NR], what)?;
        let mut basis_im = alloc::vec_of(size(tiles, half)?, [0.0f32; NR], what)?;
        let mut by_bin_re = alloc::vec_of(size(half + 1, padded_bins)?, 0.0f32, what)?;
        let mut by_bin_im = alloc::vec_of(size(half, padded_bins)?, 0.0f32, what)?;
        for (b, k) in band.clone().enumerate() {
            let (tile, i) = (b / NR, b % NR);
            for j in 0..=half {
                let (s, c) = table[(k * j) % n_fft];
                let re = (w[half + j] * if j == 0 { 1.0 } else { c }) as f32;
                basis_re[tile * (half + 1) + j][i] = re;
                by_bin_re[j * padded_bins + b] = re;
                if j >= 1 {
                    let im = (-w[half + j] * s) as f32;
                    basis_im[tile * half + j - 1][i] = im;
                    by_bin_im[(j - 1) * padded_bins + b] = im;
                }
            }
        }
        // Each mel row receives its bins in ascending order, as `MelFilterbank::apply` sums.
        let mut per_bin: Vec<Vec<(usize, f32, bool)>> = alloc::vec_of(padded_bins, Vec::new(), what)?;
        let n_empty = bank.filters().filter(|(_, w)| w.is_empty()).count();
        let mut empty_rows = alloc::with_capacity(n_empty, what)?;
        for (m, (start, weights)) in bank.filters().enumerate() {
            for (i, &wt) in weights.iter().enumerate() {
                let feeds = &mut per_bin[start + i - band.start];
                feeds.try_reserve(1).map_err(|_| CoreError::alloc(what, None))?;
                feeds.push((m, wt as f32, i == 0));
            }
            if weights.is_empty() {
                empty_rows.push(m);
            }
        }
        let mut feed_start = alloc::with_capacity(padded_bins + 1, what)?;
        feed_start.push(0);
        let mut feeds = alloc::with_capacity(per_bin.iter().map(Vec::len).sum(), what)?;
        for f in per_bin {
            feeds.extend(f);
            feed_start.push(feeds.len());
        }
        Ok(Some(BandMel {
            hop,
            half,
            centre: first + half,
            tiles,
            n_mels: bank.n_mels(),
            basis_re,
            basis_im,
            by_bin_re,
            by_bin_im,
            feeds,
            feed_start,
            empty_rows,
        }))
    }

    pub fn n_mels(&self) -> usize {
        self.n_mels
    }

    /// Writes the mel power of frames `t = 0..n_frames` into `out`: row m at
    /// `out[m * stride..][..n_frames]`. The signal is `x` with `pad` zeros before and after it
    /// (pass an already padded signal with `pad` 0); frame t starts at `t * hop` of it.
    #[allow(clippy::too_many_arguments)]
    pub fn run(&self, x: &[f32], pad: usize, n_frames: usize, work: &mut BandMelWork, out: &mut [f32], stride: usize) -> Result<()> {
        assert!(stride >= n_frames, "stride shorter than a row");
        assert!(n_frames == 0 || out.len() >= (self.n_mels - 1) * stride + n_frames, "output too small");
        assert!(
            n_frames == 0 || self.centre + (n_frames - 1) * self.hop + self.half < x.len() + 2 * pad,
            "signal too short for its frames"
        );
        // Every other row is written by its first bin.
        for &m in &self.empty_rows {
            out[m * stride..][..n_frames].fill(0.0);
        }
        run_frames(self, Padded { x, pad }, n_frames, work, out, stride)
    }

    /// Frames `t0..t0 + width` (width <= PANEL) of the row layout into `folded`.
    #[inline(always)]
    fn fold_panel(&self, rows: &[f32], row_len: usize, t0: usize, width: usize, folded: &mut [[f32; PANEL]]) {
        let (sums, diffs) = folded.split_at_mut(self.half + 1);
        let at = |p: usize| (p % self.hop) * row_len + p / self.hop + t0;
        sums[0][..width].copy_from_slice(&rows[at(self.centre)..][..width]);
        for j in 1..=self.half {
            let hi = &rows[at(self.centre + j)..][..width];
            let lo = &rows[at(self.centre - j)..][..width];
            fold(hi, lo, &mut sums[j][..width], &mut diffs[j - 1][..width]);
        }
    }

    /// Adds the power `pw` of padded bins `tile * NR..` for frames t0..t0 + W into `out`.
    #[inline(always)]
    fn scatter<const W: usize>(&self, tile: usize, pw: &[[f32; PANEL]; NR], t0: usize, out: &mut [f32], stride: usize) {
        for (i, p) in pw.iter().enumerate() {
            let b = tile * NR + i;
            let p: &[f32; W] = p[..W].try_into().expect("W <= PANEL");
            for &(m, wt, first) in &self.feeds[self.feed_start[b]..self.feed_start[b + 1]] {
                // Fixed widths: each row update is whole registers, no loop.
                let row: &mut [f32; W] = (&mut out[m * stride + t0..][..W]).try_into().expect("W frames");
                for (o, &v) in row.iter_mut().zip(p) {
                    *o = if first { wt * v } else { *o + wt * v };
                }
            }
        }
    }
}

simd_fn! {
    /// All frames, with the widest panels the selected target holds in registers.
    fn run_frames<'a>(bm: &BandMel, padded: Padded<'a>, n_frames: usize, work: &mut BandMelWork, out: &mut [f32], stride: usize) -> Result<()> {
        // A full panel's 24 accumulators need AVX-512's 32 registers; with 16 (AVX2, NEON) half
        // panels keep them out of memory.
        let wide = selected_target!().supports_feature_str("avx512f");
        let fma = selected_target!().supports_feature_str("fma") || selected_target!().supports_feature_str("neon");
        frames_with(bm, padded, n_frames, work, out, stride, wide, fma)
    }
}

/// Full panels (if `wide`), a half panel, then single frames.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn frames_with(
    bm: &BandMel,
    padded: Padded<'_>,
    n_frames: usize,
    work: &mut BandMelWork,
    out: &mut [f32],
    stride: usize,
    wide: bool,
    fma: bool,
) -> Result<()> {
    let what = "the band mel work space for x";
    let panel_frames = if wide {
        let full = n_frames / PANEL * PANEL;
        full + if n_frames - full >= HALF_PANEL { HALF_PANEL } else { 0 }
    } else {
        n_frames / HALF_PANEL * HALF_PANEL
    };
    if panel_frames > 0 {
        // Row r holds padded[r], padded[r + hop], ...: enough columns for every panel frame.
        let row_len = panel_frames + (bm.centre + bm.half) / bm.hop + 1;
        alloc::resize(&mut work.rows, alloc::checked_len::<f32>(&[bm.hop, row_len], what)?, 0.0, what)?;
        fill_rows(padded, bm.hop, row_len, &mut work.rows);
        alloc::resize(&mut work.folded, 2 * bm.half + 1, [0.0; PANEL], what)?;
        let mut t0 = 0;
        while t0 < panel_frames {
            let width = if wide && panel_frames - t0 >= PANEL { PANEL } else { HALF_PANEL };
            bm.fold_panel(&work.rows, row_len, t0, width, &mut work.folded);
            let (sums, diffs) = work.folded.split_at(bm.half + 1);
            for tile in 0..bm.tiles {
                let re = &bm.basis_re[tile * (bm.half + 1)..][..bm.half + 1];
                let im = &bm.basis_im[tile * bm.half..][..bm.half];
                let pw = match (width == PANEL, fma) {
                    (true, true) => power_tile::<{ PANEL / 16 }, true>(sums, diffs, re, im),
                    (true, false) => power_tile::<{ PANEL / 16 }, false>(sums, diffs, re, im),
                    (false, true) => power_tile::<{ HALF_PANEL / 16 }, true>(sums, diffs, re, im),
                    (false, false) => power_tile::<{ HALF_PANEL / 16 }, false>(sums, diffs, re, im),
                };
                if width == PANEL {
                    bm.scatter::<PANEL>(tile, &pw, t0, out, stride);
                } else {
                    bm.scatter::<HALF_PANEL>(tile, &pw, t0, out, stride);
                }
            }
            t0 += width;
        }
    }
    if panel_frames < n_frames {
        alloc::clear_for(&mut work.frame, 2 * bm.half + 1, what)?;
        alloc::clear_for(&mut work.acc, 2 * bm.tiles * NR, what)?;
    }
    for t in panel_frames..n_frames {
        single_frame(bm, padded, t, work, out, stride);
    }
    Ok(())
}

/// 16 f32 lanes, one AVX-512 register (two AVX2 or four NEON registers).
#[derive(Clone, Copy)]
struct V([f32; 16]);

impl V {
    #[inline(always)]
    fn zero() -> V {
        V([0.0; 16])
    }

    #[inline(always)]
    fn load(x: &[f32]) -> V {
        let mut r = [0.0f32; 16];
        r.copy_from_slice(&x[..16]);
        V(r)
    }

    /// `self + a * b`, fused where the target has FMA (elsewhere `mul_add` is a slow call).
    #[inline(always)]
    fn madd<const FMA: bool>(self, a: V, b: f32) -> V {
        self.madd_v::<FMA>(a, V([b; 16]))
    }

    /// `self + a * b` lane by lane.
    #[inline(always)]
    fn madd_v<const FMA: bool>(self, a: V, b: V) -> V {
        let mut r = self.0;
        for ((r, &a), &b) in r.iter_mut().zip(&a.0).zip(&b.0) {
            *r = if FMA { a.mul_add(b, *r) } else { *r + a * b };
        }
        V(r)
    }

    #[inline(always)]
    fn square(self) -> V {
        V(self.0.map(|v| v * v))
    }
}

/// `rows[r * row_len + u] = padded[r + u * hop]`. Columns wholly inside the signal go 16 at a
/// time (a 16 x hop block of the signal, transposed while it sits in L1); the rest one by one.
#[inline(always)]
fn fill_rows(padded: Padded<'_>, hop: usize, row_len: usize, rows: &mut [f32]) {
    const BLOCK: usize = 16;
    rows.fill(0.0);
    let (start, end) = (padded.pad, padded.pad + padded.x.len());
    let (first, last) = (start.div_ceil(hop), (end / hop).min(row_len));
    let mut column = |u: usize| {
        let p0 = u * hop;
        let (lo, hi) = (p0.max(start), (p0 + hop).min(end));
        for (p, &v) in (lo..hi).zip(&padded.x[lo - start..hi - start]) {
            rows[(p - p0) * row_len + u] = v;
        }
    };
    let whole = if first < last { (last - first) / BLOCK * BLOCK } else { 0 };
    (start / hop..first).chain(first + whole..row_len.min(end.div_ceil(hop))).for_each(&mut column);
    for u in (first..first + whole).step_by(BLOCK) {
        let block = &padded.x[u * hop - start..][..BLOCK * hop];
        for r in 0..hop {
            let dst: &mut [f32; BLOCK] = (&mut rows[r * row_len + u..][..BLOCK]).try_into().expect("BLOCK columns");
            for (k, d) in dst.iter_mut().enumerate() {
                *d = block[k * hop + r];
            }
        }
    }
}

/// `|X_k|^2` of `NR` bins for the first `16 * NV` lanes of a panel: the cosine sums of `sums`,
/// the sine sums of `diffs`, accumulated in registers. Lanes beyond are returned as 0.
#[inline(always)]
fn power_tile<const NV: usize, const FMA: bool>(
    sums: &[[f32; PANEL]],
    diffs: &[[f32; PANEL]],
    re_basis: &[[f32; NR]],
    im_basis: &[[f32; NR]],
) -> [[f32; PANEL]; NR] {
    let mut re = [[V::zero(); NV]; NR];
    for (s, b) in sums.iter().zip(re_basis) {
        let mut x = [V::zero(); NV];
        for v in 0..NV {
            x[v] = V::load(&s[16 * v..]);
        }
        for i in 0..NR {
            for v in 0..NV {
                re[i][v] = re[i][v].madd::<FMA>(x[v], b[i]);
            }
        }
    }
    // Squared now: the cosine sums are not needed again.
    let mut re2 = [[V::zero(); NV]; NR];
    for i in 0..NR {
        for v in 0..NV {
            re2[i][v] = re[i][v].square();
        }
    }
    let mut im = [[V::zero(); NV]; NR];
    for (d, b) in diffs.iter().zip(im_basis) {
        let mut x = [V::zero(); NV];
        for v in 0..NV {
            x[v] = V::load(&d[16 * v..]);
        }
        for i in 0..NR {
            for v in 0..NV {
                im[i][v] = im[i][v].madd::<FMA>(x[v], b[i]);
            }
        }
    }
    let mut pw = [[0.0f32; PANEL]; NR];
    for i in 0..NR {
        for v in 0..NV {
            pw[i][16 * v..16 * (v + 1)].copy_from_slice(&re2[i][v].madd_v::<FMA>(im[i][v], im[i][v]).0);
        }
    }
    pw
}

/// Frame `t` alone, its bins in the lanes.
#[inline(always)]
fn single_frame(bm: &BandMel, padded: Padded<'_>, t: usize, work: &mut BandMelWork, out: &mut [f32], stride: usize) {
    let (half, bins) = (bm.half, bm.tiles * NR);
    let c = bm.centre + t * bm.hop;
    work.frame.clear();
    let at = |p: usize| padded.get(p);
    work.frame.push(at(c));
    work.frame.extend((1..=half).map(|j| at(c + j) + at(c - j)));
    work.frame.extend((1..=half).map(|j| at(c + j) - at(c - j)));
    work.acc.clear();
    work.acc.resize(2 * bins, 0.0);
    let (re, im) = work.acc.split_at_mut(bins);
    for (j, &s) in work.frame[..=half].iter().enumerate() {
        axpy(re, s, &bm.by_bin_re[j * bins..][..bins]);
    }
    for (j, &d) in work.frame[half + 1..].iter().enumerate() {
        axpy(im, d, &bm.by_bin_im[j * bins..][..bins]);
    }
    for b in 0..bins {
        let p = re[b] * re[b] + im[b] * im[b];
        for &(m, wt, first) in &bm.feeds[bm.feed_start[b]..bm.feed_start[b + 1]] {
            let o = &mut out[m * stride + t];
            *o = if first { wt * p } else { *o + wt * p };
        }
    }
}

/// `sums = hi + lo`, `diffs = hi - lo`.
#[inline(always)]
fn fold(hi: &[f32], lo: &[f32], sums: &mut [f32], diffs: &mut [f32]) {
    for (((s, d), &h), &l) in sums.iter_mut().zip(diffs.iter_mut()).zip(hi).zip(lo) {
        *s = h + l;
        *d = h - l;
    }
}

/// `y += a * x`.
#[inline(always)]
fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
    for (y, &x) in y.iter_mut().zip(x) {
        *y += a * x;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mel::{MelSpectrogram, MelWork};
    use crate::spectral::{padded_window, Framing, PadMode, Window};
    use crate::testing::noise;

    fn check(n: usize, hop: usize, win: usize, n_fft: usize, n_mels: usize, fmax: f64) {
        let bank = MelFilterbank::new(200.0, n_fft, n_mels, 0.0, fmax, false, true).unwrap();
        let framing = Framing::new(n_fft, hop, true, PadMode::Constant).unwrap();
        let spec = MelSpectrogram::new(framing, &Window::Hann, Some(win), bank.clone(), 2.0).unwrap();
        let w = padded_window(&Window::Hann, win, n_fft).unwrap();
        let bm = BandMel::new(&w, &bank, hop).unwrap().expect("Hann of even length: odd support");
        let x: Vec<f64> = noise(n, 7).iter().map(|v| v * 30.0).collect();
        let padded64 = framing.extend::<f64, f64>(ndarray::ArrayView1::from(&x)).unwrap();
        let padded32: Vec<f32> = padded64.iter().map(|&v| v as f32).collect();
        let n_frames = framing.n_frames(n).unwrap();
        // The float64 band path as the reference.
        let mut expected = vec![0.0f64; n_mels * n_frames];
        spec.plan::<f64>().unwrap().run(&padded64, n_frames, &mut MelWork::default(), &mut expected).unwrap();
        let stride = n_frames + 3;
        let mut got = vec![f32::NAN; n_mels * stride];
        bm.run(&padded32, 0, n_frames, &mut BandMelWork::default(), &mut got, stride).unwrap();
        // The same from the unpadded signal.
        let x32: Vec<f32> = x.iter().map(|&v| v as f32).collect();
        let mut unpadded = vec![f32::NAN; n_mels * stride];
        bm.run(&x32, n_fft / 2, n_frames, &mut BandMelWork::default(), &mut unpadded, stride).unwrap();
        for m in 0..n_mels {
            assert_eq!(got[m * stride..][..n_frames], unpadded[m * stride..][..n_frames]);
        }
        let scale = expected.iter().fold(0.0f64, |m, v| m.max(*v));
        for m in 0..n_mels {
            for t in 0..n_frames {
                let (g, e) = (got[m * stride + t] as f64, expected[m * n_frames + t]);
                assert!((g - e).abs() <= 1e-5 * e + 1e-7 * scale, "n={n} mel {m} frame {t}: {g} vs {e}");
            }
        }
    }

    #[test]
    fn equals_the_band_dft_for_any_frame_count() {
        // 257 frames: 8 panels and one single frame (EEG); others: half panels and tails.
        check(10_000, 39, 128, 1024, 128, 20.0);
        check(2000, 7, 128, 1024, 128, 20.0);
        check(300, 20, 64, 256, 20, 30.0);
        check(16 * 20, 20, 64, 256, 20, 30.0);
        check(100, 50, 32, 64, 8, 90.0);
    }

    #[test]
    fn frames_vectorized_for_every_target() {
        // Half panels without FMA (the portable version) against the dispatched one.
        let bank = MelFilterbank::new(200.0, 1024, 128, 0.0, 20.0, false, true).unwrap();
        let w = padded_window(&Window::Hann, 128, 1024).unwrap();
        let bm = BandMel::new(&w, &bank, 39).unwrap().unwrap();
        let framing = Framing::new(1024, 39, true, PadMode::Constant).unwrap();
        let x: Vec<f32> = noise(5000, 2).iter().map(|&v| v as f32).collect();
        let padded = framing.extend::<f32, f32>(ndarray::ArrayView1::from(&x)).unwrap();
        let n_frames = framing.n_frames(5000).unwrap();
        let mut a = vec![0.0f32; 128 * n_frames];
        let mut b = vec![0.0f32; 128 * n_frames];
        bm.run(&padded, 0, n_frames, &mut BandMelWork::default(), &mut a, n_frames).unwrap();
        frames_with(&bm, Padded { x: &padded, pad: 0 }, n_frames, &mut BandMelWork::default(), &mut b, n_frames, false, false).unwrap();
        let scale = a.iter().fold(0.0f32, |m, v| m.max(*v));
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() <= 1e-5 * x.abs() + 1e-7 * scale);
        }
    }

    #[test]
    fn asymmetric_or_even_supports_are_declined() {
        let bank = MelFilterbank::new(200.0, 64, 8, 0.0, 90.0, false, true).unwrap();
        let hann = padded_window(&Window::Hann, 32, 64).unwrap(); // w[0] = 0: 31 nonzero
        assert!(BandMel::new(&hann, &bank, 4).unwrap().is_some());
        let boxcar = padded_window(&Window::Boxcar, 32, 64).unwrap(); // even support
        assert!(BandMel::new(&boxcar, &bank, 4).unwrap().is_none());
        let hamming = padded_window(&Window::Hamming, 33, 64).unwrap(); // periodic: asymmetric
        assert!(BandMel::new(&hamming, &bank, 4).unwrap().is_none());
        assert!(BandMel::new(&[0.0; 64], &bank, 4).unwrap().is_none());
        assert!(BandMel::new(&hann, &bank, 0).is_err());
    }
}
