"""Bearer-token auth for /v1: one check, used as a FastAPI dependency (which also declares the
security scheme for OpenAPI) and called directly by the plain route that serves the hottest path."""

from __future__ import annotations

import hmac
from typing import Annotated, Final

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param

bearer: Final = HTTPBearer(auto_error=False, description="A token from LAMBDA_API_TOKENS.")


def token_valid(given: str, tokens: tuple[str, ...]) -> bool:
    """Constant-time comparison against every configured token (no early exit on a match)."""
    presented = given.encode()
    ok = False
    for token in tokens:
        ok |= hmac.compare_digest(presented, token.encode())
    return ok


def check_bearer(authorization: str | None, tokens: tuple[str, ...]) -> None:
    """401 unless the header carries one of the configured tokens (none configured: no access)."""
    scheme, credentials = get_authorization_scheme_param(authorization)
    if not (authorization and scheme and credentials) or scheme.lower() != "bearer":
        raise HTTPException(401, "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
    if not tokens or not token_valid(credentials, tokens):
        raise HTTPException(401, "invalid bearer token", headers={"WWW-Authenticate": "Bearer"})


async def require_token(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> None:
    """The dependency form of check_bearer."""
    check_bearer(request.headers.get("authorization"), request.app.state.services.settings.api_tokens)


AUTHORIZED: Final = [Depends(require_token)]
