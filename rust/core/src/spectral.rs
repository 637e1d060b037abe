//! Windows, framing, the short-time Fourier transform, scipy-style spectrograms, and the
//! small-DFT path that computes the power of a few frequency bins of short windows with one
//! matrix product.
//!
//! Conventions follow the references exactly: windows are scipy's periodic ("fftbins=True")
//! windows; `Stft` is `librosa.stft` (window of `win_length` centred in `n_fft`, frames centred
//! with `n_fft / 2` samples of padding); `Spectrogram` is `scipy.signal.spectrogram` (one-sided,
//! mode "psd"). FFTs run in f64 whatever the storage type.

use crate::alloc;
use crate::ensure;
use crate::error::{finite, positive, CoreError, Result};
use crate::real::Real;
use crate::simd::simd_fn;
use ndarray::{ArrayD, ArrayView1, ArrayViewD, Axis, IxDyn};
use num_complex::Complex;
use rayon::prelude::*;
use realfft::{RealFftPlanner, RealToComplex};
use std::f64::consts::PI;
use std::ops::{Add, AddAssign, Mul, Sub};
use std::sync::Arc;

/// Frames per parallel task of the FFT paths.
const FRAMES_PER_TASK: usize = 64;

// ------------------------------------------------------------------------------------------------
// Windows

/// A window function, evaluated with scipy.signal.get_window's periodic convention.
#[derive(Debug, Clone, PartialEq)]
pub enum Window {
    Hann,
    Hamming,
    Blackman,
    Boxcar,
    Bartlett,
    /// Tukey (tapered cosine) with the fraction `alpha` of the window inside the taper.
    Tukey(f64),
    /// Kaiser with shape parameter `beta`.
    Kaiser(f64),
    /// Explicit values; their count must equal the requested length.
    Values(Vec<f64>),
}

impl Window {
    /// The window named as in scipy.signal.get_window (`param` is Tukey's alpha, default 0.5, or
    /// Kaiser's beta, which has no default).
    pub fn from_name(name: &str, param: Option<f64>) -> Result<Window> {
        let lower = name.to_ascii_lowercase();
        let window = match lower.as_str() {
            "tukey" | "tuk" => {
                let alpha = param.unwrap_or(0.5);
                ensure!(alpha.is_finite(), "window: the Tukey parameter alpha must be finite, got {alpha}");
                return Ok(Window::Tukey(alpha));
            }
            "kaiser" | "ksr" => {
                let beta =
                    param.ok_or_else(|| CoreError::new("window: the Kaiser window needs its parameter beta, e.g. (\"kaiser\", 5.0)"))?;
                // I0(beta) overflows float64 beyond |beta| ~ 713: the window would be inf / inf.
                ensure!(
                    beta.is_finite() && beta.abs() <= MAX_KAISER_BETA,
                    "window: the Kaiser parameter beta must be finite and at most {MAX_KAISER_BETA} in magnitude, got {beta}"
                );
                return Ok(Window::Kaiser(beta));
            }
            "hann" | "han" => Window::Hann,
            "hamming" | "hamm" | "ham" => Window::Hamming,
            "blackman" | "black" | "blk" => Window::Blackman,
            "boxcar" | "box" | "ones" | "rect" | "rectangular" => Window::Boxcar,
            "bartlett" | "bart" | "brt" => Window::Bartlett,
            _ => return Err(CoreError::new(format!("window {name:?} is not a window the native core knows"))),
        };
        ensure!(param.is_none(), "window {name:?} takes no parameter");
        Ok(window)
    }

    /// `n` values of the periodic window (the symmetric window of `n + 1` points without its
    /// last point), as scipy.signal.get_window(window, n, fftbins=True).
    pub fn periodic(&self, n: usize) -> Result<Vec<f64>> {
        self.periodic_named(n, "n")
    }

    /// [`Window::periodic`] for a length given as the argument `name` (named in errors).
    pub fn periodic_named(&self, n: usize, name: &str) -> Result<Vec<f64>> {
        self.named(n, name, true)
    }

    /// The symmetric window of `m` points, as scipy.signal.get_window(window, m, fftbins=False)
    /// (the windows of FIR designs); `name` is the argument `m` comes from.
    pub fn symmetric_named(&self, m: usize, name: &str) -> Result<Vec<f64>> {
        self.named(m, name, false)
    }

    /// `n` points of the window: periodic (the symmetric window of n + 1 points without its last
    /// point) or symmetric; given values are checked and copied.
    fn named(&self, n: usize, name: &str, periodic: bool) -> Result<Vec<f64>> {
        ensure!(n >= 1, "{name} must be at least 1 (the window's length), got {n}");
        let what = format!("a window of {name}={n} values");
        if let Window::Values(values) = self {
            ensure!(values.len() == n, "window must have {n} values (its length), got {}", values.len());
            ensure!(values.iter().all(|v| v.is_finite()), "window contains NaN or inf");
            return alloc::collect(n, values.iter().copied(), &what);
        }
        if n == 1 {
            return Ok(vec![1.0]);
        }
        let m = if periodic { n.checked_add(1).ok_or_else(|| CoreError::alloc(&what, None))? } else { n };
        let mut w = alloc::with_capacity(m, &what)?;
        self.symmetric(m, &mut w);
        w.truncate(n);
        Ok(w)
    }

    /// Appends the symmetric window of `m >= 2` points to `out` (room for them is reserved).
    fn symmetric(&self, m: usize, out: &mut Vec<f64>) {
        match *self {
            Window::Hann => general_cosine(m, &[0.5, 0.5], out),
            Window::Hamming => general_cosine(m, &[0.54, 0.46], out),
            Window::Blackman => general_cosine(m, &[0.42, 0.50, 0.08], out),
            Window::Boxcar => out.resize(m, 1.0),
            Window::Bartlett => {
                let h = (m - 1) as f64;
                out.extend((0..m).map(|i| {
                    let i = i as f64;
                    if i <= h / 2.0 {
                        2.0 * i / h
                    } else {
                        2.0 - 2.0 * i / h
                    }
                }))
            }
            Window::Tukey(alpha) => tukey(m, alpha, out),
            Window::Kaiser(beta) => {
                // scipy.signal.windows.kaiser: I0(beta sqrt(1 - ((n - a) / a)^2)) / I0(beta).
                let a = (m - 1) as f64 / 2.0;
                let norm = bessel_i0(beta);
                out.extend((0..m).map(|i| {
                    let r = (i as f64 - a) / a;
                    bessel_i0(beta * (1.0 - r * r).sqrt()) / norm
                }))
            }
            Window::Values(_) => unreachable!("explicit values have no symmetric form"),
        }
    }
}

/// The largest Kaiser `beta` whose I0 stays well inside float64's range.
pub const MAX_KAISER_BETA: f64 = 700.0;

/// The modified Bessel function of the first kind of order 0, from its power series
/// `sum_k ((x / 2)^k / k!)^2`: every term is positive, so the sum keeps float64's relative
/// precision (a few ulps for |x| <= 50, 1e-14 near 700).
pub fn bessel_i0(x: f64) -> f64 {
    let q = x * x / 4.0;
    let (mut term, mut sum, mut k) = (1.0f64, 1.0f64, 0.0f64);
    while term > sum * f64::EPSILON / 4.0 {
        k += 1.0;
        term *= q / (k * k);
        sum += term;
    }
    sum
}

