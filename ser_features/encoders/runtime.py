"""A pretrained speech encoder loaded for description: clips in, pooled layer embeddings out.

Supported architectures (``model_type`` in ``config.json``): WavLM, HuBERT, wav2vec 2.0,
data2vec-audio and the Whisper encoder. What a clip becomes: the hidden states of the chosen
layers (averaged frame by frame), then pooled over the clip's frames: the mean, and with
``mean_std`` the standard deviation too. Layer ``n`` is the output of the n-th transformer
layer (0 is the input to the first), as ``transformers`` numbers ``hidden_states``; the layers
above the highest one chosen are never run. Long clips are cut into chunks of ``chunk_s``
seconds (each encoded apart), whose frames are pooled together.

Batches: a clip's numbers must not depend on which clips share its batch, and padding
changes them (group-normalised feature encoders normalise over the padding; data2vec's
convolutional positions reach into it: up to 0.6 in pooled values of the tiny test encoders).
So chunks are encoded together only when they have the same length (the chunks of a long
recording, copies of one clip); Whisper pads every chunk to its 30 s window anyway, so its
chunks are always batched, and only the frames of the audio are kept.

``runtime="int8"``: the feed-forward ``Linear`` layers are quantised dynamically to int8
(``torch.ao.quantization.quantize_dynamic``; attention projections stay float32, since
WavLM reads their biases directly). It changes the embeddings slightly: the benchmark
``benchmarks/encoder_cost.py`` reports how much, beside the speed-up.
"""

from __future__ import annotations

import functools
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ser_features.encoders.location import EncoderNotFound

SAMPLE_RATE = 16000
#: ``model_type`` values the encoder runs, with their names for people.
ARCHITECTURES = {
    "wavlm": "WavLM",
    "hubert": "HuBERT",
    "wav2vec2": "wav2vec 2.0",
    "data2vec-audio": "data2vec-audio",
    "whisper": "Whisper (encoder)",
}
POOLINGS = ("mean_std", "mean")
RUNTIMES = ("float32", "int8")
WHISPER_WINDOW_S = 30.0
#: A last chunk shorter than this joins the one before it.
MIN_CHUNK_S = 1.0


@dataclass(frozen=True)
class EncoderOptions:
    """How an encoder describes a clip.

    Parameters
    ----------
    layers : hidden-state indices averaged frame by frame; ``None`` takes the middle half
        of the transformer (layers 3-9 of 12, 6-18 of 24), where emotion is best carried.
    pooling : ``mean_std`` (mean and standard deviation over frames) or ``mean``.
    chunk_s : longest piece encoded at once, seconds (Whisper: at most 30).
    batch_size : chunks of the same length encoded together.
    runtime : ``float32``, or ``int8`` (feed-forward layers quantised dynamically).
    """

    layers: tuple[int, ...] | None = None
    pooling: str = "mean_std"
    chunk_s: float = 20.0
    batch_size: int = 8
    runtime: str = "float32"

    def __post_init__(self) -> None:
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling {self.pooling!r}: choose one of {list(POOLINGS)}")
        if self.runtime not in RUNTIMES:
            raise ValueError(f"runtime {self.runtime!r}: choose one of {list(RUNTIMES)}")
        if not self.chunk_s >= 2 * MIN_CHUNK_S:
            raise ValueError(f"chunk_s must be at least {2 * MIN_CHUNK_S:g} s")
        if self.batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if self.layers is not None and (not self.layers or min(self.layers) < 0):
            raise ValueError("layers must be hidden-state indices, 0 or more")


def middle_layers(n_layers: int) -> tuple[int, ...]:
    """The middle half of ``n_layers`` transformer layers (3-9 of 12)."""
    return tuple(range(round(n_layers / 4), round(3 * n_layers / 4) + 1))


