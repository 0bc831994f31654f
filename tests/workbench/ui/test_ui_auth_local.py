"""Local (no sign-in) mode only on loopback, and the cookie secret (issue 13.3/13.4; no server started)."""

from __future__ import annotations

from pathlib import Path

import pytest

from concepts import Workspace
from store import Role
from tests.support.auth import AUTH_ENV, ISS, LOOPBACK, ROLES, SECRETS, STRONG
from tests.support.browser import free_port
from workbench.auth._auth import resolve_session
from workbench.auth._config import (
    ENV_AUTH,
    ENV_ROLES_FILE,
    ENV_WORKSPACE,
    AuthConfigError,
)
from workbench.auth._secrets import check_oidc_secrets
from workbench.auth._serving import ServingContext
from workbench.cli._serve import plan_serve


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in AUTH_ENV:
        monkeypatch.delenv(var, raising=False)


# ---------------------------------------------------------------------------- #13.3 local mode off loopback
@pytest.mark.parametrize(
    ("ctx", "why"),
    [
        (None, "cannot tell"),
        (ServingContext(address=None), "all interfaces"),
        (ServingContext(address=""), "all interfaces"),
        (ServingContext(address="0.0.0.0"), "0.0.0.0"),
        (ServingContext(address="::"), "'::'"),
        (ServingContext(address="10.1.2.3"), "10.1.2.3"),
        (ServingContext(address="127.0.0.1", listening=("0.0.0.0",)), "bound to '0.0.0.0'"),
        (ServingContext(address="127.0.0.1", listening=("127.0.0.1", "::")), "bound to '::'"),
        (ServingContext(address="127.0.0.1", client_ip="203.0.113.9"), "connects from 203.0.113.9"),
        (ServingContext(address="127.0.0.1", host_header="evil.example:8501"), "requested as"),
        (ServingContext(address="127.0.0.1", forwarded=True), "proxy"),
    ],
)
def test_local_mode_refused_off_loopback(ctx: ServingContext | None, why: str) -> None:
    """#13.3: local mode (the OS user's identity for every visitor) only on loopback."""
    out = resolve_session("local", local_role="dermatologist", serving=ctx)
    assert out.actor is None and not out.signed_in
    assert "local mode refused" in out.problem and why in out.problem


@pytest.mark.parametrize(
    "ctx",
    [LOOPBACK, ServingContext(address="localhost", listening=()),
     ServingContext(address="::1", listening=("::1",), host_header="[::1]:8501"),
     ServingContext(address="127.0.0.1", host_header="localhost:8501")],
)
def test_local_mode_allowed_on_loopback(ctx: ServingContext) -> None:
    out = resolve_session("local", local_role="engineer", serving=ctx)
    assert out.actor is not None and out.actor.role is Role.ENGINEER


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs Linux /proc")
def test_listening_addresses_reads_the_bound_socket() -> None:
    import socket

    from workbench.auth._serving import listening_addresses

    with socket.socket() as wide, socket.socket() as narrow:
        wide.bind(("0.0.0.0", 0))
        wide.listen()
        narrow.bind(("127.0.0.1", 0))
        narrow.listen()
        assert listening_addresses(wide.getsockname()[1]) == ("0.0.0.0",)
        assert listening_addresses(narrow.getsockname()[1]) == ("127.0.0.1",)
        assert listening_addresses(free_port()) == ()


def _plain(markdown: str) -> str:
    """Undo the Markdown escaping of user text (what the browser displays)."""
    import re

    return re.sub(r"\\(.)", r"\1", markdown)


def _apptest_local(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, address: str | None, port: int = 8501):  # type: ignore[no-untyped-def]
    from streamlit import config as st_config
    from streamlit.testing.v1 import AppTest

    from tests.support.ui import APP, loopback_server_address

    monkeypatch.setenv(ENV_WORKSPACE, str(tmp_path / "no-workspace"))
    old_port = st_config.get_option("server.port")
    st_config.set_option("server.port", port)
    try:
        with loopback_server_address(address):  # type: ignore[arg-type]
            return AppTest.from_file(str(APP), default_timeout=60).run()
    finally:
        st_config.set_option("server.port", old_port)


@pytest.mark.parametrize("address", [None, "", "0.0.0.0", "::", "192.0.2.1"])
def test_app_refuses_local_mode_when_not_on_loopback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, address: str | None
) -> None:
    """#13.3: `streamlit run workbench/app.py --server.address 0.0.0.0` with WORKBENCH_AUTH unset
    used to give every visitor the OS user as a dermatologist; the app now refuses."""
    at = _apptest_local(tmp_path, monkeypatch, address)
    assert not at.exception
    assert any("local mode refused" in e.value for e in at.error), [e.value for e in at.error]
    assert not at.sidebar.markdown  # nobody is signed in, no identity shown
    assert [t.value for t in at.title] == ["Concept Workbench"]


