#!/usr/bin/env python3
"""Two authauth binaries, one run: did a change move the per-request cost?

    python3 bench/ab.py BEFORE_BINARY AFTER_BINARY [--rounds 3] [--duration 8]
    python3 bench/ab.py BINARY BINARY --env-b WORKER_THREADS=1   # one build, two settings

Builds nothing: pass two release binaries (e.g. build the parent commit in a worktree with its
own CARGO_TARGET_DIR). Starts one private Redis and one PostgreSQL database per binary, each
migrated by its own binary (so two commits on either side of a migration compare too — a server
refuses a database migrated further than it knows), and runs both servers over the one Redis
(the sessions they check) with production settings (APP_ENV=production, JSON access log at info), seeds 1,000
sessions with the AFTER binary's seeder if given (--seeder) or through the API, and measures,
in alternating rounds (A, B, A, B, …) so both see the same machine: authenticated `GET /auth/me`
and the no-cookie 401, 50 connections each. Prints the medians and the B/A ratios, and each
server's user and kernel CPU time per request (`/proc/<pid>/stat`).
"""

import argparse
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import COOKIE, Redis, cpu_us_per_request, free_port, log, process_cpu_split, run, wait_port, wrk  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("before")
    ap.add_argument("after")
    ap.add_argument("--seeder", required=True, help="examples/seed_sessions binary (release)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=8)
    ap.add_argument("--env-a", action="append", default=[], metavar="NAME=VALUE",
                    help="an extra environment variable for A's server (repeatable)")
    ap.add_argument("--env-b", action="append", default=[], metavar="NAME=VALUE",
                    help="an extra environment variable for B's server (repeatable)")
    args = ap.parse_args()
    extra = {}
    for name, pairs in (("A", args.env_a), ("B", args.env_b)):
        extra[name] = {}
        for pair in pairs:
            key, sep, value = pair.partition("=")
            if not sep or not key:
                ap.error(f"--env-{name.lower()} takes NAME=VALUE, not {pair!r}")
            extra[name][key] = value

    tmp = tempfile.mkdtemp(prefix="authauth-ab-")
    redis = Redis(tmp)
    dbs = {name: f"authauth_ab_{uuid.uuid4().hex[:12]}" for name in "AB"}
    procs = []
    try:
        env = {
            "PATH": os.environ["PATH"],
            "APP_ENV": "production",
            "PUBLIC_URL": "https://auth.example.com",
            "ALLOWED_HOSTS": "127.0.0.1",
            "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{dbs['B']}",
            "REDIS_URL": f"redis://127.0.0.1:{redis.port}",
            "REDIS_KEY_PREFIX": "ab:",
            "SESSION_SECRET": secrets.token_urlsafe(48),
        }
        db_env = {}
        for name, binary in (("A", args.before), ("B", args.after)):
            run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-c", f'CREATE DATABASE "{dbs[name]}"'])
            db_env[name] = dict(env, DATABASE_URL=f"postgres://postgres@127.0.0.1:5432/{dbs[name]}")
            run([binary, "migrate", "up"], env=db_env[name], cwd=tmp)
        cookies = os.path.join(tmp, "cookies.txt")
        subprocess.run([args.seeder, "1000", "10", cookies, "1000"], env=env, cwd=tmp, check=True,
                       stderr=subprocess.DEVNULL)
        urls, pids = {}, {}
        for name, binary in (("A", args.before), ("B", args.after)):
            port = free_port()
            log_file = open(os.path.join(tmp, f"{name}.log"), "w")
            procs.append(subprocess.Popen([binary, "serve"], env=dict(db_env[name], PORT=str(port), **extra[name]), cwd=tmp,
                                          stdout=log_file, stderr=log_file))
            wait_port(port)
            urls[name] = f"http://127.0.0.1:{port}/auth/me"
            pids[name] = procs[-1].pid
        me_env = {"BENCH_COOKIES": cookies, "BENCH_COOKIE_NAME": COOKIE}
        results = {(n, k): [] for n in "AB" for k in ("me", "no_cookie")}

        def measured(name, *wrk_args):
            """One wrk phase against `name`'s server, with the server's CPU time per request."""
            before = process_cpu_split(pids[name])
            r = wrk(urls[name], 50, args.duration, *wrk_args)
            r["user_us"], r["system_us"] = cpu_us_per_request(pids[name], before, r["requests"])
            return r

        for r in range(args.rounds):
            for name in "AB":
                log(f"round {r + 1}/{args.rounds}: {name}")
                results[(name, "me")].append(measured(name, "me.lua", me_env))
                results[(name, "no_cookie")].append(measured(name))
        print(f"\nA = {args.before} {' '.join(args.env_a)}\nB = {args.after} {' '.join(args.env_b)}\n{args.rounds} alternating rounds of "
              f"{args.duration} s, 50 connections, production settings; medians of one run:\n")
        print("| request | A req/s | B req/s | B/A | A p99 ms | B p99 ms |")
        print("|---|---|---|---|---|---|")
        for key, label in (("me", "authenticated GET /auth/me"), ("no_cookie", "no-cookie 401")):
            a = statistics.median(x["rps"] for x in results[("A", key)])
            b = statistics.median(x["rps"] for x in results[("B", key)])
            ap99 = statistics.median(x["p99_ms"] for x in results[("A", key)])
            bp99 = statistics.median(x["p99_ms"] for x in results[("B", key)])
            print(f"| {label} | {a:,.0f} | {b:,.0f} | {b / a:.2f} | {ap99:.2f} | {bp99:.2f} |")
        print("\nServer CPU time per request (medians), user + kernel µs:\n")
        print("| request | A user | A kernel | B user | B kernel |")
        print("|---|---|---|---|---|")
        for key, label in (("me", "authenticated GET /auth/me"), ("no_cookie", "no-cookie 401")):
            cells = [statistics.median(x[f] for x in results[(n, key)]) for n in "AB" for f in ("user_us", "system_us")]
            print(f"| {label} | " + " | ".join(f"{c:.2f}" for c in cells) + " |")
        for name in "AB":
            bad = sum(x["non_2xx"] for x in results[(name, "me")])
            if bad:
                print(f"\nwarning: {name} answered {bad} authenticated requests with a non-2xx status")
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait()
        redis.proc.terminate()
        redis.proc.wait()
        for db in dbs.values():
            subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-c", f'DROP DATABASE IF EXISTS "{db}"'],
                           capture_output=True)
        subprocess.run(["rm", "-rf", tmp])


if __name__ == "__main__":
    main()
