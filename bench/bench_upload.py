"""UploadData under a full resync (known problem 3): ``python -m bench.bench_upload``.

One run, on a throwaway PostgreSQL and the real service (uvicorn in a child
process, on a loopback port, with bearer tokens):

1. first load: ROWS rows from one LPS, in batches of BATCH_PATIENTS patient
   documents (default 400: 4,000 rows; over the bulk threshold, so each is a
   bulk job: 202), two requests in flight (the service queues one bulk
   upload at a time and the other waits up to 2 s for the slot, already
   validated: a pipeline, not a 429), from a bulk client in a process of
   its own (``--no-bulk-process``: in the small clients' event loop); the
   client paces on the RateLimit fields and honours a 429's Retry-After; the
   time runs until the last job is drained;
2. full resync of the same rows, unchanged, the same way: the share of no-op
   rows and the time against the first load (targets: >= 99 %, <= 0.2x);
3. small concurrent uploads (one patient, 5 rows) from OTHER_LPS other
   clinics, paced, first with the service idle, then during a second resync
   (posted and drained): p99 during / p99 idle (target <= 2).

The drain is Job.upload_drain (Job.run_batched, its settings as migrated:
SleepFactor 1.0 for upload_drain), CALLed again and again by a thread of this
benchmark from the first request on (the orchestrator runs it every minute;
the benchmark does not wait for the minute). The load generator is a small
asyncio client on aiohttp (bounded: a fixed number of clients, each waiting
for its answer before the next request).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import socket
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import psycopg

from bench.common import fresh_database, percentile, pg_server, report, verdict, warm
from orchestrator.db.urls import libpq_url
from orchestrator.http.ratelimit import client_pause

ISSUER, AUDIENCE = "https://idp.bench.flp", "flp-service"
BULK_SOR = "100001"
RELEVANT_SQL = """
DELETE FROM PLSP.RelevantVaerdi WHERE Code IN ('NPU27300', 'DNK05472');
INSERT INTO PLSP.RelevantVaerdi (Code, ActiveFromUtc, Unit, DataType, MinValue, MaxValue, Description) VALUES
    ('NPU27300', '2000-01-01', 'mmol/mol', 'numeric', 10, 250, 'HbA1c'),
    ('DNK05472', '2000-01-01', 'mmHg', 'numeric', 40, 300, 'Systolisk blodtryk');
DELETE FROM PLSP.RelevantDiagnose WHERE CodeSystem = 'ICPC2' AND Code = 'T90';
INSERT INTO PLSP.RelevantDiagnose (CodeSystem, Code, ActiveFromUtc, ForloebCode, Description)
    VALUES ('ICPC2', 'T90', '2000-01-01', 'ALAL22', 'Diabetes type 2');
DELETE FROM PLSP.RelevantYdelse WHERE ServiceCode IN ('0120', '0101');
INSERT INTO PLSP.RelevantYdelse (ServiceCode, ActiveFromUtc, Description) VALUES
    ('0120', '2000-01-01', 'Aarskontrol'), ('0101', '2000-01-01', 'Konsultation');
