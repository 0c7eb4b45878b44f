"""Hostile query parameters and credentials against a real `lambda-serve`.

Injection attempts in every parameter of /v1/revenue/hourly must be refused with 400 and a
message naming the parameter, before anything reaches Redis or a Delta filter; while they are
sent, Redis MONITOR (filtered to the server's own connections) must show only read commands on
keys of the documented layout under the server's prefix, and no key anywhere may carry the
marker the attempts contain. Credentials that are not exactly a configured bearer token get 401.
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
import redis
from redis_watch import monitor, socket_ports
from served import OTHER_TOKEN, TOKEN, Served

pytestmark = [pytest.mark.faults, pytest.mark.integration]

MARKER = "zqxinjectzq"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
VALID = {"start": "2026-11-19T20:00:00Z", "end": "2026-11-20T04:00:00Z"}
LOOKALIKES = [
    "eu\u2010west",  # hyphen U+2010
    "\u0435u-west",  # Cyrillic e
    "\uff45\uff55-west",  # full-width letters
    "eu-west\u200b",  # zero-width space
    "EU-WEST",
    "eu-we\u017ft",  # long s, which upper/lower-cases to plain s
]
KEY_PATTERNS = [
    "*",
    "?",
    "[a]",
    f"{MARKER}*",
    f"{MARKER}?",
    f"[{MARKER}]",
    f"a:{MARKER}",
    f"eu-west|books|{MARKER}",
    f"..{MARKER}",
    f"../../{MARKER}",
    f"{MARKER}%00",
    f"{MARKER}\x00",
    f"{MARKER}\r\nFLUSHALL\r\n",
    f"{MARKER}' OR '1'='1",
    f"region = '{MARKER}' OR true",
    f"{MARKER}\\",
    f"{MARKER}{{}}",
    f"${{jndi:ldap://{MARKER}}}",
    MARKER * 300,  # about 3 KB
    "",
    " ",
    ",",
]
TIME_ATTACKS = [
    "2026-11-20T13:00:00Z*",
    f"2026-11-20T13:00:00Z|{MARKER}",
    f"2026-11-20T13:00:00Z:{MARKER}",
    "2026-11-20T13",
    "2026-11-20T13:00:00",  # no offset
    "2026-11-20T13:00:00+25:00",
    "2026-11-20T13:30:00Z",
    "0001-01-01T00:00:00+01:00",  # before year 1 in UTC
    "9999-12-31T23:00:00-01:00",  # after year 9999 in UTC
    "2026-13-01T00:00:00Z",
    "１２３４-11-20T13:00:00Z",  # full-width digits
    "2026-11-20T13:00:00Z\x00",
    "",
    *KEY_PATTERNS[:6],
]


def hourly(served: Served, **params: str) -> httpx.Response:
    return httpx.get(f"{served.base_url}/v1/revenue/hourly", params=params, headers=AUTH, timeout=30)


def attempts() -> list[tuple[str, str]]:
    out = [(name, value) for name in ("region", "category") for value in KEY_PATTERNS + LOOKALIKES]
    # an empty currency or group_by means the documented default (USD, no grouping)
    nonempty = [v for v in KEY_PATTERNS if v.strip()]
    out += [("currency", v) for v in [*nonempty, "usd", "US", "USDX", "XXX", "ＵＳＤ"]]
    out += [("group_by", v) for v in [*nonempty, "region,hour", "region,*", "Region", "region;currency"]]
    out += [(name, v) for name in ("start", "end") for v in TIME_ATTACKS]
    return out


def send_attempts(served: Served) -> int:
    """Send every attempt; assert each is a 400 naming its parameter. Returns how many were sent."""
    sent = 0
    for name, value in attempts():
        params = {**VALID, name: value}
        response = hourly(served, **params)
        assert response.status_code == 400, (
            f"{name}={value!r} -> {response.status_code} {response.text[:300]}"
        )
        doc = response.json()
        assert doc["error"] == "bad_request"
        assert name in doc["detail"], f"{name}={value!r}: message does not name it: {doc['detail']}"
        sent += 1
    # unknown and repeated parameters are refused too, rather than ignored
    for extra in ({"key": f"{MARKER}*"}, {"pattern": "*"}, {"region[]": "eu-west"}):
        assert hourly(served, **VALID, **extra).status_code == 400
        sent += 1
    url = f"{served.base_url}/v1/revenue/hourly"
    repeated: list[tuple[str, str | int | float | bool | None]] = [
        *VALID.items(),
        ("region", "eu-west"),
        ("region", f"{MARKER}*"),
    ]
    assert httpx.get(url, params=repeated, headers=AUTH, timeout=30).status_code == 400
    sent += 1
    # the reconciliation route's path parameter reads Redis keys by date too
    for value in (
        "*",
        f"2026-11-20{MARKER}",
        f"{MARKER}?",
        "2026-11-2[0]",
        "2026-11-20:x",
        "..",
        "%00",
        MARKER * 100,
    ):
        response = httpx.get(f"{url.rsplit('/', 2)[0]}/reconciliation/{value}", headers=AUTH, timeout=30)
        assert response.status_code in (400, 404), f"reconciliation/{value!r} -> {response.status_code}"
        sent += 1
    return sent


def test_injection_attempts_are_400_and_never_reach_redis(
    served: Served, r: redis.Redis, tmp_path: Path
) -> None:
    before = set(r.scan_iter(match=f"{served.prefix}:*", count=1000))
    with monitor(served.settings.redis_password_file, tmp_path / "monitor.txt") as seen:
        sent = send_attempts(served)
        # valid requests in the same window: the monitor must see the server read its own keys
        for start, end in (("2026-11-20T00:00:00Z", "2026-11-21T00:00:00Z"), VALID.values()):
            assert hourly(served, start=start, end=end, group_by="region,currency").status_code == 200
        ports = socket_ports(served.process.pid, 6379)
    assert sent > 140
    commands = seen.from_ports(ports)
    assert commands, "MONITOR saw no command from the serving process; the attribution is broken"
    layout = re.compile(
        rf"^{re.escape(served.prefix)}:speed:(?:(?:hour|late|dups):\d{{4}}-\d{{2}}-\d{{2}}T\d{{2}}|hours|meta)$"
    )
    read_only = {"HGETALL", "HGET", "HMGET", "HLEN", "EXISTS", "PING", "CLIENT", "HELLO", "SELECT", "AUTH"}
    for args in commands:
        name = args[0].upper()
        assert name in read_only | {"MULTI", "EXEC"}, f"unexpected command from the server: {args}"
        if name.startswith("H") or name == "EXISTS":
            for key in args[1:2]:
                assert layout.match(key), f"key outside the documented layout: {args}"
        assert not any(MARKER in a for a in args), f"an attempt reached Redis: {args}"
    assert not list(r.scan_iter(match=f"*{MARKER}*", count=1000)), "a key carries the injection marker"
    assert set(r.scan_iter(match=f"{served.prefix}:*", count=1000)) == before, "the server changed its keys"


def test_very_long_and_binary_parameters_do_not_crash(served: Served) -> None:
    for value in ("a" * 60_000, "\udcff".encode("utf-8", "surrogatepass").decode("latin-1"), "\x00" * 100):
        try:
            response = hourly(served, **{**VALID, "region": value})
        except httpx.HTTPError:
            continue  # refused at the HTTP layer (connection closed): acceptable, the server lives
        assert 400 <= response.status_code < 500, response.status_code
    assert httpx.get(f"{served.base_url}/healthz", timeout=10).status_code == 200
    assert served.process.poll() is None


BAD_CREDENTIALS = [
    {},
    {"Authorization": ""},
    {"Authorization": "Bearer"},
    {"Authorization": "Bearer "},
    {"Authorization": f"Basic {TOKEN}"},
    {"Authorization": f"Token {TOKEN}"},
    {"Authorization": TOKEN},
    {"Authorization": f"Bearer {TOKEN[:-1]}"},
    {"Authorization": f"Bearer {TOKEN}x"},
    {"Authorization": f"Bearer {TOKEN.upper()}"},
    {"Authorization": f"Bearer {TOKEN},{OTHER_TOKEN}"},
    {"Authorization": f"Bearer {TOKEN[:8]}"},
    {"Authorization": f"Bearer {TOKEN.replace('0', 'O')}"},
    {"Authorization": f"Bearer {TOKEN.replace('a', 'а')}"},  # Cyrillic a
    {"Authorization": "Bearer *"},
    {"X-Api-Key": TOKEN},
    {"Cookie": f"token={TOKEN}"},
]


@pytest.mark.parametrize("path", ["/v1/revenue/hourly", "/v1/status"])
def test_v1_refuses_every_credential_that_is_not_a_configured_token(served: Served, path: str) -> None:
    url = f"{served.base_url}{path}"
    params = VALID if "hourly" in path else {}
    for headers in BAD_CREDENTIALS:
        try:
            response = httpx.get(url, params=params, headers=headers, timeout=10)
        except (UnicodeEncodeError, httpx.LocalProtocolError):
            continue  # not sendable as an HTTP header at all
        assert response.status_code == 401, f"{headers} -> {response.status_code}"
        assert response.headers["www-authenticate"] == "Bearer"
    # the token in the query string is not a credential either
    assert httpx.get(url, params={**params, "access_token": TOKEN}, timeout=10).status_code == 401
    for token in (TOKEN, OTHER_TOKEN):
        ok = httpx.get(url, params=params, headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert ok.status_code == 200, ok.text[:300]
        ok = httpx.get(url, params=params, headers={"Authorization": f"bearer {token}"}, timeout=10)
        assert ok.status_code == 200  # the scheme is case-insensitive (RFC 7235)
        ok = httpx.get(url, params=params, headers={"Authorization": f"Bearer  {token}"}, timeout=10)
        assert ok.status_code == 200  # RFC 7235 allows 1*SP between the scheme and the token
