"""Keras 3 (torch backend) networks on the standardised feature vector: a dense ANN and a 1D-CNN.

Both hold out a validation part of the *training* data (whole speakers when groups are given)
for early stopping and learning-rate decay, and can be saved to / loaded from a folder.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import joblib
import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator
from sklearn.preprocessing import StandardScaler

from experiments.families.inputs import check_labels, select_features, validation_split
from experiments.families.keras_backend import check_torch_backend, lazy_keras

# ImportError now if keras is already imported (or configured) for another backend; keras
# itself is imported, on torch, when first used (in fit or load), not by importing this.
check_torch_backend()
keras = lazy_keras()

_MODEL_FILE = "model.keras"
_SCALER_FILE = "scaler.joblib"
_META_FILE = "trainer.json"
#: Fitted attributes (besides the model and scaler) that :meth:`KerasTrainerBase.save` keeps.
_FITTED = (
    "classes_",
    "feature_names_",
    "history_",
    "epochs_trained_",
    "best_epoch_",
    "validation_strategy_",
    "n_validation_",
)


@contextmanager
def _quiet() -> Iterator[None]:
    """Silence Keras' torch-backend ``__array__`` ``DeprecationWarning`` (one per batch)."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r"__array__ implementation", category=DeprecationWarning
        )
        yield


@contextmanager
def torch_threads(n_threads: int | None) -> Iterator[None]:
    """Use ``n_threads`` torch CPU threads inside the block, then restore the previous value."""
    previous = torch.get_num_threads()
    if n_threads:
        torch.set_num_threads(n_threads)
    try:
        with _quiet():
            yield
    finally:
        if n_threads:
            torch.set_num_threads(previous)


