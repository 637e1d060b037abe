//! The raw-EEG input recipe: EEG windows (..., channels, samples) to float32 model inputs
//! (..., links, n_out), one call per batch.
//!
//! Per window: the middle `n_samples`, the bipolar differences of the montage with each
//! difference's NaN filled by its mean (zeros if all NaN) and the zero-phase filters, exactly as
//! the spectrogram recipes do (`montage::Preprocessing`); then polyphase resampling from `fs` to
//! `rate` (`resample::Resampler`, scipy.signal.resample_poly's defaults), each link's mean
//! subtracted, and a normalization. Everything is computed in f64 and written once as f32.

use crate::ensure;
use crate::error::{positive, CoreError, Result};
use crate::montage::{leading, n_samples, Preprocessing};
use crate::real::Real;
use crate::resample::{small_ratio, Design, Padding, Plan, Resampler, Work};
use crate::spectral::Window;
use ndarray::{Array2, ArrayViewD, Axis};
use rayon::prelude::*;

/// The largest `up` and `down` of the resampling fraction `rate / fs`.
pub const MAX_RATE_FACTOR: u64 = 1000;

/// What each link is scaled by after demeaning.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Normalize {
    /// `clip(x, -clip, clip) / scale`.
    Clip {
        clip: f64,
        scale: f64,
    },
    /// `(x - mean) / (std + eps)`, population std of the link.
    Standardize {
        eps: f64,
    },
    None,
}

impl Normalize {
    /// The mode named `name`; only its own parameters are checked.
    pub fn new(name: &str, clip: f64, scale: f64, eps: f64) -> Result<Normalize> {
        match name {
            "clip" => {
                positive(clip, "clip")?;
                ensure!(scale.is_finite() && scale != 0.0, "scale must be finite and nonzero, got {scale}");
                Ok(Normalize::Clip { clip, scale })
            }
            "standardize" => {
                // A flat link (an all-NaN channel's) has std 0: eps keeps it 0 rather than NaN.
                ensure!(
                    eps >= f64::MIN_POSITIVE && eps.is_finite(),
                    "eps must be a normal positive float (at least {:e}), got {eps:e}",
                    f64::MIN_POSITIVE
                );
                Ok(Normalize::Standardize { eps })
            }
            "none" => Ok(Normalize::None),
            _ => Err(CoreError::new(format!("normalize must be 'clip', 'standardize' or 'none', got {name:?}"))),
        }
    }
}

/// The recipe, checked once.
#[derive(Debug, Clone)]
pub struct RawRecipe {
    /// The montage's channel pairs, indices among `n_channels`.
    pairs: Vec<(usize, usize)>,
    n_channels: usize,
    pre: Preprocessing,
    /// From `fs` to `rate`; None when they are equal.
    resampler: Option<Resampler>,
    demean: bool,
    normalize: Normalize,
}

impl RawRecipe {
    pub fn new(
        pairs: Vec<(usize, usize)>,
        n_channels: usize,
        pre: Preprocessing,
        fs: f64,
        rate: f64,
        demean: bool,
        normalize: Normalize,
    ) -> Result<RawRecipe> {
        positive(fs, "fs")?;
        positive(rate, "rate")?;
        ensure!(pairs.iter().all(|&(a, b)| a < n_channels && b < n_channels), "the montage's channels lie beyond channels");
        let (up, down) = small_ratio(rate / fs, MAX_RATE_FACTOR).ok_or_else(|| {
            CoreError::new(format!(
                "rate: rate / fs = {rate} / {fs} is not a ratio up / down of integers of at most {MAX_RATE_FACTOR} (as 40 / 200 = 1 / 5)"
            ))
        })?;
        // resample_poly's defaults: Kaiser window (beta 5), zeros beyond the ends.
        let design = Design::Window(Window::Kaiser(5.0));
        let resampler = (up != down).then(|| Resampler::new(up, down, &design, Padding::Constant(0.0), true)).transpose()?;
        Ok(RawRecipe { pairs, n_channels, pre, resampler, demean, normalize })
    }

    /// (up, down) of the resampling, (1, 1) without it.
    pub fn ratio(&self) -> (usize, usize) {
        self.resampler.as_ref().map_or((1, 1), Resampler::ratio)
    }

    pub fn n_links(&self) -> usize {
        self.pairs.len()
    }

    /// Samples kept and output samples per link for recordings of `n` samples.
    fn lengths(&self, n: usize) -> Result<(usize, usize)> {
        let kept = self.pre.kept(n)?;
        let n_out = match &self.resampler {
            Some(r) => r.output_len(kept)?,
            None => kept,
        };
        Ok((kept, n_out))
    }

