"""Honest evaluation protocols: which rows of a feature table are trained on and tested on.

Speaker-independent splits are the default: no speaker is ever on both sides, so the score
measures generalisation to new voices.  ``random_stratified`` splits put the same speakers on
both sides; they exist *only* to compare with published numbers that used them.
``cross_corpus`` trains on some corpora and tests on others, over the labels both share;
``leave_one_corpus_out`` trains on every corpus of the table but one and tests on that one.
A table may hold several corpora: speaker-independent splits then hold out the same share of
every corpus's speakers (gender-balanced inside each corpus) and folds are stratified by
corpus and emotion, so every corpus is on both sides with its own labels.

Every split holds integer *positional* indices into the table (use ``table.iloc``).

>>> import pandas as pd
>>> table = pd.DataFrame({"speaker": ["a", "a", "b", "b", "c", "c"],
...                       "emotion": ["sad", "happy"] * 3})
>>> split = speaker_independent_split(table, test_speakers=["b"])
>>> split.test_index.tolist(), split.test_speakers
([2, 3], ('b',))
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.model_selection import (
    GroupKFold,
    StratifiedGroupKFold,
    StratifiedKFold,
    train_test_split,
)

from ser_features.labels import ordered_labels, rare_labels

SPEAKER_INDEPENDENT = "speaker_independent"
RANDOM_STRATIFIED = "random_stratified"
CROSS_CORPUS = "cross_corpus"
LEAVE_ONE_CORPUS_OUT = "leave_one_corpus_out"
#: Every protocol an experiment file may name (``protocol.kind``).
PROTOCOLS: tuple[str, ...] = (
    SPEAKER_INDEPENDENT,
    RANDOM_STRATIFIED,
    CROSS_CORPUS,
    LEAVE_ONE_CORPUS_OUT,
)

#: Part of the description of every random split, so that nobody mistakes it for honest.
RANDOM_SPLIT_NOTE = "random split: same speakers on both sides, optimistic"

IndexPairs = list[tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True, eq=False)
class Split:
    """One train/test partition of a feature table (positional row indices, read-only).

    ``labels`` are the emotion labels the split is about, in canonical order (for
    cross-corpus splits: the labels shared by both sides); both sides keep only those,
    unless ``all_training_labels``, when they restrict the test side alone.
    """

    train_index: np.ndarray
    test_index: np.ndarray
    protocol: str
    test_speakers: tuple[str, ...]
    description: str
    labels: tuple[str, ...] = field(default=())
    all_training_labels: bool = False

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"unknown protocol {self.protocol!r}; expected one of {PROTOCOLS}")
        for name in ("train_index", "test_index"):
            index = np.array(getattr(self, name), dtype=np.intp).ravel()
            index.setflags(write=False)
            object.__setattr__(self, name, index)
        if len(self.train_index) == 0 or len(self.test_index) == 0:
            raise ValueError(f"{self.protocol} split has an empty side: {self.description}")
        if np.intersect1d(self.train_index, self.test_index).size:
            raise ValueError("a row is on both sides of the split")


def assert_speaker_disjoint(table: pd.DataFrame, split: Split) -> None:
    """Raise ``ValueError`` listing the speakers found on both sides of ``split``."""
    speakers = _speakers(table)
    overlap = sorted(set(speakers[split.train_index]) & set(speakers[split.test_index]))
    if overlap:
        raise ValueError(
            f"{split.protocol} split leaks {len(overlap)} speaker(s) onto both sides: "
            + ", ".join(overlap)
        )


def speaker_independent_split(
    table: pd.DataFrame,
    *,
    test_speakers: Sequence[str] | None = None,
    test_fraction: float = 0.2,
    seed: int = 0,
) -> Split:
    """Hold out whole speakers: the given ones, or a seeded, gender-balanced choice.

    Without ``test_speakers``, ``round(test_fraction * n_speakers)`` speakers (at least one,
    never all) are drawn, as evenly as possible across the values of the ``gender`` column
    (e.g. 20 RAVDESS actors -> 2 male + 2 female), leaving each gender some training speakers.
    With several corpora in the table this is done inside each corpus (its own share of its
    own speakers), so every corpus is on both sides.
    """
    speakers = _speakers(table)
    known = sorted(set(speakers))
    if len(known) < 2:
        raise ValueError(f"a speaker-independent split needs >= 2 speakers, got {known}")
    if test_speakers is not None:
        chosen = sorted({str(s) for s in test_speakers})
        unknown = [s for s in chosen if s not in set(known)]
        if unknown:
            raise ValueError(f"unknown test speaker(s): {', '.join(unknown)}")
        if not chosen or len(chosen) == len(known):
            raise ValueError("test_speakers must be a non-empty, proper subset of the speakers")
        how = "given"
    else:
        if not 0 < test_fraction < 1:
            raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
        chosen, draws = _covering_choice(table, speakers, known, test_fraction, seed)
        how = f"seed {seed}, gender-balanced" + (
            " within each corpus" if len(_speakers_by_corpus(table, known)) > 1 else ""
        )
        if draws > 1:
            how += f", drawn {draws} times to keep every label on both sides"
    is_test = np.isin(speakers, chosen)
    split = Split(
        train_index=np.flatnonzero(~is_test),
        test_index=np.flatnonzero(is_test),
        protocol=SPEAKER_INDEPENDENT,
        test_speakers=tuple(chosen),
        description=(
            f"speaker-independent: {len(chosen)} of {len(known)} speakers held out ({how}): "
            + ", ".join(chosen)
        ),
        labels=tuple(ordered_labels(set(_emotions(table)))),
    )
    assert_speaker_disjoint(table, split)
    return split


#: How many seeded draws of test speakers are tried to find one with every label on both sides.
COVERING_DRAWS = 64


def _covering_choice(
    table: pd.DataFrame, speakers: np.ndarray, known: list[str], test_fraction: float, seed: int
) -> tuple[list[str], int]:
    """Held-out speakers (as in :func:`speaker_independent_split`) and the number of draws.

    The first draw is ``seed``'s; when it leaves a label on one side only, further seeded
    draws are tried (up to :data:`COVERING_DRAWS`) and the first that keeps every label
    spoken by two or more speakers on both sides is taken, else the one that keeps most.
    """
    by_corpus = _speakers_by_corpus(table, known)
    emotions = _emotions(table)
    coverable = {label for label in set(emotions) if len(set(speakers[emotions == label])) >= 2}
    best: tuple[int, list[str], int] | None = None
    for draw in range(COVERING_DRAWS):
        chosen: list[str] = []
        for members in by_corpus.values():
            n_test = min(max(1, round(test_fraction * len(members))), len(members) - 1)
            if n_test < 1:
                continue  # a corpus with one speaker stays on the training side
            genders = _speaker_genders(table, members)
            chosen += _balanced_choice(genders, n_test, seed + 7919 * draw)
        is_test = np.isin(speakers, chosen)
        both = coverable & set(emotions[is_test]) & set(emotions[~is_test])
        if best is None or len(both) > best[0]:
            best = (len(both), sorted(chosen), draw + 1)
        if both == coverable:
            break
    assert best is not None
    return best[1], best[2]


def require_splittable_labels(table: pd.DataFrame) -> None:
    """Raise ``ValueError`` naming every label that comes from a single speaker group.

    Such a label cannot be on both sides of a speaker-independent split: it would be
    trained on and never tested, or tested and never learnt.
    """
    rare = rare_labels(_emotions(table), _speakers(table))
    if rare:
        listed = ", ".join(
            f"{label!r} ({clips} clip(s), {groups} speaker group)"
            for label, (clips, groups) in rare.items()
        )
        raise ValueError(
            f"label(s) {listed}: a speaker-independent split needs each label from at least "
            "2 speakers; add clips, merge the label into another (data.labels.map) or drop it "
            "(data.labels.drop)"
        )


def grouping_notes(table: pd.DataFrame) -> list[str]:
    """What speaker-independent splits group clips by, and a warning when it is not always
    the speaker (sessions or recordings may share a voice across the split)."""
    if "grouped_by" in table.columns:
        grouped = table["grouped_by"].fillna("speaker").astype(str)
    else:
        grouped = pd.Series(["speaker"] * len(table))
    counts = grouped.value_counts()
    parts = ", ".join(f"{by} ({n} clips)" for by, n in counts.items())
    notes = [f"splits keep clips apart by {parts}"]
    weaker = [by for by in counts.index if by != "speaker"]
    if weaker:
        notes.append(
            f"clips grouped by {' and '.join(weaker)} name no speaker: one person may be on "
            "both sides of a split, so held-out scores may be optimistic; add a speaker "
            "column to the manifest to rule that out"
        )
    return notes


def speaker_kfold(table: pd.DataFrame, *, n_splits: int = 5, seed: int = 0) -> list[Split]:
    """Group K-fold by speaker, stratified by emotion (and corpus, when several) where
    possible.

    Every speaker is in exactly one test fold, so the test folds cover every row once.
    """
    speakers = _speakers(table)
    labels = tuple(ordered_labels(set(_emotions(table))))
    folds = _speaker_folds(speakers, _strata(table), n_splits=n_splits, seed=seed)
    splits = []
    for k, (train, test) in enumerate(folds, start=1):
        held_out = tuple(sorted(set(speakers[test].tolist())))
        split = Split(
            train_index=train,
            test_index=test,
            protocol=SPEAKER_INDEPENDENT,
            test_speakers=held_out,
            description=(
                f"speaker-independent fold {k}/{n_splits} (seed {seed}): "
                f"{len(held_out)} speakers held out: " + ", ".join(held_out)
            ),
            labels=labels,
        )
        assert_speaker_disjoint(table, split)
        splits.append(split)
    return splits


def random_stratified_split(
    table: pd.DataFrame, *, test_fraction: float = 0.2, seed: int = 0
) -> Split:
    """A random split stratified by emotion; for comparison with published numbers only."""
    emotions = _emotions(table)
    _require_per_class(emotions, 2, "a stratified random split")
    train, test = train_test_split(
        np.arange(len(table)), test_size=test_fraction, random_state=seed, stratify=emotions
    )
    return _random_split(table, np.sort(train), np.sort(test), f"seed {seed}")


def random_stratified_kfold(
    table: pd.DataFrame, *, n_splits: int = 5, seed: int = 0
) -> list[Split]:
    """Shuffled stratified K-fold over rows; for comparison with published numbers only.

    Like scikit-learn, this warns (not fails) when a label has fewer than ``n_splits`` clips.
    """
    emotions = _emotions(table)
    folds = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    return [
        _random_split(table, train, test, f"fold {k}/{n_splits}, seed {seed}")
        for k, (train, test) in enumerate(folds.split(np.zeros(len(table)), emotions), start=1)
    ]


def cross_corpus_split(
    table: pd.DataFrame,
    *,
    train_corpora: Sequence[str],
    test_corpora: Sequence[str],
    labels: Sequence[str] | None = None,
    all_training_labels: bool = False,
) -> Split:
    """Train on ``train_corpora``, test on ``test_corpora``, over labels both sides have.

    Rows whose label is not in the shared set (or in ``labels`` when given) are left out
    of both sides; with ``all_training_labels`` only of the test side, so the model learns
    every label of its training corpora (as a deployed one does) and may answer a label the
    test corpus lacks.
    """
    train_corpora, test_corpora = list(train_corpora), list(test_corpora)
    if not train_corpora or not test_corpora:
        raise ValueError("cross_corpus_split needs at least one train and one test corpus")
    both = sorted(set(train_corpora) & set(test_corpora))
    if both:
        raise ValueError(f"corpora on both sides of a cross-corpus split: {', '.join(both)}")
    corpus = table["corpus"].astype(str).to_numpy()
    absent = [c for c in train_corpora + test_corpora if c not in set(corpus)]
    if absent:
        present = ", ".join(sorted(set(corpus)))
        raise ValueError(f"corpus not in the table: {', '.join(absent)} (present: {present})")
    emotions = _emotions(table)
    on_train, on_test = np.isin(corpus, train_corpora), np.isin(corpus, test_corpora)
    shared = set(emotions[on_train]) & set(emotions[on_test])
    if labels is None:
        if not shared:
            raise ValueError("the train and test corpora share no emotion label")
        chosen = ordered_labels(shared)
    else:
        missing = sorted(set(labels) - shared)
        if missing:
            raise ValueError(f"label(s) not present on both sides: {', '.join(missing)}")
        chosen = ordered_labels(set(labels))
    keep = np.isin(emotions, chosen)
    test = np.flatnonzero(on_test & keep)
    split = Split(
        train_index=np.flatnonzero(on_train if all_training_labels else on_train & keep),
        test_index=test,
        protocol=CROSS_CORPUS,
        test_speakers=tuple(sorted(set(_speakers(table)[test].tolist()))),
        description=(
            f"cross-corpus: train on {', '.join(train_corpora)}"
            f"{' (every label)' if all_training_labels else ''}, "
            f"test on {', '.join(test_corpora)}; labels: {', '.join(chosen)}"
        ),
        labels=tuple(chosen),
        all_training_labels=all_training_labels,
    )
    assert_speaker_disjoint(table, split)
    return split


def leave_one_corpus_out_split(
    table: pd.DataFrame, *, test_corpus: str, labels: Sequence[str] | None = None
) -> Split:
    """Train on every other corpus of ``table``, test on ``test_corpus``, over shared labels.

    No clip of ``test_corpus`` is on the training side, whatever its label.
    """
    corpora = sorted(set(table["corpus"].astype(str)))
    others = [c for c in corpora if c != test_corpus]
    if not others:
        raise ValueError(f"leave_one_corpus_out needs another corpus besides {test_corpus!r}")
    split = cross_corpus_split(
        table, train_corpora=others, test_corpora=[test_corpus], labels=labels
    )
    return Split(
        train_index=split.train_index,
        test_index=split.test_index,
        protocol=LEAVE_ONE_CORPUS_OUT,
        test_speakers=split.test_speakers,
        description=split.description.replace("cross-corpus", "leave-one-corpus-out", 1),
        labels=split.labels,
    )


def group_folds_for_tuning(
    groups: np.ndarray,
    *,
    n_splits: int = 3,
    seed: int = 0,
    labels: np.ndarray | None = None,
) -> IndexPairs:
    """(train, test) index pairs with no group on both sides, for ``GridSearchCV(cv=...)``.

    ``groups`` are the speakers of the training rows; ``n_splits`` is reduced to the number
    of distinct speakers when fewer.  With ``labels`` the folds are also stratified.

    >>> folds = group_folds_for_tuning(np.array(["a", "a", "b", "c"]), n_splits=5)
    >>> len(folds)
    3
    """
    groups = np.asarray(groups).astype(str)
    n_groups = len(set(groups))
    if n_groups < 2:
        raise ValueError(f"group-aware tuning folds need >= 2 speakers, got {n_groups}")
    return _speaker_folds(groups, labels, n_splits=min(n_splits, n_groups), seed=seed)


# --- helpers ---------------------------------------------------------------------------------


def _speakers(table: pd.DataFrame) -> np.ndarray:
    return table["speaker"].astype(str).to_numpy()


def _emotions(table: pd.DataFrame) -> np.ndarray:
    return table["emotion"].astype(str).to_numpy()


def _corpora(table: pd.DataFrame) -> np.ndarray:
    if "corpus" not in table.columns:
        return np.full(len(table), "", dtype=object)
    return table["corpus"].astype(str).to_numpy()


def _strata(table: pd.DataFrame) -> np.ndarray:
    """Emotion labels, prefixed by the corpus when the table holds several."""
    corpora, emotions = _corpora(table), _emotions(table)
    if len(set(corpora)) < 2:
        return emotions
    return np.char.add(np.char.add(corpora.astype(str), "/"), emotions.astype(str))


def _speakers_by_corpus(table: pd.DataFrame, speakers: list[str]) -> dict[str, list[str]]:
    """The speakers of each corpus (speaker ids are unique across corpora)."""
    corpus_of = dict(zip(_speakers(table), _corpora(table), strict=True))
    groups: dict[str, list[str]] = {}
    for speaker in speakers:
        groups.setdefault(corpus_of[speaker], []).append(speaker)
    return groups


def _speaker_folds(
    groups: np.ndarray, labels: np.ndarray | None, *, n_splits: int, seed: int
) -> IndexPairs:
    """Group K-fold (stratified when ``labels`` are given) with every test fold non-empty."""
    n_groups = len(set(groups))
    if n_splits < 2:
        raise ValueError(f"n_splits must be >= 2, got {n_splits}")
    if n_splits > n_groups:
        raise ValueError(
            f"n_splits={n_splits} is more than the {n_groups} speakers; "
            "every test fold needs at least one speaker"
        )
    x = np.zeros(len(groups))
    # StratifiedGroupKFold refuses when every label has fewer than n_splits clips.
    if labels is not None and n_splits <= pd.Series(labels).value_counts().max():
        splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
        with warnings.catch_warnings():
            # Rare labels only weaken the stratification; the folds stay speaker-disjoint.
            warnings.filterwarnings("ignore", message="The least populated class")
            folds = list(splitter.split(x, labels, groups))
        if all(len(test) for _, test in folds):
            return folds
    # Shuffle the speakers' order so ``seed`` matters on every scikit-learn version.
    order = np.random.default_rng(seed).permutation(sorted(set(groups)))
    codes = pd.Series(np.arange(n_groups), index=order)[groups].to_numpy()
    return list(GroupKFold(n_splits=n_splits).split(x, groups=codes))


def _speaker_genders(table: pd.DataFrame, speakers: list[str]) -> dict[str, str]:
    """Each speaker's gender (``"unknown"`` when missing or ambiguous)."""
    if "gender" not in table.columns:
        return dict.fromkeys(speakers, "unknown")
    genders = table.assign(speaker=_speakers(table)).groupby("speaker")["gender"]
    found = genders.agg(lambda g: g.dropna().iloc[0] if g.dropna().nunique() == 1 else None)
    return {s: str(found[s]) if pd.notna(found[s]) else "unknown" for s in speakers}


