"""Encoders with random weights, written in the hub's folder layout.

They let the whole ``ssl:`` path (loading, describing, caching, training, serving) run where
no pretrained weights can be downloaded: tests use ``tiny`` ones of every supported
architecture; ``benchmarks/encoder_cost.py`` times the ``base`` architecture (speed does not
depend on the weights). Their embeddings carry no emotion: never report accuracy from them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: Sizes: ``tiny`` (a few thousand parameters) and ``base`` (the published base models').
SIZES = ("tiny", "base")


def write_random_encoder(
    folder: str | Path, architecture: str = "wavlm", *, size: str = "tiny", seed: int = 0
) -> Path:
    """Write a random-weight ``architecture`` encoder (a ``model_type`` of
    :data:`~ser_features.encoders.runtime.ARCHITECTURES`) with its preprocessor config to
    ``folder``; returns the folder."""
    import torch
    import transformers as tf

    if size not in SIZES:
        raise ValueError(f"size {size!r}: choose one of {list(SIZES)}")
    folder = Path(folder)
    torch.manual_seed(seed)
    config, model_class, extractor = _parts(tf, architecture, tiny=size == "tiny")
    tf.utils.logging.disable_progress_bar()
    model = model_class(config).eval()
    model.save_pretrained(folder)
    extractor.save_pretrained(folder)
    return folder


def _parts(tf: Any, architecture: str, *, tiny: bool) -> tuple[Any, Any, Any]:
    if architecture == "whisper":
        sizes = dict(
            d_model=32,
            encoder_layers=3,
            decoder_layers=1,
            encoder_attention_heads=2,
            decoder_attention_heads=2,
            encoder_ffn_dim=64,
            decoder_ffn_dim=64,
            vocab_size=64,
            max_target_positions=16,
            pad_token_id=0,
            bos_token_id=1,
            eos_token_id=2,
            decoder_start_token_id=3,
        )
        config = tf.WhisperConfig(**sizes) if tiny else tf.WhisperConfig()  # whisper-tiny/base
        return config, tf.WhisperModel, tf.WhisperFeatureExtractor(feature_size=80)
    classes = {
        "wavlm": (tf.WavLMConfig, tf.WavLMModel),
        "hubert": (tf.HubertConfig, tf.HubertModel),
        "wav2vec2": (tf.Wav2Vec2Config, tf.Wav2Vec2Model),
        "data2vec-audio": (tf.Data2VecAudioConfig, tf.Data2VecAudioModel),
    }
    if architecture not in classes:
        raise ValueError(f"architecture {architecture!r}: choose whisper or one of {list(classes)}")
    config_class, model_class = classes[architecture]
    sizes = {}
    if tiny:
        sizes = dict(
            hidden_size=32,
            num_hidden_layers=4,
            num_attention_heads=2,
            intermediate_size=64,
            conv_dim=(32,) * 7,
            num_conv_pos_embeddings=16,
            num_conv_pos_embedding_groups=2,
        )
    extractor = tf.Wav2Vec2FeatureExtractor(
        feature_size=1,
        sampling_rate=16000,
        padding_value=0.0,
        do_normalize=True,
        return_attention_mask=False,
    )
    return config_class(**sizes), model_class, extractor
