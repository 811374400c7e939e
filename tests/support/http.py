"""HTTP test helpers: a signing key, tokens, and the service on a loopback socket (uvicorn in a thread)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import jwt
import uvicorn
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from orchestrator.http.settings import HttpSettings

ISSUER = "https://idp.test.flp"
AUDIENCE = "flp-service"
SOR = "123456"
YDERNUMMER = "654321"


@dataclass
class Keys:
    private_pem: bytes
    public_file: Path

    def token(
        self,
        role: str = "lps",
        *,
        sor: str = SOR,
        ydernummer: str = YDERNUMMER,
        expires_in: int = 300,
        audience: str = AUDIENCE,
        issuer: str = ISSUER,
        **claims,
    ) -> str:
        now = int(time.time())
        body = {
            "iss": issuer,
            "aud": audience,
            "sub": f"{role}-test",
            "iat": now,
            "exp": now + expires_in,
            "role": role,
            **claims,
        }
        if role == "lps":
            body.update(sor=sor, ydernummer=ydernummer)
        return jwt.encode(body, self.private_pem, algorithm="RS256")


def make_keys(folder: Path) -> Keys:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    path = folder / "token-signing.pub.pem"
    path.write_bytes(public)
    return Keys(private, path)


def http_settings(keys: Keys, leeway: int = 5) -> HttpSettings:
    return HttpSettings(
        host="127.0.0.1",
        port=0,
        public_key_file=keys.public_file,
        jwks_file=None,
        issuer=ISSUER,
        audience=AUDIENCE,
        leeway_seconds=leeway,
        tls_cert_file=None,
        tls_key_file=None,
    )


@contextlib.contextmanager
def serving(app) -> Iterator[str]:
    """The app on a free loopback port; yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
