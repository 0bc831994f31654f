"""Sign-in modes, roles files and the ``workbench serve`` plan (no server started)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from concepts import Workspace
from store import Role
from tests.support.auth import AUTH_ENV, ISS, LOOPBACK, ROLES, SECRETS, STRONG
from tests.support.browser import free_port
from workbench.auth._auth import resolve_session
from workbench.auth._config import (
    ENV_AUTH,
    ENV_ROLE,
    ENV_ROLES_FILE,
    ENV_WORKSPACE,
    AuthConfigError,
)
from workbench.auth._rolemap import RoleMap
from workbench.auth._secrets import check_oidc_secrets, oidc_provider_name
from workbench.auth._serving import is_loopback
from workbench.cli._serve import SERVER_OPTIONS, ServeError, app_path, plan_serve


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in AUTH_ENV:
        monkeypatch.delenv(var, raising=False)



@pytest.mark.parametrize(
    ("host", "expected"),
    [("127.0.0.1", True), ("127.0.1.5", True), ("localhost", True), ("::1", True), ("[::1]", True),
     ("::ffff:127.0.0.1", True), ("0.0.0.0", False), ("10.0.0.2", False), ("wb.example", False),
     ("::", False), ("::ffff:10.0.0.1", False), ("", False)],
)
def test_is_loopback(host: str, expected: bool) -> None:
    assert is_loopback(host) is expected


def test_role_map_priority_and_claims() -> None:
    rm = RoleMap.from_dict(
        {"claim": "workbench_role", "subjects": {ISS: {"sub-derm": "dermatologist"}},
         "emails": {"Audit@Clinic.example": "auditor"}}
    )
    derm = {"iss": ISS, "sub": "sub-derm"}
    assert rm.role_for({**derm, "workbench_role": "auditor"}) is Role.DERMATOLOGIST
    assert rm.role_for({"iss": ISS, "sub": "x", "email": "audit@clinic.example",
                        "email_verified": True}) is Role.AUDITOR
    # an unverified e-mail is not trusted
    assert rm.role_for({"sub": "x", "email": "audit@clinic.example", "email_verified": False}) is None
    assert rm.role_for({"sub": "x", "workbench_role": ["nobody", "Engineer"]}) is Role.ENGINEER
    assert rm.role_for({"sub": "x"}) is None
    assert RoleMap.from_dict({"default": "auditor"}).role_for({"sub": "x"}) is Role.AUDITOR


@pytest.mark.parametrize("verified", [None, "true", "false", "True", 1, "yes", False])
def test_email_needs_verified_boolean_true(verified: object) -> None:
    """#13.5: a missing ``email_verified`` claim, or a string, must not count as verified."""
    rm = RoleMap.from_dict({"emails": {"ada@clinic.example": "dermatologist"}})
    claims: dict[str, object] = {"iss": ISS, "sub": "attacker", "email": "ada@clinic.example"}
    if verified is not None:
        claims["email_verified"] = verified
    assert rm.role_for(claims) is None
    out = resolve_session("oidc", user={"is_logged_in": True, **claims}, roles=rm)
    assert out.actor is None and "no workbench role" in out.problem
    assert rm.role_for({**claims, "email_verified": True}) is Role.DERMATOLOGIST


def test_subjects_are_keyed_by_issuer() -> None:
    """#13.5: the same ``sub`` from another issuer is somebody else."""
    rm = RoleMap.from_dict({"subjects": {ISS: {"248289761001": "dermatologist"}}})
    assert rm.role_for({"iss": ISS, "sub": "248289761001"}) is Role.DERMATOLOGIST
    assert rm.role_for({"iss": "https://other-idp.example", "sub": "248289761001"}) is None
    assert rm.role_for({"sub": "248289761001"}) is None  # no issuer: nobody
    ok = resolve_session("oidc", user={"is_logged_in": True, "iss": ISS, "sub": "248289761001"}, roles=rm)
    assert ok.actor is not None and ok.actor.id == f"{ISS}#248289761001"
    other = resolve_session(
        "oidc", user={"is_logged_in": True, "iss": "https://evil.example", "sub": "248289761001"}, roles=rm
    )
    assert other.actor is None
    noiss = resolve_session("oidc", user={"is_logged_in": True, "sub": "248289761001"}, roles=rm)
    assert noiss.actor is None and "iss" in noiss.problem


