"""``ser app``: a local page to record or upload speech and see what the model hears.

Built with Gradio, a library made for exactly this: an audio input that takes a file or the
microphone, Python callbacks, and a server on the FastAPI/uvicorn stack the project already
runs. The page scores through the registered pyfunc (in-process) or a running
``mlflow models serve`` (``--model-url``), and can put a second registered version beside
the first on the same audio.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ser_app.scoring import (
    EndpointScorer,
    RegistryScorer,
    ScoringError,
    choice_uri,
    model_choices,
    model_details,
)
from ser_app.timeline_plot import plot_timeline, speech_time_shares
from ser_features.audio import LoadOptions, load_audio
from ser_features.errors import AudioError
from ser_features.feature_sets import get_feature_spec
from ser_features.quality import in_words

NO_COMPARISON = "(none)"
SYNTHETIC_WARNING = (
    "⚠️ **This model was trained on the synthetic demo corpus.** Its answers on real speech "
    "say nothing; train it on real recordings first (docs/getting-started.md)."
)


def score_recording(
    scorer: EndpointScorer | RegistryScorer,
    audio: bytes,
    *,
    title: str,
    load: LoadOptions | None = None,
    labels: list[str] | None = None,
) -> tuple[str, Any, dict[str, float]]:
    """Summary markdown, timeline figure and probabilities of one scorer's answer, with what
    the recording let the model hear (speech, noise, band, clipping) and any warning.

    Segment times are seconds into the recording as sent, so the waveform is drawn untrimmed,
    at the rate of ``load`` (the model's own loading options). ``labels``, when given, are the
    only ones the answer is chosen among.
    """
    answer = scorer.score(audio, labels)
    try:
        clip = load_audio(audio, options=(load or LoadOptions()).untouched)
        samples, rate = clip.samples, clip.sample_rate
    except AudioError:  # the model read it; draw the timeline without a waveform
        rate = 16000
        samples = np.zeros(int(rate * max((s["end"] for s in answer["segments"]), default=1.0)))
    figure = plot_timeline(samples, rate, answer, title=title)
    lines = [_verdict(title, answer)]
    shares = speech_time_shares(answer)
    if shares:
        lines.append(
            "Share of speech time: "
            + ", ".join(f"{emotion} {share:.0%}" for emotion, share in shares.items())
        )
    if labels:
        lines.append(f"Answered among {', '.join(labels)} only.")
    if answer.get("quality"):
        heard, *warnings = in_words(answer["quality"])
        lines += [heard, *(f"⚠️ {warning}" for warning in warnings)]
    summary = "\n\n".join(lines)
    return summary, figure, answer["probabilities"]


def _verdict(title: str, answer: dict[str, Any]) -> str:
    """The answer's heading: its emotion and confidence, or that none was judged."""
    if answer["emotion"] is None:
        return f"### {title}: **no emotion judged**"
    return f"### {title}: **{answer['emotion']}** ({answer['confidence']:.0%})"


def build_page(model_name: str, *, model_url: str | None = None):
    """The Gradio page for ``model_name``'s ``@champion`` (served at ``model_url`` if given)."""
    import gradio as gr

    def header(choice: str) -> str:
        try:
            details = model_details(model_name, choice)
        except Exception as exc:  # a missing model is a message, not a traceback
            return f"No model to score with: {exc}. Run `ser demo` or `ser promote` first."
        where = f"served at {model_url}" if model_url else "loaded in-process"
        lines = [f"Scoring with {details.describe()}, {where}."]
        if details.synthetic:
            lines.append(SYNTHETIC_WARNING)
        return "\n\n".join(lines)

    def scorer_for(choice: str) -> EndpointScorer | RegistryScorer:
        if model_url and choice == "@champion":
            return EndpointScorer(model_url)
        return RegistryScorer(choice_uri(model_name, choice))

    def score_with(
        choice: str, audio: bytes, labels: list[str] | None
    ) -> tuple[str, Any, dict[str, float]]:
        try:
            load = get_feature_spec(model_details(model_name, choice).feature_set).load
        except Exception:  # an unknown feature set or registry hiccup: draw it untrimmed
            load = None
        return score_recording(scorer_for(choice), audio, title=choice, load=load, labels=labels)

    def score(path: str | None, comparison: str, labels: list[str] | None = None):
        empty = ("", None, None, "", None, None)
        if not path:
            return ("Upload a file or record from the microphone first.", *empty)
        if labels is not None and len(labels) == 1:
            return ("Tick at least two labels to choose among, or none for every label.", *empty)
        audio = Path(path).read_bytes()
        try:
            main = score_with("@champion", audio, labels or None)
        except ScoringError as exc:
            return (f"**Could not score this audio:** {exc}", *empty)
        other: tuple[str, Any, Any] = ("", None, None)
        if comparison and comparison != NO_COMPARISON:
            try:
                other = score_with(comparison, audio, labels or None)
            except ScoringError as exc:
                other = (f"**{comparison} could not score this audio:** {exc}", None, None)
        return ("", *main, *other)

    try:
        choices = [c for c in model_choices(model_name) if c != "@champion"]
        known_labels = list(model_details(model_name, "@champion").labels)
    except Exception:
        choices, known_labels = [], []
    with gr.Blocks(title="Speech emotion", analytics_enabled=False) as page:
        gr.Markdown("# What does the model hear?")
        gr.Markdown(header("@champion"), elem_id="model-header")
        with gr.Row():
            recording = gr.Audio(
                sources=["upload", "microphone"], type="filepath", label="Recording"
            )
            with gr.Column():
                comparison = gr.Radio(
                    [NO_COMPARISON, *choices],
                    value=NO_COMPARISON,
                    label="Compare with another registered version",
                    elem_id="compare",
                )
                labels = gr.CheckboxGroup(
                    known_labels,
                    label="Answer only among these labels (none ticked: every label)",
                    info="For recordings that cannot carry some emotions, e.g. the four "
                    "every corpus shares: angry, happy, neutral, sad.",
                    elem_id="labels",
                )
                button = gr.Button("Score", variant="primary", elem_id="score")
        status = gr.Markdown(elem_id="status")
        with gr.Row():
            with gr.Column():
                summary = gr.Markdown(elem_id="summary")
                timeline = gr.Plot(label="Emotion over time", elem_id="timeline")
                probabilities = gr.Label(label="Probabilities", elem_id="probabilities")
            with gr.Column():
                other_summary = gr.Markdown(elem_id="other-summary")
                other_timeline = gr.Plot(label="Emotion over time", elem_id="other-timeline")
                other_probabilities = gr.Label(label="Probabilities", elem_id="other-probabilities")
        button.click(
            score,
            [recording, comparison, labels],
            [
                status,
                summary,
                timeline,
                probabilities,
                other_summary,
                other_timeline,
                other_probabilities,
            ],
        )
    return page


def launch(model_name: str, *, port: int, model_url: str | None = None) -> None:
    """Serve the page on 127.0.0.1:``port`` until interrupted."""
    build_page(model_name, model_url=model_url).launch(
        server_name="127.0.0.1", server_port=port, share=False, show_error=False, quiet=True
    )
