"""`pip install ./clients/python` into a fresh venv (nothing else but grpcio and protobuf),
then run the example and the client checks there against a real gateway process."""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers.processes import REPO, GatewayProcess

CLIENT = REPO / "clients" / "python"
ALLOWED = {"tradetrust-chat-client", "grpcio", "protobuf", "typing-extensions", "pip", "setuptools"}

CHECK_SCRIPT = "fresh_venv_check.py"

pytestmark = pytest.mark.slow


def _run(
    args: list[str],
    timeout: float,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        args, capture_output=True, text=True, timeout=timeout, check=False, env=env, cwd=cwd
    )
    assert result.returncode == 0, f"{args} failed:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="session")
def client_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The interpreter of a fresh venv with only the client package (and its deps)."""
    venv = tmp_path_factory.mktemp("client-only") / "venv"
    started = time.monotonic()
    _run([sys.executable, "-m", "venv", str(venv)], timeout=120)
    python = venv / "bin" / "python"
    pins = [f"{d}=={importlib.metadata.version(d)}" for d in ("grpcio", "protobuf")]
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    _run([*pip, *pins], timeout=600)
    # --no-deps: the pins above are the dependencies; nothing else may sneak in.
    _run([*pip, "--no-deps", str(CLIENT)], timeout=600)
    sys.stderr.write(f"\nclient-only venv ready in {time.monotonic() - started:.1f}s\n")
    return python


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return {**env, **extra}


def test_only_the_client_and_its_dependencies_are_installed(client_python: Path) -> None:
    listed = _run(
        [str(client_python), "-m", "pip", "list", "--format=json", "--disable-pip-version-check"],
        timeout=60,
    )
    names = {p["name"].lower().replace("_", "-") for p in json.loads(listed.stdout)}
    assert "tradetrust-chat-client" in names
    assert names <= ALLOWED, f"unexpected packages: {names - ALLOWED}"


def test_example_places_an_order(client_python: Path, gateway_proc: GatewayProcess) -> None:
    env = _clean_env(CHAT_GATEWAY_ADDR=gateway_proc.addr)
    first = _run(
        [str(client_python), str(CLIENT / "examples" / "place_order.py"), "ord-example-1"],
        timeout=60,
        env=env,
        cwd=client_python.parent,
    )
    assert "order ord-example-1: channel messaging:order-ord-example-1 created=True" in first.stdout
    assert "ensured again: created=False" in first.stdout
    assert "buyer-42 allowed=True role=buyer" in first.stdout
    # Running it again for the same order is idempotent.
    second = _run(
        [str(client_python), str(CLIENT / "examples" / "place_order.py"), "ord-example-1"],
        timeout=60,
        env=env,
        cwd=client_python.parent,
    )
    assert "created=False" in second.stdout.splitlines()[0]


def test_order_life_example(client_python: Path, gateway_proc: GatewayProcess) -> None:
    result = _run(
        [str(client_python), str(CLIENT / "examples" / "order_life.py"), "ord-example-life"],
        timeout=60,
        env=_clean_env(CHAT_GATEWAY_ADDR=gateway_proc.addr),
        cwd=client_python.parent,
    )
    assert result.stdout.splitlines() == [
        "order ord-example-life: disputed, agents ['sue-1']",
        "refused: agent.user_id",
        "order ord-example-life: closed",
        "  created by order-service reason=''",
        "  dispute_opened by support-tool agent=sue-1 reason='item not as described'",
        "  closed by order-service reason='refunded'",
        result.stdout.splitlines()[-1],
    ]
    assert re.fullmatch(
        r"buyer-42 tokens issued before \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00 revoked",
        result.stdout.splitlines()[-1],
    )


def test_example_reports_a_gateway_error(client_python: Path, gateway_proc: GatewayProcess) -> None:
    env = _clean_env(CHAT_GATEWAY_ADDR=gateway_proc.addr, ORDER_SERVICE_KEY="dev-web-backend-key")
    result = subprocess.run(
        [str(client_python), str(CLIENT / "examples" / "place_order.py")],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=client_python.parent,
        check=False,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "gateway error PERMISSION_DENIED" in result.stderr


def test_client_checks_pass_in_the_fresh_venv(
    client_python: Path, gateway_proc: GatewayProcess
) -> None:
    result = _run(
        [
            str(client_python),
            str(Path(__file__).with_name("fresh_venv_check.py")),
            gateway_proc.addr,
        ],
        timeout=120,
        env=_clean_env(),
        cwd=client_python.parent,
    )
    assert "fresh-venv client checks passed" in result.stdout
