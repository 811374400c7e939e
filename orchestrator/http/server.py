"""``flp serve``: the app under uvicorn, directly with TLS or behind a reverse proxy."""

from __future__ import annotations

import logging
import ssl

from orchestrator.config import Settings
from orchestrator.db.connection import Database, resolve_url
from orchestrator.http import settings as http_settings
from orchestrator.http.app import create_app
from orchestrator.http.limits import Limits

log = logging.getLogger("orchestrator.http")


def uvicorn_config(app, hs: http_settings.HttpSettings, **extra):
    import uvicorn

    tls = {}
    if hs.tls_cert_file is not None:
        tls = {
            "ssl_certfile": str(hs.tls_cert_file),
            "ssl_keyfile": str(hs.tls_key_file),
            "ssl_version": ssl.PROTOCOL_TLS_SERVER,  # TLS 1.2 or newer (below)
            "ssl_ciphers": "ECDHE+AESGCM:ECDHE+CHACHA20",
        }
    return uvicorn.Config(
        app,
        host=hs.host,
        port=hs.port,
        log_config=None,  # our logging (CPR numbers masked), not uvicorn's
        access_log=False,  # a URL may name a patient in later endpoints; requests are counted instead
        proxy_headers=True,
        forwarded_allow_ips="127.0.0.1",
        server_header=False,
        **tls,
        **extra,
    )


def serve(settings: Settings) -> int:
    import uvicorn

    hs = http_settings.from_settings(settings)
    db = Database(resolve_url(settings))
    app = create_app(hs, db, Limits(bulk_rows=hs.bulk_rows))
    config = uvicorn_config(app, hs)
    if hs.tls_cert_file is not None:
        config.load()
        config.ssl.minimum_version = ssl.TLSVersion.TLSv1_2
    log.info(
        "flp serve listening",
        extra={"listen": f"{hs.host}:{hs.port}", "tls": hs.tls_cert_file is not None},
    )
    uvicorn.Server(config).run()
    return 0