"""


def cpr(n: int, base: int) -> str:
    """Synthetic replacement numbers (day + 60), unique per n: never a real person's."""
    day = 61 + n % 28
    month = 1 + (n // 28) % 12
    year = 40 + (n // 336) % 50
    serial = base + (n // 16800) % 1000
    return f"{day:02d}{month:02d}{year:02d}{serial:04d}"


def patient(n: int, base: int, rows: int) -> dict:
    values = [
        {"code": "NPU27300" if i % 2 else "DNK05472", "value": f"{40 + i},5", "time": f"2024-01-{1 + i:02d}"}
        for i in range(rows - 2)
    ]
    return {
        "cpr": cpr(n, base),
        "values": values,
        "diagnoses": [{"codeSystem": "ICPC2", "code": "T90", "diagnosedDate": "2020-01-01"}],
        "services": [{"serviceCode": "0120", "serviceDate": "2024-02-01"}],
    }


def _serve(
    db_url: str, key_file: str, port: int, rate: float, burst: int, concurrency: int, validate_processes: int
) -> None:
    import uvicorn

    from orchestrator import logs
    from orchestrator.db.connection import Database
    from orchestrator.http.app import create_app
    from orchestrator.http.limits import Limits
    from orchestrator.http.settings import HttpSettings

    hs = HttpSettings("127.0.0.1", port, Path(key_file), None, ISSUER, AUDIENCE, 30, None, None)
    limits = Limits(rate, burst, concurrency, validate_processes=validate_processes)
    app = create_app(hs, Database(db_url), limits)
    logs.setup("WARNING", "keyvalue")
    uvicorn.run(app, host="127.0.0.1", port=port, log_config=None, access_log=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def keys(folder: Path):
    import jwt
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pub = folder / "bench.pub.pem"
    pub.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )

    tokens: dict[str, str] = {}

    def token(sor: str) -> str:
        # One token per clinic for the run, as an LPS keeps its token until it expires: signing one
        # (RS256, about 3 ms) per request would run in the load generator's event loop and add to
        # the latency it measures for the other clients.
        if sor not in tokens:
            now = int(time.time())
            claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": sor, "exp": now + 3600, "role": "lps"}
            tokens[sor] = jwt.encode({**claims, "sor": sor, "ydernummer": sor}, key, algorithm="RS256")
        return tokens[sor]

    return pub, token


async def post(
    session, url: str, token: str, body: dict | bytes, throttled: list[int], in_flight: int = 1
) -> dict:
    """One upload; a 429 is honoured (Retry-After), and the client paces on the RateLimit fields:
    when the clinic's bucket has fewer than ``in_flight`` uploads left it waits a token's time
    before it returns, instead of meeting the 429 with its whole second of Retry-After."""
    if isinstance(body, bytes):
        kwargs = {
            "data": body,
            "headers": {"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        }
    else:
        kwargs = {"json": body, "headers": {"Authorization": f"Bearer {token}"}}
    while True:
        async with session.post(url, **kwargs) as resp:
            data = await resp.json(content_type=None)
            if resp.status == 429:
                throttled.append(1)
                await asyncio.sleep(float(resp.headers.get("Retry-After", "1")))
                continue
            if resp.status not in (200, 202):
                raise RuntimeError(f"{resp.status}: {data}")
            pause = client_pause(resp.headers, in_flight)
        if pause:
            await asyncio.sleep(pause)
        return data


class Drain:
    """Job.upload_drain, CALLed again and again on its own connection until stopped."""

    def __init__(self, db_url: str) -> None:
        self.url = libpq_url(db_url)
        self.stop = threading.Event()
        self.runs = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self.stop.is_set():
                conn.execute("CALL Job.upload_drain('Y', NULL, 'test', 'bench', NULL, NULL, NULL)")
                self.runs += 1
                self.stop.wait(0.1)

    def __enter__(self) -> Drain:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(60)


def drain_sleep_seconds(db_url: str) -> float:
    """The seconds the drain slept so far (Job.run_batched sleeps SleepFactor times each batch that
    applied rows, at most 60 s): the first load's time less this is what it would take drained
    un-throttled (an estimate: the batches would also run a little faster alone)."""
    with psycopg.connect(libpq_url(db_url), autocommit=True) as conn:
        factor = conn.execute(
            "SELECT coalesce(max(CASE WHEN JobName = 'upload_drain' THEN Value END), "
            "max(CASE WHEN JobName = '*' THEN Value END)) FROM Ops.Setting WHERE Name = 'SleepFactor'"
        ).fetchone()[0]
        slept_ms = conn.execute(
            "SELECT coalesce(sum(least(b.DurationMs * %s::numeric, 60000)), 0) "
            "FROM Ops.JobRunBatch AS b INNER JOIN Ops.JobRun AS r ON r.JobRunId = b.JobRunId "
            "WHERE r.JobName = 'upload_drain' AND b.RowsAffected > 0",
            (factor or "0",),
        ).fetchone()[0]
    return float(slept_ms) / 1000


def wait_drained(db_url: str, job_ids: list[int]) -> dict:
    """Wait until every job is done; their rows inserted, updated, unchanged, rejected."""
    with psycopg.connect(libpq_url(db_url), autocommit=True) as conn:
        while True:
            row = conn.execute(
                "SELECT count(*) FILTER (WHERE Status <> 'done'), coalesce(sum(RowsInserted), 0), "
                "coalesce(sum(RowsUpdated), 0), coalesce(sum(RowsUnchanged), 0), "
                "coalesce(sum(RowsRejected), 0) "
                "FROM PLSP.Upload WHERE UploadId = ANY(%s)",
                (job_ids,),
            ).fetchone()
            if row[0] == 0:
                return dict(
                    zip(("inserted", "updated", "unchanged", "rejected"), map(int, row[1:]), strict=True)
                )
            time.sleep(0.05)


async def bulk(
    base: str, token, batches: list[dict] | list[bytes], in_flight: int, db_url: str
) -> tuple[float, dict, int]:
    import aiohttp

    throttled: list[int] = []
    job_ids: list[int] = []
    queue = list(batches)
    url = f"{base}/v1/clinics/{BULK_SOR}/uploads"

    async def worker(session):
        while queue:
            out = await post(session, url, token(BULK_SOR), queue.pop(), throttled, in_flight)
            job_ids.append(out["jobId"])

    started = time.perf_counter()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as session:
        await asyncio.gather(*(worker(session) for _ in range(in_flight)))
    totals = await asyncio.to_thread(wait_drained, db_url, job_ids)
    return time.perf_counter() - started, totals, len(throttled)


def make_batches(rows: int, rows_per_patient: int, batch_patients: int) -> list[dict]:
    patients = rows // rows_per_patient
    docs = [patient(n, 1000, rows_per_patient) for n in range(patients)]
    return [{"patients": docs[i : i + batch_patients]} for i in range(0, patients, batch_patients)]


def bulk_process(
    base: str, token: str, shape: tuple[int, int, int], in_flight: int, db_url: str
) -> tuple[float, dict, int]:
    """``bulk`` in a process of its own (the bench's bulk client): its JSON encoding and its event
    loop do not hold up the small clients' loop, whose latencies are what is measured."""
    batches = [json.dumps(b, separators=(",", ":")).encode() for b in make_batches(*shape)]
    return asyncio.run(bulk(base, lambda _sor: token, batches, in_flight, db_url))


class BulkClient:
    """The bulk rounds, in a process of their own (``own_process``) or in this event loop."""

    def __init__(
        self, base: str, token, shape: tuple[int, int, int], in_flight: int, db_url: str, own_process: bool
    ):
        self.args = (base, token(BULK_SOR), shape, in_flight, db_url)
        self.base, self.token, self.shape, self.in_flight, self.db_url = base, token, shape, in_flight, db_url
        self.pool = None
        if own_process:
            self.pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
            self.pool.submit(time.sleep, 0).result()  # started before any round is timed

    async def round(self) -> tuple[float, dict, int]:
        if self.pool is None:
            return await bulk(self.base, self.token, make_batches(*self.shape), self.in_flight, self.db_url)
        return await asyncio.wrap_future(self.pool.submit(bulk_process, *self.args))

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()


async def small_clients(base: str, token, clients: int, seconds: float, interval: float) -> list[float]:
    import aiohttp

    latencies: list[float] = []
    stop = time.perf_counter() + seconds

    async def client(i: int, session):
        sor = str(200001 + i)
        url = f"{base}/v1/clinics/{sor}/uploads"
        n = 0
        while time.perf_counter() < stop:
            body = patient(n, 5000 + i, 5)
            started = time.perf_counter()
            await post(session, url, token(sor), body, [])
            latencies.append((time.perf_counter() - started) * 1000)
            n += 1
            await asyncio.sleep(interval)

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(client(i, session) for i in range(clients)))
    return latencies


async def during(client: BulkClient, base: str, token, clients: int, interval: float):
    bulk_task = asyncio.ensure_future(client.round())
    await asyncio.sleep(0.5)
    lat = []
    while not bulk_task.done():
        lat += await small_clients(base, token, clients, 2.0, interval)
    return await bulk_task, lat


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--rows-per-patient", type=int, default=10)
    parser.add_argument(
        "--batch-patients",
        type=int,
        default=400,
        help="patients a bulk request (4,000 rows: the per-document cap)",
    )
    parser.add_argument(
        "--in-flight",
        type=int,
        default=2,
        help="bulk requests in flight (the bulk lane queues one at a time; the next waits for it, validated)",
    )
    parser.add_argument("--other-lps", type=int, default=4)
    parser.add_argument(
        "--interval", type=float, default=0.1, help="seconds between a small client's uploads"
    )
    parser.add_argument("--idle-seconds", type=float, default=10)
    parser.add_argument("--rate", type=float, default=20, help="per-LPS uploads per second")
    parser.add_argument("--burst", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=4, help="uploads in the database at once")
    parser.add_argument(
        "--bulk-process",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="the bulk client in a process of its own (else in the small clients' event loop)",
    )
    parser.add_argument(
        "--validate-processes", type=int, default=1, help="the service's validation processes (0: a thread)"
    )
    args = parser.parse_args()

    patients = args.rows // args.rows_per_patient
    shape = (args.rows, args.rows_per_patient, args.batch_patients)
    requests = -(-patients // args.batch_patients)

    with pg_server() as server_url, fresh_database(server_url) as db, tempfile.TemporaryDirectory() as tmp:
        with psycopg.connect(libpq_url(db.url), autocommit=True) as conn:
            conn.execute(RELEVANT_SQL)
        pub, token = keys(Path(tmp))
        port = free_port()
        ctx = multiprocessing.get_context("spawn")
        proc = ctx.Process(
            target=_serve,
            args=(db.url, str(pub), port, args.rate, args.burst, args.concurrency, args.validate_processes),
            daemon=False,  # the service starts its validation process: a daemonic process may not
        )
        proc.start()
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        client = BulkClient(base, token, shape, args.in_flight, db.url, args.bulk_process)
        try:
            with Drain(db.url):
                first_s, first, first_429 = asyncio.run(client.round())
            first_slept = drain_sleep_seconds(db.url)
            warm(db)
            with Drain(db.url):
                resync_s, resync, resync_429 = asyncio.run(client.round())
            idle = asyncio.run(small_clients(base, token, args.other_lps, args.idle_seconds, args.interval))
            with Drain(db.url):
                (busy_s, busy, busy_429), busy_lat = asyncio.run(
                    during(client, base, token, args.other_lps, args.interval)
                )
        finally:
            client.close()
            proc.terminate()
            proc.join(10)

    total = resync["inserted"] + resync["updated"] + resync["unchanged"]
    no_op = resync["unchanged"] / total if total else 0.0
    ratio = resync_s / first_s
    first_work_s = max(first_s - first_slept, 1e-9)  # the first load without the drain's sleeps
    p99_idle, p99_busy = percentile(idle, 0.99), percentile(busy_lat, 0.99)
    print(f"load average (uptime): {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(
        f"bench_upload: {args.rows:,} rows = {patients:,} patients x {args.rows_per_patient}, "
        f"{requests} requests of {args.batch_patients} patients, {args.in_flight} in flight, "
        f"bulk client {'in its own process' if args.bulk_process else 'in the small clients loop'}; "
        f"limits {args.rate:g}/s burst {args.burst} per LPS, {args.concurrency} at once; "
        f"validation processes {args.validate_processes}; "
        f"{args.other_lps} other LPS every {args.interval:g} s"
    )
    report(
        "full resync (known problem 3)",
        [
            ("first load", f"{first_s:.2f} s ({first['inserted']:,} inserted, {first_429} x 429)", "", ""),
            (
                "unchanged resync",
                f"{resync_s:.2f} s ({resync_429} x 429)",
                f"{first_s:.2f} s",
                f"{ratio:.2f}",
            ),
            (
                "unchanged resync / first load without the drain's sleeps (estimate)",
                f"{resync_s:.2f} s",
                f"{first_work_s:.2f} s",
                f"{resync_s / first_work_s:.2f}",
            ),
            ("no-op share of the resync", f"{no_op:.2%}", "", ""),
            (
                "small uploads p99, during resync / idle",
                f"{p99_busy:.1f} ms (n={len(busy_lat)})",
                f"{p99_idle:.1f} ms (n={len(idle)})",
                f"{p99_busy / p99_idle:.2f}" if p99_idle else "-",
            ),
            (
                "small uploads p50 / p90, during / idle",
                f"{percentile(busy_lat, 0.5):.1f} / {percentile(busy_lat, 0.9):.1f} ms",
                f"{percentile(idle, 0.5):.1f} / {percentile(idle, 0.9):.1f} ms",
                f"{percentile(busy_lat, 0.9) / percentile(idle, 0.9):.2f}" if idle else "-",
            ),
            (
                "second resync (with the small uploads)",
                f"{busy_s:.2f} s ({busy_429} x 429)",
                "",
                f"{busy['unchanged']:,} unchanged",
            ),
        ],
    )
    print(
        f"  no-op >= 99 %: {verdict(no_op >= 0.99)}; resync <= 0.2x: {verdict(ratio <= 0.2)}; "
        f"p99 <= 2x idle: {verdict(bool(busy_lat) and p99_idle > 0 and p99_busy <= 2 * p99_idle)}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
