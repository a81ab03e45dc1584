"""The MLflow UI as a user first sees it: run a tiny 3-task benchmark, start the `mlflow ui` command it printed on
loopback, drive Debian's Chromium with Playwright and save screenshots; assert what a user must see.

    .venv/bin/python bench/ui_check.py [--out ui_check] [--keep]

Needs `/usr/bin/chromium` (`apt-get install -y chromium`) and `pip install playwright` in .venv; the browser is
never downloaded (`executable_path=/usr/bin/chromium`). Everything runs in a temporary folder (its own SQLite
store, Optuna storage and Ray dir; `--keep` leaves it for `mlflow ui --backend-store-uri ...`). The study is two
sequence models and a feature-table model (which cannot run on a sequence task) on three synthetic tasks
(enhancers, EPI pairs, multi-label chromatin), one trial each; a few minutes on 2 cores.

Asserted: no run is FAILED; `regbench benchmark` prints one `MLflow UI: <command>, then open <address>` line whose
command serves the store in use and whose address names `workflowType=machine_learning`; that address, in a fresh
browser (so with MLflow's Assistant panel open, as a first visit opens it) at 1366×768 and at 1440×900, shows every
task's winner (its run, `model · task`) and, on its row, its score with the 95% CI (`auroc 0.710 [0.522, 0.874]`)
and the models tied with it, as the summary printed them: each text whole (not cut off) inside the first viewport
and not covered by MLflow's side panels (`winners.png`, `winners_1440.png`); at 1600×1000 it opens the
model-training Runs page (side nav "Runs" / "Models", no GenAI "Overview") in the saved view "regbench winners"; the
benchmark run's page shows the winners and the leaderboard of its description and the link to the "regbench
leaderboard" view; a cell run's page lists `test_primary`; the benchmark's `report.html` shows its header and
leaderboard and fits a 1366 px laptop screen without sideways scrolling. The mlflow ui listens on the first free
port of 5300-5399.
Reported, not asserted: where the plain experiment address (what the experiments list links to) lands in a fresh
browser, and again after the printed address was opened, with the browser's localStorage `mlflow.workflowType`:
MLflow 3.17 sends it to the GenAI overview whatever the experiment's kind tag, until the sidebar's "Model training"
toggle is once clicked in that browser (see `store.leaderboard_link`); whether the cell run's page names its logged
model `<task>__<model>`.
Screenshots in --out: `winners.png` (1366×768, the first screen), `winners_1440.png`, `experiment_default.png`,
`experiment.png`, `benchmark_run.png`, `cell_run.png`, `report_top.png` (the laptop viewport), `report.png` (the
whole page).
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
tasks: [enhancers.synthetic, epi.synthetic, chromatin.synthetic]
models: [kmer_logreg, kmer_attention, targetfinder_gbm]
trials: 1
max_epochs: 1
tiny: true  # every model's small variant
shortcuts: false  # only the listed models
task_set:
  enhancers.synthetic: {data.n: 200}
  epi.synthetic: {data.enhancer_window: 100, data.promoter_window: 100}
  chromatin.synthetic: {data.n: 300}
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


def run_benchmark(work: Path) -> tuple[str, str, str, str, str, dict[str, tuple[str, str, str]]]:
    """Run the study in `work` as a user would (`regbench benchmark`); returns (experiment id, benchmark run id,
    the id of a finished cell run, the `mlflow ui` command and the UI address it printed, and per task the
    winner, its score and the models tied with it from its summary lines)."""
    (work / "ui-check.yaml").write_text(STUDY)
    done = subprocess.run([sys.executable, "-m", "harness.cli", "benchmark", "--study", "ui-check.yaml"], cwd=work,
                          check=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE,
                          text=True)  # fmt: skip
    print(done.stdout)
    printed = [line for line in done.stdout.splitlines() if line.startswith("MLflow UI: ")]
    assert len(printed) == 1, "regbench benchmark printed no `MLflow UI: <command>, then open <address>` line"
    command, address = printed[0].removeprefix("MLflow UI: ").split(", then open ")
    assert "workflowType=machine_learning" in address, address
    winners = {}  # task → (model, score, tied) from "  task  model  auroc 0.812 [0.7, 0.9]  (tied with 2: a, b)"
    for line in done.stdout.splitlines():
        found = re.match(r"  (\S+)\s+(\S+)  (\w+ \S+ \[[^]]+\])(?:  \(tied with \d+: ([^)]+)\))?", line)
        if found:
            winners[found[1]] = (found[2], found[3], found[4] or "—")
    assert len(winners) == 3, done.stdout
    sys.path.insert(0, str(ROOT))
    from harness.tracking import store

    runs = store.search_runs("ui-check")
    assert "FAILED" not in set(runs["status"]), runs[["tags.mlflow.runName", "status"]]
    bench = runs[runs["tags.regbench.kind"] == "benchmark"]
    cells = runs[(runs["tags.regbench.kind"] == "cell") & runs["metrics.test_primary"].notna()]
    ids = str(runs["experiment_id"].iloc[0]), str(bench["run_id"].iloc[0]), str(cells["run_id"].iloc[0])
    return *ids, command, address, winners


def start_ui(command: str, port: int, work: Path) -> subprocess.Popen:
    """The `mlflow ui` command regbench printed, run in the venv (as the README's activated shell would), on
    `port` of loopback."""
    log = (work / "mlflow_ui.log").open("w")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    argv = [*command.split(), "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    ui = subprocess.Popen(argv, cwd=work, stdout=log, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
            return ui
        except OSError:
            time.sleep(1)
    ui.terminate()
    raise RuntimeError(f"mlflow ui did not answer on port {port} within 90 s; see {work / 'mlflow_ui.log'}")


SHOWN = """(el) => {
    const r = document.createRange(); r.selectNodeContents(el); const b = r.getBoundingClientRect();
    const y = b.top + b.height / 2;
    const hit = (x) => { const e = document.elementFromPoint(x, y); return e !== null && el.contains(e); };
    const inside = b.width > 0 && b.left >= 0 && b.top >= 0 && b.right <= innerWidth && b.bottom <= innerHeight;
    return {y, shown: inside && hit(b.left + 1) && hit(b.right - 1)};
}"""  # the box of an element's text; shown: wholly in the viewport, its first and last pixels not under another


def _shown(cells: object, row_y: float | None = None) -> bool:
    """Whether one of `cells` (a locator; on the row at height `row_y` if given) has its whole text on screen:
    inside the viewport, not cut off by its column and not under a side panel."""
    for cell in cells.all():  # type: ignore[attr-defined]
        box = cell.evaluate(SHOWN)
        if box["shown"] and (row_y is None or abs(box["y"] - row_y) <= 8):
            return True
    return False


def check_winners(browser: object, base: str, printed: str, winners: dict[str, tuple[str, str, str]], out: Path,
                  size: tuple[int, int], picture: str) -> list[str]:  # fmt: skip
    """The printed address at `size` in a fresh browser: on the first screen (no scrolling), left of MLflow's
    Assistant panel, every task's winner (its run, `model · task`) and, on its row, its score with CI and the
    models tied with it as the summary printed them (`regbench.score`, `regbench.tied_with`); saves `picture`."""
    from playwright.sync_api import expect

    from harness.tracking import store
    from harness.tracking.run_names import cell_name

    page = browser.new_page(viewport={"width": size[0], "height": size[1]})  # type: ignore[attr-defined]
    page.set_default_timeout(60_000)
    page.goto(base + printed.removeprefix(store.UI_ADDRESS))
    expect(page.get_by_text("regbench winners").first).to_be_visible()
    seen = []
    first, (model, _, _) = next(iter(winners.items()))
    expect(page.get_by_role("link", name=cell_name(first, model)).first).to_be_visible()
    page.wait_for_timeout(1500)
    page.screenshot(path=str(out / picture))  # before the checks: a miss leaves its picture
    where = f"{size[0]}×{size[1]}"
    for task, (model, score, tied) in winners.items():
        run = page.get_by_role("link", name=cell_name(task, model), exact=True)
        rows = [box["y"] for box in (cell.evaluate(SHOWN) for cell in run.all()) if box["shown"]]
        assert rows, f"the winner {cell_name(task, model)} is not whole on the first {where} screen"
        for text in (score, tied):
            cells = page.get_by_role("gridcell", name=text, exact=True)
            assert _shown(cells, rows[0]), f"{text!r} ({task}) is not whole on its row of the first {where} screen"
        seen.append(f"{where} first viewport: {task}: {model} {score}, tied with {tied}")
    page.close()
    return seen


def check_pages(base: str, ids: tuple[str, str, str], printed: str, winners: dict[str, tuple[str, str, str]],
                out: Path, report: Path) -> list[str]:  # fmt: skip
    """Visit the pages in a fresh browser profile, save screenshots, return what was seen (raises AssertionError
    on a miss). `ids`: the experiment, the benchmark run, a cell run; `printed`: the UI address regbench printed;
    `winners`: task → (winner, score, tied) from its summary."""
    from playwright.sync_api import expect, sync_playwright

    sys.path.insert(0, str(ROOT))
    from harness.tracking import store

    experiment, bench, cell = ids
    workflow = "JSON.stringify(Object.entries(localStorage).filter(([k]) => k.includes('workflowType')))"
    seen: list[str] = []
    expect.set_options(timeout=60_000)  # a busy machine's mlflow ui can take more than expect's default 5 s
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        seen += check_winners(browser, base, printed, winners, out, (1366, 768), "winners.png")
        seen += check_winners(browser, base, printed, winners, out, (1440, 900), "winners_1440.png")
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
        expect(page.get_by_role("columnheader", name=store.SCORE_TAG).first).to_be_visible()
        expect(page.get_by_text("regbench winners").first).to_be_visible()
        expect(page.get_by_text("Models", exact=True).first).to_be_visible()  # the model-training side nav
        assert page.get_by_text("Overview", exact=True).count() == 0, "the GenAI side nav is shown"
        assert f"/experiments/{experiment}/runs?" in page.url, page.url
        seen += [f"printed address: {page.url.removeprefix(base)[:90]}..., Training runs with {store.SCORE_TAG}"]
        page.wait_for_timeout(1500)
        page.screenshot(path=str(out / "experiment.png"))

        page.goto(f"{base}/#/experiments/{experiment}")  # the same browser again: the URL's workflow is not kept
        page.wait_for_url(landed)
        seen += [f"plain experiment address again: {page.url.removeprefix(base)[:60]} (localStorage "
                 f"workflowType entries: {page.evaluate(workflow)})"]  # fmt: skip

        page.goto(f"{base}/#/experiments/{experiment}/runs/{bench}")
        expect(page.get_by_text("Winner per task").first).to_be_visible()
        expect(page.get_by_text("unable", exact=True).first).to_be_visible()
        link = page.get_by_role("link", name="Every cell by task and rank").first
        want = store.leaderboard_link(experiment, store.LEADERBOARD_VIEW)
        assert link.get_attribute("href") == want, link.get_attribute("href")
        seen += ["benchmark run page: the description is the winners, the leaderboard (with the unable cell) and "
                 "the link to the leaderboard view"]  # fmt: skip
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
    experiment, bench, cell, command, printed, winners = run_benchmark(work)
    assert command == f"mlflow ui --backend-store-uri {uri}", command  # the one line, for the store in use
    port = free_port()
    ui = start_ui(command, port, work)
    try:
        report = work / "reports" / "ui-check" / "report.html"
        seen = check_pages(f"http://127.0.0.1:{port}", (experiment, bench, cell), printed, winners, out, report)
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
