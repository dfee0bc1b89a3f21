"""A real ``redis-server`` on a loopback port that a test can kill and start again on the same
port (no persistence: a restarted server comes back empty)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from conftest import free_port


class RedisServer:
    def __init__(self, directory: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.directory = directory
        self.proc: subprocess.Popen | None = None

    def start(self) -> RedisServer:
        import redis

        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while True:
            try:
                redis.Redis.from_url(self.url).ping()
                return self
            except redis.ConnectionError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.proc.kill()
                    raise RuntimeError(f"redis-server did not start on port {self.port}") from None
                time.sleep(0.05)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: connections reset, nothing flushed."""
        if self.running:
            self.proc.kill()  # type: ignore[union-attr]
        if self.proc is not None:
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.running:
            self.proc.terminate()  # type: ignore[union-attr]
            self.proc.wait(timeout=30)  # type: ignore[union-attr]

    def client(self):  # noqa: ANN201
        import redis

        return redis.Redis.from_url(self.url)
