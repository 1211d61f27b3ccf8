"""moto's DynamoDB in a separate process that serves one request at a time.

moto's own server is threaded, and moto is not safe under concurrency: parallel conditional writes
lose updates and concurrent transactions fail with 500s (docs in /work/shared/tooling.md). Serving
its WSGI app with ``threaded=False`` serializes requests, like one DynamoDB partition, so
concurrency tests exercise the adapter's conditions rather than moto's races.

Run as a script, it binds a free loopback port, prints ``MOTO_READY <port>`` and serves until its
stdin closes (so it never outlives the test session that started it) or it receives SIGTERM.
"""

from __future__ import annotations

import logging
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType

READY_PREFIX = "MOTO_READY "
FAKE_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",  # moto's fake credentials
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "ap-northeast-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}
# Variables that could point boto3 at real credentials or a real account.
UNSET_AWS_ENV = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE")


class MotoServer:
    """A single-threaded moto server process on 127.0.0.1 (``with MotoServer() as endpoint: ...``)."""

    def __init__(self, startup_timeout: float = 60.0) -> None:
        """Prepare; nothing starts before :meth:`start`."""
        self._startup_timeout = startup_timeout
        self._process: subprocess.Popen[str] | None = None
        self._log: Path | None = None
        self.endpoint = ""

    def start(self) -> str:
        """Start the process, wait until it listens, and return its endpoint URL."""
        env = {**os.environ, **FAKE_AWS_ENV}
        for name in UNSET_AWS_ENV:
            env.pop(name, None)
        handle, log_name = tempfile.mkstemp(prefix="moto-server-", suffix=".log")
        self._log = Path(log_name)
        with os.fdopen(handle, "w") as log:
            self._process = subprocess.Popen(  # the child's stderr goes to a file nobody must drain
                [sys.executable, str(Path(__file__).resolve())],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                env=env,
                text=True,
            )
        port = self._wait_ready()
        self.endpoint = f"http://127.0.0.1:{port}"
        return self.endpoint

    def _wait_ready(self) -> int:
        process = self._process
        assert process is not None and process.stdout is not None
        deadline = time.monotonic() + self._startup_timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([process.stdout], [], [], 0.2)
            if ready:
                line = process.stdout.readline()
                if line.startswith(READY_PREFIX):
                    return int(line[len(READY_PREFIX) :])
                if line == "":  # end of file: the child died
                    break
            if process.poll() is not None:
                break
        self.stop()
        raise RuntimeError(f"moto server did not start; its log:\n{self.log_tail()}")

    def log_tail(self, limit: int = 4000) -> str:
        """The end of the server's stderr (for failure messages)."""
        if self._log is None or not self._log.exists():
            return ""
        return self._log.read_text(errors="replace")[-limit:]

    def stop(self) -> None:
        """Stop the process this object started (closing its stdin, then SIGTERM, then SIGKILL)."""
        process, self._process = self._process, None
        if process is not None:
            if process.stdin is not None:
                process.stdin.close()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.terminate()
                try:
                    process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            if process.stdout is not None:
                process.stdout.close()
        if self._log is not None:
            self._log.unlink(missing_ok=True)
            self._log = None

    def __enter__(self) -> str:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def serve(host: str = "127.0.0.1") -> None:
    """Serve moto's WSGI app single-threaded on a free port of ``host`` (the child process's body)."""
    # Imported here, in the child only: moto and Flask take a second to import, and the test
    # session that imports this module for MotoServer never needs them.
    from moto.moto_server.werkzeug_app import (  # noqa: PLC0415
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server  # noqa: PLC0415

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no access log per request
    app = DomainDispatcherApplication(create_backend_app)
    # threaded=False is the point of this module; the single-threaded server also speaks HTTP/1.0,
    # so no client can hold the only worker with a kept-alive connection.
    server = make_server(host, 0, app, threaded=False, request_handler=MotoRequestHandler)

    def stop_when_parent_leaves() -> None:
        sys.stdin.read()  # returns at end of file: the parent closed it, or died
        leave()

    def leave(*_: object) -> None:
        # os._exit skips the interpreter's teardown, a garbage collection of moto's whole heap
        # that takes seconds after a few hundred transactions; there is nothing to flush but stderr.
        sys.stderr.flush()
        os._exit(0)

    signal.signal(signal.SIGTERM, leave)
    threading.Thread(target=stop_when_parent_leaves, daemon=True).start()
    sys.stdout.write(f"{READY_PREFIX}{server.server_port}\n")
    sys.stdout.flush()
    os.dup2(2, 1)  # later prints (moto has a few) go to the log, not to a pipe nobody reads
    server.serve_forever()


if __name__ == "__main__":
    serve()
