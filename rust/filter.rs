//! Zero-phase IIR filtering with second-order sections, following scipy.signal.sosfiltfilt's
//! conventions exactly: odd extension, its padlen, steady-state initial conditions scaled by the
//! first sample, a forward and a backward pass.
//!
//! Signals are processed in groups of `LANES` interleaved channels so that the recursive (and so
//! latency-bound) section update runs across channels in SIMD registers.

use crate::ensure;
use crate::error::Result;
use crate::real::Real;
use multiversion::multiversion;
use ndarray::{ArrayD, ArrayView1, ArrayView2, ArrayViewD, ArrayViewMut1, ArrayViewMutD, Axis};
use rayon::prelude::*;

/// Signals filtered together, one per SIMD lane.
const LANES: usize = 16;
/// Time steps per block: one block of frames stays in L1 while every section runs over it.
const BLOCK: usize = 128;

type Frame = [f64; LANES];

/// A validated cascade of second-order sections `[b0, b1, b2, a0, a1, a2]` with `a0 == 1`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sos {
    sections: Vec<[f64; 6]>,
}

impl Sos {
    pub fn new(sos: ArrayView2<f64>) -> Result<Sos> {
        ensure!(
            sos.ncols() == 6 && sos.nrows() >= 1,
            "sos must have shape (n_sections, 6) with n_sections >= 1, got {:?}",
            sos.shape()
        );
        let mut sections = Vec::with_capacity(sos.nrows());
        for (k, row) in sos.rows().into_iter().enumerate() {
            ensure!(
                row.iter().all(|v| v.is_finite()),
                "sos section {k} contains NaN or inf: {row}"
            );
            ensure!(
                row[3] == 1.0,
                "sos section {k}: a0 (column 3) must be 1, got {}",
                row[3]
            );
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
    let mut out = ArrayD::from_elem(x.raw_dim(), T::from_f64(0.0));
    sosfiltfilt_into(sos, x, axis, out.as_slice_mut().expect("fresh array"))?;
    Ok(out)
}

/// [`sosfiltfilt`] into `out`, a buffer of `x`'s size holding the result in standard layout.
pub fn sosfiltfilt_into<T: Real>(sos: &Sos, x: ArrayViewD<T>, axis: usize, out: &mut [T]) -> Result<()> {
    ensure!(
        axis < x.ndim(),
        "axis {axis} is out of bounds for an array of {} dimensions",
        x.ndim()
    );
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
    let inputs: Vec<ArrayView1<T>> = x.lanes(Axis(axis)).into_iter().collect();
    let mut outputs: Vec<ArrayViewMut1<T>> = out.lanes_mut(Axis(axis)).into_iter().collect();
    let zi = sos.initial_conditions();
    let finite = outputs
        .par_chunks_mut(LANES)
        .zip(inputs.par_chunks(LANES))
        .map(|(outs, ins)| filtfilt_group(sos.sections(), &zi, padlen, ins, outs))
        .reduce(|| true, |a, b| a && b);
    // An IIR filter spreads one NaN over the whole lane: refuse rather than return garbage.
    ensure!(finite, "x contains NaN or inf; fill gaps before filtering");
    Ok(())
}

fn filtfilt_group<T: Real>(
    sections: &[[f64; 6]],
    zi: &[[f64; 2]],
    padlen: usize,
    inputs: &[ArrayView1<T>],
    outputs: &mut [ArrayViewMut1<T>],
) -> bool {
    let n = inputs[0].len();
    GROUP_BUFFER.with_borrow_mut(|buf| {
        // Reused across calls: every frame is overwritten below, lanes past the inputs with 0.
        buf.resize(n + 2 * padlen, [0.0; LANES]);
        filtfilt_group_in(sections, zi, padlen, inputs, outputs, buf)
    })
}

thread_local! {
    static GROUP_BUFFER: std::cell::RefCell<Vec<Frame>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn filtfilt_group_in<T: Real>(
    sections: &[[f64; 6]],
    zi: &[[f64; 2]],
    padlen: usize,
    inputs: &[ArrayView1<T>],
    outputs: &mut [ArrayViewMut1<T>],
    buf: &mut [Frame],
) -> bool {
    let n = inputs[0].len();
    if inputs.len() < LANES {
        for frame in buf[padlen..padlen + n].iter_mut() {
            frame[inputs.len()..].fill(0.0);
        }
    }
    let frames = &mut buf[padlen..padlen + n];
    match inputs.iter().map(|lane| lane.as_slice()).collect::<Option<Vec<&[T]>>>() {
        // Contiguous lanes: read them side by side, write whole frames.
        Some(lanes) => gather_frames(&lanes, frames),
        None => {
            for (lane, input) in inputs.iter().enumerate() {
                for (frame, &v) in frames.iter_mut().zip(input.iter()) {
                    frame[lane] = v.to_f64();
                }
            }
        }
    }
    let finite = buf[padlen..padlen + n].iter().all(|f| f.iter().all(|v| v.is_finite()));
    // Odd extension: 2*x[0] - x[padlen..0] before, 2*x[n-1] - x[n-2..n-2-padlen] after.
    for j in 0..padlen {
        for lane in 0..LANES {
            let (first, last) = (buf[padlen][lane], buf[padlen + n - 1][lane]);
            buf[j][lane] = 2.0 * first - buf[2 * padlen - j][lane];
            buf[padlen + n + j][lane] = 2.0 * last - buf[padlen + n - 2 - j][lane];
        }
    }
    run_cascade(sections, zi, buf, false);
    run_cascade(sections, zi, buf, true);
    let frames = &buf[padlen..padlen + n];
    match outputs.iter_mut().map(|lane| lane.as_slice_mut()).collect::<Option<Vec<&mut [T]>>>() {
        Some(mut lanes) => scatter_frames(frames, &mut lanes),
        None => {
            for (lane, output) in outputs.iter_mut().enumerate() {
                for (v, frame) in output.iter_mut().zip(frames) {
                    *v = T::from_f64(frame[lane]);
                }
            }
        }
    }
    finite
}

#[multiversion(targets("x86_64+avx512f+avx512dq+avx512vl", "x86_64+avx2+fma", "aarch64+neon"))]
fn gather_frames<T: Real>(lanes: &[&[T]], frames: &mut [Frame]) {
    for (t, frame) in frames.iter_mut().enumerate() {
        for (slot, lane) in frame.iter_mut().zip(lanes) {
            *slot = lane[t].to_f64();
        }
    }
}

#[multiversion(targets("x86_64+avx512f+avx512dq+avx512vl", "x86_64+avx2+fma", "aarch64+neon"))]
fn scatter_frames<T: Real>(frames: &[Frame], lanes: &mut [&mut [T]]) {
    for (t, frame) in frames.iter().enumerate() {
        for (slot, lane) in frame.iter().zip(lanes.iter_mut()) {
            lane[t] = T::from_f64(*slot);
        }
    }
}

/// One pass of the section cascade over `buf` (backwards when `reverse`), each section starting
/// from its steady state scaled by the pass's first sample. Transposed direct form II, with
/// scipy's operation order.
#[multiversion(targets("x86_64+avx512f+avx512dq+avx512vl", "x86_64+avx2+fma", "aarch64+neon"))]
fn run_cascade(sections: &[[f64; 6]], zi: &[[f64; 2]], buf: &mut [Frame], reverse: bool) {
    let x0 = if reverse { buf[buf.len() - 1] } else { buf[0] };
    let mut state: Vec<[Frame; 2]> = zi
        .iter()
        .map(|z| [x0.map(|v| z[0] * v), x0.map(|v| z[1] * v)])
        .collect();
    let mut filter_block = |block: &mut [Frame]| {
        for (s, st) in sections.iter().zip(state.iter_mut()) {
            let [b0, b1, b2, _, a1, a2] = *s;
            let [mut z0, mut z1] = *st;
            let mut step = |frame: &mut Frame| {
                for l in 0..LANES {
                    let x = frame[l];
                    let y = b0 * x + z0[l];
                    z0[l] = b1 * x - a1 * y + z1[l];
                    z1[l] = b2 * x - a2 * y;
                    frame[l] = y;
                }
            };
            if reverse {
                block.iter_mut().rev().for_each(&mut step);
            } else {
                block.iter_mut().for_each(&mut step);
            }
            *st = [z0, z1];
        }
    };
    if reverse {
        buf.rchunks_mut(BLOCK).for_each(&mut filter_block);
    } else {
        buf.chunks_mut(BLOCK).for_each(&mut filter_block);
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

    #[test]
    fn grouped_kernel_equals_reference_for_every_lane() {
        let sos = bandpass();
        let n_signals = LANES + 5; // a full group and a partial one
        let n = 700;
        let data: Vec<f64> = (0..n_signals).flat_map(|k| noise(n, k as u64)).collect();
        let x = Array2::from_shape_vec((n_signals, n), data).unwrap().into_dyn();
        let y = sosfiltfilt(&sos, x.view(), 1).unwrap();
        for k in 0..n_signals {
            let expected = reference_filtfilt(&sos, x.row_slice(k));
            for (a, b) in y.slice(ndarray::s![k, ..]).iter().zip(&expected) {
                assert!((a - b).abs() <= 1e-12 * b.abs().max(1e-3), "{a} vs {b}");
            }
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
        let x: Array1<f64> = (0..4000)
            .map(|t| (2.0 * std::f64::consts::PI * 10.0 * t as f64 / fs).sin())
            .collect();
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
}
