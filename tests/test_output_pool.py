"""Large native outputs reuse released buffers: a result must never see an earlier result's data,
and a buffer must not be reused while any array or view of it is alive."""

import gc

import numpy as np

from hms import _native, dsp
from hms.config import build
from hms.inputs import InputPipeline

SOS = dsp.butter_sos(4, (0.5, 40.0), "bandpass", 200.0)


def eeg(seed: int, n: int = 8) -> np.ndarray:
    """float32 batch of n x 20 x 10,000: 6.4 MB of output for n = 8, above the pool's threshold."""
    return (np.random.default_rng(seed).standard_normal((n, 20, 10_000)) * 40).astype(np.float32)


def reused() -> int:
    """Outputs served from the pool so far."""
    return _native._output_pool_stats()["reused"]


def flush_pool() -> None:
    """Fills the pool (it keeps its 4 newest buffers) with buffers of a size no test asks for, so
    that no buffer of an earlier test's size is left in it."""
    held = [dsp.sosfiltfilt(SOS, eeg(100 + i, n=6)) for i in range(4)]
    del held
    gc.collect()


def test_a_pooled_output_equals_a_fresh_one_after_other_results_were_released():
    flush_pool()
    first = dsp.sosfiltfilt(SOS, eeg(1))
    expected = first.copy()
    del first
    gc.collect()
    start = reused()
    other = dsp.sosfiltfilt(SOS, eeg(2))
    assert reused() == start + 1, "the released buffer was reused"
    del other
    gc.collect()
    again = dsp.sosfiltfilt(SOS, eeg(1))  # in the buffer that held eeg(2)'s result
    assert reused() == start + 2
    np.testing.assert_array_equal(again, expected)


def test_a_buffer_stays_with_its_view_until_the_view_is_gone():
    flush_pool()
    result = dsp.sosfiltfilt(SOS, eeg(3, n=7))  # a size of this test's own
    view = result[2:5, ::3]
    kept = view.copy()
    del result
    gc.collect()
    start = reused()
    results = [dsp.sosfiltfilt(SOS, eeg(4 + i, n=7)) for i in range(3)]  # same size: pool candidates
    assert reused() == start, "a buffer was reused while a view of it was alive"
    np.testing.assert_array_equal(view, kept)
    assert all(not np.shares_memory(view, r) for r in results)
    assert view.base is not None and view.flags.writeable
    del view
    gc.collect()
    dsp.sosfiltfilt(SOS, eeg(7, n=7))
    assert reused() == start + 1, "the buffer went back to the pool with its last view"


def test_model_inputs_in_a_reused_buffer_hold_nothing_of_its_last_result():
    """model_inputs writes every value (the Kaggle tiles' margins too) into a buffer that is not
    zeroed: the buffer last held a filtered signal, nonzero everywhere."""
    pipeline = InputPipeline(build({"input": "both", "tile_layout": "stack", "cache": False}), None)
    flush_pool()
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((5, 20, 10_000)) * 40).astype(np.float32)
    kaggle = np.exp(rng.normal(0.0, 2.0, (5, 4, 100, 300))).astype(np.float32)
    expected = pipeline.transform_windows(eeg=x, kaggle=kaggle)  # 5 x 1 x 512 x 512 float32: 5 MB
    reference = expected.copy()
    assert (reference == 0).any(), "the Kaggle tiles' margins are zeros"
    del expected
    gc.collect()
    start = reused()
    # A filter output of the same 5 MB: it takes the released buffer and overwrites it.
    garbage = dsp.sosfiltfilt(SOS, (rng.standard_normal((128, 10_240)) * 40).astype(np.float32))
    assert garbage.nbytes == reference.nbytes and (garbage != 0).all()
    assert reused() == start + 1
    del garbage
    gc.collect()
    np.testing.assert_array_equal(pipeline.transform_windows(eeg=x, kaggle=kaggle), reference)
    assert reused() == start + 2, "model_inputs wrote into the filter output's buffer"


def test_zeroed_pooled_spectrograms_do_not_keep_an_earlier_batch():
    """Likewise for the EEG chain images (sums over each chain's pairs)."""
    flush_pool()
    first = dsp.eeg_spectrograms(eeg(5, n=10)).images  # 10 x 4 x 128 x 256 float32: 5.2 MB
    expected = first.copy()
    del first
    gc.collect()
    start = reused()
    other = dsp.eeg_spectrograms(eeg(6, n=10) * 10).images
    del other
    gc.collect()
    np.testing.assert_array_equal(dsp.eeg_spectrograms(eeg(5, n=10)).images, expected)
    assert reused() == start + 2, "both outputs reused the first one's buffer"