/// scipy.signal.windows.general_cosine: `sum_k a_k cos(k x)` for x = linspace(-pi, pi, m).
fn general_cosine(m: usize, a: &[f64], out: &mut Vec<f64>) {
    let step = 2.0 * PI / (m - 1) as f64;
    out.extend((0..m).map(|i| {
        let x = if i == m - 1 { PI } else { -PI + i as f64 * step };
        a.iter().enumerate().map(|(k, &ak)| ak * (k as f64 * x).cos()).sum::<f64>()
    }))
}

/// scipy.signal.windows.tukey (symmetric form).
fn tukey(m: usize, alpha: f64, out: &mut Vec<f64>) {
    if alpha <= 0.0 {
        return out.resize(m, 1.0);
    }
    if alpha >= 1.0 {
        return general_cosine(m, &[0.5, 0.5], out);
    }
    let h = (m - 1) as f64;
    let width = (alpha * h / 2.0).floor() as usize;
    out.extend((0..m).map(|i| {
        let n = i as f64;
        if i <= width {
            0.5 * (1.0 + (PI * (-1.0 + 2.0 * n / alpha / h)).cos())
        } else if i < m - width - 1 {
            1.0
        } else {
            0.5 * (1.0 + (PI * (-2.0 / alpha + 1.0 + 2.0 * n / alpha / h)).cos())
        }
    }))
}

/// `win_length` values of `window` centred in `n_fft` zeros (librosa's pad_center).
pub fn padded_window(window: &Window, win_length: usize, n_fft: usize) -> Result<Vec<f64>> {
    ensure!(win_length >= 1, "win_length must be at least 1, got {win_length}");
    ensure!(win_length <= n_fft, "win_length must not exceed n_fft={n_fft}, got {win_length}");
    // The frame-long window first: for a default win_length (= n_fft), n_fft is the argument
    // to name when neither can be allocated.
    let mut out = alloc::vec_of(n_fft, 0.0, &format!("a window of n_fft={n_fft} values"))?;
    let w = window.periodic_named(win_length, "win_length")?;
    let lpad = (n_fft - win_length) / 2;
    out[lpad..lpad + win_length].copy_from_slice(&w);
    Ok(out)
}

// ------------------------------------------------------------------------------------------------
// Padding and framing

/// How `Stft` extends a signal by `n_fft / 2` samples at each end (numpy.pad's modes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PadMode {
    Constant,
    Edge,
    Reflect,
    Symmetric,
}

impl PadMode {
    pub fn from_name(name: &str) -> Result<PadMode> {
        Ok(match name {
            "constant" => PadMode::Constant,
            "edge" => PadMode::Edge,
            "reflect" => PadMode::Reflect,
            "symmetric" => PadMode::Symmetric,
            _ => return Err(CoreError::new(format!("pad_mode must be one of constant, edge, reflect, symmetric, got {name:?}"))),
        })
    }

    /// The sample of a signal of `n` samples that index `i` (possibly outside) refers to, or
    /// None for a zero.
    fn source(self, i: isize, n: usize) -> Option<usize> {
        let n_i = n as isize;
        if (0..n_i).contains(&i) {
            return Some(i as usize);
        }
        match self {
            PadMode::Constant => None,
            PadMode::Edge => Some(i.clamp(0, n_i - 1) as usize),
            PadMode::Reflect if n == 1 => Some(0),
            PadMode::Reflect => {
                let period = 2 * (n_i - 1);
                let k = i.rem_euclid(period);
                Some(if k < n_i { k } else { period - k } as usize)
            }
            PadMode::Symmetric => {
                let period = 2 * n_i;
                let k = i.rem_euclid(period);
                Some(if k < n_i { k } else { period - 1 - k } as usize)
            }
        }
    }
}

/// `x` extended by `left` and `right` samples following `mode`, converted to `G`. Returns None
/// if `x` holds NaN or inf.
pub fn extend_signal<T: Real, G: Real>(x: ArrayView1<T>, left: usize, right: usize, mode: PadMode) -> Result<Option<Vec<G>>> {
    let mut out = Vec::new();
    Ok(extend_signal_into(x, left, right, mode, &mut out)?.then_some(out))
}

/// `extend_signal` into a reused buffer; false if `x` holds NaN or inf.
pub fn extend_signal_into<T: Real, G: Real>(x: ArrayView1<T>, left: usize, right: usize, mode: PadMode, out: &mut Vec<G>) -> Result<bool> {
    let n = x.len();
    let zero = G::from_f64(0.0);
    let what = "a padded copy of a lane of x";
    let total = n.checked_add(left).and_then(|v| v.checked_add(right)).ok_or_else(|| CoreError::alloc(what, None))?;
    alloc::clear_for(out, total, what)?;
    out.resize(left, zero);
    let finite = match x.as_slice() {
        Some(xs) => {
            out.extend(xs.iter().map(|v| G::from_f64(v.to_f64())));
            all_finite(xs)
        }
        None => {
            out.extend(x.iter().map(|v| G::from_f64(v.to_f64())));
            x.iter().all(|v| v.to_f64().is_finite())
        }
    };
    out.resize(n + left + right, zero);
    if mode != PadMode::Constant {
        for i in (0..left).chain(left + n..left + n + right) {
            if let Some(s) = mode.source(i as isize - left as isize, n) {
                out[i] = G::from_f64(x[s].to_f64());
            }
        }
    }
    Ok(finite)
}

simd_fn! {
    /// Whether every value of `x` is finite.
    pub fn all_finite<T: Real>(x: &[T]) -> bool {
        // x * 0 is 0 for finite x and NaN otherwise; the sums stay 0 only if all are finite. One
        // sum per lane, so that the additions do not wait on each other.
        const L: usize = 16;
        let mut probe = [0.0f64; L];
        let chunks = x.chunks_exact(L);
        let rest = chunks.remainder();
        for c in chunks {
            for l in 0..L {
                probe[l] += c[l].to_f64() * 0.0;
            }
        }
        probe.iter().sum::<f64>() == 0.0 && rest.iter().all(|v| v.to_f64().is_finite())
    }
}

/// Frames of an STFT: `n_fft` samples every `hop`, optionally centred by padding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Framing {
    pub n_fft: usize,
    pub hop: usize,
    pub center: bool,
    pub pad_mode: PadMode,
}

impl Framing {
    pub fn new(n_fft: usize, hop: usize, center: bool, pad_mode: PadMode) -> Result<Framing> {
        ensure!(n_fft >= 1, "n_fft must be at least 1, got {n_fft}");
        ensure!(hop >= 1, "hop_length must be at least 1, got {hop}");
        Ok(Framing { n_fft, hop, center, pad_mode })
    }

    /// Samples added before (and after) the signal.
    pub fn pad(&self) -> usize {
        if self.center {
            self.n_fft / 2
        } else {
            0
        }
    }

