"""Screenshot ``ser app`` scoring a real clip, with a second registered version beside it.

Run by hand; it needs Debian's Chromium and chromedriver (``scripts/ensure_chromium.sh``)::

    .venv/bin/python scripts/screenshot_app.py --store sqlite:///$PWD/mlruns/mlflow.db \\
        --clip ../shared/data/ravdess/Actor_02/03-01-05-02-01-01-02.flac \\
        --compare "version 1" --out docs/app-ravdess.png
    .venv/bin/python scripts/screenshot_app.py --store sqlite:///$PWD/mlruns/mlflow.db \
        --clip ../shared/data/emodb_sample/wav/03a01Wa.wav \
        --labels angry happy neutral sad --out docs/app-labels.png

It starts ``ser app`` on a free port against ``--store`` (working directory: the store's
parent, so relative artifact locations resolve), uploads the clip in headless Chromium,
picks the comparison, ticks the labels to answer among, presses Score and saves the page.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
from browser import headless_chrome, open_page, upload_and_score  # noqa: E402
from local_server import free_port, running  # noqa: E402

from experiments.serving.command import serving_environment  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", required=True, help="MLflow tracking URI (sqlite:///...)")
    parser.add_argument("--clip", type=Path, required=True)
    parser.add_argument("--compare", default=None, help='e.g. "version 1" or "@challenger"')
    parser.add_argument("--labels", nargs="*", default=(), help="labels to answer among")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "app.png")
    args = parser.parse_args()
    clip, out = args.clip.resolve(), args.out.resolve()
    port = free_port()
    env = {**serving_environment(args.store), "GRADIO_ANALYTICS_ENABLED": "False"}
    workdir = Path(args.store.removeprefix("sqlite:///")).parent
    ser = Path(sys.executable).with_name("ser")
    os.chdir(workdir)
    with running(
        [str(ser), "app", "--port", str(port)],
        env=env,
        log_path=workdir / "app-screenshot.log",
        ready_url=f"http://127.0.0.1:{port}/",
    ):
        browser = headless_chrome(width=1400, height=1500)
        try:
            open_page(browser, f"http://127.0.0.1:{port}/")
            upload_and_score(browser, clip, compare=args.compare, labels=tuple(args.labels))
            browser.save_screenshot(str(out))
        finally:
            browser.quit()
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
