"""Test double of a Windows host's WinRM endpoint (no Windows host can run here).

An HTTP(S) server on 127.0.0.1 speaking the WS-Management SOAP that pywinrm exchanges with a real
host on ``/wsman``: Create (the reply carries the ``ShellId`` selector), Command (``CommandId``),
Receive (base64 ``Stream`` elements, ``CommandState .../Running`` then ``.../Done`` with
``ExitCode``; optionally first the 500 fault ``WSManFault Code="2150858793"``, the operation
timeout), Signal and Delete; every reply's ``RelatesTo`` is the request's ``MessageID``. It
decodes ``powershell ... -EncodedCommand`` and answers as PowerShell on the configured
:class:`~tests.doubles.windows_server.WindowsServer` would (see that module).

Authentication: Basic (user and password); ``auth="ntlm"``, NTLM through ``WWW-Authenticate:
Negotiate`` on one kept-alive connection (pyspnego as the acceptor, the user in a file named by
``NTLM_USER_FILE`` while the double runs), after which every message must come sealed in
``multipart/encrypted`` as MS-WSMV 2.2.9.1.1 describes, as a host with ``AllowUnencrypted =
false`` demands; or with ``tls`` and ``auth="certificate"`` the client certificate (verified
against ``client_ca``) with the WS-Management mutual-auth header. ``raw_requests`` keeps every
request body as it crossed the wire.
Faults: ``timeouts_before_output`` operation timeouts, ``never_finish`` (only timeouts),
``stall`` (a Receive that is never answered), ``reply_delay`` (the first Receive answered that
many seconds late), ``trickle_headers`` (every answer's status line, then one header byte every
0.2 s, each within any read timeout, never finishing); a wrong password gets 401.
"""

from __future__ import annotations

import base64
import os
import ssl
import struct
import tempfile
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

from tests.doubles.loopback import LoopbackServer
from tests.doubles.windows_server import WindowsServer, run_script, server_2019

NS = {
    "s": "http://www.w3.org/2003/05/soap-envelope",
    "a": "http://schemas.xmlsoap.org/ws/2004/08/addressing",
    "w": "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd",
    "rsp": "http://schemas.microsoft.com/wbem/wsman/1/windows/shell",
    "x": "http://schemas.xmlsoap.org/ws/2004/09/transfer",
    "f": "http://schemas.microsoft.com/wbem/wsman/1/wsmanfault",
}
SHELL = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell"
TRANSFER = "http://schemas.xmlsoap.org/ws/2004/09/transfer"
ANONYMOUS = "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous"
MUTUAL = "http://schemas.dmtf.org/wbem/wsman/1/wsman/secprofile/https/mutual"
BOUNDARY = b"--Encrypted Boundary"
SPNEGO_ENCRYPTED = "application/HTTP-SPNEGO-session-encrypted"

_ENVELOPE = (
    '<s:Envelope xml:lang="en-US" xmlns:s="{s}" xmlns:a="{a}" xmlns:x="{x}" xmlns:w="{w}" '
    'xmlns:rsp="{rsp}" xmlns:p="http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd">'
    "<s:Header><a:Action>{{action}}</a:Action><a:MessageID>uuid:{{message_id}}</a:MessageID>"
    "<a:To>{anonymous}</a:To><a:RelatesTo>{{relates_to}}</a:RelatesTo></s:Header>"
    "<s:Body>{{body}}</s:Body></s:Envelope>"
).format(anonymous=ANONYMOUS, **NS)

_TIMEOUT_TEXT = (
    "The WS-Management service cannot complete the operation within the time specified in "
    "OperationTimeout.  "
)
_FAULT = (
    "<s:Fault><s:Code><s:Value>s:Receiver</s:Value><s:Subcode><s:Value>w:TimedOut</s:Value>"
    '</s:Subcode></s:Code><s:Reason><s:Text xml:lang="en-US">{text}</s:Text></s:Reason>'
    '<s:Detail><f:WSManFault xmlns:f="{f}" Code="2150858793" Machine="WIN-BUILD">'
    "<f:Message>{text}</f:Message></f:WSManFault></s:Detail></s:Fault>"
).format(text=_TIMEOUT_TEXT, f=NS["f"])


@dataclass(frozen=True)
class TLSFiles:
    cert: Path
    key: Path


