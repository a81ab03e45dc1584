"""Serving: input a logged model cannot take gets MLflow's invalid-input error with regbench's one-line cause, so
`mlflow models serve` (the real scoring server, on loopback) answers HTTP 400 with it, not "unexpected error"."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from mlflow.exceptions import MlflowException

from harness.cli import main
from harness.tracking import store
from tests.conftest import free_port, wait_http

pytestmark = pytest.mark.slow
TASK = "enhancers.synthetic"


def _post(url: str, rows: list[dict]) -> tuple[int, dict]:
    body = json.dumps({"dataframe_records": rows}).encode()
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_wrong_length_gets_400_with_the_cause(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["train", "--task", TASK, "--model", "kmer_logreg", "--set", "data.n=120", "--set", "data.length=100",
            "--set", "model.k=3", "--experiment", "serve"]  # fmt: skip
    assert main(argv) == 0
    run = store.client().get_run(capsys.readouterr().out.strip().splitlines()[-1].removeprefix("run_id: "))
    uri = run.data.tags[store.MODEL_URI_TAG]

    import mlflow.pyfunc

    model = mlflow.pyfunc.load_model(uri)
    assert len(model.predict([{"sequence": "ACGT" * 25}])) == 1
    with pytest.raises(
        MlflowException, match=r"row 1: sequence has length 8, but model kmer_logreg .* length 100"
    ) as e:
        model.predict([{"sequence": "ACGTACGT"}])
    assert e.value.error_code == "INVALID_PARAMETER_VALUE"

    port = free_port()
    mlflow_bin = str(Path(sys.executable).parent / "mlflow")
    argv = [mlflow_bin, "models", "serve", "-m", uri, "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)]
    log = (tmp_path / "serve.log").open("w")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}  # the activated venv
    server = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        wait_http(f"http://127.0.0.1:{port}/ping", 180, server=server, log=tmp_path / "serve.log")
        url = f"http://127.0.0.1:{port}/invocations"
        status, answer = _post(url, [{"sequence": "ACGT" * 25}])
        assert status == 200 and len(answer["predictions"]) == 1, answer
        status, answer = _post(url, [{"sequence": "ACGT" * 25}, {"sequence": "ACGTACGT"}])
        assert status == 400 and answer["error_code"] == "INVALID_PARAMETER_VALUE", answer
        assert "row 2: sequence has length 8, but model kmer_logreg was trained on task" in answer["message"]
        assert "unexpected error" not in answer["message"]
    finally:
        if server.poll() is None:
            os.killpg(server.pid, 15)
            server.wait(timeout=30)
        log.close()
