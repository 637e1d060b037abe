//! Zero-phase IIR filtering with second-order sections, following scipy.signal.sosfiltfilt's
//! conventions exactly: odd extension, its padlen, steady-state initial conditions scaled by the
//! first sample, a forward and a backward pass.
//!
//! Signals are processed in groups of `LANES` interleaved channels so that the recursive (and so
//! latency-bound) section update runs across channels in SIMD registers.

use crate::alloc;
use crate::ensure;
use crate::error::{CoreError, Result};
use crate::real::Real;
use crate::simd::simd_fn;
use ndarray::{ArrayD, ArrayView, ArrayView1, ArrayViewD, ArrayViewMut1, ArrayViewMutD, Axis, Dimension, Ix2};
use rayon::prelude::*;

/// Signals filtered together, one per SIMD lane.
const LANES: usize = 8;
/// Time steps per block: a block of frames stays in L1 from its transposition through every
/// section.
const BLOCK: usize = 64;

type Frame = [f64; LANES];

/// The frame buffer's unit: frames start on cache lines instead of straddling them.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct CacheLine([f64; 8]);
const LINES_PER_FRAME: usize = LANES / 8;
const _: () = assert!(LANES % 8 == 0);

/// A validated cascade of second-order sections `[b0, b1, b2, a0, a1, a2]` with `a0 == 1`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sos {
    sections: Vec<[f64; 6]>,
}

impl Sos {
    pub fn new<D: Dimension>(sos: ArrayView<f64, D>) -> Result<Sos> {
        let shape = sos.shape();
        ensure!(
            shape.len() == 2 && shape[1] == 6 && shape[0] >= 1,
            "sos must have shape (n_sections, 6) with n_sections >= 1, got {shape:?}"
        );
        let sos = sos.into_dimensionality::<Ix2>().expect("2-d");
        let mut sections = alloc::with_capacity(sos.nrows(), "the sections of sos")?;
        for (k, row) in sos.rows().into_iter().enumerate() {
            ensure!(row.iter().all(|v| v.is_finite()), "sos section {k} contains NaN or inf: {row}");
            ensure!(row[3] == 1.0, "sos section {k}: a0 (column 3) must be 1, got {}", row[3]);
            let section = [row[0], row[1], row[2], row[3], row[4], row[5]];
            ensure!(
                1.0 + section[4] + section[5] != 0.0,
                "sos section {k} has a pole at z=1 (1 + a1 + a2 == 0): its steady state is undefined"
            );
            sections.push(section);
        }
        Ok(Sos { sections })
    }

    pub fn sections(&self) -> &[[f64; 6]] {
        &self.sections
    }

    /// scipy's default padding: 3 * ntaps, with ntaps = 2 * n_sections + 1 minus the trailing
    /// zero coefficients that every section shares in b and a (first-order sections).
    pub fn padlen(&self) -> usize {
        let zero_b2 = self.sections.iter().filter(|s| s[2] == 0.0).count();
        let zero_a2 = self.sections.iter().filter(|s| s[5] == 0.0).count();
        3 * (2 * self.sections.len() + 1 - zero_b2.min(zero_a2))
    }

    /// Steady-state state of each section for a unit step (scipy.signal.sosfilt_zi).
    pub fn initial_conditions(&self) -> Vec<[f64; 2]> {
        let mut scale = 1.0;
        self.sections
            .iter()
            .map(|s| {
                let zi = biquad_zi(s);
                scale_zi(&mut scale, s, zi)
            })
            .collect()
    }
}

fn scale_zi(scale: &mut f64, s: &[f64; 6], zi: [f64; 2]) -> [f64; 2] {
    let scaled = [*scale * zi[0], *scale * zi[1]];
    *scale *= (s[0] + s[1] + s[2]) / (s[3] + s[4] + s[5]);
    scaled
}

/// lfilter_zi of one section: solves (I - A^T) zi = b[1:] - a[1:] * b0 for the companion
/// matrix A of [1, a1, a2], in closed form.
fn biquad_zi(s: &[f64; 6]) -> [f64; 2] {
    let [b0, b1, b2, _, a1, a2] = *s;
    let r0 = b1 - a1 * b0;
    let r1 = b2 - a2 * b0;
    let z0 = (r0 + r1) / (1.0 + a1 + a2);
    [z0, r1 - a2 * z0]
}

/// Zero-phase filtering of every 1-D lane of `x` along `axis` (scipy.signal.sosfiltfilt).
/// Computed in f64 whatever `T` is; the output has `x`'s shape in standard layout.
pub fn sosfiltfilt<T: Real>(sos: &Sos, x: ArrayViewD<T>, axis: usize) -> Result<ArrayD<T>> {
    let mut out = alloc::vec_of(x.len(), T::from_f64(0.0), "the output for x")?;
    sosfiltfilt_into(sos, x.view(), axis, &mut out)?;
    Ok(ArrayD::from_shape_vec(x.raw_dim(), out).expect("x's shape"))
}

/// [`sosfiltfilt`] into `out`, a buffer of `x`'s size holding the result in standard layout.
pub fn sosfiltfilt_into<T: Real>(sos: &Sos, x: ArrayViewD<T>, axis: usize, out: &mut [T]) -> Result<()> {
    filtfilt_into(sos, &Plan::new(sos), x, axis, out)
}

