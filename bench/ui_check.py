"""The MLflow UI as a user first sees it: run a tiny benchmark, start `mlflow ui` on loopback, drive Debian's Chromium
with Playwright and save screenshots of the experiment page, the benchmark run (its description is the
leaderboard) and a cell run; assert what a user must see.

    .venv/bin/python bench/ui_check.py [--out ui_check] [--keep]

Needs `/usr/bin/chromium` (`apt-get install -y chromium`) and `pip install playwright` in .venv; the browser is
never downloaded (`executable_path=/usr/bin/chromium`). Everything runs in a temporary folder (its own SQLite
store, Optuna storage and Ray dir; `--keep` leaves it for `mlflow ui --backend-store-uri ...`). The study is two
sequence models and a feature-table model (which cannot run on a sequence task) on `enhancers.synthetic`, one
trial each; about a minute on 2 cores.

Asserted: no run is FAILED; the address `regbench benchmark` prints last but one (`MLflow UI: ...`, the
leaderboard link `store.leaderboard_link`, also in the benchmark run's description) opens the model-training Runs page
(side nav "Runs" / "Models", no GenAI "Overview") in the saved view "regbench leaderboard" with a `test_primary`
column; the benchmark run's page shows the leaderboard of its description and that link; a cell run's page lists
`test_primary`; the benchmark's `report.html` shows its header and leaderboard and fits a 1366 px laptop screen
without sideways scrolling. The mlflow ui listens on the first free port of 5300-5399 (put in the printed address).
Reported, not asserted: where the plain experiment address (what the experiments list links to) lands in a fresh
browser, and again after the printed address was opened, with the browser's localStorage `mlflow.workflowType`:
MLflow 3.17 sends it to the GenAI overview whatever the experiment's kind tag, until the sidebar's "Model training"
toggle is once clicked in that browser (see `store.leaderboard_link`); whether the cell run's page names its logged
model `<task>__<model>`.
Screenshots in --out: `experiment_default.png`, `experiment.png`, `benchmark_run.png`, `cell_run.png`,
`report_top.png` (the laptop viewport), `report.png` (the whole page).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip
STUDY = """\
name: ui-check
tasks: [enhancers.synthetic]
models: [kmer_logreg, kmer_attention, targetfinder_gbm]
trials: 1
max_epochs: 1
shortcuts: false  # only the listed models
task_set:
  enhancers.synthetic: {data.n: 200}
model_set:
  kmer_logreg: {model.k: 3, model.max_iter: 200}
  kmer_attention: {model.k: 3, model.d_model: 16, model.head_dim: 16}
