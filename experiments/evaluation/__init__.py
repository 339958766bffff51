"""Honest evaluation: speaker-independent splits, metrics over clips and folds, confusion plots."""

from experiments.evaluation.metrics import EvaluationResult, evaluate, summarise_folds
from experiments.evaluation.splits import PROTOCOLS, Split, assert_speaker_disjoint

__all__ = [
    "PROTOCOLS",
    "EvaluationResult",
    "Split",
    "assert_speaker_disjoint",
    "evaluate",
    "summarise_folds",
]
