from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from core.errors import ConfigurationError
from core.settings import load_settings


def test_defaults_put_all_state_under_the_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given no HERON_* variables but the data dir
    monkeypatch.setenv("HERON_DATA_DIR", str(tmp_path / "state"))
    # When settings load
    settings = load_settings()
    # Then the embedded defaults apply and everything lives under the data dir
    assert settings.effective_database_url == f"sqlite:///{tmp_path / 'state' / 'heron.db'}"
    assert settings.blob_dir == tmp_path / "state" / "blobs"
    assert settings.in_process_broker
    assert (settings.api_port, settings.ui_port, settings.max_upload_mb) == (8000, 8501, 25)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("HERON_MAX_UPLOAD_MB", "lots"),
        ("HERON_MAX_UPLOAD_MB", "0"),
        ("HERON_API_PORT", "70000"),
        ("HERON_BROKER_URL", "ftp://example"),
        ("HERON_DATABASE_URL", "mysql://root@localhost/heron"),
        ("HERON_REVIEW_THRESHOLD", "1.5"),
        ("HERON_DATABASE_URL", "sqlitefoo://x"),
        ("HERON_DATABASE_URL", "sqlite:///:memory:"),
    ],
)
def test_invalid_values_fail_naming_the_variable(
    variable: str, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError) as caught:
        load_settings()
    assert variable in caught.value.message
    assert repr(value) in caught.value.message


@pytest.mark.parametrize(
    ("variable", "value", "shown"),
    [
        ("HERON_API_KEYS", "Top-Secret-Admin-Key:admin,rev2:Reviewer", None),
        ("OPENAI_API_KEY", 12, None),
        ("HERON_DATABASE_URL", "mysql://admin:S3cretDbPass@db/heron", "'mysql://admin:***@db/heron'"),
        ("HERON_BROKER_URL", "redis//:S3cretRedisPass@redis:6379", "'redis//:***@redis:6379'"),
    ],
)
def test_a_refused_setting_never_shows_a_secret(
    variable: str, value: object, shown: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a bad value holding a key or a password (the message goes to stderr, and on to logs)
    if variable == "OPENAI_API_KEY":
        with pytest.raises(ConfigurationError) as caught:
            load_settings(openai_api_key=value)
    else:
        monkeypatch.setenv(variable, str(value))
        with pytest.raises(ConfigurationError) as caught:
            load_settings()
    # Then the message names the variable, shows what it safely can, and no secret
    message = caught.value.message
    assert variable in message
    for secret in ("Top-Secret", "S3cret", "12"):
        assert secret not in message
    if shown:
        assert shown in message


def test_api_keys_map_to_roles(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HERON_API_KEYS", "k1:annotator, k2:admin")
    assert load_settings().roles_by_key == {"k1": "annotator", "k2": "admin"}


def test_the_cli_refuses_to_start_with_a_readable_sentence(tmp_path: Path) -> None:
    # Given a bad value in the environment, when any heron command starts
    result = subprocess.run(
        [sys.executable, "-m", "cli.main", "migrate"],
        env={"HERON_DATA_DIR": str(tmp_path), "HERON_API_PORT": "eighty", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    # Then it exits with status 2 and names the variable, without a traceback
    assert result.returncode == 2
    assert "HERON_API_PORT" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("HERON_DATABASE_URL", "postgresql+psycopg://heron@127.0.0.1:1/heron", "cannot be used: connection"),
        ("HERON_DATA_DIR", "/proc/heron-nowhere", "HERON_DATA_DIR"),
    ],
)
def test_a_machine_that_refuses_heron_gets_one_line_not_a_traceback(
    variable: str, value: str, says: str, tmp_path: Path
) -> None:
    # Given a database that does not answer, or a data directory that cannot be made
    env = {"HERON_DATA_DIR": str(tmp_path), variable: value, "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-m", "cli.main", "migrate"],
        env=env,
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    # Then the command fails with one line that says what to fix (it printed 125 lines of traceback)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    error = json.loads(result.stderr.strip().splitlines()[-1])["error"]
    assert error["code"] == "unavailable" and says in error["message"], error


def test_a_log_level_may_be_written_in_any_case(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HERON_LOG_LEVEL", "debug")
    assert load_settings().log_level == "DEBUG"
