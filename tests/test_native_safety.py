"""A Rust panic must surface as a Python exception, and the interpreter must stay usable."""

import os
import subprocess
import sys
import threading

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


# --- The attacks: memory that cannot be had, panics, threads -----------------------------

# One child interpreter runs every attack and prints, for each, the exception it raised: an abort
# (SIGABRT) or a panic reaching Python shows up as a missing or wrong line, not as a crash of
# pytest. Sizes: those of the issue where the system refuses obviously impossible allocations
# (overcommit heuristic, the default), else sizes beyond any address space.
_ATTACKS = r"""
import sys
import numpy as np
from hms import dsp, _native

try:
    heuristic = open("/proc/sys/vm/overcommit_memory").read().strip() != "1"
except OSError:
    heuristic = True
shape = (2**20, 20, 10_000) if heuristic else (2**26, 20, 2**26)
huge_n = 2**40 if heuristic else 2**50
Z = np.lib.stride_tricks.as_strided(np.zeros(1), shape, (0, 0, 0))
Z16 = np.lib.stride_tricks.as_strided(np.zeros(1, np.float16), shape, (0, 0, 0))
Z1 = np.lib.stride_tricks.as_strided(np.zeros(1), (2**62 // 8,), (0,))
sos = dsp.butter_sos(2, 10.0, "lowpass", 200.0)
attacks = {
    "stft n_fft": lambda: dsp.stft(np.ones(10), n_fft=huge_n),
    "stft n_fft 2**62": lambda: dsp.stft(np.ones(10), n_fft=2**62),
    "stft n_fft 2**64": lambda: dsp.stft(np.ones(10), n_fft=2**64),
    "get_window n": lambda: dsp.get_window("hann", huge_n),
    "get_window n 2**62": lambda: dsp.get_window("hann", 2**62),
    "mel_filterbank n_fft": lambda: dsp.mel_filterbank(200.0, huge_n),
    "mel_filterbank n_mels": lambda: dsp.mel_filterbank(200.0, 1024, n_mels=10**12),
    "spectrogram nfft": lambda: dsp.spectrogram(np.ones(300), nperseg=256, nfft=huge_n),
    "spectrogram nfft 2**62": lambda: dsp.spectrogram(np.ones(300), nperseg=256, nfft=2**62),
    "melspectrogram n_fft": lambda: dsp.melspectrogram(np.ones(100), n_fft=huge_n),
    "melspectrogram n_fft 2**62": lambda: dsp.melspectrogram(np.ones(100), n_fft=2**62),
    "eeg_spectrograms n_mels": lambda: dsp.eeg_spectrograms(np.ones((20, 10_000)), n_mels=10**7),
    "eeg_spectrograms n_fft": lambda: dsp.eeg_spectrograms(np.ones((20, 10_000)), n_fft=2**62, win_length=128),
    "bipolar_montage zero strides": lambda: dsp.bipolar_montage(Z),
    "clip_log zero strides": lambda: dsp.clip_log(Z),
    "instance_normalize zero strides": lambda: dsp.instance_normalize(Z, axes=-1),
    "stft zero strides": lambda: dsp.stft(Z),
    "sosfiltfilt zero strides": lambda: dsp.sosfiltfilt(sos, Z),
    "to_float32 zero strides": lambda: dsp.to_float32(Z16),
    "eeg_spectrograms zero strides": lambda: dsp.eeg_spectrograms(Z),
    "RunningStats.update zero strides": lambda: dsp.RunningStats().update(Z),
    "RunningStats.update per channel": lambda: dsp.RunningStats(axis=0).update(Z1[:, None]),
    "raw window values zero strides": lambda: _native.get_window(Z1, 3),
    "resample_poly zero strides": lambda: dsp.resample_poly(Z, 25, 32),
    "resample_poly up": lambda: dsp.resample_poly(np.ones(10), huge_n, 1),
    "resample_poly down with taps": lambda: dsp.resample_poly(np.ones(10), 1, huge_n, window=[1.0]),
    "resample_poly taps zero strides": lambda: dsp.resample_poly(np.ones(10), 2, 3, window=Z1),
    "decimate zero strides": lambda: dsp.decimate(Z, 2),
    "decimate q": lambda: dsp.decimate(np.ones(10), huge_n),
    "eeg_raw_inputs zero strides": lambda: dsp.eeg_raw_inputs(Z, dsp.eeg_raw_recipe(n_samples=None, rate=200.0)),
}
for name, attack in attacks.items():
    print("ATTACK", name, flush=True)
    try:
        attack()
        print("RESULT", name, "| no error", flush=True)
    except BaseException as e:  # noqa: B036 - a PanicException is what this looks for
        print("RESULT", name, "|", type(e).__name__, "|", e, flush=True)
"""

