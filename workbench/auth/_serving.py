"""Where the app listens and where the browser connects from: the checks of local mode."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "ServingContext",
    "is_loopback",
    "listening_addresses",
    "local_mode_problem",
    "serving_context",
]


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine (127.0.0.0/8, ::1, localhost)."""
    h = host.strip().strip("[]").lower()
    if h in ("localhost", "localhost.localdomain"):
        return True
    try:
        ip = ipaddress.ip_address(h)
    except ValueError:
        return False
    mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None  # ::ffff:127.0.0.1
    return bool((mapped or ip).is_loopback)


# --------------------------------------------------------------------------- where the app listens
@dataclass(frozen=True)
class ServingContext:
    """Where the running app listens and where the current browser session comes from.

    Attributes
    ----------
    address
        Streamlit's ``server.address`` option (``""`` or ``None``: all interfaces).
    listening
        Addresses of this process's listening TCP sockets on the server port, read from the
        operating system (``None`` when they cannot be read; empty when no server listens,
        e.g. under ``AppTest``).
    client_ip
        The browser's address (``st.context.ip_address``; ``None`` for loopback or unknown).
    host_header
        The ``Host`` header of the browser's connection (``None`` when unknown).
    forwarded
        Whether the connection carries proxy headers (``Forwarded``, ``X-Forwarded-For``,
        ``X-Real-IP``): a proxy on this machine may relay visitors from anywhere.
    """

    address: str | None
    listening: tuple[str, ...] | None = None
    client_ip: str | None = None
    host_header: str | None = None
    forwarded: bool = False


def _host_of(host_header: str) -> str:
    """The host part of a ``Host`` header (``[::1]:8501`` -> ``::1``, ``localhost:1`` -> ``localhost``)."""
    h = host_header.strip()
    if h.startswith("["):
        return h[1 : h.find("]")] if "]" in h else h
    return h.rsplit(":", 1)[0] if h.count(":") == 1 else h


def local_mode_problem(ctx: ServingContext | None) -> str:
    """Why local single-user mode must not be used here (``""`` when it may).

    Local mode gives every visitor the server's OS identity, so it is allowed only when the
    server listens on loopback addresses only (configured *and* actually bound), the browser
    connects from this machine, under a loopback host name (no DNS rebinding), and not through
    a proxy.
    """
    fix = (
        " — serve on 127.0.0.1 (`workbench serve`, or `streamlit run workbench/app.py "
        "--server.address 127.0.0.1`), or configure OpenID Connect sign-in "
        "(`workbench serve --host ...` with secrets.toml and roles.toml)"
    )
    if ctx is None:
        return "local mode refused: cannot tell which address the server listens on" + fix
    if not ctx.address or not is_loopback(ctx.address):
        shown = repr(ctx.address) if ctx.address else "all interfaces (server.address is not set)"
        return f"local mode refused: the server listens on {shown}, not on loopback only" + fix
    bad = [a for a in (ctx.listening or ()) if not is_loopback(a)]
    if bad:
        return f"local mode refused: the server is bound to {bad[0]!r}, not to loopback only" + fix
    if ctx.client_ip and not is_loopback(ctx.client_ip):
        return f"local mode refused: this browser connects from {ctx.client_ip}, not from this machine" + fix
    if ctx.host_header and not is_loopback(_host_of(ctx.host_header)):
        return (
            f"local mode refused: the page was requested as {ctx.host_header!r}, not as "
            "localhost or 127.0.0.1" + fix
        )
    if ctx.forwarded:
        return "local mode refused: the connection came through a proxy" + fix
    return ""


def _decode_proc_address(hex_addr: str) -> str:
    """An address of ``/proc/net/tcp{,6}`` (little-endian 32-bit words) as text."""
    raw = bytes.fromhex(hex_addr)
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    return str(ipaddress.ip_address(words))


def listening_addresses(port: int, proc: Path = Path("/proc")) -> tuple[str, ...] | None:
    """Local addresses of this process's listening TCP sockets on ``port``.

    Read from ``/proc`` (Linux); ``None`` where that is not available.
    """
    try:
        inodes = set()
        for fd in (proc / "self" / "fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
        found: list[str] = []
        for table in ("tcp", "tcp6"):
            path = proc / "net" / table
            if not path.is_file():
                continue
            for line in path.read_text().splitlines()[1:]:
                f = line.split()
                if len(f) < 10 or f[3] != "0A" or f[9] not in inodes:  # 0A: LISTEN
                    continue
                addr, _, hex_port = f[1].partition(":")
                if int(hex_port, 16) == int(port):
                    found.append(_decode_proc_address(addr))
        return tuple(found)
    except (OSError, ValueError):
        return None


_FORWARD_HEADERS = ("forwarded", "x-forwarded-for", "x-forwarded-host", "x-real-ip")


def serving_context() -> ServingContext:
    """The :class:`ServingContext` of the running Streamlit app (imports Streamlit)."""
    import streamlit as st

    address = st.get_option("server.address")
    try:
        port = int(st.get_option("server.port"))
    except (TypeError, ValueError):
        port = 0
    client_ip: str | None = None
    host: str | None = None
    forwarded = False
    try:
        ip = st.context.ip_address
        client_ip = ip if isinstance(ip, str) else None
        headers = {k.lower(): v for k, v in st.context.headers.items()
                   if isinstance(k, str) and isinstance(v, str)}
        host = headers.get("host")
        forwarded = any(h in headers for h in _FORWARD_HEADERS)
    except Exception:  # no browser connection (AppTest, bare mode): nothing to add
        pass
    return ServingContext(
        address=str(address) if address else None,
        listening=listening_addresses(port) if port else None,
        client_ip=client_ip,
        host_header=host,
        forwarded=forwarded,
    )

