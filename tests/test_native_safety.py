"""A Rust panic must surface as a Python exception, and the interpreter must stay usable."""

import subprocess
import sys

import numpy as np
import pytest

from hms import _native, dsp


def test_panic_becomes_runtime_error_and_interpreter_survives():
    with pytest.raises(RuntimeError, match="internal error in the hms native core: deliberate panic"):
        _native._panic_for_tests()
    # The native module keeps working after the panic.
    sos = dsp.butter_sos(2, 10.0, "lowpass", 200.0)
    assert dsp.sosfiltfilt(sos, np.ones(100)).shape == (100,)


def test_native_functions_reject_wrong_dtypes_without_crashing():
    """The raw bindings check dtypes themselves, even when called without the dsp wrappers."""
    bad = np.ones((3, 50), dtype=np.int32)
    sos = dsp.butter_sos(2, 10.0, "lowpass", 200.0)
    calls = [
        lambda: _native.sosfiltfilt(sos, bad, 1),
        lambda: _native.sosfiltfilt(sos, np.ones((3, 50)), 5),
        lambda: _native.clip_log(bad, 1.0, 2.0, 0.0),
        lambda: _native.clip_log_inplace(np.ones((3, 50))[:, ::2], 1.0, 2.0, 0.0),
        lambda: _native.instance_normalize(np.ones((2, 3, 4)), 1e-6),
        lambda: _native.RunningStatsCore(False).update(bad),
        lambda: _native.RunningStatsCore.from_state(False, np.ones((1, 3))),
    ]
    for call in calls:
        with pytest.raises((TypeError, ValueError)):
            call()


def test_bad_input_in_a_fresh_interpreter_exits_cleanly():
    code = (
        "import numpy as np\n"
        "from hms import dsp\n"
        "try:\n"
        "    dsp.sosfiltfilt([[1, 0, 0, 1, 0, 0]], np.zeros(3))\n"
        "except ValueError as e:\n"
        "    print('ValueError:', e)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "ValueError: the signal along axis 0 has 3 samples" in result.stdout


def _use_native_core_in_child(queue):
    x = np.full((64, 2000), np.e)
    sos = dsp.butter_sos(2, 10.0, "lowpass", 200.0)
    queue.put((float(dsp.clip_log(x).mean()), dsp.sosfiltfilt(sos, x).shape))


def test_forked_child_can_use_the_native_core():
    """DataLoader workers are forked on Linux: the native thread pool must work in the child."""
    import multiprocessing

    x = np.ones((64, 2000))
    dsp.clip_log(x)  # the parent's thread pool is up before the fork
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_use_native_core_in_child, args=(queue,))
    child.start()
    child.join(timeout=60)
    if child.is_alive():
        child.kill()
        pytest.fail("the native core hung in a forked child")
    assert child.exitcode == 0
    mean, shape = queue.get(timeout=5)
    assert mean == pytest.approx(1.0) and shape == (64, 2000)


def test_thread_count_is_set_per_process_and_results_do_not_depend_on_it():
    x = np.random.default_rng(0).standard_normal((8, 20, 3000)).astype(np.float32)
    sos = dsp.butter_sos(4, (0.5, 40.0), "bandpass", 200.0)
    default = dsp.get_num_threads()
    try:
        dsp.set_num_threads(1)
        assert dsp.get_num_threads() == 1
        one = dsp.sosfiltfilt(sos, x)
        dsp.set_num_threads(3)
        assert dsp.get_num_threads() == 3
        np.testing.assert_array_equal(dsp.sosfiltfilt(sos, x), one)
        for bad, error in ((0, ValueError), (-2, ValueError), (1.5, TypeError), (True, TypeError)):
            with pytest.raises(error, match="n must"):
                dsp.set_num_threads(bad)
    finally:
        dsp.set_num_threads(None)
    assert dsp.get_num_threads() == default
