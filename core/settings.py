"""Heron's configuration: environment variables prefixed ``HERON_``, read once at start-up."""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.errors import ConfigurationError

REPO_ROOT = Path(__file__).resolve().parent.parent
ROLES = ("annotator", "reviewer", "admin")
SECRET_SETTINGS = {"api_keys", "openai_api_key"}
URL_SETTINGS = {"database_url", "broker_url", "llm_base_url"}


class Settings(BaseSettings):
    """Every knob Heron has. Each field ``x`` is set by the variable ``HERON_X``.

    The extraction lane rule: documents are read in child processes, never in a worker. The fast
    lane has ``worker_threads + 1`` processes (no thread waits for one) and gives a document
    ``extraction_fast_seconds``; a document still being read then is read again, with the whole
    ``extraction_timeout_seconds``, by one of ``slow_lane_processes`` lower-priority processes with
    their own threads. Every process is limited to ``extraction_max_memory_mb`` of address space.
    """

    model_config = SettingsConfigDict(env_prefix="HERON_", extra="ignore", frozen=True)

    data_dir: Path = Field(Path("var"), description="Runtime state: SQLite file, uploads, logs.")
    database_url: str = Field("", description="SQLAlchemy URL; empty = SQLite in DATA_DIR.")
    broker_url: str = Field("", description="Empty = in-process queue; redis:// or amqp://.")
    starter_dir: Path = Field(REPO_ROOT / "data", description="Shipped starter corpus.")
    cache_dir: Path | None = Field(None, description="Recomputable caches; default DATA_DIR/cache.")
    api_host: str = "127.0.0.1"
    api_port: int = Field(8000, ge=1, le=65535)
    ui_port: int = Field(8501, ge=1, le=65535)
    max_upload_mb: int = Field(25, ge=1, le=4096)
    # Extraction limits: one document's share of the machine. Runtime.extraction_limits hands them
    # to core.extract; a document over a limit ends FAILED with ``limit_exceeded`` (or a warning).
    max_pages: int = Field(500, ge=1, description="Pages, slides, sheets or TIFF pages per document.")
    max_ocr_pages: int = Field(50, ge=0, description="Pages OCR'd per document; more are skipped.")
    max_text_chars: int = Field(1_000_000, ge=1000, description="Characters of text kept per document.")
    extraction_timeout_seconds: int = Field(
        120, ge=1, le=3600, description="Wall time to extract one document; keep it below JOB_LEASE_SECONDS."
    )
    extraction_max_memory_mb: int = Field(
        1024,
        ge=128,
        le=65_536,
        description="Address space of each extraction process (RLIMIT_AS); a parse beyond it fails "
        "with limit_exceeded.",
    )
    # The lane rule: documents are read in child processes. Each worker thread has its own fast-lane
    # process (worker_threads + 1, the +1 for people re-reading a document in the API or console),
    # so no thread ever waits for one. A document still being read after EXTRACTION_FAST_SECONDS is
    # stopped there and read again, with the whole timeout, by one of SLOW_LANE_PROCESSES processes
    # running at a lower CPU priority, so a slow document never holds a worker thread for longer.
    extraction_fast_seconds: float = Field(
        3.0,
        gt=0,
        le=3600,
        description="Time a document may take in the fast lane before it moves to the slow one.",
    )
    slow_lane_processes: int = Field(2, ge=1, le=64, description="Extraction processes of the slow lane.")
    max_image_pixels: int = Field(90_000_000, ge=1_000_000, description="Larger images are refused as bombs.")
    ocr_processes: int = Field(2, ge=1, le=64, description="Tesseract processes per worker process.")
    ocr_language: str = Field("eng", pattern=r"^[A-Za-z_]+(\+[A-Za-z_]+)*$", description="e.g. eng+deu.")
    zip_max_members: int = Field(1000, ge=1, description="Members of a ZIP, nested ZIPs included.")
    zip_max_total_mb: int = Field(512, ge=1, description="Uncompressed size of a ZIP or an Office file.")
    zip_max_ratio: int = Field(100, ge=2, description="Member compression ratio above which it is a bomb.")
    max_nesting_depth: int = Field(2, ge=1, le=10, description="Containers (ZIP, e-mail) inside containers.")
    originals_dir: Path | None = Field(
        None,
        description="Where uploaded originals are kept (default: DATA_DIR/blobs); a directory every "
        "API and worker machine mounts (NFS, EFS …) when they run on several machines.",
    )
    worker_threads: int = Field(2, ge=1, le=64)
    torch_threads: int = Field(
        0, ge=0, le=256, description="Transformer threads per process (0: every core)."
    )
    encoder_backend: Literal["auto", "openvino", "onnx", "torch"] = Field(
        "auto",
        description="What runs MiniLM: OpenVINO (auto, when installed; bf16 where the CPU has it), "
        "ONNX Runtime int8 (faster on CPUs without bf16, vectors a little further from fp32) or torch.",
    )
    worker_batch_size: int = Field(
        16, ge=1, le=256, description="Waiting jobs a worker classifies together (one transformer batch)."
    )
    job_lease_seconds: int = Field(300, ge=5, description="A PROCESSING job older than this is retried.")
    max_attempts: int = Field(3, ge=1, le=20)
    escalation_threshold: float = Field(
        0.55, ge=0.0, le=1.01, description="Fast-tier confidence below which the transformer tier decides."
    )
    escalation_share: float = Field(
        0.18,
        ge=0.0,
        le=1.0,
        description=(
            "Share of documents like the people's own labelled ones that the transformer tier decides at"
            " least, however sure the fast tier grows of them (0: the threshold alone)."
        ),
    )
    review_threshold: float = Field(
        0.5, ge=0.0, le=1.0, description="Final confidence below which a person reviews."
    )
    review_margin: float = Field(
        0.1, ge=0.0, le=1.0, description="Top-two score gap below which a person reviews."
    )
    openai_api_key: str = Field(
        "", validation_alias=AliasChoices("OPENAI_API_KEY", "HERON_OPENAI_API_KEY"), repr=False
    )
    llm_base_url: str = Field("", description="OpenAI-compatible server, e.g. http://localhost:11434/v1.")
    llm_model: str = "gpt-4o-mini"
    llm_timeout_seconds: float = Field(60.0, gt=0, le=600, description="Per LLM request.")
    llm_concurrency: int = Field(4, ge=1, le=64, description="LLM requests in flight per synthesis task.")
    llm_requests_per_minute: int = Field(60, ge=1, le=100_000)
    llm_max_retries: int = Field(5, ge=0, le=20, description="On 429, 5xx and timeouts, with backoff.")
    llm_backoff_seconds: float = Field(
        1.0, ge=0, le=60, description="First retry delay; doubles per retry (a Retry-After header wins)."
    )
    synthetic_needs_approval: bool = Field(
        True, description="Synthetic documents wait for a reviewer before they train (False: train at once)."
    )
    synthetic_min_chars: int = Field(200, ge=1, description="Shorter synthetic documents are discarded.")
    synthetic_max_chars: int = Field(12_000, ge=100, description="Longer synthetic documents are discarded.")
    review_claim_seconds: int = Field(300, ge=10, le=86_400, description="How long a review claim holds.")
    api_keys: str = Field("", repr=False, description="key:role pairs, comma-separated.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["text", "json"] = Field("text", description="json: one object a line, with job ids.")

    @field_validator("log_level", mode="before")
    @classmethod
    def _any_case(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value  # "debug" works too

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        if value and not re.match(r"(sqlite(\+pysqlite)?|postgresql(\+psycopg)?)://", value):
            raise ValueError("must be a sqlite:// or postgresql+psycopg:// URL")
        if value.startswith("sqlite") and (value.rstrip("/").endswith("sqlite:") or ":memory:" in value):
            # Each process (API, console, workers) would have a database of its own.
            raise ValueError("must name a database file (Heron's processes cannot share one in memory)")
        return value

    @field_validator("broker_url")
    @classmethod
    def _known_broker(cls, value: str) -> str:
        if value and not value.startswith(("redis://", "rediss://", "amqp://", "amqps://")):
            raise ValueError("must be empty (in-process), redis://… or amqp://…")
        return value

    @field_validator("api_keys")
    @classmethod
    def _valid_keys(cls, value: str) -> str:
        parse_api_keys(value)
        return value

    @field_validator("synthetic_max_chars")
    @classmethod
    def _above_the_minimum(cls, value: int, info: ValidationInfo) -> int:
        minimum = info.data.get("synthetic_min_chars")
        if minimum is not None and value <= minimum:
            raise ValueError(f"must be above HERON_SYNTHETIC_MIN_CHARS ({minimum})")
        return value

    @model_validator(mode="after")
    def _absolute_paths(self) -> Settings:
        object.__setattr__(self, "data_dir", self.data_dir.expanduser().resolve())
        object.__setattr__(self, "starter_dir", self.starter_dir.expanduser().resolve())
        return self

    @property
    def effective_database_url(self) -> str:
        if self.database_url.startswith("postgresql://"):  # the driver Heron ships (psycopg 3)
            return "postgresql+psycopg://" + self.database_url.removeprefix("postgresql://")
        return self.database_url or f"sqlite:///{self.data_dir / 'heron.db'}"

    @property
    def embedding_cache_dir(self) -> Path:
        return (self.cache_dir or self.data_dir / "cache") / "embeddings"

    @property
    def static_cache_dir(self) -> Path:
        """Where MiniLM's distilled word vectors (the fast tier's, ~45 MB) are kept once built."""
        return (self.cache_dir or self.data_dir / "cache") / "static"

    @property
    def blob_dir(self) -> Path:
        return (self.originals_dir or self.data_dir / "blobs").expanduser().resolve()

    @property
    def max_upload_bytes(self) -> int:
        return self.max_upload_mb * 1024 * 1024

    @property
    def llm_configured(self) -> bool:
        """An LLM is usable: a hosted key, or a local OpenAI-compatible server's URL."""
        return bool(self.openai_api_key or self.llm_base_url)

    @property
    def in_process_broker(self) -> bool:
        return not self.broker_url

    @property
    def roles_by_key(self) -> dict[str, str]:
        return parse_api_keys(self.api_keys)


def parse_api_keys(value: str) -> dict[str, str]:
    """Parse ``key:role,key:role`` into a mapping, rejecting unknown roles."""
    keys: dict[str, str] = {}
    for pair in filter(None, (part.strip() for part in value.split(","))):
        key, sep, role = pair.rpartition(":")
        if not sep or not key or role not in ROLES:
            raise ValueError(f"each entry must be key:role with role one of {', '.join(ROLES)}")
        keys[key] = role
    return keys


def _shown(field: str, value: object) -> str:
    """The rejected value, for the error message: never a key, and URLs without their password
    (the message goes to stderr, which log collectors keep)."""
    if field in SECRET_SETTINGS:
        return " (the value is not shown: it is a secret)"
    text = repr(value)
    if field in URL_SETTINGS:
        text = re.sub(r"(//[^/@]*?:)[^/@]*@", r"\1***@", text)
    return f" (got {text})"


def load_settings(**overrides: object) -> Settings:
    """Build settings from the environment (and overrides), or fail with a readable sentence."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            field = str(error["loc"][0]).lower().removeprefix("heron_") if error["loc"] else "settings"
            variable = "OPENAI_API_KEY" if field == "openai_api_key" else f"HERON_{field.upper()}"
            reason = error["msg"].removeprefix("Value error, ")
            shown = _shown(field, error.get("input"))
            problems.append(f"{variable}: {reason[:1].lower()}{reason[1:]}{shown}")
        raise ConfigurationError("Invalid configuration: " + "; ".join(problems) + ".") from None


@functools.cache
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return load_settings()