    /// Number of frames of a signal of `n` samples (librosa's count).
    pub fn n_frames(&self, n: usize) -> Result<usize> {
        // pad <= n_fft / 2, so 2 * pad cannot overflow; the sum can, for an impossible n_fft.
        let total = n.checked_add(2 * self.pad()).ok_or_else(|| CoreError::alloc("the padded signal of n_fft", None))?;
        ensure!(
            n >= 1 && total >= self.n_fft,
            "x has {n} samples along its last axis, too few for n_fft={} {}",
            self.n_fft,
            if self.center { "with centred frames" } else { "without centring (center=False)" }
        );
        Ok(1 + (total - self.n_fft) / self.hop)
    }

    /// The padded signal of one lane; frame t is `padded[t * hop .. t * hop + n_fft]`.
    pub fn extend<T: Real, G: Real>(&self, x: ArrayView1<T>) -> Result<Vec<G>> {
        let mut out = Vec::new();
        self.extend_into(x, &mut out)?;
        Ok(out)
    }

    /// `extend` into a reused buffer.
    pub fn extend_into<T: Real, G: Real>(&self, x: ArrayView1<T>, out: &mut Vec<G>) -> Result<()> {
        let pad = self.pad();
        ensure!(extend_signal_into(x, pad, pad, self.pad_mode, out)?, "x contains NaN or inf");
        Ok(())
    }
}

/// The length of the lanes (the last axis) of an array of `shape`.
pub fn lane_length(shape: &[usize]) -> Result<usize> {
    shape.last().copied().ok_or_else(|| CoreError::new("x must have at least one dimension (time is the last axis)"))
}

/// The shape of a per-lane result: the batch axes of `shape` (all but the last), then `tail`.
pub fn batch_shape(shape: &[usize], tail: &[usize]) -> Result<Vec<usize>> {
    lane_length(shape)?;
    Ok(shape[..shape.len() - 1].iter().chain(tail).copied().collect())
}

/// A new array of `shape` in standard layout, filled by `fill` (the kernels' `*_into`).
pub fn allocate<U: Copy + Default>(shape: Vec<usize>, fill: impl FnOnce(&mut [U]) -> Result<()>) -> Result<ArrayD<U>> {
    let what = format!("an output of shape {shape:?} for x");
    let mut out = alloc::vec_of(alloc::checked_len::<U>(&shape, &what)?, U::default(), &what)?;
    fill(&mut out)?;
    Ok(ArrayD::from_shape_vec(IxDyn(&shape), out).expect("shape matches the data"))
}

/// Fills `out`, one equal block per 1-D lane along the last axis of `x` (in standard order),
/// in parallel; each task reuses the state that `init` makes.
pub fn per_lane_into<T, U, S, I, F>(x: &ArrayViewD<T>, out: &mut [U], init: I, fill: F) -> Result<()>
where
    T: Sync,
    U: Send,
    I: Fn() -> S + Sync + Send,
    F: Fn(&mut S, &ArrayView1<T>, &mut [U]) -> Result<()> + Sync + Send,
{
    let n = lane_length(x.shape())?;
    let count = x.len().checked_div(n).unwrap_or(0);
    let lanes = alloc::collect(count, x.lanes(Axis(x.ndim() - 1)), "the lanes of x")?;
    if lanes.is_empty() || out.is_empty() {
        return Ok(());
    }
    assert_eq!(out.len() % lanes.len(), 0, "one equal block per lane");
    let block = out.len() / lanes.len();
    out.par_chunks_mut(block).zip(lanes.par_iter()).try_for_each_init(init, |state, (o, lane)| fill(state, lane, o))
}

// ------------------------------------------------------------------------------------------------
// STFT

/// librosa.stft: the window of `win_length` centred in `n_fft`, one real FFT per frame.
#[derive(Clone)]
pub struct Stft {
    framing: Framing,
    window: Vec<f64>,
    fft: Arc<dyn RealToComplex<f64>>,
}

impl Stft {
    pub fn new(framing: Framing, window: &Window, win_length: Option<usize>) -> Result<Stft> {
        let window = padded_window(window, win_length.unwrap_or(framing.n_fft), framing.n_fft)?;
        let fft = plan_fft(framing.n_fft, "n_fft")?;
        Ok(Stft { framing, window, fft })
    }

    pub fn n_freq(&self) -> usize {
        self.framing.n_fft / 2 + 1
    }

    /// Shape of the STFT of an array of `shape`: `(..., n_frames, n_freq)`, frames first (swap
    /// the last two axes for librosa's layout).
    pub fn output_shape(&self, shape: &[usize]) -> Result<Vec<usize>> {
        let n = lane_length(shape)?;
        batch_shape(shape, &[self.framing.n_frames(n)?, self.n_freq()])
    }

    /// The STFT of every lane along the last axis into `out` (of `output_shape`).
    pub fn compute_into<T: Real>(&self, x: ArrayViewD<T>, out: &mut [Complex<T>]) -> Result<()> {
        let n_freq = self.n_freq();
        let Framing { n_fft, hop, pad_mode, .. } = self.framing;
        let pad = self.framing.pad() as isize;
        per_lane_into(
            &x,
            out,
            || (),
            |_, lane, out| {
                let owned;
                let xs: &[T] = match lane.as_slice() {
                    Some(xs) => xs,
                    None => {
                        owned = alloc::collect(lane.len(), lane.iter().copied(), "a contiguous copy of a lane of x")?;
                        &owned
                    }
                };
                ensure!(all_finite(xs), "x contains NaN or inf");
                let n = xs.len();
                out.par_chunks_mut(FRAMES_PER_TASK * n_freq).enumerate().try_for_each(|(chunk, rows)| {
                    let mut runner = FftRunner::new(&self.fft)?;
                    for (i, row) in rows.chunks_mut(n_freq).enumerate() {
                        // Frame t covers samples start..start + n_fft of the signal, padding included.
                        let start = ((chunk * FRAMES_PER_TASK + i) * hop) as isize - pad;
                        let spectrum = runner.run_with(|input| {
                            if start >= 0 && start as usize + n_fft <= n {
                                windowed_into(&xs[start as usize..start as usize + n_fft], &self.window, input);
                            } else {
                                for (j, (o, &w)) in input.iter_mut().zip(&self.window).enumerate() {
                                    let v = pad_mode.source(start + j as isize, n).map_or(0.0, |s| xs[s].to_f64());
                                    *o = v * w;
                                }
                            }
                        });
                        complex_into(spectrum, row);
                    }
                    Ok(())
                })
            },
        )
    }

    pub fn compute<T: Real + Default>(&self, x: ArrayViewD<T>) -> Result<ArrayD<Complex<T>>> {
        allocate(self.output_shape(x.shape())?, |out| self.compute_into(x, out))
    }
}

/// Buffers of one real FFT, reused across frames.
struct FftRunner<'a> {
    fft: &'a Arc<dyn RealToComplex<f64>>,
    input: Vec<f64>,
    output: Vec<Complex<f64>>,
    scratch: Vec<Complex<f64>>,
}

impl<'a> FftRunner<'a> {
    fn new(fft: &'a Arc<dyn RealToComplex<f64>>) -> Result<Self> {
        let n = fft.len();
        let what = format!("the buffers of an FFT of n_fft={n} points");
        let zero = Complex::new(0.0, 0.0);
        Ok(FftRunner {
            fft,
            input: alloc::vec_of(n, 0.0, &what)?,
            output: alloc::vec_of(n / 2 + 1, zero, &what)?,
            scratch: alloc::vec_of(fft.get_scratch_len(), zero, &what)?,
        })
    }

