"""Entry point: `lambda-serve` (what `make serve` runs) starts uvicorn on LAMBDA_API_HOST:PORT."""

from __future__ import annotations

import argparse
import sys

import uvicorn

from lambda_contract.settings import Settings, SettingsError
from serving_layer import logs
from serving_layer.app import create_app
from serving_layer.fx import FxTableError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lambda-serve", description=__doc__)
    parser.add_argument("--host", help="bind address (default LAMBDA_API_HOST)")
    parser.add_argument("--port", type=int, help="port (default LAMBDA_API_PORT)")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logs.configure(args.log_level.upper())
    try:
        settings = Settings.from_env()
        app = create_app(settings)
    except (SettingsError, FxTableError) as exc:
        print(f"lambda-serve: {exc}", file=sys.stderr)
        return 2
    if not settings.api_tokens:
        print(
            "lambda-serve: warning: LAMBDA_API_TOKENS is empty, every /v1 call will get 401", file=sys.stderr
        )
    uvicorn.run(
        app,
        host=args.host or settings.api_host,
        port=args.port or settings.api_port,
        log_config=None,  # keep our JSON handler
        access_log=False,  # RequestContext writes one structured line per request
        proxy_headers=False,
        server_header=False,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
