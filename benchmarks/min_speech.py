"""How much speech the champion needs: its accuracy and calibration on the first seconds of
speech of clips it never heard.

Run by hand (not in CI), from the repository root, after ``ser train`` and ``ser promote``::

    .venv/bin/python benchmarks/min_speech.py                  # ser-emotion@champion, 300 clips
    .venv/bin/python benchmarks/min_speech.py --clips 600 --lengths 0.5 1.0

A fixed sample (``--clips``, ``--seed``) of the champion's own test clips (the speakers its run
held out) is cut to its first 0.25, 0.5, ... s of speech as the voice activity detector hears
it (:mod:`ser_features.speech_activity`, as the server hears it; from the start of the
recording to the window where that much speech has passed; a clip with less speech is kept
whole) and scored by the
champion's pyfunc in this process, as ``ser serve`` scores a request. The answer taken is the
label of highest probability (the served probabilities are given even when a row has too
little speech to be judged), so the figures do not depend on the served threshold.

One line per length: clips cut to it, UAR (chance is one over the number of labels), mean
confidence, the expected calibration error over 10 equal-width confidence bins (ECE: the mean
gap between confidence and accuracy, weighted by the clips in each bin) and the UAR of each
corpus; then the whole clips' reliability table (per confidence bin: clips, mean confidence,
accuracy). ``--json FILE`` keeps every figure.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from robustness import RATE, champion_clips, load_samples
from sklearn.metrics import balanced_accuracy_score

LENGTHS = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0)
WHOLE = "whole"
BINS = 10


def first_speech(samples: np.ndarray, probability: np.ndarray, seconds: float) -> np.ndarray:
    """``samples`` (at :data:`RATE`) up to the window where ``seconds`` of speech have passed;
    all of them when there is less speech than that."""
    from ser_features.speech_activity import WINDOW, speech_windows

    passed = np.cumsum(speech_windows(probability)) * (WINDOW / RATE)
    reached = np.flatnonzero(passed >= seconds - 1e-9)
    return samples if len(reached) == 0 else samples[: (reached[0] + 1) * WINDOW]


def reliability(confidence: np.ndarray, correct: np.ndarray) -> list[dict]:
    """Clips, mean confidence and accuracy in each of :data:`BINS` equal-width confidence bins
    (empty bins left out)."""
    which = np.clip(np.digitize(confidence, np.linspace(0.0, 1.0, BINS + 1)[1:-1]), 0, BINS - 1)
    return [
        {
            "bin": f"{b / BINS:.1f}-{(b + 1) / BINS:.1f}",
            "clips": int(np.sum(which == b)),
            "confidence": float(confidence[which == b].mean()),
            "accuracy": float(correct[which == b].mean()),
        }
        for b in range(BINS)
        if np.any(which == b)
    ]


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray) -> float:
    """ECE over :data:`BINS` equal-width confidence bins."""
    return float(
        sum(
            row["clips"] * abs(row["confidence"] - row["accuracy"])
            for row in reliability(confidence, correct)
        )
        / len(confidence)
    )


def score(model, clips: list[np.ndarray], *, batch: int = 32) -> pd.DataFrame:
    """The served answers of ``clips`` (16-bit WAV at :data:`RATE`): probabilities and speech."""
    from ser_features.conditions import as_wav_bytes

    answers = []
    for first in range(0, len(clips), batch):
        audio = [
            base64.b64encode(as_wav_bytes(clip, RATE)).decode()
            for clip in clips[first : first + batch]
        ]
        answers.append(model.predict(pd.DataFrame({"audio": audio})))
    return pd.concat(answers, ignore_index=True)


def summarise(truth: pd.Series, corpora: pd.Series, answers: pd.DataFrame) -> dict:
    """UAR, mean confidence, ECE and per-corpus UAR of one length's answers (refused rows,
    too short to read, left out and counted)."""
    answered = answers["error"].isna().to_numpy()
    truth, corpora, answers = truth[answered], corpora[answered], answers[answered]
    probabilities = pd.DataFrame(list(answers["probabilities"]), index=truth.index)
    said = probabilities.idxmax(axis=1).to_numpy()
    confidence = probabilities.max(axis=1).to_numpy()
    correct = said == truth.to_numpy()
    return {
        "uar": float(balanced_accuracy_score(truth, said)),
        "confidence": float(confidence.mean()),
        "accuracy": float(correct.mean()),
        "ece": expected_calibration_error(confidence, correct),
        "reliability": reliability(confidence, correct),
        "speech_s": float(np.median([q["speech_s"] for q in answers["quality"]])),
        "refused": int((~answered).sum()),
        "per_corpus": {
            corpus: float(balanced_accuracy_score(truth[mask], said[mask.to_numpy()]))
            for corpus, mask in ((c, corpora == c) for c in sorted(corpora.unique()))
        },
    }


def main() -> None:
    import mlflow

    from experiments.tracking.runs import configure_tracking
    from ser_features.speech_activity import speech_probability

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="ser-emotion")
    parser.add_argument("--alias", default="champion")
    parser.add_argument("--clips", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lengths", type=float, nargs="+", default=list(LENGTHS))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    configure_tracking()
    model_uri, test, _, _ = champion_clips(args.model, args.alias)
    sample = test.sample(min(args.clips, len(test)), random_state=args.seed)
    sample = sample.reset_index(drop=True)
    model = mlflow.pyfunc.load_model(model_uri)
    recordings = [load_samples(path) for path in sample["path"]]
    heard = [speech_probability(samples, RATE) for samples in recordings]
    chance = 1 / sample["emotion"].nunique()
    print(
        f"{model_uri}: {len(sample)} test clips of {sample['speaker'].nunique()} held-out "
        f"speakers ({', '.join(f'{c} {n}' for c, n in sample['corpus'].value_counts().items())})"
        f"; {sample['emotion'].nunique()} labels, chance UAR {chance:.3f}",
        flush=True,
    )
    print("speech   cut   UAR    conf   acc    ECE    heard  | per corpus UAR", flush=True)
    results = {}
    for length in [*args.lengths, WHOLE]:
        clips = [
            samples if length == WHOLE else first_speech(samples, probability, length)
            for samples, probability in zip(recordings, heard, strict=True)
        ]
        cut = np.mean([len(c) < len(s) for c, s in zip(clips, recordings, strict=True)])
        row = summarise(sample["emotion"], sample["corpus"], score(model, clips))
        results[str(length)] = {**row, "cut_share": float(cut)}
        corpora = "  ".join(f"{c} {u:.3f}" for c, u in row["per_corpus"].items())
        name = WHOLE if length == WHOLE else f"{length:.2f} s"
        print(
            f"{name:7s} {cut:4.0%}  {row['uar']:.3f}  {row['confidence']:.3f}  "
            f"{row['accuracy']:.3f}  {row['ece']:.3f}  {row['speech_s']:4.2f} s | {corpora}"
            + (f" | refused {row['refused']}" if row["refused"] else ""),
            flush=True,
        )
    print("whole clips by confidence (clips: mean confidence / accuracy):", flush=True)
    for row in results[WHOLE]["reliability"]:
        print(f"  {row['bin']}: {row['clips']:3d}: {row['confidence']:.3f} / {row['accuracy']:.3f}")
    if args.json:
        args.json.write_text(json.dumps({"model": model_uri, "results": results}, indent=1))


if __name__ == "__main__":
    sys.exit(main())
