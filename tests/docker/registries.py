"""Real registries (Debian's docker-registry, distribution 2.8) for the publish tests.

Each runs with its own config, port and storage inside the tests' network namespace:

* plain HTTP, anonymous, with ``validation: manifests: urls: allow`` so manifests with foreign
  (Windows base) layers are accepted, as REFERENCE-style registries configured for Windows are;
* HTTPS (a certificate from a test CA, SAN IP:127.0.0.1) with htpasswd basic auth;
* plain HTTP with token auth, trusting the token service double (tests/doubles/token_server.py).

Also: Windows-shaped images put into a registry through its HTTP API, shaped like the seed's
(config with ``os: windows`` and an ``os.version``, a foreign base layer with ``urls``, a small
real layer), through the toolkit's own client.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import http.client
import io
import json
import os
import signal
import ssl
import subprocess
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.docker import engines as eng
from toolkit.mediatypes import FOREIGN_LAYER, MANIFEST_V2, OCI_MANIFEST
from toolkit.registry import RegistryClient

URLS_ALLOW = "validation:\n  manifests:\n    urls:\n      allow:\n        - ^https?://\n"
# The three releases of the seed page (python:3.8-rc-windowsservercore, October 2019).
SEED_OS_VERSIONS = {
    "ltsc2016": "10.0.14393.3274",
    "1803": "10.0.17134.1069",
    "1809": "10.0.17763.805",
}
# The seed's base layers (foreign, served by Microsoft's registry, never uploaded).
SEED_FOREIGN_LAYERS = {
    "ltsc2016": (
        "sha256:3889bb8d808bbae6fa5a33e07093e65c31371bcf9e4c38c21be6b9af52ad1548",
        4069985900,
    ),
    "1803": ("sha256:d9e8b01179bfc94a5bdb1810fbd76b999aa52016001ace2d3a4c4bc7065a9601", 1659688273),
    "1809": ("sha256:65014b3c312172f10bd6701a063f9b5aaf9a916c2d2cb843d406a6f77ded3f8d", 1534685324),
}


@dataclass
class RunningRegistry:
    address: str
    root: Path
    config: Path
    netns: eng.Netns
    tls: bool = False
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def log(self) -> Path:
        return self.root / "registry.log"

    def start(self, timeout: float = 20.0) -> None:
        log = self.log.open("ab")
        self.process = subprocess.Popen(
            ["nsenter", f"--net={self.netns.path}", "docker-registry", "serve", str(self.config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        host, port = self.address.split(":")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise eng.EngineStartError(
                    f"docker-registry exited:\n{self.log.read_text()[-2000:]}"
                )
            if self.tls:
                context = ssl.create_default_context()
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
                connection: http.client.HTTPConnection = http.client.HTTPSConnection(
                    host, int(port), timeout=2, context=context
                )
            else:
                connection = http.client.HTTPConnection(host, int(port), timeout=2)
            try:
                connection.request("GET", "/v2/")
                if connection.getresponse().status in (200, 401):
                    return
            except OSError:
                time.sleep(0.05)
            finally:
                connection.close()
        self.kill()
        raise eng.EngineStartError(
            f"docker-registry did not answer:\n{self.log.read_text()[-2000:]}"
        )

    def kill(self) -> None:
        """SIGKILL, as a crashed registry. Storage stays; :meth:`start` brings it back."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def make_registry(
    root: Path,
    netns: eng.Netns,
    port: int,
    *,
    auth: str = "",
    tls: tuple[Path, Path] | None = None,
) -> RunningRegistry:
    """Write the config and start a registry on 127.0.0.1:``port``."""
    root.mkdir(parents=True, exist_ok=True)
    address = f"127.0.0.1:{port}"
    http = f"http:\n  addr: {address}\n"
    if tls is not None:
        http += f"  tls:\n    certificate: {tls[0]}\n    key: {tls[1]}\n"
    config = root / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: warn\n  accesslog:\n    disabled: true\n"
        f"storage:\n  filesystem:\n    rootdirectory: {root / 'data'}\n  delete:\n    enabled: true\n"
        + http
        + auth
        + URLS_ALLOW,
        "utf-8",
    )
    registry = RunningRegistry(
        address=address, root=root, config=config, netns=netns, tls=tls is not None
    )
    registry.start()
    return registry


def htpasswd_auth(path: Path, users: dict[str, str]) -> str:
    import bcrypt

    path.write_text(
        "".join(
            f"{u}:{bcrypt.hashpw(p.encode(), bcrypt.gensalt(4)).decode()}\n"
            for u, p in users.items()
        ),
        "utf-8",
    )
    return f"auth:\n  htpasswd:\n    realm: toolkit-test\n    path: {path}\n"


def token_auth(realm: str, service: str, issuer: str, cert: Path) -> str:
    return (
        "auth:\n  token:\n"
        f"    realm: {realm}\n    service: {service}\n    issuer: {issuer}\n"
        f"    rootcertbundle: {cert}\n"
    )


# --- Windows-shaped images ------------------------------------------------------------------


def small_layer(text: str) -> tuple[bytes, str]:
    """A real gzipped tar layer with one file; (blob, diff id)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        data = text.encode()
        info = tarfile.TarInfo("Files/python/marker.txt")
        info.size = len(data)
        info.mtime = 1570600000
        tar.addfile(info, io.BytesIO(data))
    diff_id = "sha256:" + hashlib.sha256(raw.getvalue()).hexdigest()
    return gzip.compress(raw.getvalue(), mtime=0), diff_id


def put_windows_image(
    client: RegistryClient,
    repository: str,
    tag: str,
    release: str,
    *,
    os_version: str | None = None,
    oci: bool = False,
    marker: str = "",
) -> str:
    """A Windows-shaped image under ``tag``: foreign base layer + one small real layer.

    Returns the manifest digest. ``marker`` changes the small layer (a new image, same platform).
    """
    foreign_digest, foreign_size = SEED_FOREIGN_LAYERS[release]
    layer, diff_id = small_layer(f"{tag} {marker}")
    layer_digest = client.put_blob(repository, layer)
    config = {
        "architecture": "amd64",
        "os": "windows",
        "os.version": os_version or SEED_OS_VERSIONS[release],
        "created": "2019-10-09T17:29:26.0000000Z",
        "docker_version": "18.03.1-ee-4",
        "config": {"Cmd": ["python"], "Env": ["PYTHON_VERSION=3.8.0rc1"]},
        "rootfs": {"type": "layers", "diff_ids": [foreign_digest, diff_id]},
        "history": [
            {"created": "2016-11-22T23:24:34Z", "created_by": "Apply image 1607-RTM-amd64"},
            {"created": "2019-10-09T17:29:26Z", "created_by": f"powershell -Command {marker}"},
        ],
    }
    config_bytes = json.dumps(config).encode()
    config_digest = client.put_blob(repository, config_bytes)
    media_type = OCI_MANIFEST if oci else MANIFEST_V2
    manifest = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json"
            if oci
            else "application/vnd.docker.container.image.v1+json",
            "size": len(config_bytes),
            "digest": config_digest,
        },
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
                if oci
                else FOREIGN_LAYER,
                "size": foreign_size,
                "digest": foreign_digest,
                "urls": [f"https://mcr.microsoft.com/v2/windows/servercore/blobs/{foreign_digest}"],
            },
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip"
                if oci
                else "application/vnd.docker.image.rootfs.diff.tar.gzip",
                "size": len(layer),
                "digest": layer_digest,
            },
        ],
    }
    return client.put_manifest(repository, tag, json.dumps(manifest).encode(), media_type)
