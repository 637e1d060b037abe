"""Large native outputs reuse released buffers: a result must never see an earlier result's data,
and a buffer must not be reused while any array or view of it is alive."""

import gc

import numpy as np

from hms import dsp
from hms.config import build
from hms.inputs import InputPipeline

SOS = dsp.butter_sos(4, (0.5, 40.0), "bandpass", 200.0)


def eeg(seed: int, n: int = 8) -> np.ndarray:
    """float32 batch of n x 20 x 10,000: 6.4 MB of output for n = 8, above the pool's threshold."""
    return (np.random.default_rng(seed).standard_normal((n, 20, 10_000)) * 40).astype(np.float32)


def test_a_pooled_output_equals_a_fresh_one_after_other_results_were_released():
    first = dsp.sosfiltfilt(SOS, eeg(1))
    expected = first.copy()
    del first
    gc.collect()
    other = dsp.sosfiltfilt(SOS, eeg(2))  # may take the released buffer
    del other
    gc.collect()
    again = dsp.sosfiltfilt(SOS, eeg(1))  # may take a buffer that held eeg(2)'s result
    np.testing.assert_array_equal(again, expected)


def test_a_buffer_stays_with_its_view_until_the_view_is_gone():
    result = dsp.sosfiltfilt(SOS, eeg(3))
    view = result[2:5, ::3]
    kept = view.copy()
    del result
    gc.collect()
    results = [dsp.sosfiltfilt(SOS, eeg(4 + i)) for i in range(3)]  # same size: pool candidates
    np.testing.assert_array_equal(view, kept)
    assert all(not np.shares_memory(view, r) for r in results)
    assert view.base is not None and view.flags.writeable


def test_zeroed_pooled_outputs_do_not_keep_an_earlier_batch():
    """A reused (zeroed) buffer never shows the batch it held before."""
    pipeline = InputPipeline(build({"input": "both", "tile_layout": "stack", "cache": False}), None)
    rng = np.random.default_rng(0)

    def batch(scale: float):
        x = (rng.standard_normal((5, 20, 10_000)) * scale).astype(np.float32)
        kaggle = np.exp(rng.normal(0.0, 2.0, (5, 4, 100, 300))).astype(np.float32)
        return x, kaggle

    a_eeg, a_kaggle = batch(40.0)
    expected = pipeline.transform_windows(eeg=a_eeg, kaggle=a_kaggle)  # 5 x 1 x 512 x 512: 5 MB
    reference = expected.copy()
    del expected
    gc.collect()
    b_eeg, b_kaggle = batch(400.0)
    del_me = pipeline.transform_windows(eeg=b_eeg, kaggle=b_kaggle)
    del del_me
    gc.collect()
    np.testing.assert_array_equal(pipeline.transform_windows(eeg=a_eeg, kaggle=a_kaggle), reference)


def test_zeroed_pooled_spectrograms_do_not_keep_an_earlier_batch():
    """Likewise for the EEG chain images (sums over each chain's pairs)."""
    first = dsp.eeg_spectrograms(eeg(5, n=10)).images  # 10 x 4 x 128 x 256 float32: 5.2 MB
    expected = first.copy()
    del first
    gc.collect()
    other = dsp.eeg_spectrograms(eeg(6, n=10) * 10).images
    del other
    gc.collect()
    np.testing.assert_array_equal(dsp.eeg_spectrograms(eeg(5, n=10)).images, expected)