    /// The output shape for EEG of `shape` (..., channels, samples): (..., links, n_out).
    pub fn shape(&self, shape: &[usize]) -> Result<Vec<usize>> {
        let n = n_samples(shape)?;
        let channels = shape[shape.len() - 2];
        ensure!(channels == self.n_channels, "eeg has {channels} channels on axis -2, but the recipe's channels name {}", self.n_channels);
        let (_, n_out) = self.lengths(n)?;
        Ok(shape[..shape.len() - 2].iter().copied().chain([self.pairs.len(), n_out]).collect())
    }

    /// The inputs of every recording of `eeg` into `out` (of [`RawRecipe::shape`]), in parallel
    /// over recordings and, within each, over links (the filters over groups of links).
    pub fn inputs_into<T: Real>(&self, eeg: ArrayViewD<T>, out: &mut [f32]) -> Result<()> {
        let shape = self.shape(eeg.shape())?;
        ensure!(out.len() == shape.iter().product::<usize>(), "out has {} elements, the inputs {shape:?}", out.len());
        let (kept, n_out) = self.lengths(n_samples(eeg.shape())?)?;
        let plan = self.resampler.as_ref().map(|r| r.plan(kept)).transpose()?;
        let recordings = leading(&eeg)?;
        if out.is_empty() {
            return Ok(());
        }
        let per_recording = self.pairs.len() * n_out;
        out.par_chunks_mut(per_recording).zip(recordings.par_iter()).try_for_each_init(
            || Array2::zeros((0, 0)),
            |diffs, (o, rec)| {
                let rec = rec.view().into_dimensionality::<ndarray::Ix2>().expect("2-d");
                self.pre.differences_into(rec, &self.pairs, diffs)?;
                let diffs = &*diffs;
                o.par_chunks_mut(n_out).zip(diffs.axis_iter(Axis(0)).into_par_iter()).try_for_each_init(
                    || (Work::default(), Vec::new()),
                    |(work, row), (o, link)| {
                        let link = link.as_slice().expect("rows of a standard array");
                        self.link(plan.as_ref(), link, work, row, o)
                    },
                )
            },
        )
    }

    /// One filtered difference to its output row.
    fn link(&self, plan: Option<&Plan>, x: &[f64], work: &mut Work, row: &mut Vec<f64>, out: &mut [f32]) -> Result<()> {
        let y: &mut [f64] = match plan {
            Some(plan) => {
                crate::alloc::resize(row, plan.n_out(), 0.0, "a resampled difference of eeg channels")?;
                plan.resample_lane(ndarray::ArrayView1::from(x), row, work)?;
                row
            }
            None => {
                crate::alloc::clear_for(row, x.len(), "a difference of eeg channels")?;
                row.extend_from_slice(x);
                row
            }
        };
        if self.demean {
            let mean = mean(y);
            y.iter_mut().for_each(|v| *v -= mean);
        }
        match self.normalize {
            Normalize::Clip { clip, scale } => {
                for (o, &v) in out.iter_mut().zip(y.iter()) {
                    *o = (v.clamp(-clip, clip) / scale) as f32;
                }
            }
            Normalize::Standardize { eps } => {
                let m = mean(y);
                let var = y.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / y.len() as f64;
                let inv = 1.0 / (var.sqrt() + eps);
                for (o, &v) in out.iter_mut().zip(y.iter()) {
                    *o = ((v - m) * inv) as f32;
                }
            }
            Normalize::None => out.iter_mut().zip(y.iter()).for_each(|(o, &v)| *o = v as f32),
        }
        Ok(())
    }
}