class KerasTrainerBase(BaseEstimator):
    """Shared fit / predict / save logic; subclasses build the network in :meth:`_build`.

    Training parameters of every subclass: ``epochs``, ``batch_size``, ``learning_rate``
    (Adam), ``patience`` (early stopping on ``val_loss``; the learning rate halves after
    ``patience // 2`` flat epochs), ``class_weight`` (``"balanced"`` or ``None``),
    ``validation_fraction`` (share of the training data, whole speakers when groups are given,
    held out for early stopping), ``seed``, ``n_threads`` (torch CPU threads during
    ``fit``/``predict_proba``, restored afterwards; ``None`` keeps torch's setting; one thread
    is as fast for these small batches and does not crawl when other processes share the
    cores) and ``verbose``.
    """

    family: ClassVar[str] = ""
    _tuple_params: ClassVar[tuple[str, ...]] = ()

    def _build(self, n_features: int, n_classes: int, seeds: Iterator[int]) -> keras.Model:
        """The network; every initialiser and Dropout layer takes its seed from ``seeds``."""
        raise NotImplementedError

    def _layer_seeds(self) -> Iterator[int]:
        """Distinct seeds for the layers of one network, drawn from a generator of ``seed``."""
        rng = np.random.default_rng(self.seed)
        while True:
            yield int(rng.integers(2**31 - 1))

    def _inputs(self, scaled: np.ndarray) -> np.ndarray:
        """Network input from the standardised matrix (dense nets take it as is)."""
        return scaled.astype(np.float32)

    def fit(
        self, features: pd.DataFrame, labels: np.ndarray, groups: np.ndarray | None = None
    ) -> KerasTrainerBase:
        """Fit on ``features``; ``groups`` (speakers) make the validation part speaker-disjoint."""
        frame = select_features(features)
        labels, groups, classes = check_labels(frame, labels, groups)
        self.feature_names_ = [str(c) for c in frame.columns]
        self.classes_ = classes
        codes = np.array([classes.index(label) for label in labels])
        fit_idx, val_idx, self.validation_strategy_ = validation_split(
            labels, groups, fraction=self.validation_fraction, seed=self.seed
        )
        self.n_validation_ = len(val_idx)

        values = frame.to_numpy(dtype=np.float64)
        self.scaler_ = StandardScaler().fit(values[fit_idx])
        x = self._inputs(self.scaler_.transform(values))
        y = keras.utils.to_categorical(codes, num_classes=len(classes)).astype(np.float32)

        # The layers draw from their own seeded generators. Keras shuffles the batches with
        # torch's global generator (a DataLoader RandomSampler, which takes no generator from
        # Keras): it is seeded inside a fork, so the caller's torch state comes back untouched.
        with torch_threads(self.n_threads), torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self.model_ = self._build(len(self.feature_names_), len(classes), self._layer_seeds())
            self.model_.compile(
                optimizer=keras.optimizers.Adam(learning_rate=self.learning_rate),
                loss="categorical_crossentropy",
                metrics=["accuracy"],
            )
            callbacks = [
                keras.callbacks.EarlyStopping(
                    monitor="val_loss", patience=self.patience, restore_best_weights=True
                ),
                keras.callbacks.ReduceLROnPlateau(
                    monitor="val_loss", factor=0.5, patience=max(1, self.patience // 2), min_lr=1e-5
                ),
            ]
            history = self.model_.fit(
                x[fit_idx],
                y[fit_idx],
                validation_data=(x[val_idx], y[val_idx]),
                epochs=self.epochs,
                batch_size=self.batch_size,
                class_weight=self._class_weights(codes[fit_idx], len(classes)),
                callbacks=callbacks,
                shuffle=True,
                verbose=self.verbose,
            )
        self.history_ = {key: [float(v) for v in values] for key, values in history.history.items()}
        self.epochs_trained_ = len(self.history_["loss"])
        self.best_epoch_ = int(np.argmin(self.history_["val_loss"])) + 1
        return self

    def _class_weights(self, codes: np.ndarray, n_classes: int) -> dict[int, float] | None:
        if self.class_weight is None:
            return None
        if self.class_weight != "balanced":
            raise ValueError(f"class_weight must be 'balanced' or None, got {self.class_weight!r}")
        counts = np.bincount(codes, minlength=n_classes)
        return {k: float(len(codes) / (n_classes * c)) if c else 1.0 for k, c in enumerate(counts)}

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray:
        """Class probabilities (float64, rows sum to 1), columns in ``classes_`` order."""
        if not hasattr(self, "model_"):
            raise RuntimeError(f"{type(self).__name__} is not fitted; call fit() first")
        frame = select_features(features, self.feature_names_)
        x = self._inputs(self.scaler_.transform(frame.to_numpy(dtype=np.float64)))
        # Keras draws one number from torch's global generator per call: keep the caller's
        with torch_threads(self.n_threads), torch.random.fork_rng(devices=[]):
            proba = self.model_.predict(x, batch_size=256, verbose=0)
        proba = np.asarray(proba, dtype=np.float64)
        return proba / proba.sum(axis=1, keepdims=True)

    def params(self) -> dict[str, Any]:
        """Hyperparameters and seed; after ``fit`` also epochs trained and the validation split."""
        out = dict(self.get_params())
        if hasattr(self, "model_"):
            out.update(
                epochs_trained=self.epochs_trained_,
                best_epoch=self.best_epoch_,
                validation_strategy=self.validation_strategy_,
                n_validation=self.n_validation_,
                n_weights=int(self.model_.count_params()),
            )
        return out

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write the fitted model (``model.keras``), scaler and metadata into ``directory``."""
        if not hasattr(self, "model_"):
            raise RuntimeError(f"{type(self).__name__} is not fitted; nothing to save")
        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        with _quiet():
            self.model_.save(folder / _MODEL_FILE)
        joblib.dump(self.scaler_, folder / _SCALER_FILE)
        meta = {
            "family": self.family,
            "hyperparameters": self.get_params(),
            "fitted": {name: getattr(self, name) for name in _FITTED},
        }
        (folder / _META_FILE).write_text(json.dumps(meta, indent=1))
        return folder

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> KerasTrainerBase:
        """Rebuild a fitted trainer written by :meth:`save` (any family via the base class)."""
        folder = Path(directory)
        meta = json.loads((folder / _META_FILE).read_text())
        target = _FAMILIES.get(meta["family"])
        if target is None or not issubclass(target, cls):
            raise ValueError(f"{folder} holds a {meta['family']!r} model, not a {cls.__name__}")
        hyper = {
            key: tuple(value) if key in target._tuple_params else value
            for key, value in meta["hyperparameters"].items()
        }
        trainer = target(**hyper)
        with _quiet():
            trainer.model_ = keras.saving.load_model(folder / _MODEL_FILE, compile=False)
        trainer.scaler_ = joblib.load(folder / _SCALER_FILE)
        for name in _FITTED:
            setattr(trainer, name, meta["fitted"][name])
        return trainer


class KerasANNTrainer(KerasTrainerBase):
    """Dense network (default 300-50-20-10, ReLU) with a softmax output.

    Parameters
    ----------
    hidden_units
        Width of each hidden layer.
    dropout
        Dropout rate after each of the first ``dropout_layers`` hidden layers.
    **training
        See :class:`KerasTrainerBase`.
    """

    family: ClassVar[str] = "keras_ann"
    _tuple_params: ClassVar[tuple[str, ...]] = ("hidden_units",)

    def __init__(
        self,
        *,
        hidden_units: tuple[int, ...] = (300, 50, 20, 10),
        dropout: float = 0.2,
        dropout_layers: int = 2,
        epochs: int = 100,
        batch_size: int = 32,
        learning_rate: float = 1e-3,
        patience: int = 10,
        class_weight: str | None = "balanced",
        validation_fraction: float = 0.15,
        seed: int = 0,
        n_threads: int | None = 1,
        verbose: int = 0,
    ) -> None:
        self.hidden_units = hidden_units
        self.dropout = dropout
        self.dropout_layers = dropout_layers
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.patience = patience
        self.class_weight = class_weight
        self.validation_fraction = validation_fraction
        self.seed = seed
        self.n_threads = n_threads
        self.verbose = verbose

    def _build(self, n_features: int, n_classes: int, seeds: Iterator[int]) -> keras.Model:
        glorot = keras.initializers.GlorotUniform
        inputs = keras.Input(shape=(n_features,), name="features")
        x = inputs
        for i, units in enumerate(self.hidden_units):
            x = keras.layers.Dense(
                units,
                activation="relu",
                kernel_initializer=glorot(seed=next(seeds)),
                name=f"dense_{i}",
            )(x)
            if self.dropout and i < self.dropout_layers:
                x = keras.layers.Dropout(self.dropout, seed=next(seeds), name=f"dropout_{i}")(x)
        outputs = keras.layers.Dense(
            n_classes,
            activation="softmax",
            kernel_initializer=glorot(seed=next(seeds)),
            name="proba",
        )(x)
        return keras.Model(inputs, outputs, name="ser_ann")


class KerasCNNTrainer(KerasTrainerBase):
    """1D-CNN over the standardised feature vector read as a sequence of shape (n_features, 1).

    Parameters
    ----------
    filters
        Channels of each Conv1D block (Conv1D, BatchNorm, ReLU, MaxPool(2), Dropout).
    kernel_size
        Width of every convolution.
    dense_units
        Width of the dense layer before the softmax.
    pooling
        ``"flatten"`` keeps positions (features are not shift-invariant);
        ``"global_average"`` averages them away and is smaller.
    dropout
        Dropout rate after every block and the dense layer.
    **training
        See :class:`KerasTrainerBase`.
    """

    family: ClassVar[str] = "keras_cnn"
    _tuple_params: ClassVar[tuple[str, ...]] = ("filters",)

    def __init__(
        self,
        *,
        filters: tuple[int, ...] = (8, 16, 32),
        kernel_size: int = 5,
        dense_units: int = 64,
        pooling: str = "flatten",
        dropout: float = 0.2,
        epochs: int = 100,
        batch_size: int = 32,
        learning_rate: float = 1e-3,
        patience: int = 10,
        class_weight: str | None = "balanced",
        validation_fraction: float = 0.15,
        seed: int = 0,
        n_threads: int | None = 1,
        verbose: int = 0,
    ) -> None:
        self.filters = filters
        self.kernel_size = kernel_size
        self.dense_units = dense_units
        self.pooling = pooling
        self.dropout = dropout
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.patience = patience
        self.class_weight = class_weight
        self.validation_fraction = validation_fraction
        self.seed = seed
        self.n_threads = n_threads
        self.verbose = verbose

    def _inputs(self, scaled: np.ndarray) -> np.ndarray:
        return scaled.astype(np.float32)[:, :, np.newaxis]

    def _build(self, n_features: int, n_classes: int, seeds: Iterator[int]) -> keras.Model:
        if self.pooling not in ("flatten", "global_average"):
            raise ValueError(f"pooling must be 'flatten' or 'global_average', not {self.pooling!r}")
        layers = keras.layers
        glorot = keras.initializers.GlorotUniform
        inputs = keras.Input(shape=(n_features, 1), name="features")
        x = inputs
        for i, width in enumerate(self.filters):
            x = layers.Conv1D(
                width,
                self.kernel_size,
                padding="same",
                kernel_initializer=glorot(seed=next(seeds)),
                name=f"conv_{i}",
            )(x)
            x = layers.BatchNormalization(name=f"bn_{i}")(x)
            x = layers.ReLU(name=f"relu_{i}")(x)
            if x.shape[1] >= 2:
                x = layers.MaxPooling1D(2, name=f"pool_{i}")(x)
            x = layers.Dropout(self.dropout, seed=next(seeds), name=f"dropout_{i}")(x)
        if self.pooling == "flatten":
            x = layers.Flatten(name="flatten")(x)
        else:
            x = layers.GlobalAveragePooling1D(name="global_average")(x)
        x = layers.Dense(
            self.dense_units,
            activation="relu",
            kernel_initializer=glorot(seed=next(seeds)),
            name="dense",
        )(x)
        x = layers.Dropout(self.dropout, seed=next(seeds), name="dropout_dense")(x)
        outputs = layers.Dense(
            n_classes,
            activation="softmax",
            kernel_initializer=glorot(seed=next(seeds)),
            name="proba",
        )(x)
        return keras.Model(inputs, outputs, name="ser_cnn")


_FAMILIES: dict[str, type[KerasTrainerBase]] = {
    trainer.family: trainer for trainer in (KerasANNTrainer, KerasCNNTrainer)
}
