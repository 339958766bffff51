"""The ``ser`` command line: every step of the pipeline, one sub-command each."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path

import typer

from flows import cli_serving, prefect_server_environment
from flows.user_console import (
    console,
    fail,
    output_mode,
    quiet_libraries,
    quiet_library_environment,
)
from ser_features.feature_sets import DEFAULT_FEATURE_SET, FEATURE_SETS, get_feature_spec

app = typer.Typer(
    help="Speech emotion recognition: extract features, train with AutoML, track in MLflow.",
    no_args_is_help=True,
    add_completion=False,
)
data_app = typer.Typer(
    help="Get audio (the synthetic demo corpus, public corpora) and check your own."
)
app.add_typer(data_app, name="data")


@app.callback()
def options(
    verbose: bool = typer.Option(
        False,
        "--verbose",
        "-v",
        help="Show what MLflow, Prefect, H2O and Keras print, instead of a log file.",
    ),
) -> None:
    """Speech emotion recognition: extract features, train with AutoML, track in MLflow."""
    output_mode.verbose = verbose
    prefect_server_environment()  # before any command imports Prefect or runs a flow
    if not verbose:  # before any command imports the libraries that read these
        quiet_library_environment()


DEMO_DIR = Path("data/demo")
DEMO_CONFIG = Path(__file__).resolve().parents[1] / "experiments" / "demo.yaml"


@app.command()
def extract(
    data_dirs: list[Path] = typer.Argument(
        ..., help="Folders of labelled audio or manifests (.csv, .tsv, .jsonl, .parquet)."
    ),
    out: Path = typer.Option(..., "--out", help="Folder for the parquet tables."),
    features: str = typer.Option(
        DEFAULT_FEATURE_SET,
        "--features",
        help=f"Feature set: {', '.join(FEATURE_SETS)}, a pretrained encoder "
        "ssl:<hub id or folder>, or several joined by +.",
    ),
    workers: int = typer.Option(2, "--workers", min=1, help="Parallel processes."),
    dask_address: str | None = typer.Option(
        None, "--dask-address", help="Run on an existing Dask cluster (tcp://host:8786)."
    ),
) -> None:
    """Describe every labelled clip of DATA_DIRS into OUT/features.parquet (cached).

    DATA_DIRS are manifests, AudioFolder folders (metadata.csv), folders of a built-in
    corpus, or folders with one sub-folder per label (see `ser data check`).

    A killed run resumes from its checkpoint; a second run on the same OUT refuses while
    the first is writing; a full disk stops with the previous tables intact.
    """
    from rich.markup import escape

    from flows.extract import ExtractionBusyError, extract_features
    from ser_features.manifests import ManifestError
    from ser_features.parquet_io import TableWriteError

    try:
        get_feature_spec(features)  # a missing encoder is named here, before any work
    except ValueError as exc:
        fail(str(exc))
    missing = [str(d) for d in data_dirs if not d.exists()]
    if missing:
        fail(f"no such folder or manifest: {', '.join(missing)}")
    flow = extract_features
    if dask_address:
        from prefect_dask import DaskTaskRunner

        flow = extract_features.with_options(task_runner=DaskTaskRunner(address=dask_address))
    try:
        with quiet_libraries("extract"):
            summary = flow(
                data_dirs=[str(d) for d in data_dirs],
                out_dir=str(out),
                feature_set=features,
                workers=workers,
            )
    except (ExtractionBusyError, TableWriteError, ManifestError) as exc:
        # One line however long the paths are (no wrapping), and no traceback.
        console.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(code=2) from None
    console.print(f"[bold green]done:[/] {summary.describe()}")
    if summary.quarantined:
        console.print(f"see {out / 'quarantine.parquet'} for the reasons files were refused")


@data_app.command("demo")
def data_demo(
    out: Path = typer.Argument(DEMO_DIR, help="Folder for the synthetic corpus."),
    speakers: int = typer.Option(8, "--speakers", min=2, help="Number of synthetic speakers."),
) -> None:
    """Write the built-in SYNTHETIC demo corpus (RAVDESS file names, no download)."""
    from ser_features.demo_corpus import generate_demo_corpus

    with console.status("synthesising demo speech..."):
        files = generate_demo_corpus(out, n_speakers=speakers)
    console.print(f"wrote {len(files)} synthetic clips to {out} (labelled synthetic_demo)")


@data_app.command("check")
def data_check(
    sources: list[Path] = typer.Argument(
        None, help="Manifests or folders, as a run reads them (default: the --config's)."
    ),
    config: Path | None = typer.Option(
        None, "--config", help="Experiment YAML: its data.folders and data.labels, as a run."
    ),
    show: int = typer.Option(20, "--show", min=0, help="Problems and speakers listed at most."),
) -> None:
    """Print what a run would see in SOURCES (headers only, no decoding); exit 1 if it
    would stop. With --config the experiment's label mapping is applied first."""
    from flows.data_report import print_data_check
    from ser_features.data_check import check_sources

    relabel = None
    if config is not None:
        from experiments.config import ConfigError, load_config

        try:
            data = load_config(config).data
        except ConfigError as exc:
            fail(str(exc))
        sources = sources or [Path(folder) for folder in data.folders]
        relabel = data.labels.mapped
    if not sources:
        fail("name the manifests or folders to check, or an experiment file with --config")
    report = check_sources(sources, relabel=relabel)
    print_data_check(report, show=show)
    if report.stops_a_run:
        raise typer.Exit(code=1)


