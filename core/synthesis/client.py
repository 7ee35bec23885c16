"""The LLM behind synthesis: any OpenAI-compatible chat-completions endpoint (the hosted API, vLLM,
Ollama, llama.cpp …), with a requests-per-minute limit, retries with backoff on 429/5xx/timeouts
(honouring Retry-After), and a step down from JSON schema to JSON mode to plain text for servers
that refuse ``response_format``."""

from __future__ import annotations

import email.utils
import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import openai

from core.errors import LlmBadReply, LlmUnavailable
from core.settings import Settings

log = logging.getLogger(__name__)

MAX_RETRY_AFTER_SECONDS = 300.0
MAX_BACKOFF_SECONDS = 60.0
# Local servers accept any key; the client library insists on one.
PLACEHOLDER_KEY = "not-needed"


class Stopped(Exception):
    """The run was cancelled while this request waited (for the rate limit or a retry)."""


@dataclass(frozen=True)
class Completion:
    text: str
    prompt_tokens: int
    completion_tokens: int


_LIMITERS: dict[tuple[str, str, int], RateLimiter] = {}
_LIMITERS_LOCK = threading.Lock()


def shared_limiter(base_url: str, api_key: str, per_minute: int) -> RateLimiter:
    """The process's one limiter for an endpoint and key: synthesis runs side by side share the
    endpoint's requests per minute (each run had its own, and two runs sent twice the rate)."""
    with _LIMITERS_LOCK:
        key = (base_url, api_key, per_minute)
        if key not in _LIMITERS:
            _LIMITERS[key] = RateLimiter(per_minute)
        return _LIMITERS[key]


