"""Model quality on a larger synthetic set: each model family's CV against the baselines and the
Bayes floor, a raw + spectrogram ensemble, and a learning curve.

    python benches/quality.py                       # 1,000 training EEGs, every family, curve
    python benches/quality.py --n-eegs 400 --families cnn,efficientnet1d --curve ""   # quicker

The synthetic generator knows each EEG's true pattern, so the Bayes floor (the KL of predicting
each row's expected vote fractions) says how much of the remaining error is learnable. Every
family trains with ``hms train`` on the same patient-grouped folds (same seed), so the rows of
the table are comparable: CV on all rows and on the rows with >= 10 votes. The ensembles combine
the best raw-EEG run's and the spectrogram run's out-of-fold predictions: their unweighted mean,
and their weighted mean with weights fitted on the other folds (``hms ensemble``'s "mean" and
"weights" combiners, scored as it scores them). The learning curve repeats the chosen families on
smaller sets generated the same way (CV on each set's own folds, next to its own floor).

Writes ``<out>/quality.json``, ``<out>/quality.md`` (the table) and ``<out>/learning_curve.png``.
Synthetic sets, runs and caches go under ``<out>`` (default ``benches/results/quality``, not in
git); a finished run is reused when the command is repeated.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from hms import ensemble, synth, train
from hms.rundir import CV_FILE

#: Model families: the config overrides of each (everything else is hms train's default).
FAMILIES: dict[str, dict[str, Any]] = {
    "cnn": {"model": "resnet10t", "input": "eeg"},  # the default run: mel spectrograms of the EEG
    "efficientnet1d": {"model": "efficientnet1d", "input": "raw"},
    "wavenet": {"model": "wavenet", "input": "raw"},
    "raw2d": {"model": "raw2d-resnet10t", "input": "raw"},
}
LABELS = {
    "cnn": "spectrogram CNN (default run: resnet10t on EEG mel spectrograms)",
    "efficientnet1d": "efficientnet1d (raw EEG, 16 x 2,000)",
    "wavenet": "wavenet (raw EEG, 16 x 2,000)",
    "raw2d": "resnet10t on the raw EEG as an image",
}
BASELINES = {
    "band_power_lr": "band-power logistic regression",
    "class_prior": "class prior of the training folds",
    "uniform": "uniform",
    "bayes_floor": "Bayes floor (expected votes of each EEG's true pattern)",
}
EEGS_PER_PATIENT = 5.4  # the default synthetic set's ratio (260 EEGs of 48 patients)


def dataset(root: Path, n_eegs: int, seed: int) -> Path:
    folder = root / f"data-{n_eegs}"
    if not (folder / "train.csv").is_file():
        patients = max(10, round(n_eegs / EEGS_PER_PATIENT))
        synth.generate(folder, n_patients=patients, n_eegs=n_eegs, seed=seed, n_test_eegs=10, overwrite=True)
    return folder


def train_family(data: Path, root: Path, family: str, n_eegs: int, common: dict[str, Any]) -> Path:
    """The finished run of ``family`` on ``data`` (trained now unless a finished one is there)."""
    run_dir = root / "runs" / f"{family}-{n_eegs}"
    if (run_dir / CV_FILE).is_file():
        return run_dir
    if run_dir.exists():  # an unfinished run: continue it
        args = ["--resume", str(run_dir), "progress=false"]
    else:
        values = {**common, **FAMILIES[family], "data_dir": data, "run_dir": run_dir, "cache_dir": root / "cache"}
        args = [f"{k}={v}" for k, v in values.items()]
    started = time.perf_counter()
    if train.main(args) != 0:
        raise SystemExit(f"training {family} on {data} failed")
    print(f"{family} on {n_eegs} EEGs: {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return run_dir


def run_scores(run_dir: Path) -> dict[str, dict[str, float]]:
    """{"model": ..., each baseline: ...} -> {"kl_all", "kl_high_votes"} from the run's cv.json."""
    overall = json.loads((run_dir / CV_FILE).read_text())["overall"]
    return {name: value for name, value in overall.items() if isinstance(value, dict)}


def ensembles(runs: list[Path], min_votes: int) -> dict[str, dict[str, float]]:
    """The runs' OOF predictions combined: their unweighted mean, and weights optimized on the
    other folds' OOF rows (cross-fitted, as ``hms ensemble`` scores its "weights" combiner)."""
    oof = ensemble.load_oof_set(runs)
    predictions = {
        "mean": oof.probs.mean(0),
        "weights": ensemble.cross_fit(
            oof, lambda p, t, _: ensemble.optimize_weights(p, t), lambda w, p: ensemble.weighted_mean(p, w)
        ),
    }
    scores = {}
    for combiner, prediction in predictions.items():
        row = ensemble.score_row(combiner, prediction, oof, min_votes)
        scores[combiner] = {"kl_all": row["kl_all"], "kl_high_votes": row[f"kl_votes_ge_{min_votes}"]}
    return scores


