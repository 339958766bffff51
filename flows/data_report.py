"""``ser data check``'s printout: clips, duration, labels, speakers, segments, problems."""

from __future__ import annotations

from rich.markup import escape
from rich.table import Table

from experiments.evaluation.splits import grouping_notes
from flows.user_console import console
from ser_features.data_check import DataCheck


def print_data_check(report: DataCheck, *, show: int = 20) -> None:
    """Print ``report`` for people: totals, per-label and per-speaker counts, problems."""
    clips = report.clips
    if len(clips):
        segments = int(clips["start"].notna().sum())
        files = clips["file"].nunique()
        hours = clips["duration_s"].sum() / 3600
        corpora = ", ".join(sorted(clips["corpus"].unique()))
        console.print(
            f"{len(clips)} clips ({segments} segments of longer recordings) from {files} "
            f"files, {hours:.2f} h of audio, corpora: {corpora}, "
            f"{clips['label'].nunique()} labels, {clips['group'].nunique()} speaker groups"
        )
        grouping, *warnings = grouping_notes(clips)
        console.print(grouping)
        for warning in warnings:
            console.print(f"[yellow]warning:[/] {escape(warning)}")
        console.print(_label_table(report))
        console.print(_speaker_table(report, show))
    if report.left_by_mapping:
        left = report.left_by_mapping
        named = ", ".join(f"{label} ({n})" for label, n in left.items())
        console.print(f"data.labels leaves out {sum(left.values())} clips: {named}")
    for title, rows in (
        ("refused rows (a run quarantines them and goes on)", report.refused),
        ("skipped files", report.skipped),
    ):
        if rows:
            console.print(f"[yellow]{len(rows)} {title}:[/]")
            for where, reason in rows[:show]:
                console.print(f"  {escape(str(where))}: {escape(reason)}", soft_wrap=True)
            if len(rows) > show:
                console.print(f"  ... and {len(rows) - show} more (--show N lists more)")
    for error in report.errors:
        console.print(f"[bold red]error:[/] {escape(error)}", soft_wrap=True)
    if report.errors:
        console.print("a run on this data would stop: correct the errors above first")
    else:
        console.print("[bold green]ok:[/] a run can start on this data")


def _label_table(report: DataCheck) -> Table:
    clips = report.clips
    per_label = clips.groupby("label").agg(
        clips=("file", "size"), hours=("duration_s", "sum"), speakers=("group", "nunique")
    )
    table = Table(title="clips per label")
    for column in ("label", "clips", "share", "speaker groups", "minutes"):
        table.add_column(column, justify="left" if column == "label" else "right")
    for label, row in per_label.sort_values("clips", ascending=False).iterrows():
        table.add_row(
            escape(str(label)),
            str(int(row["clips"])),
            f"{row['clips'] / len(clips):.0%}",
            str(int(row["speakers"])),
            f"{row['hours'] / 60:.1f}",
        )
    return table


def _speaker_table(report: DataCheck, show: int) -> Table:
    clips = report.clips
    counts = clips.groupby(["group", "grouped_by"]).size().sort_values(ascending=False)
    table = Table(title=f"clips per speaker group (largest {min(show, len(counts))})")
    for column in ("group", "by", "clips"):
        table.add_column(column, justify="right" if column == "clips" else "left")
    for (group, by), n in counts.head(show).items():
        table.add_row(escape(str(group)), str(by), str(n))
    return table