def test_flat_subjects_only_with_one_provider(tmp_path: Path) -> None:
    """The older flat ``[subjects]`` table still works with one provider; with two it is refused."""
    rm = RoleMap.from_dict({"subjects": {"sub-derm": "dermatologist"}})
    assert rm.has_flat_subjects
    assert rm.role_for({"iss": ISS, "sub": "sub-derm"}) is Role.DERMATOLOGIST
    one = {"client_id": "a", "client_secret": "b", "server_metadata_url": "http://m"}
    rm.check_providers(one)
    two = {"a": one, "b": one}
    with pytest.raises(AuthConfigError, match="several sign-in providers"):
        rm.check_providers(two)
    RoleMap.from_dict({"subjects": {ISS: {"s": "auditor"}}}).check_providers(two)
    with pytest.raises(AuthConfigError, match="issuer URL"):
        RoleMap.from_dict({"subjects": {"not a url": {"s": "auditor"}}})


@pytest.mark.parametrize(
    "data",
    [{"subjects": {"a": "admin"}}, {"colour": "red"}, {"claim": ""}, {"default": "boss"},
     {"emails": ["a"]}],
)
def test_role_map_rejects_bad_files(data: dict[str, object]) -> None:
    with pytest.raises(AuthConfigError):
        RoleMap.from_dict(data)


def test_resolve_session_modes() -> None:
    local = resolve_session("local", local_role="auditor", serving=LOOPBACK)
    assert local.actor is not None and local.actor.role is Role.AUDITOR
    assert local.actor.source == "os"
    with pytest.raises(AuthConfigError, match="unknown role"):
        resolve_session("local", local_role="admin", serving=LOOPBACK)

    rm = RoleMap.from_dict({"subjects": {"sub-derm": "dermatologist"}})
    out = resolve_session("oidc", user={"is_logged_in": False}, roles=rm)
    assert out.actor is None and not out.signed_in
    ok = resolve_session(
        "oidc", user={"is_logged_in": True, "iss": ISS, "sub": "sub-derm", "name": "Dr Ada"}, roles=rm
    )
    assert ok.actor is not None
    assert (ok.actor.id, ok.actor.role, ok.actor.display_name, ok.actor.source) == (
        f"{ISS}#sub-derm", Role.DERMATOLOGIST, "Dr Ada", "oidc")
    stranger = resolve_session("oidc", user={"is_logged_in": True, "iss": ISS, "sub": "zz"}, roles=rm)
    assert stranger.actor is None and stranger.signed_in and "no workbench role" in stranger.problem
    nosub = resolve_session("oidc", user={"is_logged_in": True}, roles=rm)
    assert nosub.actor is None and "sub" in nosub.problem


def test_check_oidc_secrets(tmp_path: Path) -> None:
    with pytest.raises(AuthConfigError, match=r"there is no .*missing\.toml"):
        check_oidc_secrets(tmp_path / "missing.toml")
    p = tmp_path / "secrets.toml"
    p.write_text('[other]\nx = 1\n')
    with pytest.raises(AuthConfigError, match=r"no \[auth\] section"):
        check_oidc_secrets(p)
    p.write_text(f'[auth]\nredirect_uri = "http://h/oauth2callback"\ncookie_secret = "{STRONG}"\n')
    with pytest.raises(AuthConfigError, match="client_id"):
        check_oidc_secrets(p)
    p.write_text(SECRETS)
    auth = check_oidc_secrets(p)
    assert oidc_provider_name(auth) is None
    named = (
        f'[auth]\nredirect_uri = "http://h:1/oauth2callback"\ncookie_secret = "{STRONG}"\n'
        '[auth.corp]\nclient_id = "a"\nclient_secret = "b"\nserver_metadata_url = "http://m"\n'
    )
    p.write_text(named)
    assert oidc_provider_name(check_oidc_secrets(p)) == "corp"
    p.write_text("[auth\n")
    with pytest.raises(AuthConfigError, match="not valid TOML"):
        check_oidc_secrets(p)


