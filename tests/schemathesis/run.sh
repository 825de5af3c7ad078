#!/usr/bin/env bash
# Fuzzes a real authauth against its own OpenAPI spec with schemathesis: every check, positive
# and negative data, as the signed-in test user. Exits non-zero on any failure.
#
#   tests/schemathesis/run.sh [path/to/authauth]
#
# The binary defaults to the debug build (`cargo build`, or the one `cargo test` builds) under
# CARGO_TARGET_DIR (else ./target). schemathesis is installed, pinned (requirements.txt), into a
# virtualenv beside it the first time. The server runs on the embedded SQLite default in a
# temporary directory, on a free loopback port, and is stopped at the end.
#
# SCHEMATHESIS_EXAMPLES (default 50): test cases per operation in the fuzzing phase.
# SCHEMATHESIS_SEED: replay a run (each run prints its seed); by default every run draws anew.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
bin="${1:-$target/debug/authauth}"
examples="${SCHEMATHESIS_EXAMPLES:-50}"

if [ ! -x "$bin" ]; then
  echo "no authauth binary at $bin: run \`cargo build\` first, or pass its path" >&2
  exit 2
fi

# A virtualenv of exactly requirements.txt: rebuilt whenever that file changes.
venv="$target/schemathesis-venv"
if ! cmp -s "$here/requirements.txt" "$venv/requirements.txt" 2>/dev/null; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
  cp "$here/requirements.txt" "$venv/requirements.txt"
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/authauth-schemathesis.XXXXXX")"
server=""
cleanup() {
  if [ -n "$server" ]; then
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# Nothing from the caller's environment reaches the server: it must not find a DATABASE_URL or
# REDIS_URL meant for something else. TRUST_X_FORWARDED_FOR lets the hooks sign in "from another
# network" than the fuzzer (see hooks.py).
(cd "$work" && exec env -i PATH="$PATH" HOME="$work" PORT=0 TRUST_X_FORWARDED_FOR=true \
  "$bin" serve >"$work/server.log" 2>&1) &
server=$!

url=""
for _ in $(seq 1 300); do
  url="$(sed -n 's/.*authauth is serving.* address=\(http:\/\/[0-9.:]*\).*/\1/p' "$work/server.log" | head -n 1)"
  [ -n "$url" ] && break
  if ! kill -0 "$server" 2>/dev/null; then break; fi
  sleep 0.1
done
if [ -z "$url" ]; then
  echo "authauth did not start:" >&2
  tail -n 20 "$work/server.log" >&2
  exit 1
fi
echo "authauth under test: $url (the end of its log is printed on failure)"

export AUTHAUTH_URL="$url"
export AUTHAUTH_EMAIL="fuzzer@example.com"
export AUTHAUTH_PASSWORD="schemathesis $(od -An -N8 -tx8 /dev/urandom | tr -d ' ')"
export SCHEMATHESIS_HOOKS="$here/hooks.py"
"$venv/bin/python" "$here/hooks.py" signup

seed=()
if [ -n "${SCHEMATHESIS_SEED:-}" ]; then seed=(--seed "$SCHEMATHESIS_SEED"); fi

# One worker: the hooks keep one session for the whole run. Every request carries this server's
# own Origin, as a browser on the Swagger UI page would (the CSRF guard refuses others).
# Run from the scratch directory: schemathesis keeps a cache in `.schemathesis/` where it runs.
status=0
(cd "$work" && exec "$venv/bin/st" run "$url/openapi.json" \
  --checks all \
  --mode all \
  --max-examples "$examples" \
  --workers 1 \
  --header "Origin: $url" \
  --generation-database none \
  --no-color \
  "${seed[@]}") \
  || status=$?

# What the server answered, by operation: shows the fuzzing reached the handlers, not only the
# guard (a run where every signup is 429, say, would pass while testing little). The 405s to
# methods no path supports are counted together.
echo "--- what the server answered ---"
sed -n 's/.* status=\([0-9]*\) .* method=\([A-Z]*\) path=\([^ ]*\).*/\2 \3 \1/p' "$work/server.log" \
  | awk '{ if ($2 ~ /^\/auth\/sessions\/./) $2 = "/auth/sessions/{id}"
           key = ($3 == 405) ? "(methods a path does not support) 405" : $0; n[key]++ }
         END { for (k in n) printf "%6d  %s\n", n[k], k }' \
  | sort -k2

if [ "$status" -ne 0 ]; then
  echo "--- the last lines of the server's log ---" >&2
  tail -n 40 "$work/server.log" >&2
fi
exit "$status"
