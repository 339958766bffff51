"""Accuracy of the served champion on labelled speech (folders or manifests), scored as a user
would.

Run by hand (not in CI), from the repository root, after ``ser train`` and ``ser promote``::

    .venv/bin/python benchmarks/served_accuracy.py                      # TESS and EmoDB samples
    .venv/bin/python benchmarks/served_accuracy.py --folders ../shared/data/ravdess/Actor_20

Starts ``models:/NAME@champion`` (``--model``, default ``ser-emotion``, from
``MLFLOW_TRACKING_URI`` or the local store) with ``mlflow models serve`` as ``ser serve``
does, on one worker, and POSTs every labelled clip of each folder as raw audio, ``--batch``
clips per request. For each folder it prints the UAR of the answered ``emotion`` over the
folder's labels that the model knows (a clip whose label the model lacks is left out; a clip
with too little speech to be judged counts with its most probable label), the
UAR over angry, happy, neutral and sad (argmax of the served probabilities of those four),
the rows answered with an error, the rows not judged (too little speech), and the served
milliseconds per clip. With
``--among-folder-labels`` every row also names, in its ``labels`` column, the folder's
labels that the model knows, so the answer is chosen among those alone.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from sklearn.metrics import balanced_accuracy_score

from ser_features.clip_source import clip_key, read_clip_bytes
from ser_features.corpora import ScannedClip
from ser_features.labels import SHARED_BY_EVERY_CORPUS as FOUR_CLASSES
from ser_features.sources import find_clips

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
SAMPLES = (SHARED / "tess_sample", SHARED / "emodb_sample")


def clip_bytes(clip: ScannedClip) -> bytes:
    """The audio of a clip as a file's bytes (a segment is cut out of its recording)."""
    return read_clip_bytes(clip_key(str(clip.path), clip.start, clip.end))


def post(url: str, clips: list[ScannedClip], labels: str | None = None) -> list[dict]:
    """The served answers for ``clips``, one request (each row asking for ``labels``)."""
    rows = [[base64.b64encode(clip_bytes(clip)).decode(), labels] for clip in clips]
    columns = ["audio", "labels"]
    body = json.dumps({"dataframe_split": {"columns": columns, "data": rows}}).encode()
    call = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(call, timeout=600) as response:
        return json.load(response)["predictions"]


def _said(answer: dict) -> str:
    """The answered emotion; the most probable label of a row with too little speech."""
    return answer["emotion"] or max(answer["probabilities"], key=answer["probabilities"].get)


def score_folder(
    url: str, folder: Path, batch: int, known: list[str], among_folder_labels: bool
) -> dict[str, str]:
    """One results line: UAR, 4-class UAR, errors and served ms per clip for ``folder``."""
    clips = find_clips(folder).clips
    if not clips:
        sys.exit(f"no labelled clips in {folder}")
    present = {clip.labels.emotion for clip in clips}
    asked = ",".join(label for label in known if label in present) if among_folder_labels else None
    started = time.perf_counter()
    answers = []
    for first in range(0, len(clips), batch):
        answers += post(url, clips[first : first + batch], asked)
    ms_per_clip = 1000 * (time.perf_counter() - started) / len(clips)
    good = [(c.labels.emotion, a) for c, a in zip(clips, answers, strict=True) if not a["error"]]
    truth = [label for label, _ in good if label in known]
    said = [_said(answer) for label, answer in good if label in known]
    four = [(label, answer) for label, answer in good if label in FOUR_CLASSES]
    four_said = [
        max(FOUR_CLASSES, key=lambda k, a=a: a["probabilities"].get(k, -1)) for _, a in four
    ]
    labels = sorted(set(truth))
    return {
        "folder": str(folder),
        "answered among": "the folder's labels" if asked else "every label it knows",
        "clips": str(len(clips)),
        "labels": f"{len(labels)} ({', '.join(labels)})",
        "UAR": f"{balanced_accuracy_score(truth, said):.3f}" if truth else "",
        "4-class UAR": (
            f"{balanced_accuracy_score([label for label, _ in four], four_said):.3f}"
            if four
            else ""
        ),
        "errors": str(len(clips) - len(good)),
        "not judged": str(sum(answer["emotion"] is None for _, answer in good)),
        "served ms/clip": f"{ms_per_clip:.1f}",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="ser-emotion", help="registered model name")
    parser.add_argument("--folders", nargs="+", type=Path, default=list(SAMPLES))
    parser.add_argument("--batch", type=int, default=20, help="clips per request")
    parser.add_argument(
        "--among-folder-labels",
        action="store_true",
        help="rows name the folder's labels in `labels`: the answer is chosen among them",
    )
    args = parser.parse_args()

    import mlflow
    import pandas as pd

    from experiments.serving.command import serve_command, serving_environment
    from experiments.tracking.runs import configure_tracking

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from local_server import free_port, running

    uri = configure_tracking()
    info = mlflow.models.get_model_info(f"models:/{args.model}@champion")
    workdir = Path(tempfile.mkdtemp(prefix="ser-served-accuracy-"))
    port = free_port()
    with running(
        serve_command(args.model, port=port),
        env=serving_environment(uri),
        log_path=workdir / "server.log",
        ready_url=f"http://127.0.0.1:{port}/ping",
        timeout=240,
    ):
        url = f"http://127.0.0.1:{port}/invocations"
        first = find_clips(args.folders[0]).clips[0]
        known = list(post(url, [first])[0]["probabilities"])  # every label the model learnt
        rows = [
            score_folder(url, folder, args.batch, known, args.among_folder_labels)
            for folder in args.folders
        ]
    print(f"served models:/{args.model}@champion (version {info.registered_model_version})")
    print(pd.DataFrame(rows).to_markdown(index=False))


if __name__ == "__main__":
    main()
