"""Faults under load: the real service with 2 workers, its own Redis and its own PostgreSQL.

The script starts everything it breaks, on loopback ports of its own, so it never touches the
machine's services:

- a Redis (``redis-server --port N``, no persistence) for the shared recent history,
- a PostgreSQL cluster (``initdb`` + ``pg_ctl`` in a temporary folder, another port; run as the
  ``postgres`` user when started as root) for the events table,
- ``recforge serve --workers 2`` over an implicit-ALS model of ML-100K (64 factors, 15 epochs).

Then an open-loop load (fixed arrival rate; latency measured from each request's *scheduled* send
time, so queueing behind a stalled server is counted) of ``--rate`` requests/s for ``--seconds``:
90% ``GET /v1/users/{u}/recommendations?k=10`` over ML-100K users, 10% ``POST /v1/events``, each
event with a unique user id so the events table can be counted afterwards. During the run Redis
is stopped for 10 s and started again, and PostgreSQL is restarted once (``pg_ctl restart -m fast``).

Reported: p50/p99 latency and answers by status, inside and outside the fault windows (a window
is the fault plus 2 s); events acknowledged (201/202) against events stored in the table (must be
equal: nothing acknowledged is lost; an event answered 503 was refused, not acknowledged); RSS of
the service (all processes) before and after. ``--soak`` runs a 10-minute load at 300 req/s
with no faults and reports RSS growth (target < 10%).

Run: ``python -m benchmarks.bench_faults [--rate 500] [--seconds 60] [--soak | --soak-only]`` (with
``RECFORGE_DATA_DIR`` set). Only 127.0.0.1 is contacted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

HOST = "127.0.0.1"
KEY = "bench-faults-key"
TIMEOUT = 5.0  # client timeout per request (counted as status 0)


# ---------------------------------------------------------------------------------------- helpers
def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        path = shutil.which(name)
        if path is None:
            raise SystemExit(f"bench_faults: {name} not found (install PostgreSQL server binaries)")
        return path
    return found[-1]


def _as_pg(cmd: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run its tools as the ``postgres`` user then."""
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


def _run(cmd: list[str], **kw: Any) -> None:
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)


class Redis:
    def __init__(self, port: int) -> None:
        self.port = port

    def start(self) -> None:
        _run(["redis-server", "--port", str(self.port), "--bind", HOST, "--save", "", "--appendonly", "no",
              "--daemonize", "yes", "--dir", tempfile.gettempdir()])
        for _ in range(100):
            if self.ping():
                return
            time.sleep(0.05)
        raise RuntimeError("redis did not start")

    def stop(self) -> None:
        subprocess.run(["redis-cli", "-p", str(self.port), "shutdown", "nosave"], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)

    def ping(self) -> bool:
        r = subprocess.run(["redis-cli", "-p", str(self.port), "ping"], capture_output=True, text=True)
        return r.stdout.strip() == "PONG"


