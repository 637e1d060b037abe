"""hms.progress: commands show progress and log lines; library code alone stays quiet."""

from __future__ import annotations

import io
import logging
import subprocess
import sys
import textwrap

import pytest

from hms import ensemble, predict, prepare, synth, train, tune


@pytest.fixture
def block_buffered_stdout(monkeypatch):
    stream = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", line_buffering=False)
    monkeypatch.setattr(sys, "stdout", stream)
    yield stream
    logging.getLogger("hms").handlers.clear()


@pytest.mark.parametrize(
    "main, argv",
    [
        (train.main, ["data_dir={tmp}/missing", "run_dir={tmp}/run"]),
        (tune.main, ["--trials", "0"]),
        (predict.main, ["--model", "missing-run", "--data-dir", "missing-data"]),
        (ensemble.main, ["--runs", "missing-run"]),
        (prepare.main, ["--splits", "validation"]),
        (synth.main, ["--out", "x", "--n-patients", "0"]),
    ],
)
def test_commands_print_line_by_line(block_buffered_stdout, tmp_path, main, argv):
    """A command's printed lines reach a redirected file as they are printed (PYTHONUNBUFFERED
    set by the command itself would come too late to matter)."""
    try:
        main([a.format(tmp=tmp_path) for a in argv])
    except SystemExit:
        pass
    assert sys.stdout.line_buffering


def test_library_code_is_quiet_until_a_command_configures_output(capfd):
    code = textwrap.dedent("""
        import logging
        from hms import progress
        log = logging.getLogger('hms.test')
        list(progress.bar(range(3), desc='quiet bar'))
        log.info('quiet line')
        progress.configure(progress=True)
        list(progress.bar(range(3), desc='shown bar'))
        log.info('shown line')
        progress.configure(progress=False, verbose=False)
        list(progress.bar(range(3), desc='hidden bar'))
        log.info('hidden line')
        log.warning('warning line')
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    err = result.stderr
    assert "shown bar" in err and "shown line" in err and "warning line" in err
    assert not any(text in err + result.stdout for text in ("quiet bar", "quiet line", "hidden bar", "hidden line"))
