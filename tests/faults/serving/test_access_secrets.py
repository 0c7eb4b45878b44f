"""Access: Redis refuses clients without its password; no secret is committed or logged.

- The local Redis (started by `make up`) has a password: no-password and wrong-password clients are
  refused, and every component that opens a Redis client passes the password the settings resolve
  from LAMBDA_REDIS_PASSWORD(_FILE) (checked in the source of every layer, and live for serving).
- Tracked files hold no private key, cloud or VCS token, the local Redis password, or a literal
  value for a password/secret/token setting (documented placeholders are empty or examples).
- The serving layer's JSON logs never contain a bearer token (valid or near-miss) or the Redis
  password, and start-up errors about bad settings do not echo credentials.
"""

from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path

import httpx
import pytest
import redis
from served import OTHER_TOKEN, REPO, TOKEN, VENV_BIN, Served, serving_env

from lambda_contract.settings import Settings

pytestmark = [pytest.mark.faults, pytest.mark.integration]

LAYER_SOURCES = ("contract/src", "speed_layer/src", "batch_layer/src", "serving_layer/src", "tools/src")
STRONG_PATTERNS = {
    "private key": re.compile(r"-----BEGIN (?:[A-Z]+ )*PRIVATE KEY-----"),
    "AWS access key id": re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    "GitHub token": re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,}\b"),
    "Slack token": re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"),
    "Google API key": re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b"),
    "Stripe live key": re.compile(r"\b[rs]k_live_[0-9A-Za-z]{16,}"),
    "JWT": re.compile(r"\beyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\."),
}
# `KEY=value` / `key: value` for a setting named like a credential, in config-like files
ASSIGNMENT = re.compile(
    r"""(?ix)^\s*(?:export\s+|-\s+)?["']?(?P<key>[a-z0-9_.-]*(?:password|passwd|secret|token|api[-_]?key)s?)["']?
        \s*(?P<sep>[=:])\s*["']?(?P<value>[^\s"'#]*)"""
)
CONFIG_SUFFIXES = (
    ".env",
    ".example",
    ".yaml",
    ".yml",
    ".toml",
    ".ini",
    ".cfg",
    ".conf",
    ".sh",
    ".mk",
    ".json",
)
PLACEHOLDERS = re.compile(
    r"^(?:|\$.*|\{\{.*|<.*>|/.*|change-?me|example.*|placeholder|x+|\*+|\.\.\.|none|null|true|false)$", re.I
)


def tracked_files() -> list[Path]:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    return [REPO / name for name in out.decode().split("\0") if name]


def local_secrets() -> list[str]:
    folder = REPO / ".local/state/secrets"
    return [
        p.read_text().strip() for p in folder.glob("*") if p.is_file() and len(p.read_text().strip()) >= 8
    ]


# ---- Redis requires its password ----------------------------------------------------------------


def test_redis_refuses_clients_without_the_password(served: Served) -> None:
    url = served.settings.redis_url
    for password in (None, "", "wrong-password-0123456789"):
        client = redis.Redis.from_url(url, password=password or None, socket_timeout=5)
        with pytest.raises((redis.AuthenticationError, redis.ResponseError)):
            client.ping()
        client.close()
    right = redis.Redis.from_url(url, password=served.settings.resolved_redis_password())
    assert right.ping()
    right.close()


