"""Command line: ``python -m proxy --host 127.0.0.1 --port 8000 [--config FILE]``."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Any

import uvicorn

from .config import ConfigError, load_config


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="responses-proxy",
        description="Serve OpenAI's Responses-only models to Chat Completions clients.",
    )
    parser.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to listen on (default 8000)")
    parser.add_argument("--config", default=os.environ.get("PROXY_CONFIG") or None,
                        help="YAML configuration file (default: $PROXY_CONFIG, else none)")
    parser.add_argument("--log-level", default=os.environ.get("LOG_LEVEL", "info"),
                        choices=["debug", "info", "warning", "error"])
    return parser.parse_args(argv)


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
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # httpx logs every request's full URL at INFO, credentials in the upstream URL included.
    logging.getLogger("httpx").setLevel(logging.WARNING)

    from .app import create_app

    uvicorn.run(create_app(config), host=config.server.host, port=config.server.port,
                log_level=args.log_level, timeout_graceful_shutdown=30)
    return 0