fn filtfilt_into<T: Real>(sos: &Sos, plan: &Plan, x: ArrayViewD<T>, axis: usize, out: &mut [T]) -> Result<()> {
    ensure!(axis < x.ndim(), "axis {axis} is out of bounds for an array of {} dimensions", x.ndim());
    let n = x.len_of(Axis(axis));
    let padlen = sos.padlen();
    ensure!(
        n > padlen,
        "the signal along axis {axis} has {n} samples, but filtering with {} sections pads \
         {padlen} samples at each end and needs more than {padlen} samples",
        sos.sections.len()
    );
    ensure!(out.len() == x.len(), "out has {} elements, x has {}", out.len(), x.len());
    let mut out = ArrayViewMutD::from_shape(x.raw_dim(), out).expect("sizes checked");
    let count = x.len() / n;
    let inputs = alloc::collect(count, x.lanes(Axis(axis)), "the lanes of x")?;
    let mut outputs = alloc::collect(count, out.lanes_mut(Axis(axis)), "the lanes of the output for x")?;
    let finite = outputs
        .par_chunks_mut(LANES)
        .zip(inputs.par_chunks(LANES))
        .map(|(outs, ins)| filtfilt_group(plan, padlen, ins, outs))
        .try_reduce(|| true, |a, b| Ok(a && b))?;
    // An IIR filter spreads one NaN over the whole lane: refuse rather than return garbage.
    ensure!(finite, "x contains NaN or inf; fill gaps before filtering");
    Ok(())
}

/// How the cascade is evaluated.
struct Plan {
    /// The sections as run: scipy's, or each divided by its b0 (`monic`).
    sections: Vec<[f64; 6]>,
    /// Their steady states for a unit step.
    zi: Vec<[f64; 2]>,
    /// Every section has b0 == b2 == 1, and the output is scaled by `out_scale`.
    monic: bool,
    /// The product of the b0s divided out, squared: both passes ran without it.
    out_scale: f64,
}

impl Plan {
    /// Symmetric sections (b2 == b0: Butterworth, notch) are run monic when that loses nothing
    /// (the scale stays a normal number): a monic section needs three multiplies, a general one
    /// five, and the passes are bound by multiplier throughput. The cascade is linear, so
    /// dividing each section's numerator by its b0 and multiplying the result by their product
    /// gives the same filter; only the rounding differs, far below scipy parity (1e-10).
    fn new(sos: &Sos) -> Plan {
        let gain: f64 = sos.sections.iter().map(|s| s[0]).product();
        let symmetric = sos.sections.iter().all(|s| s[0] != 0.0 && s[2] == s[0]);
        if symmetric && (gain * gain).is_normal() {
            let sections: Vec<[f64; 6]> = sos.sections.iter().map(|s| [1.0, s[1] / s[0], 1.0, 1.0, s[4], s[5]]).collect();
            let monic = Sos { sections };
            let zi = monic.initial_conditions();
            return Plan { sections: monic.sections, zi, monic: true, out_scale: gain * gain };
        }
        Plan::exact(sos)
    }

    /// scipy's sections and operation order, rounding included.
    fn exact(sos: &Sos) -> Plan {
        Plan { sections: sos.sections.clone(), zi: sos.initial_conditions(), monic: false, out_scale: 1.0 }
    }
}

fn filtfilt_group<T: Real>(plan: &Plan, padlen: usize, inputs: &[ArrayView1<T>], outputs: &mut [ArrayViewMut1<T>]) -> Result<bool> {
    let n = inputs[0].len();
    GROUP_BUFFER.with_borrow_mut(|buf| {
        // Reused across calls: every frame is written before it is read (see filtfilt_group_in).
        let what = "the filter's work space for lanes of x";
        let frames = n.checked_add(2 * padlen).ok_or_else(|| CoreError::alloc(what, None))?;
        alloc::resize(buf, alloc::checked_len::<CacheLine>(&[frames, LINES_PER_FRAME], what)?, CacheLine([0.0; 8]), what)?;
        // SAFETY: a frame is LINES_PER_FRAME cache lines of f64, with a smaller alignment.
        let buf: &mut [Frame] = unsafe { std::slice::from_raw_parts_mut(buf.as_mut_ptr().cast::<Frame>(), n + 2 * padlen) };
        let ins: Option<Vec<&[T]>> = inputs.iter().map(|lane| lane.as_slice()).collect();
        let source = match &ins {
            Some(rows) => Lanes::Rows(rows),
            None => Lanes::Views(inputs),
        };
        let mut outs: Vec<&mut [T]>;
        let sink = if outputs.iter().all(|lane| lane.is_standard_layout()) {
            outs = outputs.iter_mut().filter_map(|lane| lane.as_slice_mut()).collect();
            LanesMut::Rows(&mut outs)
        } else {
            LanesMut::Views(outputs)
        };
        Ok(filtfilt_group_in(plan, padlen, source, sink, buf))
    })
}