class RateLimiter:
    """At most ``per_minute`` request starts per minute, evenly spaced, shared by threads."""

    def __init__(self, per_minute: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = 60.0 / per_minute
        self._clock = clock
        self._lock = threading.Lock()
        self._next_at = 0.0

    def reserve(self) -> float:
        """Book the next free slot; returns how many seconds to wait for it."""
        with self._lock:
            now = self._clock()
            slot = max(now, self._next_at)
            self._next_at = slot + self.interval
            return slot - now


def retry_after_seconds(headers: Any, *, now: float | None = None) -> float | None:
    """The server's requested wait: ``retry-after-ms``, or ``Retry-After`` in seconds or as a date."""
    milliseconds = headers.get("retry-after-ms")
    if milliseconds:
        try:
            return max(float(milliseconds) / 1000, 0.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - (time.time() if now is None else now), 0.0)


def backoff_seconds(retry: int, base: float, *, jitter: float = 0.25) -> float:
    """Exponential backoff for the ``retry``-th retry (1, 2, …), with a little jitter."""
    delay = min(base * 2 ** (retry - 1), MAX_BACKOFF_SECONDS)
    return delay * (1 + random.uniform(-jitter, jitter))


class LlmClient:
    """Chat completions with Heron's retry, rate and format policy; safe to share between threads.

    ``stop`` ends waits early (rate limit, backoff) with ``Stopped``; a request already sent runs
    until it answers or times out, and ``close()`` aborts the connections under it.
    """

    def __init__(
        self,
        *,
        model: str,
        base_url: str = "",
        api_key: str = "",
        timeout: float = 60.0,
        max_retries: int = 5,
        requests_per_minute: int = 60,
        backoff: float = 1.0,
        stop: threading.Event | None = None,
    ) -> None:
        self.model = model
        self.where = base_url or "the OpenAI API"
        self.max_retries = max_retries
        self.backoff = backoff
        self.stop = stop or threading.Event()
        self._limiter = shared_limiter(base_url, api_key, requests_per_minute)
        self.timeout = timeout
        self._inflight: set[httpx.Client] = set()
        self._inflight_lock = threading.Lock()
        # Retries are ours (so they honour the limiter and stop), hence max_retries=0 here.
        self._client = openai.OpenAI(
            api_key=api_key or PLACEHOLDER_KEY,
            base_url=base_url or None,
            timeout=timeout,
            max_retries=0,
        )
        # How much of response_format the server accepts: 0 = as asked, 1 = JSON mode, 2 = none.
        self._format_level = 0
        self._format_lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings, *, stop: threading.Event | None = None) -> LlmClient:
        return cls(
            model=settings.llm_model,
            base_url=settings.llm_base_url,
            api_key=settings.openai_api_key,
            timeout=settings.llm_timeout_seconds,
            max_retries=settings.llm_max_retries,
            requests_per_minute=settings.llm_requests_per_minute,
            backoff=settings.llm_backoff_seconds,
            stop=stop,
        )

    def close(self) -> None:
        """Abort the requests in flight (a cancelled run) and close the connections."""
        with self._inflight_lock:
            inflight = list(self._inflight)
        for http in inflight:
            http.close()
        self._client.close()

    def _create(self, request: dict[str, Any]) -> Any:
        """One request, on a connection of its own that a watchdog closes ``timeout`` seconds after
        it was sent: the client library's timeout bounds each wait for bytes, so a server trickling
        a reply held a request (and its task) open for as long as it kept sending."""
        http = openai.DefaultHttpxClient()
        expired = threading.Event()

        def expire() -> None:
            expired.set()
            http.close()

        watchdog = threading.Timer(self.timeout, expire)
        watchdog.daemon = True
        with self._inflight_lock:
            self._inflight.add(http)
        watchdog.start()
        try:
            return self._client.with_options(http_client=http).chat.completions.create(**request)
        except openai.APIConnectionError as error:
            if expired.is_set():
                raise openai.APITimeoutError(request=error.request) from error
            raise
        except RuntimeError:
            if not http.is_closed:
                raise
            if expired.is_set():  # the time ran out before it was even sent (a busy machine)
                raise openai.APITimeoutError(
                    request=httpx.Request("POST", str(self._client.base_url))
                ) from None
            raise Stopped() from None  # closed before it was sent: the run was cancelled
        finally:
            watchdog.cancel()
            with self._inflight_lock:
                self._inflight.discard(http)
            http.close()

    def complete(
        self,
        messages: Sequence[dict[str, str]],
        *,
        response_format: dict[str, Any] | None = None,
        temperature: float = 1.0,
    ) -> Completion:
        """One chat completion's text and token counts.

        Raises:
            LlmUnavailable: the server kept failing for ``max_retries`` retries, or refused.
            LlmBadReply: the server answered with something that is not a chat completion.
            Stopped: ``stop`` was set while waiting.
        """
        retries = 0
        while True:
            self._wait(self._limiter.reserve())
            level = self._format_level
            request: dict[str, Any] = {"model": self.model, "messages": list(messages)}
            if temperature is not None:
                request["temperature"] = temperature
            if response_format is not None and level < 2:
                request["response_format"] = response_format if level == 0 else {"type": "json_object"}
            try:
                response = self._create(request)
            except (openai.BadRequestError, openai.UnprocessableEntityError) as error:
                if "response_format" in request:
                    self._step_down_format(level, error)
                    continue
                raise LlmUnavailable(
                    f"The LLM at {self.where} refused the request (HTTP {error.status_code}): {error.message}"
                ) from error
            except (openai.APITimeoutError, openai.APIConnectionError, openai.APIStatusError) as error:
                status = getattr(error, "status_code", None)
                transient = status is None or status in (408, 409, 429) or status >= 500
                if not transient:
                    raise LlmUnavailable(
                        f"The LLM at {self.where} answered HTTP {status}: {_message(error)}"
                    ) from error
                retries += 1
                if retries > self.max_retries:
                    what = f"HTTP {status}" if status else type(error).__name__
                    raise LlmUnavailable(
                        f"The LLM at {self.where} kept failing ({what}: {_message(error)}) "
                        f"after {self.max_retries} retries."
                    ) from error
                requested = retry_after_seconds(error.response.headers) if status else None
                delay = (
                    min(requested, MAX_RETRY_AFTER_SECONDS)
                    if requested is not None
                    else backoff_seconds(retries, self.backoff)
                )
                log.info("LLM %s; retry %d in %.2fs", status or type(error).__name__, retries, delay)
                self._wait(delay)
                continue
            except openai.APIResponseValidationError as error:
                raise LlmBadReply(
                    f"The LLM at {self.where} sent a reply that is not a chat completion."
                ) from error
            except (ValueError, TypeError, AttributeError, RecursionError) as error:
                # A body the client library could not decode (bytes that are not UTF-8, JSON
                # nested too deep): the server's fault, like a reply of the wrong shape.
                raise LlmBadReply(
                    f"The LLM at {self.where} sent a reply that could not be read ({type(error).__name__})."
                ) from error
            return _completion(response, self.where)

    def _wait(self, seconds: float) -> None:
        stopped = self.stop.wait(seconds) if seconds > 0 else self.stop.is_set()
        if stopped:
            raise Stopped()

    def _step_down_format(self, level: int, error: openai.APIStatusError) -> None:
        with self._format_lock:
            if self._format_level == level:
                self._format_level = level + 1
                log.info(
                    "LLM at %s refused response_format (HTTP %s: %s); using %s",
                    self.where,
                    error.status_code,
                    error.message,
                    "JSON mode" if level == 0 else "plain text",
                )


def _message(error: openai.APIError) -> str:
    return " ".join(str(error.message).split())[:200]


def _completion(response: Any, where: str) -> Completion:
    """The completion's text and token counts; LlmBadReply for a reply of the wrong shape (the
    client library passes through whatever a lenient server sends: ``"choices": "oops"``, a
    number for the content)."""
    choices = getattr(response, "choices", None) or []
    message = choices[0].message if isinstance(choices, list) and choices else None
    content = getattr(message, "content", None)
    if message is None:
        raise LlmBadReply(f"The LLM at {where} sent a completion without choices.")
    if content is not None and not isinstance(content, str):
        raise LlmBadReply(f"The LLM at {where} sent a completion whose content is not text.")
    usage = getattr(response, "usage", None)
    try:
        prompt_tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
        completion_tokens = int(getattr(usage, "completion_tokens", 0) or 0)
    except (TypeError, ValueError):
        prompt_tokens = completion_tokens = (
            0  # counts are for the report: a bad one is no reason to drop the text
        )
    return Completion(text=content or "", prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)
