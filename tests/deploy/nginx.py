"""Debian's nginx running the shipped deploy/nginx/nginx.conf on loopback ports, as the test's
own user, with a self-signed certificate made here.

The configuration is the shipped file with only what ties it to a host changed: the nodes'
and the listening ports, the certificate's and the cache's paths, the pid and log files. Each
change must match the shipped text, so a reshaped file fails here rather than being tested
half-changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import getpass
import ipaddress
import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support.services import free_port

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "deploy" / "nginx" / "nginx.conf"
# The nodes' ports in the shipped file (compose.yaml's LIVECORE_PORT of livecore-1 and -2).
SHIPPED_NODE_PORTS = (8081, 8082)


@dataclass(frozen=True)
class Nginx:
    https_port: int
    http_port: int
    ca_file: Path  # the self-signed certificate, which clients trust

    @property
    def base(self) -> str:
        return f"https://127.0.0.1:{self.https_port}"


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key (PEM files)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "livecore test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


def _replace(text: str, pattern: str, new: str, *, count: int, flags: int = 0) -> str:
    changed, n = re.subn(pattern, lambda _: new, text, flags=flags)
    assert n == count, f"deploy/nginx/nginx.conf: {pattern!r} matched {n} times, not {count}"
    return changed


def render(
    directory: Path, nodes: tuple[int, int], https_port: int, http_port: int,
    cert: Path, key: Path,
) -> str:  # fmt: skip
    """The shipped configuration for this machine's loopback and `directory`."""
    text = SHIPPED.read_text()
    # As root the workers would switch to the shipped user; running as ourselves, they stay.
    user = f"user {getpass.getuser()};" if os.geteuid() == 0 else ""
    text = _replace(text, r"^user [^;]+;", user, count=1, flags=re.M)
    text = _replace(text, r"^worker_processes auto;", "worker_processes 1;", count=1, flags=re.M)
    text = _replace(text, r"^pid [^;]+;", f"pid {directory}/nginx.pid;", count=1, flags=re.M)
    text = _replace(
        text, r"^error_log [^;]+;", f"error_log {directory}/error.log info;", count=1, flags=re.M
    )
    # Temporary files under the prefix: Debian's defaults are root's /var/lib/nginx.
    temp = "".join(
        f"    {kind}_temp_path {directory}/{kind}_temp;\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    text = _replace(
        text, r"^    access_log [^;]+;\n", f"    access_log {directory}/access.log;\n{temp}",
        count=1, flags=re.M,
    )  # fmt: skip
    for shipped, port in zip(SHIPPED_NODE_PORTS, nodes, strict=True):
        # Each node is in both upstreams: any node, and by stream.
        text = _replace(
            text, re.escape(f"server 127.0.0.1:{shipped} "), f"server 127.0.0.1:{port} ", count=2
        )
    # Loopback only: no IPv6 wildcard listeners.
    text = _replace(text, r"^ *listen \[::\]:\d+[^;]*;\n", "", count=2, flags=re.M)
    text = _replace(text, r"listen 80;", f"listen 127.0.0.1:{http_port};", count=1)
    text = _replace(
        text, r"listen 443 ssl http2;", f"listen 127.0.0.1:{https_port} ssl http2;", count=1
    )
    text = _replace(text, re.escape("/etc/nginx/tls/fullchain.pem"), str(cert), count=1)
    text = _replace(text, re.escape("/etc/nginx/tls/privkey.pem"), str(key), count=1)
    text = _replace(text, re.escape("/var/cache/nginx/livecore"), f"{directory}/cache", count=1)
    text = _replace(text, re.escape("/var/www/acme"), f"{directory}/acme", count=1)
    return text


def start(directory: Path, nodes: tuple[int, int]) -> tuple[Nginx, subprocess.Popen[bytes]]:
    """nginx in front of the nodes on `nodes` ports, listening once this returns."""
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(binary).exists():
        raise RuntimeError("nginx is not installed (bin/test installs it)")
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = self_signed(directory)
    https_port, http_port = free_port(), free_port()
    conf = directory / "nginx.conf"
    conf.write_text(render(directory, nodes, https_port, http_port, cert, key))
    args = [binary, "-p", str(directory), "-c", str(conf), "-e", str(directory / "error.log")]
    checked = subprocess.run([*args, "-t"], capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stderr
    proc = subprocess.Popen(
        [*args, "-g", "daemon off;"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 10
    while True:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", https_port)):
            break
        if proc.poll() is not None or time.monotonic() > deadline:
            stop(proc)
            raise RuntimeError(f"nginx did not start: {(directory / 'error.log').read_text()}")
        time.sleep(0.05)
    return Nginx(https_port, http_port, cert), proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop nginx by its PID (SIGTERM: nginx's fast shutdown, workers included)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc.stderr is not None:
        proc.stderr.close()


@contextlib.asynccontextmanager
async def running_nginx(directory: Path, nodes: tuple[int, int]) -> AsyncIterator[Nginx]:
    """nginx until the block ends; started and stopped off the event loop."""
    proxy, proc = await asyncio.to_thread(start, directory, nodes)
    try:
        yield proxy
    finally:
        await asyncio.to_thread(stop, proc)
