"""Session fixtures for the AIM pipeline's services: a RabbitMQ node and a MongoDB wire server.

Registered in tests/conftest.py. Each starts its own server on loopback and
stops it at the end of the session; a missing one skips (fails under
FLP_REQUIRE_SERVICES=1).
"""

from __future__ import annotations

import pytest

from orchestrator.dev import mongo
from tests.support import rabbitmq


def _require(what: str) -> None:
    from tests.conftest import require_service

    require_service(what)


@pytest.fixture(scope="session")
def rabbitmq_server():
    """A RabbitMQ node for the session (``.url``, ``.restart()``)."""
    if not rabbitmq.available():
        _require("RabbitMQ (apt-get install rabbitmq-server)")
    server = rabbitmq.RabbitServer().start()
    yield server
    server.cleanup()


@pytest.fixture(scope="session")
def mongo_server():
    """A SecantusDB server for the session (``.url``)."""
    if not mongo.available():
        _require("MongoDB wire server (SecantusDB: pip install -e '.[dev]')")
    server = mongo.MongoServer().start()
    yield server
    server.cleanup()
