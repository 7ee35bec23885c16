"""The ``heron`` command: start the services, or classify, evaluate and train from a shell."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

from alembic.util import CommandError as AlembicError
from sqlalchemy.exc import DatabaseError, DBAPIError, InterfaceError, OperationalError

from cli.progress import Progress
from core.errors import ConfigurationError, Conflict, HeronError
from core.logs import configure_logging
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
    configure_logging(settings.log_level, settings.log_format)
    try:
        return int(args.handler(settings, args) or 0)
    except HeronError as error:
        print(json.dumps({"error": error.as_dict()}), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except (DBAPIError, AlembicError, OSError) as error:
        if not _refused_by_the_machine(error):
            raise  # a bug: its traceback is what someone needs
        # What the machine refused (a database not there, a directory not writable): one line an
        # operator can act on, not a traceback of a hundred lines (kept in the debug log).
        log.debug("refused", exc_info=True)
        print(json.dumps({"error": {"code": "unavailable", "message": _refusal(error)}}), file=sys.stderr)
        return 1


def _refused_by_the_machine(error: Exception) -> bool:
    """A database that cannot be reached or read, a schema Heron does not know, or a path the
    system refused, as opposed to a bug (an IntegrityError, a closed pipe)."""
    if isinstance(error, OSError):
        return error.filename is not None and not isinstance(error, BrokenPipeError)
    return isinstance(error, OperationalError | InterfaceError | AlembicError) or type(error) is DatabaseError


def _refusal(error: Exception) -> str:
    if isinstance(error, DBAPIError):
        reason = str(error.orig).strip().splitlines()[0] if error.orig else type(error).__name__
        return f"The database (HERON_DATABASE_URL, or heron.db in HERON_DATA_DIR) cannot be used: {reason}"
    if isinstance(error, AlembicError):
        return (
            f"The database's schema is not one this Heron knows ({error}): it was made by another "
            "version of Heron, or changed by hand."
        )
    where = f" ({error.filename})" if isinstance(error, OSError) and error.filename else ""
    return f"{error.strerror or error}{where}: check HERON_DATA_DIR, HERON_ORIGINALS_DIR, HERON_STARTER_DIR."


def _at_least_one(value: str) -> int:
    """An argument that counts something there must be at least one of."""
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {number}")
    return number


def _row_id(value: str) -> int:
    """A row's id, as the database can hold it (from 1 to MAX_ROW_ID)."""
    from core.services import MAX_ROW_ID

    number = _at_least_one(value)
    if number > MAX_ROW_ID:
        raise argparse.ArgumentTypeError(f"no row has an id above {MAX_ROW_ID}, not {number}")
    return number


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
    worker.add_argument("--processes", type=_at_least_one, default=1, help="worker processes (default 1)")
    command("migrate", cmd_migrate, "Bring the database schema up to date.")
    command(
        "prepare",
        cmd_prepare,
        "Migrate, train the starter model if none is active, build the caches, fill in what an "
        "upgrade left out.",
    )
    classify = command("classify", cmd_classify, "Classify files (one JSON object per line).")
    classify.add_argument("paths", nargs="+", type=Path)
    train = command("train", cmd_train, "Update the model with new training data (incrementally).")
    train.add_argument("--full", action="store_true", help="Retrain from all stored data instead.")
    evaluate = command("eval", cmd_eval, "Score the active model on DIR/<label>/<file> (never trains on it).")
    evaluate.add_argument("directory", type=Path)
    evaluate.add_argument("--json", action="store_true", help="One JSON object on one line.")
    importing = command("import", cmd_import, "Add DIR/<label>/<file> as training data and train.")
    importing.add_argument("directory", type=Path)
    importing.add_argument("--replace", action="store_true", help="Retire industries DIR does not name.")
    industries = command("industries", cmd_industries, "List industries, or add one.")
    industries_commands = industries.add_subparsers(dest="action", required=True)
    industries_commands.add_parser("list", help="Every industry with its examples counted by source.")
    add = industries_commands.add_parser(
        "add",
        help="Add an industry and train a version that knows it: from its description, then its examples.",
    )
    add.add_argument("name")
    add.add_argument("--description", default="", help="What its documents are about (drives zero-shot).")
    add.add_argument("--examples", type=Path, metavar="DIR", help="Example documents of it (any format).")
    add.add_argument("--synthetic", type=int, default=0, metavar="N", help="Also write N synthetic ones.")
    restore = industries_commands.add_parser(
        "restore", help="Predict a retired industry again, with the examples it kept, and train."
    )
    restore.add_argument("name")
    synth = command("synth", cmd_synth, "Write N synthetic training documents of INDUSTRY with the LLM.")
    synth.add_argument("industry")
    synth.add_argument("count", type=int)
    models = command("models", cmd_models, "List model versions or activate one (rollback).")
    models_commands = models.add_subparsers(dest="action", required=True)
    models_commands.add_parser("list", help="Every version with its status and metrics.")
    activate = models_commands.add_parser("activate", help="Make version ID the active one.")
    activate.add_argument("version_id", type=_row_id)
    return parser


