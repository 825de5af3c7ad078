#!/usr/bin/env python3
"""What REDIS_WAIT_REPLICAS costs a revocation — measured, in one run.

    python3 bench/wait_cost.py              # 3000 logouts per setting
    python3 bench/wait_cost.py --count 500  # quicker

Starts its own Redis primary and replica (loopback, no persistence), creates and drops its own
PostgreSQL database, and runs two authauth servers (release build) over the same store: one with
REDIS_WAIT_REPLICAS=0, one with REDIS_WAIT_REPLICAS=1. Sessions are seeded through the real
session service (examples/seed_sessions.rs); logouts alternate between the two servers, one at
a time, so both settings see the same machine at the same moment. Prints the latency of a
logout (p50, p90, p99) under each setting, and of `GET /auth/me` (which WAIT never touches) as
a control. Needs what bench/bench.py needs. See docs/operations.md for the results.
"""

import argparse
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import COOKIE, ROOT, free_port, log, run, wait_port  # noqa: E402

ORIGIN = "https://auth.example.com"


def redis_server(tmp, *extra):
    port = free_port()
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", tmp, *extra],
        stdout=subprocess.DEVNULL)
    wait_port(port)
    return port, proc


def request(url, method="GET", cookie=None):
    req = urllib.request.Request(url, method=method, headers={"Origin": ORIGIN})
    if cookie:
        req.add_header("Cookie", f"{COOKIE}={cookie}")
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(req) as resp:
            status = resp.status
    except urllib.error.HTTPError as e:
        status = e.code
    return status, (time.perf_counter() - started) * 1000


def percentiles(samples):
    q = statistics.quantiles(samples, n=100)
    return {"p50": q[49], "p90": q[89], "p99": q[98], "n": len(samples)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=3000, help="logouts per setting")
    args = ap.parse_args()

    log("building authauth (release)")
    subprocess.run(["cargo", "build", "--release", "--bin", "authauth", "--example", "seed_sessions"],
                   cwd=ROOT, check=True)
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    binary = os.path.join(target, "release", "authauth")
    seeder = os.path.join(target, "release", "examples", "seed_sessions")

    tmp = tempfile.mkdtemp(prefix="authauth-wait-")
    procs = []
    db = f"authauth_wait_{uuid.uuid4().hex[:12]}"
    try:
        primary, p = redis_server(tmp)
        procs.append(p)
        replica_dir = os.path.join(tmp, "replica")
        os.mkdir(replica_dir)
        _, p = redis_server(replica_dir, "--replicaof", "127.0.0.1", str(primary))
        procs.append(p)
        # Connected is not enough: the first full sync waits repl-diskless-sync-delay (5 s).
        while "state=online" not in run(["redis-cli", "-p", str(primary), "INFO", "replication"]):
            time.sleep(0.1)
        run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-c", f'CREATE DATABASE "{db}"'])
        base_env = {
            "PATH": os.environ["PATH"],
            "APP_ENV": "production",
            "PUBLIC_URL": ORIGIN,
            "ALLOWED_HOSTS": "127.0.0.1",
            "RUST_LOG": "warn",
            "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{db}",
            "REDIS_URL": f"redis://127.0.0.1:{primary}",
            "REDIS_KEY_PREFIX": "wait:",
            "SESSION_SECRET": secrets.token_urlsafe(48),
        }
        run([binary, "migrate", "up"], env=base_env, cwd=tmp)
        servers = {}
        for wait in ("0", "1"):
            port = free_port()
            env = dict(base_env, PORT=str(port), REDIS_WAIT_REPLICAS=wait)
            log_file = open(os.path.join(tmp, f"server-{wait}.log"), "w")
            procs.append(subprocess.Popen([binary, "serve"], env=env, cwd=tmp, stdout=log_file, stderr=log_file))
            wait_port(port)
            servers[wait] = f"http://127.0.0.1:{port}"

        cookies_file = os.path.join(tmp, "cookies.txt")
        total = 2 * args.count
        log(f"seeding {total} sessions")
        subprocess.run([seeder, str(total), "1", cookies_file, str(total)], env=base_env, cwd=tmp, check=True,
                       stderr=subprocess.DEVNULL)
        cookies = [c.strip() for c in open(cookies_file) if c.strip()]

        me = {"0": [], "1": []}
        logout = {"0": [], "1": []}
        log(f"{total} logouts, alternating between REDIS_WAIT_REPLICAS=0 and =1")
        for i, cookie in enumerate(cookies):
            wait = "01"[i % 2]
            status, ms = request(servers[wait] + "/auth/me", cookie=cookie)
            assert status == 200, f"/auth/me answered {status}"
            me[wait].append(ms)
            status, ms = request(servers[wait] + "/auth/logout", "POST", cookie)
            if status != 204:
                raise SystemExit(f"logout answered {status}; server log:\n"
                                 + open(os.path.join(tmp, f"server-{wait}.log")).read()[-3000:])
            logout[wait].append(ms)

        print(f"\nREDIS_WAIT_REPLICAS cost, {args.count} logouts per setting, one replica on loopback, "
              f"sequential requests (one run, {time.strftime('%Y-%m-%d')}):\n")
        print("| request | setting | p50 ms | p90 ms | p99 ms |")
        print("|---|---|---|---|---|")
        for name, samples in (("POST /auth/logout", logout), ("GET /auth/me (control)", me)):
            for wait in ("0", "1"):
                p = percentiles(samples[wait])
                print(f"| {name} | REDIS_WAIT_REPLICAS={wait} | {p['p50']:.2f} | {p['p90']:.2f} | {p['p99']:.2f} |")
        p0, p1 = percentiles(logout["0"]), percentiles(logout["1"])
        print(f"\nlogout p50 with WAIT / without: {p1['p50'] / p0['p50']:.2f}x "
              f"(+{p1['p50'] - p0['p50']:.2f} ms); p99: {p1['p99'] / p0['p99']:.2f}x")
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait()
        subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-c", f'DROP DATABASE IF EXISTS "{db}"'],
                       capture_output=True)
        subprocess.run(["rm", "-rf", tmp])


if __name__ == "__main__":
    main()
