"""``flp demo``'s upload step: the HTTP service on a free loopback port, a few uploads with a
token minted for the demo (one document with errors, shown), then the service stopped."""

from __future__ import annotations

import json
import socket
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from orchestrator.config import Settings
from orchestrator.db.connection import Database

ISSUER, AUDIENCE, SOR, YDERNUMMER = "https://idp.demo.flp", "flp-service", "990001", "990001"

# Synthetic replacement CPR numbers (day + 60): never a real person's.
DOCUMENTS = [
    {
        "cpr": "6101704013",
        "values": [{"code": "NPU27300", "value": "53", "unit": "mmol/mol", "time": "2024-08-24"}],
        "diagnoses": [{"codeSystem": "ICPC2", "code": "T90", "diagnosedDate": "2019-03-01"}],
        "services": [{"serviceCode": "0120", "serviceDate": "2024-08-24"}],
    },
    {
        "cpr": "6202654022",
        "values": [{"code": "NPU27300", "value": "7,5", "unit": "%", "time": "24-08-2024"}],
        "medication": [{"atcCode": "A10BA02", "drugName": "Metformin", "startDate": "2023-01-10"}],
    },
    {  # the one with errors: an unknown analysis, an unknown unit, a service dated in the future
        "cpr": "6303804031",
        "values": [
            {"code": "NPU99999", "value": "1", "time": "2024-08-24"},
            {"code": "NPU27300", "value": "60", "unit": "furlongs", "time": "2024-08-25"},
        ],
        "services": [{"serviceCode": "0120", "serviceDate": "2999-01-01"}],
    },
]


def _keys(folder: Path):
    import jwt
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = folder / "demo-token.pub.pem"
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "demo-lps", "exp": now + 600, "role": "lps"}
    token = jwt.encode({**claims, "sor": SOR, "ydernummer": YDERNUMMER}, key, algorithm="RS256")
    return public, token


def _post(url: str, token: str, body: dict | None) -> tuple[int, dict]:
    """One request as an LPS client makes it: it paces on the RateLimit fields (waits a token's time
    when the clinic's bucket is about to empty) instead of running into a 429."""
    from orchestrator.http.ratelimit import client_pause

    req = urllib.request.Request(
        url,
        data=None if body is None else json.dumps(body).encode(),
        method="GET" if body is None else "POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            status, out = resp.status, json.loads(resp.read())
            pause = client_pause(resp.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")
    time.sleep(pause)
    return status, out


def steps(settings: Settings, db: Database, step_class) -> tuple[list, list[str]]:
    """The demo's upload steps and the lines to print after the summary."""
    import uvicorn

    from orchestrator.http.app import create_app
    from orchestrator.http.settings import HttpSettings
    from orchestrator.jobs import JOBS
    from orchestrator.runner import run_job

    started = time.perf_counter()
    lines: list[str] = []
    out: list = []
    with tempfile.TemporaryDirectory(prefix="flp-demo-http-") as tmp:
        public, token = _keys(Path(tmp))
        hs = HttpSettings("127.0.0.1", 0, public, None, ISSUER, AUDIENCE, 30, None, None)
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(create_app(hs, db), log_config=None, access_log=False))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        while not server.started and thread.is_alive():
            time.sleep(0.01)
        out.append(step_class("flp serve (loopback)", "ok", None, time.perf_counter() - started))
        try:
            url = f"http://127.0.0.1:{port}/v1/clinics/{SOR}/uploads"
            for name, body in (
                ("upload 3 documents", {"patients": DOCUMENTS}),
                ("resync unchanged", DOCUMENTS[0]),
            ):
                t = time.perf_counter()
                status, result = _post(url, token, body)
                rows = result.get("inserted", 0) + result.get("updated", 0) + result.get("unchanged", 0)
                label = result.get("result", f"HTTP {status}")
                out.append(step_class(name, label, rows, time.perf_counter() - t))
                lines.append(
                    f"{name}: HTTP {status}, {label}, inserted {result.get('inserted')}, "
                    f"unchanged {result.get('unchanged')}, rejected rows {result.get('rejected')}"
                )
                for err in result.get("errors", []):
                    lines.append(
                        f"  document {err['document']}, {err['field']}"
                        + ("" if err["row"] is None else f" row {err['row']}")
                        + f": {err['reason']} ({err['message']})"
                    )
            # A full resync is a bulk job: 202 and a status URL; the drain (every minute in the
            # orchestrator) is run here once.
            t = time.perf_counter()
            status, job = _post(url + "?fullResync=true", token, {"patients": DOCUMENTS})
            state = job.get("state", f"HTTP {status}")
            drained = run_job(db, JOBS["upload_drain"], triggered_by="demo").result
            if "statusUrl" in job:
                _, job = _post(f"http://127.0.0.1:{port}{job['statusUrl']}", token, None)
            rows = job.get("inserted", 0) + job.get("updated", 0) + job.get("unchanged", 0)
            out.append(
                step_class("full resync as a job", job.get("state", state), rows, time.perf_counter() - t)
            )
            lines.append(
                f"full resync as a job: HTTP {status}, {state}; upload_drain {drained}; then "
                f"{job.get('state')}, documents {job.get('documents')} of {job.get('documentsTotal')}, "
                f"unchanged {job.get('unchanged')}, rejected documents {job.get('rejectedDocuments')}"
            )
        finally:
            server.should_exit = True
            thread.join(10)
            sock.close()
    lines.insert(0, f"Uploads over HTTP on 127.0.0.1:{port} (stopped), token minted for SOR {SOR}:")
    return out, lines