def test_app_refuses_local_mode_when_bound_wider_than_configured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The actual listening socket counts, not only the option (Linux /proc)."""
    import socket

    if not Path("/proc/self/fd").is_dir():
        pytest.skip("needs Linux /proc")
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        s.listen()
        at = _apptest_local(tmp_path, monkeypatch, "127.0.0.1", port=s.getsockname()[1])
    assert any("bound to '0.0.0.0'" in _plain(e.value) for e in at.error), [e.value for e in at.error]


def test_app_local_mode_on_loopback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = _apptest_local(tmp_path, monkeypatch, "127.0.0.1", port=free_port())
    assert not at.exception
    assert not any("local mode refused" in e.value for e in at.error), [e.value for e in at.error]
    assert "dermatologist" in "\n".join(m.value for m in at.sidebar.markdown)


# ---------------------------------------------------------------------------- #13.4 cookie secret
PLACEHOLDER = "<32 random bytes: python -c 'import secrets; print(secrets.token_urlsafe(32))'>"


@pytest.mark.parametrize(
    "secret",
    ["x", "<a long random string>", PLACEHOLDER, "0123456789abcdef0123456789abcdef",
     "0123456789abcdef" * 4, "a" * 64, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
     "my-cookie-secret-for-the-workbench-2026-please-ok", "e2e-only-cookie-secret-0123456789abcdef",
     "", None, 12345],
)
def test_weak_cookie_secret_refused(tmp_path: Path, secret: object) -> None:
    """#13.4: the placeholder the error message suggested, or "x", was accepted."""
    from workbench.auth._secrets import check_cookie_secret

    with pytest.raises(AuthConfigError, match="cookie_secret"):
        check_cookie_secret(secret)
    p = tmp_path / "secrets.toml"
    p.write_text(SECRETS.replace(f'"{STRONG}"', json_str(secret)))
    with pytest.raises(AuthConfigError, match="cookie_secret"):
        check_oidc_secrets(p)


def json_str(value: object) -> str:
    import json

    return json.dumps(value) if isinstance(value, str | int) else '""'


def test_random_cookie_secrets_accepted() -> None:
    """No false alarms on random secrets: 20,000 of each encoding (seeded), and fresh ones."""
    import base64
    import random

    from workbench.auth._secrets import check_cookie_secret, generate_cookie_secret

    rng = random.Random(0)
    for _ in range(20_000):
        raw = rng.randbytes(32)
        for s in (base64.urlsafe_b64encode(raw).rstrip(b"=").decode(), raw.hex(),
                  base64.b64encode(raw).decode()):
            assert check_cookie_secret(s) == s
    for _ in range(100):
        s = generate_cookie_secret()
        assert check_cookie_secret(s) == s
    msg = ""
    try:
        check_cookie_secret("x")
    except AuthConfigError as exc:
        msg = str(exc)
    suggested = msg.split('cookie_secret = "')[1].split('"')[0]
    assert check_cookie_secret(suggested) == suggested  # the suggestion itself passes
    with pytest.raises(AuthConfigError) as info:
        check_cookie_secret("x", suggest=False)
    assert "cookie_secret = ..." in str(info.value)


def test_plan_serve_refuses_weak_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".streamlit").mkdir()
    (tmp_path / ".streamlit" / "secrets.toml").write_text(SECRETS.replace(STRONG, "x"))
    (tmp_path / ".streamlit" / "roles.toml").write_text(ROLES)
    with pytest.raises(AuthConfigError, match="cookie_secret is too weak"):
        plan_serve(Workspace(tmp_path / "ws"), host="0.0.0.0", port=8501)


def test_ensure_cookie_secret_generates_never_overwrites(tmp_path: Path) -> None:
    from workbench.auth._secrets import check_cookie_secret
    from workbench.cli._serve import ensure_cookie_secret

    p = tmp_path / "secrets.toml"
    without = SECRETS.replace(f'cookie_secret = "{STRONG}"\n', "")
    p.write_text(without)
    p.chmod(0o600)
    assert ensure_cookie_secret(p)
    import tomllib

    auth = tomllib.loads(p.read_text())["auth"]
    check_cookie_secret(auth["cookie_secret"])
    assert auth["client_secret"] == "s3cret" and (p.stat().st_mode & 0o777) == 0o600
    check_oidc_secrets(p)
    before = p.read_text()
    assert not ensure_cookie_secret(p)  # present now: untouched
    assert p.read_text() == before
    p.write_text(SECRETS.replace(STRONG, "x"))
    assert not ensure_cookie_secret(p)  # a weak one is refused, never replaced
    assert 'cookie_secret = "x"' in p.read_text()
    assert not ensure_cookie_secret(tmp_path / "missing.toml")


def test_app_refuses_sign_in_with_weak_cookie_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cookie signed with a guessable secret resolved to a dermatologist; not any more."""
    from streamlit.testing.v1 import AppTest

    from tests.support.ui import APP

    roles = tmp_path / "roles.toml"
    roles.write_text(ROLES)
    monkeypatch.setenv(ENV_AUTH, "oidc")
    monkeypatch.setenv(ENV_ROLES_FILE, str(roles))
    monkeypatch.setenv(ENV_WORKSPACE, str(tmp_path / "no-workspace"))
    auth = {"redirect_uri": "http://127.0.0.1:1/oauth2callback", "cookie_secret": "x",
            "client_id": "c", "client_secret": "s",
            "server_metadata_url": "http://127.0.0.1:2/.well-known/openid-configuration"}
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.secrets["auth"] = auth
    at.user = {"is_logged_in": True, "iss": ISS, "sub": "sub-derm", "name": "Forged"}
    at.run()
    assert not at.exception
    text = "\n".join(w.value for w in at.warning)
    assert "cookie_secret is too weak" in _plain(text) and "Forged" not in "\n".join(m.value for m in at.sidebar.markdown)
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.secrets["auth"] = {**auth, "cookie_secret": STRONG}
    at.user = {"is_logged_in": True, "iss": ISS, "sub": "sub-derm", "name": "Forged"}
    at.run()
    assert "Forged" in "\n".join(m.value for m in at.sidebar.markdown), [w.value for w in at.warning]
