//! Normalized model inputs from raw windows, in one pass per sample.

use crate::buffers::{output_array, Init};
use crate::errors::{value_error, Result};
use crate::montage::PyEegMelRecipe;
use hms_core::inputs::{self, KaggleRecipe, Layout, Normalization, Source};
use hms_core::transform::ClipLog;
use numpy::PyReadonlyArrayDyn;
use pyo3::prelude::*;

/// A float32 array of shape (..., *tail) as (batch, *tail) in standard layout (a copy only if
/// it is not), and its leading shape.
fn batch_first<'a, D: ndarray::Dimension>(
    x: &'a PyReadonlyArrayDyn<'_, f32>,
    tail: usize,
    name: &str,
) -> Result<(ndarray::CowArray<'a, f32, D>, Vec<usize>)> {
    let view = x.as_array();
    let shape = view.shape().to_vec();
    if shape.len() < tail + 1 {
        return Err(value_error(format!("{name} must have a batch axis and {tail} more, got shape {shape:?}")));
    }
    let lead = shape[..shape.len() - tail].to_vec();
    // The batch size fits: the view's element count does (checked by numpy), and so the product
    // of some of its dimensions.
    let mut dims = vec![lead.iter().product::<usize>()];
    dims.extend_from_slice(&shape[shape.len() - tail..]);
    let standard = hms_core::alloc::standard_layout(view, &format!("a contiguous copy of {name}"))?;
    let reshaped =
        standard.into_shape_with_order(dims).expect("standard layout reshapes").into_dimensionality::<D>().expect("dimensions match");
    Ok((reshaped, lead))
}

/// Normalized model inputs (..., C, H, W) from raw windows: `sources` in order ("kaggle",
/// "eeg"), `layout` "channels" or "stack", instance normalization with `eps` unless `stats`
/// gives one (mean, std) per source.
#[pyfunction]
#[pyo3(signature = (sources, layout, eps, stats=None, eeg=None, eeg_recipe=None, kaggle=None, kaggle_order=None, clip=None))]
#[allow(clippy::too_many_arguments)]
pub fn model_inputs<'py>(
    py: Python<'py>,
    sources: Vec<String>,
    layout: &str,
    eps: f64,
    stats: Option<Vec<(f64, f64)>>,
    eeg: Option<PyReadonlyArrayDyn<'py, f32>>,
    eeg_recipe: Option<Bound<'py, PyEegMelRecipe>>,
    kaggle: Option<PyReadonlyArrayDyn<'py, f32>>,
    kaggle_order: Option<Vec<usize>>,
    clip: Option<(f64, f64, f64)>,
) -> Result<Bound<'py, PyAny>> {
    let layout = Layout::from_name(layout)?;
    let norm = match stats {
        Some(s) => Normalization::Fixed(s),
        None => Normalization::Instance { eps },
    };
    let order: Option<[usize; 4]> = kaggle_order
        .map(|order| order.clone().try_into().map_err(|_| value_error(format!("kaggle_order must name 4 regions, got {order:?}"))))
        .transpose()?;
    let eeg = eeg.as_ref().map(|x| batch_first::<ndarray::Ix3>(x, 2, "eeg")).transpose()?;
    let kaggle = kaggle.as_ref().map(|x| batch_first::<ndarray::Ix4>(x, 3, "kaggle")).transpose()?;
    let recipe = eeg_recipe.as_ref().map(|r| r.get());
    let mut built = Vec::new();
    let mut lead: Option<Vec<usize>> = None;
    for name in &sources {
        let (source, this_lead) = match name.as_str() {
            "kaggle" => {
                let (x, l) = kaggle.as_ref().ok_or_else(|| value_error("source 'kaggle' needs kaggle windows"))?;
                let (order, (lo, hi, nan)) = order.zip(clip).ok_or_else(|| value_error("source 'kaggle' needs kaggle_order and clip"))?;
                let clip = ClipLog::new::<f32>(lo, hi, nan).map_err(|e| e.context("clip"))?;
                (Source::Kaggle(x.view(), KaggleRecipe { order, clip }), l)
            }
            "eeg" => {
                let (x, l) = eeg.as_ref().ok_or_else(|| value_error("source 'eeg' needs eeg windows"))?;
                let r = recipe.ok_or_else(|| value_error("source 'eeg' needs eeg_recipe"))?;
                (Source::Eeg(x.view(), &r.recipe, &r.pairs), l)
            }
            other => return Err(value_error(format!("sources must be 'kaggle' or 'eeg', got {other:?}"))),
        };
        if let Some(l) = lead.as_ref().filter(|l| *l != this_lead) {
            return Err(value_error(format!("the windows' batch shapes differ: {l:?} and {this_lead:?}")));
        }
        lead = Some(this_lead.clone());
        built.push(source);
    }
    let lead = lead.ok_or_else(|| value_error("sources must name at least one source ('kaggle', 'eeg')"))?;
    let shape: Vec<usize> = lead.iter().copied().chain(layout.shape(built.len())).collect();
    // Every tile is written whole (the Kaggle rows around the data as zeros).
    output_array(py, "the model inputs of eeg/kaggle", shape, Init::Written, |out| inputs::build_into(&built, layout, &norm, out))
}
