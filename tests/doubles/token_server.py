"""TEST DOUBLE: a registry token service (the Docker token authentication spec) on loopback.

Real registries delegate Bearer authentication to a separate service (Docker Hub's
auth.docker.io, Harbor's core, GitLab's ...); none of them can run here, so this double plays one.
Debian's real ``docker-registry`` is configured to trust it (``auth: token:`` with ``realm`` at
this server, ``issuer``, ``service`` and ``rootcertbundle`` = :attr:`cert_path`), so the registry
side of the flow is the real one.

``GET /token?service=...&scope=repository:NAME:pull,push`` with Basic credentials (or none, for
anonymous pull) answers ``{"token": <JWT>, "access_token": <JWT>}``: an ES256 JWT whose header
carries the signing certificate in ``x5c`` (distribution 2.8 verifies the chain against its
rootcertbundle) and whose ``access`` claim grants what the user may do: known users get the
actions they asked for, anonymous callers ``pull`` only. Wrong credentials get a 401.
"""

from __future__ import annotations

import base64
import datetime
import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from tests.doubles.loopback import LoopbackServer

ISSUER = "toolkit-test-token-double"
SERVICE = "toolkit-test-registry"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class TokenServerDouble:
    def __init__(self, directory: Path, users: dict[str, str]) -> None:
        self.users = dict(users)
        self.requests: list[dict[str, str]] = []
        self._lock = threading.Lock()
        self._key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ISSUER)])
        now = datetime.datetime.now(datetime.UTC)
        self._cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .sign(self._key, hashes.SHA256())
        )
        directory.mkdir(parents=True, exist_ok=True)
        self.cert_path = directory / "token-signer.pem"
        self.cert_path.write_bytes(self._cert.public_bytes(serialization.Encoding.PEM))
        self._server = LoopbackServer(self._handler())

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self._server.port}/token"

    def start(self) -> None:
        self._server.start()

    def stop(self) -> None:
        self._server.stop()

    def issue(self, subject: str, access: list[dict[str, object]], audience: str) -> str:
        now = int(time.time())
        header = {
            "alg": "ES256",
            "typ": "JWT",
            "x5c": [base64.b64encode(self._cert.public_bytes(serialization.Encoding.DER)).decode()],
        }
        claims = {
            "iss": ISSUER,
            "sub": subject,
            "aud": audience,
            "exp": now + 300,
            "nbf": now - 10,
            "iat": now,
            "jti": secrets.token_hex(8),
            "access": access,
        }
        signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
        der = self._key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        return f"{signing_input}.{_b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        double = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = parse_qs(parts.query)
                user = double._user(self.headers.get("Authorization"))
                with double._lock:
                    double.requests.append(
                        {
                            "path": parts.path,
                            "user": str(user),
                            "scope": " ".join(query.get("scope", [])),
                        }
                    )
                if parts.path != "/token" or user is False:
                    self._answer(401, {"errors": [{"code": "UNAUTHORIZED"}]})
                    return
                access: list[dict[str, object]] = []
                for scope in query.get("scope", []):
                    kind, _, rest = scope.partition(":")
                    name, _, actions = rest.rpartition(":")
                    wanted = [a for a in actions.split(",") if a]
                    granted = wanted if user else [a for a in wanted if a == "pull"]
                    access.append({"type": kind, "name": name, "actions": granted})
                service = (query.get("service") or [SERVICE])[0]
                token = double.issue(
                    user if isinstance(user, str) else "anonymous", access, service
                )
                self._answer(200, {"token": token, "access_token": token, "expires_in": 300})

            def _answer(self, status: int, document: object) -> None:
                body = json.dumps(document).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler

    def _user(self, header: str | None) -> str | bool | None:
        """The user name, None for anonymous, False for wrong credentials."""
        if not header:
            return None
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(value).decode().partition(":")
        except ValueError:
            return False
        return user if self.users.get(user) == password and password else False
