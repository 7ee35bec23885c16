"""The ``heron`` command: start the services, or classify, evaluate and train from a shell."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from core.errors import ConfigurationError, HeronError
from core.settings import Settings, get_settings

log = logging.getLogger("heron")
REPO_ROOT = Path(__file__).resolve().parent.parent


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        settings = get_settings()
    except ConfigurationError as error:
        print(f"heron: {error.message}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    os.environ.setdefault("OMP_THREAD_LIMIT", "1")
    try:
        return int(args.handler(settings, args) or 0)
    except HeronError as error:
        print(json.dumps({"error": error.as_dict()}), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="heron", description=__doc__)
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    def command(name: str, handler, help_text: str) -> argparse.ArgumentParser:  # type: ignore[no-untyped-def]
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(handler=handler)
        return sub

    command("up", cmd_up, "Start the API and the console (and workers for an external broker).")
    command("api", cmd_api, "Serve the HTTP API on HERON_API_HOST:HERON_API_PORT.")
    command("ui", cmd_ui, "Serve the Streamlit console on HERON_UI_PORT.")
    worker = command("worker", cmd_worker, "Run background workers.")
    worker.add_argument("--processes", type=int, default=1)
    command("migrate", cmd_migrate, "Bring the database schema up to date.")
    classify = command("classify", cmd_classify, "Classify files (one JSON object per line).")
    classify.add_argument("paths", nargs="+", type=Path)
    train = command("train", cmd_train, "Train a new model version from all stored data.")
    train.add_argument("--full", action="store_true", help="Full retrain (the default today).")
    return parser


def _runtime(settings: Settings):  # type: ignore[no-untyped-def]
    from core.runtime import open_runtime

    return open_runtime(settings)


def cmd_migrate(settings: Settings, _: argparse.Namespace) -> int:
    from core.db import current_revision, make_engine, migrate

    engine = make_engine(settings.effective_database_url)
    migrate(engine)
    print(f"database at revision {current_revision(engine)}")
    return 0


def cmd_api(settings: Settings, _: argparse.Namespace) -> int:
    import uvicorn

    from api.app import create_app

    _runtime(settings).close()  # migrate and train the starter model before binding the port
    uvicorn.run(
        create_app(settings),
        host=settings.api_host,
        port=settings.api_port,
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=10,
    )
    return 0


def cmd_ui(settings: Settings, _: argparse.Namespace) -> int:
    _runtime(settings).close()
    return subprocess.call(_streamlit_command(settings))


def _streamlit_command(settings: Settings) -> list[str]:
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(REPO_ROOT / "ui" / "app.py"),
        "--server.port",
        str(settings.ui_port),
        "--server.address",
        settings.api_host,
        "--server.headless",
        "true",
        "--server.maxUploadSize",
        str(settings.max_upload_mb),
        "--browser.gatherUsageStats",
        "false",
        "--server.fileWatcherType",
        "none",
    ]


def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    _runtime(settings).close()
    if settings.in_process_broker:
        from workers import dispatch

        log.warning(
            "HERON_BROKER_URL is empty: `heron api` and `heron ui` run their own workers. This "
            "worker only picks up jobs whose process died (set redis:// or amqp:// to scale out)."
        )
        runtime = _runtime(settings)
        dispatch.start(runtime, run_worker=True, sweep=True)
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
        dispatch.stop()
        return 0
    return subprocess.call(
        [
            sys.executable,
            "-m",
            "dramatiq",
            "workers.entry",
            "--processes",
            str(args.processes),
            "--threads",
            str(settings.worker_threads),
        ]
    )


def cmd_up(settings: Settings, args: argparse.Namespace) -> int:
    _runtime(settings).close()
    children = [subprocess.Popen(_streamlit_command(settings))]
    if not settings.in_process_broker:
        children.append(subprocess.Popen([sys.executable, "-m", "cli.main", "worker"]))
    print(
        f"Heron is up: API http://{settings.api_host}:{settings.api_port} "
        f"(docs at /docs), console http://{settings.api_host}:{settings.ui_port}. Ctrl-C stops.",
        flush=True,
    )
    try:
        return cmd_api(settings, args)
    finally:
        for child in children:
            child.terminate()
        for child in children:
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()


def cmd_classify(settings: Settings, args: argparse.Namespace) -> int:
    from core.db import session_scope
    from core.services.documents import submit_upload
    from core.services.jobs import get_job, process_job

    runtime = _runtime(settings)
    failures = 0
    for path in _files(args.paths):
        try:
            with open(path, "rb") as handle:
                job = submit_upload(
                    engine=runtime.engine,
                    blobs=runtime.blobs,
                    chunks=iter(lambda handle=handle: handle.read(1 << 20), b""),
                    filename=path.name,
                    max_bytes=settings.max_upload_bytes,
                    submitted_by="cli",
                )
            process_job(
                engine=runtime.engine,
                blobs=runtime.blobs,
                models=runtime.models,
                job_id=job.id,
                policy=runtime.policy,
                lease_seconds=settings.job_lease_seconds,
                max_attempts=1,
            )
            with session_scope(runtime.engine) as session:
                view = get_job(session=session, job_id=job.id)
            if view.error_code:
                line = {"path": str(path), "error": {"code": view.error_code, "message": view.error_message}}
            else:
                line = {
                    "path": str(path),
                    "label": view.classification_result,
                    "confidence": view.confidence,
                    "tier": view.tier,
                    "escalated": view.escalated,
                    "needs_review": view.needs_review,
                }
        except HeronError as error:
            line = {"path": str(path), "error": error.as_dict()}
        except OSError as error:
            line = {"path": str(path), "error": {"code": "unreadable", "message": str(error)}}
        failures += "error" in line
        print(json.dumps(line), flush=True)
    runtime.close()
    return 1 if failures else 0


def _files(paths: Sequence[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file())
        else:
            yield path


def cmd_train(settings: Settings, _: argparse.Namespace) -> int:
    from core.services.training import train_full

    runtime = _runtime(settings)
    started = time.perf_counter()
    outcome = train_full(engine=runtime.engine, policy=runtime.policy, actor="cli")
    print(
        json.dumps(
            {
                "version_id": outcome.version_id,
                "activated": outcome.activated,
                "reason": outcome.reason,
                "metrics": outcome.metrics,
                "seconds": round(time.perf_counter() - started, 2),
            }
        )
    )
    runtime.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
