//! Polyphase resampling by a rational factor `up / down`, following scipy.signal.resample_poly
//! (and the upfirdn it runs) exactly: the FIR design (firwin's windowed sinc, scaled by `up`), the
//! filter's alignment (zeros before it so that the first output sample is at the first input
//! sample), the signal's extension beyond its ends (`padtype`), and which input samples each
//! output's taps meet, the zero taps of that alignment included, so that NaN and inf reach the
//! same outputs as in scipy.
//!
//! Only the output samples are computed: output `m` is the dot product of one phase of the filter
//! (`m * down % up`) with a window of the extended input ending at `m * down / up`. Lanes are split
//! into blocks of outputs, each of which gathers just the input it needs (widened to f64), so one
//! long recording runs on every thread and a view with zero strides is never copied whole.

use crate::alloc;
use crate::ensure;
use crate::error::{CoreError, Result};
use crate::real::Real;
use crate::simd::simd_fn;
use crate::spectral::Window;
use ndarray::{s, ArrayD, ArrayView1, ArrayViewD, ArrayViewMut1, ArrayViewMutD, Axis, IxDyn};
use rayon::prelude::*;

/// Outputs per parallel task (at least a tile per phase class).
const BLOCK: usize = 4096;

/// scipy.signal.firwin(numtaps, cutoff, window=window): a low-pass windowed sinc with `cutoff`
/// relative to Nyquist (0 < cutoff < 1), scaled to a DC gain of 1.
pub fn firwin(numtaps: usize, cutoff: f64, window: &Window) -> Result<Vec<f64>> {
    ensure!(numtaps >= 1, "numtaps must be at least 1, got {numtaps}");
    ensure!(cutoff > 0.0 && cutoff < 1.0, "cutoff must lie strictly between 0 and 1 (Nyquist), got {cutoff}");
    let mut h = window.symmetric_named(numtaps, "numtaps")?;
    let alpha = 0.5 * (numtaps - 1) as f64;
    for (i, w) in h.iter_mut().enumerate() {
        *w *= cutoff * sinc(cutoff * (i as f64 - alpha));
    }
    let sum: f64 = h.iter().sum();
    ensure!(sum.is_finite() && sum != 0.0, "window: the filter's taps sum to {sum}, it cannot be scaled to unit gain");
    h.iter_mut().for_each(|v| *v /= sum);
    Ok(h)
}

/// numpy.sinc: sin(pi x) / (pi x), 1 at 0.
fn sinc(x: f64) -> f64 {
    if x == 0.0 {
        1.0
    } else {
        let y = std::f64::consts::PI * x;
        y.sin() / y
    }
}

/// The low-pass filter of a resampler.
#[derive(Debug, Clone, PartialEq)]
pub enum Design {
    /// firwin's design for the factor: 20 * max(up, down) + 1 taps of this window.
    Window(Window),
    /// Explicit taps (before scaling by `up`), centred on their middle tap.
    Taps(Vec<f64>),
}

/// A lane's background value, subtracted before filtering and added back after (numpy's
/// statistics: NaN anywhere in the lane makes it NaN).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Background {
    Mean,
    Median,
    Minimum,
    Maximum,
}

/// What the filter assumes beyond the ends of the signal (resample_poly's `padtype`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Padding {
    /// `cval` (0 by default).
    Constant(f64),
    /// The line through the first and last samples.
    Line,
    /// The lane's background: the signal minus it is padded with zeros.
    Background(Background),
}

impl Padding {
    pub fn from_name(padtype: &str, cval: Option<f64>) -> Result<Padding> {
        ensure!(cval.is_none() || padtype == "constant", "cval has no effect with padtype={padtype:?} (only with 'constant')");
        Ok(match padtype {
            "constant" => Padding::Constant(cval.unwrap_or(0.0)),
            "line" => Padding::Line,
            "mean" => Padding::Background(Background::Mean),
            "median" => Padding::Background(Background::Median),
            "minimum" => Padding::Background(Background::Minimum),
            "maximum" => Padding::Background(Background::Maximum),
            _ => {
                return Err(CoreError::new(format!(
                    "padtype must be one of 'constant', 'line', 'mean', 'median', 'minimum', 'maximum', got {padtype:?}"
                )))
            }
        })
    }
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// A checked resampling by `up / down` (reduced): its filter, scaled by `up`, and padding.
#[derive(Debug, Clone)]
pub struct Resampler {
    up: usize,
    down: usize,
    /// The filter times `up`; empty for the identity (up == down == 1 once reduced).
    h: Vec<f64>,
    /// Taps before the filter's centre.
    half_len: usize,
    padding: Padding,
    /// resample_poly's alignment (the output centred on the filter) or upfirdn's (causal: output
    /// `m` ends at input `m * down / up`, as scipy.signal.decimate's `zero_phase=False`).
    centred: bool,
}

impl Resampler {
    pub fn new(up: u64, down: u64, design: &Design, padding: Padding, centred: bool) -> Result<Resampler> {
        ensure!(up >= 1, "up must be a positive integer, got {up}");
        ensure!(down >= 1, "down must be a positive integer, got {down}");
        let g = gcd(up, down);
        let (up, down) = (up / g, down / g);
        let too_large = || CoreError::alloc(&format!("the filter of up={up}, down={down}"), None);
        let (up, down) = (usize::try_from(up).map_err(|_| too_large())?, usize::try_from(down).map_err(|_| too_large())?);
        if let Design::Taps(taps) = design {
            ensure!(!taps.is_empty(), "window (the FIR taps) must hold at least one tap");
            ensure!(taps.iter().all(|v| v.is_finite()), "window (the FIR taps) contains NaN or inf");
        }
        let (mut h, half_len) = match design {
            // The identity copies the signal (as scipy does, whatever the filter).
            _ if up == 1 && down == 1 => (Vec::new(), 0),
            Design::Taps(taps) => (alloc::collect(taps.len(), taps.iter().copied(), "the FIR taps of window")?, (taps.len() - 1) / 2),
            Design::Window(window) => {
                let max_rate = up.max(down);
                let half_len = max_rate.checked_mul(10).ok_or_else(too_large)?;
                let numtaps = half_len.checked_mul(2).and_then(|n| n.checked_add(1)).ok_or_else(too_large)?;
                let h = firwin(numtaps, 1.0 / max_rate as f64, window).map_err(|e| e.context(format!("up={up}, down={down}")))?;
                (h, half_len)
            }
        };
        h.iter_mut().for_each(|v| *v *= up as f64);
        Ok(Resampler { up, down, h, half_len, padding, centred })
    }