thread_local! {
    static GROUP_BUFFER: std::cell::RefCell<Vec<CacheLine>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Asks for the cache lines of `data` ahead of use. The rows of a group are 16 streams (plus the
/// buffer), more than the hardware prefetchers follow: without this the transpositions wait on
/// memory.
#[inline(always)]
fn prefetch<T>(data: &[T]) {
    #[cfg(target_arch = "x86_64")]
    {
        let bytes = std::mem::size_of_val(data);
        let start = data.as_ptr().cast::<i8>();
        for offset in (0..bytes).step_by(64) {
            // SAFETY: a prefetch never faults, and the address lies within `data`.
            unsafe { std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(start.add(offset)) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = data;
}

/// The signals of one group: contiguous rows (the fast path) or any 1-D views.
enum Lanes<'s, 'a, T> {
    Rows(&'s [&'a [T]]),
    Views(&'s [ArrayView1<'a, T>]),
}

impl<T: Real> Lanes<'_, '_, T> {
    fn count(&self) -> usize {
        match self {
            Lanes::Rows(rows) => rows.len(),
            Lanes::Views(views) => views.len(),
        }
    }

    /// Prefetches samples `t0..t0 + len` (clamped to the signals) of contiguous rows.
    fn prefetch(&self, t0: usize, len: usize) {
        if let Lanes::Rows(rows) = self {
            for row in rows.iter() {
                prefetch(&row[t0.min(row.len())..(t0 + len).min(row.len())]);
            }
        }
    }

    /// Frames `t0..t0 + frames.len()` of the signals, widened to f64; lanes past the signals are 0
    /// (never garbage: a subnormal left there by an earlier call would slow every step).
    fn gather(&self, t0: usize, frames: &mut [Frame]) {
        let len = frames.len();
        match self {
            Lanes::Rows(rows) => {
                let block: Vec<&[T]> = rows.iter().map(|row| &row[t0..t0 + len]).collect();
                transpose::gather(&block, frames);
            }
            Lanes::Views(views) => {
                for (lane, view) in views.iter().enumerate() {
                    let part = view.slice(ndarray::s![t0..t0 + len]);
                    for (frame, &v) in frames.iter_mut().zip(part.iter()) {
                        frame[lane] = v.to_f64();
                    }
                }
                for frame in frames.iter_mut() {
                    frame[views.len()..].fill(0.0);
                }
            }
        }
    }
}

/// The outputs of one group, as [`Lanes`].
enum LanesMut<'s, 'r, 'a, T> {
    Rows(&'s mut [&'r mut [T]]),
    Views(&'s mut [ArrayViewMut1<'a, T>]),
}

impl<T: Real> LanesMut<'_, '_, '_, T> {
    /// Prefetches samples `t0..t0 + len` (clamped to the signals) of contiguous rows.
    fn prefetch(&self, t0: usize, len: usize) {
        if let LanesMut::Rows(rows) = self {
            for row in rows.iter() {
                prefetch(&row[t0.min(row.len())..(t0 + len).min(row.len())]);
            }
        }
    }

    /// Writes lane `l` of `frames`, times `scale`, to signal `l` at `t0..t0 + frames.len()`, narrowed to `T`.
    fn scatter(&mut self, t0: usize, frames: &[Frame], scale: f64) {
        let len = frames.len();
        match self {
            LanesMut::Rows(rows) => {
                let mut block: Vec<&mut [T]> = rows.iter_mut().map(|row| &mut row[t0..t0 + len]).collect();
                transpose::scatter(frames, scale, &mut block);
            }
            LanesMut::Views(views) => {
                for (lane, view) in views.iter_mut().enumerate() {
                    let part = view.slice_mut(ndarray::s![t0..t0 + len]);
                    for (v, frame) in part.into_iter().zip(frames) {
                        *v = T::from_f64(frame[lane] * scale);
                    }
                }
            }
        }
    }
}

