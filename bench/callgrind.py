#!/usr/bin/env python3
"""Instructions per request, counted by callgrind — repeatable where timings are not.

    python3 bench/callgrind.py BINARY --seeder SEED_SESSIONS [--requests 2000] [--top 25] [--connections 1]
    python3 bench/callgrind.py target/release/authauth --seeder target/release/examples/seed_sessions

Starts one private Redis and one PostgreSQL database, runs the release server under
`valgrind --tool=callgrind` with production settings (APP_ENV=production, JSON access log at
info, written to a file), seeds 1,000 sessions, warms up, and then for each scenario zeroes the
counters (`callgrind_control --zero`), sends `--requests` requests one after the other on one
keep-alive connection, and dumps (`callgrind_control --dump`). Every thread of the process is
counted: the request's own work, the Redis client's, the log writer's. Prints, per scenario,
instructions per request and where they go (self cost of the top functions, and the same
grouped by what they do), and writes the raw dumps to the `--out` directory for
`callgrind_annotate`.

Scenarios: authenticated `GET /auth/me` (sessions in use: each was checked before), the
no-cookie 401 of `GET /auth/me`, authenticated `GET /auth/verify` (forward auth), and
authenticated `GET /auth/me` where every request is the first of a session just made (nothing
decoded or written before: src/session/derived.rs). Instruction counts depend on the binary and its
inputs, not on the machine's load: compare two builds by running this twice.

With `--floor BINARY` (examples/stack_floor) the floor of authauth's stack is counted the same
way: the same connection loop, poem and Redis connection, none of authauth's own work.

With `--cache-sim` valgrind also simulates the data caches — the first level as this CPU's, the
last level sized as its per-core L2 (sysfs) — and each scenario prints its first-level and L2
data misses per request, the first level's grouped like the instructions: the time a request
spends waiting for memory, which instruction counts do not show. `--l1 KIB` simulates a larger (or
smaller) first level with the same ways: where the misses stop is how much a request touches.

With `--connections N` the requests go to N keep-alive connections in turn (still one at a
time): each connection's buffers and request future are then as far from the cache as they are
under load from N clients, which one connection hides (use it with --cache-sim).

With `--axum BINARY` the axum + tower-sessions peer (../shared/bench-peers) is counted the same
way on the same Redis, after authauth: its authenticated `GET /auth/me` (one session signed in
through its `POST /auth/login`, rolling expiry) and its no-cookie 401.
"""

import argparse
import collections
import http.client
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import (COOKIE, Cleanup, Redis, create_db, drop_db, free_port, log, run, server_env, spawn,  # noqa: E402
                   stop, wait_port)

# What a function does, from its (demangled) name; the first match wins.
GROUPS = [
    ("memcpy/memmove (moving futures and buffers)", r"__memcpy|__memmove|memcpy|memmove"),
    ("memset", r"memset"),
    ("allocator (mimalloc)", r"^mi_|_mi_|mimalloc"),
    # valgrind does not emulate SHA-NI: this is the software fallback, far more than the
    # hardware instructions perf sees on a CPU that has them.
    ("SHA-256 / HMAC (software under valgrind)", r"sha2::|hmac::|sha256"),
    ("access log (tracing, JSON line, timestamp)", r"tracing|telemetry::|chrono::"),
    ("JSON (session record, response body)", r"serde_json|serde_core|serde::"),
    ("Redis client", r"^redis::|redis::"),
    ("HTTP (hyper, http, httparse)", r"hyper|httparse|^http::|http::header"),
    ("poem / poem-openapi", r"poem"),
    ("tokio runtime", r"tokio::|mio::"),
    ("I/O wrappers (libc read/write/epoll)", r"epoll|syscall|__libc_|writev|recv|send|read|write"),
    ("authauth", r"authauth::"),
]