    /// (up, down) reduced by their greatest common divisor.
    pub fn ratio(&self) -> (usize, usize) {
        (self.up, self.down)
    }

    /// The filter as applied (times `up`); empty for the identity.
    pub fn taps(&self) -> &[f64] {
        &self.h
    }

    /// Output samples for `n` input samples: ceil(n * up / down).
    pub fn output_len(&self, n: usize) -> Result<usize> {
        ensure!(n >= 1, "x has no samples to resample");
        let total = n as u128 * self.up as u128;
        usize::try_from(total.div_ceil(self.down as u128)).map_err(|_| CoreError::alloc("the output for x", None))
    }

    /// The shape of the result for an array of `shape` resampled along `axis`.
    pub fn output_shape(&self, shape: &[usize], axis: usize) -> Result<Vec<usize>> {
        ensure!(axis < shape.len(), "axis {axis} is out of bounds for an array of {} dimensions", shape.len());
        let mut out = shape.to_vec();
        out[axis] = self.output_len(shape[axis])?;
        Ok(out)
    }

    /// The filter arranged for signals of `n` samples.
    pub fn plan(&self, n: usize) -> Result<Plan> {
        let n_out = self.output_len(n)?;
        let (up, down) = (self.up as u128, self.down as u128);
        let what = format!("the polyphase filter of up={}, down={}", self.up, self.down);
        let overflow = || CoreError::alloc(&what, None);
        if self.h.is_empty() {
            return Ok(Plan { identity: true, up: 1, down: 1, taps: Vec::new(), hpp: 1, first: 0, n, n_out, padding: self.padding });
        }
        let len_h = self.h.len() as u128;
        let (pre, post, first) = if self.centred {
            // scipy: zeros before the filter put output 0 at input 0 (n_pre_pad, n_pre_remove), and
            // zeros after it give the full output's length room for the kept part (n_post_pad).
            let half = self.half_len as u128;
            let pre = down - half % down;
            let first = (half + pre) / down;
            let need = (n_out as u128 + first - 1).checked_mul(down).ok_or_else(overflow)? + 1;
            let have = (n as u128 - 1) * up + len_h + pre;
            (pre, need.saturating_sub(have), first)
        } else {
            (0, 0, 0)
        };
        let hpp = (len_h + pre + post).div_ceil(up);
        let hpp = usize::try_from(hpp).map_err(|_| overflow())?;
        let len = alloc::checked_len::<f64>(&[hpp, self.up], &what)?;
        let mut taps = alloc::vec_of(len, 0.0, &what)?;
        // Phase t holds taps t, t + up, t + 2 up, ... of the padded filter, reversed (scipy's
        // h_trans_flip): its dot product with the window of input ending at m * down / up.
        for (t, phase) in taps.chunks_mut(hpp).enumerate() {
            for (j, tap) in phase.iter_mut().enumerate() {
                let k = (t + (hpp - 1 - j) * self.up) as u128;
                if k >= pre && k < pre + len_h {
                    *tap = self.h[(k - pre) as usize];
                }
            }
        }
        Ok(Plan { identity: false, up: self.up, down: self.down, taps, hpp, first, n, n_out, padding: self.padding })
    }

