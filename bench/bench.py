#!/usr/bin/env python3
"""authauth benchmark — one command, everything on this machine, in one run.

    python3 bench/bench.py                    # full run (about 10 minutes)
    python3 bench/bench.py --quick            # short phases, 100,000 sessions at most
    python3 bench/bench.py --cluster          # Redis Cluster beside standalone Redis (about 2 minutes)
    python3 bench/bench.py --cluster --quick  # the same with short phases
    python3 bench/bench.py --memory           # bytes per live session, through the API (about 3 minutes)
    python3 bench/bench.py --peers [--nest]   # beside axum + tower-sessions (and NestJS), one run (about 5 minutes)

Needs: PostgreSQL on 127.0.0.1:5432 (trust auth, user postgres), redis-server, redis-cli and
redis-benchmark, wrk (`apt-get install wrk`), cargo. Starts its own Redis on a free port (so
the command statistics are authauth's alone) — with --cluster also its own six-node Redis
Cluster (three primaries, one replica each) — creates and drops its own database, builds and
starts authauth in release mode, and writes bench/results/latest.{md,json} (--cluster:
cluster.{md,json}; --memory: memory.{md,json}). Everything it started is stopped at the end, also when a
phase fails or the run is interrupted.
See docs/performance.md for the method and the latest results.
"""

import argparse
import json
import os
import platform
import re
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
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


