"""How the served quality facts read on real speech, as recorded and through simulated
recording conditions: what each warning threshold catches and what it spares.

Run by hand (not in CI), from the repository root, after ``ser train`` and ``ser promote``::

    .venv/bin/python benchmarks/quality_facts.py                     # 120 clips per corpus
    .venv/bin/python benchmarks/quality_facts.py --conditions clean telephone_gsm --per-corpus 40

A fixed sample (``--per-corpus``, ``--seed``) of the champion's test clips is passed through
each condition of :mod:`ser_features.conditions` (seeded per clip and condition, babble mixed
from the run's training clips), written as 16-bit WAV at the condition's rate, decoded, and
measured exactly as the server measures a request
(:func:`experiments.serving.recording.hear`). One line per condition and corpus: the 10th,
50th and 90th percentiles of the estimated SNR and the bandwidth, the median speech and speech
level, and the share of clips raising each warning.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter

import numpy as np
import pandas as pd
from robustness import champion_clips, condition_wav, load_samples, sample_per_corpus

WARNINGS = ("too_little_speech", "low_snr", "narrowband", "clipped", "quiet")
DEFAULT_CONDITIONS = (
    "clean",
    "pink_noise_30db",
    "pink_noise_20db",
    "pink_noise_10db",
    "pink_noise_5db",
    "babble_10db",
    "room_rt60_1_0s",
    "telephone_ulaw",
    "telephone_gsm",
    "mp3_16kbps",
    "opus_14kbps",
    "clipped_12db",
    "level_-50dbfs",
    "level_-9dbfs",
)


def heard_through(condition: str, path: str, pool: list[np.ndarray]) -> dict:
    """The quality facts of one clip through ``condition``, as the server measures them."""
    from experiments.serving.recording import as_recorded, hear

    return hear(as_recorded(condition_wav(condition, path, pool)))[1]


def summary_line(condition: str, corpus: str, facts: list[dict]) -> str:
    """Percentiles of SNR and bandwidth, medians of speech and level, warning shares."""
    frame = pd.DataFrame(facts).astype({"snr_db": float, "level_dbfs": float})
    raised = Counter(code for row in facts for code in row["warnings"])
    snr = np.nanpercentile(frame["snr_db"], [10, 50, 90])
    band = np.percentile(frame["bandwidth_hz"], [10, 50, 90])
    shares = " ".join(f"{code} {raised[code] / len(facts):4.0%}" for code in WARNINGS)
    return (
        f"{condition:16s} {corpus:8s} {int(frame['sample_rate'].iloc[0]):5d} "
        f"{frame['speech_s'].median():4.2f}  {snr[0]:5.1f} {snr[1]:5.1f} {snr[2]:5.1f}  "
        f"{band[0]:5.0f} {band[1]:5.0f} {band[2]:5.0f}  {frame['level_dbfs'].median():6.1f} | "
        f"{shares}"
    )


def main() -> None:
    from experiments.tracking.runs import configure_tracking
    from ser_features.conditions import CONDITIONS

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="ser-emotion")
    parser.add_argument("--alias", default="champion")
    parser.add_argument(
        "--conditions", nargs="+", default=list(DEFAULT_CONDITIONS), choices=CONDITIONS
    )
    parser.add_argument("--per-corpus", type=int, default=120)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    configure_tracking()
    _, test, training, _ = champion_clips(args.model, args.alias)
    clips = sample_per_corpus(test, args.per_corpus, args.seed)
    pool = [load_samples(p) for p in training["path"].sample(48, random_state=args.seed)]
    counts = ", ".join(f"{c} {n}" for c, n in clips["corpus"].value_counts().items())
    print(
        f"{len(clips)} test clips ({counts}); columns: rate, median speech_s, "
        "snr_db p10/p50/p90, bandwidth_hz p10/p50/p90, median level_dbfs | "
        "share of clips raising each warning",
        flush=True,
    )
    for condition in args.conditions:
        for corpus, group in clips.groupby("corpus", sort=True):
            facts = [heard_through(condition, path, pool) for path in group["path"]]
            print(summary_line(condition, corpus, facts), flush=True)


if __name__ == "__main__":
    sys.exit(main())
