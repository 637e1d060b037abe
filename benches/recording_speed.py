"""Whole-recording review speed: a 1-hour 256 Hz EDF predicted with a run, end to end.

    python benches/recording_speed.py --run runs/eeg        # any finished run (e.g. hms train's default)

Writes a 1-hour, 20-channel EDF at 256 Hz (EDF labels as clinical systems write them, ``EEG FP1-REF``
... ``ECG``) from the synthetic set's EEG, then runs ``hms predict --recording`` on it (default
stride 10 s), which reports the reading + resampling time and windows/s. Needs the ``[edf]`` extra.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from hms import predict
from hms.schema import EEG_CHANNELS
from hms.synth import default_data_dir

RATE = 256
SECONDS = 3600


def write_hour_edf(path: Path) -> Path:
    """The synthetic training EEGs end to end until an hour is filled, at 256 Hz."""
    import edfio

    from hms import dsp

    parts, total = [], 0
    for file in sorted((default_data_dir() / "train_eegs").glob("*.parquet")):
        part = np.nan_to_num(pd.read_parquet(file)[list(EEG_CHANNELS)].to_numpy(np.float64).T)
        parts.append(part)
        total += part.shape[1]
        if total >= SECONDS * 200:
            break
    at_200 = np.concatenate(parts, axis=1)[:, : SECONDS * 200]
    signal = dsp.resample_poly(at_200, 32, 25, axis=-1)  # 200 -> 256 Hz
    labels = [f"EEG {name.upper()}-REF" for name in EEG_CHANNELS[:-1]] + ["ECG"]
    edfio.Edf(
        [
            edfio.EdfSignal(
                x, RATE, label=label, physical_dimension="uV", physical_range=(x.min() - 1.0, x.max() + 1.0)
            )
            for x, label in zip(signal, labels)
        ]
    ).write(path)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", required=True, help="a finished run folder")
    parser.add_argument("--stride", default="10", help="seconds between windows [default: 10]")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        edf = write_hour_edf(Path(folder) / "one_hour_256hz.edf")
        print(f"{edf.name}: {edf.stat().st_size / 1e6:.1f} MB, {SECONDS} s x 20 channels at {RATE} Hz")
        started = time.perf_counter()
        status = predict.main(
            ["--run", args.run, "--recording", str(edf), "--stride", args.stride, "--out", str(Path(folder) / "w.csv")]
        )
        print(f"whole command (after start-up): {time.perf_counter() - started:.1f} s")
    return status


if __name__ == "__main__":
    sys.exit(main())