def _runtime(settings: Settings):  # type: ignore[no-untyped-def]
    from core.runtime import open_runtime

    return open_runtime(settings)


def cmd_migrate(settings: Settings, _: argparse.Namespace) -> int:
    from core.runtime import migrate_database

    print(f"database at revision {migrate_database(settings)}")
    return 0


def cmd_prepare(settings: Settings, _: argparse.Namespace) -> int:
    runtime = _runtime(settings)
    # MiniLM's distilled word vectors and its OpenVINO network are built here, once per data
    # directory: the only steps that need torch, which then never loads in a serving process.
    runtime.encoder.static(["warm-up"])
    runtime.encoder.embed(["warm-up"])
    # Documents classified before their vectors and evidence were kept (an upgrade) get them now.
    from core.services.backfill import backfill_annotation

    def progress(done: int) -> None:
        if done % 1024 == 0:  # a large database takes minutes: say it is moving
            print(f"backfilling evidence and vectors: {done} answers so far", flush=True)

    filled = backfill_annotation(engine=runtime.engine, models=runtime.models, on_progress=progress)
    if filled:
        print(f"gave {filled} earlier answers their evidence and documents their vectors")
    runtime.close()
    return 0


def _prepare(settings: Settings) -> None:
    """Run `heron prepare` in a child process, so that what it loads (torch above all: ~400 MB)
    leaves with it instead of staying in the process that then serves for days; skipped when there
    is nothing to prepare (every start after the first)."""
    from core.runtime import is_prepared

    if is_prepared(settings):
        return
    done = subprocess.run([sys.executable, "-m", "cli.main", "prepare"], cwd=REPO_ROOT, check=False)
    if done.returncode:
        raise SystemExit(done.returncode)


def cmd_api(settings: Settings, _: argparse.Namespace, *, prepared: bool = False) -> int:
    import uvicorn

    from api.app import create_app

    if not prepared:
        _prepare(settings)  # migrate and train the starter model before binding the port
    host = settings.api_host
    if not settings.roles_by_key and host not in ("127.0.0.1", "localhost", "::1"):
        log.warning(
            "HERON_API_KEYS is empty, so every caller would be an admin: serving on 127.0.0.1 only "
            "instead of %s. Set HERON_API_KEYS (key:role pairs) to serve other machines.",
            host,
        )
        host = "127.0.0.1"
    elif not settings.roles_by_key:
        log.warning("HERON_API_KEYS is empty: the API serves local callers only, all with the admin role.")
    uvicorn.run(
        create_app(settings),
        host=host,
        port=settings.api_port,
        log_level=settings.log_level.lower(),
        log_config=None,  # uvicorn's loggers go through ours (JSON when HERON_LOG_FORMAT=json)
        timeout_graceful_shutdown=10,
    )
    return 0


def cmd_ui(settings: Settings, _: argparse.Namespace) -> int:
    _prepare(settings)
    command = _streamlit_command(settings)
    # Become Streamlit (exec), so a stop signal (docker stop, systemd, Ctrl-C) reaches it directly.
    os.execv(command[0], command)
    return 0  # not reached