@data_app.command("download")
def data_download(
    corpus: str = typer.Argument(..., help="Corpus to fetch: ravdess."),
    out: Path = typer.Argument(..., help="Folder to unpack into."),
    url: str | None = typer.Option(None, help="Mirror URL of the archive."),
    md5: str | None = typer.Option(None, help="Expected MD5 of the archive at --url."),
) -> None:
    """Download a public corpus, verify its checksum and unpack it."""
    from rich.progress import DownloadColumn, Progress, TransferSpeedColumn

    from ser_features.download import (
        RAVDESS_SPEECH_MD5,
        RAVDESS_SPEECH_URL,
        DownloadError,
        download_ravdess,
    )

    if corpus.lower() != "ravdess":
        fail(f"cannot download {corpus!r}: only 'ravdess' is public without a licence form")
    with Progress(*Progress.get_default_columns(), DownloadColumn(), TransferSpeedColumn()) as bar:
        task = bar.add_task("RAVDESS speech", total=None)

        def progress(done: int, total: int | None) -> None:
            bar.update(task, completed=done, total=total)

        try:
            download_ravdess(
                out, url=url or RAVDESS_SPEECH_URL, md5=md5 or RAVDESS_SPEECH_MD5, progress=progress
            )
        except DownloadError as exc:
            fail(str(exc))
    console.print(
        f"RAVDESS unpacked into {out}; next: ser extract {out} --out data/features/ravdess"
    )


@app.command()
def train(
    config: Path = typer.Option(..., "--config", help="Experiment YAML (see experiments/)."),
    data: list[Path] = typer.Option(
        None, "--data", help="Audio folders or manifests (override the config)."
    ),
    family: list[str] = typer.Option(None, "--family", help="Only these model families."),
) -> None:
    """Extract features, train every configured model family, log all runs in MLflow."""
    from experiments.config import ConfigError, load_config

    try:
        checked = load_config(config)
    except ConfigError as exc:
        fail(str(exc))
    unknown = [f for f in family or [] if f not in checked.trainers]
    if unknown:
        fail(f"--family {unknown}: not among the config's trainers {list(checked.trainers)}")
    from flows.train import train_models

    with quiet_libraries("train"):
        report = train_models(
            config_path=str(config),
            data_folders=[str(d) for d in data] if data else None,
            families=list(family) if family else None,
        )
    _print_training(report)


def _print_training(report) -> None:
    from rich.table import Table

    from experiments.evaluation.report import results_table, shown_table

    shown = shown_table(results_table(report.families))
    table = Table(title=f"training run {report.parent_run_id} ({report.protocol})")
    for column in shown.columns:
        table.add_column(column)
    for row in shown.itertuples(index=False):
        table.add_row(*row)
    console.print(table)
    for family in report.families:
        if family.error:
            console.print(f"[red]{family.family} failed:[/] {family.error}")