fn mean(x: &[f64]) -> f64 {
    x.iter().sum::<f64>() / x.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::Sos;
    use crate::montage::{montage_pairs, EEG_CHANNELS};
    use crate::testing::noise;
    use ndarray::{array, Array1, Array3};

    fn recipe(montage: &str, n_samples: Option<usize>, filters: Vec<Sos>, rate: f64, normalize: Normalize) -> RawRecipe {
        let pairs = montage_pairs(&EEG_CHANNELS, montage).unwrap();
        RawRecipe::new(pairs, 20, Preprocessing::new(n_samples, filters).unwrap(), 200.0, rate, true, normalize).unwrap()
    }

    fn eeg(batch: usize, n: usize) -> Array3<f32> {
        Array3::from_shape_vec((batch, 20, n), noise(batch * 20 * n, 11).iter().map(|v| (v * 80.0) as f32).collect()).unwrap()
    }

    #[test]
    fn montages_name_their_links() {
        let p16 = montage_pairs(&EEG_CHANNELS, "banana16").unwrap();
        let p18 = montage_pairs(&EEG_CHANNELS, "banana18").unwrap();
        assert_eq!(p16.len(), 16);
        assert_eq!(&p18[..16], &p16[..]);
        assert_eq!(&p18[16..], &[(8, 9), (9, 10)]); // Fz-Cz, Cz-Pz
        assert!(montage_pairs(&EEG_CHANNELS, "banana").unwrap_err().to_string().starts_with("montage"));
    }

    #[test]
    fn each_link_is_the_resampled_demeaned_clipped_difference() {
        let x = eeg(2, 1200);
        let r = recipe("banana18", Some(1000), vec![], 40.0, Normalize::Clip { clip: 50.0, scale: 32.0 });
        assert_eq!(r.ratio(), (1, 5));
        let shape = r.shape(x.shape()).unwrap();
        assert_eq!(shape, vec![2, 18, 200]);
        let mut out = vec![0.0f32; 2 * 18 * 200];
        r.inputs_into(x.view().into_dyn(), &mut out).unwrap();
        let resampler = Resampler::new(1, 5, &Design::Window(Window::Kaiser(5.0)), Padding::Constant(0.0), true).unwrap();
        for b in 0..2 {
            for (l, &(a, c)) in r.pairs.iter().enumerate() {
                let d: Array1<f64> = (100..1100).map(|t| x[[b, a, t]] as f64 - x[[b, c, t]] as f64).collect();
                let y = resampler.resample(d.view().into_dyn(), 0).unwrap();
                let m = y.mean().unwrap();
                for (t, v) in y.iter().enumerate() {
                    let expected = (v - m).clamp(-50.0, 50.0) / 32.0;
                    assert!((out[(b * 18 + l) * 200 + t] as f64 - expected).abs() < 1e-6);
                }
            }
        }
    }

    #[test]
    fn standardized_links_and_flat_links() {
        let mut x = eeg(1, 800);
        x.index_axis_mut(Axis(1), 0).fill(f32::NAN); // Fp1: its four links are filled with zeros
        let sos = Sos::new(array![[0.2, 0.4, 0.2, 1.0, -0.3, 0.1]].view()).unwrap();
        let r = recipe("banana16", None, vec![sos], 100.0, Normalize::Standardize { eps: 1e-6 });
        let mut out = vec![0.0f32; 16 * 400];
        r.inputs_into(x.view().into_dyn(), &mut out).unwrap();
        for (l, row) in out.chunks(400).enumerate() {
            let mean = row.iter().map(|&v| v as f64).sum::<f64>() / 400.0;
            let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / 400.0;
            if l == 0 || l == 4 {
                assert!(row.iter().all(|&v| v == 0.0), "link {l}");
            } else {
                assert!(mean.abs() < 1e-6 && (var - 1.0).abs() < 1e-5, "link {l}: {mean} {var}");
            }
        }
    }

    #[test]
    fn same_rate_skips_resampling() {
        let x = eeg(1, 300);
        let r = recipe("banana16", None, vec![], 200.0, Normalize::None);
        assert_eq!(r.ratio(), (1, 1));
        let mut out = vec![0.0f32; 16 * 300];
        r.inputs_into(x.view().into_dyn(), &mut out).unwrap();
        let d: Vec<f64> = (0..300).map(|t| x[[0, 0, t]] as f64 - x[[0, 4, t]] as f64).collect();
        let m = d.iter().sum::<f64>() / 300.0;
        for (o, v) in out[..300].iter().zip(&d) {
            assert!((*o as f64 - (v - m)).abs() < 1e-4);
        }
    }

    #[test]
    fn bad_arguments_are_named() {
        let pairs = montage_pairs(&EEG_CHANNELS, "banana16").unwrap();
        let pre = Preprocessing::default();
        let new = |fs, rate| RawRecipe::new(pairs.clone(), 20, pre.clone(), fs, rate, true, Normalize::None);
        for (fs, rate, name) in [(200.0, 0.0, "rate"), (200.0, f64::NAN, "rate"), (-1.0, 40.0, "fs"), (200.0, 40.004, "rate")] {
            let err = new(fs, rate).unwrap_err();
            assert!(err.to_string().starts_with(name), "{err}");
        }
        assert_eq!(new(200.0, 1000.0).unwrap().ratio(), (5, 1));
        for (name, clip, scale, eps, arg) in [
            ("clip", 0.0, 32.0, 1e-6, "clip"),
            ("clip", 1024.0, 0.0, 1e-6, "scale"),
            ("standardize", 1.0, 1.0, 0.0, "eps"),
            ("standardize", 1.0, 1.0, 1e-310, "eps"),
            ("other", 1.0, 1.0, 1.0, "normalize"),
        ] {
            let err = Normalize::new(name, clip, scale, eps).unwrap_err();
            assert!(err.to_string().starts_with(arg), "{err}");
        }
        assert_eq!(Normalize::new("standardize", 0.0, 0.0, 1e-6).unwrap(), Normalize::Standardize { eps: 1e-6 });
        let r = recipe("banana16", Some(1000), vec![], 40.0, Normalize::None);
        assert!(r.shape(&[20, 999]).unwrap_err().to_string().contains("fewer than n_samples=1000"));
        assert!(r.shape(&[19, 2000]).unwrap_err().to_string().contains("19 channels"));
        assert!(r.shape(&[2000]).is_err());
    }
}