"""


def free_port(first: int = 5300, last: int = 5399) -> int:
    """The first port of `first..last` free on loopback."""
    for port in range(first, last + 1):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {first}-{last}")


def run_benchmark(work: Path) -> tuple[str, str, str, str]:
    """Run the study in `work` as a user would (`regbench benchmark`); returns (experiment id, benchmark run id,
    the id of a finished cell run, the UI address it printed)."""
    (work / "ui-check.yaml").write_text(STUDY)
    done = subprocess.run([sys.executable, "-m", "harness.cli", "benchmark", "--study", "ui-check.yaml"], cwd=work,
                          check=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE,
                          text=True)  # fmt: skip
    print(done.stdout)
    printed = [line.split()[2] for line in done.stdout.splitlines() if line.startswith("MLflow UI: ")]
    assert len(printed) == 1, "regbench benchmark printed no `MLflow UI: <address>` line"
    sys.path.insert(0, str(ROOT))
    from harness.tracking import store

    runs = store.search_runs("ui-check")
    assert "FAILED" not in set(runs["status"]), runs[["tags.mlflow.runName", "status"]]
    bench = runs[runs["tags.regbench.kind"] == "benchmark"]
    cells = runs[(runs["tags.regbench.kind"] == "cell") & runs["metrics.test_primary"].notna()]
    return str(runs["experiment_id"].iloc[0]), str(bench["run_id"].iloc[0]), str(cells["run_id"].iloc[0]), printed[0]


def start_ui(uri: str, port: int, work: Path) -> subprocess.Popen:
    log = (work / "mlflow_ui.log").open("w")
    ui = subprocess.Popen([str(Path(sys.executable).parent / "mlflow"), "ui", "--backend-store-uri", uri, "--host",
                           "127.0.0.1", "--port", str(port), "--workers", "1"], cwd=work, stdout=log,
                          stderr=subprocess.STDOUT)  # fmt: skip
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
            return ui
        except OSError:
            time.sleep(1)
    ui.terminate()
    raise RuntimeError(f"mlflow ui did not answer on port {port} within 90 s; see {work / 'mlflow_ui.log'}")


def check_pages(base: str, ids: tuple[str, str, str], printed: str, out: Path, report: Path) -> list[str]:
    """Visit the pages in a fresh browser profile, save screenshots, return what was seen (raises AssertionError
    on a miss). `ids`: the experiment, the benchmark run, a cell run; `printed`: the UI address regbench printed."""
    from playwright.sync_api import expect, sync_playwright

    sys.path.insert(0, str(ROOT))
    from harness.tracking import store

    experiment, bench, cell = ids
    workflow = "JSON.stringify(Object.entries(localStorage).filter(([k]) => k.includes('workflowType')))"
    seen: list[str] = []
    expect.set_options(timeout=60_000)  # a busy machine's mlflow ui can take more than expect's default 5 s
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        page.set_default_timeout(60_000)

        landed = re.compile(rf".*#/experiments/{experiment}/\w")  # the UI has sent the plain address to a tab
        page.goto(f"{base}/#/experiments/{experiment}")  # where the experiments list links to
        page.wait_for_url(landed)
        page.wait_for_timeout(3000)
        seen += [f"plain experiment address, fresh browser: lands on {page.url.removeprefix(base)[:60]}"]
        page.screenshot(path=str(out / "experiment_default.png"))

        assert printed.startswith(store.UI_ADDRESS), printed
        page.goto(base + printed.removeprefix(store.UI_ADDRESS))  # what `regbench benchmark` printed
        expect(page.get_by_role("columnheader", name="test_primary").first).to_be_visible()
        expect(page.get_by_text("regbench leaderboard").first).to_be_visible()
        expect(page.get_by_text("Models", exact=True).first).to_be_visible()  # the model-training side nav
        assert page.get_by_text("Overview", exact=True).count() == 0, "the GenAI side nav is shown"
        assert f"/experiments/{experiment}/runs?" in page.url, page.url
        seen += [f"printed address: {page.url.removeprefix(base)[:90]}..., Training runs with test_primary"]
        page.wait_for_timeout(1500)
        page.screenshot(path=str(out / "experiment.png"))

        page.goto(f"{base}/#/experiments/{experiment}")  # the same browser again: the URL's workflow is not kept
        page.wait_for_url(landed)
        seen += [f"plain experiment address again: {page.url.removeprefix(base)[:60]} (localStorage "
                 f"workflowType entries: {page.evaluate(workflow)})"]  # fmt: skip

        page.goto(f"{base}/#/experiments/{experiment}/runs/{bench}")
        expect(page.get_by_text("Best model per task").first).to_be_visible()
        expect(page.get_by_text("unable", exact=True).first).to_be_visible()
        link = page.get_by_role("link", name="All scored runs, best test_primary first").first
        assert link.get_attribute("href") == store.leaderboard_link(experiment), link.get_attribute("href")
        seen += ["benchmark run page: the description is the leaderboard (with the unable cell) and its link"]
        page.wait_for_timeout(1000)
        page.screenshot(path=str(out / "benchmark_run.png"), full_page=True)

        page.goto(f"{base}/#/experiments/{experiment}/runs/{cell}")
        expect(page.get_by_text("test_primary", exact=True).first).to_be_visible()
        seen += ["cell run page: test_primary among its metrics"]
        page.wait_for_timeout(1000)
        named = page.get_by_text("enhancers-synthetic__", exact=False).count()
        seen += [f"cell run page: its logged model named <task>__<model> shown {named} time(s)"]
        page.screenshot(path=str(out / "cell_run.png"), full_page=True)

        page.set_viewport_size({"width": 1366, "height": 768})  # a laptop screen
        page.goto(report.as_uri())
        expect(page.get_by_text("Leaderboard: enhancers.synthetic").first).to_be_visible()
        expect(page.get_by_text("git sha", exact=True).first).to_be_visible()
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 1366, f"report.html is {width} px wide on a 1366 px screen"
        seen += [f"report.html: header and leaderboards, {width} px wide on a 1366 px screen (no sideways scroll)"]
        page.screenshot(path=str(out / "report_top.png"))
        page.screenshot(path=str(out / "report.png"), full_page=True)
        browser.close()
    return seen


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="ui_check", help="folder for the screenshots (default ./ui_check)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary store and print where it is")
    args = parser.parse_args()
    if not Path(CHROMIUM).exists():
        sys.exit(f"{CHROMIUM} is missing: apt-get install -y chromium (the browser is never downloaded)")
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="ui_check_"))
    uri = f"sqlite:///{work / 'mlflow.db'}"
    os.environ.update({"MLFLOW_TRACKING_URI": uri, "RAY_TMPDIR": tempfile.mkdtemp(prefix="rb", dir="/tmp"),
                       "REGBENCH_CACHE": str(work / "cache"), "RAY_USAGE_STATS_ENABLED": "0"})  # fmt: skip
    start = time.perf_counter()
    experiment, bench, cell, printed = run_benchmark(work)
    port = free_port()
    ui = start_ui(uri, port, work)
    try:
        report = work / "reports" / "ui-check" / "report.html"
        seen = check_pages(f"http://127.0.0.1:{port}", (experiment, bench, cell), printed, out, report)
    finally:
        ui.terminate()
        ui.wait(timeout=30)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    for line in seen:
        print(f"ok  {line}")
    print(f"screenshots in {out} ({time.perf_counter() - start:.0f} s){'; store: ' + uri if args.keep else ''}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
