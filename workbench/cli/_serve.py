"""``workbench serve``: run the Streamlit UI on a workspace.

:func:`plan_serve` decides everything (sign-in mode, the ``streamlit run`` command line, the
environment that tells the app which workspace and role to use) without side effects, so it
can be tested; :func:`serve_ui` checks the port and runs the plan in the foreground.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from concepts import WorkbenchError, Workspace, WorkspaceError
from store import atomic_path
from workbench.auth._config import (
    ENV_AUTH,
    ENV_ROLE,
    ENV_ROLES_FILE,
    ENV_SECRETS_FILE,
    ENV_WORKSPACE,
    AuthConfigError,
    AuthMode,
    parse_role,
)
from workbench.auth._rolemap import RoleMap, find_roles_file
from workbench.auth._secrets import check_oidc_secrets, find_secrets_file, generate_cookie_secret
from workbench.auth._serving import is_loopback

__all__ = [
    "SERVER_OPTIONS",
    "ServeError",
    "ServePlan",
    "app_path",
    "check_workspace_data",
    "ensure_cookie_secret",
    "plan_serve",
    "serve_ui",
]

#: Streamlit options every served instance gets (on top of address and port).
SERVER_OPTIONS: dict[str, str] = {
    "server.headless": "true",
    "browser.gatherUsageStats": "false",
    # "none": uncaught errors show a generic message, never a traceback. (The legacy value
    # ``false`` now means "stacktrace" and would still show tracebacks.)
    "client.showErrorDetails": "none",
    "client.toolbarMode": "viewer",
    "server.fileWatcherType": "none",
    "server.runOnSave": "false",
    "theme.base": "light",
    "theme.primaryColor": "#9c3d54",
    "theme.secondaryBackgroundColor": "#f6f1ee",
}


class ServeError(WorkbenchError):
    """The UI cannot be served (port taken, bad options)."""


@dataclass(frozen=True)
class ServePlan:
    """What :func:`serve_ui` will run."""

    argv: list[str]
    env: dict[str, str]
    mode: AuthMode
    url: str
    secrets_file: Path | None
    roles_file: Path | None
    warnings: tuple[str, ...] = ()


def app_path() -> Path:
    """The installed path of ``workbench/app.py`` (what ``streamlit run`` executes)."""
    return Path(str(resources.files("workbench").joinpath("app.py")))


def _auth_mode(host: str, auth: str | None) -> AuthMode:
    wanted = (auth or os.environ.get(ENV_AUTH) or "auto").strip().lower()
    if wanted not in ("auto", "local", "oidc"):
        raise ServeError(f"unknown sign-in mode {wanted!r}; use auto, local or oidc")
    if wanted == "local" and not is_loopback(host):
        raise AuthConfigError(
            f"local single-user mode is only allowed on a loopback address, not {host!r}: "
            "configure OpenID Connect sign-in or serve on 127.0.0.1"
        )
    if wanted == "auto":
        return "local" if is_loopback(host) else "oidc"
    return "oidc" if wanted == "oidc" else "local"


def plan_serve(
    workspace: Workspace,
    *,
    host: str = "127.0.0.1",
    port: int = 8501,
    role: str = "dermatologist",
    auth: str | None = None,
    secrets_file: str | Path | None = None,
    roles_file: str | Path | None = None,
    base_env: Mapping[str, str] | None = None,
) -> ServePlan:
    """Decide how to serve ``workspace``.

    Parameters
    ----------
    auth
        ``"auto"`` (default, also from ``$WORKBENCH_AUTH``): local mode on a loopback address,
        OpenID Connect elsewhere; ``"oidc"`` forces sign-in on any address (used by the
        end-to-end test); ``"local"`` is refused on a non-loopback address.

    Raises
    ------
    AuthConfigError
        Sign-in required but ``secrets.toml`` lacks an ``[auth]`` section, or no roles file.
    ServeError
        Bad port or sign-in mode.
    """
    if not 0 < int(port) < 65536:
        raise ServeError(f"port {port} is out of range (1-65535)")
    parse_role(role)  # fail early on a typo even in oidc mode
    mode = _auth_mode(host, auth)
    warnings: list[str] = []
    secrets: Path | None = None
    roles: Path | None = None
    if mode == "oidc":
        secrets, roles = _check_oidc(workspace, port, secrets_file, roles_file, warnings)
    if not workspace.exists():
        warnings.append(
            f"{workspace.root} is not a workspace yet; the UI will say how to build one "
            f"(`workbench import ... -w {workspace.root}` + `workbench train`, or "
            f"`workbench demo --no-serve --workspace {workspace.root}`)"
        )
    argv = [sys.executable, "-m", "streamlit", "run", str(app_path())]
    options = {"server.address": host, "server.port": str(int(port)), **SERVER_OPTIONS}
    for key, value in options.items():
        argv += [f"--{key}", value]
    if secrets is not None:
        argv += ["--secrets.files", str(secrets)]
    env = dict(os.environ if base_env is None else base_env)
    env.setdefault("WORKBENCH_TORCH_THREADS", "1")
    env.update(
        {
            ENV_WORKSPACE: str(workspace.root),
            ENV_ROLE: parse_role(role).value,
            ENV_AUTH: mode,
            ENV_ROLES_FILE: str(roles) if roles else "",
            ENV_SECRETS_FILE: str(secrets) if secrets else "",
        }
    )
    shown_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    return ServePlan(
        argv=argv,
        env=env,
        mode=mode,
        url=f"http://{shown_host}:{int(port)}",
        secrets_file=secrets,
        roles_file=roles,
        warnings=tuple(warnings),
    )

def _check_oidc(workspace: Workspace, port: int, secrets_file: str | Path | None,
                roles_file: str | Path | None, warnings: list[str]) -> tuple[Path | None, Path | None]:
    """The secrets and roles files of sign-in mode, checked; a misdirected redirect is a warning."""
    secrets = find_secrets_file(secrets_file)
    auth_section = check_oidc_secrets(secrets)
    roles = find_roles_file(workspace.root, secrets, roles_file)
    rolemap = RoleMap.load(roles)
    rolemap.check_providers(auth_section)
    if rolemap.empty:
        raise AuthConfigError(
            "sign-in is configured but no roles are: nobody could use the workbench. "
            f"Create {workspace.root / 'roles.toml'} (or set {ENV_ROLES_FILE}) mapping "
            'subjects or e-mails to roles, e.g.\n[emails]\n"ada@clinic.example" = "dermatologist"'
        )
    redirect = urlparse(str(auth_section.get("redirect_uri", "")))
    if redirect.port not in (None, int(port)) or not redirect.path.endswith("oauth2callback"):
        warnings.append(
            f"[auth] redirect_uri {auth_section.get('redirect_uri')!r} does not point at "
            f"port {port} /oauth2callback — sign-in will fail to return to the app"
        )
    return secrets, roles


_AUTH_HEADER = re.compile(r"^\s*\[\s*auth\s*\]\s*(#.*)?$")


def ensure_cookie_secret(path: Path | None) -> bool:
    """Add a generated ``cookie_secret`` to the ``[auth]`` section of ``path`` when it has none.

    Never replaces an existing secret (a weak one is refused later by
    :func:`workbench.auth._auth.check_cookie_secret`, with a generated one to paste). Returns whether
    the file was changed; the file keeps its permissions and is replaced atomically.
    """
    if path is None or not path.is_file():
        return False
    text = path.read_text(encoding="utf-8")
    try:
        auth = tomllib.loads(text).get("auth")
    except tomllib.TOMLDecodeError:
        return False  # check_oidc_secrets reports the syntax error
    if not isinstance(auth, dict) or "cookie_secret" in auth:
        return False
    lines = text.splitlines(keepends=True)
    at = next((i for i, line in enumerate(lines) if _AUTH_HEADER.match(line)), None)
    if at is None:  # [auth] only as dotted keys or sub-tables: leave the file to the admin
        return False
    lines.insert(at + 1, f'cookie_secret = "{generate_cookie_secret()}"  # generated by workbench serve\n')
    if not lines[at].endswith("\n"):
        lines[at] += "\n"
    with atomic_path(path, mode=path.stat().st_mode & 0o777) as tmp:
        tmp.write_text("".join(lines), encoding="utf-8")
    return True


def check_workspace_data(workspace: Workspace) -> None:
    """Verify the content hash of the workspace's data sets before serving them.

    Raises
    ------
    DataError
        A corrupt data-set file or a content-hash mismatch (a missing data set is left to
        the UI, which says how to build one).
    """
    if not workspace.exists():
        return
    try:
        datasets = [workspace.dataset(), workspace.concept_sets()]
    except WorkspaceError:
        return
    for ds in datasets:
        if ds is not None:
            ds.verify()


def _check_port_free(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host.strip("[]"), int(port)))
        except OSError as exc:
            raise ServeError(
                f"cannot serve on {host}:{port} ({exc.strerror or exc}); another program "
                "(perhaps another workbench) uses it — pick another --port"
            ) from None


def serve_ui(
    workspace: Workspace,
    *,
    host: str = "127.0.0.1",
    port: int = 8501,
    role: str = "dermatologist",
    auth: str | None = None,
) -> int:
    """Serve the UI for ``workspace`` in the foreground until interrupted; returns the exit code.

    Local single-user mode on a loopback address (identity: the OS user, ``role``); anywhere
    else sign-in with OpenID Connect is required and a missing ``[auth]`` configuration is
    refused before anything starts.
    """
    from workbench.cli._console import err_console

    if _auth_mode(host, auth) == "oidc":
        secrets = find_secrets_file()
        if ensure_cookie_secret(secrets):
            err_console.print(f"Generated a cookie_secret in {secrets}.", highlight=False)
    plan = plan_serve(workspace, host=host, port=port, role=role, auth=auth)
    _check_port_free(host, port)
    check_workspace_data(workspace)
    for w in plan.warnings:
        err_console.print(f"[yellow]warning:[/] {w}", highlight=False)
    who = (
        f"local mode, you are the OS user as {plan.env[ENV_ROLE]}"
        if plan.mode == "local"
        else f"sign-in with OpenID Connect ({plan.secrets_file}), roles from {plan.roles_file}"
    )
    err_console.print(f"Concept Workbench on [bold]{plan.url}[/] — {who}. Ctrl+C stops it.", highlight=False)
    proc = subprocess.Popen(plan.argv, env=plan.env)

    def forward(signum: int, _frame: object) -> None:  # `kill <workbench pid>` stops streamlit too
        proc.send_signal(signum)

    previous: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGHUP):
            previous[sig] = signal.signal(sig, forward)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        raise
    finally:
        for prev_sig, handler in previous.items():
            signal.signal(prev_sig, handler)
