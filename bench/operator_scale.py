#!/usr/bin/env python3
"""The operator CLI on a large store: time and peak memory of the whole-store commands.

    python3 bench/operator_scale.py                          # 1,000,000 sessions, 100,000 users
    python3 bench/operator_scale.py --sessions 100000        # smaller

Starts its own Redis (loopback, no persistence), creates and drops its own PostgreSQL database,
seeds sessions through the real session service (examples/seed_sessions.rs, 10 per user), creates
an account for every user they belong to, then runs the release binary's `sessions list --json`,
`users list --json` and `sessions revoke --all --yes` under `/usr/bin/time -v` and prints wall
time and peak RSS for each. Needs what bench/bench.py needs, plus GNU time (`apt-get install
time`). See docs/performance.md for the results.
"""

import argparse
import csv
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import ROOT, free_port, log, run, wait_port  # noqa: E402


def timed(cmd, env, cwd):
    """Runs `cmd` under GNU time: (seconds, peak RSS in MB, stdout bytes)."""
    out = tempfile.TemporaryFile()
    err = subprocess.run(["/usr/bin/time", "-v", *cmd], env=env, cwd=cwd, stdout=out,
                         stderr=subprocess.PIPE, text=True, check=True).stderr
    size = out.tell()
    out.close()
    wall = re.search(r"Elapsed \(wall clock\) time.*: (?:(\d+):)?(\d+):([\d.]+)", err)
    hours, minutes, seconds = (float(g) if g else 0.0 for g in wall.groups())
    rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", err).group(1))
    return hours * 3600 + minutes * 60 + seconds, rss_kb / 1024, size


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sessions", type=int, default=1_000_000)
    ap.add_argument("--per-user", type=int, default=10)
    args = ap.parse_args()
    if not os.path.exists("/usr/bin/time"):
        raise SystemExit("GNU time is needed: apt-get install time")

    log("building authauth (release)")
    subprocess.run(["cargo", "build", "--release", "--bin", "authauth", "--example", "seed_sessions"],
                   cwd=ROOT, check=True)
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    binary = os.path.join(target, "release", "authauth")
    seeder = os.path.join(target, "release", "examples", "seed_sessions")

    tmp = tempfile.mkdtemp(prefix="authauth-opscale-")
    port = free_port()
    redis = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                              "--appendonly", "no", "--dir", tmp], stdout=subprocess.DEVNULL)
    db = f"authauth_opscale_{uuid.uuid4().hex[:12]}"
    try:
        wait_port(port)
        run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-c", f'CREATE DATABASE "{db}"'])
        env = {
            "PATH": os.environ["PATH"],
            "APP_ENV": "production",
            "PUBLIC_URL": "https://auth.example.com",
            "RUST_LOG": "warn",
            "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{db}",
            "REDIS_URL": f"redis://127.0.0.1:{port}",
            "REDIS_KEY_PREFIX": "ops:",
            "SESSION_SECRET": secrets.token_urlsafe(48),
        }
        run([binary, "migrate", "up"], env=env, cwd=tmp)
        users_file = os.path.join(tmp, "users.txt")
        log(f"seeding {args.sessions:,} sessions, {args.per_user} per user")
        seeded = subprocess.run([seeder, str(args.sessions), str(args.per_user), os.path.join(tmp, "c.txt"), "0",
                                 users_file], env=env, cwd=tmp, check=True, stderr=subprocess.PIPE,
                                text=True).stderr.strip().splitlines()[-1]
        log(seeded)
        accounts = os.path.join(tmp, "users.csv")
        with open(users_file) as ids, open(accounts, "w", newline="") as out:
            w = csv.writer(out)
            for line in ids:
                uid = line.strip()
                email = f"bench-{uid}@example.com"
                w.writerow([uid, email, email, "Bench User", "2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z"])
        run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", db, "-c",
             f"\\copy users (id, email, email_canonical, full_name, created_at, updated_at) FROM '{accounts}' CSV"])
        users = sum(1 for _ in open(users_file))
        used = run(["redis-cli", "-p", str(port), "INFO", "memory"])
        used_mb = int(re.search(r"used_memory:(\d+)", used).group(1)) / 2**20

        rows = []
        for name, cmd in (("sessions list --json", ["sessions", "list", "--json"]),
                          ("users list --json", ["users", "list", "--json"]),
                          ("sessions revoke --all --yes", ["sessions", "revoke", "--all", "--yes"])):
            log(name)
            seconds, rss, size = timed([binary, *cmd], env, tmp)
            rows.append((name, seconds, rss, size))
        left = run(["redis-cli", "-p", str(port), "EVAL",
                    "return #redis.call('KEYS', 'ops:{*}:s:*')", "0"]).strip()

        print(f"\nOperator CLI on {args.sessions:,} sessions of {users:,} users (Redis used_memory "
              f"{used_mb:,.0f} MB), release build, one run:\n")
        print("| command | wall time | peak RSS | output |")
        print("|---|---|---|---|")
        for name, seconds, rss, size in rows:
            print(f"| `authauth {name}` | {seconds:.1f} s | {rss:.0f} MB | {size / 2**20:,.1f} MB |")
        print(f"\nlive session keys left after `revoke --all`: {left}")
    finally:
        redis.terminate()
        redis.wait()
        subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-c", f'DROP DATABASE IF EXISTS "{db}"'],
                       capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
