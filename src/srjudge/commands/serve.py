"""``srjudge serve``: a judge as an HTTP service (FastAPI under uvicorn), batched and limited.

    srjudge serve --model smollm2-135m                          # http://127.0.0.1:8000/docs
    srjudge serve --model runs/demo/stages/09_iter2_dpo/model --served-name demo-judge
    srjudge serve --model m --host 0.0.0.0 --api-key-file ~/.srjudge-key   # public: key needed
    srjudge serve --backend mock --mock-output "Fine. [RESULT] 4" --model m --port 8123

Routes, limits and the error shape are in ``srjudge.serving.app`` and the README. Binds to
127.0.0.1 unless ``--host`` says otherwise; any other host needs ``--api-key-file`` (a file
readable by its owner only; the key is never given on the command line). Exit status 2 for bad
arguments, 1 when the backend cannot be loaded.
"""

from __future__ import annotations

import argparse
import logging
import sys

from srjudge.commands.options import (
    add_backend_arguments,
    backend_options,
    load_backend_from_args,
)
from srjudge.serving.settings import ServeSettings, SettingsError, read_api_key, served_name

DEFAULTS = ServeSettings(model_name="judge")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="alias (srjudge models), directory or name")
    add_backend_arguments(parser)
    parser.add_argument(
        "--served-name", help="model name clients see (default: the alias or directory name)"
    )
    parser.add_argument("--host", default=DEFAULTS.host, help="default 127.0.0.1 (loopback)")
    parser.add_argument("--port", type=int, default=DEFAULTS.port)
    parser.add_argument("--api-key-file", help="file holding the API key (Bearer auth)")
    parser.add_argument(
        "--max-batch", type=int, default=DEFAULTS.max_batch, help="most items per backend call"
    )
    parser.add_argument(
        "--max-wait-ms",
        type=float,
        default=DEFAULTS.max_wait_ms,
        help="how long the first queued item waits for a batch to fill",
    )
    parser.add_argument(
        "--max-items",
        type=int,
        default=DEFAULTS.max_items,
        help="most items (or reward prompts) per request",
    )
    parser.add_argument("--max-body-bytes", type=int, default=DEFAULTS.max_body_bytes)
    parser.add_argument(
        "--max-samples",
        type=int,
        default=DEFAULTS.max_samples,
        help="most samples (or chat n) per item",
    )
    parser.add_argument(
        "--max-new-tokens",
        type=int,
        default=DEFAULTS.max_new_tokens,
        help="cap on a request's max_new_tokens / max_tokens",
    )
    parser.add_argument(
        "--default-max-new-tokens", type=int, default=DEFAULTS.default_max_new_tokens
    )
    parser.add_argument(
        "--max-queue-items",
        type=int,
        default=DEFAULTS.max_queue_items,
        help="items waiting for the model beyond which requests get 503",
    )
    parser.add_argument(
        "--request-timeout",
        type=float,
        default=DEFAULTS.request_timeout_s,
        help="seconds a request may wait for the model (then 504)",
    )
    parser.add_argument(
        "--max-retries",
        type=int,
        default=DEFAULTS.max_retries,
        help="re-samples of an unparseable judgment",
    )
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning"])


def settings_from_args(args: argparse.Namespace) -> ServeSettings:
    try:
        backend_options(args)  # a flag of another backend is refused before anything loads
    except ValueError as e:
        raise SettingsError(str(e)) from None
    settings = ServeSettings(
        model_name=args.served_name or served_name(args.model),
        host=args.host,
        port=args.port,
        api_key=read_api_key(args.api_key_file) if args.api_key_file else None,
        max_batch=args.max_batch,
        max_wait_ms=args.max_wait_ms,
        max_items=args.max_items,
        max_body_bytes=args.max_body_bytes,
        max_samples=args.max_samples,
        max_new_tokens=args.max_new_tokens,
        default_max_new_tokens=args.default_max_new_tokens,
        max_queue_items=args.max_queue_items,
        request_timeout_s=args.request_timeout,
        max_retries=args.max_retries,
    )
    settings.check()
    return settings


def run(args: argparse.Namespace) -> int:
    try:
        settings = settings_from_args(args)  # before loading a model
    except SettingsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    import uvicorn

    from srjudge.serving.app import create_app

    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    try:
        backend = load_backend_from_args(args, args.model)
    except (ImportError, FileNotFoundError, ValueError, OSError) as e:
        print(
            f"error: cannot load the {args.backend} backend for {args.model}: {e}", file=sys.stderr
        )
        return 1
    app = create_app(backend, settings, close_backend=True)
    print(
        f"serving {settings.model_name} ({backend.name}) on http://{settings.host}:"
        f"{settings.port}  (docs: /docs, auth: {'on' if settings.api_key else 'off'})",
        file=sys.stderr,
        flush=True,
    )
    try:
        uvicorn.run(
            app,
            host=settings.host,
            port=settings.port,
            log_level=args.log_level,
            server_header=False,
            timeout_graceful_shutdown=10,
        )
    finally:  # the app's lifespan closes the backend; this covers a server that never started
        close = getattr(backend, "close", None)  # the vLLM engine's processes and KV cache
        if close is not None:
            close()
    return 0
