"""Bearer tokens (JWT, RS256/ES256) and who may call what.

A token is verified against the configured public key (PEM) or JWKS file:
signature, issuer, audience, expiry (with the configured leeway for clock
skew). Its ``role`` claim says who is calling:

* ``lps``: a GP practice system, with ``ydernummer`` and ``sor`` (its clinic);
* ``citizen``: the Min Læge app on behalf of a citizen (``cpr``: never logged);
* ``dds``: the national document sharing service;
* ``operator``: operations staff (the operations page).

Routes state the roles they allow with ``require(...)``; an LPS may only act
for its own clinic (``Principal.ensure_clinic``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import jwt
from fastapi import Request

from orchestrator.http.problems import ProblemError
from orchestrator.http.settings import HttpSettings

ALGORITHMS = ["RS256", "ES256"]
ROLES = ("lps", "citizen", "dds", "operator")


@dataclass(frozen=True)
class Principal:
    role: str
    subject: str
    ydernummer: str | None = None
    sor: str | None = None
    cpr: str | None = None  # citizen tokens only; personal data, never logged

    def ensure_clinic(self, sor: str) -> None:
        if self.role == "lps" and self.sor != sor:
            raise ProblemError(
                403,
                "Forbidden",
                "an LPS may upload only for its own clinic (the token's sor claim)",
                kind="other-clinic",
            )


def _unauthorized(detail: str) -> ProblemError:
    return ProblemError(
        401, "Unauthorized", detail, kind="unauthorized", headers={"WWW-Authenticate": 'Bearer realm="flp"'}
    )


class Verifier:
    """Verifies tokens with one PEM key or the keys of a JWKS file (by ``kid``)."""

    def __init__(self, settings: HttpSettings) -> None:
        self.issuer = settings.issuer
        self.audience = settings.audience
        self.leeway = settings.leeway_seconds
        self._key: Any = None
        self._jwks: jwt.PyJWKSet | None = None
        if settings.public_key_file is not None:
            self._key = settings.public_key_file.read_text(encoding="utf-8")
        else:
            assert settings.jwks_file is not None
            self._jwks = jwt.PyJWKSet.from_dict(json.loads(settings.jwks_file.read_text(encoding="utf-8")))

    def _key_for(self, token: str) -> Any:
        if self._jwks is None:
            return self._key
        kid = jwt.get_unverified_header(token).get("kid")
        for key in self._jwks.keys:
            if key.key_id == kid:
                return key.key
        raise _unauthorized("the token's kid is not in the configured JWKS")

    def verify(self, token: str) -> Principal:
        try:
            claims = jwt.decode(
                token,
                self._key_for(token),
                algorithms=ALGORITHMS,
                issuer=self.issuer,
                audience=self.audience,
                leeway=self.leeway,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise _unauthorized("the token has expired") from None
        except jwt.InvalidAudienceError:
            raise _unauthorized("the token is not for this service (aud)") from None
        except jwt.InvalidIssuerError:
            raise _unauthorized("the token's issuer is not trusted (iss)") from None
        except jwt.PyJWTError as exc:
            raise _unauthorized(f"the token is not valid: {type(exc).__name__}") from None
        role = claims.get("role")
        if role not in ROLES:
            raise _unauthorized("the token has no known role claim")
        principal = Principal(
            role=role,
            subject=str(claims["sub"]),
            ydernummer=_text(claims.get("ydernummer")),
            sor=_text(claims.get("sor")),
            cpr=_text(claims.get("cpr")),
        )
        if role == "lps" and not (principal.ydernummer and principal.sor):
            raise _unauthorized("an lps token needs ydernummer and sor claims")
        if role == "citizen" and not principal.cpr:
            raise _unauthorized("a citizen token needs a cpr claim")
        return principal


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def require(*roles: str):
    """A FastAPI dependency: the verified caller, who must have one of ``roles``."""

    def dependency(request: Request) -> Principal:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _unauthorized("a bearer token is required (Authorization: Bearer ...)")
        principal = request.app.state.verifier.verify(token.strip())
        if principal.role not in roles:
            raise ProblemError(
                403, "Forbidden", f"role {principal.role} may not use this endpoint", kind="forbidden-role"
            )
        return principal

    return dependency