@dataclass
class WinRMHostDouble:
    """Configure, then use as a context manager; ``url`` is ``http(s)://127.0.0.1:PORT/wsman``."""

    host: WindowsServer = field(default_factory=server_2019)
    username: str = "builder"
    password: str = "test-double-password"
    auth: str = "basic"
    tls: TLSFiles | None = None
    client_ca: Path | None = None
    timeouts_before_output: int = 0
    never_finish: bool = False
    stall: bool = False
    reply_delay: float = 0.0
    trickle_headers: bool = False
    actions: list[str] = field(default_factory=list)
    scripts: list[str] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    shell_options: list[dict[str, str]] = field(default_factory=list)
    open_shells: set[str] = field(default_factory=set)
    raw_requests: list[bytes] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._commands: dict[str, tuple[bytes, bytes, int]] = {}
        self._receives: dict[str, int] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        double = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # NTLM authenticates a connection, not a request
            # Buffered: headers and body leave in one write at the end of each request. Two small
            # writes on a kept-alive connection meet Nagle's algorithm and delayed ACKs (40 ms a
            # request on loopback).
            wbufsize = 1 << 16
            ntlm: Any = None

            def setup(self) -> None:
                if isinstance(self.request, ssl.SSLSocket):
                    self.request.settimeout(10)
                    self.request.do_handshake()
                super().setup()

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                if double.trickle_headers:
                    self._trickle()
                    return
                with double._lock:
                    double.raw_requests.append(body)
                header = self.headers.get("Authorization")
                if double.auth == "ntlm":
                    self._ntlm(header, body)
                    return
                if not double._authorized(header):
                    self._reply(401, b"")
                    return
                status, reply = double._answer(body)
                self._reply(status, reply.encode("utf-8"))

            def _ntlm(self, header: str | None, body: bytes) -> None:
                import spnego

                if header is not None and header.startswith("Negotiate "):
                    token = base64.b64decode(header.split(" ", 1)[1])
                    if token.startswith(b"NTLMSSP\0\x01"):  # a new negotiation
                        self.ntlm = spnego.server(protocol="ntlm")
                    try:
                        answer = self.ntlm.step(token) if self.ntlm is not None else None
                    except spnego.exceptions.SpnegoError:
                        self.ntlm = None
                        self._reply(401, b"", {"WWW-Authenticate": "Negotiate"})
                        return
                    if not self.ntlm.complete:
                        challenge = base64.b64encode(answer or b"").decode()
                        self._reply(401, b"", {"WWW-Authenticate": f"Negotiate {challenge}"})
                        return
                if self.ntlm is None or not self.ntlm.complete:
                    self._reply(401, b"", {"WWW-Authenticate": "Negotiate"})
                    return
                if not body:  # pywinrm's empty request that sets up the security context
                    self._reply(200, b"")
                    return
                content_type = self.headers.get("Content-Type", "")
                if not content_type.startswith("multipart/encrypted") or (
                    SPNEGO_ENCRYPTED not in content_type
                ):
                    self._reply(400, b"Unencrypted traffic is currently disabled")
                    return
                status, reply = double._answer(_unseal(self.ntlm, body))
                sealed = _seal(self.ntlm, reply.encode("utf-8"))
                content = (
                    f'multipart/encrypted;protocol="{SPNEGO_ENCRYPTED}";'
                    'boundary="Encrypted Boundary"'
                )
                self._reply(status, sealed, {"Content-Type": content})

            def _reply(
                self, status: int, raw: bytes, headers: dict[str, str] | None = None
            ) -> None:
                headers = headers or {}
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                if "Content-Type" not in headers:
                    self.send_header("Content-Type", "application/soap+xml;charset=UTF-8")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def _trickle(self) -> None:
                self.wfile.write(b"HTTP/1.1 200 OK\r\n")
                self.wfile.flush()
                header = b"X-Trickle: " + b"x" * 10_000
                for byte in header:
                    if double._stopping.wait(0.2):
                        break
                    try:
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                    except OSError:  # the client gave up: what the test wants
                        break
                self.close_connection = True

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = LoopbackServer(Handler)
        if self.tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(str(self.tls.cert), str(self.tls.key))
            if self.client_ca is not None:
                context.verify_mode = ssl.CERT_REQUIRED
                context.load_verify_locations(str(self.client_ca))
            self._server.use_tls(context)

    @property
    def url(self) -> str:
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://127.0.0.1:{self._server.port}/wsman"

    def __enter__(self) -> WinRMHostDouble:
        self._saved_user_file = os.environ.get("NTLM_USER_FILE")
        self._user_file = None
        if self.auth == "ntlm":
            handle, name = tempfile.mkstemp(prefix="winrm-double-", suffix=".ntlm")
            with os.fdopen(handle, "w", encoding="utf-8") as users:
                users.write(f":{self.username}:{self.password}\n")
            self._user_file = name
            os.environ["NTLM_USER_FILE"] = name  # pyspnego's acceptor reads its users here
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()
        self._server.stop()
        if self._user_file is not None:
            os.unlink(self._user_file)
            if self._saved_user_file is None:
                os.environ.pop("NTLM_USER_FILE", None)
            else:
                os.environ["NTLM_USER_FILE"] = self._saved_user_file

    # --- the protocol ----------------------------------------------------------------------

    def _authorized(self, header: str | None) -> bool:
        if self.auth == "certificate":
            return header == MUTUAL  # the TLS layer has already verified the certificate
        expected = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        return header == f"Basic {expected}"

    def _answer(self, body: bytes) -> tuple[int, str]:
        root = ElementTree.fromstring(body)
        action = _text(root, "s:Header/a:Action")
        message_id = _text(root, "s:Header/a:MessageID")
        selector = root.find("s:Header/w:SelectorSet/w:Selector[@Name='ShellId']", NS)
        shell_id = selector.text if selector is not None else None
        with self._lock:
            self.actions.append(action.rsplit("/", 1)[-1])

        def reply(reply_action: str, payload: str) -> tuple[int, str]:
            return 200, _ENVELOPE.format(
                action=reply_action,
                message_id=str(uuid.uuid4()).upper(),
                relates_to=message_id,
                body=payload,
            )

        if action == f"{TRANSFER}/Create":
            options = {
                str(o.get("Name")): o.text or ""
                for o in root.findall("s:Header/w:OptionSet/w:Option", NS)
            }
            new_id = str(uuid.uuid4()).upper()
            with self._lock:
                self.shell_options.append(options)
                self.open_shells.add(new_id)
            return reply(
                f"{TRANSFER}/CreateResponse",
                f"<x:ResourceCreated><a:Address>{self.url}</a:Address><a:ReferenceParameters>"
                f"<w:ResourceURI>{SHELL}/cmd</w:ResourceURI><w:SelectorSet>"
                f'<w:Selector Name="ShellId">{new_id}</w:Selector></w:SelectorSet>'
                "</a:ReferenceParameters></x:ResourceCreated>"
                f"<rsp:Shell><rsp:ShellId>{new_id}</rsp:ShellId><rsp:ResourceUri>{SHELL}/cmd"
                f"</rsp:ResourceUri><rsp:Owner>{self.username}</rsp:Owner><rsp:ClientIP>127.0.0.1"
                "</rsp:ClientIP><rsp:IdleTimeOut>PT7200.000S</rsp:IdleTimeOut>"
                "<rsp:InputStreams>stdin</rsp:InputStreams>"
                "<rsp:OutputStreams>stdout stderr</rsp:OutputStreams>"
                "<rsp:ShellRunTime>P0DT0H0M0S</rsp:ShellRunTime>"
                "<rsp:ShellInactivity>P0DT0H0M0S</rsp:ShellInactivity></rsp:Shell>",
            )
        if shell_id not in self.open_shells:
            return 500, "unknown shell"
        if action == f"{SHELL}/Command":
            command = _text(root, "s:Body/rsp:CommandLine/rsp:Command")
            command_id = str(uuid.uuid4()).upper()
            outcome = self._execute(command)
            with self._lock:
                self._commands[command_id] = outcome
                self._receives[command_id] = 0
            return reply(
                f"{SHELL}/CommandResponse",
                f"<rsp:CommandResponse><rsp:CommandId>{command_id}</rsp:CommandId>"
                "</rsp:CommandResponse>",
            )
        if action == f"{SHELL}/Receive":
            return self._receive(root, reply)
        if action == f"{SHELL}/Signal":
            return reply(f"{SHELL}/SignalResponse", "<rsp:SignalResponse/>")
        if action == f"{TRANSFER}/Delete":
            with self._lock:
                self.open_shells.discard(shell_id or "")
            return reply(f"{TRANSFER}/DeleteResponse", "")
        return 500, f"unexpected action {action}"

    def _receive(self, root: ElementTree.Element, reply: Any) -> tuple[int, str]:
        stream = root.find("s:Body/rsp:Receive/rsp:DesiredStream", NS)
        command_id = stream.get("CommandId", "") if stream is not None else ""
        with self._lock:
            count = self._receives[command_id] = self._receives[command_id] + 1
        if self.stall:
            self._stopping.wait()  # never answered while the double runs
            return 500, "stopped"
        if self.never_finish or count <= self.timeouts_before_output:
            _status, text = reply("http://schemas.dmtf.org/wbem/wsman/1/wsman/fault", _FAULT)
            return 500, text
        first = count == self.timeouts_before_output + 1
        if first and self.reply_delay:
            self._stopping.wait(self.reply_delay)
        stdout, stderr, code = self._commands[command_id]
        half = len(stdout) // 2
        chunk = stdout[:half] if first else stdout[half:]
        streams = f'<rsp:Stream Name="stdout" CommandId="{command_id}">' + (
            base64.b64encode(chunk).decode() + "</rsp:Stream>"
        )
        if first:
            state = (
                f'<rsp:CommandState CommandId="{command_id}" State="{SHELL}/CommandState/Running"/>'
            )
        else:
            if stderr:
                streams += (
                    f'<rsp:Stream Name="stderr" CommandId="{command_id}">'
                    f"{base64.b64encode(stderr).decode()}</rsp:Stream>"
                )
            streams += (
                f'<rsp:Stream Name="stdout" CommandId="{command_id}" End="true"></rsp:Stream>'
                f'<rsp:Stream Name="stderr" CommandId="{command_id}" End="true"></rsp:Stream>'
            )
            state = (
                f'<rsp:CommandState CommandId="{command_id}" State="{SHELL}/CommandState/Done">'
                f"<rsp:ExitCode>{code}</rsp:ExitCode></rsp:CommandState>"
            )
        result: tuple[int, str] = reply(
            f"{SHELL}/ReceiveResponse",
            f"<rsp:ReceiveResponse>{streams}{state}</rsp:ReceiveResponse>",
        )
        return result

    def _execute(self, command: str) -> tuple[bytes, bytes, int]:
        with self._lock:
            self.commands.append(command)
        words = command.split()
        flags = [w.lower() for w in words]
        if not words or words[0].lower() != "powershell" or "-encodedcommand" not in flags:
            name = words[0] if words else ""
            return b"", f"'{name}' is not recognized\r\n".encode(), 1
        encoded = words[flags.index("-encodedcommand") + 1]
        script = base64.b64decode(encoded).decode("utf-16-le")
        with self._lock:
            self.scripts.append(script)
        return run_script(self.host, script)


