"""``ssl:<hub id or folder>``: a pretrained speech encoder's pooled layer embeddings.

The name says everything that changes the numbers, so it is the whole recipe::

    ssl:microsoft/wavlm-base-plus
    ssl:/models/hubert-base?layers=6-9&runtime=int8
    ssl:microsoft/wavlm-base-plus?layers=4,6,8&pooling=mean&chunk_s=10&batch_size=4

Options after ``?`` (joined by ``&``): ``layers`` (one index, a range ``a-b`` or a list
``a,b,c``; default the middle half), ``pooling`` (``mean_std`` or ``mean``), ``chunk_s``,
``batch_size`` and ``runtime`` (``float32`` or ``int8``); see
:class:`~ser_features.encoders.runtime.EncoderOptions`. Clips are cut to their speech and
brought to -23 dBFS at 16 kHz first, as the functionals' clips are, so the set combines with
them: ``ssl:...+spectral_prosodic_speech``.

The spec's ``fingerprint`` holds the encoder's identity (revision and weights checksum,
:class:`~ser_features.encoders.location.EncoderIdentity`): tables made with another encoder
under the same name are never reused.
"""

from __future__ import annotations

import functools

from ser_features.audio import Clip, LoadOptions
from ser_features.encoders.location import EncoderIdentity, locate_encoder
from ser_features.encoders.runtime import ARCHITECTURES, EncoderOptions, loaded_encoder
from ser_features.feature_sets.spec import FeatureSpec

PREFIX = "ssl:"
#: Clips as the encoder hears them: cut to the speech a voice activity detector finds,
#: at -23 dBFS, no synthetic noise floor.
SSL_LOAD = LoadOptions(sample_rate=16000, normalize_dbfs=-23.0, trim_to_speech=True)
_INTEGER_OPTIONS = ("batch_size",)
_FLOAT_OPTIONS = ("chunk_s",)
_TEXT_OPTIONS = ("pooling", "runtime")


def is_ssl_name(name: str) -> bool:
    """Whether ``name`` names an encoder feature set (``ssl:...``)."""
    return name.startswith(PREFIX)


def parse_ssl_name(name: str) -> tuple[str, EncoderOptions]:
    """The encoder source and options of ``ssl:<source>[?key=value&...]``; a
    ``ValueError`` says what is wrong."""
    if not is_ssl_name(name):
        raise ValueError(f"{name!r} is not an encoder feature set (ssl:<hub id or folder>)")
    source, _, query = name[len(PREFIX) :].partition("?")
    if not source:
        raise ValueError(f"{name!r}: name an encoder after ssl: (a hub id or a folder)")
    options: dict[str, object] = {}
    for item in filter(None, query.split("&")):
        key, sep, value = item.partition("=")
        try:
            if not sep:
                raise ValueError("expected key=value")
            if key == "layers":
                options[key] = _layers(value)
            elif key in _INTEGER_OPTIONS:
                options[key] = int(value)
            elif key in _FLOAT_OPTIONS:
                options[key] = float(value)
            elif key in _TEXT_OPTIONS:
                options[key] = value
            else:
                known = ["layers", *_INTEGER_OPTIONS, *_FLOAT_OPTIONS, *_TEXT_OPTIONS]
                raise ValueError(f"unknown option; choose from {known}")
        except ValueError as exc:
            raise ValueError(f"{name!r}: option {item!r}: {exc}") from None
    try:
        return source, EncoderOptions(**options)  # type: ignore[arg-type]
    except ValueError as exc:
        raise ValueError(f"{name!r}: {exc}") from None


def _layers(text: str) -> tuple[int, ...]:
    if "-" in text:
        first, last = (int(part) for part in text.split("-", 1))
        return tuple(range(first, last + 1))
    return tuple(int(part) for part in text.split(","))


def ssl_spec(name: str) -> FeatureSpec:
    """The feature set ``name`` (``ssl:...``) with the encoder as it is now (weights changed
    in place give a new fingerprint); the encoder is loaded when a clip is described."""
    source, options = parse_ssl_name(name)
    return _spec(name, source, options, locate_encoder(source))


@functools.lru_cache(maxsize=16)
def _spec(
    name: str, source: str, options: EncoderOptions, identity: EncoderIdentity
) -> FeatureSpec:
    def describe_many(clips: list[Clip]) -> list[dict[str, float]]:
        encoder = loaded_encoder(identity.folder, options, identity.checksum)
        rows = encoder.embed([clip.samples for clip in clips])
        return [dict(zip(encoder.columns, row.tolist(), strict=True)) for row in rows]

    def describe(clip: Clip) -> dict[str, float]:
        return describe_many([clip])[0]

    return FeatureSpec(
        name=name,
        version=1,
        description=f"pooled hidden states of the pretrained encoder {source} "
        f"({', '.join(ARCHITECTURES.values())} supported)",
        load=SSL_LOAD,
        describer=describe,
        batch_describer=describe_many,
        fingerprint=identity.fingerprint,
    )


def encoders_of(feature_set: str) -> list[EncoderIdentity]:
    """The pretrained encoders the feature set ``feature_set`` (or a part of it) uses."""
    from ser_features.feature_sets.combined import SEPARATOR

    parts = [part.strip() for part in feature_set.split(SEPARATOR)]
    return [locate_encoder(parse_ssl_name(part)[0]) for part in parts if is_ssl_name(part)]


def encoder_params(feature_set: str) -> dict[str, str]:
    """The identity of every encoder ``feature_set`` uses, as run parameters."""
    params: dict[str, str] = {}
    for i, identity in enumerate(encoders_of(feature_set)):
        params.update(identity.as_params(prefix="encoder" if i == 0 else f"encoder{i}"))
    return params
