"""HentCDA latency and throughput: build-and-serve of a patient with 200 values over HTTP,
beside the floor of serving a pre-built document of the same size from memory (same run).

    python -m bench.bench_cda [--values 200] [--rounds 400] [--seconds 10] [--concurrency 8]

The service runs as a child process (uvicorn, one worker, as ``flp serve`` runs it) on
loopback; the client (aiohttp) runs here, so both share the machine's 2 cores. Both
endpoints take the same bearer token through the same auth dependency; the floor returns
bytes it built once at start, so the difference is the read (Api.care_plan_read), the
content hash, the version check, the lxml build and the access-log row. Latency: one
request at a time (p50, p99); throughput: ``--concurrency`` requests in flight for
``--seconds`` (a bounded load).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import fresh_database, percentile, pg_server, report

CODES = ("NPU27300", "NPU01568", "DNK05472", "DNK05473", "NPU03804", "NPU21692", "NPU19661")
UNITS = {"NPU27300": "mmol/mol", "NPU01568": "mmol/L", "DNK05472": "mmHg", "DNK05473": "mmHg",
         "NPU03804": "kg", "NPU21692": "/min", "NPU19661": "mg/g"}  # fmt: skip
CPR = "6101601234"  # synthetic (day of month + 60)
ISSUER, AUDIENCE = "https://idp.bench.flp", "flp-bench"


def _load(db, values: int) -> None:
    """One clinic, one patient with a diabetes plan, a diagnosis and ``values`` converted values."""
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO PLSP.Klinik (SorCode, Ydernummer, Name) "
            "VALUES ('990000011000016', '123456', 'Bench Lægehus') RETURNING KlinikId"
        )
        clinic = cur.fetchone()[0]
        cur.execute(
            "INSERT INTO PLSP.Patient (Cpr, KlinikId, GivenName, FamilyName, BirthDate, Sex) "
            "VALUES (%s, %s, 'Bent', 'Bench', '1960-01-21', 'M') RETURNING PatientId",
            (CPR, clinic),
        )
        patient = cur.fetchone()[0]
        cur.execute(
            "INSERT INTO PLSP.Forloebsplan (PatientId, ForloebCode) VALUES (%s, 'ALAL22')", (patient,)
        )
        for code, prefix, system in (("T90", "T90", "ICPC2"),):
            cur.execute(
                "INSERT INTO PLSP.RelevantDiagnose "
                "(CodeSystem, Code, ActiveFromUtc, ForloebCode, Description) "
                "VALUES (%s, %s, '2000-01-01', 'ALAL22', 'Diabetes type 2') ON CONFLICT DO NOTHING",
                (system, prefix),
            )
            cur.execute(
                "INSERT INTO PLSP.Diagnose (PatientId, Code, CodeSystem, DiagnosedDate) "
                "VALUES (%s, %s, %s, %s)",
                (patient, code, system, dt.date(2015, 3, 1)),
            )
        for code in CODES:
            cur.execute(
                "INSERT INTO PLSP.RelevantVaerdi "
                "(Code, ActiveFromUtc, ForloebCode, Unit, DataType, Description) "
                "VALUES (%s, '2000-01-01', NULL, %s, 'numeric', %s) ON CONFLICT DO NOTHING",
                (code, UNITS[code], f"{code} ({UNITS[code]})"),
            )
        rows = [
            (patient, CODES[i % len(CODES)], str(40 + i % 30), 40 + i % 30, UNITS[CODES[i % len(CODES)]],
             now - dt.timedelta(days=7 * i))
            for i in range(values)
        ]  # fmt: skip
        cur.executemany(
            "INSERT INTO PLSP.Patientvaerdier (PatientId, Code, RawValue, ValueNumeric, Unit, MeasuredUtc, "
            "ConversionStatus, ConvertedUtc) VALUES (%s, %s, %s, %s, %s, %s, 1, now())",
            rows,
        )


def serve(url: str, port: int, key_file: str) -> None:
    """The child: the service's app plus the floor route, under uvicorn on loopback."""
    import uvicorn
    from fastapi import Depends, Response

    from orchestrator.cda import documents
    from orchestrator.db.connection import Database
    from orchestrator.http.app import create_app
    from orchestrator.http.auth import require
    from orchestrator.http.settings import HttpSettings

    settings = HttpSettings("127.0.0.1", port, Path(key_file), None, ISSUER, AUDIENCE, 30, None, None)
    db = Database(url)
    app = create_app(settings, db)
    app.state.cda_hash_key = b"b" * 32
    with db.connect() as conn:
        prebuilt = documents.for_citizen(db, conn, CPR)[1][0].to_bytes()

    def floor(_=Depends(require("citizen"))) -> Response:  # noqa: B008
        return Response(prebuilt, media_type="application/xml", headers={"ETag": '"floor"'})

    app.add_api_route("/floor", floor, methods=["GET"], include_in_schema=False)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


