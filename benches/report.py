"""Runs the benchmark suites and prints the native/reference speed-ups as a Markdown table.

    python benches/report.py [pytest args, e.g. -k sosfiltfilt]

Exits 1 when a comparison misses its target ratio. Timings depend on the machine and its load:
run on an otherwise idle machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent


def run_benchmarks(extra: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "bench.json"
        cmd = [
            sys.executable,
            "-m",
            "pytest",
            str(HERE),
            "-q",
            "-p",
            "no:cacheprovider",
            "-o",
            "python_files=bench_*.py",
            "--benchmark-only",
            f"--benchmark-json={out}",
            *extra,
        ]
        subprocess.run(cmd, check=True, cwd=HERE.parent, env={**os.environ})
        return json.loads(out.read_text())


def table(results: dict) -> tuple[str, bool]:
    groups: dict[str, dict[str, dict]] = defaultdict(dict)
    for bench in results["benchmarks"]:
        groups[bench["group"]][bench["extra_info"]["role"]] = bench
    lines = [
        "| comparison | native (ms) | reference (ms) | speed-up | target |",
        "|---|---:|---:|---:|---:|",
        # Times are per call of the group's full batch; a reference run over fewer samples is
        # scaled to the native run's batch.
    ]
    all_met = True
    for group, runs in groups.items():
        if {"native", "reference"} - set(runs):
            continue
        n_native = runs["native"]["extra_info"].get("samples", 1)
        n_reference = runs["reference"]["extra_info"].get("samples", 1)
        native = runs["native"]["stats"]["median"]
        reference = runs["reference"]["stats"]["median"] * n_native / n_reference
        ratio = reference / native
        target = runs["native"]["extra_info"].get("target_ratio")
        met = target is None or ratio >= target
        all_met &= met
        target_text = "" if target is None else f">= {target}x {'met' if met else 'MISSED'}"
        lines.append(f"| {group} | {native * 1e3:.1f} | {reference * 1e3:.1f} | {ratio:.1f}x | {target_text} |")
    return "\n".join(lines), all_met


def main(argv: list[str]) -> int:
    text, ok = table(run_benchmarks(argv))
    print()
    print(text)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