    /// `x` resampled along `axis`, in standard layout (for tests and callers without a buffer).
    pub fn resample<T: Real>(&self, x: ArrayViewD<T>, axis: usize) -> Result<ArrayD<T>> {
        let shape = self.output_shape(x.shape(), axis)?;
        let what = format!("the output for x (shape {shape:?})");
        let mut out = alloc::vec_of(alloc::checked_len::<T>(&shape, &what)?, T::from_f64(0.0), &what)?;
        self.plan(x.len_of(Axis(axis)))?.resample_into(x, axis, &mut out)?;
        Ok(ArrayD::from_shape_vec(IxDyn(&shape), out).expect("the output's shape"))
    }
}

/// A resampler's filter arranged for signals of one length.
#[derive(Debug, Clone)]
pub struct Plan {
    identity: bool,
    up: usize,
    down: usize,
    /// `up` phases of `hpp` taps each.
    taps: Vec<f64>,
    hpp: usize,
    /// The index of output 0 in upfirdn's full output.
    first: u128,
    n: usize,
    n_out: usize,
    padding: Padding,
}

/// Reusable buffers of a task.
#[derive(Default)]
pub struct Work {
    block: BlockWork,
    output: Vec<f64>,
}

/// What a block of outputs is computed from.
#[derive(Default)]
struct BlockWork {
    /// The block's input window, dealt into rows.
    rows: Vec<f64>,
    /// The first output of each phase class.
    starts: Vec<(usize, usize)>,
}

impl Plan {
    pub fn n_out(&self) -> usize {
        self.n_out
    }

    /// Outputs per block: phase classes of whole tiles.
    fn block_len(&self) -> usize {
        BLOCK.max(WIDE * self.up)
    }

    /// Every lane of `x` along `axis` (of this plan's length) into `out`, the result in standard
    /// layout; in parallel over blocks of outputs.
    pub fn resample_into<T: Real>(&self, x: ArrayViewD<T>, axis: usize, out: &mut [T]) -> Result<()> {
        ensure!(axis < x.ndim(), "axis {axis} is out of bounds for an array of {} dimensions", x.ndim());
        ensure!(x.len_of(Axis(axis)) == self.n, "x has {} samples along axis {axis}, the plan {}", x.len_of(Axis(axis)), self.n);
        let mut shape = x.shape().to_vec();
        shape[axis] = self.n_out;
        ensure!(out.len() == x.len() / self.n * self.n_out, "out has {} elements, the result {shape:?}", out.len());
        if out.is_empty() {
            return Ok(());
        }
        let mut out = ArrayViewMutD::from_shape(IxDyn(&shape), out).expect("sizes checked");
        let count = x.len() / self.n;
        let inputs = alloc::collect(count, x.lanes(Axis(axis)), "the lanes of x")?;
        let mut backgrounds = alloc::vec_of(count, 0.0, "the background values of the lanes of x")?;
        if let Padding::Background(kind) = self.padding {
            backgrounds.par_iter_mut().zip(inputs.par_iter()).try_for_each_init(Vec::new, |buf, (b, lane)| {
                *b = background(kind, lane, buf)?;
                Ok::<_, CoreError>(())
            })?;
        }
        let what = "the blocks of the output for x";
        let block = self.block_len();
        let mut tasks: Vec<(usize, usize, ArrayViewMut1<T>)> = alloc::with_capacity(
            alloc::checked_len::<(usize, usize, ArrayViewMut1<T>)>(&[count, self.n_out.div_ceil(block)], what)?,
            what,
        )?;
        for (i, mut rest) in out.lanes_mut(Axis(axis)).into_iter().enumerate() {
            let mut j0 = 0;
            while rest.len() > block {
                let (part, after) = rest.split_at(Axis(0), block);
                tasks.push((i, j0, part));
                (rest, j0) = (after, j0 + block);
            }
            tasks.push((i, j0, rest));
        }
        tasks.into_par_iter().try_for_each_init(Work::default, |work, (i, j0, mut part): (usize, usize, ArrayViewMut1<T>)| {
            let len = part.len();
            alloc::resize(&mut work.output, len, 0.0, "a block of the output for x")?;
            self.block(inputs[i].view(), backgrounds[i], j0, &mut work.block, &mut work.output[..len])?;
            match part.as_slice_mut() {
                Some(o) => o.iter_mut().zip(&work.output).for_each(|(o, &v)| *o = T::from_f64(v)),
                None => part.iter_mut().zip(&work.output).for_each(|(o, &v)| *o = T::from_f64(v)),
            }
            Ok(())
        })
    }

    /// One signal of this plan's length into `out` (n_out values), on the calling thread.
    pub fn resample_lane(&self, x: ArrayView1<f64>, out: &mut [f64], work: &mut Work) -> Result<()> {
        ensure!(x.len() == self.n && out.len() == self.n_out, "the lane has {} samples and room for {}", x.len(), out.len());
        let bg = match self.padding {
            Padding::Background(kind) => background(kind, &x, &mut work.output)?,
            _ => 0.0,
        };
        let block = self.block_len();
        for (j0, part) in (0..).step_by(block).zip(out.chunks_mut(block)) {
            self.block(x.view(), bg, j0, &mut work.block, part)?;
        }
        Ok(())
    }

