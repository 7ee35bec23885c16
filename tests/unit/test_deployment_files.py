"""The deployment files (docker-compose.yml, Procfile) name commands and settings that exist: no
Docker engine runs on our build machines, so this is what keeps them from drifting from the code."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

from cli.main import _parser
from core.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def _heron_commands() -> list[list[str]]:
    commands = [
        shlex.split(line.split(":", 1)[1]) for line in (ROOT / "Procfile").read_text().splitlines() if line
    ]
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    for service in compose["services"].values():
        command = service.get("command")
        if isinstance(command, list) and command[:2] == ["sh", "-c"]:
            commands += [shlex.split(part) for part in command[2].split("&&")]
        elif command:
            commands.append(list(command))
    return [command for command in commands if command and command[0] == "heron"]


@pytest.mark.parametrize("command", _heron_commands(), ids=" ".join)
def test_every_heron_command_of_the_deployment_files_parses(command: list[str]) -> None:
    _parser().parse_args(command[1:])  # exits (SystemExit) on an unknown command or option


def test_every_heron_setting_the_compose_file_sets_is_a_setting() -> None:
    named = set(re.findall(r"^\s+(HERON_[A-Z0-9_]+):", (ROOT / "docker-compose.yml").read_text(), re.M))
    known = {f"HERON_{name.upper()}" for name in Settings.model_fields}
    assert named and named <= known, named - known
