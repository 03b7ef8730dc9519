"""Command line: ``python -m proxy --host 127.0.0.1 --port 8000 [--config FILE] [--workers N]``, ``--version``."""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
from typing import Any

import uvicorn

from . import __version__, heads, logs
from .auth import exposure_warnings
from .config import ConfigError, load_config

log = logging.getLogger("proxy")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="responses-proxy",
        description="Serve OpenAI's Responses-only models to Chat Completions clients.",
        epilog="The upstream is OPENAI_BASE_URL (default https://api.openai.com/v1; a URL with no path, such as "
               "http://host:3000, means http://host:3000/v1), with the key OPENAI_API_KEY (default: none, clients' "
               "own keys are forwarded); PROXY_API_KEYS are the keys clients must present (default: none); "
               "PROXY_RESPONSE_STORE is where stored responses are kept (sqlite, sqlite://PATH, a redis:// URL, or "
               "memory; default sqlite, a file in ~/.local/state/responses-proxy). "
               "Precedence, highest first: these flags, the config file, environment variables "
               "(OPENAI_BASE_URL, OPENAI_API_KEY, PROXY_API_KEYS, PORT, PROXY_RESPONSE_STORE), defaults.",
    )
    parser.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to listen on (default $PORT, else 8000)")
    parser.add_argument("--config", default=os.environ.get("PROXY_CONFIG") or None,
                        help="YAML configuration file (default: $PROXY_CONFIG, else none)")
    parser.add_argument("--workers", type=int, default=1,
                        help="worker processes (default 1); each keeps its own learned models and key rests")
    parser.add_argument("--log-level", default=os.environ.get("LOG_LEVEL", "info"),
                        choices=["debug", "info", "warning", "error"],
                        help="least severe lines logged (default $LOG_LEVEL, else info)")
    parser.add_argument("--log-format", default=os.environ.get("LOG_FORMAT", "auto"), choices=["auto", "json", "text"],
                        help="json lines, readable text, or auto: text on a terminal, else json (default auto)")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    overrides: dict[str, Any] = {}
    if args.host is not None:
        overrides["host"] = args.host
    if args.port is not None:
        overrides["port"] = args.port
    try:
        config = load_config(args.config, overrides={"server": overrides} if overrides else None)
    except ConfigError as exc:
        print(f"responses-proxy: {exc}", file=sys.stderr)
        return 2
    logs.setup_logging(args.log_level, args.log_format)
    for warning in exposure_warnings(config):
        log.warning(warning)

    # No X-Forwarded-* middleware: nothing in the proxy reads the client's address or scheme, and the layer costs
    # every request.
    options: dict[str, Any] = {
        "host": config.server.host, "port": config.server.port, "log_level": args.log_level, "log_config": None,
        "access_log": False, "proxy_headers": False, "timeout_graceful_shutdown": config.server.shutdown_grace_seconds,
        **heads.uvicorn_options(config.server.max_header_bytes),
    }
    if args.workers == 1:
        from .app import create_app

        uvicorn.run(create_app(config), **options)
        return 0
    # Each worker builds its own app from the environment (see proxy.app.app_from_env).
    os.environ["PROXY_CONFIG"] = os.path.abspath(args.config) if args.config else ""
    os.environ["PROXY_LOG_LEVEL"], os.environ["PROXY_LOG_FORMAT"] = args.log_level, args.log_format
    metrics_dir = None
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        metrics_dir = os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="responses-proxy-metrics-")
    try:
        uvicorn.run("proxy.app:app_from_env", factory=True, workers=args.workers, **options)
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0