class Postgres:
    def __init__(self, port: int, folder: Path) -> None:
        self.port = port
        self.data = folder / "pgdata"
        self.log = folder / "pg.log"
        self.folder = folder

    def init(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres", "postgres")
        _run(_as_pg([_pg_bin("initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8"]))
        self.start()

    def _ctl(self, *args: str) -> None:
        _run(_as_pg([_pg_bin("pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60",
                     "-o", f"-p {self.port} -k {self.folder} -c listen_addresses={HOST}", *args]))

    def start(self) -> None:
        self._ctl("start")

    def restart(self) -> float:
        t = time.perf_counter()
        self._ctl("restart", "-m", "fast")
        return time.perf_counter() - t

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self._ctl("stop", "-m", "fast")

    @property
    def url(self) -> str:
        return f"postgresql://postgres@{HOST}:{self.port}/postgres"


def _rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and all its descendants (MB)."""
    total = 0
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/status") as fh:
                for line in fh:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
            with open(f"/proc/{p}/task/{p}/children") as fh:
                todo.extend(int(x) for x in fh.read().split())
        except OSError:
            continue
    return total / 1024


# ---------------------------------------------------------------------------------------- load
async def _request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, method: str, path: str,
                   body: bytes | None) -> tuple[int, bytes]:
    head = f"{method} {path} HTTP/1.1\r\nHost: {HOST}\r\n"
    if body is not None:
        head += f"Content-Type: application/json\r\nX-API-Key: {KEY}\r\nContent-Length: {len(body)}\r\n"
    writer.write(head.encode() + b"\r\n" + (body or b""))
    await writer.drain()
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionError("closed")
    status = int(status_line.split()[1])
    length = 0
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        k, _, v = line.decode("latin-1").partition(":")
        if k.lower() == "content-length":
            length = int(v)
    data = await reader.readexactly(length) if length else b""
    return status, data


async def _load(port: int, plan: list[tuple[str, str, bytes | None]], rate: float, connections: int
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[bytes | None]]:
    """Send ``plan`` open-loop at ``rate``; per request: scheduled offset (s), latency (s), status
    (0 = timeout or connection failure) and the response body of POSTs."""
    clock = time.perf_counter
    start = clock() + 0.3
    n = len(plan)
    due = np.arange(n) / rate
    lat = np.full(n, np.nan)
    codes = np.zeros(n, np.int32)
    bodies: list[bytes | None] = [None] * n

    async def worker(w: int) -> None:
        conn = None
        for j in range(w, n, connections):
            delay = start + due[j] - clock()
            if delay > 0:
                await asyncio.sleep(delay)
            method, path, body = plan[j]
            try:
                if conn is None:
                    conn = await asyncio.wait_for(asyncio.open_connection(HOST, port), TIMEOUT)
                codes[j], data = await asyncio.wait_for(_request(*conn, method, path, body), TIMEOUT)
                if body is not None:
                    bodies[j] = data
            except (OSError, asyncio.TimeoutError, ConnectionError, asyncio.IncompleteReadError, ValueError,
                    IndexError):
                codes[j] = 0
                if conn is not None:
                    conn[1].close()
                conn = None
            lat[j] = clock() - (start + due[j])
        if conn is not None:
            conn[1].close()

    await asyncio.gather(*(worker(w) for w in range(connections)))
    return due, lat, codes, bodies


def _plan(users: list[Any], n: int, write_share: float, run: str, items: list[Any], seed: int = 0
          ) -> list[tuple[str, str, bytes | None]]:
    rng = np.random.default_rng(seed)
    out: list[tuple[str, str, bytes | None]] = []
    for j in range(n):
        if rng.random() < write_share:
            ev = {"user_id": f"{run}-{j}", "item_id": items[int(rng.integers(len(items)))], "type": "click"}
            out.append(("POST", "/v1/events", json.dumps(ev).encode()))
        else:
            out.append(("GET", f"/v1/users/{users[int(rng.integers(len(users)))]}/recommendations?k=10", None))
    return out


def _summary(lat: np.ndarray, codes: np.ndarray) -> dict[str, Any]:
    ms = lat * 1e3
    by = {str(c): int((codes == c).sum()) for c in sorted(set(codes.tolist()))}
    return {"requests": int(len(lat)), "p50 ms": round(float(np.percentile(ms, 50)), 2) if len(ms) else None,
            "p99 ms": round(float(np.percentile(ms, 99)), 2) if len(ms) else None,
            "max ms": round(float(ms.max()), 1) if len(ms) else None, "by status": by}


# ---------------------------------------------------------------------------------------- setup
def _model(folder: Path) -> tuple[Path, list[Any], list[Any]]:
    from recforge.config import FitOptions
    from recforge.data.datasets import load
    from recforge.models.factorization.als import ImplicitALS

    data = load("ml-100k").interactions
    model = ImplicitALS(embedding_size=64, epochs=15, reg=0.05, alpha=5.0).fit(data, FitOptions(seed=0, threads=1))
    path = folder / "ials.npz"
    model.save(path)
    users = data.users.ids[model.user_known_].tolist()
    items = data.items.ids[model.item_known_].tolist()
    return path, users, items


def _start_service(model: Path, pg: Postgres, redis_port: int, port: int, workers: int, log: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    cmd = [sys.executable, "-m", "recforge.cli.main", "serve", "--model-path", str(model), "--database", pg.url,
           "--redis", f"redis://{HOST}:{redis_port}/0", "--workers", str(workers), "--port", str(port),
           "--api-key", KEY, "--log-level", "warning"]
    proc = subprocess.Popen(cmd, env=env, stdout=open(log, "wb"), stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + 180
    while time.time() < deadline:
        with contextlib.suppress(OSError):
            if urllib.request.urlopen(f"http://{HOST}:{port}/readyz", timeout=2).status == 200:
                return proc
        if proc.poll() is not None:
            raise RuntimeError(f"the service exited: {log.read_text()[-2000:]}")
        time.sleep(0.5)
    raise RuntimeError("the service did not become ready in 180 s")


def _stored(pg: Postgres, run: str) -> int:
    import sqlalchemy as sa

    from recforge.serving.db import make_engine

    eng = make_engine(pg.url)
    try:
        with eng.connect() as conn:
            return int(conn.execute(sa.text("SELECT count(*) FROM events WHERE user_id LIKE :p"),
                                    {"p": f"{run}-%"}).scalar_one())
    finally:
        eng.dispose()


# ---------------------------------------------------------------------------------------- runs
def fault_run(rate: float, seconds: float, workers: int, connections: int) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="recforge-faults-"))
    folder.chmod(0o755)  # PostgreSQL runs as another user when started as root
    redis = Redis(_free_port())
    pg = Postgres(_free_port(), folder / "pg")
    proc = None
    try:
        t_setup = time.perf_counter()
        model, users, items = _model(folder)
        redis.start()
        pg.init()
        port = _free_port()
        proc = _start_service(model, pg, redis.port, port, workers, folder / "service.log")
        setup_s = time.perf_counter() - t_setup
        # warm up (both workers), then measure memory
        asyncio.run(_load(port, _plan(users, 400, 0.0, "warm", items, seed=1), 200.0, 16))
        rss_before = _rss_mb(proc.pid)
        run = f"faults{int(time.time())}"
        n = int(rate * seconds)
        plan = _plan(users, n, 0.10, run, items)
        windows: list[tuple[float, float, str]] = []
        t_redis, t_pg = 0.25 * seconds, 0.65 * seconds

        async def faults(t0: float) -> None:
            await asyncio.sleep(max(0.0, t0 + t_redis - time.perf_counter()))
            a = time.perf_counter() - t0
            await asyncio.to_thread(redis.stop)
            await asyncio.sleep(10)
            await asyncio.to_thread(redis.start)
            windows.append((a, time.perf_counter() - t0 + 2.0, "redis stopped 10 s"))
            await asyncio.sleep(max(0.0, t0 + t_pg - time.perf_counter()))
            a = time.perf_counter() - t0
            took = await asyncio.to_thread(pg.restart)
            windows.append((a, time.perf_counter() - t0 + 2.0, f"postgresql restart ({took:.1f} s)"))

        async def both() -> Any:
            t0 = time.perf_counter() + 0.3  # _load starts 0.3 s after it is called
            res, _ = await asyncio.gather(_load(port, plan, rate, connections), faults(t0))
            return res

        t_run = time.perf_counter()
        due, lat, codes, bodies = asyncio.run(both())
        wall = time.perf_counter() - t_run
        time.sleep(1.0)
        rss_after = _rss_mb(proc.pid)
        # a request is inside a fault window when its life (scheduled send to answer) overlaps one:
        # under queueing a request sent before a fault may be served during it
        end = due + np.nan_to_num(lat, nan=TIMEOUT)
        in_fault = np.zeros(len(due), bool)
        for a, b, _ in windows:
            in_fault |= (due < b) & (end >= a)
        is_post = np.array([p[0] == "POST" for p in plan])
        acked = int(((codes == 201) | (codes == 202))[is_post].sum())
        stored = _stored(pg, run)
        return {
            "rate": rate, "seconds": seconds, "workers": workers, "connections": connections,
            "setup s": round(setup_s, 1), "wall s": round(wall, 1),
            "achieved req/s": round(len(plan) / wall, 1),
            "fault windows": [{"from s": round(a, 1), "to s": round(b, 1), "what": w} for a, b, w in windows],
            "outside faults": _summary(lat[~in_fault], codes[~in_fault]),
            "inside faults": _summary(lat[in_fault], codes[in_fault]),
            "500 (internal error), anywhere": int((codes == 500).sum()),
            "5xx outside faults": int((codes[~in_fault] >= 500).sum()),
            "timeouts or dropped connections": int((codes == 0).sum()),
            "events sent": int(is_post.sum()), "events acknowledged (201/202)": acked,
            "events stored": stored, "acknowledged but lost": max(0, acked - stored),
            "stored but not acknowledged (client timeout)": max(0, stored - acked),
            "events refused (503)": int((codes[is_post] == 503).sum()),
            "rss before MB": round(rss_before, 1), "rss after MB": round(rss_after, 1),
        }
    finally:
        if proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            with contextlib.suppress(Exception):
                proc.wait(30)
        redis.stop()
        pg.stop()
        shutil.rmtree(folder, ignore_errors=True)


def soak_run(rate: float, seconds: float, workers: int, connections: int) -> dict[str, Any]:
    """A long steady load without faults: RSS at the start, every minute, and at the end."""
    folder = Path(tempfile.mkdtemp(prefix="recforge-soak-"))
    folder.chmod(0o755)
    redis = Redis(_free_port())
    pg = Postgres(_free_port(), folder / "pg")
    proc = None
    try:
        model, users, items = _model(folder)
        redis.start()
        pg.init()
        port = _free_port()
        proc = _start_service(model, pg, redis.port, port, workers, folder / "service.log")
        asyncio.run(_load(port, _plan(users, 400, 0.1, "warm", items, seed=1), 200.0, 16))
        rss = [_rss_mb(proc.pid)]
        chunks, per = max(1, int(seconds // 60)), min(60.0, seconds)
        lats, codes_all = [], []
        for c in range(chunks):
            plan = _plan(users, int(rate * per), 0.10, f"soak{c}", items, seed=10 + c)
            _, lat, codes, _ = asyncio.run(_load(port, plan, rate, connections))
            lats.append(lat)
            codes_all.append(codes)
            rss.append(_rss_mb(proc.pid))
        lat, codes = np.concatenate(lats), np.concatenate(codes_all)
        return {"rate": rate, "seconds": chunks * per, "workers": workers, **_summary(lat, codes),
                "rss MB per minute": [round(x, 1) for x in rss],
                "rss growth %": round(100 * (rss[-1] - rss[1]) / rss[1], 1) if len(rss) > 2 else None}
    finally:
        if proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            with contextlib.suppress(Exception):
                proc.wait(30)
        redis.stop()
        pg.stop()
        shutil.rmtree(folder, ignore_errors=True)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=float, default=500.0)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--soak", action="store_true", help="also a 10-minute soak at 300 req/s (RSS growth)")
    ap.add_argument("--soak-only", action="store_true", help="only the soak (no fault run)")
    ap.add_argument("--soak-seconds", type=float, default=600.0)
    ap.add_argument("--output", type=Path, default=None, help="write the report as JSON here too")
    args = ap.parse_args(argv if argv is not None else [])
    report: dict[str, Any] = {}
    if not args.soak_only:
        report["faults"] = fault_run(args.rate, args.seconds, args.workers, args.connections)
        print(json.dumps(report["faults"], indent=2), flush=True)
    if args.soak or args.soak_only:
        report["soak"] = soak_run(300.0, args.soak_seconds, args.workers, args.connections)
        print(json.dumps(report["soak"], indent=2), flush=True)
    if args.output is not None:
        args.output.write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
