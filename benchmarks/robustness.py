"""How the champion holds up under real recording conditions: noise, babble, rooms, telephone
lines, codecs, clipping and extreme levels.

Run by hand (not in CI), from the repository root, after ``ser train`` and ``ser promote``::

    .venv/bin/python benchmarks/robustness.py                       # ser-emotion@champion
    .venv/bin/python benchmarks/robustness.py --conditions clean pink_noise_20db telephone_ulaw

The champion's own test clips (the speakers its run held out, from the run's logged split)
are passed through every condition of :mod:`ser_features.conditions` (seeded per clip and
condition), written as 16-bit WAV at the condition's rate, and scored by the champion's
pyfunc in this process, exactly as ``ser serve`` scores a request (``--workers`` processes,
each with its own copy of the model). Babble is mixed from clips of the run's *training*
speakers, never its test speakers. At most ``--per-corpus`` clips of each corpus are scored
(a fixed, seeded sample; the default 600 keeps all of RAVDESS's 240 test clips and samples
CREMA-D's).

One line per condition and corpus: UAR, the points lost against clean, the label the model
answers most and its share (``collapse`` when one label takes more than half the clips),
the rows refused, and the rows answered "too little speech to judge" (counted in the UAR
with their most probable label). ``--json FILE`` keeps every figure.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import sys
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import balanced_accuracy_score

#: A label answered for more than this share of a corpus's clips is a collapse.
COLLAPSE_SHARE = 0.5
RATE = 16000
CLIP_COLUMNS = ["path", "emotion", "corpus", "speaker"]

_model = None
_pool: list[np.ndarray] = []


def seed_of(path: str, condition: str) -> int:
    """The seed of one clip under one condition: the same on every run and machine."""
    return int.from_bytes(hashlib.blake2b(f"{path}|{condition}".encode(), digest_size=4).digest())


def load_samples(path: str) -> np.ndarray:
    """A clip (or segment) as mono float samples at 16 kHz, untouched otherwise."""
    import io

    import soundfile as sf

    from ser_features.audio import resample
    from ser_features.clip_source import read_clip_bytes

    data, rate = sf.read(io.BytesIO(read_clip_bytes(path)), dtype="float32", always_2d=True)
    return resample(data.mean(axis=1).astype(np.float32), rate, RATE)


def condition_wav(condition: str, path: str, pool: list[np.ndarray]) -> bytes:
    """The WAV bytes of clip ``path`` heard through ``condition`` (babble from ``pool``)."""
    from ser_features.conditions import Context, as_wav_bytes, simulate

    heard, rate = simulate(
        condition,
        load_samples(path),
        RATE,
        seed=seed_of(path, condition),
        context=Context(babble_pool=pool),
    )
    return as_wav_bytes(heard, rate)


def _start_worker(model_uri: str, pool_paths: list[str]) -> None:
    global _model, _pool
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import mlflow

    _model = mlflow.pyfunc.load_model(model_uri)
    _pool = [load_samples(path) for path in pool_paths]


def _score(job: tuple[str, list[str]]) -> list[dict]:
    """The pyfunc's answers for ``paths`` heard through ``condition`` (one request's rows)."""
    condition, paths = job
    audio = [base64.b64encode(condition_wav(condition, path, _pool)).decode() for path in paths]
    answers = _model.predict(pd.DataFrame({"audio": audio}))
    return [
        {
            "emotion": row["emotion"],
            "judged": isinstance(row["emotion"], str),
            "said": row["emotion"]
            if isinstance(row["emotion"], str)
            else _most_probable(row["probabilities"]),
            "error": row["error"],
        }
        for row in answers.to_dict("records")
    ]


def _most_probable(probabilities: dict | None) -> str | None:
    """The label a row not judged (too little speech) would have had."""
    return max(probabilities, key=probabilities.get) if isinstance(probabilities, dict) else None


def champion_clips(
    model_name: str, alias: str, *, columns: list[str] | None = None
) -> tuple[str, pd.DataFrame, pd.DataFrame, str]:
    """The model URI, the run's test clips and its training clips (``columns``, default path,
    emotion, corpus, speaker; ``[]`` for all) and the run's feature set."""
    import mlflow
    from mlflow import MlflowClient

    from experiments.tracking.registry import run_feature_table, tested_clips

    version = MlflowClient().get_model_version_by_alias(model_name, alias)
    run = mlflow.get_run(version.tags.get("source_run_id") or version.run_id)
    table = run_feature_table(run)
    test = tested_clips(run, table)
    keep = columns or (list(table.columns) if columns == [] else CLIP_COLUMNS)
    training = table[~table["speaker"].isin(set(test["speaker"]))]
    uri = f"models:/{model_name}/{version.version}"
    return uri, test[keep], training[keep], run.data.params["feature_set"]


