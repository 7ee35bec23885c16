"""Every error Heron raises on purpose: one root, flat subclasses, each with a stable code."""

from __future__ import annotations


class HeronError(Exception):
    """Root of Heron's errors."""

    code = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def as_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


class ConfigurationError(HeronError):
    """A setting has a value Heron cannot work with."""

    code = "invalid_setting"


class NotFound(HeronError):
    """The requested object does not exist."""

    code = "not_found"


class Invalid(HeronError):
    """The request is well-formed but its values are not acceptable."""

    code = "invalid"


class Conflict(HeronError):
    """The request conflicts with existing state (e.g. a duplicate name)."""

    code = "conflict"


class NotClassified(Conflict):
    """The job has no answer yet (or was classified before Heron kept what this needs)."""

    code = "not_classified"


class EmptyFile(HeronError):
    """The upload has no bytes."""

    code = "empty"


class TooLarge(HeronError):
    """The upload is larger than the configured limit."""

    code = "too_large"


class UnsupportedType(HeronError):
    """The bytes are not a document type Heron can read."""

    code = "unsupported_type"


class CorruptFile(HeronError):
    """The bytes claim a supported type but cannot be parsed."""

    code = "corrupt"


class EncryptedFile(HeronError):
    """The document is password-protected and the empty password does not open it."""

    code = "encrypted"


class NoText(HeronError):
    """The document yields no text to classify."""

    code = "no_text"


class LimitExceeded(HeronError):
    """The document exceeds a configured page, time or size limit."""

    code = "limit_exceeded"


class ModelNotReady(HeronError):
    """No active model exists yet; train the starter model first."""

    code = "model_not_ready"


class NotFittedError(HeronError, ValueError):
    """An estimator was used before it was fitted."""

    code = "not_fitted"


class LlmNotConfigured(HeronError):
    """No LLM is configured (neither OPENAI_API_KEY nor HERON_LLM_BASE_URL), so nothing can be generated."""

    code = "llm_not_configured"


class LlmUnavailable(HeronError):
    """The LLM endpoint kept failing (rate limits, server errors, timeouts) or refused the request."""

    code = "llm_unavailable"


class LlmBadReply(HeronError):
    """The LLM answered, but its reply holds no usable documents."""

    code = "llm_bad_reply"