def test_plan_local_on_loopback(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws")
    plan = plan_serve(ws, host="127.0.0.1", port=8765, role="engineer", base_env={})
    assert plan.mode == "local"
    assert plan.argv[:4] == [sys.executable, "-m", "streamlit", "run"]
    assert Path(plan.argv[4]) == app_path() and app_path().is_file()
    opts = dict(zip(plan.argv[5::2], plan.argv[6::2], strict=True))
    assert opts["--server.address"] == "127.0.0.1"
    assert opts["--server.port"] == "8765"
    assert opts["--server.headless"] == "true"
    assert opts["--browser.gatherUsageStats"] == "false"
    assert opts["--client.showErrorDetails"] == SERVER_OPTIONS["client.showErrorDetails"] == "none"
    assert "--secrets.files" not in opts
    assert plan.env[ENV_WORKSPACE] == str(ws.root)
    assert plan.env[ENV_ROLE] == "engineer"
    assert plan.env[ENV_AUTH] == "local"
    assert any("not a workspace" in w for w in plan.warnings)


def test_plan_refuses_non_loopback_without_auth(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    ws = Workspace(tmp_path / "ws")
    with pytest.raises(AuthConfigError, match="requires sign-in"):
        plan_serve(ws, host="0.0.0.0", port=8501)
    (tmp_path / ".streamlit").mkdir()
    (tmp_path / ".streamlit" / "secrets.toml").write_text('[server]\nx = 1\n')
    with pytest.raises(AuthConfigError, match=r"no \[auth\] section"):
        plan_serve(ws, host="0.0.0.0", port=8501)
    with pytest.raises(AuthConfigError, match="only allowed on a loopback"):
        plan_serve(ws, host="10.1.2.3", port=8501, auth="local")


def test_plan_oidc_needs_roles_and_passes_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".streamlit").mkdir()
    secrets = tmp_path / ".streamlit" / "secrets.toml"
    secrets.write_text(SECRETS)
    ws = Workspace(tmp_path / "ws")
    with pytest.raises(AuthConfigError, match="no roles"):
        plan_serve(ws, host="0.0.0.0", port=8501)
    (tmp_path / ".streamlit" / "roles.toml").write_text(ROLES)
    plan = plan_serve(ws, host="0.0.0.0", port=8502, base_env={})
    assert plan.mode == "oidc"
    opts = dict(zip(plan.argv[5::2], plan.argv[6::2], strict=True))
    assert opts["--secrets.files"] == str(secrets.resolve())
    assert plan.env[ENV_ROLES_FILE] == str((tmp_path / ".streamlit" / "roles.toml").resolve())
    assert plan.env[ENV_AUTH] == "oidc"
    assert any("redirect_uri" in w for w in plan.warnings)  # 8501 in secrets, serving 8502
    # forcing sign-in on loopback (what the end-to-end test does)
    forced = plan_serve(ws, host="127.0.0.1", port=8501, auth="oidc", base_env={})
    assert forced.mode == "oidc"


def test_plan_rejects_bad_arguments(tmp_path: Path) -> None:
    ws = Workspace(tmp_path)
    with pytest.raises(AuthConfigError, match="unknown role"):
        plan_serve(ws, role="admin")
    with pytest.raises(ServeError, match="out of range"):
        plan_serve(ws, port=70000)
    with pytest.raises(ServeError, match="sign-in mode"):
        plan_serve(ws, auth="saml")


def test_serve_refuses_taken_port(tmp_path: Path) -> None:
    import socket

    from workbench.cli._serve import serve_ui

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(ServeError, match="another program"):
            serve_ui(Workspace(tmp_path), host="127.0.0.1", port=port)


def test_workbench_serve_runs_streamlit_and_stops_with_it(tmp_path: Path) -> None:
    """`workbench serve` starts Streamlit with the plan's options; SIGTERM stops both."""
    import os
    import signal
    import subprocess
    import time
    import urllib.request

    port = free_port()
    exe = Path(sys.executable).with_name("workbench")
    proc = subprocess.Popen(
        [str(exe), "serve", "--workspace", str(tmp_path / "ws"), "--port", str(port), "--role", "auditor"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
                    assert r.status == 200
                    break
            except OSError:
                assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
                assert time.monotonic() < deadline, "streamlit did not start"
                time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        out = proc.stdout.read() if proc.stdout else ""
        assert "local mode" in out and "auditor" in out
        time.sleep(1)
        with pytest.raises(OSError):  # the Streamlit child is gone too
            urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