def test_settings_read_the_password_file_and_the_variable_wins(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("from-the-file-0123456789\n")
    base = {"LAMBDA_REDIS_PASSWORD_FILE": str(secret)}
    assert Settings.from_env(base).resolved_redis_password() == "from-the-file-0123456789"
    both = {**base, "LAMBDA_REDIS_PASSWORD": "from-the-variable-0123"}
    assert Settings.from_env(both).resolved_redis_password() == "from-the-variable-0123"
    assert Settings.from_env({}).resolved_redis_password() is None


def _own_nodes(scope: ast.AST) -> list[ast.AST]:
    """The nodes of `scope` outside the functions nested in it (each function is its own scope)."""
    out: list[ast.AST] = []
    todo = list(ast.iter_child_nodes(scope))
    while todo:
        node = todo.pop()
        out.append(node)
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            todo.extend(ast.iter_child_nodes(node))
    return out


def test_every_redis_client_in_the_layers_passes_the_resolved_password() -> None:
    """Every `Redis(...)`/`Redis.from_url(...)` in the layers' sources takes password=...resolved_redis_password()."""
    calls = 0
    for root in LAYER_SOURCES:
        for path in sorted((REPO / root).rglob("*.py")):
            tree = ast.parse(path.read_text(), filename=str(path))
            for scope in ast.walk(tree):
                if not isinstance(scope, ast.Module | ast.FunctionDef | ast.AsyncFunctionDef):
                    continue
                # a name this scope assigned from resolved_redis_password() counts as that call
                resolved = {
                    target.id
                    for node in _own_nodes(scope)
                    if isinstance(node, ast.Assign) and "resolved_redis_password" in ast.unparse(node.value)
                    for target in node.targets
                    if isinstance(target, ast.Name)
                }
                for node in _own_nodes(scope):
                    if not isinstance(node, ast.Call):
                        continue
                    if not re.search(
                        r"(?:^|\.)(?:Strict)?Redis(?:Cluster)?(?:\.from_url)?$", ast.unparse(node.func)
                    ):
                        continue
                    calls += 1
                    password = next((k.value for k in node.keywords if k.arg == "password"), None)
                    passed = password is not None and (
                        "resolved_redis_password" in ast.unparse(password)
                        or (isinstance(password, ast.Name) and password.id in resolved)
                    )
                    # or `**options`, a name assigned from a call given resolved_redis_password()
                    passed = passed or any(
                        k.arg is None and isinstance(k.value, ast.Name) and k.value.id in resolved
                        for k in node.keywords
                    )
                    assert passed, (
                        f"{path.relative_to(REPO)}:{node.lineno}: {ast.unparse(node)[:120]} does not pass the password"
                    )
    assert calls >= 4  # lambda_contract.redis_clients: single and Cluster, sync and asyncio


# ---- no secret in the repository ----------------------------------------------------------------


def test_no_secret_in_tracked_files() -> None:
    files = tracked_files()
    assert len(files) > 100
    real = local_secrets()
    problems = []
    for path in files:
        rel = path.relative_to(REPO).as_posix()
        if rel.startswith((".local/", ".venvs/")) or re.search(r"(?:^|/)secrets\.env$", rel):
            problems.append(f"{rel}: must never be tracked")
        try:
            text = path.read_text()
        except (UnicodeDecodeError, OSError):
            continue
        for what, pattern in STRONG_PATTERNS.items():
            if pattern.search(text):
                problems.append(f"{rel}: looks like a {what}")
        problems += [f"{rel}: contains the local Redis password" for s in real if s in text]
        if path.suffix in CONFIG_SUFFIXES or path.name in ("Makefile", "Dockerfile"):
            for n, line in enumerate(text.splitlines(), 1):
                match = ASSIGNMENT.match(line)
                if not match or match["key"].lower().endswith("_file") or PLACEHOLDERS.match(match["value"]):
                    continue
                if match["sep"] == ":" and (path.suffix == ".mk" or path.name == "Makefile"):
                    continue  # a make target, not an assignment
                problems.append(f"{rel}:{n}: literal value for {match['key']}")
    assert not problems, "\n".join(problems)


def test_the_scan_finds_what_it_looks_for() -> None:
    """The scan's patterns themselves: each catches a sample (so a silent regex typo fails here)."""
    samples = {
        "private key": "-----BEGIN RSA " + "PRIVATE KEY-----",
        "AWS access key id": "AKIA" + "ABCDEFGHIJKLMNOP",
        "GitHub token": "ghp_" + "a" * 36,
        "JWT": "eyJ" + "a" * 12 + ".eyJ" + "b" * 12 + ".sig",
    }
    for what, sample in samples.items():
        assert STRONG_PATTERNS[what].search(sample), what
    assert ASSIGNMENT.match("LAMBDA_REDIS_PASSWORD=hunter2hunter2")["value"] == "hunter2hunter2"  # type: ignore[index]
    assert ASSIGNMENT.match("  api-tokens: abcdefgh12345678")["value"] == "abcdefgh12345678"  # type: ignore[index]
    assert PLACEHOLDERS.match("") and PLACEHOLDERS.match("${REDIS_PASSWORD}")
    assert not PLACEHOLDERS.match("hunter2hunter2")


# ---- no secret in logs --------------------------------------------------------------------------


def test_serving_logs_carry_no_token_and_no_redis_password(served: Served) -> None:
    url = f"{served.base_url}/v1/revenue/hourly"
    params = {"start": "2026-11-20T00:00:00Z", "end": "2026-11-20T03:00:00Z"}
    near_misses = [TOKEN[:-1], TOKEN + "x", OTHER_TOKEN.upper()]
    for token in (TOKEN, OTHER_TOKEN, *near_misses):
        httpx.get(url, params=params, headers={"Authorization": f"Bearer {token}"}, timeout=10)
        httpx.get(
            url, params={**params, "region": token}, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
        )
        httpx.get(f"{served.base_url}/v1/status", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    log = served.log_text()
    assert '"path":"/v1/revenue/hourly"' in log  # the access log is on, so absence below means something
    secrets = {
        "token": TOKEN,
        "second token": OTHER_TOKEN,
        "redis password": served.settings.resolved_redis_password() or "",
    }
    for n, near in enumerate(near_misses):
        secrets[f"near-miss token {n}"] = near
    leaked = [name for name, value in secrets.items() if value and value in log]
    assert not leaked, f"the serving log contains: {leaked}"


@pytest.mark.parametrize(
    ("variable", "value", "secret"),
    [
        ("LAMBDA_API_TOKENS", "short-secret-x", "short-secret-x"),
        ("LAMBDA_REDIS_URL", "redis://:hunter2hunter2@localhost:6379/0", "hunter2hunter2"),
        ("LAMBDA_REDIS_URL", "http://:hunter2hunter2@localhost:6379/0", "hunter2hunter2"),
        ("LAMBDA_REDIS_PASSWORD_FILE", "/nonexistent/hunter2hunter2", None),
    ],
)
def test_start_up_errors_do_not_echo_credentials(
    tmp_path: Path, variable: str, value: str, secret: str | None
) -> None:
    env = serving_env(tmp_path, **{variable: value})
    done = subprocess.run(
        [str(VENV_BIN / "lambda-serve")], env=env, capture_output=True, text=True, timeout=60
    )
    output = done.stdout + done.stderr
    assert done.returncode != 0, output[-1000:]
    assert variable in output, output[-1000:]  # the error names the variable to fix
    if secret is not None:
        assert secret not in output, f"start-up error echoes the credential: {output[-500:]}"