/// One group: odd extension, forward pass, backward pass, output. The forward pass reads the
/// input a block at a time (transposed into frames that are filtered while still in L1), the
/// backward pass writes the output the same way; `buf` holds the forward result in between.
fn filtfilt_group_in<T: Real>(
    plan: &Plan,
    padlen: usize,
    inputs: Lanes<'_, '_, T>,
    mut outputs: LanesMut<'_, '_, '_, T>,
    buf: &mut [Frame],
) -> bool {
    let m = inputs.count();
    let n = buf.len() - 2 * padlen;
    // Odd extension from the raw edge frames (gathered into place; the forward pass gathers
    // them again before filtering them): 2*x[0] - x[padlen..0] before, 2*x[n-1] -
    // x[n-2..n-2-padlen] after.
    inputs.gather(0, &mut buf[padlen..2 * padlen + 1]);
    inputs.gather(n - 1 - padlen, &mut buf[n - 1..n + padlen]);
    for j in 0..padlen {
        let (first, last) = (buf[padlen], buf[padlen + n - 1]);
        let (before, after) = (buf[2 * padlen - j], buf[padlen + n - 2 - j]);
        buf[j] = std::array::from_fn(|l| 2.0 * first[l] - before[l]);
        buf[padlen + n + j] = std::array::from_fn(|l| 2.0 * last[l] - after[l]);
    }

    let mut forward = Cascade::new(plan, &buf[0]);
    forward.run(&mut buf[..padlen], false);
    for t0 in (0..n).step_by(BLOCK) {
        // Two blocks ahead: a block's filtering takes about as long as a memory access.
        inputs.prefetch(t0 + 2 * BLOCK, BLOCK);
        prefetch(&buf[(padlen + t0 + BLOCK).min(buf.len())..(padlen + t0 + 2 * BLOCK).min(buf.len())]);
        let block = &mut buf[padlen + t0..padlen + n.min(t0 + BLOCK)];
        inputs.gather(t0, block);
        forward.run(block, false);
    }
    forward.run(&mut buf[padlen + n..], false);

    let mut backward = Cascade::new(plan, &buf[buf.len() - 1]);
    backward.run(&mut buf[padlen + n..], true);
    // Blocks aligned as in the forward pass, last first; the pre-extension's backward output
    // would be discarded, so it is not computed.
    for t0 in (0..n).step_by(BLOCK).rev() {
        if let Some(ahead) = t0.checked_sub(2 * BLOCK) {
            outputs.prefetch(ahead, BLOCK);
        }
        prefetch(&buf[(padlen + t0).saturating_sub(BLOCK)..padlen + t0]);
        let block = &mut buf[padlen + t0..padlen + n.min(t0 + BLOCK)];
        backward.run(block, true);
        outputs.scatter(t0, block, plan.out_scale);
    }
    // A NaN or inf anywhere in a lane reaches every later state of both passes (it never cancels
    // out), so the lane's last output is finite exactly when its whole input is; an overflow
    // would also show here, hence the rescan to tell the two apart.
    if buf[padlen][..m].iter().all(|v| v.is_finite()) {
        return true;
    }
    let mut frames = vec![[0.0; LANES]; BLOCK];
    (0..n).step_by(BLOCK).all(|t0| {
        let frames = &mut frames[..BLOCK.min(n - t0)];
        inputs.gather(t0, frames);
        frames.iter().all(|f| f[..m].iter().all(|v| v.is_finite()))
    })
}

/// The state of every section of a cascade during one pass.
struct Cascade<'a> {
    plan: &'a Plan,
    state: Vec<[Frame; 2]>,
}

impl<'a> Cascade<'a> {
    /// Each section starts from its steady state scaled by the pass's first sample `x0`.
    fn new(plan: &'a Plan, x0: &Frame) -> Self {
        let state = plan.zi.iter().map(|z| [x0.map(|v| z[0] * v), x0.map(|v| z[1] * v)]).collect();
        Cascade { plan, state }
    }

    /// Filters `frames` in place, in time order or (`reverse`) against it, continuing from the
    /// state left by the previous call.
    fn run(&mut self, frames: &mut [Frame], reverse: bool) {
        run_sections(&self.plan.sections, &mut self.state, frames, reverse, self.plan.monic);
    }
}

/// Sections advanced together, frame by frame: their updates are independent within a time step
/// once pipelined, which hides the latency of each section's recursion; four keep every state in
/// registers.
const FUSED: usize = 4;

/// Section updates (transposed direct form II). `GENERAL` and `SYMMETRIC` follow scipy's
/// operation order exactly; `MONIC` (b0 == b2 == 1) fuses two multiply-adds where FMA exists.
const GENERAL: u8 = 0;
const SYMMETRIC: u8 = 1;
const MONIC: u8 = 2;
const MONIC_FMA: u8 = 3;

simd_fn! {
    /// Runs the cascade over `frames`, `FUSED` sections per sweep (the frames stay in L1 between
    /// sweeps).
    fn run_sections(sections: &[[f64; 6]], state: &mut [[Frame; 2]], frames: &mut [Frame], reverse: bool, monic: bool) {
        let fma = multiversion::target::target_cfg_f!(target_feature = "fma");
        for (secs, st) in sections.chunks(FUSED).zip(state.chunks_mut(FUSED)) {
            // A symmetric numerator (b2 == b0) reuses b0 * x as b2 * x: the same product, one
            // multiply less.
            let kind = match (monic, fma) {
                (true, true) => MONIC_FMA,
                (true, false) => MONIC,
                _ if secs.iter().all(|s| s[2] == s[0]) => SYMMETRIC,
                _ => GENERAL,
            };
            macro_rules! dispatch {
                ($($kind:ident),*) => {
                    match (secs.len(), kind) {
                        $(
                            (1, $kind) => sweep::<1, $kind>(secs, st, frames, reverse),
                            (2, $kind) => sweep::<2, $kind>(secs, st, frames, reverse),
                            (3, $kind) => sweep::<3, $kind>(secs, st, frames, reverse),
                            (_, $kind) => sweep::<FUSED, $kind>(secs, st, frames, reverse),
                        )*
                        _ => unreachable!("every kind is listed"),
                    }
                };
            }
            dispatch!(GENERAL, SYMMETRIC, MONIC, MONIC_FMA);
        }
    }
}

// Helpers are #[inline(always)] plain functions so that they take the SIMD target of their caller.
#[inline(always)]
fn sweep<const K: usize, const KIND: u8>(secs: &[[f64; 6]], state: &mut [[Frame; 2]], frames: &mut [Frame], reverse: bool) {
    let coef: [[f64; 6]; K] = std::array::from_fn(|k| secs[k]);
    let mut z: [[Frame; 2]; K] = std::array::from_fn(|k| state[k]);
    if reverse {
        for frame in frames.iter_mut().rev() {
            step::<K, KIND>(&coef, &mut z, frame);
        }
    } else {
        for frame in frames.iter_mut() {
            step::<K, KIND>(&coef, &mut z, frame);
        }
    }
    state[..K].copy_from_slice(&z);
}

