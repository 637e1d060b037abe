"""The competition's format: channels, windows, column names, classes, and the OOF table's columns.

Constants only; every module that reads or writes competition-shaped data names its columns from
here, so the format is defined once.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from hms import CLASSES

__all__ = [
    "BIPOLAR_CHAINS", "CLASSES", "CONSENSUS_NAMES", "EEG_CHANNELS", "EEG_WINDOW_SAMPLES", "EEG_WINDOW_SECONDS",
    "GROUPINGS", "LABELLED_SECONDS", "LABEL_COLUMNS", "OOF_ID_COLUMNS", "OOF_PRED_COLUMNS", "OOF_TARGET_COLUMNS",
    "REGIONS", "SAMPLE_RATE", "SPEC_COLUMNS", "SPEC_FFT_SIZE", "SPEC_FRAME_SECONDS", "SPEC_FREQ_BINS",
    "SPEC_FREQ_LABELS", "SPEC_WINDOW_FRAMES", "SPEC_WINDOW_SECONDS", "SPLITS", "SUBMISSION_COLUMNS",
    "SYNTHETIC_MARKER", "TARGET_COLUMNS", "TEST_COLUMNS", "TEST_EEG_ROWS", "TRAIN_COLUMNS", "VOTE_COLUMNS",
]  # fmt: skip

# ---------------------------------------------------------------------------------------------
# Signals
# ---------------------------------------------------------------------------------------------

EEG_CHANNELS: tuple[str, ...] = (
    "Fp1", "F3", "C3", "P3", "F7", "T3", "T5", "O1", "Fz", "Cz",
    "Pz", "Fp2", "F4", "C4", "P4", "F8", "T4", "T6", "O2", "EKG",
)  # fmt: skip
SAMPLE_RATE = 200
EEG_WINDOW_SECONDS = 50
EEG_WINDOW_SAMPLES = EEG_WINDOW_SECONDS * SAMPLE_RATE
#: Test EEG files hold exactly one window.
TEST_EEG_ROWS = EEG_WINDOW_SAMPLES
LABELLED_SECONDS = 10  # the experts labelled the central 10 s of each window
SPEC_WINDOW_SECONDS = 600
SPEC_FRAME_SECONDS = 2
SPEC_WINDOW_FRAMES = SPEC_WINDOW_SECONDS // SPEC_FRAME_SECONDS

#: Kaggle spectrogram regions, in the files' column order.
REGIONS: tuple[str, ...] = ("LL", "RL", "LP", "RP")
#: Double-banana chains of each region (electrode pairs, anterior to posterior), REGIONS order.
BIPOLAR_CHAINS: dict[str, tuple[tuple[str, str], ...]] = {
    "LL": (("Fp1", "F7"), ("F7", "T3"), ("T3", "T5"), ("T5", "O1")),
    "RL": (("Fp2", "F8"), ("F8", "T4"), ("T4", "T6"), ("T6", "O2")),
    "LP": (("Fp1", "F3"), ("F3", "C3"), ("C3", "P3"), ("P3", "O1")),
    "RP": (("Fp2", "F4"), ("F4", "C4"), ("C4", "P4"), ("P4", "O2")),
}
#: Links of each double-banana chain.
LINKS_PER_CHAIN = len(BIPOLAR_CHAINS["LL"])
#: The central chain the 18-link raw montage adds after the four chains.
CENTRAL_CHAIN: tuple[tuple[str, str], ...] = (("Fz", "Cz"), ("Cz", "Pz"))


def _kaggle_frequency_label(bin_index: int) -> str:
    # The files name bin k of a 1024-point FFT at 200 Hz, rounded half-up to 2 decimals with
    # trailing zeros dropped ("3.13", "4.1"); float formatting would round 3.125 to "3.12".
    exact = Decimal(bin_index * SAMPLE_RATE) / Decimal(SPEC_FFT_SIZE)
    return format(exact.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP).normalize(), "f")


SPEC_FFT_SIZE = 1024
SPEC_FREQ_BINS: tuple[int, ...] = tuple(range(3, 103))
SPEC_FREQ_LABELS: tuple[str, ...] = tuple(_kaggle_frequency_label(k) for k in SPEC_FREQ_BINS)
SPEC_COLUMNS: tuple[str, ...] = ("time",) + tuple(
    f"{region}_{label}" for region in REGIONS for label in SPEC_FREQ_LABELS
)

# ---------------------------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------------------------

VOTE_COLUMNS: tuple[str, ...] = tuple(f"{c}_vote" for c in CLASSES)
#: In label frames the VOTE_COLUMNS hold vote fractions (the targets), as in a submission.
TARGET_COLUMNS = VOTE_COLUMNS
CONSENSUS_NAMES: tuple[str, ...] = ("Seizure", "LPD", "GPD", "LRDA", "GRDA", "Other")

TRAIN_COLUMNS: tuple[str, ...] = (
    "eeg_id", "eeg_sub_id", "eeg_label_offset_seconds", "spectrogram_id",
    "spectrogram_sub_id", "spectrogram_label_offset_seconds", "label_id", "patient_id",
    "expert_consensus",
) + VOTE_COLUMNS  # fmt: skip
TEST_COLUMNS: tuple[str, ...] = ("spectrogram_id", "eeg_id", "patient_id")
SUBMISSION_COLUMNS: tuple[str, ...] = ("eeg_id", *VOTE_COLUMNS)
SPLITS = ("train", "test")

#: One training sample per eeg_id, per spectrogram_id, or per label row.
GROUPINGS = ("eeg", "spectrogram", "row")
#: Columns of a label frame (hms.labels.make_labels).
LABEL_COLUMNS: tuple[str, ...] = (
    "eeg_id", "eeg_label_offset_seconds", "spectrogram_id", "spectrogram_label_offset_seconds",
    "label_id", "patient_id", "expert_consensus",
) + VOTE_COLUMNS + ("n_votes", "n_rows")  # fmt: skip

#: Out-of-fold predictions (a run's oof.parquet): ids, then predictions and targets per class.
OOF_ID_COLUMNS = ("label_id", "eeg_id", "spectrogram_id", "patient_id", "expert_consensus", "n_votes", "fold")
OOF_PRED_COLUMNS = tuple(f"pred_{c}" for c in CLASSES)
OOF_TARGET_COLUMNS = tuple(f"target_{c}" for c in CLASSES)

#: Synthetic sets carry this file (not part of the competition layout).
SYNTHETIC_MARKER = "synthetic.json"