class LoadedEncoder:
    """An encoder in memory, truncated above its highest chosen layer, ready to embed clips.

    Thread-safe: one clip batch is encoded at a time.
    """

    def __init__(self, folder: Path, options: EncoderOptions) -> None:
        import torch
        from transformers import AutoConfig, AutoFeatureExtractor, AutoModel
        from transformers.utils import logging as hf_logging

        self.options = options
        config = AutoConfig.from_pretrained(folder)
        self.model_type = config.model_type
        if self.model_type not in ARCHITECTURES:
            raise EncoderNotFound(
                f"{folder}: model type {self.model_type!r} is not a supported speech encoder; "
                f"supported: {', '.join(ARCHITECTURES.values())}"
            )
        if not (folder / "preprocessor_config.json").is_file():
            raise EncoderNotFound(f"{folder} has no preprocessor_config.json")
        self.processor = AutoFeatureExtractor.from_pretrained(folder)
        hf_logging.disable_progress_bar()  # progress of weights loading is library chatter
        with warnings.catch_warnings():  # Whisper's decoder weights are dropped on purpose
            warnings.simplefilter("ignore")
            model = AutoModel.from_pretrained(folder)
        self.whisper = self.model_type == "whisper"
        if self.whisper:
            model = model.get_encoder()
        model.eval()
        n_layers = len(_blocks(model, self.whisper))
        self.layers = options.layers or middle_layers(n_layers)
        if max(self.layers) > n_layers:
            raise ValueError(
                f"{folder}: layer {max(self.layers)} asked for; the encoder has {n_layers}"
            )
        del _blocks(model, self.whisper)[max(max(self.layers), 1) :]  # never run the rest
        self.dim = int(getattr(config, "d_model", None) or config.hidden_size)
        if options.runtime == "int8":
            model = quantise_feed_forward(model)
        self.model = model
        self._captured: dict[int, Any] = {}
        self._hooks(_blocks(model, self.whisper))
        self._torch = torch
        self._lock = threading.Lock()

    def _hooks(self, blocks: Any) -> None:
        """Keep the hidden states of the chosen layers as the encoder runs."""
        wanted = set(self.layers)

        def keep_input(_module: Any, args: tuple, kwargs: dict) -> None:
            self._captured[0] = args[0] if args else kwargs["hidden_states"]

        if 0 in wanted:
            blocks[0].register_forward_pre_hook(keep_input, with_kwargs=True)
        for index in wanted - {0}:

            def keep_output(_module: Any, _args: Any, output: Any, index: int = index) -> None:
                self._captured[index] = output[0] if isinstance(output, tuple) else output

            blocks[index - 1].register_forward_hook(keep_output)

    @property
    def columns(self) -> tuple[str, ...]:
        """``ssl_mean_0000``..., then ``ssl_std_0000``... with ``mean_std`` pooling."""
        stats = ("mean", "std") if self.options.pooling == "mean_std" else ("mean",)
        return tuple(f"ssl_{stat}_{i:04d}" for stat in stats for i in range(self.dim))

    def embed(self, waveforms: list[np.ndarray]) -> np.ndarray:
        """One pooled row per 16 kHz mono waveform, shape ``(len(waveforms), n_columns)``."""
        chunks, owners = [], []
        for owner, samples in enumerate(waveforms):
            for chunk in self._chunks(np.asarray(samples, dtype=np.float32)):
                chunks.append(chunk)
                owners.append(owner)
        frames: list[list[np.ndarray]] = [[] for _ in waveforms]
        with self._lock:
            for batch in self._batches([len(chunk) for chunk in chunks]):
                for i, kept in zip(batch, self._encode([chunks[i] for i in batch]), strict=True):
                    frames[owners[i]].append(kept)
        return np.stack([self._pool(np.concatenate(parts)) for parts in frames])

    def _batches(self, lengths: list[int]) -> list[list[int]]:
        """Chunk indices encoded together: same length (any length for Whisper), at most
        ``batch_size`` at a time, in the order given."""
        groups: dict[int, list[int]] = {}
        for i, length in enumerate(lengths):
            groups.setdefault(0 if self.whisper else length, []).append(i)
        size = self.options.batch_size
        return [g[s : s + size] for g in groups.values() for s in range(0, len(g), size)]

    def _chunks(self, samples: np.ndarray) -> list[np.ndarray]:
        limit = (
            min(self.options.chunk_s, WHISPER_WINDOW_S) if self.whisper else self.options.chunk_s
        )
        size = int(limit * SAMPLE_RATE)
        bounds = list(range(0, len(samples), size))
        short_tail = len(samples) - bounds[-1] < MIN_CHUNK_S * SAMPLE_RATE
        if len(bounds) > 1 and short_tail and not self.whisper:
            bounds.pop()  # a short tail joins the chunk before it (Whisper's window cannot)
        ends = [*bounds[1:], len(samples)]
        return [samples[start:end] for start, end in zip(bounds, ends, strict=True)]

    def _encode(self, chunks: list[np.ndarray]) -> list[np.ndarray]:
        """The averaged chosen layers of each chunk, its own frames only: ``(frames, dim)``."""
        torch = self._torch
        lengths = [len(chunk) for chunk in chunks]
        self._captured.clear()
        with torch.inference_mode():
            inputs = self.processor(chunks, sampling_rate=SAMPLE_RATE, return_tensors="pt")
            if self.whisper:
                self.model(inputs["input_features"])
                kept = [max(1, -(-n // 320)) for n in lengths]  # 50 frames a second
            else:
                self.model(inputs["input_values"])
                kept = self.model._get_feat_extract_output_lengths(torch.tensor(lengths)).tolist()
            stacked = torch.stack([self._captured[layer] for layer in self.layers]).mean(0)
        values = stacked.float().numpy()
        return [values[i, : int(n)] for i, n in enumerate(kept)]

    def _pool(self, frames: np.ndarray) -> np.ndarray:
        mean = frames.mean(axis=0)
        if self.options.pooling == "mean":
            return mean
        return np.concatenate([mean, frames.std(axis=0)])


def _blocks(model: Any, whisper: bool) -> Any:
    """The transformer layers of an encoder (a ``ModuleList``)."""
    return model.layers if whisper else model.encoder.layers


def quantise_feed_forward(model: Any) -> Any:
    """``model`` with its feed-forward ``Linear`` layers quantised dynamically to int8."""
    import torch
    from torch.ao.quantization import default_dynamic_qconfig, quantize_dynamic

    chosen = {
        name: default_dynamic_qconfig
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) and _feed_forward(name)
    }
    with warnings.catch_warnings():  # torch asks eager-mode users to move to torchao
        warnings.simplefilter("ignore")
        return quantize_dynamic(model, chosen, dtype=torch.qint8, inplace=True)


def _feed_forward(name: str) -> bool:
    return any(part in name for part in ("feed_forward.", ".fc1", ".fc2"))


@functools.lru_cache(maxsize=4)
def loaded_encoder(folder: Path, options: EncoderOptions, checksum: str = "") -> LoadedEncoder:
    """The encoder in ``folder`` loaded once per process for ``options`` and the weights
    whose SHA-256 is ``checksum`` (new weights, new load)."""
    return LoadedEncoder(folder, options)
