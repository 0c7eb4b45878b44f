"""Two serving replicas, `serving-1` on 8000 and `serving-2` on 8001 (`make serve CLUSTER=1`).

Each is `lambda-serve` from the serving environment, in the background with its pid recorded, so
`make down` stops it and running this again brings back a killed one. Both read the same gold on
the object store and the same Redis Cluster and keep no state of their own: for the same request
they give the same answer, and a load balancer may send any request to either.

Not one of the engines `lambda-services up --cluster` starts: like `make serve`, the replicas are
started on request, once the data they serve can exist.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import Final

from lambda_contract.settings import Settings, SettingsError
from lambda_tools import services
from lambda_tools.cluster import PROCESSES, environment

REPO: Final = Path(__file__).resolve().parents[4]
LAMBDA_SERVE: Final = REPO / ".venvs" / "serving" / "bin" / "lambda-serve"
PORTS: Final = {name: 8000 + i for i, name in enumerate(PROCESSES["serving"])}


def api_token(settings: Settings) -> str:
    """The token the replicas accept: LAMBDA_API_TOKENS' first, else the local one kept with the
    other local secrets (<state>/secrets/api-token, made once; mk/serving.mk uses the same file)."""
    if settings.api_tokens:
        return settings.api_tokens[0]
    path = settings.state_path / "secrets" / "api-token"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(32) + "\n")
    return path.read_text().strip()


def urls() -> dict[str, str]:
    return {name: f"http://127.0.0.1:{port}" for name, port in PORTS.items()}


def start(settings: Settings, state: Path, environ: Mapping[str, str] | None = None) -> list[str]:
    """Start the replicas that are not running, with `environ` (default: this process's) and the
    token; return once each answers /readyz (gold and the manifest can be read). Returns the names
    it started."""
    if not LAMBDA_SERVE.exists():
        raise services.ServiceError(f"{LAMBDA_SERVE} is missing; run `make setup`")
    base = dict(os.environ if environ is None else environ)
    token = api_token(settings)
    started = []
    for name, port in PORTS.items():
        log = state / "logs" / f"{name}.log"
        if services.running_pid(state, name) is None:
            if services.port_open(port):
                raise services.ServiceError(
                    f"{name}: port {port} is taken by a process this project did not start "
                    "(a `make serve` without CLUSTER=1?)"
                )
            env = base | {
                "LAMBDA_API_PORT": str(port),
                "LAMBDA_API_TOKENS": base.get("LAMBDA_API_TOKENS") or token,
            }
            services.spawn(state, name, [str(LAMBDA_SERVE)], log, env)
            started.append(name)
    for name, port in PORTS.items():
        log = state / "logs" / f"{name}.log"
        services.wait_ready(name, partial(services.http_ok, f"http://127.0.0.1:{port}/readyz"), log)
    return started


def main(argv: list[str] | None = None) -> int:
    """`make serve CLUSTER=1`: start the replicas with the cluster's settings, print where they are."""
    parser = argparse.ArgumentParser(prog="python -m lambda_tools.cluster.serving", description=__doc__)
    parser.parse_args(argv)
    try:
        # cluster.env fills in what the caller did not set (make exports it already with CLUSTER=1)
        environ = environment(Settings.from_env().state_path) | dict(os.environ)
        settings = Settings.from_env(environ)
        started = start(settings, settings.state_path, environ)
        token = api_token(settings)
    except (SettingsError, services.ServiceError) as exc:
        print(f"make serve CLUSTER=1: {exc}", file=sys.stderr)
        return 1
    for name, url in urls().items():
        how = "started" if name in started else "running"
        print(f"[serve] {name} {how}: {url} (API docs {url}/docs, log {settings.state_path}/logs/{name}.log)")
    first = next(iter(urls().values()))
    print(f"[serve] dashboard: {first}/#token={token}")
    print("[serve] `make down` stops them; `make serve CLUSTER=1` brings back a stopped one")
    return 0


if __name__ == "__main__":
    sys.exit(main())
