"""Pretrained speech encoders (Hugging Face ``transformers``) as feature extractors.

:mod:`~ser_features.encoders.location` finds an encoder's folder (a local folder, the hub
cache, or a copy carried by a served model) and names it exactly (id, revision, checksum of
its weights); :mod:`~ser_features.encoders.runtime` loads it and turns clips into pooled
layer embeddings. The feature set that uses them is ``ssl:<id or folder>``
(:mod:`ser_features.feature_sets.ssl`). ``torch`` and ``transformers`` are imported only
when an encoder is loaded.
"""

from ser_features.encoders.location import (
    EncoderIdentity,
    EncoderNotFound,
    carried_encoders,
    carry_encoder,
    locate_encoder,
    use_carried_encoders,
)

__all__ = [
    "EncoderIdentity",
    "EncoderNotFound",
    "carried_encoders",
    "carry_encoder",
    "locate_encoder",
    "use_carried_encoders",
]