# The argument each MemoryError must name.
_NAMED = {
    "stft n_fft": "n_fft",
    "stft n_fft 2**62": "n_fft",
    "stft n_fft 2**64": "n_fft",
    "get_window n": "n=",
    "get_window n 2**62": "n=",
    "mel_filterbank n_fft": "n_fft",
    "mel_filterbank n_mels": "n_mels",
    "spectrogram nfft": "nfft",
    "spectrogram nfft 2**62": "nfft",
    "melspectrogram n_fft": "n_fft",
    "melspectrogram n_fft 2**62": "n_fft",
    "eeg_spectrograms n_mels": "eeg",
    "eeg_spectrograms n_fft": "n_fft",
    "bipolar_montage zero strides": "eeg",
    "clip_log zero strides": "x",
    "instance_normalize zero strides": "x",
    "stft zero strides": "x",
    "sosfiltfilt zero strides": "x",
    "to_float32 zero strides": "x",
    "eeg_spectrograms zero strides": "eeg",
    "RunningStats.update zero strides": "x",
    "RunningStats.update per channel": "x",
    "raw window values zero strides": "window",
    "resample_poly zero strides": "x",
    "resample_poly up": "up=",
    "resample_poly down with taps": "down=",
    "resample_poly taps zero strides": "window",
    "decimate zero strides": "x",
    "decimate q": "q=",
    "eeg_raw_inputs zero strides": "eeg",
}