def measure(n_eegs: int, families: list[str], args: argparse.Namespace, common: dict[str, Any]) -> dict[str, Any]:
    root = Path(args.out)
    data = dataset(root, n_eegs, args.seed)
    runs = {family: train_family(data, root, family, n_eegs, common) for family in families}
    results: dict[str, Any] = {"n_eegs": n_eegs, "models": {}, "baselines": {}}
    for family, run_dir in runs.items():
        scores = run_scores(run_dir)
        results["models"][family] = scores["model"]
        results["baselines"] = {name: scores[name] for name in BASELINES if name in scores}
    raw = [f for f in families if FAMILIES[f]["input"] == "raw"]
    if "cnn" in runs and raw:
        best_raw = min(raw, key=lambda f: results["models"][f]["kl_all"])
        combined = ensembles([runs[best_raw], runs["cnn"]], common["stage2_min_votes"])
        for combiner, scores in combined.items():
            results["models"][f"{best_raw}+cnn {combiner}"] = scores
    return results


def ensemble_label(name: str) -> str:
    """ "efficientnet1d+cnn weights" -> a table label naming the members and the combiner."""
    members, combiner = name.split(" ")
    names = " and ".join(LABELS[member].split(" (")[0] for member in members.split("+"))
    return f"mean of {names}" if combiner == "mean" else f"{names}, OOF-optimized weights (cross-fitted)"


def table(results: dict[str, Any]) -> str:
    lines = [
        f"| CV on the same folds ({results['n_eegs']:,} training EEGs) | KL all rows | KL >= 10 votes |",
        "|---|---:|---:|",
    ]
    for name, scores in results["models"].items():
        label = LABELS.get(name) or ensemble_label(name)
        lines.append(f"| {label} | {scores['kl_all']:.3f} | {scores['kl_high_votes']:.3f} |")
    for name, scores in results["baselines"].items():
        lines.append(f"| {BASELINES[name]} | {scores['kl_all']:.3f} | {scores['kl_high_votes']:.3f} |")
    return "\n".join(lines)


def plot_curve(curve: list[dict[str, Any]], path: Path) -> None:
    from hms.plots import plt, save_figure

    figure, ax = plt.subplots(figsize=(7, 4.5))
    sizes = [point["n_eegs"] for point in curve]
    for family in curve[-1]["models"]:
        if all(family in point["models"] for point in curve):
            ax.plot(sizes, [p["models"][family]["kl_all"] for p in curve], "o-", label=family)
    for name, style in (("band_power_lr", "k--"), ("bayes_floor", "k:")):
        if all(name in point["baselines"] for point in curve):
            ax.plot(sizes, [p["baselines"][name]["kl_all"] for p in curve], style, label=BASELINES[name].split(" (")[0])
    ax.set(xscale="log", xlabel="training EEGs", ylabel="CV KL (all rows)", title="learning curve (synthetic)")
    ax.set_xticks(sizes, [f"{s:,}" for s in sizes])
    ax.minorticks_off()  # the log axis's minor labels would crowd the set sizes
    ax.legend(fontsize=8)
    save_figure(figure, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-eegs", type=int, default=1000, help="training EEGs of the main set [default: 1000]")
    parser.add_argument("--families", default="cnn,efficientnet1d,wavenet", help=f"of {', '.join(FAMILIES)}")
    parser.add_argument("--curve", default="250,500", help="smaller set sizes for the learning curve ('' for none)")
    parser.add_argument("--curve-families", default="cnn,efficientnet1d", help="families of the learning curve")
    parser.add_argument("--epochs", type=int, default=8, help="stage-1 epochs of every run [default: 8]")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="benches/results/quality")
    args = parser.parse_args(argv)
    families = [f for f in args.families.split(",") if f]
    unknown = sorted(set(families) - set(FAMILIES))
    if unknown:
        parser.error(f"unknown families {unknown}; choose from {', '.join(FAMILIES)}")
    common = {"epochs": args.epochs, "stage2_min_votes": 10, "seed": args.seed, "progress": "false"}
    main_set = measure(args.n_eegs, families, args, common)
    curve = [
        measure(int(n), [f for f in args.curve_families.split(",") if f], args, common)
        for n in args.curve.split(",")
        if n
    ]
    curve = sorted([*curve, main_set], key=lambda point: point["n_eegs"])
    out = Path(args.out)
    (out / "quality.json").write_text(json.dumps({"main": main_set, "curve": curve}, indent=2) + "\n")
    text = table(main_set)
    (out / "quality.md").write_text(text + "\n")
    print(text)
    if len(curve) > 1:
        plot_curve(curve, out / "learning_curve.png")
        print(f"learning curve: {out / 'learning_curve.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
