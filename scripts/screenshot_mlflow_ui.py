"""Screenshot the MLflow UI comparing the family runs of the newest training run.

Run by hand; it needs Debian's Chromium (``apt-get install -y chromium``)::

    .venv/bin/python scripts/screenshot_mlflow_ui.py --store sqlite:///$PWD/mlruns/mlflow.db \\
        --experiment ser-ravdess --out docs/mlflow-ui-compare-runs.png \\
        --runs-out docs/mlflow-ui-runs.png

It starts the UI on a free port (working directory: the store's ``mlruns/`` parent, so
relative artifact locations resolve), finds the child runs of the newest parent run, and
drives headless Chromium over the DevTools protocol (``websockets`` comes with Prefect):
``chromium --screenshot`` alone cannot close MLflow's assistant panel, which opens on a first
visit and covers a third of the page, nor pick the plotted metrics and table columns.
"""

from __future__ import annotations

import argparse
import base64
import itertools
import json
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from websockets.sync.client import connect

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from local_server import running_ui, stop

DEFAULT_STORE = f"sqlite:///{Path('mlruns/mlflow.db').resolve()}"
METRICS = ("accuracy", "macro_f1", "log_loss", "uar")  # uar last: it colours the plot
MAX_BYTES = 600_000
# Before the app's scripts run: no assistant panel, the "Model training" navigation.
PRELUDE = """
localStorage.setItem('mlflow.assistant.fab.autoOpenedOnFirstLoad_v1', 'true');
localStorage.setItem('mlflow.assistant.panelOpen_v1', 'false');
localStorage.setItem('mlflow.workflowType_v1', '"machine_learning"');
"""


def api(base: str, endpoint: str, payload: dict | None = None, **query: str) -> dict:
    """One MLflow REST call (POST with ``payload``, else GET with ``query``)."""
    url = f"{base}/api/2.0/mlflow/{endpoint}"
    if payload is None:
        request = urllib.request.Request(f"{url}?{urllib.parse.urlencode(query)}")
    else:
        data = json.dumps(payload).encode()
        headers = {"Content-Type": "application/json"}
        request = urllib.request.Request(url, data=data, headers=headers)
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.load(response)


def family_runs(base: str, experiment: str) -> tuple[str, list[str]]:
    """The experiment id and the child run ids of its newest parent run."""
    found = api(base, "experiments/get-by-name", experiment_name=experiment)
    experiment_id = found["experiment"]["experiment_id"]
    search = {
        "experiment_ids": [experiment_id],
        "max_results": 1000,
        "order_by": ["start_time DESC"],
    }
    parent_of = {}
    for run in api(base, "runs/search", search).get("runs", []):
        tags = {t["key"]: t["value"] for t in run["data"].get("tags", [])}
        parent_of[run["info"]["run_id"]] = tags.get("mlflow.parentRunId")
    for run_id in [run for run, parent in parent_of.items() if parent is None]:  # newest first
        children = [child for child, parent in parent_of.items() if parent == run_id]
        if children:
            return experiment_id, children
    raise SystemExit(f"no parent run with child runs in experiment {experiment!r}")