    /// The spectrum of `segment * window`, zero-padded to the FFT length.
    fn run(&mut self, segment: &[f64], window: &[f64]) -> &[Complex<f64>] {
        let n = segment.len();
        self.run_with(|input| {
            windowed_into(segment, window, &mut input[..n]);
            input[n..].fill(0.0);
        })
    }

    /// The spectrum of the FFT input that `fill` writes.
    fn run_with(&mut self, fill: impl FnOnce(&mut [f64])) -> &[Complex<f64>] {
        fill(&mut self.input);
        self.fft.process_with_scratch(&mut self.input, &mut self.output, &mut self.scratch).expect("buffer sizes come from the plan");
        &self.output
    }
}

simd_fn! {
    /// `out[i] = x[i]` rounded to `T`.
    fn complex_into<T: Real>(x: &[Complex<f64>], out: &mut [Complex<T>]) {
        for (o, c) in out.iter_mut().zip(x) {
            *o = Complex::new(T::from_f64(c.re), T::from_f64(c.im));
        }
    }
}

simd_fn! {
    /// `out[i] = x[i] * w[i]`, in f64.
    fn windowed_into<T: Real>(x: &[T], w: &[f64], out: &mut [f64]) {
        for ((o, &v), &w) in out.iter_mut().zip(x).zip(w) {
            *o = v.to_f64() * w;
        }
    }
}

// ------------------------------------------------------------------------------------------------
// scipy.signal.spectrogram

/// Per-segment trend removal before windowing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detrend {
    None,
    Constant,
    Linear,
}

impl Detrend {
    pub fn from_name(name: &str) -> Result<Detrend> {
        Ok(match name {
            "none" => Detrend::None,
            "constant" => Detrend::Constant,
            "linear" => Detrend::Linear,
            _ => return Err(CoreError::new(format!("detrend must be 'constant', 'linear' or False, got {name:?}"))),
        })
    }

    fn apply(self, seg: &mut [f64]) {
        let n = seg.len() as f64;
        match self {
            Detrend::None => {}
            Detrend::Constant => {
                let mean = seg.iter().sum::<f64>() / n;
                seg.iter_mut().for_each(|v| *v -= mean);
            }
            Detrend::Linear => {
                let tm = (n - 1.0) / 2.0;
                let mean = seg.iter().sum::<f64>() / n;
                let (mut sxy, mut sxx) = (0.0, 0.0);
                for (i, &v) in seg.iter().enumerate() {
                    let d = i as f64 - tm;
                    sxy += d * (v - mean);
                    sxx += d * d;
                }
                let slope = if sxx > 0.0 { sxy / sxx } else { 0.0 };
                for (i, v) in seg.iter_mut().enumerate() {
                    *v -= mean + slope * (i as f64 - tm);
                }
            }
        }
    }
}

/// Scaling of the power spectral density.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scaling {
    /// Power per Hz: `1 / (fs * sum(w^2))`.
    Density,
    /// Power: `1 / sum(w)^2`.
    Spectrum,
}

impl Scaling {
    pub fn from_name(name: &str) -> Result<Scaling> {
        Ok(match name {
            "density" => Scaling::Density,
            "spectrum" => Scaling::Spectrum,
            _ => return Err(CoreError::new(format!("scaling must be 'density' or 'spectrum', got {name:?}"))),
        })
    }
}

/// scipy.signal.spectrogram with mode "psd" and a one-sided result.
#[derive(Clone)]
pub struct Spectrogram {
    nperseg: usize,
    step: usize,
    nfft: usize,
    window: Vec<f64>,
    detrend: Detrend,
    scale: f64,
    fft: Arc<dyn RealToComplex<f64>>,
}

impl Spectrogram {
    pub fn new(
        fs: f64,
        window: &Window,
        nperseg: usize,
        noverlap: usize,
        nfft: usize,
        detrend: Detrend,
        scaling: Scaling,
    ) -> Result<Spectrogram> {
        positive(fs, "fs")?;
        ensure!(nperseg >= 1, "nperseg must be at least 1, got {nperseg}");
        if let Window::Values(values) = window {
            ensure!(values.len() == nperseg, "nperseg={nperseg} differs from the window's length {}", values.len());
        }
        ensure!(noverlap < nperseg, "noverlap must be less than nperseg={nperseg}, got {noverlap}");
        ensure!(nfft >= nperseg, "nfft must be at least nperseg={nperseg}, got {nfft}");
        let window = window.periodic_named(nperseg, "nperseg")?;
        let scale = match scaling {
            Scaling::Density => 1.0 / (fs * window.iter().map(|w| w * w).sum::<f64>()),
            Scaling::Spectrum => 1.0 / window.iter().sum::<f64>().powi(2),
        };
        ensure!(scale.is_finite(), "window sums to zero: the spectrogram's scaling is undefined");
        let fft = plan_fft(nfft, "nfft")?;
        Ok(Spectrogram { nperseg, step: nperseg - noverlap, nfft, window, detrend, scale, fft })
    }

    pub fn n_freq(&self) -> usize {
        self.nfft / 2 + 1
    }

    /// How many of the `n_freq` bins lie at or below `fmax` for sampling rate `fs` (the bins of
    /// numpy.fft.rfftfreq(nfft, 1 / fs), computed as numpy does).
    pub fn bins_up_to(&self, fs: f64, fmax: f64) -> Result<usize> {
        finite(fmax, "fmax")?;
        let df = 1.0 / (self.nfft as f64 * (1.0 / fs));
        let count = (0..self.n_freq()).filter(|&k| k as f64 * df <= fmax).count();
        ensure!(count >= 1, "fmax={fmax} keeps no frequency bin");
        Ok(count)
    }

    /// The largest signal amplitude whose power spectrum stays a sixteenth of f64::MAX away
    /// from overflow: a detrended segment's values stay within 8 times the amplitude, its
    /// spectrum within that times sum|w|, its power within the square times the scaling (twice,
    /// one-sided).
    pub fn safe_amplitude(&self) -> f64 {
        let limit = f64::MAX / 16.0;
        let w1: f64 = self.window.iter().map(|w| w.abs()).sum();
        limit.sqrt().min((limit / (2.0 * self.scale)).sqrt()) / (8.0 * w1.max(f64::MIN_POSITIVE))
    }

    pub fn n_segments(&self, n: usize) -> Result<usize> {
        ensure!(n >= self.nperseg, "x has {n} samples along its last axis, fewer than nperseg={}", self.nperseg);
        Ok(1 + (n - self.nperseg) / self.step)
    }

