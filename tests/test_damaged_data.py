"""Damaged competition folders: every command ends with one line naming the file (and row,
column or value) and exit status 2, never a traceback, a crash or silently wrong data."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hms import prepare, train
from hms.competition import CompetitionData


def _first_file(root: Path, folder: str) -> Path:
    return sorted((root / folder).glob("*.parquet"))[0]


def _flip_middle(path: Path) -> str:
    raw = bytearray(path.read_bytes())
    for k in range(16):
        raw[len(raw) // 2 + k] ^= 0xFF
    path.write_bytes(bytes(raw))
    return str(path)


def _truncate(path: Path) -> str:
    path.write_bytes(path.read_bytes()[:-100])
    return str(path)


def _eeg_with_inf(root: Path) -> str:
    path = _first_file(root, "train_eegs")
    frame = pd.read_parquet(path)
    frame.loc[123, "Fp1"] = np.inf
    frame.to_parquet(path, index=False)
    return "column 'Fp1' holds inf"


def _edit_train_csv(edit: Callable[[pd.DataFrame], None]) -> Callable[[Path], None]:
    def damage(root: Path) -> None:
        frame = pd.read_csv(root / "train.csv")
        edit(frame)
        frame.to_csv(root / "train.csv", index=False)

    return damage


def _late_window(frame: pd.DataFrame) -> None:
    # The last row of an EEG with several rows: the default grouping never reads that window.
    counts = frame["eeg_id"].value_counts()
    eeg_id = counts.index[counts > 1][0]
    row = frame.index[frame["eeg_id"] == eeg_id][-1]
    frame.loc[row, "eeg_label_offset_seconds"] = 100_000.0


def _far_spectrogram_window(frame: pd.DataFrame) -> None:
    frame.loc[4, "spectrogram_label_offset_seconds"] = 1e6


def _huge_label_id(frame: pd.DataFrame) -> None:
    frame["label_id"] = frame["label_id"].astype(float)
    frame.loc[1, "label_id"] = 1e25


def _not_parquet(root: Path) -> str:
    path = _first_file(root, "train_spectrograms")
    path.write_text("hello")
    return str(path)


def _votes_near_int64_max(frame: pd.DataFrame) -> None:
    frame["seizure_vote"] = frame["seizure_vote"].astype(object)
    frame.loc[2, "seizure_vote"] = str(2**63 - 1)


def _test_eeg_too_long(root: Path) -> str:
    path = _first_file(root, "test_eegs")
    frame = pd.read_parquet(path)
    pd.concat([frame, frame.iloc[:2000]]).to_parquet(path, index=False)
    return "has 12000 rows, not 10000"


# name -> damage(root) returning the expected text (or None: only the file name is expected),
# and the text every error message must hold.
CASES: dict[str, tuple[Callable[[Path], str | None], str]] = {
    "EEG bit flip": (lambda r: _flip_middle(_first_file(r, "train_eegs")), "damaged parquet file"),
    "spectrogram bit flip": (lambda r: _flip_middle(_first_file(r, "train_spectrograms")), "damaged parquet file"),
    "EEG truncated": (lambda r: _truncate(_first_file(r, "train_eegs")), "not a readable parquet file"),
    "spectrogram not parquet": (_not_parquet, "not a readable parquet file"),
    "EEG holds inf": (_eeg_with_inf, "train_eegs"),
    "EEG file missing": (lambda r: _first_file(r, "train_eegs").unlink(), "have no file in"),
    "EEG window past the end": (_edit_train_csv(_late_window), "runs past the end of"),
    "spectrogram window outside": (_edit_train_csv(_far_spectrogram_window), "holds no frame"),
    "label_id 1e25": (_edit_train_csv(_huge_label_id), "label_id"),
    "votes near int64 max": (_edit_train_csv(_votes_near_int64_max), "seizure_vote"),
    "train.csv not text": (lambda r: (r / "train.csv").write_bytes(bytes(range(256)) * 8), "train.csv"),
    "test EEG too long": (_test_eeg_too_long, "test_eegs"),
}


@pytest.fixture
def damaged(tiny_dataset, tmp_path, request) -> tuple[Path, str, str | None]:
    root = tmp_path / "data"
    shutil.copytree(tiny_dataset, root)
    damage, expected = CASES[request.param]
    detail = damage(root)
    return root, expected, detail if isinstance(detail, str) else None


def _one_error_line(capsys) -> str:
    """The command's error: one ``error:`` line, the last on stderr (after any log lines), no traceback."""
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if line.startswith("error: ")]
    assert len(errors) == 1 and err[-1] == errors[0] and not any("Traceback" in line for line in err), err
    return errors[0]


@pytest.mark.parametrize("damaged", list(CASES), indirect=True)
def test_prepare_names_the_damage_and_exits_2(damaged, tmp_path, capsys):
    root, expected, detail = damaged
    argv = ["--data-dir", str(root), "input=both", f"cache_dir={tmp_path / 'cache'}", "progress=false"]
    assert prepare.main(argv) == 2
    line = _one_error_line(capsys)
    assert expected in line and (detail is None or detail in line), line
    assert str(root) in line, line


@pytest.mark.parametrize("damaged", ["EEG window past the end", "votes near int64 max", "EEG holds inf"], indirect=True)
def test_train_names_the_damage_and_exits_2(damaged, tmp_path, capsys):
    root, expected, detail = damaged
    argv = [
        f"data_dir={root}",
        f"cache_dir={tmp_path / 'cache'}",
        f"run_dir={tmp_path / 'run'}",
        "input=eeg",
        "model=test_resnet",
        "n_folds=2",
        "epochs=1",
        "stage2_epochs=0",
        "progress=false",
    ]
    assert train.main(argv) == 2
    line = _one_error_line(capsys)
    assert expected in line and (detail is None or detail in line), line
    assert not (tmp_path / "run" / "fold0" / "last.pt").exists()


def test_every_window_is_checked_up_front_and_listed_in_one_message(tiny_dataset, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(tiny_dataset, root)
    frame = pd.read_csv(root / "train.csv")
    frame.loc[[3, 9], "eeg_label_offset_seconds"] = 100_000.0
    frame.to_csv(root / "train.csv", index=False)
    with pytest.raises(ValueError) as error:
        CompetitionData(root)
    message = str(error.value)
    assert message.startswith(f"{root / 'train.csv'}: 2 label window(s)")
    assert "row 3:" in message and "row 9:" in message
