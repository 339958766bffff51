"""A frame-level CRNN in plain torch: log-mel frames in, emotion probabilities out.

The trainer reads a grid of frame columns ``{prefix}_f{frame}_b{band}`` and the real-frame
count ``{prefix}_n_frames`` (as :mod:`ser_features.feature_sets.logmel_frames` writes
them; the column order of the table does not matter, other columns are ignored), so the
feature table keeps one row per clip.

Network (:class:`FrameCRNN`), on ``(batch, frames, bands)``:

* optional per-clip mean subtraction per band over the real frames (``clip_normalisation=
  "mean"``, cepstral-mean-style channel normalisation), then per-band standardisation with
  statistics of the training clips' real frames;
* 2-D conv blocks (3x3 conv, batch norm over the real frames only, ReLU, max-pool 2 in
  frequency and ``time_pooling[i]`` in time, dropout);
* a bidirectional GRU over the remaining frames (packed, so padding is never read);
* attention pooling over time: a softmax over the real frames only;
* dropout and a linear layer to the classes.

Padding is exact: after every block the padded frames are zeroed again and the pooled
lengths follow, so a clip gives the same probabilities however much padding its batch has.

Training side only: SpecAugment-style time and frequency masks (set to the training mean),
mixup of pairs of clips (``mixup_alpha``), optional band shifts and tempo changes
(``band_shift``, ``time_stretch``; off by default), class-balanced cross-entropy on the mixed
targets, AdamW, early stopping on the loss of whole held-out speakers with the
learning rate halved after ``patience // 2`` flat epochs. Randomness comes from a seeded
NumPy generator (batches, masks, mixup) and a forked torch RNG (initialisation, dropout),
so the caller's global random state is untouched; torch runs at ``n_threads`` threads
during ``fit`` / ``predict_proba`` and the previous setting is restored.

Saved without pickle: ``weights.npz`` (the state dict) and ``trainer.json``
(hyperparameters, classes, frame layout, standardisation statistics, history).

The defaults (about 181k weights; 2-5 s per epoch for 1000 clips of ~2 s on one thread)
were the best of the settings tried on RAVDESS speaker folds; smaller conv channels,
stronger mixup and masking, statistics pooling, finer time pooling, band shifts and tempo
changes were not better there.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from experiments.families.inputs import check_labels, validation_split

_WEIGHTS_FILE = "weights.npz"
_META_FILE = "trainer.json"
_FRAME_COLUMN = re.compile(r"^(?P<prefix>[A-Za-z0-9]+)_f(?P<frame>\d+)_b(?P<band>\d+)$")
_PREDICT_BATCH = 64


# --------------------------------------------------------------------------- frame layout


@dataclass(frozen=True)
class FrameLayout:
    """Where the frames of a clip are in a feature table: ``prefix``, grid size, columns."""

    prefix: str
    max_frames: int
    n_bands: int
    #: Frame columns in ``(frame, band)`` order, as found in the table (any zero-padding).
    columns: tuple[str, ...]

    @property
    def length_column(self) -> str:
        return f"{self.prefix}_n_frames"

    @classmethod
    def from_columns(cls, columns: list[str], prefix: str | None = None) -> FrameLayout:
        """Parse the frame grid out of ``columns``; ``prefix`` picks one if there are several."""
        cells: dict[str, dict[tuple[int, int], str]] = {}
        for name in map(str, columns):
            match = _FRAME_COLUMN.match(name)
            if match:
                key = (int(match["frame"]), int(match["band"]))
                cells.setdefault(match["prefix"], {})[key] = name
        if prefix is None:
            found = sorted(cells)
            if len(found) != 1:
                raise ValueError(
                    "expected frame columns named PREFIX_fNNN_bNN for one prefix, found "
                    f"{found or 'none'}; use the logmel_frames feature set (or set frame_prefix)"
                )
            prefix = found[0]
        grid = cells.get(prefix)
        if not grid:
            raise ValueError(f"no frame columns {prefix}_fNNN_bNN in the features")
        n_frames = 1 + max(f for f, _ in grid)
        n_bands = 1 + max(b for _, b in grid)
        if len(grid) != n_frames * n_bands:
            raise ValueError(
                f"frame columns {prefix}_f*_b* do not form a full grid: {len(grid)} of "
                f"{n_frames} frames x {n_bands} bands"
            )
        ordered = tuple(grid[(f, b)] for f in range(n_frames) for b in range(n_bands))
        return cls(prefix, n_frames, n_bands, ordered)

    def arrays(self, features: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """``(frames (n, max_frames, n_bands) float32, lengths (n,) int64)``; padding zeroed."""
        frame = _select(features, [*self.columns, self.length_column])
        values = np.array(frame.iloc[:, :-1].to_numpy(), dtype=np.float32)
        lengths = frame.iloc[:, -1].to_numpy(dtype=np.float64)
        if not np.all(np.isfinite(lengths)):
            raise ValueError(f"{self.length_column} holds missing or infinite values")
        lengths = np.clip(np.rint(lengths), 1, self.max_frames).astype(np.int64)
        x = values.reshape(len(frame), self.max_frames, self.n_bands)
        x[np.arange(self.max_frames)[None, :] >= lengths[:, None]] = 0.0
        if not np.all(np.isfinite(x)):
            raise ValueError("frame columns hold missing or infinite values within the real frames")
        return x, lengths


def _select(features: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    """``features[names]`` with :func:`~experiments.families.inputs.select_features`' checks,
    vectorised: that one checks 8001 columns one by one (about 40 ms per call)."""
    if not isinstance(features, pd.DataFrame):
        raise TypeError(f"features must be a pandas DataFrame, got {type(features).__name__}")
    positions = features.columns.get_indexer(names)
    if (positions < 0).any():
        missing = [name for name, at in zip(names, positions, strict=True) if at < 0]
        more = f" (and {len(missing) - 20} more)" if len(missing) > 20 else ""
        raise ValueError(
            f"{len(missing)} feature column(s) missing: {', '.join(missing[:20])}{more}"
        )
    frame = features.iloc[:, positions]
    if frame.shape[0] == 0:
        raise ValueError(f"features must have rows and columns, got shape {frame.shape}")
    numeric = {dt: pd.api.types.is_numeric_dtype(dt) for dt in set(frame.dtypes)}
    if not all(numeric.values()):
        bad = [str(c) for c, dt in frame.dtypes.items() if not numeric[dt]]
        raise ValueError(f"non-numeric feature column(s): {', '.join(bad[:20])}")
    return frame


def _mask(lengths: torch.Tensor, n_frames: int) -> torch.Tensor:
    """``(batch, n_frames)`` bool: True on real frames."""
    return torch.arange(n_frames)[None, :] < lengths[:, None]


# --------------------------------------------------------------------------- network


class MaskedBatchNorm2d(nn.Module):
    """Batch norm over channels of ``(B, C, F, T)`` whose statistics use real frames only."""

    def __init__(self, channels: int, momentum: float = 0.1, eps: float = 1e-5) -> None:
        super().__init__()
        self.momentum, self.eps = momentum, eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.training:
            m = mask[:, None, None, :].to(x.dtype)
            count = m.sum() * x.shape[2]
            mean = (x * m).sum(dim=(0, 2, 3)) / count
            var = (((x - mean[None, :, None, None]) ** 2) * m).sum(dim=(0, 2, 3)) / count
            with torch.no_grad():
                unbiased = var * count / max(float(count) - 1.0, 1.0)
                self.running_mean.lerp_(mean, self.momentum)
                self.running_var.lerp_(unbiased, self.momentum)
        else:
            mean, var = self.running_mean, self.running_var
        scale = self.weight / torch.sqrt(var + self.eps)
        shift = self.bias - mean * scale
        return x * scale[None, :, None, None] + shift[None, :, None, None]


class ConvBlock(nn.Module):
    """3x3 conv, masked batch norm, ReLU, max-pool (2 in frequency, ``time_pool`` in time)."""

    def __init__(self, c_in: int, c_out: int, time_pool: int, dropout: float) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel_size=3, padding=1, bias=False)
        self.norm = MaskedBatchNorm2d(c_out)
        self.time_pool = time_pool
        self.pool = nn.MaxPool2d((2, time_pool), ceil_mode=True)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mask = _mask(lengths, x.shape[3])
        x = torch.relu(self.norm(self.conv(x), mask)) * mask[:, None, None, :]
        # Values are >= 0 and padding is 0, so a pooling window across the end of the real
        # frames takes the real ones; ceil_mode keeps a last, partial window.
        x = self.pool(x)
        lengths = torch.div(lengths + self.time_pool - 1, self.time_pool, rounding_mode="floor")
        return self.dropout(x) * _mask(lengths, x.shape[3])[:, None, None, :], lengths


class FrameCRNN(nn.Module):
    """Conv blocks, a BiGRU and attention pooling over ``(batch, frames, bands)``."""

    def __init__(
        self,
        n_bands: int,
        n_classes: int,
        *,
        channels: tuple[int, ...],
        time_pooling: tuple[int, ...],
        rnn_hidden: int,
        attention_dim: int,
        dropout: float,
        pooling: str = "attention",
    ) -> None:
        super().__init__()
        if pooling not in ("attention", "attention_stats"):
            raise ValueError(f"pooling must be 'attention' or 'attention_stats', not {pooling!r}")
        self.with_std = pooling == "attention_stats"
        if len(channels) != len(time_pooling):
            raise ValueError(
                f"channels {channels} and time_pooling {time_pooling} must have the same length"
            )
        widths = (1, *channels)
        self.blocks = nn.ModuleList(
            ConvBlock(widths[i], widths[i + 1], time_pooling[i], dropout)
            for i in range(len(channels))
        )
        bands = n_bands
        for _ in channels:
            bands = -(-bands // 2)
        width = channels[-1] * bands if channels else n_bands
        if rnn_hidden > 0:
            self.rnn: nn.GRU | None = nn.GRU(
                width, rnn_hidden, batch_first=True, bidirectional=True
            )
            width = 2 * rnn_hidden
        else:
            self.rnn = None
        self.attention = nn.Sequential(
            nn.Linear(width, attention_dim), nn.Tanh(), nn.Linear(attention_dim, 1)
        )
        self.dropout = nn.Dropout(dropout)
        self.output = nn.Linear(2 * width if self.with_std else width, n_classes)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Logits for standardised frames ``x`` (padding zero) with ``lengths`` real frames."""
        h = x.transpose(1, 2)[:, None]  # (B, 1, F, T)
        for block in self.blocks:
            h, lengths = block(h, lengths)
        batch, c, f, t = h.shape
        h = h.permute(0, 3, 1, 2).reshape(batch, t, c * f)
        if self.rnn is not None:
            packed = pack_padded_sequence(h, lengths, batch_first=True, enforce_sorted=False)
            h, _ = pad_packed_sequence(self.rnn(packed)[0], batch_first=True, total_length=t)
        mask = _mask(lengths, t)
        scores = self.attention(h).squeeze(-1).masked_fill(~mask, float("-inf"))
        weights = torch.softmax(scores, dim=1)
        pooled = (weights[..., None] * h).sum(dim=1)
        if self.with_std:
            spread = (weights[..., None] * (h - pooled[:, None]) ** 2).sum(dim=1)
            pooled = torch.cat([pooled, torch.sqrt(spread.clamp_min(1e-6))], dim=1)
        return self.output(self.dropout(pooled))


