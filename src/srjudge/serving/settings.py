"""Settings of ``srjudge serve``: limits, batching, binding and the API key, checked up front.

    settings = ServeSettings(model_name="smollm2-135m", max_batch=32, max_wait_ms=20)
    settings.check()            # raises SettingsError, e.g. a public host without an API key

Every limit a client can hit is named in the error it gets, by the field here and the flag of
``srjudge serve`` that sets it (``--max-items`` for ``max_items`` and so on).
"""

from __future__ import annotations

import ipaddress
import stat
from dataclasses import dataclass
from pathlib import Path

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})


class SettingsError(ValueError):
    """The server must not start with these settings."""


@dataclass(frozen=True)
class ServeSettings:
    model_name: str
    """The name clients see (``/v1/models``, ``model`` in answers); never a file path."""
    host: str = "127.0.0.1"
    port: int = 8000
    api_key: str | None = None
    """When set, every route but ``/health`` and the OpenAPI pages needs ``Bearer <key>``."""
    max_batch: int = 32
    """Most items gathered into one backend call."""
    max_wait_ms: float = 20.0
    """How long the first queued item waits for others to join its batch."""
    max_items: int = 64
    """Most items (grade/compare) or prompts (reward) in one request."""
    max_body_bytes: int = 2_000_000
    max_samples: int = 16
    max_new_tokens: int = 1024
    """Cap on a request's ``max_new_tokens`` / ``max_tokens``."""
    default_max_new_tokens: int = 512
    max_queue_items: int = 4096
    """Items waiting for the model beyond which requests get 503 (back-pressure)."""
    request_timeout_s: float = 600.0
    """A request still waiting for the model after this long gets 504."""
    max_retries: int = 2
    """Re-samples of an unparseable judgment (as ``srjudge judge --max-retries``)."""

    def check(self) -> None:
        positive = {
            "max_batch": self.max_batch,
            "max_items": self.max_items,
            "max_body_bytes": self.max_body_bytes,
            "max_samples": self.max_samples,
            "max_new_tokens": self.max_new_tokens,
            "default_max_new_tokens": self.default_max_new_tokens,
            "max_queue_items": self.max_queue_items,
            "request_timeout_s": self.request_timeout_s,
        }
        for name, value in positive.items():
            if value <= 0:
                raise SettingsError(f"{name} must be > 0, got {value}")
        if self.max_wait_ms < 0 or self.max_retries < 0:
            raise SettingsError("max_wait_ms and max_retries must be >= 0")
        if self.default_max_new_tokens > self.max_new_tokens:
            raise SettingsError("default_max_new_tokens must be <= max_new_tokens")
        if self.max_queue_items < self.max_items:
            raise SettingsError("max_queue_items must be >= max_items")
        if not self.model_name or "/" in self.model_name or "\\" in self.model_name:
            raise SettingsError(f"served model name {self.model_name!r} must be a plain name")
        if self.api_key is not None and len(self.api_key) < 16:
            raise SettingsError("the API key must have at least 16 characters")
        if not is_loopback(self.host) and self.api_key is None:
            raise SettingsError(
                f"host {self.host} is not a loopback address: serving on it needs an API key "
                "(--api-key-file)"
            )


def is_loopback(host: str) -> bool:
    """
    >>> [is_loopback(h) for h in ("127.0.0.1", "::1", "localhost", "0.0.0.0", "10.0.0.2")]
    [True, True, True, False, False]
    """
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name other than localhost: treat as public


def read_api_key(path: str | Path) -> str:
    """The key in ``path`` (first line, stripped). Refuses an empty file or one that other
    users can read."""
    path = Path(path)
    if not path.is_file():
        raise SettingsError(f"API key file {path} not found")
    if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SettingsError(f"API key file {path} is readable by other users; chmod 600 it")
    lines = path.read_text(encoding="utf-8").splitlines()
    key = lines[0].strip() if lines else ""
    if not key:
        raise SettingsError(f"API key file {path} is empty")
    return key


def served_name(model: str) -> str:
    """The public name of a model given as an alias or a directory (its last component).

    >>> served_name("smollm2-135m"), served_name("runs/demo/stages/09_iter2_dpo/model/")
    ('smollm2-135m', 'model')
    """
    return Path(model.rstrip("/\\")).name or "judge"
