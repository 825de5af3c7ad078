#!/usr/bin/env python3
"""authauth benchmark — one command, everything on this machine, in one run.

    python3 bench/bench.py            # full run (about 5 minutes)
    python3 bench/bench.py --quick    # short phases, 100,000 sessions at most

Needs: PostgreSQL on 127.0.0.1:5432 (trust auth, user postgres), redis-server and
redis-benchmark, wrk (`apt-get install wrk`), cargo. Starts its own Redis on a free port (so
the command statistics are authauth's alone), creates and drops its own database, builds and
starts authauth in release mode, and writes bench/results/latest.{md,json}.
See docs/performance.md for the method and the latest results.
"""

import argparse
import json
import os
import platform
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WRK_DIR = os.path.join(ROOT, "bench", "wrk")
COOKIE = "__Host-authauth_session"
PASSWORD = "bench password of some length"


def log(msg):
    print(f"--> {msg}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(cmd, env=None, **kw):
    return subprocess.run(cmd, env=env, check=True, text=True, capture_output=True, **kw).stdout


def wait_port(port, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"nothing listens on {port}")


class Rss:
    """Samples the server's resident memory (VmRSS) every 100 ms."""

    def __init__(self, pid):
        self.pid, self.peak, self.stop = pid, 0, False
        threading.Thread(target=self.loop, daemon=True).start()

    def read(self):
        try:
            with open(f"/proc/{self.pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            return 0
        return 0

    def loop(self):
        while not self.stop:
            self.peak = max(self.peak, self.read())
            time.sleep(0.1)

    def reset(self):
        self.peak = self.read()


def parse_ms(value):
    m = re.match(r"([\d.]+)(us|ms|s|m)", value)
    n, unit = float(m.group(1)), m.group(2)
    return n * {"us": 0.001, "ms": 1, "s": 1000, "m": 60000}[unit]


def wrk(url, connections, duration, script=None, env=None, threads=2):
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency", "--timeout", "5s"]
    if script:
        cmd += ["-s", os.path.join(WRK_DIR, script)]
    out = run(cmd + [url], env={**os.environ, **(env or {})})
    result = {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "requests": int(re.search(r"(\d+) requests in", out).group(1)),
        "p50_ms": parse_ms(re.search(r"\s50%\s+(\S+)", out).group(1)),
        "p99_ms": parse_ms(re.search(r"\s99%\s+(\S+)", out).group(1)),
        "connections": connections,
    }
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    result["non_2xx"] = int(bad.group(1)) if bad else 0
    errors = re.search(r"Socket errors: (.*)", out)
    result["socket_errors"] = errors.group(1) if errors else ""
    return result


class Redis:
    def __init__(self, tmp):
        self.port = free_port()
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", tmp],
            stdout=subprocess.DEVNULL)
        wait_port(self.port)

    def cli(self, *args):
        return run(["redis-cli", "-p", str(self.port), *args])

    def commands(self):
        """Total calls per command since the last reset."""
        stats = {}
        for line in self.cli("INFO", "commandstats").splitlines():
            m = re.match(r"cmdstat_([^:]+):calls=(\d+)", line)
            if m and m.group(1) not in ("info", "config|resetstat", "config", "dbsize", "memory|usage"):
                stats[m.group(1)] = int(m.group(2))
        return stats

    def reset(self):
        self.cli("CONFIG", "RESETSTAT")

    def benchmark_get(self, connections, requests):
        out = run(["redis-benchmark", "-p", str(self.port), "-t", "get", "-n", str(requests),
                   "-c", str(connections), "-q"])
        return float(re.search(r"GET: ([\d.]+) requests per second", out).group(1))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="short phases, 100,000 sessions at most")
    ap.add_argument("--duration", type=int, default=None, help="seconds per wrk phase (default 10, quick 4)")
    ap.add_argument("--max-sessions", type=int, default=None, help="largest store for the scaling phase")
    args = ap.parse_args()
    duration = args.duration or (4 if args.quick else 10)
    max_sessions = args.max_sessions or (100_000 if args.quick else 1_000_000)

    for tool in ("wrk", "redis-server", "redis-benchmark", "psql", "cargo"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is needed (wrk: apt-get install wrk)")

    log("building authauth (release)")
    subprocess.run(["cargo", "build", "--release", "--bin", "authauth", "--example", "seed_sessions"],
                   cwd=ROOT, check=True)
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    binary = os.path.join(target, "release", "authauth")
    seeder = os.path.join(target, "release", "examples", "seed_sessions")

    tmp = tempfile.mkdtemp(prefix="authauth-bench-")
    redis = Redis(tmp)
    db = f"authauth_bench_{uuid.uuid4().hex[:12]}"
    run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-c", f'CREATE DATABASE "{db}"'])
    port = free_port()
    env = {
        "PATH": os.environ["PATH"],
        "APP_ENV": "production",
        # Production requires the public origin; the load generator calls 127.0.0.1 directly.
        "PUBLIC_URL": "https://auth.example.com",
        "ALLOWED_HOSTS": "127.0.0.1",
        "PORT": str(port),
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{db}",
        "REDIS_URL": f"redis://127.0.0.1:{redis.port}",
        "REDIS_KEY_PREFIX": "bench:",
        "SESSION_SECRET": secrets.token_urlsafe(48),
    }
    server = None
    results = {}
    try:
        run([binary, "migrate", "up"], env=env, cwd=tmp)
        server_log = open(os.path.join(tmp, "server.log"), "w")
        server = subprocess.Popen([binary, "serve"], env=env, cwd=tmp, stdout=server_log, stderr=server_log)
        wait_port(port)
        base = f"http://127.0.0.1:{port}"
        rss = Rss(server.pid)

        def seed(count, per_user=10, cookies_file=None, cookies=0):
            cmd = [seeder, str(count), str(per_user)]
            if cookies_file:
                cmd += [cookies_file, str(cookies)]
            subprocess.run(cmd, env=env, cwd=tmp, check=True, stderr=subprocess.DEVNULL)

        me_cookies = os.path.join(tmp, "me.txt")
        seed(1000, 10, me_cookies, 1000)
        # A real account for the login phase.
        req = urllib.request.Request(
            base + "/auth/signup", method="POST",
            data=json.dumps({"email": "bench@example.com", "password": PASSWORD, "fullName": "Bench"}).encode(),
            headers={"Content-Type": "application/json"})
        urllib.request.urlopen(req).read()
        me_env = {"BENCH_COOKIES": me_cookies, "BENCH_COOKIE_NAME": COOKIE}

        # The machine is shared and noisy: the three measurements the ratios compare are taken
        # in three interleaved rounds, and each ratio uses the medians.
        rounds = {"get": [], "no_cookie": [], "me": []}
        for n in range(3):
            log(f"round {n + 1}/3: redis-benchmark GET, GET /auth/me without and with a session (50 connections)")
            rounds["get"].append(redis.benchmark_get(50, 200_000 if args.quick else 500_000))
            rounds["no_cookie"].append(wrk(base + "/auth/me", 50, duration))
            redis.reset()
            rss.reset()
            r = wrk(base + "/auth/me", 50, duration, "me.lua", me_env)
            calls = redis.commands()
            r["redis_commands"] = calls
            r["redis_commands_per_request"] = sum(calls.values()) / max(r["requests"], 1)
            r["peak_rss_bytes"] = rss.peak
            rounds["me"].append(r)

        def median_by(items, key):
            return sorted(items, key=key)[len(items) // 2]

        results["rounds"] = rounds
        results["redis_get_rps"] = {50: sorted(rounds["get"])[1],
                                    200: redis.benchmark_get(200, 200_000 if args.quick else 500_000)}
        results["no_cookie_401"] = median_by(rounds["no_cookie"], lambda r: r["rps"])
        results["me_50"] = median_by(rounds["me"], lambda r: r["rps"])
        results["me_50"]["peak_rss_bytes"] = max(r["peak_rss_bytes"] for r in rounds["me"])

        log("GET /health (the server's own ceiling)")
        results["health"] = wrk(base + "/health", 50, duration)

        for c in (200,):
            log(f"GET /auth/me with a valid session, {c} connections")
            redis.reset()
            rss.reset()
            r = wrk(base + "/auth/me", c, duration, "me.lua", me_env)
            calls = redis.commands()
            r["redis_commands"] = calls
            r["redis_commands_per_request"] = sum(calls.values()) / max(r["requests"], 1)
            r["peak_rss_bytes"] = rss.peak
            results[f"me_{c}"] = r

        # Forward auth: what a reverse proxy's sub-request costs, beside /auth/me.
        log("GET /auth/verify with a valid session, 50 connections")
        redis.reset()
        r = wrk(base + "/auth/verify", 50, duration, "me.lua", {**me_env, "BENCH_PATH": "/auth/verify"})
        calls = redis.commands()
        r["redis_commands"] = calls
        r["redis_commands_per_request"] = sum(calls.values()) / max(r["requests"], 1)
        results["verify_50"] = r

        log("POST /auth/login (argon2id)")
        login_env = {"BENCH_EMAIL": "bench@example.com", "BENCH_PASSWORD": PASSWORD}
        rss.reset()
        results["login"] = wrk(base + "/auth/login", 8, duration, "login.lua", login_env)
        results["login"]["peak_rss_bytes"] = rss.peak

        log("POST /auth/logout")
        logout_cookies = os.path.join(tmp, "logout.txt")
        n_logout = 20_000 if args.quick else 60_000
        seed(n_logout, 1, logout_cookies, n_logout)
        results["logout"] = wrk(base + "/auth/logout", 8, max(2, duration // 2), "logout.lua",
                                {"BENCH_COOKIES": logout_cookies, "BENCH_COOKIE_NAME": COOKIE, "BENCH_THREADS": "2"})

        log("GET /auth/me while logins run")
        rss.reset()
        bg = subprocess.Popen(
            ["wrk", "-t1", "-c4", f"-d{duration + 2}s", "-s", os.path.join(WRK_DIR, "login.lua"), base + "/auth/login"],
            env={**os.environ, **login_env}, stdout=subprocess.PIPE, text=True)
        time.sleep(1)
        r = wrk(base + "/auth/me", 50, duration, "me.lua", me_env, threads=1)
        login_out = bg.communicate()[0]
        r["concurrent_login_rps"] = float(re.search(r"Requests/sec:\s+([\d.]+)", login_out).group(1))
        r["peak_rss_bytes"] = rss.peak
        results["me_during_logins"] = r

        log("scaling: per-request cost and per-user listing as the store grows")
        scaling = []
        total = 1000 + n_logout
        list_cookie = os.path.join(tmp, "list.txt")
        seed(10, 10, list_cookie, 1)  # one user with 10 sessions, for GET /auth/sessions
        total += 10
        list_env = {"BENCH_COOKIES": list_cookie, "BENCH_COOKIE_NAME": COOKIE, "BENCH_PATH": "/auth/sessions"}
        for target_total in [t for t in (10_000, 100_000, 1_000_000) if t <= max_sessions]:
            if target_total > total:
                log(f"seeding up to {target_total:,} live sessions")
                seed(target_total - total, 10)
                total = target_total
            redis.reset()
            me = wrk(base + "/auth/me", 50, duration, "me.lua", me_env)
            me_calls = sum(redis.commands().values())
            redis.reset()
            listing = wrk(base + "/auth/sessions", 1, max(2, duration // 2), "me.lua", list_env, threads=1)
            list_calls = sum(redis.commands().values())
            scaling.append({
                "live_sessions": int(redis.cli("DBSIZE").strip()),
                "total_seeded": total,
                "me_rps": me["rps"], "me_p99_ms": me["p99_ms"],
                "me_redis_commands_per_request": me_calls / max(me["requests"], 1),
                "list_p50_ms": listing["p50_ms"],
                "list_redis_commands_per_request": list_calls / max(listing["requests"], 1),
            })
        results["scaling"] = scaling
        results["machine"] = {
            "cpus": os.cpu_count(),
            "cpu": next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?"),
            "kernel": platform.release(),
            "redis": run(["redis-server", "--version"]).strip(),
            "wrk": "wrk -t2 --latency (threads 1 in the mixed phase)",
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "duration_s": duration,
        }
    finally:
        if server:
            server.terminate()
            server.wait(timeout=30)
        redis.proc.terminate()
        redis.proc.wait()
        subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-c", f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'],
                       capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)

    report(results)


def report(r):
    me50, me200, no_cookie = r["me_50"], r["me_200"], r["no_cookie_401"]
    r["redis_get_rps"] = {int(k): v for k, v in r["redis_get_rps"].items()}  # JSON keys are strings
    get50 = r["redis_get_rps"][50]
    mixed = r["me_during_logins"]
    peak = max(me50["peak_rss_bytes"], me200["peak_rss_bytes"])
    peak_logins = max(mixed["peak_rss_bytes"], r["login"]["peak_rss_bytes"])
    ratios = [m["rps"] / g for m, g in zip(r["rounds"]["me"], r["rounds"]["get"])]
    ratios_401 = [m["rps"] / n["rps"] for m, n in zip(r["rounds"]["me"], r["rounds"]["no_cookie"])]
    targets = [
        ("authenticated ÷ Redis GET, 50 conns", f"{me50['rps'] / get50:.2f}", "≥ 0.50", me50["rps"] / get50 >= 0.5),
        ("authenticated p99, 50 conns", f"{me50['p99_ms']:.2f} ms", "≤ 10 ms", me50["p99_ms"] <= 10),
        ("authenticated ÷ no-cookie 401", f"{me50['rps'] / no_cookie['rps']:.2f}", "≥ 0.60", me50["rps"] / no_cookie["rps"] >= 0.6),
        ("Redis commands per authenticated request", f"{me50['redis_commands_per_request']:.3f}", "≤ 1.05",
         me50["redis_commands_per_request"] <= 1.05),
        ("/auth/me p99 while logins run", f"{mixed['p99_ms']:.2f} ms", "≤ 25 ms", mixed["p99_ms"] <= 25),
        ("server peak RSS under authenticated load", f"{peak / 10**6:.1f} MB", "≤ 64 MB", peak <= 64 * 10**6),
    ]
    info = [
        ("authenticated ÷ Redis GET, each round", ", ".join(f"{x:.2f}" for x in ratios)),
        ("authenticated ÷ no-cookie 401, each round", ", ".join(f"{x:.2f}" for x in ratios_401)),
        ("server peak RSS while sign-ins run (argon2id buffers)", f"{peak_logins / 10**6:.1f} MB"),
    ]
    rows = [
        ("redis-benchmark GET, 50 conns (median of 3)", f"{get50:,.0f}", "", "", ""),
        ("redis-benchmark GET, 200 conns", f"{r['redis_get_rps'][200]:,.0f}", "", "", ""),
        ("GET /health, 50 conns", f"{r['health']['rps']:,.0f}", f"{r['health']['p50_ms']:.2f}", f"{r['health']['p99_ms']:.2f}", ""),
        ("GET /auth/me no cookie (401), 50 conns (median of 3)", f"{no_cookie['rps']:,.0f}", f"{no_cookie['p50_ms']:.2f}", f"{no_cookie['p99_ms']:.2f}", ""),
        ("GET /auth/me valid session, 50 conns (median of 3)", f"{me50['rps']:,.0f}", f"{me50['p50_ms']:.2f}", f"{me50['p99_ms']:.2f}",
         f"{me50['redis_commands_per_request']:.3f} cmd/req; {me50['non_2xx']} non-2xx"),
        ("GET /auth/me valid session, 200 conns", f"{me200['rps']:,.0f}", f"{me200['p50_ms']:.2f}", f"{me200['p99_ms']:.2f}",
         f"{me200['redis_commands_per_request']:.3f} cmd/req; {me200['non_2xx']} non-2xx"),
        *([("GET /auth/verify valid session, 50 conns", f"{r['verify_50']['rps']:,.0f}", f"{r['verify_50']['p50_ms']:.2f}",
            f"{r['verify_50']['p99_ms']:.2f}",
            f"{r['verify_50']['redis_commands_per_request']:.3f} cmd/req; {r['verify_50']['non_2xx']} non-2xx")]
          if "verify_50" in r else []),
        ("POST /auth/login (argon2id), 8 conns", f"{r['login']['rps']:,.0f}", f"{r['login']['p50_ms']:.2f}", f"{r['login']['p99_ms']:.2f}", ""),
        ("POST /auth/logout, 8 conns", f"{r['logout']['rps']:,.0f}", f"{r['logout']['p50_ms']:.2f}", f"{r['logout']['p99_ms']:.2f}",
         f"{r['logout']['non_2xx']} non-2xx"),
        ("GET /auth/me while logins run, 50 conns", f"{mixed['rps']:,.0f}", f"{mixed['p50_ms']:.2f}", f"{mixed['p99_ms']:.2f}",
         f"logins meanwhile: {mixed['concurrent_login_rps']:,.0f}/s"),
    ]
    md = ["| measurement | req/s | p50 ms | p99 ms | notes |", "|---|---:|---:|---:|---|"]
    md += [f"| {a} | {b} | {c} | {d} | {e} |" for a, b, c, d, e in rows]
    md += ["", "| target | measured | goal | met |", "|---|---:|---|---|"]
    md += [f"| {a} | {b} | {c} | {'yes' if ok else '**no**'} |" for a, b, c, ok in targets]
    md += [f"| {a} | {b} | (for information) | |" for a, b in info]
    md += ["", "| sessions created | Redis keys | `/auth/me` req/s | p99 ms | cmd/req | `/auth/sessions` (a user with 10) p50 ms | cmd/req |",
           "|---:|---:|---:|---:|---:|---:|---:|"]
    md += [f"| {s['total_seeded']:,} | {s['live_sessions']:,} | {s['me_rps']:,.0f} | {s['me_p99_ms']:.2f} | "
           f"{s['me_redis_commands_per_request']:.3f} | {s['list_p50_ms']:.2f} | {s['list_redis_commands_per_request']:.2f} |"
           for s in r["scaling"]]
    m = r["machine"]
    md += ["", f"Machine: {m['cpus']} × {m['cpu']}, Linux {m['kernel']}, {m['redis']}; {m['date']}; "
           f"{m['duration_s']} s per phase; load generator, server and Redis share the machine."]
    text = "\n".join(md)
    print(text)
    os.makedirs(os.path.join(ROOT, "bench", "results"), exist_ok=True)
    with open(os.path.join(ROOT, "bench", "results", "latest.md"), "w") as f:
        f.write(text + "\n")
    with open(os.path.join(ROOT, "bench", "results", "latest.json"), "w") as f:
        json.dump(r, f, indent=2)


if __name__ == "__main__":
    if sys.argv[1:] == ["--report"]:
        # Re-render bench/results/latest.md from latest.json.
        with open(os.path.join(ROOT, "bench", "results", "latest.json")) as f:
            report(json.load(f))
    else:
        main()