async def _latencies(url: str, token: str, rounds: int) -> tuple[list[float], int]:
    import aiohttp

    out, size = [], 0
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as session:
        for i in range(rounds + 20):
            started = time.perf_counter()
            async with session.get(url) as resp:
                body = await resp.read()
                assert resp.status == 200, (resp.status, body[:200])
            if i >= 20:  # warm-up left out
                out.append((time.perf_counter() - started) * 1000)
            size = len(body)
    return out, size


async def _throughput(url: str, token: str, seconds: float, concurrency: int) -> float:
    import aiohttp

    done = 0
    deadline = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, headers={"Authorization": f"Bearer {token}"}) as s:

        async def worker():
            nonlocal done
            while time.perf_counter() < deadline:
                async with s.get(url) as resp:
                    await resp.read()
                    assert resp.status == 200
                done += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return done / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--values", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=400)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--serve", nargs=3, metavar=("URL", "PORT", "KEYFILE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve[0], int(args.serve[1]), args.serve[2])
        return

    import jwt
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pg_server() as server_url, fresh_database(server_url) as db, tempfile.TemporaryDirectory() as tmp:
        _load(db, args.values)
        key_file = Path(tmp) / "pub.pem"
        key_file.write_bytes(
            key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        now = int(time.time())
        claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "bench", "iat": now, "exp": now + 3600,
                  "role": "citizen", "cpr": CPR}  # fmt: skip
        token = jwt.encode(claims, key, algorithm="RS256")
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        sock.close()
        child = subprocess.Popen(
            [sys.executable, "-m", "bench.bench_cda", "--serve", db.url, str(port), str(key_file)],
            env={**os.environ},
        )
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 30
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    if time.monotonic() > deadline or child.poll() is not None:
                        raise SystemExit("the service did not start") from None
                    time.sleep(0.1)
            cda_url, floor_url = f"{base}/v1/citizen/care-plans/ALAL22/cda", f"{base}/floor"
            ours, size = asyncio.run(_latencies(cda_url, token, args.rounds))
            floor, floor_size = asyncio.run(_latencies(floor_url, token, args.rounds))
            ours_rps = asyncio.run(_throughput(cda_url, token, args.seconds, args.concurrency))
            floor_rps = asyncio.run(_throughput(floor_url, token, args.seconds, args.concurrency))
        finally:
            child.terminate()
            child.wait(10)
    p50, p99 = percentile(ours, 0.5), percentile(ours, 0.99)
    f50, f99 = percentile(floor, 0.5), percentile(floor, 0.99)
    report(
        f"HentCDA: a patient with {args.values} values, document {size:,} bytes (floor {floor_size:,}); "
        f"{args.rounds} sequential requests, then {args.concurrency} in flight for {args.seconds:g} s",
        [
            ("p50 build-and-serve, ms", f"{p50:.2f}", f"{f50:.2f}", f"{p50 / f50:.1f}"),
            ("p99 build-and-serve, ms", f"{p99:.2f}", f"{f99:.2f}", f"{p99 / f99:.1f}"),
            ("requests per second", f"{ours_rps:,.0f}", f"{floor_rps:,.0f}", f"{ours_rps / floor_rps:.2f}"),
        ],
    )


if __name__ == "__main__":
    main()