@app.command()
def promote(
    config: Path = typer.Option(..., "--config", help="Experiment YAML used for training."),
    run_id: str | None = typer.Option(
        None, "--run-id", help="Parent training run (default: latest)."
    ),
) -> None:
    """Register the best model of a training run; move @champion only if it is better."""
    from experiments.tracking.registry import PromotionError
    from flows.promote import promote_model

    try:
        with quiet_libraries("promote"):
            decision = promote_model(config_path=str(config), parent_run_id=run_id)
    except PromotionError as exc:
        fail(f"{exc} (the champion is unchanged)")
    verdict = "[bold green]promoted to @champion[/]" if decision.promoted else "kept the champion"
    console.print(f"{decision.model_name} v{decision.version} ({decision.family}): {verdict}")
    console.print(decision.reason)


@app.command()
def rollback(
    model_name: str = typer.Option("ser-emotion", "--model", help="Registered model name."),
    to: str | None = typer.Option(
        None, "--to", help="Version to serve (default: the one @champion replaced)."
    ),
    reason: str = typer.Option("", "--reason", help="Why, recorded as a tag."),
) -> None:
    """Move @champion back to the previous champion (or --to VERSION); servers follow."""
    from experiments.tracking.registry import PromotionError
    from experiments.tracking.rollback import rollback as roll_back
    from experiments.tracking.runs import configure_tracking

    configure_tracking()
    try:
        done = roll_back(model_name, to=to, reason=reason)
    except PromotionError as exc:
        fail(str(exc))
    console.print(
        f"{done.model_name} @champion: v{done.from_version} -> v{done.to_version} "
        f"({done.at}; {done.reason}); running `ser serve` processes follow within their "
        "--follow-interval"
    )


@app.command()
def monitor(
    model_name: str = typer.Option("ser-emotion", "--model", help="Registered model name."),
    prediction_log: Path = typer.Option(
        Path("mlruns/predictions"), "--prediction-log", help="Folder `ser serve` logs to."
    ),
    since: datetime | None = typer.Option(None, "--since", help="Window start (ISO, UTC)."),
    until: datetime | None = typer.Option(None, "--until", help="Window end (ISO, UTC)."),
    json_path: Path | None = typer.Option(None, "--json", help="Write the JSON summary here."),
    html_path: Path | None = typer.Option(None, "--html", help="Write the HTML report here."),
    retrain_config: Path | None = typer.Option(
        None, "--retrain-config", help="Retrain with this experiment file when drift is found."
    ),
    share_limit: float | None = typer.Option(
        None,
        "--share-limit",
        min=0.0,
        max=1.0,
        help="The window drifts when at least this share of features does (default 0.2).",
    ),
    cron: str | None = typer.Option(
        None, "--cron", help='Run on this cron schedule (e.g. "0 * * * *"); blocks.'
    ),
) -> None:
    """Compare logged answers with @champion's training clips: drift, label shift, quality."""
    from experiments.tracking.registry import PromotionError
    from flows.monitor import monitor_flow

    parameters = {
        "model_name": model_name,
        "prediction_log": str(prediction_log.resolve()),
        "json_path": str(json_path) if json_path else None,
        "html_path": str(html_path) if html_path else None,
        "retrain_config": str(retrain_config.resolve()) if retrain_config else None,
    }
    if share_limit is not None:
        parameters["share_limit"] = share_limit
    if cron:
        from prefect.schedules import Cron

        console.print(f"serving deployment monitor/ser-monitor on cron {cron!r}")
        monitor_flow.serve(name="ser-monitor", schedule=Cron(cron), parameters=parameters)
        return
    try:
        with quiet_libraries("monitor"):
            result = monitor_flow(**parameters, since=since, until=until)
    except (PromotionError, ValueError) as exc:
        fail(str(exc))
    summary = result.report.summary()
    verdict = "[bold red]drift detected[/]" if summary["drift_detected"] else "no drift"
    console.print(
        f"{summary['n_predictions']} answers: {verdict} ({summary['drifted_feature_share']:.0%} "
        f"of features beyond every training speaker); label shift {summary['label_shift']:.3f}; "
        f"mean confidence {summary['mean_confidence']:.3f} "
        f"(test clips {summary['reference_mean_confidence']:.3f})"
    )
    if result.retrained:
        console.print(f"drift: retrained with {retrain_config}")