    /// Power of every segment of `signal` (f64, contiguous): row s of `out` (`n_freq` wide)
    /// receives segment s. `map` is applied to each value on its way out.
    pub fn segments_into<U: Copy + Send>(&self, signal: &[f64], out: &mut [U], map: impl Fn(f64) -> U + Sync) -> Result<()> {
        let n_freq = self.n_freq();
        out.par_chunks_mut(FRAMES_PER_TASK * n_freq).enumerate().try_for_each(|(chunk, rows)| {
            let mut runner = FftRunner::new(&self.fft)?;
            let mut seg = alloc::vec_of(self.nperseg, 0.0, "a segment of nperseg values")?;
            for (i, row) in rows.chunks_mut(n_freq).enumerate() {
                let start = (chunk * FRAMES_PER_TASK + i) * self.step;
                seg.copy_from_slice(&signal[start..start + self.nperseg]);
                self.detrend.apply(&mut seg);
                let spectrum = runner.run(&seg, &self.window);
                let last = n_freq - 1;
                for (k, (o, c)) in row.iter_mut().zip(spectrum).enumerate() {
                    // One-sided: every bin but DC (and Nyquist for even nfft) counts twice.
                    let twice = k > 0 && (k < last || self.nfft % 2 == 1);
                    let p = c.norm_sqr() * self.scale * if twice { 2.0 } else { 1.0 };
                    *o = map(p);
                }
            }
            Ok(())
        })
    }

    /// Shape of the spectrogram of an array of `shape`: `(..., n_segments, n_freq)`.
    pub fn output_shape(&self, shape: &[usize]) -> Result<Vec<usize>> {
        let n = lane_length(shape)?;
        batch_shape(shape, &[self.n_segments(n)?, self.n_freq()])
    }

    /// The spectrogram of every lane along the last axis into `out` (of `output_shape`).
    pub fn compute_into<T: Real>(&self, x: ArrayViewD<T>, out: &mut [T]) -> Result<()> {
        per_lane_into(&x, out, Vec::new, |signal: &mut Vec<f64>, lane, out| {
            alloc::clear_for(signal, lane.len(), "a float64 copy of a lane of x")?;
            signal.extend(lane.iter().map(|v| v.to_f64()));
            self.segments_into(signal, out, T::from_f64)
        })
    }

    pub fn compute<T: Real + Default>(&self, x: ArrayViewD<T>) -> Result<ArrayD<T>> {
        allocate(self.output_shape(x.shape())?, |out| self.compute_into(x, out))
    }
}

// ------------------------------------------------------------------------------------------------
// The small-DFT path

/// Element types of the dense products (f32 for float32 data, f64 for float64).
pub trait GemmFloat: Real + Default + Add<Output = Self> + Sub<Output = Self> + Mul<Output = Self> + AddAssign {
    /// The values as f32, if that is the type (for kernels written for f32 only).
    fn as_f32(s: &[Self]) -> Option<&[f32]>;
    fn as_f32_mut(s: &mut [Self]) -> Option<&mut [f32]>;

    /// `c = a * b` for an `m x k` matrix `a` and a `k x n` matrix `b`, with (row, column)
    /// strides in elements.
    #[allow(clippy::too_many_arguments)]
    fn gemm(
        m: usize,
        k: usize,
        n: usize,
        a: &[Self],
        a_strides: (usize, usize),
        b: &[Self],
        b_strides: (usize, usize),
        c: &mut [Self],
        c_strides: (usize, usize),
    );
}

/// Panics unless every element of an `rows x cols` matrix with `strides` lies in `len`.
fn check_extent(rows: usize, cols: usize, strides: (usize, usize), len: usize) {
    if rows > 0 && cols > 0 {
        let last = (rows - 1) * strides.0 + (cols - 1) * strides.1;
        assert!(last < len, "matrix of {rows}x{cols} with strides {strides:?} exceeds {len} elements");
    }
}

macro_rules! impl_gemm {
    ($t:ty, $f:path, $as_f32:expr, $as_f32_mut:expr) => {
        impl GemmFloat for $t {
            fn as_f32(s: &[Self]) -> Option<&[f32]> {
                $as_f32(s)
            }

            fn as_f32_mut(s: &mut [Self]) -> Option<&mut [f32]> {
                $as_f32_mut(s)
            }

            fn gemm(
                m: usize,
                k: usize,
                n: usize,
                a: &[Self],
                a_strides: (usize, usize),
                b: &[Self],
                b_strides: (usize, usize),
                c: &mut [Self],
                c_strides: (usize, usize),
            ) {
                check_extent(m, k, a_strides, a.len());
                check_extent(k, n, b_strides, b.len());
                check_extent(m, n, c_strides, c.len());
                assert!(c_strides.0 != c_strides.1 || m <= 1 || n <= 1, "c's strides must not alias");
                if m == 0 || n == 0 {
                    return;
                }
                // SAFETY: the three extents were checked above, and c is borrowed mutably with
                // distinct offsets for distinct elements.
                unsafe {
                    $f(
                        m,
                        k,
                        n,
                        1.0,
                        a.as_ptr(),
                        a_strides.0 as isize,
                        a_strides.1 as isize,
                        b.as_ptr(),
                        b_strides.0 as isize,
                        b_strides.1 as isize,
                        0.0,
                        c.as_mut_ptr(),
                        c_strides.0 as isize,
                        c_strides.1 as isize,
                    )
                }
            }
        }
    };
}

impl_gemm!(f32, matrixmultiply::sgemm, Some, Some);
impl_gemm!(f64, matrixmultiply::dgemm, |_| None, |_| None);

/// `|X_k|^2` of windowed frames for the bins `k in bins` only, computed as a dense DFT: one
/// matrix product of the frames by a (window x cos/sin) basis. With a symmetric window the
/// frames are first folded about the window's centre (sums feed the cosines, differences the
/// sines), which halves the work. Worth it when the window is short and few bins are needed.
#[derive(Debug, Clone)]
pub struct BandDft<G> {
    /// First sample of the window's support inside a frame, and its length.
    offset: usize,
    len: usize,
    symmetric: bool,
    bins: std::ops::Range<usize>,
    k_re: usize,
    k_im: usize,
    /// (bins x k_re) and (bins x k_im), row-major.
    basis_re: Vec<G>,
    basis_im: Vec<G>,
}