    /// Outputs `j0..j0 + out.len()` of lane `x`, whose background is `bg`.
    fn block<T: Real>(&self, x: ArrayView1<T>, bg: f64, j0: usize, work: &mut BlockWork, out: &mut [f64]) -> Result<()> {
        if self.identity {
            x.slice(s![j0..j0 + out.len()]).iter().zip(out.iter_mut()).for_each(|(&v, o)| *o = v.to_f64());
            return Ok(());
        }
        let (up, down) = (self.up as u128, self.down as u128);
        // Outputs m of upfirdn's full output; the input window of m ends at m * down / up.
        let m0 = self.first + j0 as u128;
        let m1 = m0 + out.len() as u128 - 1;
        let (end0, t0) = ((m0 * down / up) as i128, (m0 * down % up) as usize);
        let end1 = (m1 * down / up) as i128;
        let start = end0 - (self.hpp as i128 - 1);
        let len = (end1 - start + 1) as usize;
        // Outputs j, j + up, j + 2 up, ... share a phase, and their windows start `down` apart:
        // the window, dealt into `down` rows, holds their inputs in columns, one SIMD lane each.
        let row_len = len.div_ceil(self.down) + WIDE + 1;
        let what = "the input window of a block of x";
        alloc::resize(&mut work.rows, alloc::checked_len::<f64>(&[self.down, row_len], what)?, 0.0, what)?;
        let mut rows = Rows { rows: &mut work.rows, down: self.down, row_len, r: 0, o: 0 };
        let n = self.n as i128;
        let (first, last) = (x[0].to_f64(), x[self.n - 1].to_f64());
        let extend = |idx: i128| match self.padding {
            Padding::Constant(c) => c,
            Padding::Background(_) => 0.0,
            // scipy's slope: (x[n-1] - x[0]) / (n - 1), NaN for one sample.
            Padding::Line => {
                let slope = (last - first) / (self.n - 1) as f64;
                if idx < 0 {
                    first + idx as f64 * slope
                } else {
                    last + (idx - n + 1) as f64 * slope
                }
            }
        };
        // The extension before 0, the input (minus its background), the extension from n on.
        (start..(end1 + 1).min(0)).for_each(|i| rows.push(extend(i)));
        let (lo, hi) = (start.max(0), (end1 + 1).min(n));
        if lo < hi {
            let inside = x.slice(s![lo as usize..hi as usize]);
            match inside.as_slice() {
                Some(values) => rows.push_slice(values, bg),
                None => inside.iter().for_each(|v| rows.push(v.to_f64() - bg)),
            }
        }
        (start.max(n)..end1 + 1).for_each(|i| rows.push(extend(i)));
        rows.zero_tails(len);
        // The first output of each phase class: its window's start in the block's window, its phase.
        alloc::clear_for(&mut work.starts, self.up.min(out.len()), "the phases of a block of x")?;
        let (q, r) = (self.down / self.up, self.down % self.up);
        let (mut s, mut t) = (0, t0);
        for _ in 0..self.up.min(out.len()) {
            work.starts.push((s, t));
            s += q;
            t += r;
            if t >= self.up {
                t -= self.up;
                s += 1;
            }
        }
        polyphase(&self.taps, self.hpp, self.up, self.down, &work.starts, &work.rows, row_len, out);
        if bg != 0.0 {
            out.iter_mut().for_each(|v| *v += bg);
        }
        Ok(())
    }
}

/// The window of a block dealt into `down` rows: sample `b` at `rows[b % down][b / down]`.
struct Rows<'a> {
    rows: &'a mut [f64],
    down: usize,
    row_len: usize,
    /// Where the next sample goes.
    r: usize,
    o: usize,
}

impl Rows<'_> {
    #[inline(always)]
    fn push(&mut self, v: f64) {
        self.rows[self.r * self.row_len + self.o] = v;
        self.r += 1;
        if self.r == self.down {
            self.r = 0;
            self.o += 1;
        }
    }

    /// `values - bg`, a row at a time where they fill whole columns.
    fn push_slice<T: Real>(&mut self, mut values: &[T], bg: f64) {
        while self.r != 0 && !values.is_empty() {
            self.push(values[0].to_f64() - bg);
            values = &values[1..];
        }
        let cols = values.len() / self.down;
        for r in 0..self.down.min(values.len()) {
            let row = &mut self.rows[r * self.row_len + self.o..][..cols];
            for (o, v) in row.iter_mut().zip(values[r..].iter().step_by(self.down)) {
                *o = v.to_f64() - bg;
            }
        }
        self.o += cols;
        values[cols * self.down..].iter().for_each(|v| self.push(v.to_f64() - bg));
    }

    /// Zeros after the `len` samples of each row: the lanes of outputs past the block's end read
    /// them (and are discarded), and stale values could be subnormal.
    fn zero_tails(&mut self, len: usize) {
        for (r, row) in self.rows.chunks_mut(self.row_len).enumerate() {
            row[len.saturating_sub(r).div_ceil(self.down)..].fill(0.0);
        }
    }
}

