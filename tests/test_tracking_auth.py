"""A shared tracking server with MLflow's basic-auth app (`mlflow server --app-name basic-auth`) on loopback:
clients without (or with wrong) credentials are refused; regbench's store logs with
`MLFLOW_TRACKING_USERNAME/PASSWORD`."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from harness.tracking import store
from tests.conftest import free_port, wait_http

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent


def test_basic_auth_server_refuses_anonymous_clients(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "auth.ini"
    config.write_text(f"[mlflow]\ndefault_permission = READ\ndatabase_uri = sqlite:///{tmp_path}/auth.db\n"
                      "admin_username = admin\nadmin_password = s3cret-Passw0rd\n"
                      "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n")  # fmt: skip
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING_")}
    env["MLFLOW_AUTH_CONFIG_PATH"] = str(config)
    env["MLFLOW_FLASK_SERVER_SECRET_KEY"] = secrets.token_hex(16)  # the app's CSRF key, required
    server = subprocess.Popen(
        [str(BIN / "mlflow"), "server", "--app-name", "basic-auth", "--backend-store-uri",
         f"sqlite:///{tmp_path}/mlflow.db", "--artifacts-destination", f"{tmp_path}/artifacts", "--host", "127.0.0.1",
         "--port", str(port), "--workers", "1"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    uri = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{uri}/health", 90, any_status=True)
        for user in (None, ("admin", "wrong")):
            monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
            monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD", raising=False)
            if user:
                monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", user[0])
                monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", user[1])
            with pytest.raises(MlflowException, match=r"401|Unauthorized|credentials"):
                MlflowClient(uri).search_experiments()
        # regbench's store with only the environment's credentials. Not a whole `regbench train`: the server checks
        # the password hash on every request (≈ 2 s each under load), so a train run cost minutes.
        for key, value in {"MLFLOW_TRACKING_URI": uri, "MLFLOW_TRACKING_USERNAME": "admin",
                           "MLFLOW_TRACKING_PASSWORD": "s3cret-Passw0rd"}.items():  # fmt: skip
            monkeypatch.setenv(key, value)
        run_id = store.record_run("auth", "probe", {}, None, "FINISHED")
        assert MlflowClient(uri).get_run(run_id).info.status == "FINISHED"
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