#[inline(always)]
fn step<const K: usize, const KIND: u8>(coef: &[[f64; 6]; K], z: &mut [[Frame; 2]; K], frame: &mut Frame) {
    let mut x = *frame;
    for k in 0..K {
        let [b0, b1, b2, _, a1, a2] = coef[k];
        let [z0, z1] = &mut z[k];
        for l in 0..LANES {
            let xl = x[l];
            let y;
            match KIND {
                MONIC_FMA => {
                    y = xl + z0[l];
                    z0[l] = (-a1).mul_add(y, b1 * xl + z1[l]);
                    z1[l] = (-a2).mul_add(y, xl);
                }
                MONIC => {
                    y = xl + z0[l];
                    z0[l] = b1 * xl - a1 * y + z1[l];
                    z1[l] = xl - a2 * y;
                }
                _ => {
                    let b0x = b0 * xl;
                    y = b0x + z0[l];
                    z0[l] = b1 * xl - a1 * y + z1[l];
                    z1[l] = if KIND == SYMMETRIC { b0x } else { b2 * xl } - a2 * y;
                }
            }
            x[l] = y;
        }
    }
    *frame = x;
}

/// Moving blocks of time steps between `LANES` rows (one signal each) and frames (one time step
/// each). Strided scalar copies cost more than all the filtering; on x86-64 with AVX the rows are
/// transposed 4 x 4 in registers, converting f32 <-> f64 on the way.
mod transpose {
    use super::{Frame, LANES};
    use crate::real::Real;
    use std::any::TypeId;

    /// `frames[t][lane] = rows[lane][t]` widened to f64; lanes past `rows.len()` are 0. Every row
    /// has `frames.len()` elements.
    pub fn gather<T: Real>(rows: &[&[T]], frames: &mut [Frame]) {
        assert!(rows.len() <= LANES && rows.iter().all(|r| r.len() == frames.len()));
        let quads = rows.len() / 4;
        #[cfg(target_arch = "x86_64")]
        if quads > 0 && std::arch::is_x86_feature_detected!("avx") {
            // SAFETY: AVX is available; the lengths were checked above.
            unsafe {
                if let Some(rows) = cast::<T, f32>(rows) {
                    x86::gather_f32(&rows[..4 * quads], frames);
                } else if let Some(rows) = cast::<T, f64>(rows) {
                    x86::gather_f64(&rows[..4 * quads], frames);
                }
            }
            scalar_gather(rows, 4 * quads, frames);
            return;
        }
        scalar_gather(rows, 0, frames);
    }

    /// `rows[lane][t] = frames[t][lane] * scale` narrowed to `T`. Every row has `frames.len()`
    /// elements.
    pub fn scatter<T: Real>(frames: &[Frame], scale: f64, rows: &mut [&mut [T]]) {
        assert!(rows.len() <= LANES && rows.iter().all(|r| r.len() == frames.len()));
        let quads = rows.len() / 4;
        #[cfg(target_arch = "x86_64")]
        if quads > 0 && std::arch::is_x86_feature_detected!("avx") {
            // SAFETY: AVX is available; the lengths were checked above.
            unsafe {
                if let Some(rows) = cast_mut::<T, f32>(rows) {
                    x86::scatter_f32(frames, scale, &mut rows[..4 * quads]);
                } else if let Some(rows) = cast_mut::<T, f64>(rows) {
                    x86::scatter_f64(frames, scale, &mut rows[..4 * quads]);
                }
            }
            scalar_scatter(frames, scale, rows, 4 * quads);
            return;
        }
        scalar_scatter(frames, scale, rows, 0);
    }

    fn scalar_gather<T: Real>(rows: &[&[T]], from: usize, frames: &mut [Frame]) {
        for (t, frame) in frames.iter_mut().enumerate() {
            for (slot, row) in frame[from..].iter_mut().zip(&rows[from..]) {
                *slot = row[t].to_f64();
            }
            frame[rows.len()..].fill(0.0);
        }
    }

    fn scalar_scatter<T: Real>(frames: &[Frame], scale: f64, rows: &mut [&mut [T]], from: usize) {
        for (lane, row) in rows.iter_mut().enumerate().skip(from) {
            for (v, frame) in row.iter_mut().zip(frames) {
                *v = T::from_f64(frame[lane] * scale);
            }
        }
    }