def port_free(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def wait_port(port, timeout=30, proc=None, log_path=None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"{proc.args[0]} exited ({proc.returncode}) before listening on {port}{log_tail(log_path)}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"nothing listens on {port}{log_tail(log_path)}")


def log_tail(path, lines=20):
    if not path:
        return ""
    try:
        with open(path, errors="replace") as f:
            return "; its log ends:\n" + "".join(f.readlines()[-lines:])
    except OSError:
        return ""


_libc = None
try:
    import ctypes
    _libc = ctypes.CDLL(None, use_errno=True)
except (ImportError, OSError):
    pass


def _die_with_parent():
    # In the child, before exec: the kernel kills it when the benchmark dies, however it dies
    # (SIGKILL included), so no server outlives a run. PR_SET_PDEATHSIG = 1.
    if _libc is not None:
        _libc.prctl(1, signal.SIGKILL)


def spawn(cmd, **kw):
    """Starts a server. Only before the benchmark starts threads: `preexec_fn` is not safe after."""
    return subprocess.Popen(cmd, preexec_fn=_die_with_parent, **kw)


def stop(proc, timeout=30):
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


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
    before = children_cpu_seconds()
    out = run(cmd + [url], env={**os.environ, **(env or {})})
    client_s = children_cpu_seconds() - before
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
    # The load generator's own user and kernel time per request: it runs on the same cores.
    result["client_us"] = client_s * 1e6 / max(result["requests"], 1)
    return result


def children_cpu_seconds():
    """User and kernel time of the child processes waited for so far (wrk, redis-benchmark)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# Commands the benchmark itself sends, and replication traffic (a replica's REPLCONF ACK every
# second): not authauth's, so left out of the per-request counts.
NOT_AUTHAUTH = {"info", "config|resetstat", "config", "dbsize", "memory|usage", "role", "cluster|info", "replconf"}


class Redis:
    """One private redis-server on a loopback port, with its own directory and log."""

    def __init__(self, tmp, name="redis", extra=(), port=None):
        self.port = port or free_port()
        self.dir = os.path.join(tmp, f"{name}-{self.port}")
        os.makedirs(self.dir)
        self.log_path = os.path.join(self.dir, "redis.log")
        self.proc = spawn(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.dir, "--logfile", self.log_path, *extra],
            stdout=subprocess.DEVNULL)
        wait_port(self.port, proc=self.proc, log_path=self.log_path)

    def url(self):
        return f"redis://127.0.0.1:{self.port}"

    def cli(self, *args):
        return run(["redis-cli", "-p", str(self.port), *args])

    def info(self, section):
        return dict(line.split(":", 1) for line in self.cli("INFO", section).splitlines() if ":" in line)

    def commands(self, what="calls"):
        """Per command since the last reset: its calls, or (`usec`) the microseconds Redis spent
        executing them."""
        stats = {}
        for line in self.cli("INFO", "commandstats").splitlines():
            m = re.match(rf"cmdstat_([^:]+):.*\b{what}=(\d+)", line)
            if m and m.group(1) not in NOT_AUTHAUTH:
                stats[m.group(1)] = int(m.group(2))
        return stats

    def reset(self):
        self.cli("CONFIG", "RESETSTAT")

    def pipe(self, commands):
        """Many commands through one redis-cli, one answer line each (keys contain no spaces)."""
        if not commands:
            return []
        out = subprocess.run(["redis-cli", "-p", str(self.port)], input="\n".join(commands) + "\n",
                             text=True, capture_output=True, check=True).stdout
        return out.splitlines()

    def used_memory(self):
        return int(self.info("memory")["used_memory"])

    def replication_buffers(self):
        """Bytes of the replication backlog and replicas' pending output (counted in
        used_memory). They fill up to repl-backlog-size with any writes, sessions or not."""
        m = self.info("memory")
        if "mem_total_replication_buffers" in m:
            return int(m["mem_total_replication_buffers"])
        return int(m.get("mem_replication_backlog", 0)) + int(m.get("mem_clients_slaves", 0))

    def cpu_seconds(self):
        cpu = self.info("cpu")
        return float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"])

    def keys(self):
        return int(self.cli("DBSIZE").strip())

    def benchmark_get(self, connections, requests):
        out = run(["redis-benchmark", "-p", str(self.port), "-t", "get", "-n", str(requests),
                   "-c", str(connections), "-q"])
        return float(re.search(r"GET: ([\d.]+) requests per second", out).group(1))

    def stop(self):
        stop(self.proc)


def free_cluster_port(taken):
    """A free port whose cluster bus port (port + 10000) is free too."""
    while True:
        port = free_port()
        if port + 10_000 <= 65_535 and not {port, port + 10_000} & taken and port_free(port + 10_000):
            return port


class RedisCluster:
    """A private Redis Cluster: `nodes` redis-server processes in cluster mode on loopback ports,
    `nodes / (replicas + 1)` primaries holding every slot, `replicas` replicas each. Stands in
    for a standalone Redis: `commands`, `used_memory` and `keys` add up over the primaries (the
    nodes holding slots when asked), `reset` clears every node's statistics."""

    def __init__(self, tmp, nodes=6, replicas=1):
        self.nodes, self.replicas = [], replicas
        try:
            taken = set()
            for _ in range(nodes):
                port = free_cluster_port(taken)
                taken |= {port, port + 10_000}
                self.nodes.append(Redis(tmp, "cluster", ["--cluster-enabled", "yes",
                                                         "--cluster-config-file", "nodes.conf"], port=port))
            run(["redis-cli", "--cluster", "create", *(f"127.0.0.1:{n.port}" for n in self.nodes),
                 "--cluster-replicas", str(replicas), "--cluster-yes"], stdin=subprocess.DEVNULL)
            self.wait_ready()
        except BaseException:
            self.stop()
            raise

    def wait_ready(self, timeout=60):
        """Until every node says cluster_state:ok and knows every other, and every replica's link
        to its primary is up."""
        deadline, state = time.time() + timeout, ""
        while time.time() < deadline:
            infos = [dict(l.split(":", 1) for l in n.cli("CLUSTER", "INFO").splitlines() if ":" in l)
                     for n in self.nodes]
            repl = [n.info("replication") for n in self.nodes]
            state = ", ".join(f"{i['cluster_state'].strip()}/{r['role'].strip()}" for i, r in zip(infos, repl))
            if (all(i["cluster_state"].strip() == "ok" and int(i["cluster_known_nodes"]) == len(self.nodes)
                    for i in infos)
                    and sum(r["role"].strip() == "master" for r in repl) == len(self.nodes) // (self.replicas + 1)
                    and all(r.get("master_link_status", "up").strip() == "up" for r in repl)):
                return
            time.sleep(0.2)
        raise SystemExit(f"the Redis Cluster did not become ready: {state}")

    def urls(self):
        """The seed list authauth gets as REDIS_URL: every node."""
        return ",".join(n.url() for n in self.nodes)

    def primaries(self):
        return [n for n in self.nodes if n.info("replication")["role"].strip() == "master"]

    def replica_nodes(self):
        return [n for n in self.nodes if n.info("replication")["role"].strip() != "master"]

    def commands(self, what="calls"):
        total = {}
        for n in self.primaries():
            for cmd, calls in n.commands(what).items():
                total[cmd] = total.get(cmd, 0) + calls
        return total

    def reset(self):
        for n in self.nodes:
            n.reset()

    def used_memory(self, nodes=None):
        return sum(n.used_memory() for n in (nodes or self.primaries()))

    def replication_buffers(self, nodes=None):
        return sum(n.replication_buffers() for n in (nodes or self.primaries()))

    def cpu_seconds(self):
        return sum(n.cpu_seconds() for n in self.primaries())

    def keys(self):
        return sum(n.keys() for n in self.primaries())

    def wait_replicated(self, timeout=30):
        """Until every replica has applied its primary's whole replication stream."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            offsets = {n.port: n.info("replication") for n in self.nodes}
            lagging = [p for p, r in offsets.items() if r["role"].strip() != "master"
                       and r["slave_repl_offset"].strip() != offsets[int(r["master_port"])]["master_repl_offset"].strip()]
            if not lagging:
                return
            time.sleep(0.1)
        raise SystemExit("the cluster's replicas did not catch up")

    def benchmark_get(self, connections, requests):
        out = run(["redis-benchmark", "--cluster", "-p", str(self.nodes[0].port), "-t", "get",
                   "-n", str(requests), "-c", str(connections), "-q"])
        return float(re.search(r"GET: ([\d.]+) requests per second", out).group(1))

    def stop(self):
        for n in self.nodes:
            n.proc.terminate()
        for n in self.nodes:
            n.stop()


def build(tools=()):
    for tool in ("wrk", "redis-server", "redis-benchmark", "psql", "cargo", *tools):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is needed (wrk: apt-get install wrk; redis-cli: apt-get install redis-tools)")
    log("building authauth (release)")
    subprocess.run(["cargo", "build", "--release", "--bin", "authauth", "--example", "seed_sessions",
                    "--example", "stack_floor"], cwd=ROOT, check=True)
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    return os.path.join(target, "release", "authauth"), os.path.join(target, "release", "examples", "seed_sessions")


def create_db():
    db = f"authauth_bench_{uuid.uuid4().hex[:12]}"
    run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-c", f'CREATE DATABASE "{db}"'])
    return db


def drop_db(db):
    subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-c", f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'],
                   capture_output=True)


def server_env(db, secret, redis_url, **extra):
    return {
        "PATH": os.environ["PATH"],
        "APP_ENV": "production",
        # Production requires the public origin; the load generator calls 127.0.0.1 directly.
        "PUBLIC_URL": "https://auth.example.com",
        "ALLOWED_HOSTS": "127.0.0.1",
        "PORT": str(free_port()),
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{db}",
        "REDIS_URL": redis_url,
        "REDIS_KEY_PREFIX": "bench:",
        "SESSION_SECRET": secret,
        **extra,
    }


def _interrupted(signum, _frame):
    # SIGTERM/SIGHUP end the run like Ctrl-C does: through the `finally` that stops everything.
    raise SystemExit(128 + signum)


class Cleanup:
    """What a run started, stopped in reverse order at the end, whatever the end."""

    def __init__(self):
        self.steps = []
        for sig in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, _interrupted)

    def add(self, step):
        self.steps.append(step)

    def run(self):
        while self.steps:
            try:
                self.steps.pop()()
            except Exception as e:  # keep stopping the rest
                log(f"cleanup: {e}")


def main(args):
    duration = args.duration or (4 if args.quick else 10)
    max_sessions = args.max_sessions or (100_000 if args.quick else 1_000_000)
    binary, seeder = build()

    cleanup = Cleanup()
    tmp = tempfile.mkdtemp(prefix="authauth-bench-")
    cleanup.add(lambda: shutil.rmtree(tmp, ignore_errors=True))
    server = None
    results = {}
    try:
        redis = Redis(tmp)
        cleanup.add(redis.stop)
        db = create_db()
        cleanup.add(lambda: drop_db(db))
        env = server_env(db, secrets.token_urlsafe(48), redis.url())
        port = int(env["PORT"])
        run([binary, "migrate", "up"], env=env, cwd=tmp)
        server_log = open(os.path.join(tmp, "server.log"), "w")
        server = spawn([binary, "serve"], env=env, cwd=tmp, stdout=server_log, stderr=server_log)
        cleanup.add(lambda: stop(server))
        wait_port(port, proc=server, log_path=server_log.name)
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
        results["machine"] = machine(duration, "wrk -t2 --latency (threads 1 in the mixed phase)")
    finally:
        cleanup.run()

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
    save_results("latest", "\n".join(md), r)


def save_results(name, text, data):
    """Prints a report and writes it to bench/results/NAME.md, its figures to NAME.json."""
    print(text)
    os.makedirs(os.path.join(ROOT, "bench", "results"), exist_ok=True)
    with open(os.path.join(ROOT, "bench", "results", f"{name}.md"), "w") as f:
        f.write(text + "\n")
    with open(os.path.join(ROOT, "bench", "results", f"{name}.json"), "w") as f:
        json.dump(data, f, indent=2)


def measure_me(base, store, rss, connections, duration, env):
    """Authenticated `GET /auth/me` under wrk, with the store's command deltas and peak RSS."""
    store.reset()
    rss.reset()
    cpu = (process_cpu_seconds(rss.pid), store.cpu_seconds())
    r = wrk(base + "/auth/me", connections, duration, "me.lua", env)
    calls = store.commands()
    usec = store.commands("usec")
    n = max(r["requests"], 1)
    r["redis_commands"] = calls
    r["redis_usec_per_call"] = {cmd: usec.get(cmd, 0) / calls[cmd] for cmd in calls if calls[cmd]}
    r["redis_commands_per_request"] = sum(calls.values()) / n
    r["peak_rss_bytes"] = rss.peak
    # CPU time per request, of the server process and of Redis (the primaries): what sizing
    # a fleet needs, and steadier on a shared machine than the rates.
    r["server_cpu_us_per_request"] = (process_cpu_seconds(rss.pid) - cpu[0]) * 1e6 / n
    r["redis_cpu_us_per_request"] = (store.cpu_seconds() - cpu[1]) * 1e6 / n
    return r


def process_cpu_seconds(pid):
    """User + system CPU time a process has used."""
    return sum(process_cpu_split(pid))


def process_cpu_split(pid):
    """User and system CPU seconds a process has used (/proc/<pid>/stat, fields 14 and 15)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def cpu_us_per_request(pid, before, requests):
    """The user and system CPU µs `pid` spent per request since `before` (its process_cpu_split)."""
    n = max(requests, 1)
    return tuple((b - a) * 1e6 / n for a, b in zip(before, process_cpu_split(pid)))


def check_session(base, cookies_file, server_log):
    """One authenticated request must answer 200 before anything is measured."""
    with open(cookies_file) as f:
        cookie = f.readline().strip()
    req = urllib.request.Request(base + "/auth/me", headers={"Cookie": f"{COOKIE}={cookie}"})
    try:
        urllib.request.urlopen(req, timeout=10).read()
    except OSError as e:
        body = e.read().decode(errors="replace") if hasattr(e, "read") else ""
        raise SystemExit(f"GET /auth/me with a seeded session failed: {e} {body}{log_tail(server_log)}")


STORES = ("standalone", "cluster")


def cluster_main(args):
    """authauth on a Redis Cluster beside authauth on one Redis, in interleaved rounds."""
    duration = args.duration or (4 if args.quick else 10)
    get_requests = 200_000 if args.quick else 500_000
    memory_sessions = 10_000
    binary, seeder = build(("redis-cli",))

    cleanup = Cleanup()
    tmp = tempfile.mkdtemp(prefix="authauth-bench-")
    cleanup.add(lambda: shutil.rmtree(tmp, ignore_errors=True))
    results = {"memory_sessions": memory_sessions, "memory_sessions_per_user": 2}
    try:
        log("starting a Redis, and a Redis Cluster of six nodes (three primaries, one replica each)")
        stores = {"standalone": Redis(tmp)}
        cleanup.add(stores["standalone"].stop)
        stores["cluster"] = RedisCluster(tmp)
        cleanup.add(stores["cluster"].stop)
        db = create_db()
        cleanup.add(lambda: drop_db(db))
        secret = secrets.token_urlsafe(48)
        envs = {"standalone": server_env(db, secret, stores["standalone"].url()),
                "cluster": server_env(db, secret, stores["cluster"].urls(), REDIS_MODE="cluster")}
        run([binary, "migrate", "up"], env=envs["standalone"], cwd=tmp)

        servers, logs, bases = {}, {}, {}
        for name in STORES:
            logs[name] = os.path.join(tmp, f"server-{name}.log")
            with open(logs[name], "w") as out:
                servers[name] = spawn([binary, "serve"], env=envs[name], cwd=tmp, stdout=out, stderr=out)
            cleanup.add(lambda p=servers[name]: stop(p))
            wait_port(int(envs[name]["PORT"]), proc=servers[name], log_path=logs[name])
            bases[name] = f"http://127.0.0.1:{envs[name]['PORT']}"
        rss = {name: Rss(servers[name].pid) for name in STORES}

        def seed(name, count, per_user, cookies_file=None, cookies=0):
            cmd = [seeder, str(count), str(per_user)] + ([cookies_file, str(cookies)] if cookies_file else [])
            out = subprocess.run(cmd, env=envs[name], cwd=tmp, text=True, capture_output=True)
            if out.returncode != 0:
                raise SystemExit(f"seeding sessions into {name} Redis failed:\n{out.stderr[-2000:]}")

        me_env = {}
        for name in STORES:
            log(f"seeding 1,000 sessions ({name})")
            cookies = os.path.join(tmp, f"me-{name}.txt")
            seed(name, 1000, 10, cookies, 1000)
            check_session(bases[name], cookies, logs[name])
            me_env[name] = {"BENCH_COOKIES": cookies, "BENCH_COOKIE_NAME": COOKIE}

        # The shared machine drifts: three interleaved rounds (the order alternating), medians.
        rounds = {name: {"get": [], "me": []} for name in STORES}
        for n in range(3):
            for name in (STORES if n % 2 == 0 else STORES[::-1]):
                log(f"round {n + 1}/3, {name}: redis-benchmark GET, GET /auth/me with a session (50 connections)")
                rounds[name]["get"].append(stores[name].benchmark_get(50, get_requests))
                rounds[name]["me"].append(measure_me(bases[name], stores[name], rss[name], 50, duration, me_env[name]))
        results["rounds"] = rounds
        for name in STORES:
            mes = sorted(rounds[name]["me"], key=lambda r: r["rps"])
            results[name] = {
                "redis_get_rps_50": sorted(rounds[name]["get"])[1],
                "me_50": {**mes[1], "peak_rss_bytes": max(r["peak_rss_bytes"] for r in mes)},
            }
        for name in STORES:
            log(f"GET /auth/me with a session, 200 connections ({name})")
            results[name]["me_200"] = measure_me(bases[name], stores[name], rss[name], 200, duration, me_env[name])

        for name in STORES:
            log(f"memory: {memory_sessions:,} more sessions, 2 per user ({name})")
            store = stores[name]
            nodes = store.replica_nodes() if name == "cluster" else []
            if nodes:
                store.wait_replicated()

            def reading():
                return {"used": store.used_memory(), "repl": store.replication_buffers(), "keys": store.keys(),
                        "replicas_used": store.used_memory(nodes) if nodes else 0,
                        "replicas_repl": store.replication_buffers(nodes) if nodes else 0}

            before = reading()
            seed(name, memory_sessions, 2)
            if nodes:
                store.wait_replicated()
            after = reading()
            d = {k: after[k] - before[k] for k in before}
            # The sessions' own memory: what the replication buffers took meanwhile is left out
            # (a primary's backlog fills to repl-backlog-size whatever is written).
            results[name]["memory"] = {
                "used_memory_delta": d["used"] - d["repl"], "raw_used_memory_delta": d["used"],
                "replication_buffers_delta": d["repl"], "keys_delta": d["keys"],
                "replicas_used_memory_delta": d["replicas_used"] - d["replicas_repl"] if nodes else None}
        cluster = stores["cluster"]
        results["cluster_layout"] = {"nodes": len(cluster.nodes), "primaries": len(cluster.primaries()),
                                     "replicas_per_primary": cluster.replicas}
        results["machine"] = machine(duration, "wrk -t2 -c50/-c200 --latency; redis-benchmark --cluster for the cluster's GET")
    finally:
        cleanup.run()

    cluster_report(results)


def machine(duration, load):
    return {
        "cpus": os.cpu_count(),
        "cpu": next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?"),
        "kernel": platform.release(),
        "redis": run(["redis-server", "--version"]).strip(),
        "wrk": load,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "duration_s": duration,
    }


def cluster_report(r):
    s, c = r["standalone"], r["cluster"]

    def ratio(a, b):
        return f"{a / b:.2f}" if b else ""

    def median_of_rounds(name, key):
        return sorted(x[key] for x in r["rounds"][name]["me"])[1]

    def usec_per_call(name):
        """Redis execution time per call over the three rounds together."""
        calls, usec = {}, {}
        for x in r["rounds"][name]["me"]:
            for cmd, per_call in x.get("redis_usec_per_call", {}).items():
                calls[cmd] = calls.get(cmd, 0) + x["redis_commands"][cmd]
                usec[cmd] = usec.get(cmd, 0) + per_call * x["redis_commands"][cmd]
        return {cmd: usec[cmd] / calls[cmd] for cmd in calls}

    rows = [
        ("redis-benchmark GET, 50 conns, req/s (median of 3)", s["redis_get_rps_50"], c["redis_get_rps_50"], "{:,.0f}"),
        ("GET /auth/me valid session, 50 conns, req/s (median of 3)", s["me_50"]["rps"], c["me_50"]["rps"], "{:,.0f}"),
        ("… p50 ms", s["me_50"]["p50_ms"], c["me_50"]["p50_ms"], "{:.2f}"),
        ("… p99 ms", s["me_50"]["p99_ms"], c["me_50"]["p99_ms"], "{:.2f}"),
        ("… Redis commands per request (primaries)", s["me_50"]["redis_commands_per_request"],
         c["me_50"]["redis_commands_per_request"], "{:.3f}"),
        ("… authauth CPU per request, µs (median of 3)", median_of_rounds("standalone", "server_cpu_us_per_request"),
         median_of_rounds("cluster", "server_cpu_us_per_request"), "{:.1f}"),
        ("… Redis CPU per request (primaries), µs (median of 3)", median_of_rounds("standalone", "redis_cpu_us_per_request"),
         median_of_rounds("cluster", "redis_cpu_us_per_request"), "{:.1f}"),
        ("GET /auth/me valid session, 200 conns, req/s", s["me_200"]["rps"], c["me_200"]["rps"], "{:,.0f}"),
        ("… p99 ms", s["me_200"]["p99_ms"], c["me_200"]["p99_ms"], "{:.2f}"),
        ("… Redis commands per request (primaries)", s["me_200"]["redis_commands_per_request"],
         c["me_200"]["redis_commands_per_request"], "{:.3f}"),
        ("server peak RSS under authenticated load, MB", max(s["me_50"]["peak_rss_bytes"], s["me_200"]["peak_rss_bytes"]) / 1e6,
         max(c["me_50"]["peak_rss_bytes"], c["me_200"]["peak_rss_bytes"]) / 1e6, "{:.1f}"),
        (f"used_memory per {r['memory_sessions']:,} sessions ({r['memory_sessions_per_user']} per user), primaries, "
         "less replication buffers, MB",
         s["memory"]["used_memory_delta"] / 1e6, c["memory"]["used_memory_delta"] / 1e6, "{:.2f}"),
        (f"Redis keys per {r['memory_sessions']:,} sessions", s["memory"]["keys_delta"], c["memory"]["keys_delta"], "{:,}"),
    ]
    md = ["| measurement | standalone | cluster | cluster ÷ standalone |", "|---|---:|---:|---:|"]
    md += [f"| {label} | {fmt.format(a)} | {fmt.format(b)} | {ratio(b, a)} |" for label, a, b, fmt in rows]
    me_ratios = [cm["rps"] / sm["rps"] for cm, sm in zip(r["rounds"]["cluster"]["me"], r["rounds"]["standalone"]["me"])]
    bad = sum(x["non_2xx"] for name in STORES for x in r["rounds"][name]["me"] + [r[name]["me_200"]])
    calls = {}
    for x in r["rounds"]["cluster"]["me"] + [c["me_200"]]:
        for cmd, n in x["redis_commands"].items():
            calls[cmd] = calls.get(cmd, 0) + n
    total = sum(calls.values()) or 1
    replicas = c["memory"]["replicas_used_memory_delta"]
    lay = r["cluster_layout"]
    exec_us = "; ".join(f"{name}: " + ", ".join(f"`{cmd}` {us:.2f} µs" for cmd, us in sorted(usec_per_call(name).items()))
                        for name in STORES)
    md += ["", f"- cluster ÷ standalone `/auth/me` req/s, each round: {', '.join(f'{x:.2f}' for x in me_ratios)}.",
           f"- Redis execution time per call (INFO commandstats `usec`, the three 50-connection rounds; `evalsha` is "
           f"the sliding refresh, the `get` and `set` inside it count as calls of their own): {exec_us}.",
           f"- Non-2xx answers under load, both stores: {bad}.",
           "- Commands the cluster's primaries served under `/auth/me` load: "
           + ", ".join(f"`{cmd}` {n / total:.1%}" for cmd, n in sorted(calls.items(), key=lambda kv: -kv[1])) + ".",
           f"- Cluster: {lay['nodes']} nodes, {lay['primaries']} primaries with {lay['replicas_per_primary']} replica each; "
           f"the replicas' used_memory (less replication buffers) grew by {replicas / 1e6:.2f} MB for the same sessions; "
           f"the primaries' replication buffers by {c['memory']['replication_buffers_delta'] / 1e6:.2f} MB meanwhile "
           "(they fill to `repl-backlog-size`, 1 MB each, whatever is written)." if replicas is not None else ""]
    m = r["machine"]
    md += ["", f"Machine: {m['cpus']} × {m['cpu']}, Linux {m['kernel']}, {m['redis']}; {m['date']}; "
           f"{m['duration_s']} s per phase; load generator, server and every Redis process share the machine."]
    save_results("cluster", "\n".join(md), r)


# What a browser sends: the session record keeps the User-Agent, so its length counts.
BROWSER_UA = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/131.0.0.0 Safari/537.36")
KINDS = {"s": "session", "t": "tombstone", "u": "index", "p": "directory"}


def key_kind(key):
    """`bench:{T}:s:…` → `s`; `bench:at:…` → `at`; anything else as it starts."""
    m = re.match(r"bench:(?:\{[^}]*\}:([a-z]+):|([a-z]+):)", key)
    return (m.group(1) or m.group(2)) if m else key.split(":", 1)[0]


def api(base, path, body=None, cookie=None, ip=None, method=None):
    """One JSON call as a browser behind the proxy would make it; returns (status, session cookie)."""
    headers = {"User-Agent": BROWSER_UA}
    if body is not None:
        headers["Content-Type"] = "application/json"
    if cookie:
        headers["Cookie"] = f"{COOKIE}={cookie}"
    if ip:
        headers["X-Forwarded-For"] = ip
    req = urllib.request.Request(base + path, method=method or ("POST" if body is not None else "GET"),
                                 data=json.dumps(body).encode() if body is not None else None, headers=headers)
    for attempt in range(50):
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                status, set_cookies = resp.status, resp.headers.get_all("Set-Cookie") or []
        except urllib.error.HTTPError as e:
            if e.code == 503 and attempt < 49:  # server_busy: the hashing queue is full
                time.sleep(0.05)
                continue
            raise SystemExit(f"{method or 'POST'} {path}: {e.code} {e.read().decode(errors='replace')}")
        for c in set_cookies:
            if c.startswith(COOKIE + "="):
                return status, c.split(";", 1)[0].split("=", 1)[1]
        return status, None
    raise SystemExit(f"{path}: the server stayed busy")


def memory_main(args):
    """Bytes per live session in Redis, with sessions created through the HTTP API."""
    import concurrent.futures
    users = args.memory_users
    binary, _ = build(("redis-cli",))
    cleanup = Cleanup()
    tmp = tempfile.mkdtemp(prefix="authauth-bench-")
    cleanup.add(lambda: shutil.rmtree(tmp, ignore_errors=True))
    r = {"users": users, "sessions_per_user": 2, "user_agent": BROWSER_UA}
    try:
        redis = Redis(tmp)
        cleanup.add(redis.stop)
        db = create_db()
        cleanup.add(lambda: drop_db(db))
        # Each simulated browser has its own address (RFC 2544's benchmarking range, only ever
        # written into a header): authauth behind one proxy, as in production.
        env = server_env(db, secrets.token_urlsafe(48), redis.url(), TRUST_X_FORWARDED_FOR="true")
        run([binary, "migrate", "up"], env=env, cwd=tmp)
        server_log = os.path.join(tmp, "server.log")
        with open(server_log, "w") as out:
            server = spawn([binary, "serve"], env=env, cwd=tmp, stdout=out, stderr=out)
        cleanup.add(lambda: stop(server))
        wait_port(int(env["PORT"]), proc=server, log_path=server_log)
        base = f"http://127.0.0.1:{env['PORT']}"

        def ip(i):
            return f"198.18.{i // 250}.{i % 250 + 1}"

        def person(i):
            return {"email": f"firstname.lastname{i}@example.com", "password": PASSWORD,
                    "fullName": f"Firstname Lastname {i}"}

        def sign_up_and_in(i):
            api(base, "/auth/signup", person(i), ip=ip(i))
            api(base, "/auth/login", {k: person(i)[k] for k in ("email", "password")}, ip=ip(i))

        # 1. used_memory per 10,000 sessions: `users` accounts, each signed up (a session) and
        #    signed in once more (a second session) through the API.
        # A warm-up account first, so the reading before holds what any running server has
        # (the scripts loaded, the connection up) and the difference is the sessions alone.
        sign_up_and_in(users + 2)
        before = redis.used_memory()
        log(f"{users:,} signups and {users:,} sign-ins through the API ({2 * users:,} sessions; argon2id each)")
        started = time.time()
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(sign_up_and_in, range(users)))
        r["signin_seconds"] = round(time.time() - started, 1)
        keys = [k for k in redis.cli("--scan", "--pattern", "bench:*").split()]
        census = {}
        for k in keys:
            census[key_kind(k)] = census.get(key_kind(k), 0) + 1
        r["keys"] = census  # the warm-up account's included
        # Sign-in throttling counters are not sessions (they expire with their window): gone
        # before the second reading.
        counters = [k for k in keys if key_kind(k) == "at"]
        r["counter_bytes"] = sum(int(x) for x in redis.pipe([f"MEMORY USAGE {k} SAMPLES 0" for k in counters]))
        redis.pipe([f"UNLINK {k}" for k in counters])
        after = redis.used_memory()
        r["used_memory_delta"] = after - before
        r["used_memory_per_10000_sessions"] = (after - before) * 10_000 / (2 * users)
        mean = {}
        for kind in ("s", "u", "p"):
            ks = [k for k in keys if key_kind(k) == kind]
            sizes = [int(x) for x in redis.pipe([f"MEMORY USAGE {k} SAMPLES 0" for k in ks])]
            mean[kind] = sum(sizes) / len(sizes)
        r["mean_memory_usage"] = mean
        r["index_encoding"] = redis.pipe([f"OBJECT ENCODING {next(k for k in keys if key_kind(k) == 'u')}"])[0]

        # What the same accounts cost PostgreSQL (tables with their indexes and TOAST).
        tables = run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", db, "-Atc",
                      "SELECT relname, pg_total_relation_size(relid) FROM pg_stat_user_tables"])
        r["postgres_table_bytes"] = {t: int(b) for t, b in (l.split("|") for l in tables.split())}
        r["postgres_accounts"] = int(run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", db, "-Atc",
                                          "SELECT count(*) FROM users"]).strip())

        # 2. One account's keys as its sessions grow: the index with 1, 2, 10 and 25 entries
        #    (25: MAX_SESSIONS_PER_USER's default), then a tombstone.
        me = users + 1
        _, cookie = api(base, "/auth/signup", person(me), ip=ip(me))
        slot = cookie.split(".")[1]
        index = {}
        for n in range(1, 26):
            if n > 1:
                api(base, "/auth/login", {k: person(me)[k] for k in ("email", "password")}, ip=ip(me))
            if n in (1, 2, 10, 25):
                ukey = redis.cli("--scan", "--pattern", f"bench:{{{slot}}}:u:*").split()[0]
                index[n] = int(redis.pipe([f"MEMORY USAGE {ukey} SAMPLES 0"])[0])
        r["index_by_entries"] = index
        r["index_encoding_25"] = redis.pipe([f"OBJECT ENCODING {ukey}"])[0]
        mine = redis.cli("--scan", "--pattern", f"bench:{{{slot}}}:*").split()
        one = {}
        for kind in ("s", "p"):
            k = next(k for k in mine if key_kind(k) == kind)
            one[kind] = int(redis.pipe([f"MEMORY USAGE {k} SAMPLES 0"])[0])
        api(base, "/auth/logout", {}, cookie=cookie, ip=ip(me))
        tomb = redis.cli("--scan", "--pattern", f"bench:{{{slot}}}:t:*").split()
        one["t"] = int(redis.pipe([f"MEMORY USAGE {tomb[0]} SAMPLES 0"])[0]) if tomb else None
        r["one_account"] = one
        r["redis_info"] = {k: redis.info("memory")[k].strip() for k in ("mem_allocator", "used_memory_human")}
        r["machine"] = machine(0, "no load generator: sessions created through the API, 8 clients")
    finally:
        cleanup.run()

    memory_report(r)


def memory_report(r):
    n = 2 * r["users"]
    idx = {int(k): v for k, v in r["index_by_entries"].items()}
    per_entry = (idx[25] - idx[1]) / 24
    mean, one = r["mean_memory_usage"], r["one_account"]
    md = [f"Sessions created through the HTTP API: {r['users']:,} accounts, each signed up (one session) and "
          f"signed in once more (a second): {n:,} live sessions, a browser's User-Agent ({len(r['user_agent'])} characters), "
          "after a warm-up account (its keys are in the counts, not in the memory difference).",
          "",
          "| what | bytes | how |", "|---|---:|---|",
          f"| session record `s:` (mean of {r['keys'].get('s', 0):,}) | {mean['s']:,.0f} | `MEMORY USAGE … SAMPLES 0` |",
          f"| directory entry `p:` (mean of {r['keys'].get('p', 0):,}) | {mean['p']:,.0f} | `MEMORY USAGE` |",
          f"| index `u:` with 2 entries (mean of {r['keys'].get('u', 0):,}; {r['index_encoding']}) | {mean['u']:,.0f} | `MEMORY USAGE` |",
          ]
    md += [f"| index `u:` of one account with {k} {'entry' if k == 1 else 'entries'} | {v:,} | `MEMORY USAGE` |"
           for k, v in sorted(idx.items())]
    md += [f"| … each index entry beyond the first (1 → 25; encoding at 25: {r['index_encoding_25']}) | {per_entry:,.1f} | difference ÷ 24 |",
           f"| tombstone `t:` of a signed-out session (lives ≤ 1 h) | {one['t'] if one['t'] is not None else '—'} | `MEMORY USAGE` |",
           f"| **used_memory per 10,000 live sessions** (2 per account) | **{r['used_memory_per_10000_sessions']:,.0f}** | "
           f"`INFO memory` before and after, throttling counters removed first |",
           f"| … per session | {r['used_memory_per_10000_sessions'] / 10_000:,.0f} | |",
           "",
           "PostgreSQL for the same accounts (`pg_total_relation_size`, indexes included): "
           + ", ".join(f"`{t}` {b / 1e6:.2f} MB" for t, b in sorted(r["postgres_table_bytes"].items()) if b > 16384)
           + f"; `users` + `identities` = {(r['postgres_table_bytes'].get('users', 0) + r['postgres_table_bytes'].get('identities', 0)) / r['postgres_accounts']:,.0f} bytes per account"
           f" ({r['postgres_accounts']:,} accounts).",
           "",
           "Keys after the sign-ins: " + ", ".join(f"`{k}` {v:,}" for k, v in sorted(r["keys"].items()))
           + f" (the `at:` keys are sign-in throttling counters, {r['counter_bytes']:,} bytes in all, removed before the"
             " second reading).",
           ""]
    m = r["machine"]
    md += [f"Machine: {m['cpus']} × {m['cpu']}, Linux {m['kernel']}, {m['redis']}; {m['date']}."]
    save_results("memory", "\n".join(md), r)


PEERS_DIR = os.path.join(os.path.dirname(ROOT), "shared", "bench-peers")


def peer_cookie(base):
    """Signs into a peer (any body signs in its fixed user) and returns (cookie name, value)."""
    req = urllib.request.Request(base + "/auth/login", method="POST", data=b"{}",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        name, value = resp.headers["Set-Cookie"].split(";", 1)[0].split("=", 1)
    check = urllib.request.Request(base + "/auth/me", headers={"Cookie": f"{name}={value}"})
    urllib.request.urlopen(check, timeout=10).read()
    return name, value


def peers_main(args):
    """authauth beside the peers its users would pick instead, in one run: axum + tower-sessions
    (rolling expiry, the same sliding idle timeout) and, with --nest, the tutorial's NestJS stack
    — all on one private Redis, measured in interleaved rounds against Redis's own GET rate."""
    peers = args.peers_dir
    axum_bin = os.path.join(peers, "peers", "axum-tower-sessions", "target", "release", "bench-peer-axum-tower-sessions")
    nest_main = os.path.join(peers, "peers", "nest-session", "dist", "main.js")
    if not os.access(axum_bin, os.X_OK) or (args.nest and not os.path.exists(nest_main)):
        raise SystemExit(f"the peers are not built: run {os.path.join(peers, 'setup.sh')} first")
    duration = args.duration or 8
    if args.binary:
        binary, seeder = args.binary, args.seeder or os.path.join(os.path.dirname(args.binary), "examples", "seed_sessions")
    else:
        binary, seeder = build()
    # The stack's floor (examples/stack_floor.rs): authauth's connection loop, a poem endpoint and
    # authauth's Redis connection, with none of authauth's own work.
    floor_bin = args.floor or os.path.join(os.path.dirname(seeder), "stack_floor")
    if not os.access(floor_bin, os.X_OK):
        raise SystemExit(f"{floor_bin} is missing: cargo build --release --example stack_floor")
    cleanup = Cleanup()
    tmp = tempfile.mkdtemp(prefix="authauth-peers-")
    cleanup.add(lambda: shutil.rmtree(tmp, ignore_errors=True))
    results = {"duration_s": duration}
    try:
        redis = Redis(tmp)
        cleanup.add(redis.stop)
        procs = {}

        def start(name, cmd, env, cwd):
            log_path = os.path.join(tmp, f"{name}.log")
            proc = spawn(cmd, env=env, cwd=cwd, stdout=open(log_path, "w"), stderr=subprocess.STDOUT)
            cleanup.add(lambda: stop(proc))
            wait_port(int(env["PORT"]), proc=proc, log_path=log_path)
            procs[name] = proc
            return f"http://127.0.0.1:{env['PORT']}"

        peer_env = {"PATH": os.environ["PATH"], "HOST": "127.0.0.1", "REDIS_URL": redis.url(), "ROLLING": "true",
                    "NODE_ENV": "production", "SESSION_SECRET": secrets.token_urlsafe(48)}
        axum = start("axum", [axum_bin], {**peer_env, "PORT": str(free_port())}, os.path.dirname(os.path.dirname(os.path.dirname(axum_bin))))
        bases = {"axum": axum}
        if args.nest:
            bases["nest"] = start("nest", ["node", "dist/main.js"], {**peer_env, "PORT": str(free_port())},
                                  os.path.dirname(os.path.dirname(nest_main)))
        db = create_db()
        cleanup.add(lambda: drop_db(db))
        env = server_env(db, secrets.token_urlsafe(48), redis.url())
        run([binary, "migrate", "up"], env=env, cwd=tmp)
        bases["authauth"] = start("authauth", [binary, "serve"], env, tmp)
        rss = Rss(procs["authauth"].pid)
        cookies = os.path.join(tmp, "authauth.txt")
        subprocess.run([seeder, "1000", "10", cookies, "1000"], env=env, cwd=tmp, check=True, stderr=subprocess.DEVNULL)
        check_session(bases["authauth"], cookies, os.path.join(tmp, "authauth.log"))
        bases["floor"] = start("floor", [floor_bin], {**env, "PORT": str(free_port())}, tmp)
        me_env = {"authauth": {"BENCH_COOKIES": cookies, "BENCH_COOKIE_NAME": COOKIE}}
        # The floor reads the same cookies (it only looks for the cookie's name).
        me_env["floor"] = me_env["authauth"]
        for name in bases:
            if name in me_env:
                continue
            cookie_name, value = peer_cookie(bases[name])
            path = os.path.join(tmp, f"{name}.txt")
            with open(path, "w") as f:
                f.write(value + "\n")
            me_env[name] = {"BENCH_COOKIES": path, "BENCH_COOKIE_NAME": cookie_name}

        phases = [("redis_get", None, None)]
        for name in bases:
            phases += [(f"{name}_me", name, "/auth/me"), (f"{name}_401", name, None)]
        phases.append(("authauth_verify", "authauth", "/auth/verify"))
        rounds = {p[0]: [] for p in phases}
        rss.reset()
        for n in range(args.rounds):
            log(f"round {n + 1}/{args.rounds}: " + ", ".join(p[0] for p in phases))
            for key, name, path in phases:
                redis_cpu = redis.cpu_seconds()
                if name is None:
                    gets = 300_000
                    client = children_cpu_seconds()
                    r = {"rps": redis.benchmark_get(50, gets)}
                    r["client_us"] = (children_cpu_seconds() - client) * 1e6 / gets
                    r["redis_us"] = (redis.cpu_seconds() - redis_cpu) * 1e6 / gets
                    rounds[key].append(r)
                    continue
                server_cpu = process_cpu_split(procs[name].pid)
                if path is None:
                    r = wrk(bases[name] + "/auth/me", 50, duration)
                    if r["non_2xx"] != r["requests"]:
                        raise SystemExit(f"{name}: the no-cookie requests were not all refused")
                else:
                    redis.reset()
                    r = wrk(bases[name] + path, 50, duration, "me.lua", {**me_env[name], "BENCH_PATH": path})
                    if r["non_2xx"]:
                        raise SystemExit(f"{name} {path}: {r['non_2xx']} answers were not 2xx")
                    r["redis_commands_per_request"] = sum(redis.commands().values()) / max(r["requests"], 1)
                # Where each request's time went: the server's user and kernel time, Redis's.
                r["user_us"], r["system_us"] = cpu_us_per_request(procs[name].pid, server_cpu, r["requests"])
                r["redis_us"] = (redis.cpu_seconds() - redis_cpu) * 1e6 / max(r["requests"], 1)
                rounds[key].append(r)
        results["rounds"] = rounds
        results["peak_rss_bytes"] = rss.peak
        results["machine"] = machine(duration, "wrk -t2 -c50 --latency")
    finally:
        cleanup.run()
    peers_report(results)


def peers_report(r):
    rounds = r["rounds"]

    def med(key):
        return sorted(rounds[key], key=lambda x: x["rps"])[len(rounds[key]) // 2]

    def ratio(a, b):
        """The median of the per-round ratios (each from measurements a few seconds apart)."""
        each = [x["rps"] / y["rps"] for x, y in zip(rounds[a], rounds[b])]
        return sorted(each)[len(each) // 2], each

    names = [("authauth_me", "authauth, authenticated `GET /auth/me`"),
             ("authauth_verify", "authauth, authenticated `GET /auth/verify`"),
             ("authauth_401", "authauth, `GET /auth/me` without a cookie (401)"),
             ("axum_me", "axum + tower-sessions (rolling), authenticated `GET /auth/me`"),
             ("axum_401", "axum + tower-sessions, without a cookie (401)"),
             ("floor_me", "the stack's floor (`examples/stack_floor`), cookie → one Redis `GET` → 200"),
             ("floor_401", "the stack's floor, without a cookie (401)"),
             ("nest_me", "NestJS + express-session + connect-redis, authenticated"),
             ("nest_401", "NestJS + express-session, without a cookie (401)")]
    md = [f"| measurement (50 connections, median of {len(rounds['redis_get'])} rounds) | req/s | p50 ms | p99 ms | Redis cmds/req |",
          "|---|---:|---:|---:|---:|",
          f"| redis-benchmark GET | {med('redis_get')['rps']:,.0f} | | | |"]
    for key, label in names:
        if key in rounds:
            m = med(key)
            cmds = f"{m['redis_commands_per_request']:.3f}" if "redis_commands_per_request" in m else ""
            md.append(f"| {label} | {m['rps']:,.0f} | {m['p50_ms']:.2f} | {m['p99_ms']:.2f} | {cmds} |")
    me, me_each = ratio("authauth_me", "redis_get")
    vs_axum, vs_axum_each = ratio("authauth_me", "axum_me")
    own, own_each = ratio("authauth_me", "authauth_401")
    u401, u401_each = ratio("authauth_401", "axum_401")
    ver, ver_each = ratio("authauth_verify", "redis_get")
    ver_axum, ver_axum_each = ratio("authauth_verify", "axum_me")
    p99 = med("authauth_me")["p99_ms"]
    peak = r["peak_rss_bytes"]
    targets = [
        ("authenticated `/auth/me` ÷ Redis GET", me, me_each, 0.5),
        ("authenticated `/auth/me` ÷ axum + tower-sessions authenticated", vs_axum, vs_axum_each, 1.6),
        ("no-cookie 401 ÷ axum's no-cookie 401", u401, u401_each, 0.9),
        ("authenticated ÷ own no-cookie 401", own, own_each, 0.6),
        ("authenticated `/auth/verify` ÷ Redis GET", ver, ver_each, 0.5),
        ("authenticated `/auth/verify` ÷ axum + tower-sessions authenticated", ver_axum, ver_axum_each, 1.6),
    ]
    md += ["", "| target | measured (each round) | goal | met |", "|---|---|---|---|"]
    for label, value, each, goal in targets:
        md.append(f"| {label} | {value:.3f} ({', '.join(f'{x:.2f}' for x in each)}) | ≥ {goal} | "
                  f"{'yes' if value >= goal else '**no**'} |")
    md.append(f"| authenticated p99 | {p99:.2f} ms | ≤ 5 ms | {'yes' if p99 <= 5 else '**no**'} |")
    md.append(f"| authauth peak RSS over the run | {peak / 10**6:.1f} MB | ≤ 64 MB | {'yes' if peak <= 64 * 10**6 else '**no**'} |")
    if "nest_me" in rounds:
        nest, nest_each = ratio("authauth_me", "nest_me")
        md.append(f"| authenticated ÷ NestJS authenticated | {nest:.2f} ({', '.join(f'{x:.2f}' for x in nest_each)}) | (for information) | |")
    if "floor_me" in rounds:
        md += ["", "What the stack itself allows — the floor is authauth's connection loop, a poem endpoint and "
               "authauth's Redis connection, with none of authauth's own work:", "",
               "| ratio | median (each round) |", "|---|---|"]
        for label, a, b in (("the floor's authenticated ÷ Redis GET", "floor_me", "redis_get"),
                            ("the floor's authenticated ÷ axum + tower-sessions authenticated", "floor_me", "axum_me"),
                            ("the floor's 401 ÷ axum's no-cookie 401", "floor_401", "axum_401"),
                            ("the floor's authenticated ÷ the floor's 401", "floor_me", "floor_401"),
                            ("authauth authenticated `/auth/me` ÷ the floor's authenticated", "authauth_me", "floor_me"),
                            ("authauth authenticated `/auth/verify` ÷ the floor's authenticated", "authauth_verify", "floor_me"),
                            ("authauth no-cookie 401 ÷ the floor's 401", "authauth_401", "floor_401")):
            value, each = ratio(a, b)
            md.append(f"| {label} | {value:.3f} ({', '.join(f'{x:.2f}' for x in each)}) |")
    if "user_us" in rounds["authauth_me"][0]:
        def cpu(key, field):
            each = sorted(x[field] for x in rounds[key])
            return each[len(each) // 2]

        def client(key):
            return cpu(key, "client_us") if "client_us" in rounds[key][0] else 0.0

        md += ["", "CPU time per request (median of the rounds; the server's from `/proc/<pid>/stat`, "
               "Redis's from `INFO cpu`, the load generator's — wrk, or redis-benchmark — from "
               "`getrusage(RUSAGE_CHILDREN)`):", "",
               "| request | server user µs | server kernel µs | Redis µs | load generator µs | total µs |",
               "|---|---:|---:|---:|---:|---:|"]
        rd, cl = cpu("redis_get", "redis_us"), client("redis_get")
        md.append(f"| redis-benchmark GET | | | {rd:.2f} | {cl:.2f} | {rd + cl:.2f} |")
        for key, label in names:
            if key in rounds:
                u, s, rd, cl = cpu(key, "user_us"), cpu(key, "system_us"), cpu(key, "redis_us"), client(key)
                md.append(f"| {label} | {u:.2f} | {s:.2f} | {rd:.2f} | {cl:.2f} | {u + s + rd + cl:.2f} |")
    m = r["machine"]
    md += ["", f"Machine: {m['cpus']} × {m['cpu']}, Linux {m['kernel']}, {m['redis']}; {m['date']}; "
           f"{m['duration_s']} s per phase; wrk, the servers and Redis share the machine; authauth with "
           "production settings (APP_ENV=production, JSON access log at info, into a file)."]
    save_results("peers", "\n".join(md), r)


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="short phases, 100,000 sessions at most")
    ap.add_argument("--duration", type=int, default=None, help="seconds per wrk phase (default 10, quick 4)")
    ap.add_argument("--max-sessions", type=int, default=None, help="largest store for the scaling phase")
    ap.add_argument("--cluster", action="store_true",
                    help="authauth on a six-node Redis Cluster beside authauth on one Redis, in one run; "
                         "writes bench/results/cluster.{md,json}")
    ap.add_argument("--memory", action="store_true",
                    help="bytes per live session in Redis, sessions created through the API; "
                         "writes bench/results/memory.{md,json}")
    ap.add_argument("--memory-users", type=int, default=5000,
                    help="accounts for --memory, two sessions each (default 5,000: 10,000 sessions)")
    ap.add_argument("--peers", action="store_true",
                    help="authauth beside axum + tower-sessions (and, with --nest, NestJS) on one Redis, in "
                         "interleaved rounds; needs the peers built (../shared/bench-peers/setup.sh); "
                         "writes bench/results/peers.{md,json}")
    ap.add_argument("--peers-dir", default=PEERS_DIR, help=f"where the peers are (default {PEERS_DIR})")
    ap.add_argument("--binary", help="with --peers: this release binary instead of building one")
    ap.add_argument("--seeder", help="with --binary: its examples/seed_sessions (default: beside it)")
    ap.add_argument("--nest", action="store_true", help="with --peers: the NestJS peer too")
    ap.add_argument("--floor", help="with --peers: the examples/stack_floor binary (default: beside the seeder)")
    ap.add_argument("--rounds", type=int, default=3, help="with --peers: interleaved rounds (default 3)")
    ap.add_argument("--report", action="store_true",
                    help="only re-render bench/results/latest.md (with --cluster: cluster.md, "
                         "with --memory: memory.md) from its .json")
    return ap.parse_args()


if __name__ == "__main__":
    args = parse_args()
    if args.report:
        name, render = (("cluster", cluster_report) if args.cluster else
                        ("peers", peers_report) if args.peers else
                        ("memory", memory_report) if args.memory else ("latest", report))
        with open(os.path.join(ROOT, "bench", "results", f"{name}.json")) as f:
            render(json.load(f))
    elif args.peers:
        peers_main(args)
    elif args.cluster:
        cluster_main(args)
    elif args.memory:
        memory_main(args)
    else:
        main(args)