def _streamlit_command(settings: Settings) -> list[str]:
    host = settings.api_host
    if not settings.roles_by_key and host not in ("127.0.0.1", "localhost", "::1"):
        # Without keys every console user is an admin, exactly as on the API: local only.
        log.warning("HERON_API_KEYS is empty: the console serves on 127.0.0.1 only, not on %s.", host)
        host = "127.0.0.1"
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(REPO_ROOT / "ui" / "app.py"),
        "--server.port",
        str(settings.ui_port),
        "--server.address",
        host,
        "--server.headless",
        "true",
        "--server.maxUploadSize",
        str(settings.max_upload_mb),
        "--browser.gatherUsageStats",
        "false",
        "--server.fileWatcherType",
        "none",
    ]


def worker_environment(
    settings: Settings, processes: int, environ: Mapping[str, str], cores: int
) -> dict[str, str]:
    """The environment of `heron worker --processes N` on a broker: N processes on one machine share
    its cores, for inference threads and worker threads alike, unless HERON_TORCH_THREADS or
    HERON_WORKER_THREADS say otherwise. Two worker threads in each of two processes on 2 cores cost
    17.3 ms of worker CPU a document against 12.6 with one (smaller batches, four drains contending
    for two cores): 51.6 against 61.1 docs/s for 8 polling clients (`bench_load.py --only scaled`)."""
    environment = dict(environ)
    # An idle Redis consumer waits to be woken by a send (workers.broker); between two waits it
    # sleeps up to this many ms (Dramatiq's default: 1000, which a steady trickle of uploads waited
    # out when consumers polled: p95 2 s at 20 docs/s, against 0.3 s). Also how often idle worker
    # threads look up.
    environment.setdefault("dramatiq_worker_timeout", "100")
    if not settings.torch_threads:
        environment["HERON_TORCH_THREADS"] = str(max(1, cores // processes))
    if "HERON_WORKER_THREADS" not in environ:
        environment["HERON_WORKER_THREADS"] = str(max(1, settings.worker_threads // processes))
    return environment


def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    _prepare(settings)
    if settings.in_process_broker:
        from workers import dispatch

        log.info(
            "in-process queue: this process runs the machine's workers and its MiniLM; `heron api` "
            "and `heron ui` started beside it send their work here (set HERON_BROKER_URL to "
            "redis:// or amqp:// to scale out to other machines)"
        )
        # Blocked before any thread starts (threads inherit it), so sigwait below receives them.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        runtime = _runtime(settings)
        dispatch.start(runtime, run_worker=True, sweep=True)
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
        dispatch.stop()
        return 0
    environment = worker_environment(settings, args.processes, os.environ, os.cpu_count() or 1)
    command = [
        sys.executable,
        "-m",
        "dramatiq",
        "workers.entry",
        "--processes",
        "1",
        "--threads",
        environment["HERON_WORKER_THREADS"],
    ]
    return supervise(command, environment, args.processes)


def supervise(command: list[str], environment: Mapping[str, str], processes: int) -> int:
    """Keep ``processes`` worker processes running (each a Dramatiq main with one worker process)
    until SIGINT or SIGTERM, which reaches each as SIGTERM: it finishes or gives back its jobs.

    One Dramatiq main with N worker processes stops them all when one dies (the OOM killer, a
    native crash), and nothing started them again: with `heron worker --processes 2` one killed
    process left the queue without workers. Here the others keep working and the dead one is
    replaced, at once, or after a pause doubling up to a minute while it keeps dying within
    30 s of starting (a setting it cannot start with).
    """
    # Handlers, not a blocked mask: Python runs them in this thread whichever thread the kernel
    # picks (native threads started at import have no mask), and a second signal while stopping
    # changes nothing. A handler does not survive exec: each child starts with the defaults.
    stopping = threading.Event()
    for stop_signal in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop_signal, lambda *_: stopping.set())

    with_parent = _stop_with_parent()

    def start() -> subprocess.Popen:
        # In a session of its own, so a terminal's Ctrl-C reaches it once, from here (Dramatiq kills
        # a worker process told to stop twice).
        return subprocess.Popen(
            command, env=dict(environment), start_new_session=True, preexec_fn=with_parent
        )

    children: list[subprocess.Popen | None] = [start() for _ in range(processes)]
    started = [time.monotonic()] * processes
    restart_at = [0.0] * processes
    quick_deaths = [0] * processes
    while not stopping.wait(1.0):
        now = time.monotonic()
        for slot, child in enumerate(children):
            if child is None:
                if now >= restart_at[slot]:
                    children[slot], started[slot] = start(), now
                continue
            code = child.poll()
            if code is None:
                continue
            quick_deaths[slot] = quick_deaths[slot] + 1 if now - started[slot] < 30 else 0
            pause = 0.0 if not quick_deaths[slot] else min(60.0, 2.0 ** quick_deaths[slot])
            log.error(
                "worker process %d exited unexpectedly (code %s); starting another in %.0f s",
                child.pid,
                code,
                pause,
            )
            children[slot], restart_at[slot] = None, now + pause
    running = [child for child in children if child is not None]
    for child in running:
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(signal.SIGTERM)
    for child in running:
        child.wait()
    return 0


def _stop_with_parent() -> Callable[[], None] | None:
    """What a child runs before exec to be told to stop (SIGTERM) if the supervisor dies, instead of
    running on unsupervised (Linux's PR_SET_PDEATHSIG). Loaded here, in the parent: between fork and
    exec the child may take no lock another thread could hold (an import would)."""
    try:
        import ctypes

        prctl = ctypes.CDLL("libc.so.6", use_errno=True).prctl
    except (OSError, AttributeError):  # not Linux
        return None
    return lambda: prctl(1, int(signal.SIGTERM))


def cmd_up(settings: Settings, args: argparse.Namespace) -> int:
    _prepare(settings)
    # One worker process (with the machine's one MiniLM): with the in-process queue the API and the
    # console send it their work (workers.doorbell), so it starts first.
    children = [subprocess.Popen([sys.executable, "-m", "cli.main", "worker"])]
    if settings.in_process_broker:
        _wait_for_workers(settings, children[0])
    children.append(subprocess.Popen(_streamlit_command(settings)))
    print(
        f"Heron is up: API http://{settings.api_host}:{settings.api_port} "
        f"(docs at /docs), console http://{settings.api_host}:{settings.ui_port}. Ctrl-C stops.",
        flush=True,
    )
    try:
        return cmd_api(settings, args, prepared=True)
    finally:
        for child in children:
            child.terminate()
        for child in children:
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()


def _wait_for_workers(settings: Settings, worker: subprocess.Popen, seconds: float = 600) -> None:
    from workers.doorbell import answers, socket_path

    deadline = time.monotonic() + seconds
    while not answers(socket_path(settings.data_dir)):
        if worker.poll() is not None or time.monotonic() > deadline:
            # The API then runs workers of its own: Heron still works, with two MiniLMs.
            log.warning("the worker process did not start listening; the API runs its own workers")
            return
        time.sleep(0.1)


def cmd_classify(settings: Settings, args: argparse.Namespace) -> int:
    runtime = _runtime(settings)
    failures = 0
    paths = list(_files(args.paths))
    progress = Progress("classifying files")
    for done, path in enumerate(paths, start=1):
        for line in _classify_file(runtime, path):
            failures += "error" in line
            print(json.dumps(line), flush=True)
        progress(done, len(paths))
    progress.close()
    runtime.close()
    return 1 if failures else 0


def _classify_file(runtime, path: Path) -> list[dict]:  # type: ignore[no-untyped-def]
    """One line per document: the file's, or for a ZIP one per member (``path`` names the member)."""
    from core.services.documents import run_unpack_task, submit_batch
    from core.services.jobs import get_job, process_job
    from core.services.tasks import get_task

    try:
        with open(path, "rb") as handle:
            submission = submit_batch(
                engine=runtime.engine,
                blobs=runtime.blobs,
                chunks=iter(lambda: handle.read(1 << 20), b""),
                filename=path.name,
                max_bytes=runtime.settings.max_upload_bytes,
                submitted_by="cli",
                limits=runtime.extraction_limits,
            )
    except HeronError as error:
        return [{"path": str(path), "error": error.as_dict()}]
    except OSError as error:
        return [{"path": str(path), "error": {"code": "unreadable", "message": str(error)}}]
    job_ids = [job.id for job in submission.jobs]
    skipped: list[dict] = []
    if submission.unpack_task_id:  # a ZIP: this command is its worker, so it unpacks it here
        job_ids = run_unpack_task(
            engine=runtime.engine,
            blobs=runtime.blobs,
            task_id=submission.unpack_task_id,
            limits=runtime.extraction_limits,
        )
        task = get_task(engine=runtime.engine, task_id=submission.unpack_task_id)
        if task.error_code:
            return [{"path": str(path), "error": {"code": task.error_code, "message": task.error_message}}]
        skipped = task.result.get("skipped", [])
    lines: list[dict] = []
    for job_id in job_ids:
        process_job(
            engine=runtime.engine,
            blobs=runtime.blobs,
            models=runtime.models,
            job_id=job_id,
            policy=runtime.policy,
            lease_seconds=runtime.settings.job_lease_seconds,
            max_attempts=1,
            limits=runtime.extraction_limits,
            extractor=runtime.extractor,
        )
        view = get_job(engine=runtime.engine, job_id=job_id)
        where = str(path) if submission.batch_id is None else f"{path}!{view.original_filename}"
        if view.error_code:
            lines.append({"path": where, "error": {"code": view.error_code, "message": view.error_message}})
        else:
            lines.append(
                {
                    "path": where,
                    "label": view.classification_result,
                    "confidence": view.confidence,
                    "tier": view.tier,
                    "escalated": view.escalated,
                    "needs_review": view.needs_review,
                }
            )
    for item in skipped:
        error = {"code": item["code"], "message": item["message"]}
        lines.append({"path": f"{path}!{item['filename']}", "error": error})
    return lines


def _files(paths: Sequence[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file())
        else:
            yield path


def cmd_train(settings: Settings, args: argparse.Namespace) -> int:
    from core.services.training import train_full, train_incremental

    runtime = _runtime(settings)
    started = time.perf_counter()
    outcome = (train_full if args.full else train_incremental)(
        engine=runtime.engine, policy=runtime.policy, encoder=runtime.training_encoder, actor="cli"
    )
    print(json.dumps({**_outcome(outcome), "seconds": round(time.perf_counter() - started, 2)}))
    runtime.close()
    return 0


def _outcome(outcome) -> dict:  # type: ignore[no-untyped-def]
    """A training run as the CLI prints it."""
    keys = ("version_id", "activated", "reason", "metrics")
    return {key: getattr(outcome, key) for key in keys}


def cmd_eval(settings: Settings, args: argparse.Namespace) -> int:
    from core.services.datasets import evaluate_directory

    runtime = _runtime(settings)
    progress = Progress("reading files")
    report = evaluate_directory(
        engine=runtime.engine,
        models=runtime.models,
        encoder=runtime.encoder,
        root=args.directory,
        policy=runtime.policy,
        limits=runtime.extraction_limits,
        on_progress=progress,
    )
    progress.close()
    runtime.close()
    if args.json:
        keys = (
            "n",
            "accuracy",
            "macro_f1",
            "per_class",
            "confusion",
            "escalation_rate",
            "review_rate",
            "docs_per_second",
            "errors",
            "ece",
        )
        print(json.dumps({key: report[key] for key in keys if key in report}))
        return 0
    print(
        f"{report['n']} documents: accuracy {report.get('accuracy', 0):.3f}, "
        f"macro-F1 {report.get('macro_f1', 0):.3f}, ECE {report.get('ece', 0):.3f}, "
        f"escalated {report.get('escalation_rate', 0):.0%}, review {report.get('review_rate', 0):.0%}, "
        f"{report['docs_per_second']:.1f} docs/s"
    )
    for label, scores in report.get("per_class", {}).items():
        print(
            f"  {label:<20} P {scores['precision']:.2f}  R {scores['recall']:.2f}  "
            f"F1 {scores['f1']:.2f}  n={scores['support']}"
        )
    for error in report["errors"]:
        print(f"  unreadable: {error['path']}: {error['code']}: {error['message']}")
    return 0


def cmd_import(settings: Settings, args: argparse.Namespace) -> int:
    from core.services.datasets import import_directory
    from core.services.training import TRAINING_STAGES, train_full

    runtime = _runtime(settings)
    progress = Progress("reading files")
    imported = import_directory(
        engine=runtime.engine,
        root=args.directory,
        limits=runtime.extraction_limits,
        replace=args.replace,
        actor="cli",
        on_progress=progress,
    )
    progress.close()
    if not (imported["added"] or imported["created"] or imported["retired"]):
        runtime.close()  # the same files again: nothing for a training run to learn
        print(json.dumps({**imported, "trained": False, "note": "nothing new to learn"}))
        return 0
    stages = Progress("training")
    try:
        outcome = train_full(
            engine=runtime.engine,
            policy=runtime.policy,
            encoder=runtime.training_encoder,
            actor="cli",
            on_progress=lambda done, stage: stages(done, TRAINING_STAGES, stage),
        )
    except Conflict as busy:  # the files are stored: only the training has to wait
        print(json.dumps({**imported, "trained": False}))
        note = f"{busy.message} The files were imported; run `heron train --full` once it has finished."
        print(json.dumps({"error": {"code": busy.code, "message": note}}), file=sys.stderr)
        return 1
    finally:
        stages.close()
        runtime.close()
    print(json.dumps({**imported, **_outcome(outcome)}))
    return 0


def cmd_industries(settings: Settings, args: argparse.Namespace) -> int:
    from core.services.industries import list_industries
    from core.services.taxonomy import add_industry, restore_industry
    from workers import dispatch

    runtime = _runtime(settings)
    try:
        if args.action == "list":
            for industry in list_industries(engine=runtime.engine):
                print(_json_line(industry))
            return 0
        if args.action == "restore":
            handle = dispatch.start(runtime)
            earlier = _training_task_ids(runtime)
            restored = restore_industry(engine=runtime.engine, work=runtime.work, name=args.name, actor="cli")
            line = {"industry": restored.industry.name, "status": restored.industry.status}
            print(json.dumps({**line, "training_task": restored.training_task.id}), flush=True)
            _follow(runtime, handle, [], earlier)
            return 0
        files = _example_files(args.examples) if args.examples else []
        handle = dispatch.start(runtime)
        earlier = _training_task_ids(runtime)
        added = add_industry(
            engine=runtime.engine,
            work=runtime.work,
            settings=runtime.settings,
            name=args.name,
            description=args.description,
            example_files=files,
            synthetic=args.synthetic,
            limits=runtime.extraction_limits,
            extractor=runtime.extractor if files else None,
            actor="cli",
        )
        synthesis, training = added.synthesis_task, added.training_task
        print(
            json.dumps(
                {
                    "industry": added.name,
                    "description": added.description,
                    "examples_added": added.examples_added,
                    "example_errors": added.example_errors,
                    "synthesis_task": synthesis.id if synthesis else None,
                    "training_task": training.id,
                }
            ),
            flush=True,
        )
        _follow(runtime, handle, [synthesis.id] if synthesis else [], earlier)
        return 0
    finally:
        dispatch.stop()
        runtime.close()


def cmd_synth(settings: Settings, args: argparse.Namespace) -> int:
    from core.services.synthesis import queue_synthesis
    from workers import dispatch

    runtime = _runtime(settings)
    try:
        handle = dispatch.start(runtime) if settings.llm_configured else None
        earlier = _training_task_ids(runtime)
        task = queue_synthesis(
            engine=runtime.engine,
            work=runtime.work,
            settings=runtime.settings,
            industry=args.industry,
            count=args.count,
            actor="cli",
        )
        if handle is None:
            print(json.dumps(_task_line(task)))
            return 1
        print(json.dumps({"synthesis_task": task.id, "industry": task.params["industry"]}), flush=True)
        endings = _follow(runtime, handle, [task.id], earlier)
        return 0 if endings[task.id].status == "SUCCEEDED" else 1
    finally:
        dispatch.stop()
        runtime.close()


def _example_files(directory: Path) -> list[tuple[str, bytes]]:
    from core.errors import Invalid

    if not directory.is_dir():
        raise Invalid(f"{str(directory)!r} is not a directory of example documents.")
    paths = sorted(
        p
        for p in directory.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(directory).parts)
    )
    if not paths:
        raise Invalid(f"{str(directory)!r} holds no example documents.")
    return [(p.relative_to(directory).as_posix(), p.read_bytes()) for p in paths]


def _training_task_ids(runtime) -> set[str]:  # type: ignore[no-untyped-def]
    from core.services.tasks import list_tasks

    return {task.id for task in list_tasks(engine=runtime.engine, kind="training", limit=1000)[0]}


def _follow(runtime, handle, task_ids: list[str], earlier_training: set[str]) -> dict:  # type: ignore[no-untyped-def]
    """With the in-process queue, run the queued work to its end here and print how each task ended
    (the synthesis task, then the training runs queued meanwhile); progress goes to stderr.

    An external broker's workers do the work instead: nothing to wait for here.
    """
    from dramatiq.errors import QueueJoinTimeout

    from core.services.tasks import cancel, get_task, list_tasks
    from workers.sender import TASK_QUEUE

    if not runtime.settings.in_process_broker:
        return {}
    try:
        while True:  # the synthesis task, then the training runs it queued on the same queue
            try:
                handle.broker.join(TASK_QUEUE, timeout=2000, fail_fast=False)
                break
            except QueueJoinTimeout:
                for task_id in task_ids:
                    view = get_task(engine=runtime.engine, task_id=task_id)
                    print(f"{view.kind} {view.status.lower()}: {view.stage}", file=sys.stderr)
    except KeyboardInterrupt:
        for task_id in task_ids:
            cancel(engine=runtime.engine, task_id=task_id, actor="cli")
        raise
    training = [t.id for t in list_tasks(engine=runtime.engine, kind="training", limit=1000)[0]]
    new_training = [task_id for task_id in reversed(training) if task_id not in earlier_training]
    endings = {
        task_id: get_task(engine=runtime.engine, task_id=task_id) for task_id in task_ids + new_training
    }
    for view in endings.values():
        print(json.dumps(_task_line(view)), flush=True)
    return endings


def _task_line(view) -> dict:  # type: ignore[no-untyped-def]
    line = {"task": view.id, "kind": view.kind, "status": view.status, "result": view.result}
    if view.error_code:
        line["error"] = {"code": view.error_code, "message": view.error_message}
    return line


def cmd_models(settings: Settings, args: argparse.Namespace) -> int:
    from core.services.models import activate_version, list_versions

    runtime = _runtime(settings)
    try:
        if args.action == "activate":
            activated = activate_version(engine=runtime.engine, version_id=args.version_id, actor="cli")
            print(
                json.dumps(
                    {
                        "activated": args.version_id,
                        "not_predicted": activated.not_predicted,
                        "newer_examples": activated.newer_examples,
                    }
                )
            )
            if activated.newer_examples:
                print(
                    f"note: v{args.version_id} never learned the {activated.newer_examples} approved "
                    "example(s) stored since it was trained; the next training run learns them again.",
                    file=sys.stderr,
                )
            if activated.not_predicted:
                missing = ", ".join(activated.not_predicted)
                print(
                    f"warning: v{args.version_id} never learned {missing}: it cannot answer them until "
                    "a training run learns them (heron train).",
                    file=sys.stderr,
                )
        else:
            for version in list_versions(engine=runtime.engine):
                print(_json_line(version))
    finally:
        runtime.close()
    return 0


def _json_line(view: object) -> str:
    """A view dataclass as one JSON line (times in ISO 8601, as the API writes them)."""
    import dataclasses

    return json.dumps(
        dataclasses.asdict(view),  # type: ignore[arg-type]
        default=lambda value: value.isoformat() if hasattr(value, "isoformat") else str(value),
    )


if __name__ == "__main__":
    sys.exit(main())
