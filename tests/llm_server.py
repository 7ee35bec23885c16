"""A real OpenAI-compatible chat-completions server on 127.0.0.1, scripted per test.

The test gives a function from (request body, request number) to a ``Reply``; the server is a
small Litestar app served by uvicorn in a background thread, so Heron's real ``openai`` client
talks real HTTP to it: normal and JSON-mode replies, prose around the JSON, broken JSON,
429 with Retry-After, 500s, and replies slower than the client's timeout.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from litestar import Litestar, Request, Response, post
from litestar.response import Stream


@dataclass(frozen=True)
class Reply:
    """What the server answers to one request: a completion, or an error status, after ``delay``."""

    content: str = ""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    prompt_tokens: int = 120
    completion_tokens: int = 480
    raw: bytes | None = None  # sent as the JSON body instead of a completion (a broken server)
    trickle: float = 0.0  # seconds between 64-byte pieces of the body (a server that dawdles)


Responder = Callable[[dict[str, Any], int], Reply]


def documents_json(texts: Sequence[str], genre: str = "document") -> str:
    """The reply a well-behaved model gives to a documents request."""
    return json.dumps({"documents": [{"genre": genre, "text": text} for text in texts]})


def genres_json(genres: Sequence[str]) -> str:
    return json.dumps({"genres": list(genres)})


def asks_for_genres(body: dict[str, Any]) -> bool:
    """Whether the request is the genre question (not a batch of documents)."""
    schema_name = ((body.get("response_format") or {}).get("json_schema") or {}).get("name")
    if schema_name:
        return schema_name == "genres"
    return '"genres"' in body["messages"][-1]["content"]


def requested_documents(body: dict[str, Any]) -> int:
    """How many documents a documents request asks for (one brief line each)."""
    return len(re.findall(r"^Document \d+ —", body["messages"][-1]["content"], flags=re.MULTILINE))


def serve_documents(
    pool: Iterable[str],
    *,
    genres: Sequence[str] = ("an incident report", "a customer e-mail"),
    wrap: Callable[[str, int], str] | None = None,
    before: Callable[[int], Reply | None] | None = None,
) -> Responder:
    """A responder that hands out documents from ``pool`` in order, as many as each request asks.

    ``wrap(json_text, request_number)`` turns the JSON into what the server actually sends (prose
    around it, broken JSON …); ``before(request_number)`` may answer instead (errors, delays).
    """
    documents: Iterator[str] = itertools.cycle(list(pool))
    lock = threading.Lock()

    def respond(body: dict[str, Any], number: int) -> Reply:
        if before is not None and (scripted := before(number)) is not None:
            return scripted
        if asks_for_genres(body):
            return Reply(genres_json(genres))
        with lock:
            texts = [next(documents) for _ in range(requested_documents(body))]
        content = documents_json(texts)
        return Reply(wrap(content, number) if wrap else content)

    return respond


class FakeLLM:
    """``with FakeLLM(responder) as llm:`` — an OpenAI-compatible server at ``llm.url``."""

    def __init__(self, responder: Responder) -> None:
        self.responder = responder
        self.requests: list[dict[str, Any]] = []
        self.request_times: list[float] = []
        self._lock = threading.Lock()
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", 0))
        self.port = self._socket.getsockname()[1]
        self._server = uvicorn.Server(
            uvicorn.Config(
                self._app(),
                log_level="warning",
                timeout_graceful_shutdown=1,
                lifespan="off",
                access_log=False,
            )
        )
        self._thread = threading.Thread(target=self._serve, name="fake-llm", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def _serve(self) -> None:
        self._server.run(sockets=[self._socket])

    def __enter__(self) -> FakeLLM:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the fake LLM server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *_: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()

    def _app(self) -> Litestar:
        @post("/v1/chat/completions", status_code=200)
        async def chat_completions(request: Request) -> Response:
            body = await request.json()
            with self._lock:
                number = len(self.requests)
                self.requests.append(body)
                self.request_times.append(time.monotonic())
            reply = self.responder(body, number)
            if reply.delay:
                await asyncio.sleep(reply.delay)
            if reply.status != 200:
                error = {"message": f"scripted HTTP {reply.status}", "type": "server_error", "code": None}
                return Response({"error": error}, status_code=reply.status, headers=reply.headers)
            payload = reply.raw
            if payload is None:
                payload = json.dumps(_completion(body, number, reply)).encode()
            if reply.trickle:

                async def pieces() -> AsyncIterator[bytes]:
                    for start in range(0, len(payload), 64):
                        yield payload[start : start + 64]
                        await asyncio.sleep(reply.trickle)

                return Stream(pieces(), media_type="application/json", headers=reply.headers)
            return Response(payload, media_type="application/json", headers=reply.headers)

        return Litestar(route_handlers=[chat_completions], debug=False)


def _completion(body: dict[str, Any], number: int, reply: Reply) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{number}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "fake"),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": reply.content},
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": reply.prompt_tokens,
            "completion_tokens": reply.completion_tokens,
            "total_tokens": reply.prompt_tokens + reply.completion_tokens,
        },
    }
