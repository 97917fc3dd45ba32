"""``srjudge serve``: a judge as an HTTP service (FastAPI on uvicorn), with dynamic batching.

    srjudge serve --model smollm2-135m --port 8000            # binds 127.0.0.1
    curl -s localhost:8000/health

Modules: ``settings`` (limits, binding, API key), ``schemas`` (pydantic bodies), ``batcher``
(dynamic batching off the event loop), ``jobs`` (items -> Judge/Backend calls, results),
``guards`` (auth, body limit, request metrics), ``errors`` (one JSON error shape), ``metrics``
(Prometheus), ``app`` (routes). The Python client is ``srjudge.client.JudgeClient``.
"""

from srjudge.serving.settings import ServeSettings, SettingsError

__all__ = ["ServeSettings", "SettingsError", "create_app"]


def create_app(backend, settings, *, close_backend=False):  # noqa: ANN001 - fastapi only when serving
    from srjudge.serving.app import create_app as _create_app

    return _create_app(backend, settings, close_backend=close_backend)