def _unseal(context: Any, body: bytes) -> bytes:
    """The SOAP message inside pywinrm's ``multipart/encrypted`` body (one part, NTLM)."""
    parts = [p for p in body.split(BOUNDARY + b"\r\n") if p]
    header, payload = parts[0], parts[1]
    length = int(header.split(b"Length=")[1].strip())
    payload = payload.removesuffix(BOUNDARY + b"--\r\n")
    sealed = payload.removeprefix(b"\tContent-Type: application/octet-stream\r\n")
    (signature_length,) = struct.unpack("<i", sealed[:4])
    signature = sealed[4 : 4 + signature_length]
    message: bytes = context.unwrap(signature + sealed[4 + signature_length :]).data
    assert len(message) == length, "OriginalContent Length does not match"
    return message


def _seal(context: Any, message: bytes) -> bytes:
    wrapped: bytes = context.wrap(message, encrypt=True).data
    signature, sealed = wrapped[:16], wrapped[16:]
    return (
        BOUNDARY + b"\r\n"
        b"\tContent-Type: " + SPNEGO_ENCRYPTED.encode() + b"\r\n"
        b"\tOriginalContent: type=application/soap+xml;charset=UTF-8;Length="
        + str(len(message)).encode()
        + b"\r\n"
        + BOUNDARY
        + b"\r\n\tContent-Type: application/octet-stream\r\n"
        + struct.pack("<i", len(signature))
        + signature
        + sealed
        + BOUNDARY
        + b"--\r\n"
    )


def _text(root: ElementTree.Element, path: str) -> str:
    node = root.find(path, NS)
    return node.text or "" if node is not None else ""