def sample_per_corpus(clips: pd.DataFrame, limit: int, seed: int) -> pd.DataFrame:
    """At most ``limit`` clips of each corpus, a fixed sample for ``seed``."""
    parts = [
        group if len(group) <= limit else group.sample(limit, random_state=seed)
        for _, group in clips.groupby("corpus", sort=True)
    ]
    return pd.concat(parts).sort_values("path").reset_index(drop=True)


def summarise(clips: pd.DataFrame, answers: list[dict]) -> dict:
    """UAR, the most answered label and its share, refused rows and rows not judged (too
    little speech heard: scored with their most probable label), for one corpus."""
    said = pd.Series([a["said"] for a in answers], index=clips.index)
    refused = pd.Series([bool(a["error"]) for a in answers], index=clips.index)
    ok = ~refused & said.notna()
    truth = clips["emotion"][ok]
    uar = float(balanced_accuracy_score(truth, said[ok])) if ok.any() else float("nan")
    label, count = Counter(said[ok]).most_common(1)[0] if ok.any() else ("-", 0)
    return {
        "uar": uar,
        "clips": len(clips),
        "refused": int(refused.sum()),
        "not_judged": sum(not a["judged"] and not a["error"] for a in answers),
        "top_label": label,
        "top_share": count / max(int(ok.sum()), 1),
    }


def main() -> None:
    from experiments.tracking.runs import configure_tracking
    from ser_features.conditions import CONDITIONS

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="ser-emotion")
    parser.add_argument("--alias", default="champion")
    parser.add_argument("--conditions", nargs="+", default=list(CONDITIONS), choices=CONDITIONS)
    parser.add_argument("--per-corpus", type=int, default=600)
    parser.add_argument("--babble-clips", type=int, default=48)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=24)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if "clean" not in args.conditions:
        args.conditions.insert(0, "clean")

    configure_tracking()
    model_uri, test, training, _ = champion_clips(args.model, args.alias)
    clips = sample_per_corpus(test, args.per_corpus, args.seed)
    pool = training.sample(min(args.babble_clips, len(training)), random_state=args.seed)
    corpora = sorted(clips["corpus"].unique())
    print(
        f"{model_uri}: {len(clips)} test clips of {test['speaker'].nunique()} held-out speakers "
        f"({', '.join(f'{c} {int((clips.corpus == c).sum())}' for c in corpora)}); babble from "
        f"{len(pool)} clips of {pool['speaker'].nunique()} training speakers",
        flush=True,
    )
    jobs = [
        (condition, clips["path"].iloc[first : first + args.batch].tolist())
        for condition in args.conditions
        for first in range(0, len(clips), args.batch)
    ]
    results: dict[str, dict[str, dict]] = {}
    started = time.perf_counter()
    with ProcessPoolExecutor(
        args.workers, initializer=_start_worker, initargs=(model_uri, pool["path"].tolist())
    ) as executor:
        answers_of: dict[str, list[dict]] = {c: [] for c in args.conditions}
        for (condition, _), answers in zip(jobs, executor.map(_score, jobs), strict=True):
            answers_of[condition] += answers
            if len(answers_of[condition]) == len(clips):
                results[condition] = {
                    corpus: summarise(
                        clips[clips.corpus == corpus],
                        [
                            answer
                            for answer, of in zip(answers_of[condition], clips.corpus, strict=True)
                            if of == corpus
                        ],
                    )
                    for corpus in corpora
                }
                print_line(condition, results, corpora, time.perf_counter() - started)
    if args.json:
        args.json.write_text(json.dumps({"model": model_uri, "results": results}, indent=1))


def print_line(condition: str, results: dict, corpora: list[str], elapsed: float) -> None:
    """One condition's line: per corpus UAR, points lost against clean, top label and share."""
    cells = []
    for corpus in corpora:
        row, clean = results[condition][corpus], results["clean"][corpus]
        lost = 100 * (clean["uar"] - row["uar"])
        collapse = " COLLAPSE" if row["top_share"] > COLLAPSE_SHARE else ""
        refused = f" refused {row['refused']}" if row["refused"] else ""
        refused += f" not judged {row['not_judged']}" if row["not_judged"] else ""
        cells.append(
            f"{corpus} {row['uar']:.3f} ({-lost:+5.1f}) top {row['top_label']} "
            f"{row['top_share']:.0%}{collapse}{refused}"
        )
    print(f"{condition:16s} | " + " | ".join(cells) + f"   [{elapsed:.0f} s]", flush=True)


if __name__ == "__main__":
    sys.exit(main())
