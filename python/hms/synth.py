"""A synthetic HMS dataset in the exact competition layout.

    hms synth --out-dir DIR [--n-patients N] [--n-eegs M] [--n-test-eegs K] [--seed S]

The real data (about 20 GB) is not needed to see the whole pipeline run: this writes train.csv,
test.csv, sample_submission.csv and the four parquet folders with the real files' schema.

How it is built (two stages, so the label structure can be checked without rendering signals):

1. :func:`plan_dataset` draws patients (amplitude, alpha rhythm, heart rate, artifact habits,
   class propensities), recordings (one per spectrogram_id, >= 600 s, holding 1-6 EEG excerpts
   of >= 50 s), one class pattern per EEG excerpt with a strength from clear to ambiguous, label
   rows at several offsets, and votes: 1-7 raters or 10-28 experts per EEG, drawn from a
   Dirichlet around the pattern with clinically plausible confusions.
2. :func:`generate` renders every recording (:mod:`hms.synth_eeg`), computes its Kaggle-style
   spectrogram from the EEG itself, cuts the EEG files out of it, and moves the finished folder
   into place with one rename, so an interrupted run never leaves a half-written set.

Besides the competition files, a synthetic folder holds ``synthetic.json`` (parameters),
``test_solution.csv`` (the hidden test votes, as fractions, for scoring the synthetic test set)
and ``synthetic_truth.csv`` (the pattern and strength behind every EEG).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from threadpoolctl import threadpool_limits

from hms.cli import add_progress_option, command, parse_command
from hms.io import atomic_output, cache_dir, publish_permissions, write_csv_atomic
from hms.progress import bar as progress_bar
from hms.schema import (
    CONSENSUS_NAMES,
    EEG_CHANNELS,
    EEG_WINDOW_SECONDS,
    SAMPLE_RATE,
    SPEC_COLUMNS,
    SPEC_WINDOW_SECONDS,
    SYNTHETIC_MARKER,
    TEST_COLUMNS,
    TRAIN_COLUMNS,
    VOTE_COLUMNS,
)
from hms.synth_eeg import (
    PATTERNS,
    PatientTraits,
    PatternEvent,
    RecordingFaults,
    kaggle_spectrogram,
    synthesize_recording,
)

#: Bump when the generator changes, so cached default sets are regenerated.
SYNTH_VERSION = 4
#: The default set: a few hundred EEGs over ~50 patients (generation well under a minute).
DEFAULT_PARAMS = {"n_patients": 48, "n_eegs": 260, "n_test_eegs": 50, "seed": 0}

#: expert_consensus mix of the real train.csv rows (Seizure 20,933, LPD 14,856, GPD 16,702,
#: LRDA 16,640, GRDA 18,861, Other 18,808 of 106,800), in class order.
REAL_CONSENSUS_MIX = np.array([20933, 14856, 16702, 16640, 18861, 18808]) / 106800

# Probability of each true pattern (before rater confusion), tuned so that the consensus mix
# of the rows lands near REAL_CONSENSUS_MIX: confusion moves votes towards "other".
PATTERN_MIX = np.array([0.225, 0.135, 0.17, 0.17, 0.17, 0.13])
# Where raters' votes go when they do not recognize the true pattern (rows: true pattern).
CONFUSION = np.array(
    [
        # sz    lpd   gpd   lrda  grda  other
        [0.00, 0.35, 0.15, 0.10, 0.05, 0.35],  # seizure vs LPD (ictal-interictal continuum)
        [0.30, 0.00, 0.30, 0.10, 0.00, 0.30],  # LPD vs seizure, LPD vs GPD
        [0.15, 0.35, 0.00, 0.00, 0.15, 0.35],  # GPD vs LPD
        [0.05, 0.10, 0.00, 0.00, 0.45, 0.40],  # LRDA vs GRDA
        [0.05, 0.00, 0.15, 0.40, 0.00, 0.40],  # GRDA vs LRDA
        [0.20, 0.15, 0.15, 0.20, 0.30, 0.00],  # anything vs other
    ]
)
TRUTH_FILE = "synthetic_truth.csv"
RATER_AGREEMENT = 8.0  # Dirichlet concentration of an EEG's vote distribution
ROW_AGREEMENT = 60.0  # rows of one EEG are rated alike
EEGS_PER_RECORDING = (1, 6)  # EEG excerpts per recording (real: ~1.5 eeg_ids per spectrogram_id)
PATTERN_PERSISTENCE = 0.6  # chance that the next EEG of a recording keeps the pattern
FEW_RATERS_SHARE = 0.55  # EEGs rated by 1-7 raters; the others by 10-28 experts
FEW_RATERS_P = np.array([0.15, 0.15, 0.40, 0.10, 0.10, 0.05, 0.05])  # 1..7 raters
# EEGs start >= 275 s into their recording: a label row's 600-s spectrogram window, centred on
# its EEG window's centre (offset + 25 s), then starts at >= 0 s.
EEG_START_S = 275
# Page checksums let readers detect a damaged file instead of decoding garbage (hms.readers).
EEG_WRITE_OPTIONS = {
    "compression": "zstd",
    "use_byte_stream_split": True,
    "use_dictionary": False,
    "write_page_checksum": True,
}


def default_set_name() -> str:
    params = "-".join(f"{k}{v}" for k, v in DEFAULT_PARAMS.items())
    return f"synthetic-v{SYNTH_VERSION}-{params}"


# ---------------------------------------------------------------------------------------------
# Plan
# ---------------------------------------------------------------------------------------------


@dataclass
class EegPlan:
    eeg_id: int
    start_s: int  # in the recording; odd, so spectrogram offsets are even like the real ones
    seconds: int
    offsets_s: np.ndarray  # eeg_label_offset_seconds of the label rows
    event: PatternEvent
    votes: np.ndarray  # (n_rows, 6) int
    label_ids: np.ndarray
    consensus: np.ndarray  # (n_rows,) class index of expert_consensus


@dataclass
class RecordingPlan:
    split: str
    spectrogram_id: int
    patient_id: int
    traits: PatientTraits
    seconds: int
    eegs: list[EegPlan]
    faults: RecordingFaults
    render_seed: np.random.SeedSequence


@dataclass
class DatasetPlan:
    recordings: list[RecordingPlan] = field(default_factory=list)

    def split(self, split: str) -> list[RecordingPlan]:
        return [r for r in self.recordings if r.split == split]

    def train_table(self) -> pd.DataFrame:
        rows = []
        for rec in self.split("train"):
            for eeg in rec.eegs:
                rows_of_eeg = zip(eeg.offsets_s, eeg.votes, eeg.label_ids, eeg.consensus)
                for sub_id, (offset, votes, label_id, consensus) in enumerate(rows_of_eeg):
                    rows.append(
                        (
                            eeg.eeg_id,
                            sub_id,
                            float(offset),
                            rec.spectrogram_id,
                            float(eeg.start_s + offset - EEG_START_S),
                            int(label_id),
                            rec.patient_id,
                            CONSENSUS_NAMES[consensus],
                            *map(int, votes),
                        )
                    )
        columns = [c for c in TRAIN_COLUMNS if c != "spectrogram_sub_id"]
        table = pd.DataFrame(rows, columns=columns)
        # spectrogram_sub_id numbers a spectrogram's rows in time order, as in the real file.
        table = table.sort_values(["spectrogram_id", "spectrogram_label_offset_seconds"])
        table.insert(4, "spectrogram_sub_id", table.groupby("spectrogram_id").cumcount())
        return table.sort_values(["eeg_id", "eeg_sub_id"]).reset_index(drop=True)

    def test_table(self) -> pd.DataFrame:
        rows = [(r.spectrogram_id, r.eegs[0].eeg_id, r.patient_id) for r in self.split("test")]
        return pd.DataFrame(rows, columns=list(TEST_COLUMNS))

    def test_solution(self) -> pd.DataFrame:
        eegs = [r.eegs[0] for r in self.split("test")]
        votes = np.array([e.votes[0] for e in eegs], dtype=np.float64).reshape(-1, len(VOTE_COLUMNS))
        solution = pd.DataFrame(votes / votes.sum(axis=1, keepdims=True), columns=list(VOTE_COLUMNS))
        solution.insert(0, "eeg_id", [e.eeg_id for e in eegs])
        solution["n_votes"] = votes.sum(axis=1).astype(np.int64)
        return solution

    def truth_table(self) -> pd.DataFrame:
        rows = [
            (
                r.split,
                e.eeg_id,
                r.spectrogram_id,
                r.patient_id,
                PATTERNS[e.event.pattern],
                round(e.event.strength, 4),
                "left" if e.event.side == 0 else "right",
            )
            for r in self.recordings
            for e in r.eegs
        ]
        return pd.DataFrame(
            rows, columns=["split", "eeg_id", "spectrogram_id", "patient_id", "pattern", "strength", "side"]
        )


def _unique_ids(rng: np.random.Generator, n: int, low: int, high: int, taken: set[int]) -> list[int]:
    ids: list[int] = []
    while len(ids) < n:
        for value in rng.integers(low, high, n - len(ids)).tolist():
            if value not in taken:
                taken.add(value)
                ids.append(value)
    return ids


def _vote_concentration(pattern: int, strength: float) -> np.ndarray:
    """The Dirichlet parameters of an EEG's vote distribution: raters recognize the pattern with
    a probability (clarity) that grows with its strength, and otherwise confuse it plausibly."""
    clarity = 0.15 + 0.8 * strength
    expected = clarity * np.eye(len(PATTERNS))[pattern] + (1.0 - clarity) * CONFUSION[pattern]
    return RATER_AGREEMENT * expected + 1e-3


def expected_votes(pattern: int, strength: float) -> np.ndarray:
    """An EEG's expected vote fractions (6,) given its true pattern and strength: the best
    prediction anyone can make of its label rows from the signal (the noise of which raters
    voted what is not in the signal)."""
    alpha = _vote_concentration(pattern, strength)
    return alpha / alpha.sum()


def bayes_floor_predictions(root: str | os.PathLike, eeg_ids: Sequence[int] | np.ndarray) -> np.ndarray | None:
    """(n, 6) expected vote fractions of these EEGs of a synthetic set (from its
    ``synthetic_truth.csv``); None for a folder without one (real data has no floor)."""
    path = Path(root) / TRUTH_FILE
    if not path.is_file():
        return None
    truth = pd.read_csv(path).drop_duplicates("eeg_id").set_index("eeg_id")
    missing = sorted(set(int(i) for i in eeg_ids) - set(truth.index))
    if missing:
        raise ValueError(f"{path}: no truth for eeg_id(s) {missing[:5]}")
    rows = truth.loc[list(eeg_ids)]
    return np.stack([expected_votes(PATTERNS.index(p), float(s)) for p, s in zip(rows["pattern"], rows["strength"])])


def draw_votes(rng: np.random.Generator, pattern: int, strength: float, n_rows: int, n_raters: int) -> np.ndarray:
    """Votes (n_rows, 6) of ``n_raters`` raters for each label row of one EEG.

    Raters recognize the true pattern with a probability that grows with its strength and
    otherwise pick a plausible confusion; an EEG's vote distribution is a Dirichlet draw around
    that, and its rows are rated alike (a tighter Dirichlet around the EEG's distribution).
    """
    per_eeg = rng.dirichlet(_vote_concentration(pattern, strength))
    votes = np.empty((n_rows, len(PATTERNS)), dtype=np.int64)
    for row in range(n_rows):
        votes[row] = rng.multinomial(n_raters, rng.dirichlet(ROW_AGREEMENT * per_eeg + 1e-3))
    return votes


def draw_consensus(rng: np.random.Generator, votes: np.ndarray) -> np.ndarray:
    """The majority class of each row; ties broken at random (not by class order, which would
    starve the last class, "other", of tied rows)."""
    top = votes == votes.max(axis=1, keepdims=True)
    return np.array([int(rng.choice(np.flatnonzero(row))) for row in top], dtype=np.int64)


def _draw_n_raters(rng: np.random.Generator) -> int:
    if rng.random() < FEW_RATERS_SHARE:
        return int(rng.choice(np.arange(1, 8), p=FEW_RATERS_P))
    return int(np.clip(round(rng.normal(15.0, 4.0)), 10, 28))


def _draw_event(rng, pattern: int, start_s: float, stop_s: float) -> PatternEvent:
    strength = 0.1 + 0.9 * rng.beta(2.0, 1.5)
    return PatternEvent(pattern, start_s, stop_s, float(strength), int(rng.integers(2)))


def _draw_faults(rng: np.random.Generator, seconds: float, eegs: Sequence[EegPlan]) -> RecordingFaults:
    gaps: list[tuple[float, float]] = []
    if rng.random() < 0.12:  # about 9% of the real spectrograms contain NaN
        for _ in range(int(rng.integers(1, 4))):
            if rng.random() < 0.5:  # inside an EEG excerpt, so EEG files have gaps too
                eeg = eegs[int(rng.integers(len(eegs)))]
                start = eeg.start_s + float(rng.uniform(0.0, eeg.seconds - 1.0))
                gaps.append((start, start + float(rng.uniform(0.5, 10.0))))
            else:
                start = float(rng.uniform(0.0, seconds - 30.0))
                gaps.append((start, start + float(rng.uniform(1.0, 25.0))))
    channels = rng.permutation(19)
    return RecordingFaults(
        nan_gaps_s=tuple(gaps),
        flat_channel=int(channels[0]) if rng.random() < 0.05 else None,
        noisy_channel=int(channels[1]) if rng.random() < 0.05 else None,
    )


def _split_counts(rng: np.random.Generator, total: int, n_groups: int) -> np.ndarray:
    """``total`` items over ``n_groups`` groups, each >= 1, skewed like real patients' EEG counts."""
    if total < n_groups:
        raise ValueError(f"need at least one EEG per patient: {total} EEGs for {n_groups} patients")
    return 1 + rng.multinomial(total - n_groups, rng.dirichlet(np.full(n_groups, 1.5)))


def plan_dataset(
    n_patients: int,
    n_eegs: int,
    seed: int,
    n_test_eegs: int = DEFAULT_PARAMS["n_test_eegs"],
    eegs_per_recording: tuple[int, int] = EEGS_PER_RECORDING,
) -> DatasetPlan:
    """Draw the whole dataset's structure and labels (no signals; fast).

    ``eegs_per_recording`` (min, max) bounds how many EEG excerpts one spectrogram holds; more
    per recording means less signal to synthesize (each recording carries ~600 s of context).
    """
    if n_patients < 1 or n_eegs < 1 or n_test_eegs < 0:
        raise ValueError(
            f"need n_patients >= 1, n_eegs >= 1, n_test_eegs >= 0; got {n_patients}, {n_eegs}, {n_test_eegs}"
        )
    fewest, most = eegs_per_recording
    if not 1 <= fewest <= most:
        raise ValueError(f"eegs_per_recording must be (min, max) with 1 <= min <= max, got {eegs_per_recording}")
    plan_seed, render_seed = np.random.SeedSequence(seed).spawn(2)
    rng = np.random.default_rng(plan_seed)
    n_test_patients = max(1, round(n_patients * n_test_eegs / n_eegs)) if n_test_eegs else 0
    taken: set[int] = set()
    patient_ids = _unique_ids(rng, n_patients + n_test_patients, 10_000, 65_536, taken)
    traits = [PatientTraits.draw(rng) for _ in patient_ids]
    # Patients differ in which patterns they show, which makes patient-grouped CV honest.
    propensity = [rng.dirichlet(12.0 * PATTERN_MIX) for _ in patient_ids]
    plan = DatasetPlan()

    def new_recording(split: str, patient: int, seconds: int, eegs: list[EegPlan]) -> None:
        plan.recordings.append(
            RecordingPlan(
                split,
                _unique_ids(rng, 1, 300_000, 2_147_483_647, taken)[0],
                patient_ids[patient],
                traits[patient],
                seconds,
                eegs,
                _draw_faults(rng, seconds, eegs),
                render_seed.spawn(1)[0],
            )
        )

    for patient, count in enumerate(_split_counts(rng, n_eegs, n_patients)):
        while count > 0:
            in_recording = min(count, int(rng.integers(fewest, most + 1)))
            count -= in_recording
            pattern = int(rng.choice(len(PATTERNS), p=propensity[patient]))
            cursor = EEG_START_S + 2 * int(rng.integers(0, 20))
            eegs: list[EegPlan] = []
            for _ in range(in_recording):
                steps = rng.choice([2, 2, 2, 2, 2, 4, 6, 8], size=min(int(rng.poisson(3.0)), 14))
                offsets = np.concatenate([[0], np.cumsum(steps)]).astype(np.int64)
                seconds = EEG_WINDOW_SECONDS + int(offsets[-1]) + 2 * int(rng.integers(0, 3))
                # A patient's state persists through a session: the next EEG of a recording
                # usually shows the same pattern.
                if eegs and rng.random() >= PATTERN_PERSISTENCE:
                    pattern = int(rng.choice(len(PATTERNS), p=propensity[patient]))
                # The pattern covers the labelled centre of every row, with a margin.
                event = _draw_event(rng, pattern, cursor + rng.uniform(5, 18), cursor + seconds - rng.uniform(5, 18))
                votes = draw_votes(rng, pattern, event.strength, len(offsets), _draw_n_raters(rng))
                ids = _unique_ids(rng, 1, 1_000_000, 4_294_967_295, taken)[0]
                label_ids = _unique_ids(rng, len(offsets), 300_000, 4_294_967_295, taken)
                eegs.append(
                    EegPlan(
                        ids, cursor, seconds, offsets, event, votes, np.array(label_ids), draw_consensus(rng, votes)
                    )
                )
                cursor += seconds + 2 * int(rng.integers(0, 15))
            # Room for every label row's 600-s spectrogram window after the last EEG.
            recording_seconds = cursor + (SPEC_WINDOW_SECONDS - EEG_START_S) + 2 * int(rng.integers(0, 30))
            new_recording("train", patient, recording_seconds, eegs)

    test_patients = n_patients + np.arange(n_test_patients)
    for i in range(n_test_eegs):
        patient = int(test_patients[i % n_test_patients])
        pattern = int(rng.choice(len(PATTERNS), p=propensity[patient]))
        event = _draw_event(rng, pattern, EEG_START_S + rng.uniform(2, 10), EEG_START_S + 50 - rng.uniform(2, 10))
        # Test rows were rated by 3-20 experts.
        votes = draw_votes(rng, pattern, event.strength, 1, int(rng.integers(3, 21)))
        eeg_id = _unique_ids(rng, 1, 1_000_000, 4_294_967_295, taken)[0]
        eeg = EegPlan(
            eeg_id,
            EEG_START_S,
            EEG_WINDOW_SECONDS,
            np.array([0]),
            event,
            votes,
            np.array([-1]),
            draw_consensus(rng, votes),
        )
        new_recording("test", patient, SPEC_WINDOW_SECONDS, [eeg])
    return plan


# ---------------------------------------------------------------------------------------------
# Rendering and writing
# ---------------------------------------------------------------------------------------------


@functools.cache
def _parquet_schema(kind: str) -> pa.Schema:
    # The real files were written from pandas: same field types and pandas metadata.
    if kind == "eeg":
        columns = {c: np.zeros(0, np.float32) for c in EEG_CHANNELS}
    else:
        columns = {"time": np.zeros(0, np.int64), **{c: np.zeros(0, np.float32) for c in SPEC_COLUMNS[1:]}}
    return pa.Schema.from_pandas(pd.DataFrame(columns), preserve_index=False)


def write_eeg_parquet(eeg: np.ndarray, path: str | os.PathLike) -> None:
    """Write an EEG (20, n) like the competition: 20 float32 columns, values to 0.01 uV."""
    rows = np.round(eeg, 2).astype(np.float32)
    table = pa.Table.from_arrays([pa.array(row) for row in rows], schema=_parquet_schema("eeg"))
    with atomic_output(path) as tmp:
        pq.write_table(table, tmp, **EEG_WRITE_OPTIONS)


def write_spectrogram_parquet(values: np.ndarray, times: np.ndarray, path: str | os.PathLike) -> None:
    """Write a (4, 100, n) spectrogram like the competition: ``time`` int64 + 400 float32."""
    rows = values.reshape(-1, values.shape[-1]).astype(np.float32)
    arrays = [pa.array(np.asarray(times, dtype=np.int64))] + [pa.array(row) for row in rows]
    with atomic_output(path) as tmp:
        pq.write_table(
            pa.Table.from_arrays(arrays, schema=_parquet_schema("spectrogram")),
            tmp,
            compression="zstd",
            write_page_checksum=True,
        )


def render_recording(recording: RecordingPlan, root: Path) -> None:
    """Synthesize one recording, write its spectrogram and EEG files under ``root``."""
    rng = np.random.default_rng(recording.render_seed)
    events = [eeg.event for eeg in recording.eegs]
    signal = synthesize_recording(rng, recording.traits, recording.seconds, events, recording.faults)
    values, times = kaggle_spectrogram(signal)
    split = recording.split
    write_spectrogram_parquet(values, times, root / f"{split}_spectrograms" / f"{recording.spectrogram_id}.parquet")
    for eeg in recording.eegs:
        start = eeg.start_s * SAMPLE_RATE
        write_eeg_parquet(
            signal[:, start : start + eeg.seconds * SAMPLE_RATE], root / f"{split}_eegs" / f"{eeg.eeg_id}.parquet"
        )


def _render_all(recordings: Sequence[RecordingPlan], root: Path, workers: int, show_progress: bool) -> None:
    bar = progress_bar(total=len(recordings), desc="synthetic recordings", unit="rec", show=show_progress)
    # Threads, not processes: the heavy parts (random draws, FFTs, matrix products, parquet
    # writes) release the GIL, and threads avoid the start-up cost and __main__ pitfalls of
    # spawned processes. BLAS is held to one thread: its products here are small, and its own
    # threads only fight the workers for the cores (twice as slow when they did).
    with bar, threadpool_limits(1), ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        # Longest first, so no long recording is left running alone at the end.
        ordered = sorted(recordings, key=lambda r: -r.seconds)
        for future in as_completed([pool.submit(render_recording, r, root) for r in ordered]):
            future.result()
            bar.update()


def _auto_workers() -> int:
    return max(1, min(os.cpu_count() or 1, 8))


def generate(
    out_dir: str | os.PathLike,
    n_patients: int = DEFAULT_PARAMS["n_patients"],
    n_eegs: int = DEFAULT_PARAMS["n_eegs"],
    seed: int = DEFAULT_PARAMS["seed"],
    *,
    n_test_eegs: int = DEFAULT_PARAMS["n_test_eegs"],
    eegs_per_recording: tuple[int, int] = EEGS_PER_RECORDING,
    overwrite: bool = False,
    workers: int | None = None,
    show_progress: bool = True,
) -> Path:
    """Write a synthetic competition folder to ``out_dir`` and return its path.

    The set is a pure function of (n_patients, n_eegs, n_test_eegs, eegs_per_recording, seed),
    whatever ``workers``.
    It is built in a hidden sibling folder and renamed into place at the end; an existing
    non-empty ``out_dir`` is an error unless ``overwrite`` (then it is replaced at the end).
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise FileExistsError(f"{out_dir}: not empty; pass overwrite=True (--overwrite) to replace it")
    plan = plan_dataset(n_patients, n_eegs, seed, n_test_eegs, eegs_per_recording)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.", suffix=".tmp"))
    try:
        for folder in ("train_eegs", "train_spectrograms", "test_eegs", "test_spectrograms"):
            (staging / folder).mkdir()
        workers = _auto_workers() if workers is None else workers
        _render_all(plan.recordings, staging, workers, show_progress)
        test = plan.test_table()
        write_csv_atomic(plan.train_table(), staging / "train.csv")
        write_csv_atomic(test, staging / "test.csv")
        submission = pd.DataFrame({"eeg_id": test["eeg_id"]})
        for column in VOTE_COLUMNS:
            submission[column] = 1.0 / len(VOTE_COLUMNS)
        write_csv_atomic(submission, staging / "sample_submission.csv")
        write_csv_atomic(plan.test_solution(), staging / "test_solution.csv")
        write_csv_atomic(plan.truth_table(), staging / TRUTH_FILE)
        params = {
            "n_patients": n_patients,
            "n_eegs": n_eegs,
            "n_test_eegs": n_test_eegs,
            "eegs_per_recording": list(eegs_per_recording),
            "seed": seed,
            "version": SYNTH_VERSION,
        }
        (staging / SYNTHETIC_MARKER).write_text(json.dumps(params, indent=2) + "\n")
        publish_permissions(staging)
        if out_dir.exists():
            shutil.rmtree(out_dir) if overwrite else out_dir.rmdir()
        os.rename(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out_dir


def default_data_dir(*, show_progress: bool = True) -> Path:
    """The default synthetic competition folder under :func:`hms.io.cache_dir`, generated on
    first use and then reused.

    Generation goes to a private temporary folder that is renamed into place at the end, so a
    crashed run leaves no half-written set, and when two processes race the first rename wins
    and the other discards its own copy.
    """
    root = cache_dir()
    target = root / default_set_name()
    if (target / "train.csv").is_file():
        return target
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=root, prefix=f".{target.name}.", suffix=".tmp"))
    try:
        p = DEFAULT_PARAMS
        generate(
            staging / "set",
            n_patients=p["n_patients"],
            n_eegs=p["n_eegs"],
            seed=p["seed"],
            n_test_eegs=p["n_test_eegs"],
            show_progress=show_progress,
        )
        try:
            os.rename(staging / "set", target)
        except OSError:
            if not (target / "train.csv").is_file():
                raise  # not a lost race: a real failure
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hms synth",
        description="Write a synthetic HMS dataset in the exact competition layout "
        "(train.csv, test.csv, sample_submission.csv, train_/test_ eegs and spectrograms).",
    )
    parser.add_argument(
        "--out-dir", required=True, type=Path, metavar="DIR", help="output folder (must be empty or absent)"
    )
    parser.add_argument(
        "--n-patients", type=int, default=DEFAULT_PARAMS["n_patients"], help="training patients (default %(default)s)"
    )
    parser.add_argument(
        "--n-eegs", type=int, default=DEFAULT_PARAMS["n_eegs"], help="training eeg_ids (default %(default)s)"
    )
    parser.add_argument(
        "--n-test-eegs", type=int, default=DEFAULT_PARAMS["n_test_eegs"], help="test eeg_ids (default %(default)s)"
    )
    parser.add_argument(
        "--eegs-per-recording",
        type=int,
        nargs=2,
        default=EEGS_PER_RECORDING,
        metavar=("MIN", "MAX"),
        help="EEG excerpts per spectrogram recording (default %(default)s)",
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_PARAMS["seed"], help="random seed (default %(default)s)")
    parser.add_argument(
        "--workers", type=int, default=None, help="worker threads (default: one per CPU core, at most 8)"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    add_progress_option(parser)
    return parser


@command
def main(argv: Sequence[str] | None = None) -> int:
    args = parse_command(_parser(), argv)
    started = time.perf_counter()
    out = generate(
        args.out_dir,
        args.n_patients,
        args.n_eegs,
        args.seed,
        n_test_eegs=args.n_test_eegs,
        eegs_per_recording=tuple(args.eegs_per_recording),
        overwrite=args.overwrite,
        workers=args.workers,
        show_progress=args.progress,
    )
    train = pd.read_csv(out / "train.csv")
    print(
        f"wrote {out}: {train['eeg_id'].nunique()} train EEGs, {len(train)} label rows, "
        f"{train['patient_id'].nunique()} patients, {args.n_test_eegs} test EEGs "
        f"in {time.perf_counter() - started:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
