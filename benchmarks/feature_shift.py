"""Which features a recording condition moves, and how far: the why behind a robustness loss.

Run by hand (not in CI), from the repository root, after ``ser train`` and ``ser promote``::

    .venv/bin/python benchmarks/feature_shift.py --condition pink_noise_30db
    .venv/bin/python benchmarks/feature_shift.py --condition pink_noise_30db \\
        --features spectral_prosodic_speech

Takes a fixed sample of the champion's test clips (``--clips``), describes each as recorded
and through ``--condition`` with a feature set (``--features``, default the champion's), and
measures every column's shift in units of its spread over the clean sample,
``mean(heard - clean) / std(clean)`` (one yardstick for every feature set). Prints the
descriptor groups (``mfcc``, ``logmel``, ``rms_db``...) and functionals (``p10``, ``std``...)
by mean absolute shift, the columns moved most, and the share of columns moved by more than
one deviation.
"""

from __future__ import annotations

import argparse
import re
import sys

import numpy as np
import pandas as pd
from robustness import RATE, champion_clips, load_samples, seed_of

from ser_features.audio import Clip, prepare
from ser_features.conditions import CONDITIONS, Context, simulate
from ser_features.feature_sets import get_feature_spec


def describe(spec, samples: np.ndarray, rate: int) -> dict[str, float]:
    """The feature set's numbers for ``samples`` as if they had been loaded from a file."""
    return spec.describe(prepare(Clip(samples, rate, rate, 1), spec.load))


def group_of(column: str) -> tuple[str, str]:
    """``("mfcc_d", "p10")`` for ``mfcc_d_03_p10``; clip-level prosody is its own group."""
    match = re.match(r"^(.*?)(?:_\d+)?_(mean|std|p10|p50|p90|slope)$", column)
    return (match.group(1), match.group(2)) if match else (column, "clip")


def main() -> None:
    from experiments.tracking.runs import configure_tracking

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--condition", required=True, choices=CONDITIONS)
    parser.add_argument("--features", help="feature set (default: the champion's)")
    parser.add_argument("--model", default="ser-emotion")
    parser.add_argument("--clips", type=int, default=120)
    parser.add_argument("--top", type=int, default=12)
    args = parser.parse_args()
    configure_tracking()
    _, test, training, trained_on = champion_clips(args.model, "champion")
    feature_set = args.features or trained_on
    spec = get_feature_spec(feature_set)
    sample = test.sample(min(args.clips, len(test)), random_state=0)
    pool = [load_samples(p) for p in training["path"].sample(48, random_state=0)]
    clean, heard = [], []
    for path in sample["path"]:
        samples = load_samples(path)
        noisy, rate = simulate(
            args.condition,
            samples,
            RATE,
            seed=seed_of(path, args.condition),
            context=Context(babble_pool=pool),
        )
        clean.append(describe(spec, samples, RATE))
        heard.append(describe(spec, noisy, rate))
    clean_frame, heard_frame = pd.DataFrame(clean), pd.DataFrame(heard)
    spread = clean_frame.std()  # the same yardstick for every feature set
    shift = ((heard_frame - clean_frame).mean() / spread.replace(0, np.nan)).fillna(0.0)
    groups = pd.DataFrame(
        [(*group_of(c), abs(v)) for c, v in shift.items()], columns=["group", "stat", "shift"]
    )
    print(
        f"{args.condition} on {len(sample)} test clips, {feature_set}: "
        f"{(shift.abs() > 1).mean():.0%} of {len(shift)} columns moved by more than one "
        f"deviation; mean |shift| {shift.abs().mean():.2f}"
    )
    by_group = groups.groupby("group")["shift"].mean().sort_values(ascending=False)
    by_stat = groups.groupby("stat")["shift"].mean().sort_values(ascending=False)
    print(
        "descriptor groups by mean |shift|: "
        + ", ".join(f"{g} {v:.2f}" for g, v in by_group.head(args.top).items())
    )
    print("functionals by mean |shift|: " + ", ".join(f"{s} {v:.2f}" for s, v in by_stat.items()))
    print(
        "columns moved most: "
        + ", ".join(
            f"{c} {v:+.2f}"
            for c, v in shift.reindex(shift.abs().sort_values().index[::-1]).head(args.top).items()
        )
    )


if __name__ == "__main__":
    sys.exit(main())
