"""Serve the sandbox with uvicorn: in a background thread (tests) or in the foreground (the CLI)."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import uvicorn

from airflow_provider_consentio.sandbox.app import Sandbox, create_app
from airflow_provider_consentio.sandbox.config import SandboxConfig


def bind(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A listening socket; port 0 picks a free one. Binding first means the port is known before serving."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    return sock


def uvicorn_server(sandbox: Sandbox) -> uvicorn.Server:
    config = uvicorn.Config(
        create_app(sandbox), log_level="warning", access_log=False, lifespan="off", timeout_keep_alive=30
    )
    return uvicorn.Server(config)


class SandboxServer:
    """The sandbox on 127.0.0.1 and a free port, in a background thread; a context manager.

    ``sandbox`` gives direct access to the state (ground truth for tests), ``base_url`` to point a client at.
    """

    def __init__(self, config: SandboxConfig | None = None, host: str = "127.0.0.1", port: int = 0):
        self.sandbox = Sandbox(config or SandboxConfig())
        self._socket = bind(host, port)
        self.host, self.port = self._socket.getsockname()[:2]
        self.base_url = f"http://{self.host}:{self.port}"
        self._server = uvicorn_server(self.sandbox)
        self._thread: threading.Thread | None = None

    @property
    def state(self) -> Any:
        return self.sandbox.state

    @property
    def workspace_id(self) -> int:
        return self.sandbox.config.workspace_id

    @property
    def api_key(self) -> str:
        return self.sandbox.config.api_key

    @property
    def other_workspace_id(self) -> int:
        return self.sandbox.config.other_workspace_id

    @property
    def other_api_key(self) -> str:
        return self.sandbox.config.other_api_key

    def start(self) -> SandboxServer:
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, name="consentio-sandbox", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the sandbox server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._socket.close()

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
