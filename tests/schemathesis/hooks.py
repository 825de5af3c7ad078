"""schemathesis hooks for authauth: a signed-in session that outlives the test cases ending it.

Loaded by `tests/schemathesis/run.sh` (SCHEMATHESIS_HOOKS). Operations whose spec requires the
session cookie get the test user's current session from an auth provider. Some test cases end
that session — `POST /auth/logout` and `/auth/logout-all`, `DELETE /auth/sessions/{id}` with its
own id, a password change — so after every call that may have ended it (or that was answered
401) the session is checked, and signed in again when it is gone. Without that, every later case
of every protected operation would only ever see 401.

`python hooks.py signup` creates the test user (run.sh does, before fuzzing).

Environment: AUTHAUTH_URL (the server, e.g. http://127.0.0.1:4000), AUTHAUTH_EMAIL and
AUTHAUTH_PASSWORD (the test user).
"""

from __future__ import annotations

import os
import sys

import requests
import schemathesis

BASE = os.environ["AUTHAUTH_URL"].rstrip("/")
EMAIL = os.environ.get("AUTHAUTH_EMAIL", "fuzzer@example.com")
PASSWORD = os.environ.get("AUTHAUTH_PASSWORD", "a long fuzzing passphrase")
SESSION_COOKIE = "authauth_session"
DEVICE_COOKIE = "authauth_device"

# The hooks' own requests: same-origin (the CSRF guard), and from another network than the
# fuzzer's. run.sh starts the server with TRUST_X_FORWARDED_FOR, so this address is the client's:
# the fuzzer's hundreds of wrong passwords from 127.0.0.1 rightly fill that address's sign-in
# throttle, and must not lock the test user out of signing in again.
HEADERS = {"Origin": BASE, "X-Forwarded-For": "192.0.2.10"}

# Operations after which the session may be gone even when they succeed.
ENDS_SESSIONS = {
    ("POST", "/auth/logout"),
    ("POST", "/auth/logout-all"),
    ("POST", "/auth/password"),
    ("DELETE", "/auth/sessions/{id}"),
}


class State:
    session: str | None = None
    device: str | None = None
    sign_ins = 0


def _remember(response: requests.Response) -> None:
    session = response.cookies.get(SESSION_COOKIE)
    if not session:
        raise RuntimeError(f"{response.request.method} {response.url}: no session cookie set")
    State.session = session
    State.device = response.cookies.get(DEVICE_COOKIE) or State.device


def signup() -> None:
    response = requests.post(
        f"{BASE}/auth/signup",
        json={"email": EMAIL, "password": PASSWORD, "fullName": "Schemathesis"},
        headers=HEADERS,
        timeout=30,
    )
    if response.status_code != 201:
        raise RuntimeError(f"signup: {response.status_code} {response.text}")
    _remember(response)


def sign_in() -> str:
    # The device cookie proves this browser signed in before: the account-wide throttle spares it.
    cookies = {DEVICE_COOKIE: State.device} if State.device else {}
    response = requests.post(
        f"{BASE}/auth/login",
        json={"email": EMAIL, "password": PASSWORD},
        headers=HEADERS,
        cookies=cookies,
        timeout=30,
    )
    if response.status_code != 200:
        raise RuntimeError(f"sign-in of the test user: {response.status_code} {response.text}")
    _remember(response)
    State.sign_ins += 1
    assert State.session is not None
    return State.session


def session_is_live() -> bool:
    if State.session is None:
        return False
    response = requests.get(
        f"{BASE}/auth/me", cookies={SESSION_COOKIE: State.session}, headers=HEADERS, timeout=30
    )
    return response.status_code == 200


def _requires_session(operation) -> bool:
    security = operation.definition.raw.get("security", [])
    return bool(security) and {} not in security


@schemathesis.auth(refresh_interval=None)
class SessionCookie:
    """The test user's session cookie, on the operations that require one."""

    def get(self, case, ctx):
        if not _requires_session(case.operation):
            return None
        return State.session or sign_in()

    def set(self, case, data, ctx):
        case.cookies = {**(case.cookies or {}), SESSION_COOKIE: data}


@schemathesis.hook
def after_call(context, case, response):
    key = (case.method.upper(), case.operation.path)
    if (key in ENDS_SESSIONS and response.status_code < 300) or response.status_code == 401:
        if not session_is_live():
            State.session = None


@schemathesis.hook
def filter_failure(context, failure, case, response):
    """Keeps every failure but the refusals of schema-valid data that no schema can express.

    A new password on the breached list (400 `weak_password`); the token of an e-mailed link that
    was never issued (400 `invalid_token`: a fuzzer cannot guess a 256-bit token, and whether one
    was issued is the server's state, not its shape); a second-factor code that is not the one
    the authenticator app shows now (400 `invalid_code`); and a WebAuthn answer no authenticator
    signed (400 `passkey_refused`) are documented answers, not specified ones. Any other 400 to
    data the schema allows is still a failure.
    """
    if getattr(failure, "code", None) != "ST202" or response.status_code != 400:
        return True
    try:
        return response.json().get("error") not in (
            "weak_password",
            "invalid_token",
            "invalid_code",
            "passkey_refused",
        )
    except ValueError:
        return True


if __name__ == "__main__":
    if sys.argv[1:] == ["signup"]:
        signup()
    else:
        sys.exit("usage: hooks.py signup")
