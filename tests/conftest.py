"""Shared fixtures: small synthetic competition folders, generated once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from hms import synth

REAL_FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "hms-real"


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    """A tiny synthetic set in the competition layout (4 patients, 20 train EEGs, 6 test EEGs).

    Shared by the whole session: treat it as read-only.
    """
    root = tmp_path_factory.mktemp("hms-tiny") / "data"
    return synth.generate(root, n_patients=4, n_eegs=20, seed=7, n_test_eegs=6, show_progress=False)


@pytest.fixture(scope="session")
def small_dataset(tmp_path_factory) -> Path:
    """A small synthetic set (20 patients, 120 train EEGs, 4 test EEGs), large enough for
    patient-grouped CV to separate a real model from the class prior. Read-only."""
    root = tmp_path_factory.mktemp("hms-small") / "data"
    return synth.generate(
        root, n_patients=20, n_eegs=120, seed=0, n_test_eegs=4, eegs_per_recording=(5, 8), show_progress=False
    )


@pytest.fixture(scope="session")
def real_fixtures() -> Path:
    """The unmodified competition files in ../shared/fixtures/hms-real (skips if absent)."""
    if not REAL_FIXTURES.is_dir():
        pytest.skip(f"real competition fixtures not found at {REAL_FIXTURES}")
    return REAL_FIXTURES
