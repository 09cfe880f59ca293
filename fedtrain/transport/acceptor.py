"""A listening TCP socket whose connections are each handled in a thread of their own.

At most ``limit`` connections are handled at once; a connection beyond that is closed at once, so
a flood of clients (or clients that connect and say nothing) holds only the slots, never the
listener or the process. Used by the link listener (mesh.py) and the rendezvous store (store.py).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable

from crypten_fl.fedtrain.transport.channels import describe

Handler = Callable[[socket.socket, str], None]


class Acceptor:
    """Listens on ``host:port`` (0: any free port) and runs ``handle(sock, address)`` per
    connection in its own daemon thread."""

    def __init__(self, host: str, port: int, handle: Handler, limit: int, name: str) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._sock = socket.socket(family, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self._sock.listen(128)
        self.port = int(self._sock.getsockname()[1])
        self._handle, self._name = handle, name
        self._slots = threading.BoundedSemaphore(limit)
        self.closed = False
        threading.Thread(target=self._accept_loop, name=name, daemon=True).start()

    def close(self) -> None:
        self.closed = True
        with contextlib.suppress(OSError):
            self._sock.close()

    def _accept_loop(self) -> None:
        while not self.closed:
            try:
                sock, address = self._sock.accept()
            except OSError:
                if self.closed:
                    return
                time.sleep(0.05)
                continue
            if not self._slots.acquire(blocking=False):
                sock.close()  # every slot taken: someone is flooding the port
                continue
            threading.Thread(target=self._run, args=(sock, describe(address)),
                             name=f"{self._name}-connection", daemon=True).start()

    def _run(self, sock: socket.socket, address: str) -> None:
        try:
            self._handle(sock, address)
        finally:
            self._slots.release()