def _balanced_choice(genders: dict[str, str], n_test: int, seed: int) -> list[str]:
    """Draw ``n_test`` speakers, as evenly as possible across genders (seeded)."""
    rng = np.random.default_rng(seed)
    pools = {
        g: [str(s) for s in rng.permutation(sorted(s for s, sg in genders.items() if sg == g))]
        for g in sorted(set(genders.values()))
    }
    quota = dict.fromkeys(pools, 0)
    # Round-robin in a seeded gender order; keep >= 1 training speaker per gender if possible.
    order = [str(g) for g in rng.permutation(sorted(pools))]
    for cap_slack in (1, 0):
        while sum(quota.values()) < n_test:
            open_ = [g for g in order if quota[g] < len(pools[g]) - cap_slack]
            if not open_:
                break
            least = min(quota[g] for g in open_)
            quota[next(g for g in open_ if quota[g] == least)] += 1
    return sorted(s for g, pool in pools.items() for s in pool[: quota[g]])


def _require_per_class(emotions: np.ndarray, minimum: int, what: str) -> None:
    counts = pd.Series(emotions).value_counts()
    rare = counts[counts < minimum]
    if len(rare):
        raise ValueError(
            f"{what} needs >= {minimum} clips of every emotion; too few: "
            + ", ".join(f"{label} ({n})" for label, n in rare.items())
        )


def _random_split(table: pd.DataFrame, train: np.ndarray, test: np.ndarray, how: str) -> Split:
    return Split(
        train_index=train,
        test_index=test,
        protocol=RANDOM_STRATIFIED,
        test_speakers=tuple(sorted(set(_speakers(table)[test].tolist()))),
        description=f"{RANDOM_SPLIT_NOTE} ({how}, stratified by emotion)",
        labels=tuple(ordered_labels(set(_emotions(table)))),
    )