class Chromium:
    """Headless Chromium driven over the DevTools protocol."""

    def __init__(self, width: int, height: int) -> None:
        browser = shutil.which("chromium") or shutil.which("chromium-browser")
        if browser is None:
            raise SystemExit("chromium not found: apt-get install -y chromium")
        self.width = width
        self.profile = tempfile.TemporaryDirectory(prefix="chromium-")
        flags = "--headless --no-sandbox --disable-gpu --disable-quic --no-first-run "
        flags += "--disable-background-networking --disable-component-update --disable-sync "
        flags += "--hide-scrollbars --remote-debugging-port=0"
        self.process = subprocess.Popen(
            [browser, *flags.split(), f"--user-data-dir={self.profile.name}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        port_file = Path(self.profile.name) / "DevToolsActivePort"
        self.wait_for(lambda: port_file.exists() and port_file.read_text().strip(), "DevTools")
        port = port_file.read_text().split()[0]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as answer:
            page = next(t for t in json.load(answer) if t["type"] == "page")
        self.socket = connect(page["webSocketDebuggerUrl"], max_size=None)
        self.ids = itertools.count(1)
        self.call("Page.enable")
        self.call("Page.addScriptToEvaluateOnNewDocument", source=PRELUDE)
        self.resize(height)

    def call(self, method: str, **params: Any) -> dict:
        """Send one DevTools command and return its result (events are skipped)."""
        number = next(self.ids)
        self.socket.send(json.dumps({"id": number, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv(timeout=120))
            if message.get("id") == number:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    def js(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page."""
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(result["exceptionDetails"].get("exception", result))
        return result["result"].get("value")

    def wait_for(self, ready: Any, what: str, timeout: float = 90) -> None:
        """Poll ``ready()`` until it is true."""
        deadline = time.monotonic() + timeout
        while not ready():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what} did not appear within {timeout:.0f} s")
            time.sleep(0.5)

    def open(self, url: str, text: str) -> None:
        """Navigate to ``url`` and wait until the page shows ``text``, then let it settle."""
        self.call("Page.navigate", url=url)
        probe = f"!!document.body && document.body.innerText.includes({json.dumps(text)})"
        self.wait_for(lambda: self.js(probe), repr(text))
        time.sleep(2)

    def click(self, selector: str, text: str, *, inner: str = "") -> bool:
        """Click the first ``selector`` element whose text is ``text``, or its ``inner``."""
        args = json.dumps([selector, text, inner])
        script = """(([selector, text, inner]) => {
            const hit = [...document.querySelectorAll(selector)]
              .find(e => e.innerText && e.innerText.trim() === text);
            const target = hit && (inner ? hit.querySelector(inner) : hit);
            if (target) target.click();
            return !!target; })"""
        return bool(self.js(f"{script}({args})"))

    def resize(self, height: int) -> None:
        """Set the viewport to ``width`` x ``height`` CSS pixels."""
        metrics = {"width": self.width, "height": height, "deviceScaleFactor": 1, "mobile": False}
        self.call("Emulation.setDeviceMetricsOverride", **metrics)

    def screenshot(self, out: Path) -> None:
        """Write the viewport as PNG to ``out``, shrunk below MAX_BYTES if needed."""
        time.sleep(1.5)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"]))
        shrink(out)
        print(f"wrote {out} ({out.stat().st_size // 1024} KB)")

    def close(self) -> None:
        """Close the connection, stop Chromium and remove its profile."""
        self.socket.close()
        stop(self.process)
        self.profile.cleanup()


def shrink(path: Path) -> None:
    """Halve the resolution (matplotlib, no Pillow) until the PNG is under MAX_BYTES."""
    import matplotlib.image as mpimg

    while path.stat().st_size > MAX_BYTES:
        image = mpimg.imread(path)
        image = image[: image.shape[0] // 2 * 2, : image.shape[1] // 2 * 2]
        image = (image[0::2, 0::2] + image[1::2, 0::2] + image[0::2, 1::2] + image[1::2, 1::2]) / 4
        mpimg.imsave(path, image)


def compare_page(browser: Chromium, base: str, experiment_id: str, runs: list[str]) -> None:
    """The compare-runs page: metrics in the parallel-coordinates plot, parameters folded."""
    query = urllib.parse.urlencode(
        {"runs": json.dumps(runs, separators=(",", ":")), "experiments": f'["{experiment_id}"]'}
    )
    url = f"{base}/#/compare-runs?{query}"
    print(url)
    browser.open(url, "Run details")
    if browser.click("button", "Clear All"):
        for metric in METRICS:
            browser.js(
                """document.querySelectorAll('.du-bois-light-select-selector')[1]
                .dispatchEvent(new MouseEvent('mousedown', {bubbles: true}))"""
            )
            time.sleep(0.7)
            browser.click(".du-bois-light-select-item-option", metric)
            time.sleep(0.5)
        browser.js("document.activeElement && document.activeElement.blur()")
    browser.click(".du-bois-light-collapse-header", "Parameters")  # 68 rows: fold them
    time.sleep(1)


def runs_page(browser: Chromium, base: str, experiment_id: str) -> None:
    """The experiment's runs table: the newest parent unfolded, the key metrics as columns."""
    browser.open(f"{base}/#/experiments/{experiment_id}/runs", "matching runs")
    browser.js("""document.querySelector('[data-component-id*="runnamecellrenderer"]').click()""")
    time.sleep(1)
    if browser.click("button", "Columns"):
        time.sleep(1.5)
        for column in ("Dataset", "Source", *METRICS):
            node = "[role=dialog] .du-bois-light-tree-treenode"
            browser.click(node, column, inner=".du-bois-light-tree-checkbox")
            time.sleep(0.4)
        browser.js("document.body.dispatchEvent(new KeyboardEvent('keydown', {key: 'Escape'}))")
        browser.click("button", "Columns")  # the toggle closes the popover
    time.sleep(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default=DEFAULT_STORE, help="backend store URI")
    parser.add_argument("--experiment", default="ser-ravdess")
    parser.add_argument("--out", type=Path, default=Path("docs/mlflow-ui-compare-runs.png"))
    parser.add_argument("--runs-out", type=Path, help="also screenshot the experiment's runs")
    parser.add_argument("--width", type=int, default=1600)
    parser.add_argument("--height", type=int, default=1450, help="compare page height")
    parser.add_argument("--runs-height", type=int, default=480, help="runs page height")
    args = parser.parse_args()

    store_dir = Path(args.store.removeprefix("sqlite:///")).parent.parent
    cwd = store_dir if args.store.startswith("sqlite:///") and store_dir.is_dir() else None
    with running_ui(args.store, cwd=cwd) as base:
        experiment_id, runs = family_runs(base, args.experiment)
        browser = Chromium(args.width, args.height)
        try:
            compare_page(browser, base, experiment_id, runs)
            browser.screenshot(args.out)
            if args.runs_out:
                browser.resize(args.runs_height)
                runs_page(browser, base, experiment_id)
                browser.screenshot(args.runs_out)
        finally:
            browser.close()


if __name__ == "__main__":
    main()
