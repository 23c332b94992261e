"""A real S3-compatible server for tests: ``moto_server`` (PyPI ``moto[server]``) on 127.0.0.1.

Not a mock of the client: s3fs/botocore talk HTTP to a separate server process, exactly as they would to
MinIO or AWS. Used by the ``s3`` fixture in the tests that need object storage (marked ``@pytest.mark.s3``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "xrdbatch-test",
    "AWS_SECRET_ACCESS_KEY": "xrdbatch-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _command(port: int) -> list[str]:
    exe = shutil.which("moto_server")
    if exe:
        return [exe, "-H", "127.0.0.1", "-p", str(port)]
    return [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]


@contextlib.contextmanager
def moto_server(timeout_s: float = 30.0):
    """Start ``moto_server`` on a free loopback port; yield its endpoint URL; stop it on exit.

    Raises
    ------
    RuntimeError
        When moto's server is not installed (``pip install 'moto[server]'``) or does not answer in time.
    """
    try:
        import moto.server  # noqa: F401
    except ImportError as exc:  # pragma: no cover
        raise RuntimeError("moto_server needs 'moto[server]': pip install -e '.[test]'") from exc
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    env = dict(os.environ, **CREDENTIALS)
    proc = subprocess.Popen(_command(port), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"moto_server exited with {proc.returncode}: "
                                   f"{proc.stderr.read().decode(errors='replace')[-2000:]}")
            try:
                urllib.request.urlopen(endpoint + "/moto-api/", timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"moto_server did not answer on {endpoint} within {timeout_s} s") from None
                time.sleep(0.1)
        yield endpoint
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


def make_bucket(endpoint: str, bucket: str) -> None:
    """Create a bucket through s3fs (the same client the code under test uses)."""
    import s3fs

    fs = s3fs.S3FileSystem(key=CREDENTIALS["AWS_ACCESS_KEY_ID"], secret=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
                           client_kwargs={"endpoint_url": endpoint}, skip_instance_cache=True)
    fs.mkdir(bucket)