# --------------------------------------------------------------------------- helpers


@contextmanager
def torch_threads(n_threads: int | None) -> Iterator[None]:
    """Use ``n_threads`` torch CPU threads inside the block, then restore the previous value."""
    previous = torch.get_num_threads()
    if n_threads:
        torch.set_num_threads(n_threads)
    try:
        yield
    finally:
        if n_threads:
            torch.set_num_threads(previous)


def _stretch(frames: np.ndarray, factor: float, max_frames: int) -> np.ndarray:
    """``frames`` resampled in time to ``round(len * factor)`` frames (linear interpolation)."""
    n = len(frames)
    new_n = int(np.clip(round(n * factor), 1, max_frames))
    if new_n == n:
        return frames
    position = np.linspace(0.0, n - 1.0, new_n)
    low = np.floor(position).astype(np.int64)
    high = np.minimum(low + 1, n - 1)
    weight = (position - low)[:, None].astype(np.float32)
    return frames[low] * (1 - weight) + frames[high] * weight


def _shift_bands(frames: np.ndarray, shift: int) -> np.ndarray:
    """``frames`` moved ``shift`` bands up (negative: down), the edge band repeated."""
    if shift == 0:
        return frames
    out = np.empty_like(frames)
    if shift > 0:
        out[:, shift:] = frames[:, :-shift]
        out[:, :shift] = frames[:, :1]
    else:
        out[:, :shift] = frames[:, -shift:]
        out[:, shift:] = frames[:, -1:]
    return out