@pytest.fixture(scope="module")
def attack_results():
    result = subprocess.run([sys.executable, "-c", _ATTACKS], capture_output=True, text=True, timeout=300)
    out = result.stdout + result.stderr
    assert result.returncode == 0, f"the child died (signal {-result.returncode}):\n{out[-4000:]}"
    rows = [line.split(" | ", 2) for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    return {row[0][len("RESULT ") :]: (row[1], row[2] if len(row) > 2 else "") for row in rows}


@pytest.mark.parametrize("name", sorted(_NAMED))
def test_impossible_allocations_are_memory_errors_naming_the_argument(attack_results, name):
    kind, message = attack_results[name]
    if name == "stft n_fft 2**64":
        # Beyond what the native core's unsigned arguments hold: a named ValueError from dsp.
        assert kind == "ValueError" and "n_fft must be at most 2**64 - 1" in message, message
        return
    assert kind == "MemoryError", f"{name}: {kind}: {message}"
    assert _NAMED[name] in message, message


def test_a_panic_while_planning_is_a_runtime_error():
    """Plans and output shapes are built in guarded code: a panic there is an ordinary
    RuntimeError (an Exception), never a PanicException (a BaseException)."""
    with pytest.raises(RuntimeError, match="internal error in the hms native core: deliberate panic in a plan"):
        _native._panic_in_plan_for_tests()
    assert dsp.get_window("hann", 4).shape == (4,)


def test_set_num_threads_is_capped():
    cap = _native.max_num_threads()
    # 8 per CPU this process may use (its affinity and CPU quota).
    assert cap >= 8 and cap % 8 == 0 and cap <= 8 * (os.cpu_count() or 1)
    for bad in (cap + 1, 10**6, 2**70):
        with pytest.raises(ValueError, match=f"n must be at most {cap}"):
            dsp.set_num_threads(bad)
    try:
        dsp.set_num_threads(cap)
        assert dsp.get_num_threads() == cap
    finally:
        dsp.set_num_threads(None)


def test_rayon_num_threads_is_capped_too():
    code = "from hms import dsp, _native\nprint(dsp.get_num_threads(), _native.max_num_threads())\n"
    env = {**os.environ, "RAYON_NUM_THREADS": "1000000"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr
    threads, cap = map(int, result.stdout.split())
    assert threads == cap


def test_running_stats_shared_by_threads_equals_sequential_updates():
    rng = np.random.default_rng(3)
    chunks = [rng.standard_normal((5, 20_000)) * (i + 1) + 10 * i for i in range(48)]
    shared, per_channel = dsp.RunningStats(), dsp.RunningStats(axis=0)
    errors = []

    def work(part):
        try:
            for c in part:
                shared.update(c)
                per_channel.update(c)
                shared.merge(dsp.RunningStats().update(c[:1]))
        except BaseException as e:  # noqa: B036 - anything a thread raises is a failure
            errors.append(e)

    threads = [threading.Thread(target=work, args=(chunks[i::6],)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    sequential, sequential_axis = dsp.RunningStats(), dsp.RunningStats(axis=0)
    for c in chunks:
        sequential.update(c).merge(dsp.RunningStats().update(c[:1]))
        sequential_axis.update(c)
    assert shared.count == sequential.count and shared.nan_count == sequential.nan_count
    assert (shared.min, shared.max) == (sequential.min, sequential.max)
    np.testing.assert_allclose([shared.mean, shared.var], [sequential.mean, sequential.var], rtol=1e-12)
    np.testing.assert_array_equal(per_channel.count, sequential_axis.count)
    np.testing.assert_allclose(per_channel.mean, sequential_axis.mean, rtol=1e-12)
    np.testing.assert_allclose(per_channel.var, sequential_axis.var, rtol=1e-12)
    # Merging an object into itself doubles its counts (and keeps its moments).
    mean, var = shared.mean, shared.var
    shared.merge(shared)
    assert shared.count == 2 * sequential.count
    np.testing.assert_allclose([shared.mean, shared.var], [mean, var], rtol=1e-12)


# --- The silent wrong results -------------------------------------------------------------


def test_running_stats_report_overflowing_variance_as_inf():
    x = np.random.default_rng(0).standard_normal(6) * 1e300
    stats = dsp.RunningStats().update(x)
    assert stats.var == np.inf and stats.std == np.inf
    np.testing.assert_allclose(stats.mean, np.mean(x), rtol=1e-14)
    with np.errstate(over="ignore"):
        assert np.std(x) == np.inf  # numpy's answer too


def test_running_stats_mean_of_values_near_the_float64_limit():
    stats = dsp.RunningStats().update(np.array([1.5e308])).update(np.array([-1.5e308]))
    assert stats.mean == 0.0 and stats.var == np.inf
    one_update = dsp.RunningStats().update(np.array([1.5e308, 1.5e308, -1.5e308, 1.5e308]))
    np.testing.assert_allclose(one_update.mean, 0.75e308, rtol=1e-15)
    alike = dsp.RunningStats().update(np.full(300, 1e306))
    assert (alike.mean, alike.var) == (1e306, 0.0)
    # A restored state holds the same.
    assert dsp.RunningStats.from_dict(stats.to_dict()).var == np.inf


def test_instance_normalize_near_the_float64_limit_and_subnormal_eps():
    x = np.array([[-1e308, 0.0, 1.0, 2.0]])
    y = dsp.instance_normalize(x, axes=-1)
    np.testing.assert_allclose(y, [[-np.sqrt(3), 1 / np.sqrt(3), 1 / np.sqrt(3), 1 / np.sqrt(3)]], rtol=1e-12)
    for eps in (5e-324, 1e-310):
        with pytest.raises(ValueError, match="eps must be 0 or a normal positive float"):
            dsp.instance_normalize(np.ones((1, 3)), axes=-1, eps=eps)
        with pytest.raises(ValueError, match="eps must be 0 or a normal positive float"):
            dsp.clip_log_normalize(np.ones((1, 3)), axes=-1, eps=eps)
        with pytest.raises(ValueError, match="eps must be 0 or a normal positive float"):
            dsp.model_inputs(["kaggle"], kaggle=np.ones((1, 4, 100, 300), np.float32), eps=eps)
    assert np.all(dsp.instance_normalize(np.ones((1, 3)), axes=-1, eps=np.finfo(np.float64).tiny) == 0.0)


def test_loud_float32_eeg_gives_the_same_finite_images():
    x = (np.random.default_rng(0).standard_normal((20, 10_000)) * 40).astype(np.float32)
    expected = dsp.eeg_spectrograms(x).images
    for scale in (1e18, 1e30):
        got = dsp.eeg_spectrograms((x.astype(np.float64) * scale).astype(np.float32)).images
        assert np.isfinite(got).all()
        np.testing.assert_allclose(got, expected, atol=1e-4)


def test_model_inputs_refuse_stats_float32_cannot_divide_by():
    kaggle = np.ones((1, 4, 100, 300), np.float32)
    for stats, match in (
        ([(0.0, 1e-300)], r"stats\[0\]: the std must be a positive normal float32"),
        ([(0.0, 0.0)], r"stats\[0\]: the std"),
        ([(1e39, 1.0)], r"stats\[0\]: the mean must be finite in float32"),
    ):
        with pytest.raises(ValueError, match=match):
            dsp.model_inputs(["kaggle"], kaggle=kaggle, stats=stats)
    with pytest.raises(ValueError, match="eps is 0"):
        dsp.model_inputs(["kaggle"], kaggle=np.full((1, 4, 100, 300), np.nan, np.float32), eps=0.0)