/// The lane's background value, as numpy computes it (NaN if the lane holds NaN).
fn background<T: Real>(kind: Background, x: &ArrayView1<T>, buf: &mut Vec<f64>) -> Result<f64> {
    alloc::clear_for(buf, x.len(), "a copy of a lane of x (its background value)")?;
    buf.extend(x.iter().map(|v| v.to_f64()));
    if buf.iter().any(|v| v.is_nan()) {
        return Ok(f64::NAN);
    }
    Ok(match kind {
        Background::Mean => {
            let sum = pairwise_sum(buf);
            if sum.is_finite() || buf.iter().any(|v| v.is_infinite()) {
                sum / buf.len() as f64
            } else {
                // Finite values whose sum overflows: the mean of halves.
                buf.iter().map(|v| v / buf.len() as f64).sum()
            }
        }
        Background::Minimum => buf.iter().copied().fold(f64::INFINITY, f64::min),
        Background::Maximum => buf.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        Background::Median => {
            let n = buf.len();
            let (_, &mut hi, _) = buf.select_nth_unstable_by(n / 2, f64::total_cmp);
            if n % 2 == 1 {
                hi
            } else {
                let lo = buf[..n / 2].iter().copied().fold(f64::NEG_INFINITY, f64::max);
                // numpy.median: the mean of the middle two.
                lo + (hi - lo) / 2.0
            }
        }
    })
}

/// numpy's pairwise summation (blocks of 128, halved recursively): its rounding is that of a
/// tree, not of a chain.
fn pairwise_sum(x: &[f64]) -> f64 {
    if x.len() <= 128 {
        x.iter().sum()
    } else {
        let half = x.len() / 2 / 8 * 8;
        pairwise_sum(&x[..half]) + pairwise_sum(&x[half..])
    }
}

/// Output lanes per SIMD vector, and per accumulator tile (four vectors).
const LANES: usize = 8;
const WIDE: usize = 4 * LANES;

simd_fn! {
    /// `out[j] = sum_k phase_j[k] * window_j[k]` for the outputs of a block: for each phase class
    /// `c` (outputs `c, c + up, ...`, whose `(start, phase)` is `starts[c]`), tiles of outputs side by
    /// side in SIMD lanes, each tap broadcast over them, taps in scipy's order.
    #[allow(clippy::too_many_arguments)]
    fn polyphase(taps: &[f64], hpp: usize, up: usize, down: usize, starts: &[(usize, usize)], rows: &[f64], row_len: usize, out: &mut [f64]) {
        let fma = multiversion::target::target_cfg_f!(target_feature = "fma");
        for (c, &(s, t)) in starts.iter().enumerate() {
            let phase = &taps[t * hpp..(t + 1) * hpp];
            let count = (out.len() - c).div_ceil(up);
            let mut i = 0;
            while i < count {
                if count - i >= WIDE {
                    let acc = if fma { tile::<4, true>(phase, rows, row_len, down, s, i) } else { tile::<4, false>(phase, rows, row_len, down, s, i) };
                    store(acc.as_flattened(), out, c + i * up, up);
                    i += WIDE;
                } else {
                    let acc = if fma { tile::<1, true>(phase, rows, row_len, down, s, i) } else { tile::<1, false>(phase, rows, row_len, down, s, i) };
                    store(&acc[0][..LANES.min(count - i)], out, c + i * up, up);
                    i += LANES;
                }
            }
        }
    }
}

/// Outputs `i0..i0 + V * LANES` of a phase class whose first output's window starts at `s`.
/// Helpers are #[inline(always)] plain functions so that they take their caller's SIMD target.
#[inline(always)]
fn tile<const V: usize, const FMA: bool>(
    phase: &[f64],
    rows: &[f64],
    row_len: usize,
    down: usize,
    s: usize,
    i0: usize,
) -> [[f64; LANES]; V] {
    let mut acc = [[0.0f64; LANES]; V];
    // Tap k meets sample s + k of each window: row (s + k) % down, column (s + k) / down + i.
    let (mut r, mut o) = (s % down, s / down);
    for &tap in phase {
        let x = &rows[r * row_len + o + i0..][..V * LANES];
        for v in 0..V {
            for l in 0..LANES {
                let xv = x[v * LANES + l];
                acc[v][l] = if FMA { tap.mul_add(xv, acc[v][l]) } else { acc[v][l] + tap * xv };
            }
        }
        r += 1;
        if r == down {
            r = 0;
            o += 1;
        }
    }
    acc
}

#[inline(always)]
fn store(values: &[f64], out: &mut [f64], first: usize, step: usize) {
    for (k, &v) in values.iter().enumerate() {
        match out.get_mut(first + k * step) {
            Some(o) => *o = v,
            None => break,
        }
    }
}

