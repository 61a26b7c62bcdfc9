"""Load test of `recdiff serve`: single-user POST /recommend requests from a second process.

Starts ``recdiff serve RUN`` in a subprocess on a free loopback port (access log off), waits for
``GET /health``, then sends ``--requests`` requests ``{"user": id, "k": K}`` for users drawn at
random (seed 0) from the run, ``--concurrency`` at a time, from this process (asyncio + httpx,
keep-alive connections). Before that, ``--warmup`` requests are sent and not counted, and
``--sequential`` requests are sent one at a time to measure the latency of an idle service.

Run from the repository root (needs the serve extra)::

    python3 benchmarks/serve_load.py --run runs/diffrec-ml1m-tuned-...  # --requests 2000 --concurrency 8
    python3 benchmarks/serve_load.py      # no --run: trains demo-diffrec into a temporary folder

Writes ``benchmarks/results/serve_load.json`` and prints a table. Target (issue 6): >= 200
requests/s and p99 < 100 ms for single-user requests of a DiffRec ML-1M model on the 2-core
development machine. Both processes share the machine's cores, so the client's own CPU time is
reported beside the server's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import (
    RESULTS,
    non_negative_float,
    non_negative_int,
    positive_int,
    write_json,
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process so far (Linux /proc; None elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_server(run: Path, port: int, args: argparse.Namespace) -> subprocess.Popen:
    command = [sys.executable, "-m", "recdiff", "serve", str(run), "--port", str(port)]
    command += ["--no-access-log", "--max-batch", str(args.max_batch)]
    command += ["--max-wait-ms", str(args.max_wait_ms)]
    if args.server_threads:
        command += ["--threads", str(args.server_threads)]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def wait_ready(url: str, server: subprocess.Popen, timeout: float = 300) -> float:
    import httpx

    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited:\n{server.stderr.read().decode()}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return time.perf_counter() - start
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"no answer from {url}/health within {timeout:.0f} s")


async def send(url: str, users: list, k: int, concurrency: int) -> tuple[list[float], int, float]:
    """Latencies (s) of requests for ``users``, ``concurrency`` in flight; errors; wall time."""
    import httpx

    latencies: list[float] = []
    errors = 0
    pending = iter(users)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:

        async def worker() -> None:
            nonlocal errors
            for user in pending:
                start = time.perf_counter()
                response = await client.post("/recommend", json={"user": user, "k": k})
                latencies.append(time.perf_counter() - start)
                errors += response.status_code != 200

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return latencies, errors, time.perf_counter() - start


def summary(latencies: list[float], seconds: float) -> dict:
    ms = np.asarray(latencies) * 1000
    return {
        "requests": len(latencies),
        "seconds": seconds,
        "requests_per_s": len(latencies) / seconds,
        "latency_ms": {
            "mean": float(ms.mean()),
            "p50": float(np.percentile(ms, 50)),
            "p90": float(np.percentile(ms, 90)),
            "p99": float(np.percentile(ms, 99)),
            "max": float(ms.max()),
        },
    }


def demo_run(folder: Path) -> Path:
    from recdiff.config import load_config
    from recdiff.train.run import run_training

    print("no --run given: training demo-diffrec (seconds)")
    return run_training(load_config("demo-diffrec", []), folder, progress=False).directory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, help="a run directory (default: train demo-diffrec)")
    parser.add_argument(
        "--requests", type=positive_int, default=2000, help="requests timed under load"
    )
    parser.add_argument(
        "--concurrency", type=positive_int, default=8, help="requests in flight under load"
    )
    parser.add_argument("--k", type=positive_int, default=10, help="items per recommendation")
    parser.add_argument(
        "--warmup",
        type=non_negative_int,
        default=100,
        help="requests sent first and not counted",
    )
    parser.add_argument(
        "--sequential", type=positive_int, default=200, help="idle-latency requests"
    )
    parser.add_argument(
        "--max-batch", type=positive_int, default=32, help="the server's --max-batch"
    )
    parser.add_argument(
        "--max-wait-ms",
        type=non_negative_float,
        default=10.0,
        help="the server's --max-wait-ms: how long it waits to fill a batch",
    )
    parser.add_argument(
        "--server-threads", type=positive_int, help="the server's --threads (torch)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=RESULTS / "serve_load.json",
        help="results JSON path (default: benchmarks/results/serve_load.json)",
    )
    args = parser.parse_args()
    import httpx

    with tempfile.TemporaryDirectory() as tmp:
        run = args.run or demo_run(Path(tmp))
        users_file = run / "data" / "users.json"
        if not users_file.is_file():
            raise SystemExit(f"{run} is not a run directory (no data/users.json)")
        ids = json.loads(users_file.read_text())["ids"]
        rng = np.random.default_rng(0)
        draw = [ids[i] for i in rng.integers(0, len(ids), args.requests + args.warmup)]
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = start_server(run, port, args)
        try:
            startup = wait_ready(url, server)
            asyncio.run(send(url, draw[: args.warmup], args.k, args.concurrency))
            idle, _, idle_seconds = asyncio.run(send(url, draw[: args.sequential], args.k, 1))
            before = httpx.get(f"{url}/health", timeout=10).json()["scored"]
            server_cpu, client_cpu = cpu_seconds(server.pid), time.process_time()
            latencies, errors, seconds = asyncio.run(
                send(url, draw[args.warmup :], args.k, args.concurrency)
            )
            server_cpu_end, client_cpu_end = cpu_seconds(server.pid), time.process_time()
            info = httpx.get(f"{url}/model", timeout=10).json()
            after = httpx.get(f"{url}/health", timeout=10).json()["scored"]
        finally:
            server.terminate()
            server.wait(timeout=30)
    loaded = summary(latencies, seconds)
    result = {
        "run": str(run if args.run else "demo-diffrec (temporary)"),
        "model": info["model"],
        "n_items": info["n_items"],
        "n_users": info["n_users"],
        "k": args.k,
        "concurrency": args.concurrency,
        "max_batch": args.max_batch,
        "max_wait_ms": args.max_wait_ms,
        "errors": errors,
        "server_threads": args.server_threads,
        "requests_per_model_call": (after["requests"] - before["requests"])
        / max(after["model_calls"] - before["model_calls"], 1),
        "startup_seconds": startup,
        "loaded": loaded,
        "sequential": summary(idle, idle_seconds),
        "cpu_seconds_per_request": {
            "server": None
            if server_cpu is None
            else (server_cpu_end - server_cpu) / len(latencies),
            "client": (client_cpu_end - client_cpu) / len(latencies),
        },
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_1min_after": os.getloadavg()[0],  # other jobs skew the numbers
        },
    }
    write_json(args.out, result)
    print(table(result))
    print(f"wrote {args.out}")


def table(result: dict) -> str:
    lines = [
        f"{result['model']} ({result['n_users']:,} users x {result['n_items']:,} items), "
        f"k = {result['k']}, server up in {result['startup_seconds']:.1f} s, "
        f"{result['errors']} errors, {result['requests_per_model_call']:.1f} requests per model "
        "call under load",
        f"{'':<28}{'req/s':>8}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'max ms':>9}",
    ]
    phases = [
        (f"concurrency {result['concurrency']}", result["loaded"]),
        ("one at a time", result["sequential"]),
    ]
    for label, phase in phases:
        lat = phase["latency_ms"]
        lines.append(
            f"{label:<28}{phase['requests_per_s']:>8.0f}{lat['p50']:>9.1f}{lat['p90']:>9.1f}"
            f"{lat['p99']:>9.1f}{lat['max']:>9.1f}"
        )
    lines.append(
        f"machine load average (1 min) after the run: {result['machine']['load_average_1min_after']:.1f}"
    )
    cpu = result["cpu_seconds_per_request"]
    if cpu["server"] is not None:
        lines.append(
            f"CPU per request under load: server {cpu['server'] * 1000:.2f} ms, "
            f"client {cpu['client'] * 1000:.2f} ms"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