@app.command()
def retrain(
    config: Path = typer.Option(..., "--config", help="Experiment YAML."),
    data: list[Path] = typer.Option(
        None, "--data", help="Audio folders or manifests (override the config)."
    ),
) -> None:
    """Extract new audio, train, and promote if better: what the schedule runs."""
    from flows.retrain import RetrainBusyError, retrain_flow

    try:
        with quiet_libraries("retrain"):
            report = retrain_flow(
                config_path=str(config), data_folders=[str(d) for d in data] if data else None
            )
    except RetrainBusyError as exc:
        fail(str(exc))
    _print_training(report.training)
    console.print(report.decision.reason)


@app.command()
def schedule(
    config: Path = typer.Option(..., "--config", help="Experiment YAML for every retrain."),
    cron: str = typer.Option(
        "0 3 * * 1", "--cron", help='Cron schedule, e.g. "0 3 * * 1" = Mondays 03:00.'
    ),
    name: str = typer.Option("ser-retrain", "--name", help="Deployment name."),
    timezone: str = typer.Option("UTC", "--timezone", help="Time zone of the cron schedule."),
) -> None:
    """Serve the retrain flow on a cron schedule (blocks; Ctrl-C stops it)."""
    from prefect.schedules import Cron

    from flows.retrain import retrain_flow

    console.print(f"serving deployment retrain/{name} on cron {cron!r} ({timezone})")
    retrain_flow.serve(
        name=name,
        schedule=Cron(cron, timezone=timezone),
        parameters={"config_path": str(config.resolve())},
    )


@app.command()
def ui(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(5000, help="Port to listen on."),
) -> None:
    """Open the MLflow UI on the project's store, to compare runs."""
    import os

    from experiments.tracking.mlflow_ui import UI_ENV, default_backend_store_uri, ui_command

    command = ui_command(backend_store_uri=default_backend_store_uri(), host=host, port=port)
    console.print(f"MLflow UI on http://{host}:{port}  ({' '.join(command)})")
    os.execve(command[0], command, {**os.environ, **UI_ENV})


@app.command()
def demo() -> None:
    """The main job on the built-in SYNTHETIC demo corpus: generate, extract, train, promote."""
    from flows.promote import promote_model
    from flows.train import train_models
    from ser_features.demo_corpus import generate_demo_corpus

    with quiet_libraries("demo"):
        with console.status("synthesising the demo corpus (synthetic speech, not recordings)..."):
            generate_demo_corpus(DEMO_DIR)
        console.print(f"synthesised the demo corpus in {DEMO_DIR} (synthetic speech)")
        report = train_models(config_path=str(DEMO_CONFIG), data_folders=[str(DEMO_DIR)])
        _print_training(report)
        decision = promote_model(config_path=str(DEMO_CONFIG), parent_run_id=report.parent_run_id)
    verdict = "is now @champion" if decision.promoted else "did not beat @champion"
    console.print(f"{decision.model_name} v{decision.version} ({decision.family}) {verdict}")
    console.print(decision.reason)
    console.print("next steps (these demo models learned SYNTHETIC speech, not real voices):")
    console.print("  serve the champion: .venv/bin/ser serve    # POST base64 audio to :5000")
    console.print("  predict a file:     .venv/bin/ser predict data/demo/Actor_01/*.wav")
    console.print("  try it by hand:     .venv/bin/ser app      # http://127.0.0.1:7860")
    console.print("  compare the runs:   .venv/bin/ser ui       # http://127.0.0.1:5000")


app.command()(cli_serving.predict)
app.command()(cli_serving.serve)
app.command("app")(cli_serving.web_app)


def main() -> None:
    """Entry point for ``python -m flows.cli``."""
    app(prog_name="ser")


if __name__ == "__main__":
    sys.exit(main())