/// The fraction `up / down` equal to `ratio` (to 1e-9 relative) with both at most `max`: the
/// best rational approximation (continued fractions), or None.
pub fn small_ratio(ratio: f64, max: u64) -> Option<(u64, u64)> {
    if !(ratio.is_finite() && ratio > 0.0) {
        return None;
    }
    // Convergents h/k of the continued fraction of ratio.
    let (mut h0, mut h1, mut k0, mut k1) = (0u64, 1u64, 1u64, 0u64);
    let mut x = ratio;
    for _ in 0..64 {
        let a = x.floor();
        if a > max as f64 {
            break;
        }
        let a = a as u64;
        let (h2, k2) = (a.checked_mul(h1)?.checked_add(h0)?, a.checked_mul(k1)?.checked_add(k0)?);
        if h2 > max || k2 > max {
            break;
        }
        (h0, h1, k0, k1) = (h1, h2, k1, k2);
        if ((h1 as f64 / k1 as f64) - ratio).abs() <= 1e-9 * ratio {
            return Some((h1, k1));
        }
        let frac = x - a as f64;
        if frac == 0.0 {
            break;
        }
        x = 1.0 / frac;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spectral::bessel_i0;
    use crate::testing::noise;
    use ndarray::{Array1, Array2, ShapeBuilder};

    fn kaiser() -> Design {
        Design::Window(Window::Kaiser(5.0))
    }

    #[test]
    fn bessel_i0_equals_scipy() {
        // scipy.special.i0
        for (x, expected) in [
            (0.0, 1.0),
            (1.0, 1.2660658777520082),
            (5.0, 27.239871823604442),
            (10.0, 2815.716628466254),
            (50.0, 2.9325537838493355e+20),
            (700.0, 1.5295933476718735e+302),
        ] {
            let got = bessel_i0(x);
            assert!(
                (got - expected).abs() <= 4e-15 * expected.max(1.0) * if x > 100.0 { 20.0 } else { 1.0 },
                "I0({x}) = {got}, not {expected}"
            );
            assert_eq!(bessel_i0(-x), got, "I0 is even");
        }
        assert!(bessel_i0(f64::NAN).is_nan());
    }

    #[test]
    fn firwin_equals_scipy() {
        // scipy.signal.firwin(11, 0.3, window=("kaiser", 5.0)) and firwin(8, 0.5) (hamming).
        let expected = [
            -0.0023718003085671825,
            -0.008505447569927146,
            0.013805798765590032,
            0.10602505511737073,
            0.2388184727130681,
            0.304455842564931,
        ];
        let h = firwin(11, 0.3, &Window::Kaiser(5.0)).unwrap();
        for (i, e) in expected.iter().enumerate() {
            assert!((h[i] - e).abs() < 1e-15 && (h[10 - i] - e).abs() < 1e-15, "{h:?}");
        }
        let expected = [-0.005164298061199512, -0.02288252492025573, 0.09675565053696812, 0.43129117244448717];
        let h = firwin(8, 0.5, &Window::Hamming).unwrap();
        for (i, e) in expected.iter().enumerate() {
            assert!((h[i] - e).abs() < 1e-15 && (h[7 - i] - e).abs() < 1e-15, "{h:?}");
        }
        // scipy.signal.get_window(("kaiser", 5.0), 7, fftbins=False)
        let w = Window::Kaiser(5.0).symmetric_named(7, "n").unwrap();
        let expected = [0.036710892271286676, 0.3282019573723212, 0.7753221044454067, 1.0];
        for (i, e) in expected.iter().enumerate() {
            assert!((w[i] - e).abs() < 1e-15 && (w[6 - i] - e).abs() < 1e-15, "{w:?}");
        }
        assert_eq!(firwin(1, 0.5, &Window::Hann).unwrap(), vec![1.0]);
        assert!(firwin(0, 0.5, &Window::Hann).unwrap_err().to_string().contains("numtaps"));
        for bad in [0.0, 1.0, f64::NAN, -0.5] {
            assert!(firwin(5, bad, &Window::Hann).unwrap_err().to_string().starts_with("cutoff"));
        }
    }

    #[test]
    fn the_designed_filter_is_symmetric_with_dc_gain_up() {
        for (up, down) in [(25, 32), (4, 5), (1, 5), (7, 3), (5, 1)] {
            let r = Resampler::new(up, down, &kaiser(), Padding::Constant(0.0), true).unwrap();
            let h = r.taps();
            assert_eq!(h.len(), 20 * up.max(down) as usize + 1);
            for i in 0..h.len() {
                assert_eq!(h[i], h[h.len() - 1 - i]);
            }
            let gain: f64 = h.iter().sum();
            assert!((gain - up as f64).abs() < 1e-12 * up as f64, "{up}/{down}: {gain}");
        }
        // Reduced by the gcd: 50/40 is 5/4.
        let r = Resampler::new(50, 40, &Design::Window(Window::Hamming), Padding::Constant(0.0), true).unwrap();
        assert_eq!(r.ratio(), (5, 4));
        assert_eq!(r.taps().len(), 101);
    }

    /// upfirdn by its definition: zero-stuff by `up` (the extension too), convolve with h, keep
    /// every `down`-th sample from `first`; the extension reaches as far as the filter does.
    fn naive(x: &[f64], h: &[f64], up: usize, down: usize, first: usize, n_out: usize, ext: impl Fn(i64) -> f64) -> Vec<f64> {
        let n = x.len() as i64;
        (0..n_out)
            .map(|j| {
                let pos = ((first + j) * down) as i64;
                // y[pos] = sum_k h[k] * xup[pos - k], xup[i * up] = x_ext[i].
                let mut acc = 0.0;
                for (k, &hk) in h.iter().enumerate() {
                    let p = pos - k as i64;
                    if p.rem_euclid(up as i64) != 0 {
                        continue;
                    }
                    let i = p.div_euclid(up as i64);
                    acc += hk * if (0..n).contains(&i) { x[i as usize] } else { ext(i) };
                }
                acc
            })
            .collect()
    }

    /// scipy's alignment of `r`'s filter for n samples: (padded filter, first output).
    fn aligned(r: &Resampler, n: usize) -> (Vec<f64>, usize) {
        let (up, down) = r.ratio();
        let pre = down - r.half_len % down;
        let mut h = vec![0.0; pre];
        h.extend_from_slice(r.taps());
        let n_out = r.output_len(n).unwrap();
        let first = (r.half_len + pre) / down;
        while ((n - 1) * up + h.len() - 1) / down + 1 < n_out + first {
            h.push(0.0);
        }
        // upfirdn's phases: the filter padded to a multiple of up.
        h.resize(h.len().div_ceil(up) * up, 0.0);
        (h, first)
    }

    #[test]
    fn polyphase_equals_upsample_filter_downsample() {
        for (up, down) in [(25, 32), (4, 5), (1, 5), (5, 1), (3, 7), (7, 3), (2, 1), (1, 2), (200, 201), (201, 200)] {
            for n in [1, 2, 3, 17, 100, 9000] {
                let x = noise(n, (up * 100 + down + n) as u64);
                for padding in [Padding::Constant(0.0), Padding::Constant(2.5), Padding::Line] {
                    let r = Resampler::new(up as u64, down as u64, &kaiser(), padding, true).unwrap();
                    let y = r.resample(Array1::from(x.clone()).view().into_dyn(), 0).unwrap();
                    let (h, first) = aligned(&r, n);
                    let slope = if n > 1 { (x[n - 1] - x[0]) / (n - 1) as f64 } else { f64::NAN };
                    let ext = |i: i64| match padding {
                        Padding::Constant(c) => c,
                        _ if i < 0 => x[0] + i as f64 * slope,
                        _ => x[n - 1] + (i - n as i64 + 1) as f64 * slope,
                    };
                    let expected = naive(&x, &h, up, down, first, r.output_len(n).unwrap(), ext);
                    assert_eq!(y.len(), n.saturating_mul(up).div_ceil(down));
                    for (a, b) in y.iter().zip(&expected) {
                        assert!((a - b).abs() <= 1e-13 || (a.is_nan() && b.is_nan()), "{up}/{down} n={n} {padding:?}: {a} vs {b}");
                    }
                }
            }
        }
    }

    #[test]
    fn causal_alignment_is_upfirdn() {
        let x = noise(500, 3);
        let taps: Vec<f64> = noise(31, 4);
        let r = Resampler::new(1, 4, &Design::Taps(taps.clone()), Padding::Constant(0.0), false).unwrap();
        let y = r.resample(Array1::from(x.clone()).view().into_dyn(), 0).unwrap();
        let expected = naive(&x, &taps, 1, 4, 0, 125, |_| 0.0);
        for (a, b) in y.iter().zip(&expected) {
            assert!((a - b).abs() <= 1e-13, "{a} vs {b}");
        }
    }

    #[test]
    fn backgrounds_are_removed_and_restored() {
        let x: Vec<f64> = noise(301, 5).iter().map(|v| v + 100.0).collect();
        let view = Array1::from(x.clone());
        let plain = Resampler::new(2, 3, &kaiser(), Padding::Constant(0.0), true).unwrap();
        for (kind, value) in [
            (Background::Mean, x.iter().sum::<f64>() / 301.0),
            (Background::Minimum, x.iter().copied().fold(f64::INFINITY, f64::min)),
            (Background::Maximum, x.iter().copied().fold(f64::NEG_INFINITY, f64::max)),
            (Background::Median, {
                let mut s = x.clone();
                s.sort_by(f64::total_cmp);
                s[150]
            }),
        ] {
            let r = Resampler::new(2, 3, &kaiser(), Padding::Background(kind), true).unwrap();
            let y = r.resample(view.view().into_dyn(), 0).unwrap();
            let shifted = Array1::from(x.iter().map(|v| v - value).collect::<Vec<_>>());
            let expected = plain.resample(shifted.view().into_dyn(), 0).unwrap();
            for (a, b) in y.iter().zip(expected.iter()) {
                assert!((a - (b + value)).abs() < 1e-12, "{kind:?}: {a} vs {}", b + value);
            }
        }
        // Even counts: the mean of the middle two; NaN anywhere: NaN.
        let mut buf = Vec::new();
        assert_eq!(background(Background::Median, &ndarray::arr1(&[4.0, 1.0, 3.0, 2.0]).view(), &mut buf).unwrap(), 2.5);
        assert!(background(Background::Maximum, &ndarray::arr1(&[1.0, f64::NAN]).view(), &mut buf).unwrap().is_nan());
    }

    #[test]
    fn nan_reaches_the_outputs_whose_taps_meet_it() {
        let n = 400;
        let mut x = noise(n, 6);
        x[200] = f64::NAN;
        let r = Resampler::new(25, 32, &kaiser(), Padding::Constant(0.0), true).unwrap();
        let y = r.resample(Array1::from(x.clone()).view().into_dyn(), 0).unwrap();
        let (h, first) = aligned(&r, n);
        let expected = naive(&x, &h, 25, 32, first, r.output_len(n).unwrap(), |_| 0.0);
        for (a, b) in y.iter().zip(&expected) {
            assert_eq!(a.is_nan(), b.is_nan());
        }
        assert!(y.iter().any(|v| v.is_nan()) && y.iter().any(|v| !v.is_nan()));
    }

    #[test]
    fn any_axis_and_layout_give_the_same_lanes() {
        let x = Array2::from_shape_vec((3, 5000), noise(15000, 7)).unwrap();
        let r = Resampler::new(4, 5, &kaiser(), Padding::Line, true).unwrap();
        let rows = r.resample(x.view().into_dyn(), 1).unwrap();
        let t = x.t();
        let cols = r.resample(t.into_dyn(), 0).unwrap();
        let x32 = x.mapv(|v| v as f32);
        let rows32 = r.resample(x32.view().into_dyn(), 1).unwrap();
        for i in 0..3 {
            for j in 0..4000 {
                assert_eq!(rows[[i, j]], cols[[j, i]]);
                assert!((rows32[[i, j]] as f64 - rows[[i, j]]).abs() < 1e-6);
            }
        }
        // The identity copies.
        let id = Resampler::new(3, 3, &kaiser(), Padding::Constant(0.0), true).unwrap();
        assert_eq!(id.resample(x.view().into_dyn(), 1).unwrap(), x.clone().into_dyn());
    }

    #[test]
    fn bad_arguments_are_named() {
        let pad = Padding::Constant(0.0);
        assert!(Resampler::new(0, 3, &kaiser(), pad, true).unwrap_err().to_string().starts_with("up must"));
        assert!(Resampler::new(3, 0, &kaiser(), pad, true).unwrap_err().to_string().starts_with("down must"));
        assert!(Resampler::new(2, 3, &Design::Taps(vec![]), pad, true).unwrap_err().to_string().contains("window"));
        assert!(Resampler::new(2, 3, &Design::Taps(vec![1.0, f64::NAN]), pad, true).unwrap_err().to_string().contains("window"));
        let err = Resampler::new(1 << 40, 1, &kaiser(), pad, true).unwrap_err();
        assert!(err.is_alloc() && err.to_string().contains("up="), "{err}");
        let err = Resampler::new(u64::MAX, 1, &kaiser(), pad, true).unwrap_err();
        assert!(err.is_alloc() && err.to_string().contains("up="), "{err}");
        assert!(Padding::from_name("wrap", None).unwrap_err().to_string().starts_with("padtype"));
        assert!(Padding::from_name("mean", Some(1.0)).unwrap_err().to_string().starts_with("cval"));
        assert_eq!(Padding::from_name("constant", Some(1.5)).unwrap(), Padding::Constant(1.5));
        let r = Resampler::new(2, 3, &kaiser(), pad, true).unwrap();
        assert!(r.output_shape(&[3, 0], 1).is_err());
        assert!(r.output_shape(&[3, 4], 2).is_err());
        // A huge upsampling of a short signal: its output.
        let taps = Resampler::new(u64::MAX, 1, &Design::Taps(vec![1.0]), pad, true).unwrap();
        assert!(taps.output_len(1 << 20).unwrap_err().is_alloc());
    }

    #[test]
    fn zero_strided_signals_beyond_memory_are_allocation_errors() {
        let one = [0.0f64];
        let huge = ArrayViewD::from_shape(IxDyn(&[1 << 40, 1 << 14, 64]).strides(IxDyn(&[0, 0, 0])), &one[..]).unwrap();
        let r = Resampler::new(25, 32, &kaiser(), Padding::Constant(0.0), true).unwrap();
        assert!(r.resample(huge, 2).unwrap_err().is_alloc());
    }

    #[test]
    fn small_ratios() {
        assert_eq!(small_ratio(40.0 / 200.0, 1000), Some((1, 5)));
        assert_eq!(small_ratio(200.0 / 256.0, 1000), Some((25, 32)));
        assert_eq!(small_ratio(1.0, 1000), Some((1, 1)));
        assert_eq!(small_ratio(1000.0 / 200.0, 1000), Some((5, 1)));
        assert_eq!(small_ratio(100.0 / 3.0 / 200.0, 1000), Some((1, 6)));
        assert_eq!(small_ratio(999.0 / 1000.0, 1000), Some((999, 1000)));
        assert_eq!(small_ratio(1000.0 / 1001.0, 1000), None);
        assert_eq!(small_ratio(std::f64::consts::PI, 1000), None);
        assert_eq!(small_ratio(f64::NAN, 1000), None);
        assert_eq!(small_ratio(0.0, 1000), None);
        assert_eq!(small_ratio(1e-12, 1000), None);
    }
}