def _uar(codes: np.ndarray, predicted: np.ndarray, n_classes: int) -> float:
    recalls = [np.mean(predicted[codes == k] == k) for k in range(n_classes) if np.any(codes == k)]
    return float(np.mean(recalls)) if recalls else float("nan")


# --------------------------------------------------------------------------- trainer


class FrameCRNNTrainer(BaseEstimator):
    """Frame-level CRNN with attention pooling, SpecAugment and mixup (see the module doc).

    Parameters
    ----------
    channels, time_pooling
        Output channels and time-pooling factor of each conv block (frequency always halves).
    rnn_hidden
        Hidden size of each direction of the BiGRU; 0 leaves the RNN out.
    attention_dim
        Width of the attention scorer.
    pooling
        ``"attention"`` (the attention-weighted mean over the real frames) or
        ``"attention_stats"`` (that mean and the attention-weighted standard deviation).
    dropout
        Dropout after every conv block and before the output layer.
    clip_normalisation
        ``"mean"``: subtract each clip's mean per band (real frames) first; ``"none"``.
    epochs, batch_size, learning_rate, weight_decay, patience
        AdamW training with early stopping on the validation loss (best epoch restored).
    class_weight
        ``"balanced"`` (inverse class frequency in the loss) or ``None``.
    time_masks, time_mask_width, freq_masks, freq_mask_width
        SpecAugment: how many masks per training clip and their maximum widths (frames,
        bands); a time mask never covers more than a fifth of a clip.
    mixup_alpha
        Beta(alpha, alpha) mixing weight of mixup pairs; 0 turns mixup off.
    band_shift
        Shift each training clip by up to this many mel bands either way (edge bands
        repeated), a crude vocal-tract-length perturbation; 0 turns it off.
    time_stretch
        Resample each training clip's frames by a factor drawn from ``1 +- time_stretch``
        (a tempo change, linear interpolation); 0 turns it off.
    validation_fraction
        Share of the training data (whole speakers when groups are given) for early stopping.
    frame_prefix
        Prefix of the frame columns; ``None`` takes the only one present.
    seed, n_threads, verbose
        Seed of every random draw; torch threads during fit/predict; per-epoch lines on stderr.
    """

    family: ClassVar[str] = "frame_crnn"
    _tuple_params: ClassVar[tuple[str, ...]] = ("channels", "time_pooling")

    def __init__(
        self,
        *,
        channels: tuple[int, ...] = (16, 32, 64),
        time_pooling: tuple[int, ...] = (2, 2, 1),
        rnn_hidden: int = 64,
        attention_dim: int = 64,
        pooling: str = "attention",
        dropout: float = 0.3,
        clip_normalisation: str = "mean",
        epochs: int = 100,
        batch_size: int = 32,
        learning_rate: float = 2e-3,
        weight_decay: float = 1e-3,
        patience: int = 15,
        class_weight: str | None = "balanced",
        time_masks: int = 2,
        time_mask_width: int = 8,
        freq_masks: int = 2,
        freq_mask_width: int = 6,
        mixup_alpha: float = 0.2,
        band_shift: int = 0,
        time_stretch: float = 0.0,
        validation_fraction: float = 0.15,
        frame_prefix: str | None = None,
        seed: int = 0,
        n_threads: int | None = 1,
        verbose: int = 0,
    ) -> None:
        self.channels = channels
        self.time_pooling = time_pooling
        self.rnn_hidden = rnn_hidden
        self.attention_dim = attention_dim
        self.pooling = pooling
        self.dropout = dropout
        self.clip_normalisation = clip_normalisation
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.patience = patience
        self.class_weight = class_weight
        self.time_masks = time_masks
        self.time_mask_width = time_mask_width
        self.freq_masks = freq_masks
        self.freq_mask_width = freq_mask_width
        self.mixup_alpha = mixup_alpha
        self.band_shift = band_shift
        self.time_stretch = time_stretch
        self.validation_fraction = validation_fraction
        self.frame_prefix = frame_prefix
        self.seed = seed
        self.n_threads = n_threads
        self.verbose = verbose

    # ----------------------------------------------------------------- preprocessing

    def _check_params(self) -> None:
        if self.clip_normalisation not in ("mean", "none"):
            raise ValueError(
                f"clip_normalisation must be 'mean' or 'none', not {self.clip_normalisation!r}"
            )
        if self.class_weight not in ("balanced", None):
            raise ValueError(f"class_weight must be 'balanced' or None, got {self.class_weight!r}")
        if any(p < 1 for p in self.time_pooling) or any(c < 1 for c in self.channels):
            raise ValueError("channels and time_pooling must be positive")

    def _normalise(self, x: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """Per-clip mean removal (optional); padding stays zero."""
        if self.clip_normalisation == "mean":
            means = x.sum(axis=1) / lengths[:, None]
            real = np.arange(x.shape[1])[None, :] < lengths[:, None]
            x = np.where(real[..., None], x - means[:, None, :], 0.0).astype(np.float32)
        return x

    def _standardise(self, x: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        real = (np.arange(x.shape[1])[None, :] < lengths[:, None])[..., None]
        z = (x - self.band_mean_[None, None, :]) / self.band_std_[None, None, :]
        return np.where(real, z, 0.0).astype(np.float32)

    def _inputs(self, features: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        x, lengths = self.layout_.arrays(features)
        return self._standardise(self._normalise(x, lengths), lengths), lengths

    # ----------------------------------------------------------------- fit

    def fit(
        self, features: pd.DataFrame, labels: np.ndarray, groups: np.ndarray | None = None
    ) -> FrameCRNNTrainer:
        """Fit on the frame columns of ``features``; ``groups`` (speakers) make the
        early-stopping part speaker-disjoint."""
        self._check_params()
        if not isinstance(features, pd.DataFrame):
            raise TypeError(f"features must be a pandas DataFrame, got {type(features).__name__}")
        layout = FrameLayout.from_columns(list(features.columns), self.frame_prefix)
        raw, lengths = layout.arrays(features)
        labels, groups, classes = check_labels(features, labels, groups)
        codes = np.array([classes.index(label) for label in labels])
        fit_idx, val_idx, strategy = validation_split(
            labels, groups, fraction=self.validation_fraction, seed=self.seed
        )
        self.layout_ = layout
        self.classes_ = classes
        self.validation_strategy_ = strategy
        self.n_validation_ = len(val_idx)

        x = self._normalise(raw, lengths)
        real = (np.arange(layout.max_frames)[None, :] < lengths[fit_idx, None])[..., None]
        n_real = real.sum()
        mean = (x[fit_idx] * real).sum(axis=(0, 1)) / n_real
        var = (((x[fit_idx] - mean) ** 2) * real).sum(axis=(0, 1)) / n_real
        self.band_mean_ = mean.astype(np.float64)
        self.band_std_ = np.sqrt(np.maximum(var, 1e-8)).astype(np.float64)
        x = self._standardise(x, lengths)

        weights = self._class_weights(codes[fit_idx], len(classes))
        rng = np.random.default_rng(self.seed)
        started = time.perf_counter()
        with torch_threads(self.n_threads), torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(rng.integers(2**31 - 1)))
            self.model_ = self._network(layout.n_bands, len(classes))
            history, best_epoch = self._train(x, lengths, codes, fit_idx, val_idx, weights, rng)
        self.history_ = history
        self.epochs_trained_ = len(history["loss"])
        self.best_epoch_ = best_epoch
        self.fit_seconds_ = round(time.perf_counter() - started, 2)
        return self

    def _network(self, n_bands: int, n_classes: int) -> FrameCRNN:
        return FrameCRNN(
            n_bands,
            n_classes,
            channels=tuple(self.channels),
            time_pooling=tuple(self.time_pooling),
            rnn_hidden=self.rnn_hidden,
            attention_dim=self.attention_dim,
            pooling=self.pooling,
            dropout=self.dropout,
        )

    def _class_weights(self, codes: np.ndarray, n_classes: int) -> np.ndarray:
        if self.class_weight is None:
            return np.ones(n_classes)
        counts = np.bincount(codes, minlength=n_classes)
        return np.array([len(codes) / (n_classes * c) if c else 1.0 for c in counts])

    def _train(
        self,
        x: np.ndarray,
        lengths: np.ndarray,
        codes: np.ndarray,
        fit_idx: np.ndarray,
        val_idx: np.ndarray,
        class_weights: np.ndarray,
        rng: np.random.Generator,
    ) -> tuple[dict[str, list[float]], int]:
        model = self.model_
        n_classes = len(self.classes_)
        weights = torch.tensor(class_weights, dtype=torch.float32)
        onehot = np.eye(n_classes, dtype=np.float32)[codes]
        optimiser = torch.optim.AdamW(
            model.parameters(), lr=self.learning_rate, weight_decay=self.weight_decay
        )
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimiser, factor=0.5, patience=max(1, self.patience // 2), min_lr=1e-5
        )
        history: dict[str, list[float]] = {"loss": [], "val_loss": [], "val_uar": [], "lr": []}
        best = (math.inf, 0, None)
        for epoch in range(1, self.epochs + 1):
            model.train()
            order = rng.permutation(fit_idx)
            total, seen = 0.0, 0.0
            for start in range(0, len(order), self.batch_size):
                batch = order[start : start + self.batch_size]
                if len(batch) < 2 and len(order) > 1:
                    continue  # a batch of one breaks batch norm and teaches nothing
                xb, lb, yb = self._augmented_batch(x, lengths, onehot, batch, rng)
                logits = model(xb, lb)
                per_clip = -(yb * weights * torch.log_softmax(logits, dim=1)).sum(dim=1)
                norm = (yb * weights).sum()
                loss = per_clip.sum() / norm
                optimiser.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(model.parameters(), 5.0)
                optimiser.step()
                total += float(per_clip.detach().sum())
                seen += float(norm)
            proba = self._proba(x[val_idx], lengths[val_idx])
            val_codes = codes[val_idx]
            picked = np.clip(proba[np.arange(len(val_idx)), val_codes], 1e-12, None)
            w = class_weights[val_codes]
            val_loss = float(-(w * np.log(picked)).sum() / w.sum())
            val_uar = _uar(val_codes, proba.argmax(axis=1), n_classes)
            history["loss"].append(total / max(seen, 1e-12))
            history["val_loss"].append(val_loss)
            history["val_uar"].append(val_uar)
            history["lr"].append(float(optimiser.param_groups[0]["lr"]))
            if self.verbose:
                print(
                    f"[frame_crnn] epoch {epoch}: loss {history['loss'][-1]:.4f} "
                    f"val_loss {val_loss:.4f} val_uar {val_uar:.3f}",
                    file=sys.stderr,
                    flush=True,
                )
            if val_loss < best[0]:
                state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                best = (val_loss, epoch, state)
            elif epoch - best[1] >= self.patience:
                break
            scheduler.step(val_loss)
        if best[2] is not None:
            model.load_state_dict(best[2])
        model.eval()
        return history, best[1]

    def _augmented_batch(
        self,
        x: np.ndarray,
        lengths: np.ndarray,
        onehot: np.ndarray,
        batch: np.ndarray,
        rng: np.random.Generator,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Stretched, shifted, SpecAugment-masked, mixed-up training batch, cut to its
        longest clip."""
        max_frames, n_bands = x.shape[1:]
        clips = [x[row, :n] for row, n in zip(batch, lengths[batch], strict=True)]
        if self.time_stretch > 0:
            factors = rng.uniform(1 - self.time_stretch, 1 + self.time_stretch, len(clips))
            clips = [_stretch(c, f, max_frames) for c, f in zip(clips, factors, strict=True)]
        if self.band_shift > 0:
            shifts = rng.integers(-self.band_shift, self.band_shift + 1, len(clips))
            clips = [_shift_bands(c, int(k)) for c, k in zip(clips, shifts, strict=True)]
        lb = np.array([len(c) for c in clips], dtype=np.int64)
        xb = np.zeros((len(batch), int(lb.max()), n_bands), dtype=np.float32)
        for i, c in enumerate(clips):
            xb[i, : len(c)] = c
        yb = onehot[batch].copy()
        for i, n in enumerate(lb):
            for _ in range(self.time_masks):
                w = int(rng.integers(0, min(self.time_mask_width, max(1, n // 5)) + 1))
                if w:
                    t0 = int(rng.integers(0, n - w + 1))
                    xb[i, t0 : t0 + w] = 0.0
            for _ in range(self.freq_masks):
                w = int(rng.integers(0, min(self.freq_mask_width, n_bands - 1) + 1))
                if w:
                    f0 = int(rng.integers(0, n_bands - w + 1))
                    xb[i, :n, f0 : f0 + w] = 0.0
        if self.mixup_alpha > 0:
            lam = rng.beta(self.mixup_alpha, self.mixup_alpha, size=len(batch))
            lam = np.maximum(lam, 1.0 - lam).astype(np.float32)  # the first clip dominates
            partner = rng.permutation(len(batch))
            xb = lam[:, None, None] * xb + (1.0 - lam[:, None, None]) * xb[partner]
            yb = lam[:, None] * yb + (1.0 - lam[:, None]) * yb[partner]
            lb = np.maximum(lb, lb[partner])
        return (
            torch.from_numpy(np.ascontiguousarray(xb, dtype=np.float32)),
            torch.from_numpy(lb),
            torch.from_numpy(yb.astype(np.float32)),
        )

    # ----------------------------------------------------------------- predict

    def _proba(self, x: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """Softmax of the network on standardised frames, batched by similar length."""
        model = self.model_
        model.eval()
        out = np.zeros((len(x), len(self.classes_)), dtype=np.float64)
        order = np.argsort(lengths, kind="stable")
        with torch.inference_mode():
            for start in range(0, len(order), _PREDICT_BATCH):
                rows = order[start : start + _PREDICT_BATCH]
                width = int(lengths[rows].max())
                xb = torch.from_numpy(np.ascontiguousarray(x[rows, :width]))
                logits = model(xb, torch.from_numpy(lengths[rows]))
                out[rows] = torch.softmax(logits.double(), dim=1).numpy()
        return out

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray:
        """Class probabilities (float64, rows sum to 1), columns in ``classes_`` order."""
        if not hasattr(self, "model_"):
            raise RuntimeError(f"{type(self).__name__} is not fitted; call fit() first")
        x, lengths = self._inputs(features)
        with torch_threads(self.n_threads):
            proba = self._proba(x, lengths)
        return proba / proba.sum(axis=1, keepdims=True)

    def params(self) -> dict[str, Any]:
        """Hyperparameters and seed; after ``fit`` also epochs, validation split and size."""
        out = dict(self.get_params())
        if hasattr(self, "model_"):
            out.update(
                epochs_trained=self.epochs_trained_,
                best_epoch=self.best_epoch_,
                validation_strategy=self.validation_strategy_,
                n_validation=self.n_validation_,
                n_weights=int(sum(p.numel() for p in self.model_.parameters())),
                frame_grid=f"{self.layout_.max_frames}x{self.layout_.n_bands}",
            )
        return out

    # ----------------------------------------------------------------- save / load

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write ``weights.npz`` (state dict) and ``trainer.json`` into ``directory``."""
        if not hasattr(self, "model_"):
            raise RuntimeError(f"{type(self).__name__} is not fitted; nothing to save")
        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().numpy() for k, v in self.model_.state_dict().items()}
        np.savez(folder / _WEIGHTS_FILE, **state)
        meta = {
            "family": self.family,
            "hyperparameters": self.get_params(),
            "fitted": {
                "classes_": self.classes_,
                "layout_": asdict(self.layout_),
                "band_mean_": self.band_mean_.tolist(),
                "band_std_": self.band_std_.tolist(),
                "history_": self.history_,
                "epochs_trained_": self.epochs_trained_,
                "best_epoch_": self.best_epoch_,
                "validation_strategy_": self.validation_strategy_,
                "n_validation_": self.n_validation_,
                "fit_seconds_": self.fit_seconds_,
            },
        }
        (folder / _META_FILE).write_text(json.dumps(meta, indent=1))
        return folder

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> FrameCRNNTrainer:
        """Rebuild a fitted trainer written by :meth:`save`."""
        folder = Path(directory)
        meta = json.loads((folder / _META_FILE).read_text())
        if meta.get("family") != cls.family:
            raise ValueError(f"{folder} holds a {meta.get('family')!r} model, not {cls.family}")
        hyper = {
            key: tuple(value) if key in cls._tuple_params else value
            for key, value in meta["hyperparameters"].items()
        }
        trainer = cls(**hyper)
        fitted = dict(meta["fitted"])
        layout = fitted.pop("layout_")
        trainer.layout_ = FrameLayout(**{**layout, "columns": tuple(layout["columns"])})
        trainer.band_mean_ = np.asarray(fitted.pop("band_mean_"), dtype=np.float64)
        trainer.band_std_ = np.asarray(fitted.pop("band_std_"), dtype=np.float64)
        for name, value in fitted.items():
            setattr(trainer, name, value)
        trainer.model_ = trainer._network(trainer.layout_.n_bands, len(trainer.classes_))
        with np.load(folder / _WEIGHTS_FILE, allow_pickle=False) as arrays:
            state = {name: torch.from_numpy(arrays[name].copy()) for name in arrays.files}
        trainer.model_.load_state_dict(state)
        trainer.model_.eval()
        return trainer
