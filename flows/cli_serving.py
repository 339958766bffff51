"""The ``ser`` commands that use the served model: ``predict``, ``serve`` and ``app``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from flows.user_console import console, fail


def predict(
    files: list[Path] = typer.Argument(..., help="Audio files (WAV, FLAC, OGG, AIFF...)."),
    model_name: str = typer.Option("ser-emotion", "--model", help="Registered model name."),
    session: str | None = typer.Option(
        None,
        "--session",
        help="The files are clips of one speaker: score them together, speaker-normalised "
        "when the champion has a session model and there are at least 4 files.",
    ),
    labels: str | None = typer.Option(
        None,
        "--labels",
        help="Answer among these labels only, comma-separated (e.g. angry,happy,neutral,sad): "
        "for recordings that cannot carry the others.",
    ),
    plot: Path | None = typer.Option(
        None,
        "--plot",
        help="Write the timeline picture (PNG) here; with several files, one per file "
        "named PLOT-STEM-<file name>.png.",
    ),
) -> None:
    """Emotion of each file according to @champion, with its segment timeline."""
    import base64

    import mlflow
    import pandas as pd

    from experiments.serving.command import model_uri
    from experiments.serving.emotion_model import (
        AUDIO_COLUMN,
        LABELS_COLUMN,
        SESSION_COLUMN,
        takes_labels,
    )
    from experiments.tracking.runs import configure_tracking

    configure_tracking()
    try:
        model = mlflow.pyfunc.load_model(model_uri(model_name))
    except mlflow.exceptions.MlflowException as exc:
        fail(f"cannot load {model_uri(model_name)}: {exc}; run `ser promote` first")
    readable: list[tuple[Path, str]] = []
    for path in files:
        try:
            readable.append((path, base64.b64encode(path.read_bytes()).decode()))
        except OSError as exc:
            console.print(f"[red]{path}:[/] cannot read the file ({exc.strerror or exc})")
    if not readable:
        raise typer.Exit(code=2)
    # One request for every file: scored together, a bad file gets its own error.
    frame = pd.DataFrame({AUDIO_COLUMN: [audio for _, audio in readable]})
    if session is not None:
        frame[SESSION_COLUMN] = session
    if labels is not None:
        if not takes_labels(model.metadata.get_input_schema()):
            fail(
                f"{model_uri(model_name)} was registered before models took a `labels` column "
                "(it would ignore --labels); train and promote a new version first"
            )
        frame[LABELS_COLUMN] = labels
    try:
        rows = model.predict(frame).to_dict(orient="records")
    except mlflow.exceptions.MlflowException as exc:
        fail(getattr(exc, "reason", exc.message))
    for (path, _), row in zip(readable, rows, strict=True):
        if row.get("error"):
            console.print(f"[red]{path}:[/] {row['error']}")
            continue
        _print_prediction(path, row)
        _write_plot(model, path, row, plot, several=len(files) > 1)


def _write_plot(model: Any, path: Path, row: Any, plot: Path | None, *, several: bool) -> None:
    """Draw ``row`` over the recording as sent (segment times are seconds into it, at the
    model's rate) to ``plot``."""
    if plot is None:
        return
    from ser_app.timeline_plot import plot_timeline
    from ser_features.audio import load_audio

    target = plot.with_name(f"{plot.stem}-{path.stem}.png") if several else plot
    clip = load_audio(path, options=model.unwrap_python_model().spec.load.untouched)
    answer = dict(row)
    plot_timeline(
        clip.samples, clip.sample_rate, answer, title=f"{path.name}: {_verdict(row)}", path=target
    )
    console.print(f"  timeline picture: {target}")


def _print_prediction(path: Path, row: Any) -> None:
    """One file's emotion, confidence, segment timeline and any warning about what it holds."""
    from ser_features.quality import in_words

    note = " [dim](speaker-normalised in its session)[/]" if row["speaker_normalised"] else ""
    console.print(f"[bold]{path}[/]: {_verdict(row)}{note}")
    for segment in row["segments"]:
        console.print(
            f"  {segment['start']:7.2f}-{segment['end']:7.2f} s  "
            f"{segment['emotion']:<10} {segment['confidence']:.0%}"
        )
    for warning in in_words(row["quality"])[1:] if row.get("quality") else []:
        console.print(f"  [yellow]{warning}[/]", highlight=False)


def _verdict(row: Any) -> str:
    """``emotion (confidence)``, or that no emotion was judged."""
    if row["emotion"] is None:
        return "no emotion judged"
    return f"{row['emotion']} ({row['confidence']:.0%})"


def serve(
    model_name: str = typer.Option("ser-emotion", "--model", help="Registered model name."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(5000, help="Port to listen on."),
    workers: int = typer.Option(
        None, "--workers", min=1, help="Scoring processes (default: one per core, memory allowing)."
    ),
    max_request_mb: float = typer.Option(
        None, "--max-request-mb", min=0.001, help="Body limit, MiB (else $SER_MAX_REQUEST_MB or 8)."
    ),
    timeout: int = typer.Option(
        None, "--timeout", min=1, help="Seconds per request (else MLflow's default, 60)."
    ),
    follow: bool = typer.Option(
        True, "--follow/--no-follow", help="Serve whichever version @champion names, live."
    ),
    follow_interval: float = typer.Option(
        10.0, "--follow-interval", min=0.5, help="Seconds between looks at @champion."
    ),
    prediction_log: str = typer.Option(
        "mlruns/predictions",
        "--prediction-log",
        help="Folder every answer is logged to (parquet, rotated); 'off' logs nothing.",
    ),
) -> None:
    """Serve @champion with `mlflow models serve` (raw audio in, emotion out).

    Bodies over the limit get HTTP 413; requests over the timeout get HTTP 504. With
    --follow (the default) every worker looks at @champion every --follow-interval seconds
    and swaps in a newly promoted or rolled-back version once it is loaded, without a
    restart or a failed request; every answer names its `model_version`. Every answer is
    also logged to --prediction-log (read by `ser monitor`).
    """
    import os

    from experiments.serving.command import default_workers, serve_command, serving_environment
    from experiments.tracking.registry import CHAMPION
    from experiments.tracking.runs import configure_tracking

    workers = workers or default_workers()
    command = serve_command(model_name, host=host, port=port, workers=workers, timeout_s=timeout)
    console.print(" ".join(command))
    env = serving_environment(
        configure_tracking(),
        max_request_mb=max_request_mb,
        follow=f"{model_name}@{CHAMPION}" if follow else None,
        follow_interval_s=follow_interval,
        prediction_log=None if prediction_log == "off" else prediction_log,
    )
    os.execve(command[0], command, env)


def web_app(
    port: int = typer.Option(7860, help="Port on 127.0.0.1."),
    model_name: str = typer.Option("ser-emotion", "--model", help="Registered model name."),
    model_url: str = typer.Option(
        None, "--model-url", help="A running `mlflow models serve` (default: in-process)."
    ),
) -> None:
    """A local web page: upload or record speech, see its emotion over time."""
    from experiments.tracking.runs import configure_tracking
    from ser_app.page import launch

    configure_tracking()
    console.print(f"emotion app on http://127.0.0.1:{port} (Ctrl+C stops it)")
    launch(model_name, port=port, model_url=model_url)