impl<G: GemmFloat> BandDft<G> {
    /// `window` is the full `n_fft`-long window of a frame; only its nonzero support is used.
    pub fn new(window: &[f64], bins: std::ops::Range<usize>) -> Result<BandDft<G>> {
        let n_fft = window.len();
        ensure!(bins.end <= n_fft / 2 + 1 && bins.start <= bins.end, "bins {bins:?} out of range");
        let first = window.iter().position(|&w| w != 0.0);
        let Some(first) = first else {
            return Err(CoreError::new("window is all zeros"));
        };
        let last = window.iter().rposition(|&w| w != 0.0).expect("a nonzero exists");
        let w = &window[first..=last];
        let len = w.len();
        let wmax = w.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let symmetric = (0..len / 2).all(|i| (w[i] - w[len - 1 - i]).abs() <= 1e-13 * wmax);
        let half = len / 2;
        let odd = len % 2 == 1;
        // cos/sin of 2*pi*m/(2*n_fft): the angles of whole and half-sample offsets, reduced
        // exactly by integer arithmetic.
        let what = "the band DFT basis of win_length and n_mels' bins";
        let period = n_fft.checked_mul(2).ok_or_else(|| CoreError::alloc(what, None))?;
        let table = alloc::collect(period, (0..period).map(|m| (PI * m as f64 / n_fft as f64).sin_cos()), what)?;
        let angle = |k: usize, twice_offset: usize| table[(k * twice_offset) % period];
        let (k_re, k_im) = if !symmetric {
            (len, len)
        } else if odd {
            (half + 1, half)
        } else {
            (half, half)
        };
        let nb = bins.len();
        let mut basis_re = alloc::vec_of(alloc::checked_len::<G>(&[nb, k_re], what)?, G::default(), what)?;
        let mut basis_im = alloc::vec_of(alloc::checked_len::<G>(&[nb, k_im], what)?, G::default(), what)?;
        for (row, k) in bins.clone().enumerate() {
            let re = &mut basis_re[row * k_re..(row + 1) * k_re];
            let im = &mut basis_im[row * k_im..(row + 1) * k_im];
            if !symmetric {
                for i in 0..len {
                    let (s, c) = angle(k, 2 * i);
                    re[i] = G::from_f64(w[i] * c);
                    im[i] = G::from_f64(-w[i] * s);
                }
            } else if odd {
                // Offsets j = 0..=half from the centre sample `half`.
                re[0] = G::from_f64(w[half]);
                for j in 1..=half {
                    let (s, c) = angle(k, 2 * j);
                    re[j] = G::from_f64(w[half + j] * c);
                    im[j - 1] = G::from_f64(-w[half + j] * s);
                }
            } else {
                // Half-sample offsets j + 1/2 from the centre between samples half-1 and half.
                for j in 0..half {
                    let (s, c) = angle(k, 2 * j + 1);
                    re[j] = G::from_f64(w[half + j] * c);
                    im[j] = G::from_f64(-w[half + j] * s);
                }
            }
        }
        Ok(BandDft { offset: first, len, symmetric, bins, k_re, k_im, basis_re, basis_im })
    }

    pub fn bins(&self) -> std::ops::Range<usize> {
        self.bins.clone()
    }

    /// Multiply-adds per frame, for choosing between this path and an FFT.
    pub fn cost_per_frame(&self) -> usize {
        self.bins.len() * (self.k_re + self.k_im)
    }

    /// Writes `|X_k|^(power)` of frames `t = 0..n_frames` of `signal` (frame t starts at
    /// `t * hop`) into `out`, shaped (bins x n_frames) row-major. `scratch` is reused.
    pub fn power(&self, signal: &[G], hop: usize, n_frames: usize, power: f64, scratch: &mut Vec<G>, out: &mut [G]) -> Result<()> {
        let nb = self.bins.len();
        assert!(out.len() >= nb * n_frames, "output too small");
        if n_frames == 0 || nb == 0 {
            return Ok(());
        }
        let start = |t: usize| t * hop + self.offset;
        assert!(start(n_frames - 1) + self.len <= signal.len(), "signal too short for its frames");
        let (k_re, k_im) = (self.k_re, self.k_im);
        let folded_len = if self.symmetric { n_frames * (k_re + k_im) } else { 0 };
        let rev_len = if self.symmetric { signal.len() } else { 0 };
        // Every element is written below: resize without clearing.
        alloc::resize(scratch, folded_len + nb * n_frames + rev_len, G::default(), "the band DFT work space for x")?;
        let (folded, rest) = scratch.split_at_mut(folded_len);
        let (im, rev) = rest.split_at_mut(nb * n_frames);
        let c = (n_frames, 1);
        if self.symmetric {
            // The samples before each window's centre are read forwards from a reversed copy,
            // so that folding is a plain vectorized sum and difference of two slices.
            rev.iter_mut().zip(signal.iter().rev()).for_each(|(r, &v)| *r = v);
            let (sums, diffs) = folded.split_at_mut(n_frames * k_re);
            let (half, odd) = (self.len / 2, self.len % 2 == 1);
            let n = signal.len();
            for t in 0..n_frames {
                let s0 = start(t);
                let s = &mut sums[t * k_re..(t + 1) * k_re];
                let d = &mut diffs[t * k_im..(t + 1) * k_im];
                // Pairs (centre + j, centre - j): after the centre forwards, before it from `rev`.
                let lo = &rev[n - s0 - half..n - s0];
                if odd {
                    s[0] = signal[s0 + half];
                    fold(&signal[s0 + half + 1..s0 + 2 * half + 1], lo, &mut s[1..], d);
                } else {
                    fold(&signal[s0 + half..s0 + 2 * half], lo, s, d);
                }
            }
            G::gemm(nb, k_re, n_frames, &self.basis_re, (k_re, 1), sums, (1, k_re), out, c);
            G::gemm(nb, k_im, n_frames, &self.basis_im, (k_im, 1), diffs, (1, k_im), im, c);
        } else {
            // The frames are read in place: element (i, t) of the frame matrix is
            // signal[offset + t * hop + i].
            let frames = &signal[self.offset..];
            G::gemm(nb, k_re, n_frames, &self.basis_re, (k_re, 1), frames, (1, hop), out, c);
            G::gemm(nb, k_im, n_frames, &self.basis_im, (k_im, 1), frames, (1, hop), im, c);
        }
        magnitude_power(&mut out[..nb * n_frames], im, power);
        Ok(())
    }
}

simd_fn! {
    /// `sums = hi + lo`, `diffs = hi - lo`.
    fn fold<G: GemmFloat>(hi: &[G], lo: &[G], sums: &mut [G], diffs: &mut [G]) {
        for (((s, d), &h), &l) in sums.iter_mut().zip(diffs.iter_mut()).zip(hi).zip(lo) {
            *s = h + l;
            *d = h - l;
        }
    }
}

simd_fn! {
    /// `re <- (re^2 + im^2)^(power/2)`.
    fn magnitude_power<G: GemmFloat>(re: &mut [G], im: &[G], power: f64) {
        if power == 2.0 {
            for (r, &i) in re.iter_mut().zip(im) {
                *r = *r * *r + i * i;
            }
        } else {
            for (r, &i) in re.iter_mut().zip(im) {
                let p = (*r * *r + i * i).to_f64();
                *r = G::from_f64(if power == 1.0 { p.sqrt() } else { p.powf(power / 2.0) });
            }
        }
    }
}

/// `|X_k|^power` of the FFT of frames (`frame_len` samples at `t * hop`, windowed by the
/// full-length `window`), bins `bins` only, into `out` (bins x n_frames, row-major).
#[allow(clippy::too_many_arguments)]
pub fn fft_band_power<G: Real>(
    fft: &Arc<dyn RealToComplex<f64>>,
    signal: &[f64],
    window: &[f64],
    hop: usize,
    n_frames: usize,
    bins: std::ops::Range<usize>,
    power: f64,
    out: &mut [G],
) -> Result<()> {
    let mut runner = FftRunner::new(fft)?;
    let n = window.len();
    for t in 0..n_frames {
        let spectrum = runner.run(&signal[t * hop..t * hop + n], window);
        for (row, c) in spectrum[bins.clone()].iter().enumerate() {
            let p = c.norm_sqr();
            let v = if power == 2.0 {
                p
            } else if power == 1.0 {
                p.sqrt()
            } else {
                p.powf(power / 2.0)
            };
            out[row * n_frames + t] = G::from_f64(v);
        }
    }
    Ok(())
}

