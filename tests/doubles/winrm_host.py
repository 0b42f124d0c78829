"""Test double of a Windows host's WinRM endpoint (no Windows host can run here).

An HTTP server on 127.0.0.1 speaking the WS-Management SOAP that pywinrm exchanges with a real
host on ``/wsman``: Create (the reply carries the ``ShellId`` selector), Command (``CommandId``),
Receive (base64 ``Stream`` elements, ``CommandState .../Running`` then ``.../Done`` with
``ExitCode``; optionally first the 500 fault ``WSManFault Code="2150858793"``, the operation
timeout), Signal and Delete; every reply's ``RelatesTo`` is the request's ``MessageID``. It does
not run PowerShell: it decodes ``powershell -encodedcommand`` and, when the script reads
``HKLM:\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion`` and converts to JSON, prints what that
script prints on a host with the configured registry values; otherwise it fails the way
PowerShell does, with a ``#< CLIXML`` error stream.
"""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from xml.etree import ElementTree

from tests.doubles.loopback import LoopbackServer

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
REGISTRY_KEY = r"HKLM:\SOFTWARE\Microsoft\Windows NT\CurrentVersion"

REGISTRY_1809 = {
    "CurrentBuildNumber": "17763",
    "UBR": 805,
    "ProductName": "Windows Server 2019 Datacenter",
    "InstallationType": "Server Core",
}

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
    '<s:Detail><f:WSManFault xmlns:f="{f}" Code="2150858793" Machine="WIN2019-BUILD">'
    "<f:Message>{text}</f:Message></f:WSManFault></s:Detail></s:Fault>"
).format(text=_TIMEOUT_TEXT, f=NS["f"])

_CLIXML_NOT_RECOGNIZED = (
    "#< CLIXML\r\n"
    '<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04">'
    "<S S=\"Error\">The term '{word}' is not recognized as the name of a cmdlet, function, "
    "script file, or operable program._x000D__x000A_</S>"
    '<S S="Error">At line:1 char:1_x000D__x000A_</S></Objs>'
)


@dataclass
class WinRMHostDouble:
    """Configure, then use as a context manager; ``url`` is ``http://127.0.0.1:PORT/wsman``."""

    registry: dict[str, Any] = field(default_factory=lambda: dict(REGISTRY_1809))
    username: str = "builder"
    password: str = "test-double-password"
    timeouts_before_output: int = 0
    never_finish: bool = False
    actions: list[str] = field(default_factory=list)
    scripts: list[str] = field(default_factory=list)
    open_shells: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._commands: dict[str, tuple[bytes, bytes, int]] = {}
        self._receives: dict[str, int] = {}
        double = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                expected = (
                    "Basic "
                    + base64.b64encode(f"{double.username}:{double.password}".encode()).decode()
                )
                if self.headers.get("Authorization") != expected:
                    self._reply(401, b"")
                    return
                status, reply = double._answer(body)
                self._reply(status, reply.encode("utf-8"))

            def _reply(self, status: int, raw: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/soap+xml;charset=UTF-8")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = LoopbackServer(Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.port}/wsman"

    def __enter__(self) -> WinRMHostDouble:
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop()

    # --- the protocol ----------------------------------------------------------------------

    def _answer(self, body: bytes) -> tuple[int, str]:
        root = ElementTree.fromstring(body)
        action = _text(root, "s:Header/a:Action")
        message_id = _text(root, "s:Header/a:MessageID")
        selector = root.find("s:Header/w:SelectorSet/w:Selector[@Name='ShellId']", NS)
        shell_id = selector.text if selector is not None else None
        name = action.rsplit("/", 1)[-1]
        self.actions.append(name)

        def reply(reply_action: str, payload: str) -> tuple[int, str]:
            return 200, _ENVELOPE.format(
                action=reply_action,
                message_id=str(uuid.uuid4()).upper(),
                relates_to=message_id,
                body=payload,
            )

        if action == f"{TRANSFER}/Create":
            new_id = str(uuid.uuid4()).upper()
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
            self._commands[command_id] = self._execute(command)
            self._receives[command_id] = 0
            return reply(
                f"{SHELL}/CommandResponse",
                f"<rsp:CommandResponse><rsp:CommandId>{command_id}</rsp:CommandId>"
                "</rsp:CommandResponse>",
            )
        if action == f"{SHELL}/Receive":
            stream = root.find("s:Body/rsp:Receive/rsp:DesiredStream", NS)
            command_id = stream.get("CommandId", "") if stream is not None else ""
            count = self._receives[command_id] = self._receives[command_id] + 1
            if self.never_finish or count <= self.timeouts_before_output:
                _status, text = reply("http://schemas.dmtf.org/wbem/wsman/1/wsman/fault", _FAULT)
                return 500, text
            stdout, stderr, code = self._commands[command_id]
            half = len(stdout) // 2
            first = count == self.timeouts_before_output + 1
            chunk = stdout[:half] if first else stdout[half:]
            streams = f'<rsp:Stream Name="stdout" CommandId="{command_id}">' + (
                base64.b64encode(chunk).decode() + "</rsp:Stream>"
            )
            if first:
                state = f'<rsp:CommandState CommandId="{command_id}" State="{SHELL}/CommandState/Running"/>'
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
            return reply(
                f"{SHELL}/ReceiveResponse",
                f"<rsp:ReceiveResponse>{streams}{state}</rsp:ReceiveResponse>",
            )
        if action == f"{SHELL}/Signal":
            return reply(f"{SHELL}/SignalResponse", "<rsp:SignalResponse/>")
        if action == f"{TRANSFER}/Delete":
            self.open_shells.discard(shell_id or "")
            return reply(f"{TRANSFER}/DeleteResponse", "")
        return 500, f"unexpected action {action}"

    def _execute(self, command: str) -> tuple[bytes, bytes, int]:
        prefix = "powershell -encodedcommand "
        if not command.startswith(prefix):
            return b"", b"'" + command.split()[0].encode() + b"' is not recognized\r\n", 1
        script = base64.b64decode(command[len(prefix) :]).decode("utf-16-le")
        self.scripts.append(script)
        if REGISTRY_KEY in script and "ConvertTo-Json" in script:
            wanted = [k for k in ("CurrentBuildNumber", "UBR", "ProductName", "InstallationType")
                      if k in script]  # fmt: skip
            values = {k: self.registry.get(k) for k in wanted}
            return (json.dumps(values, separators=(",", ":")) + "\r\n").encode(), b"", 0
        word = script.split()[0] if script.split() else "?"
        return b"", _CLIXML_NOT_RECOGNIZED.format(word=word).encode(), 1


def _text(root: ElementTree.Element, path: str) -> str:
    node = root.find(path, NS)
    return node.text or "" if node is not None else ""
