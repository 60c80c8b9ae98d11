"""Helpers for the MCP tests: the ``cairnloop`` command as a subprocess, a real
HTTP server on a free port, and the official MCP client pointed at either."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx2
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

CAIRNLOOP = str(Path(sys.executable).parent / "cairnloop")
DEADLINE_SECONDS = 60.0


def run_cli(
    database_url: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``cairnloop --database-url URL ARGS`` and capture its output."""
    return subprocess.run(
        [CAIRNLOOP, "--database-url", database_url, *args],
        capture_output=True,
        text=True,
        timeout=DEADLINE_SECONDS,
        env={**os.environ, **(env or {})},
        check=False,
    )


def issue_token(database_url: str, name: str, *args: str) -> str:
    """Issue a token through the CLI and return the secret it printed."""
    done = run_cli(database_url, "mcp", "token", "issue", name, *args)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[Any], log: Path) -> None:
    """Return once ``port`` accepts connections; fail if the server died."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(
                f"the MCP server exited with {process.returncode}: {log.read_text()}"
            )
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"the MCP server never listened on port {port}")


@contextmanager
def http_server(
    database_url: str, tmp_path: Path, env: dict[str, str] | None = None
) -> Iterator[str]:
    """Run ``cairnloop mcp serve --transport http`` and yield its URL."""
    port = free_port()
    log = tmp_path / f"mcp-http-{port}.log"
    with log.open("w") as stderr:
        process = subprocess.Popen(
            [
                CAIRNLOOP,
                "--database-url",
                database_url,
                "mcp",
                "serve",
                "--transport",
                "http",
                "--port",
                str(port),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env={**os.environ, **(env or {})},
        )
        try:
            wait_for_port(port, process, log)
            yield f"http://127.0.0.1:{port}/mcp"
        finally:
            process.terminate()
            process.wait(timeout=DEADLINE_SECONDS)


def stdio_server(
    database_url: str, *args: str, env: dict[str, str] | None = None
) -> StdioServerParameters:
    """How the MCP client starts ``cairnloop mcp serve`` over stdio."""
    return StdioServerParameters(
        command=CAIRNLOOP,
        args=["--database-url", database_url, "mcp", "serve", *args],
        env={**os.environ, **(env or {})},
    )


def bearer(token: str | None) -> httpx2.AsyncClient:
    """An HTTP client sending ``token`` as bearer token (none if ``None``)."""
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return httpx2.AsyncClient(headers=headers)


def http_client(url: str, http: httpx2.AsyncClient, *, mode: str = "auto") -> Client:
    """The official MCP client over streamable HTTP with ``http``'s headers."""
    return Client(streamable_http_client(url, http_client=http), mode=mode)


def the_mcp_error(error: BaseException) -> MCPError:
    """The one ``MCPError`` inside what the client raised (it may be grouped)."""
    if isinstance(error, MCPError):
        return error
    if isinstance(error, BaseExceptionGroup):
        found = [the_mcp_error(inner) for inner in error.exceptions]
        assert len(found) == 1, error
        return found[0]
    raise AssertionError(f"expected an MCPError, got {error!r}")


def texts(result: Any) -> list[str]:
    return [block.text for block in result.content]


def write_plugin(
    folder: Path, module: str, source: str, tools: Sequence[str]
) -> dict[str, str]:
    """An installed distribution made of a module and a real ``dist-info``.

    Returns the environment that puts it on a subprocess's path.
    """
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{module}.py").write_text(source)
    info = folder / f"{module}-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {module.replace('_', '-')}\nVersion: 0.1.0\n"
    )
    points = "\n".join(f"{name} = {module}" for name in tools)
    (info / "entry_points.txt").write_text(f"[cairnloop.tools]\n{points}\n")
    path = os.pathsep.join(p for p in (str(folder), os.environ.get("PYTHONPATH")) if p)
    return {"PYTHONPATH": path}
