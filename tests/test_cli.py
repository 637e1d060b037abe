"""Every command ends a user error (a missing folder or file, a value out of range) the same
way: one ``error:`` line naming it, exit status 2; HMS_DEBUG=1 gives the traceback instead."""

from __future__ import annotations

import importlib

import pytest

from hms import cli

MISSING = "/nonexistent/hms-folder"

COMMANDS = {
    "train": [f"data_dir={MISSING}", "progress=false"],
    "prepare": ["--data-dir", MISSING],
    "show_sample": ["--data-dir", MISSING],
    "baselines": ["--data-dir", MISSING],
    "overview": ["--data-dir", MISSING],
    "predict": ["--run", MISSING, "--data-dir", MISSING],
    "ensemble": ["--runs", MISSING],
}


@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_missing_folder_is_one_line_and_exit_2(command, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # commands with default outputs write nothing here either
    module = importlib.import_module(f"hms.{command}")
    assert module.main(COMMANDS[command]) == cli.EXIT_USER_ERROR
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) >= 1 and err[-1].startswith("error: ") and MISSING in err[-1], err
    assert not any("Traceback" in line for line in err)
    assert list(tmp_path.iterdir()) == []


def test_an_io_error_names_its_path(tiny_dataset, tmp_path, capsys):
    from hms import prepare

    blocked = tmp_path / "a-file"
    blocked.write_text("")
    argv = ["--data-dir", str(tiny_dataset), "input=kaggle", f"cache_dir={blocked}", "progress=false"]
    assert prepare.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and str(blocked) in err[-1], err


def test_debug_setting_keeps_the_traceback(monkeypatch):
    from hms import baselines

    monkeypatch.setenv(cli.DEBUG_ENV, "1")
    with pytest.raises(FileNotFoundError, match=MISSING):
        baselines.main(["--data-dir", MISSING])


def test_errors_span_one_line(capsys):
    @cli.command
    def main(argv=None) -> int:
        raise ValueError("first line\n  second line\n")

    assert main([]) == 2
    assert capsys.readouterr().err == "error: first line second line\n"


# ---------------------------------------------------------------------------------------------
# The hms command
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(cli.SUBCOMMANDS))
def test_every_subcommand_has_help_in_one_style(name, capsys):
    """hms NAME --help: usage under its hms name, the shared options spelled alike."""
    with pytest.raises(SystemExit) as exc:
        cli.main([name, "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith(f"usage: hms {name}")
    if name not in ("ensemble", "synth", "export"):
        assert "--data-dir" in text
    if name != "overview":
        assert "--progress" in text and "--no-progress" in " ".join(text.split()), name
    for old_spelling in ("--quiet", "--data_dir", "--model RUN_DIR"):
        assert old_spelling not in text


def test_hms_lists_subcommands_and_names_a_typo(capsys):
    assert cli.main(["--help"]) == 0
    listed = capsys.readouterr().out
    assert all(f"  {name} " in listed for name in cli.SUBCOMMANDS)
    assert cli.main([]) == 2
    capsys.readouterr()
    assert cli.main(["trian"]) == 2
    assert "unknown subcommand 'trian' (did you mean 'train'?)" in capsys.readouterr().err


def test_python_dash_m_hms_is_the_hms_command():
    import subprocess
    import sys

    from hms import __version__

    done = subprocess.run([sys.executable, "-m", "hms", "--version"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == f"hms {__version__}"