/// Bytes reserved (and released) before an FFT plan of `n` points is made: realfft and rustfft
/// allocate their tables without a way to fail, at most a few dozen bytes per point (Bluestein's
/// algorithm for large prime factors included).
const FFT_PLAN_BYTES_PER_POINT: usize = 64;

/// A forward real FFT plan of length `n`, the argument `name` (named if its memory cannot be had).
pub fn plan_fft(n: usize, name: &str) -> Result<Arc<dyn RealToComplex<f64>>> {
    ensure!(n >= 1, "{name} must be at least 1, got {n}");
    alloc::probe(n.checked_mul(FFT_PLAN_BYTES_PER_POINT), &format!("an FFT plan of {name}={n} points"))?;
    Ok(RealFftPlanner::<f64>::new().plan_fft_forward(n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::noise;
    use ndarray::{Array1, Array2};

    /// The DFT of `x` at bin k over `n` points, from the definition.
    fn dft(x: &[f64], n: usize, k: usize) -> Complex<f64> {
        x.iter().enumerate().map(|(i, &v)| Complex::from_polar(v, -2.0 * PI * (k * i) as f64 / n as f64)).sum()
    }

    #[test]
    fn windows_follow_scipy_periodic_definitions() {
        let hann = Window::Hann.periodic(8).unwrap();
        for (i, v) in hann.iter().enumerate() {
            assert!((v - (0.5 - 0.5 * (2.0 * PI * i as f64 / 8.0).cos())).abs() < 1e-15);
        }
        let hamming = Window::Hamming.periodic(5).unwrap();
        assert!((hamming[0] - 0.08).abs() < 1e-15 && (hamming[3] - (0.54 - 0.46 * (1.2 * PI).cos())).abs() < 1e-15);
        assert_eq!(Window::Boxcar.periodic(3).unwrap(), vec![1.0; 3]);
        assert_eq!(Window::Hann.periodic(1).unwrap(), vec![1.0]);
        // Tukey with alpha 0 is a boxcar, with alpha 1 a Hann window.
        assert_eq!(Window::Tukey(0.0).periodic(6).unwrap(), vec![1.0; 6]);
        let t1 = Window::Tukey(1.0).periodic(16).unwrap();
        for (a, b) in t1.iter().zip(Window::Hann.periodic(16).unwrap()) {
            assert!((a - b).abs() < 1e-15);
        }
        // scipy.signal.get_window(("tukey", 0.25), 8) and ("tukey", 0.5), 10
        let t = Window::Tukey(0.25).periodic(8).unwrap();
        assert_eq!(t, vec![0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]);
        let t = Window::Tukey(0.5).periodic(10).unwrap();
        let expected = [0.0, 0.3454915028125263, 0.9045084971874737, 1.0, 1.0, 1.0, 1.0, 1.0, 0.9045084971874737, 0.3454915028125263];
        for (a, b) in t.iter().zip(expected) {
            assert!((a - b).abs() < 1e-15, "{t:?}");
        }
        let b = Window::Bartlett.periodic(4).unwrap();
        assert_eq!(b, vec![0.0, 0.5, 1.0, 0.5]);
        assert!(Window::from_name("kaiser", None).is_err());
        assert!(Window::from_name("hann", Some(1.0)).is_err());
        assert_eq!(Window::from_name("TUKEY", Some(0.3)).unwrap(), Window::Tukey(0.3));
        assert!(Window::Values(vec![1.0, 2.0]).periodic(3).is_err());
    }

    #[test]
    fn padding_modes_follow_numpy_pad() {
        let x = Array1::from(vec![1.0, 2.0, 3.0]);
        let pad = |m| extend_signal::<f64, f64>(x.view(), 5, 4, m).unwrap().unwrap();
        // numpy.pad([1, 2, 3], (5, 4), mode)
        assert_eq!(pad(PadMode::Constant), vec![0., 0., 0., 0., 0., 1., 2., 3., 0., 0., 0., 0.]);
        assert_eq!(pad(PadMode::Edge), vec![1., 1., 1., 1., 1., 1., 2., 3., 3., 3., 3., 3.]);
        assert_eq!(pad(PadMode::Reflect), vec![2., 1., 2., 3., 2., 1., 2., 3., 2., 1., 2., 3.]);
        assert_eq!(pad(PadMode::Symmetric), vec![2., 3., 3., 2., 1., 1., 2., 3., 3., 2., 1., 1.]);
        let nan = Array1::from(vec![1.0, f64::NAN]);
        assert!(extend_signal::<f64, f64>(nan.view(), 1, 1, PadMode::Constant).unwrap().is_none());
        // Non-finite values are found anywhere, in the vectorized body and in the tail.
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            for at in [0, 15, 16, 31, 40] {
                let mut v = vec![1.0f32; 41];
                v[at] = bad as f32;
                assert!(!all_finite(&v), "{bad} at {at}");
            }
        }
        assert!(all_finite(&[f32::MAX; 41]));
    }

    #[test]
    fn impossible_windows_and_plans_are_allocation_errors() {
        for n in [1usize << 40, 1 << 62, usize::MAX] {
            let err = Window::Hann.periodic(n).unwrap_err();
            assert!(err.is_alloc() && err.to_string().contains(&format!("a window of n={n} values")), "{err}");
            let err = Window::Hann.periodic_named(n, "nperseg").unwrap_err();
            assert!(err.to_string().contains("nperseg="), "{err}");
        }
        for n_fft in [1usize << 40, 1 << 62, usize::MAX] {
            let framing = Framing::new(n_fft, 1, true, PadMode::Constant).unwrap();
            let err = Stft::new(framing, &Window::Hann, None).err().expect("no memory for it");
            assert!(err.is_alloc() && err.to_string().contains("n_fft="), "{err}");
            assert!(Stft::new(framing, &Window::Hann, Some(16)).err().expect("no memory for it").is_alloc());
            let err = plan_fft(n_fft, "nfft").err().expect("no memory for it");
            assert!(err.is_alloc() && err.to_string().contains("an FFT plan of nfft="), "{err}");
            let err = Spectrogram::new(1.0, &Window::Hann, 16, 0, n_fft, Detrend::None, Scaling::Density).err().expect("no memory");
            assert!(err.is_alloc() && err.to_string().contains("nfft="), "{err}");
            // The frame count of a centred signal cannot overflow silently.
            assert!(framing.n_frames(usize::MAX - 3).is_err());
        }
        assert!(plan_fft(0, "n_fft").is_err());
        let err = allocate::<f64>(vec![1 << 40, 1 << 40], |_| Ok(())).unwrap_err();
        assert!(err.is_alloc(), "{err}");
    }

    #[test]
    fn frame_counts_follow_librosa() {
        let f = Framing::new(1024, 39, true, PadMode::Constant).unwrap();
        assert_eq!(f.n_frames(10_000).unwrap(), 257);
        let g = Framing::new(256, 64, false, PadMode::Constant).unwrap();
        assert_eq!(g.n_frames(256).unwrap(), 1);
        assert!(g.n_frames(255).is_err());
        assert!(Framing::new(256, 0, true, PadMode::Constant).is_err());
    }

    #[test]
    fn stft_equals_the_definition() {
        let x = noise(300, 1);
        let framing = Framing::new(64, 20, true, PadMode::Reflect).unwrap();
        let stft = Stft::new(framing, &Window::Hann, Some(50)).unwrap();
        let arr = Array1::from(x.clone()).into_dyn();
        let out = stft.compute(arr.view()).unwrap();
        assert_eq!(out.shape(), &[1 + 300 / 20, 33]);
        let w = padded_window(&Window::Hann, 50, 64).unwrap();
        let padded = extend_signal::<f64, f64>(Array1::from(x).view(), 32, 32, PadMode::Reflect).unwrap().unwrap();
        for t in [0, 7, 15] {
            let frame: Vec<f64> = (0..64).map(|i| padded[t * 20 + i] * w[i]).collect();
            for k in [0, 5, 32] {
                let expected = dft(&frame, 64, k);
                assert!((out[[t, k]] - expected).norm() < 1e-12, "frame {t} bin {k}");
            }
        }
    }

    #[test]
    fn spectrogram_density_and_one_sided_doubling() {
        // A constant signal has all its power at DC; with detrend "constant" nothing remains.
        let x = Array1::from(vec![3.0f64; 64]).into_dyn();
        let spec = Spectrogram::new(2.0, &Window::Boxcar, 16, 8, 16, Detrend::None, Scaling::Spectrum).unwrap();
        let s = spec.compute(x.view()).unwrap();
        assert_eq!(s.shape(), &[7, 9]);
        assert!((s[[0, 0]] - 9.0).abs() < 1e-12 && s[[0, 3]].abs() < 1e-20);
        let detrended = Spectrogram::new(2.0, &Window::Boxcar, 16, 8, 16, Detrend::Constant, Scaling::Spectrum).unwrap();
        assert!(detrended.compute(x.view()).unwrap().iter().all(|v| v.abs() < 1e-20));
        // A unit sine at bin 2 carries power 1/2 in the one-sided spectrum.
        let sine: Array1<f64> = (0..16).map(|i| (2.0 * PI * 2.0 * i as f64 / 16.0).sin()).collect();
        let s = spec.compute(sine.view().into_dyn()).unwrap();
        assert!((s[[0, 2]] - 0.5).abs() < 1e-12);
        // Linear detrend removes a ramp exactly.
        let ramp: Array1<f64> = (0..32).map(|i| 0.5 * i as f64 - 2.0).collect();
        let lin = Spectrogram::new(1.0, &Window::Hann, 16, 0, 32, Detrend::Linear, Scaling::Density).unwrap();
        assert!(lin.compute(ramp.view().into_dyn()).unwrap().iter().all(|v| v.abs() < 1e-20));
        assert!(Spectrogram::new(1.0, &Window::Hann, 16, 16, 16, Detrend::None, Scaling::Density).is_err());
        assert!(Spectrogram::new(1.0, &Window::Hann, 16, 0, 8, Detrend::None, Scaling::Density).is_err());
        assert!(lin.n_segments(15).is_err());
    }

    fn band_power_reference(signal: &[f64], window: &[f64], hop: usize, n_frames: usize, k: usize) -> Vec<f64> {
        (0..n_frames)
            .map(|t| {
                let frame: Vec<f64> = window.iter().enumerate().map(|(i, w)| w * signal[t * hop + i]).collect();
                dft(&frame, window.len(), k).norm_sqr()
            })
            .collect()
    }

    #[test]
    fn band_dft_equals_the_fft_for_symmetric_and_other_windows() {
        let signal = noise(2000, 3);
        let cases = [
            (Window::Hann, 128, 1024),               // odd support after the leading zero: folded
            (Window::Hamming, 100, 512),             // even support: folded about a half sample
            (Window::Hann, 33, 64),                  // odd length
            (Window::Values(noise(40, 9)), 40, 128), // asymmetric: plain product
        ];
        for (window, win_length, n_fft) in cases {
            let w = padded_window(&window, win_length, n_fft).unwrap();
            let bins = 3..(n_fft / 8);
            let dft64 = BandDft::<f64>::new(&w, bins.clone()).unwrap();
            let dft32 = BandDft::<f32>::new(&w, bins.clone()).unwrap();
            let (hop, n_frames) = (7, (2000 - n_fft) / 7 + 1);
            let mut out = vec![0.0; bins.len() * n_frames];
            dft64.power(&signal, hop, n_frames, 2.0, &mut Vec::new(), &mut out).unwrap();
            let s32: Vec<f32> = signal.iter().map(|&v| v as f32).collect();
            let mut out32 = vec![0.0f32; bins.len() * n_frames];
            dft32.power(&s32, hop, n_frames, 2.0, &mut Vec::new(), &mut out32).unwrap();
            let mut fft_out = vec![0.0; bins.len() * n_frames];
            fft_band_power(&plan_fft(n_fft, "n_fft").unwrap(), &signal, &w, hop, n_frames, bins.clone(), 2.0, &mut fft_out).unwrap();
            let scale = fft_out.iter().fold(0.0f64, |m, v| m.max(*v));
            for (i, k) in bins.clone().enumerate().step_by(5) {
                let expected = band_power_reference(&signal, &w, hop, n_frames, k);
                for t in 0..n_frames {
                    let e = expected[t];
                    assert!((out[i * n_frames + t] - e).abs() <= 1e-10 * scale, "{window:?} bin {k} frame {t}");
                    assert!((fft_out[i * n_frames + t] - e).abs() <= 1e-10 * scale);
                    assert!((out32[i * n_frames + t] as f64 - e).abs() <= 2e-5 * scale);
                }
            }
        }
    }

    #[test]
    fn band_dft_magnitude_powers() {
        let signal = noise(300, 4);
        let w = padded_window(&Window::Hann, 32, 64).unwrap();
        let dft = BandDft::<f64>::new(&w, 0..10).unwrap();
        let mut p2 = vec![0.0; 10 * 10];
        let mut p1 = vec![0.0; 10 * 10];
        dft.power(&signal, 20, 10, 2.0, &mut Vec::new(), &mut p2).unwrap();
        dft.power(&signal, 20, 10, 1.0, &mut Vec::new(), &mut p1).unwrap();
        for (a, b) in p1.iter().zip(&p2) {
            assert!((a * a - b).abs() <= 1e-12 * b.max(1e-12));
        }
        assert!(BandDft::<f64>::new(&[0.0; 8], 0..2).is_err());
        assert!(BandDft::<f64>::new(&w, 0..40).is_err());
    }

    #[test]
    fn gemm_wrapper_checks_extents() {
        let a = Array2::from_shape_vec((2, 3), vec![1.0f64, 2., 3., 4., 5., 6.]).unwrap();
        let b = Array2::from_shape_vec((3, 2), vec![1.0f64, 0., 0., 1., 1., 1.]).unwrap();
        let mut c = vec![0.0; 4];
        f64::gemm(2, 3, 2, a.as_slice().unwrap(), (3, 1), b.as_slice().unwrap(), (2, 1), &mut c, (2, 1));
        assert_eq!(c, vec![4.0, 5.0, 10.0, 11.0]);
        let r = std::panic::catch_unwind(|| {
            let mut c = vec![0.0; 3];
            f64::gemm(2, 3, 2, &[0.0; 6], (3, 1), &[0.0; 6], (2, 1), &mut c, (2, 1));
        });
        assert!(r.is_err());
    }
}