def request(conn, path, cookie=None, cookie_name=COOKIE):
    headers = {"Host": "127.0.0.1"}
    if cookie:
        headers["Cookie"] = f"{cookie_name}={cookie}"
    conn.request("GET", path, headers=headers)
    resp = conn.getresponse()
    resp.read()
    return resp.status


def drive(port, path, cookies, n, expect, cookie_name=COOKIE, conns=None):
    """`n` requests one after the other; on `conns` (open keep-alive connections) in turn, else
    on one connection of their own."""
    own = conns is None
    if own:
        conns = [http.client.HTTPConnection("127.0.0.1", port, timeout=120)]
    for i in range(n):
        cookie = cookies[i % len(cookies)] if cookies else None
        status = request(conns[i % len(conns)], path, cookie, cookie_name)
        if status != expect:
            raise SystemExit(f"{path}: expected {expect}, got {status}")
    if own:
        conns[0].close()


def dump_totals(path):
    """Total Ir of one dump, Ir per function (self cost), and the total of every event the dump
    counts (with --cache-sim: the cache misses too), read from the dump itself: a cost line
    (a position, then one value per event, trailing zeros left out) belongs to the current `fn=`
    unless it follows a `calls=` line (then it is the inclusive cost of that call, counted where
    it was spent)."""
    names = {}
    per_fn = {}
    current = None
    after_call = False
    total = 0
    events = ["Ir"]
    event_totals = collections.Counter()
    # With --cache-sim: first-level data cache misses (reads and writes) per function.
    misses_per_fn = collections.Counter()
    with open(path, errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            if line.startswith("events:"):
                events = line.split()[1:]
            elif line.startswith("fn="):
                current = _name(names, line[3:])
                after_call = False
            elif line.startswith("calls="):
                after_call = True
            elif line.startswith(("cfn=", "cfi=", "cfl=", "cob=")):
                if line.startswith("cfn="):
                    _name(names, line[4:])
            elif line[0].isdigit() or line[0] in "+-*":
                parts = line.split()
                if len(parts) >= 2 and current is not None:
                    ir = int(parts[1])
                    if after_call:
                        after_call = False
                    else:
                        per_fn[current] = per_fn.get(current, 0) + ir
                        total += ir
                        for event, value in zip(events, parts[1:]):
                            event_totals[event] += int(value)
                            if event in ("D1mr", "D1mw"):
                                misses_per_fn[current] += int(value)
            elif line.startswith("summary:") or line.startswith("totals:"):
                pass
    return total, per_fn, event_totals, misses_per_fn


def cache_geometry(level, kib=None):
    """valgrind's `size,associativity,line size` for this CPU's data (or unified) cache of
    `level` (sysfs), sized `kib` KiB when given (same ways and line) instead of its own size."""
    base = "/sys/devices/system/cpu/cpu0/cache"
    for index in sorted(os.listdir(base)):
        def read(name):
            with open(os.path.join(base, index, name)) as f:
                return f.read().strip()
        if index.startswith("index") and read("level") == str(level) and read("type") != "Instruction":
            if kib is not None:
                size = kib * 1024
            else:
                size = read("size")
                size = int(size.rstrip("KM")) * {"K": 1024, "M": 1024 * 1024}.get(size[-1:], 1)
            return f"{size},{read('ways_of_associativity')},{read('coherency_line_size')}"
    raise SystemExit(f"--cache-sim: no level-{level} data cache described in " + base)


def _name(names, spec):
    """`(id) name` defines a compressed name, `(id)` refers to it."""
    m = re.match(r"^\((\d+)\)(?: (.*))?$", spec)
    if not m:
        return spec
    if m.group(2) is not None:
        names[m.group(1)] = m.group(2)
    return names.get(m.group(1), spec)


def group_of(name):
    for label, pattern in GROUPS:
        if re.search(pattern, name):
            return label
    return "other"


def control(pid, port, *command, env=None):
    """`callgrind_control` on `pid`. valgrind reads the command only when the process runs: an
    idle server (authauth's log thread wakes it every 250 ms; the peer has no such thread) is
    woken by opening connections to it until the command is done (a connection accepted and
    closed costs it a few thousand instructions, once, against 2,000 requests). `env`: the
    target's USER and HOST, which valgrind's gdbserver names its files after."""
    env = dict(os.environ, **{k: v for k, v in (env or {}).items() if k in ("USER", "HOST")})
    proc = subprocess.Popen(["callgrind_control", *command, str(pid)], stdout=subprocess.DEVNULL, env=env)
    while proc.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            pass
        time.sleep(0.2)
    if proc.returncode != 0:
        raise SystemExit(f"callgrind_control {' '.join(command)} failed")


def measure(pid, port, out_dir, args, key, label, path, cookies, expect, cookie_name=COOKIE, env=None):
    """Zeroes the counters of the process `pid`, sends the requests, dumps, and reads the dump."""
    log(f"{label}: {args.requests} requests on {args.connections} connection(s)")
    # The connections are open and have each served a request before the counters start, so
    # what is counted is requests only, on as many connections as `--connections` says.
    conns = [http.client.HTTPConnection("127.0.0.1", port, timeout=120) for _ in range(args.connections)]
    drive(port, path, cookies, len(conns), expect, cookie_name, conns)
    control(pid, port, "--zero", env=env)
    drive(port, path, cookies, args.requests, expect, cookie_name, conns)
    for conn in conns:
        conn.close()
    before = set(os.listdir(out_dir))
    control(pid, port, "--dump", key, env=env)
    dump = None
    for _ in range(600):
        new = sorted(set(os.listdir(out_dir)) - before)
        if new:
            dump = os.path.join(out_dir, new[-1])
            break
        time.sleep(0.1)
    if dump is None:
        raise SystemExit("callgrind wrote no dump")
    time.sleep(0.5)  # the dump is written before callgrind_control returns; be safe
    total, per_fn, events, misses_per_fn = dump_totals(dump)
    per_req = total / args.requests
    groups = collections.Counter()
    for name, ir in per_fn.items():
        groups[group_of(name)] += ir
    miss_groups = collections.Counter()
    for name, misses in misses_per_fn.items():
        miss_groups[group_of(name)] += misses
    top = sorted(per_fn.items(), key=lambda kv: -kv[1])[: args.top]
    return {
        "label": label,
        "requests": args.requests,
        "connections": args.connections,
        "instructions_per_request": round(per_req),
        "groups": {g: round(ir / args.requests) for g, ir in groups.most_common()},
        "top": [(name, round(ir / args.requests)) for name, ir in top],
        "dump": os.path.basename(dump),
        # With --cache-sim: data reads and writes that missed the first-level cache, and those
        # that missed the simulated last level (this CPU's L2, per core).
        "misses_per_request": {
            "D1": round((events["D1mr"] + events["D1mw"]) / args.requests),
            "L2": round((events["DLmr"] + events["DLmw"]) / args.requests),
            "D1_groups": {g: round(m / args.requests) for g, m in miss_groups.most_common() if m >= args.requests},
        } if "D1mr" in events else None,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("binary")
    ap.add_argument("--seeder", required=True, help="examples/seed_sessions binary (release)")
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--connections", type=int, default=1, metavar="N",
                    help="send the requests on N keep-alive connections in turn, still one at a time: "
                         "each connection's buffers and request future are as far from the cache as "
                         "under load from N clients (with --cache-sim)")
    ap.add_argument("--out", default=None, help="where to keep the dumps (default: a temporary directory)")
    ap.add_argument("--json", default=None, help="write the figures as JSON here")
    ap.add_argument("--axum", default=None, metavar="BINARY",
                    help="also count the axum + tower-sessions peer (../shared/bench-peers/peers/"
                         "axum-tower-sessions, built by its setup.sh): its authenticated GET /auth/me "
                         "(one session, rolling expiry) and its no-cookie 401, on the same Redis")
    ap.add_argument("--cache-sim", action="store_true",
                    help="also simulate the data caches (valgrind --cache-sim=yes, the last level sized "
                         "as this CPU's per-core L2) and count misses per request; slower")
    ap.add_argument("--l1", type=int, default=None, metavar="KIB",
                    help="with --cache-sim: simulate a first-level data cache of KIB KiB (this CPU's ways "
                         "and line size) instead of this CPU's, to see how much memory a request touches")
    ap.add_argument("--floor", default=None, metavar="BINARY",
                    help="also count the stack's floor (examples/stack_floor: authauth's connection loop, "
                         "a poem endpoint and its Redis connection, none of authauth's own work): its "
                         "authenticated GET /auth/me (one Redis GET) and its 401, on the same Redis")
    args = ap.parse_args()
    for tool in ("valgrind", "callgrind_control", "callgrind_annotate", "redis-server", "psql"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is needed (valgrind: apt-get install valgrind)")

    valgrind = ["valgrind", "--tool=callgrind", "--dump-instr=no", "--separate-threads=no"]
    if args.cache_sim:
        valgrind += ["--cache-sim=yes", f"--LL={cache_geometry(2)}"]
        if args.l1:
            valgrind.append(f"--D1={cache_geometry(1, args.l1)}")

    cleanup = Cleanup()
    tmp = tempfile.mkdtemp(prefix="authauth-callgrind-")
    cleanup.add(lambda: shutil.rmtree(tmp, ignore_errors=True))
    out_dir = args.out or os.path.join(tmp, "dumps")
    os.makedirs(out_dir, exist_ok=True)
    results = {}
    try:
        redis = Redis(tmp)
        cleanup.add(redis.stop)
        db = create_db()
        cleanup.add(lambda: drop_db(db))
        env = server_env(db, secrets.token_urlsafe(48), redis.url(), RUST_LOG="info")
        port = int(env["PORT"])
        run([args.binary, "migrate", "up"], env=env, cwd=tmp)
        cookies_file = os.path.join(tmp, "cookies.txt")
        subprocess.run([args.seeder, "1000", "10", cookies_file, "1000"], env=env, cwd=tmp, check=True,
                       stderr=subprocess.DEVNULL)
        cookies = [line.strip() for line in open(cookies_file) if line.strip()]
        base = os.path.join(out_dir, "callgrind.out")
        server_log = open(os.path.join(tmp, "server.log"), "w")
        server = spawn([*valgrind, f"--callgrind-out-file={base}.%p", args.binary, "serve"],
                       env=env, cwd=tmp, stdout=server_log, stderr=server_log)
        cleanup.add(lambda: stop(server, timeout=120))
        wait_port(port, timeout=300, proc=server, log_path=server_log.name)
        log("warming up")
        # Every session once on each route: a session in use has had its record decoded, its
        # body and its identity headers written before (src/session/derived.rs); the "unseen"
        # scenario measures the first request.
        drive(port, "/auth/me", cookies, len(cookies), 200)
        drive(port, "/auth/me", None, 300, 401)
        drive(port, "/auth/verify", cookies, len(cookies), 200)

        def unseen():
            """Sessions made just now (so none is due a sliding refresh) that no request used."""
            fresh_file = os.path.join(tmp, "unseen.txt")
            subprocess.run([args.seeder, str(args.requests), "10", fresh_file, str(args.requests)],
                           env=env, cwd=tmp, check=True, stderr=subprocess.DEVNULL)
            return [line.strip() for line in open(fresh_file) if line.strip()]

        scenarios = [
            ("me", "authenticated GET /auth/me", "/auth/me", lambda: cookies, 200),
            ("no_cookie", "GET /auth/me without a cookie (401)", "/auth/me", lambda: None, 401),
            ("verify", "authenticated GET /auth/verify", "/auth/verify", lambda: cookies, 200),
            ("me_unseen", "authenticated GET /auth/me, each session's first request", "/auth/me",
             unseen, 200),
        ]
        for key, label, path, cookies_of, expect in scenarios:
            results[key] = measure(server.pid, port, out_dir, args, key, label, path, cookies_of(), expect)
        stop(server, timeout=120)

        if args.floor:
            # The same stack with none of authauth's own work, on the same Redis and settings.
            fport = free_port()
            floor_env = dict(env, PORT=str(fport))
            floor = spawn([*valgrind, f"--callgrind-out-file={base}-floor.%p", args.floor],
                          env=floor_env, cwd=tmp, stdout=server_log, stderr=server_log)
            cleanup.add(lambda: stop(floor, timeout=120))
            wait_port(fport, timeout=300, proc=floor, log_path=server_log.name)
            log("floor: warming up")
            drive(fport, "/auth/me", cookies, 300, 200)
            drive(fport, "/auth/me", None, 300, 401)
            for key, label, cks, expect in [
                ("floor_me", "the stack's floor, GET /auth/me with a cookie (one Redis GET)", cookies, 200),
                ("floor_no_cookie", "the stack's floor, GET /auth/me without a cookie (401)", None, 401),
            ]:
                results[key] = measure(floor.pid, fport, out_dir, args, key, label, "/auth/me", cks, expect,
                                       env=floor_env)
            stop(floor, timeout=120)

        if args.axum:
            # The peer users would pick instead, on the same Redis, counted the same way.
            aport = free_port()
            peer_env = {"PATH": os.environ.get("PATH", ""), "HOST": "127.0.0.1", "PORT": str(aport),
                        "REDIS_URL": redis.url(), "SESSION_SECRET": secrets.token_urlsafe(48),
                        "ROLLING": "true"}
            peer = spawn([*valgrind, f"--callgrind-out-file={base}-axum.%p", args.axum],
                         env=peer_env, cwd=tmp, stdout=server_log, stderr=server_log)
            cleanup.add(lambda: stop(peer, timeout=120))
            wait_port(aport, timeout=300, proc=peer, log_path=server_log.name)
            conn = http.client.HTTPConnection("127.0.0.1", aport, timeout=120)
            conn.request("POST", "/auth/login", body="{}", headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            resp.read()
            sid = re.search(r"sid=([^;]+)", resp.getheader("Set-Cookie") or "")
            if resp.status != 200 or not sid:
                raise SystemExit(f"axum peer: login answered {resp.status}")
            log("axum peer: warming up")
            drive(aport, "/auth/me", [sid.group(1)], 300, 200, "sid")
            drive(aport, "/auth/me", None, 300, 401)
            for key, label, cks, expect in [
                ("axum_me", "axum + tower-sessions, authenticated GET /auth/me", [sid.group(1)], 200),
                ("axum_no_cookie", "axum + tower-sessions, GET /auth/me without a cookie (401)", None, 401),
            ]:
                results[key] = measure(peer.pid, aport, out_dir, args, key, label, "/auth/me", cks, expect,
                                       cookie_name="sid", env=peer_env)
    finally:
        cleanup.run()

    for r in results.values():
        print(f"\n## {r['label']}: {r['instructions_per_request']:,} instructions per request "
              f"({r['requests']} requests)\n")
        misses = r["misses_per_request"]
        if misses:
            print(f"data cache misses per request: {misses['D1']:,} of the L1, {misses['L2']:,} of the L2 "
                  f"(simulated); the L1's, by what missed: "
                  + ", ".join(f"{g} {m:,}" for g, m in misses["D1_groups"].items()) + "\n")
        print("| share | instructions/request | what |\n|---:|---:|---|")
        for g, ir in r["groups"].items():
            print(f"| {100 * ir / r['instructions_per_request']:.1f} % | {ir:,} | {g} |")
        print(f"\n| instructions/request | function (self) |\n|---:|---|")
        for name, ir in r["top"]:
            print(f"| {ir:,} | `{name[:110]}` |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    if args.out:
        print(f"\ndumps in {out_dir} (callgrind_annotate FILE)")


if __name__ == "__main__":
    main()