    /// `rows` as rows of `U` when `T` is `U`.
    fn cast<'s, 'a, T: Real, U: Real>(rows: &'s [&'a [T]]) -> Option<&'s [&'a [U]]> {
        // SAFETY: T and U are the same type.
        (TypeId::of::<T>() == TypeId::of::<U>()).then(|| unsafe { &*(rows as *const [&[T]] as *const [&[U]]) })
    }

    fn cast_mut<'s, 'a, T: Real, U: Real>(rows: &'s mut [&'a mut [T]]) -> Option<&'s mut [&'a mut [U]]> {
        // SAFETY: T and U are the same type.
        (TypeId::of::<T>() == TypeId::of::<U>()).then(|| unsafe { &mut *(rows as *mut [&mut [T]] as *mut [&mut [U]]) })
    }

    #[cfg(target_arch = "x86_64")]
    mod x86 {
        use super::{Frame, LANES};
        use std::arch::x86_64::*;

        /// Transposes the 4 x 4 block whose rows are `$r` (a macro, not a function, so that the
        /// intrinsics are inlined into the AVX kernels).
        macro_rules! transpose4 {
            ($r:expr) => {{
                let r = $r;
                let lo01 = _mm256_unpacklo_pd(r[0], r[1]);
                let hi01 = _mm256_unpackhi_pd(r[0], r[1]);
                let lo23 = _mm256_unpacklo_pd(r[2], r[3]);
                let hi23 = _mm256_unpackhi_pd(r[2], r[3]);
                [
                    _mm256_permute2f128_pd(lo01, lo23, 0x20),
                    _mm256_permute2f128_pd(hi01, hi23, 0x20),
                    _mm256_permute2f128_pd(lo01, lo23, 0x31),
                    _mm256_permute2f128_pd(hi01, hi23, 0x31),
                ]
            }};
        }

        macro_rules! kernels {
            ($gather:ident, $scatter:ident, $t:ty, load($lp:ident) => $load:expr, store($sp:ident, $sv:ident) => $store:expr) => {
                /// Lanes `0..rows.len()` (a multiple of 4) of the frames from the rows.
                ///
                /// # Safety
                /// The CPU has AVX; every row holds `frames.len()` values.
                #[target_feature(enable = "avx")]
                pub unsafe fn $gather(rows: &[&[$t]], frames: &mut [Frame]) {
                    let len = frames.len();
                    let whole = len - len % 4;
                    let out = frames.as_mut_ptr().cast::<f64>();
                    for (q, quad) in rows.chunks_exact(4).enumerate() {
                        let (p0, p1, p2, p3) = (quad[0].as_ptr(), quad[1].as_ptr(), quad[2].as_ptr(), quad[3].as_ptr());
                        let mut t = 0;
                        while t < whole {
                            let r = [
                                {
                                    let $lp = p0.add(t);
                                    $load
                                },
                                {
                                    let $lp = p1.add(t);
                                    $load
                                },
                                {
                                    let $lp = p2.add(t);
                                    $load
                                },
                                {
                                    let $lp = p3.add(t);
                                    $load
                                },
                            ];
                            let c = transpose4!(r);
                            _mm256_storeu_pd(out.add(t * LANES + 4 * q), c[0]);
                            _mm256_storeu_pd(out.add((t + 1) * LANES + 4 * q), c[1]);
                            _mm256_storeu_pd(out.add((t + 2) * LANES + 4 * q), c[2]);
                            _mm256_storeu_pd(out.add((t + 3) * LANES + 4 * q), c[3]);
                            t += 4;
                        }
                        for t in whole..len {
                            for (i, row) in quad.iter().enumerate() {
                                frames[t][4 * q + i] = row[t] as f64;
                            }
                        }
                    }
                }

                /// Rows from lanes `0..rows.len()` (a multiple of 4) of the frames.
                ///
                /// # Safety
                /// The CPU has AVX; every row holds `frames.len()` values.
                #[target_feature(enable = "avx")]
                pub unsafe fn $scatter(frames: &[Frame], scale: f64, rows: &mut [&mut [$t]]) {
                    let len = frames.len();
                    let factor = _mm256_set1_pd(scale);
                    let whole = len - len % 4;
                    let inp = frames.as_ptr().cast::<f64>();
                    for (q, quad) in rows.chunks_exact_mut(4).enumerate() {
                        let (p0, p1, p2, p3) = (quad[0].as_mut_ptr(), quad[1].as_mut_ptr(), quad[2].as_mut_ptr(), quad[3].as_mut_ptr());
                        let mut t = 0;
                        while t < whole {
                            let c = [
                                _mm256_mul_pd(_mm256_loadu_pd(inp.add(t * LANES + 4 * q)), factor),
                                _mm256_mul_pd(_mm256_loadu_pd(inp.add((t + 1) * LANES + 4 * q)), factor),
                                _mm256_mul_pd(_mm256_loadu_pd(inp.add((t + 2) * LANES + 4 * q)), factor),
                                _mm256_mul_pd(_mm256_loadu_pd(inp.add((t + 3) * LANES + 4 * q)), factor),
                            ];
                            let r = transpose4!(c);
                            {
                                let ($sp, $sv) = (p0.add(t), r[0]);
                                $store
                            }
                            {
                                let ($sp, $sv) = (p1.add(t), r[1]);
                                $store
                            }
                            {
                                let ($sp, $sv) = (p2.add(t), r[2]);
                                $store
                            }
                            {
                                let ($sp, $sv) = (p3.add(t), r[3]);
                                $store
                            }
                            t += 4;
                        }
                        for t in whole..len {
                            for (i, row) in quad.iter_mut().enumerate() {
                                row[t] = (frames[t][4 * q + i] * scale) as $t;
                            }
                        }
                    }
                }
            };
        }

        kernels!(gather_f32, scatter_f32, f32,
            load(p) => _mm256_cvtps_pd(_mm_loadu_ps(p)),
            store(p, v) => _mm_storeu_ps(p, _mm256_cvtpd_ps(v)));
        kernels!(gather_f64, scatter_f64, f64,
            load(p) => _mm256_loadu_pd(p),
            store(p, v) => _mm256_storeu_pd(p, v));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::noise;
    use ndarray::{array, Array1, Array2, IxDyn};

    /// Straightforward single-signal sosfiltfilt, written from the definition.
    fn reference_filtfilt(sos: &Sos, x: &[f64]) -> Vec<f64> {
        let padlen = sos.padlen();
        let n = x.len();
        let mut ext: Vec<f64> = (0..padlen).map(|j| 2.0 * x[0] - x[padlen - j]).collect();
        ext.extend_from_slice(x);
        ext.extend((0..padlen).map(|j| 2.0 * x[n - 1] - x[n - 2 - j]));
        let zi = sos.initial_conditions();
        let filt = |sig: &mut Vec<f64>| {
            let x0 = sig[0];
            for (s, z) in sos.sections().iter().zip(&zi) {
                let (mut z0, mut z1) = (z[0] * x0, z[1] * x0);
                for v in sig.iter_mut() {
                    let y = s[0] * *v + z0;
                    z0 = s[1] * *v - s[4] * y + z1;
                    z1 = s[2] * *v - s[5] * y;
                    *v = y;
                }
            }
        };
        filt(&mut ext);
        ext.reverse();
        filt(&mut ext);
        ext.reverse();
        ext[padlen..padlen + n].to_vec()
    }

    // 4th-order Butterworth band-pass 0.5-40 Hz at 200 Hz (scipy.signal.butter output).
    fn bandpass() -> Sos {
        Sos::new(
            array![
                [0.04476726049698908, 0.08953452099397816, 0.04476726049698908, 1.0, -0.3483607714272376, 0.06920663015380722],
                [1.0, 2.0, 1.0, 1.0, -0.4595516745217434, 0.47395034075461673],
                [1.0, -2.0, 1.0, 1.0, -1.9707040278163954, 0.9709564341363607],
                [1.0, -2.0, 1.0, 1.0, -1.9879866824089278, 0.9882334715723928],
            ]
            .view(),
        )
        .unwrap()
    }

    #[test]
    fn padlen_follows_scipy() {
        assert_eq!(bandpass().padlen(), 27);
        // A first-order section (b2 = a2 = 0) shortens ntaps by one.
        let first_order = Sos::new(array![[0.5, 0.5, 0.0, 1.0, -0.2, 0.0]].view()).unwrap();
        assert_eq!(first_order.padlen(), 6);
    }

    #[test]
    fn steady_state_holds_a_constant_input() {
        let sos = bandpass();
        let zi = sos.initial_conditions();
        // Running the cascade on a constant 1 from zi leaves every state unchanged.
        let mut v = 1.0;
        for (s, z) in sos.sections().iter().zip(&zi) {
            let y = s[0] * v + z[0];
            let z0 = s[1] * v - s[4] * y + z[1];
            let z1 = s[2] * v - s[5] * y;
            assert!((z0 - z[0]).abs() < 1e-12 && (z1 - z[1]).abs() < 1e-12);
            v = y;
        }
    }

    /// `sosfiltfilt` with scipy's operation order (the exact kernels).
    fn sosfiltfilt_exact(sos: &Sos, x: ArrayViewD<f64>, axis: usize) -> Result<ArrayD<f64>> {
        let mut out = ArrayD::zeros(x.raw_dim());
        filtfilt_into(sos, &Plan::exact(sos), x, axis, out.as_slice_mut().unwrap())?;
        Ok(out)
    }

    #[test]
    fn grouped_kernel_equals_reference_for_every_lane() {
        let sos = bandpass();
        let n_signals = LANES + 5; // a full group and a partial one
        let n = 700;
        let data: Vec<f64> = (0..n_signals).flat_map(|k| noise(n, k as u64)).collect();
        let x = Array2::from_shape_vec((n_signals, n), data).unwrap().into_dyn();
        let y = sosfiltfilt_exact(&sos, x.view(), 1).unwrap();
        for k in 0..n_signals {
            let expected = reference_filtfilt(&sos, x.row_slice(k));
            for (a, b) in y.slice(ndarray::s![k, ..]).iter().zip(&expected) {
                assert!((a - b).abs() <= 1e-12 * b.abs().max(1e-3), "{a} vs {b}");
            }
        }
    }

    #[test]
    fn monic_kernel_equals_reference_to_rounding() {
        // The default plan runs the Butterworth sections monic (with FMA where available): only
        // the rounding differs from scipy's order, at the level of the lane's largest value.
        let sos = bandpass();
        assert!(Plan::new(&sos).monic && !Plan::exact(&sos).monic);
        let n_signals = 2 * LANES + 3;
        let n = 3000;
        let data: Vec<f64> = (0..n_signals).flat_map(|k| noise(n, 100 + k as u64)).collect();
        let x = Array2::from_shape_vec((n_signals, n), data).unwrap().into_dyn();
        let y = sosfiltfilt(&sos, x.view(), 1).unwrap();
        let x32 = x.mapv(|v| v as f32);
        let y32 = sosfiltfilt(&sos, x32.view(), 1).unwrap();
        for k in 0..n_signals {
            let expected = reference_filtfilt(&sos, x.row_slice(k));
            let scale = expected.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            for (a, b) in y.slice(ndarray::s![k, ..]).iter().zip(&expected) {
                assert!((a - b).abs() <= 1e-12 * scale, "{a} vs {b}");
            }
            let expected32 = reference_filtfilt(&sos, &x32.slice(ndarray::s![k, ..]).mapv(|v| v as f64).to_vec());
            for (a, b) in y32.slice(ndarray::s![k, ..]).iter().zip(&expected32) {
                assert!((*a as f64 - b).abs() <= 1e-6 * scale, "{a} vs {b}");
            }
        }
    }

    #[test]
    fn exact_kernels_for_general_sections() {
        // An asymmetric numerator takes the general kernel, which keeps scipy's rounding.
        let sos = Sos::new(array![[0.2, 0.3, -0.1, 1.0, -0.5, 0.2], [1.0, 0.5, 0.25, 1.0, 0.1, 0.05]].view()).unwrap();
        assert!(!Plan::new(&sos).monic);
        let x = Array1::from_vec(noise(500, 9)).into_dyn();
        let y = sosfiltfilt(&sos, x.view(), 0).unwrap();
        let expected = reference_filtfilt(&sos, x.as_slice().unwrap());
        for (a, b) in y.iter().zip(&expected) {
            assert!((a - b).abs() <= 1e-12 * b.abs().max(1e-3), "{a} vs {b}");
        }
    }

    trait RowSlice {
        fn row_slice(&self, k: usize) -> &[f64];
    }
    impl RowSlice for ArrayD<f64> {
        fn row_slice(&self, k: usize) -> &[f64] {
            let n = self.shape()[1];
            &self.as_slice().unwrap()[k * n..(k + 1) * n]
        }
    }

    #[test]
    fn any_axis_gives_the_same_lanes() {
        let sos = bandpass();
        let x = Array2::from_shape_vec((300, 3), noise(900, 7)).unwrap();
        let along0 = sosfiltfilt(&sos, x.view().into_dyn(), 0).unwrap();
        let transposed = x.t().to_owned();
        let along1 = sosfiltfilt(&sos, transposed.view().into_dyn(), 1).unwrap();
        let along1_t = along1.into_dimensionality::<ndarray::Ix2>().unwrap().reversed_axes();
        assert_eq!(along0.into_dimensionality::<ndarray::Ix2>().unwrap(), along1_t);
    }

    #[test]
    fn passband_sine_keeps_amplitude_and_phase() {
        let sos = bandpass();
        let fs = 200.0;
        let x: Array1<f64> = (0..4000).map(|t| (2.0 * std::f64::consts::PI * 10.0 * t as f64 / fs).sin()).collect();
        let y = sosfiltfilt(&sos, x.view().into_dyn(), 0).unwrap();
        // Zero phase: the middle of the output matches the input closely.
        for t in 1000..3000 {
            assert!((y[IxDyn(&[t])] - x[t]).abs() < 2e-3);
        }
    }

    #[test]
    fn rejects_bad_sections_and_short_signals() {
        assert!(Sos::new(Array2::<f64>::zeros((0, 6)).view()).is_err());
        assert!(Sos::new(Array2::<f64>::zeros((2, 5)).view()).is_err());
        assert!(Sos::new(array![[1.0, 0.0, 0.0, 2.0, 0.0, 0.0]].view()).is_err());
        assert!(Sos::new(array![[1.0, f64::NAN, 0.0, 1.0, 0.0, 0.0]].view()).is_err());
        assert!(Sos::new(array![[1.0, 0.0, 0.0, 1.0, -2.0, 1.0]].view()).is_err());
        let x = Array1::<f64>::zeros(27).into_dyn();
        let err = sosfiltfilt(&bandpass(), x.view(), 0).unwrap_err();
        assert!(err.to_string().contains("27 samples"), "{err}");
        assert!(sosfiltfilt(&bandpass(), x.view(), 1).is_err());
        let mut gap = Array1::<f64>::zeros(100);
        gap[50] = f64::NAN;
        assert!(sosfiltfilt(&bandpass(), gap.view().into_dyn(), 0).is_err());
    }

    #[test]
    fn zero_strided_signals_beyond_memory_are_allocation_errors() {
        use ndarray::ShapeBuilder;
        let one = [0.0f64];
        let huge = ArrayViewD::from_shape(ndarray::IxDyn(&[1 << 40, 1 << 14, 64]).strides(ndarray::IxDyn(&[0, 0, 0])), &one[..]).unwrap();
        let err = sosfiltfilt(&bandpass(), huge, 2).unwrap_err();
        assert!(err.is_alloc(), "{err}");
        let sos = ndarray::Array2::from_shape_vec((1, 6), vec![1.0, 0.0, 0.0, 1.0, 0.0, 0.0]).unwrap();
        let many = ndarray::ArrayView2::from_shape((1 << 60, 6).strides((0, 1)), sos.as_slice().unwrap()).unwrap();
        assert!(Sos::new(many).unwrap_err().is_alloc());
    }
}
