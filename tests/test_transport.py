"""toolkit.transport against real servers on 127.0.0.1 that trickle or redirect (issue 13, 7-8).

Each fault is real: a socket server that sends its status line and then one header byte every
0.2 s, a body without Content-Length that trickles, a TLS handshake that never completes, an
HTTPS server (test CA made with openssl) that redirects to plain HTTP.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import requests

from tests.bump_upstream import Upstream, running
from tests.faultservers import (
    BODY_WITHOUT_LENGTH,
    HEADERS_THEN_TRICKLE,
    TLS_RECORD_START,
    Certificates,
    make_certificates,
    tls_server,
    trickling,
)
from toolkit.transport import (
    DeadlineAdapter,
    DeadlineExceeded,
    InsecureRedirect,
    insecure_redirect,
    new_session,
)


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    with running(Upstream()) as server:
        yield server


def read_streamed(session: requests.Session, url: str) -> bytes:
    resp = session.get(url, timeout=(5, 5), stream=True)
    return b"".join(resp.iter_content(1024))


def test_trickled_headers_end_at_the_request_timeout() -> None:
    """requests alone waits forever here: every byte comes well within the read timeout."""
    with trickling(HEADERS_THEN_TRICKLE, interval=0.2) as server, new_session(total=60) as s:
        start = time.monotonic()
        with pytest.raises(DeadlineExceeded) as info:
            s.get(server.base + "/ftp/", timeout=(0.5, 0.5))
        took = time.monotonic() - start
    assert info.value.phase == "headers"
    assert info.value.__context__ is None  # not "caused" by the socket the deadline shut
    assert info.value.reason == "the status line and headers did not arrive within 1s"
    assert str(info.value).startswith(f"{server.base}/ftp/: ")
    assert 0.9 < took < 5.0


def test_trickled_headers_over_tls(certificates: Certificates) -> None:
    with trickling(HEADERS_THEN_TRICKLE, interval=0.2, tls=certificates) as server:
        start = time.monotonic()
        with new_session(total=60) as s, pytest.raises(DeadlineExceeded) as info:
            s.get(server.base + "/", timeout=(0.5, 0.5), verify=str(certificates.ca))
        assert info.value.phase == "headers"
        assert time.monotonic() - start < 5.0


def test_a_trickled_tls_handshake_ends_at_the_deadline(certificates: Certificates) -> None:
    """A handshake record that never completes, each byte within the read timeout. CPython
    bounds a TLS handshake as a whole by the socket timeout (a ReadTimeout); the deadline would
    cut it otherwise. Either way it ends."""
    with trickling(TLS_RECORD_START, interval=0.2, read_request=False) as server:
        url = f"https://127.0.0.1:{server.port}/"
        start = time.monotonic()
        with new_session(total=60) as s, pytest.raises(requests.Timeout):
            s.get(url, timeout=(0.5, 0.5), verify=str(certificates.ca))
        assert time.monotonic() - start < 5.0


def test_a_body_without_length_cut_by_the_deadline_is_not_complete() -> None:
    """The cut shows up as an end of file: it must raise, never pass for the whole body."""
    with trickling(BODY_WITHOUT_LENGTH, interval=0.05) as server, new_session(total=1.0) as s:
        start = time.monotonic()
        with pytest.raises(DeadlineExceeded) as info:
            s.get(server.base + "/x", timeout=(5, 5))  # the body is read inside get()
        assert info.value.phase == "answer"
        assert info.value.__context__ is None
        with pytest.raises(DeadlineExceeded):
            read_streamed(s, server.base + "/y")
        assert time.monotonic() - start < 6.0


def test_a_trickled_body_with_length_is_cut(upstream: Upstream) -> None:
    upstream.add("/drip", b"x" * 40 * 1024, drip=0.1)  # 1 KiB every 0.1 s: 4 s in all
    with new_session(total=0.7) as s, pytest.raises(DeadlineExceeded, match="whole answer"):
        read_streamed(s, upstream.base + "/drip")


def test_answers_within_the_deadline_and_kept_alive_connections_work(upstream: Upstream) -> None:
    upstream.add("/a", b"a" * 100_000)
    with new_session(total=0.5) as s:
        for _ in range(20):  # one kept-alive connection, reused, each request on its own clock
            assert s.get(upstream.base + "/a", timeout=(5, 5)).content == b"a" * 100_000
        time.sleep(0.7)  # past every earlier request's deadline
        assert s.get(upstream.base + "/a", timeout=(5, 5)).content == b"a" * 100_000
    assert upstream.count("/a") == 21


def test_deadline_adapter_refuses_a_bound_that_never_ends() -> None:
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="total must be positive"):
            DeadlineAdapter(total=bad)


def test_https_to_http_redirect_is_refused_and_not_followed(
    certificates: Certificates, upstream: Upstream
) -> None:
    upstream.add("/get-pip.py", b"print('served in the clear')\n")
    with tls_server(certificates) as tls:
        tls.redirect("/get-pip.py", upstream.base + "/get-pip.py")
        with new_session() as s, pytest.raises(InsecureRedirect) as info:
            s.get(tls.base + "/get-pip.py", timeout=(5, 5), verify=str(certificates.ca))
    assert str(info.value) == (
        f"{tls.base}/get-pip.py redirects to {upstream.base}/get-pip.py: refused, a redirect "
        "from https to plain http would let anyone on the path change the bytes"
    )
    assert upstream.count() == 0  # nothing was fetched over plain HTTP


def test_a_downgrade_later_in_a_chain_is_refused(
    certificates: Certificates, upstream: Upstream
) -> None:
    upstream.add("/f", b"clear")
    with tls_server(certificates) as tls:
        tls.redirect("/one", "/two")  # https -> https (relative): fine
        tls.redirect("/two", upstream.base + "/f")
        with new_session() as s, pytest.raises(InsecureRedirect) as info:
            s.get(tls.base + "/one", timeout=(5, 5), verify=str(certificates.ca))
    assert info.value.source == tls.base + "/two"
    assert info.value.target == upstream.base + "/f"
    assert tls.hits == ["/one", "/two"]
    assert upstream.count() == 0


def test_https_redirects_are_followed(certificates: Certificates) -> None:
    with tls_server(certificates) as tls:
        tls.redirect("/one", "/two")
        tls.serve("/two", b"over tls")
        with new_session() as s:
            got = s.get(tls.base + "/one", timeout=(5, 5), verify=str(certificates.ca))
            assert got.content == b"over tls"
            assert [r.status_code for r in got.history] == [302]
            # allow_redirects=False hands the redirect back without judging or following it
            raw = s.get(tls.base + "/one", timeout=(5, 5), verify=str(certificates.ca),
                        allow_redirects=False)  # fmt: skip
            assert raw.status_code == 302


@pytest.mark.parametrize(
    ("source", "target", "refused"),
    [
        ("https://mirror.example/a", "http://mirror.example/a", True),
        ("https://127.0.0.1/a", "http://127.0.0.1/a", True),  # a downgrade, even to loopback
        ("http://127.0.0.1:8080/a", "http://mirror.example/a", True),  # clear text elsewhere
        ("HTTPS://mirror.example/a", "HTTP://mirror.example/a", True),
        ("https://mirror.example/a", "https://cdn.example/a", False),
        ("http://127.0.0.1:8080/a", "http://[::1]:8080/a", False),
        ("http://localhost/a", "https://mirror.example/a", False),
    ],
)
def test_which_redirects_are_insecure(source: str, target: str, refused: bool) -> None:
    assert insecure_redirect(source, target) is refused


def test_an_interrupted_header_read_leaves_no_timer() -> None:
    """After a request fails, no deadline is left pending."""
    import socket
    import threading

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with trickling(HEADERS_THEN_TRICKLE, interval=0.1) as server, new_session(total=60) as s:
        with pytest.raises(DeadlineExceeded):
            s.get(server.base, timeout=(0.3, 0.3))
        with pytest.raises(requests.ConnectionError):
            s.get(f"http://127.0.0.1:{port}/", timeout=(0.3, 0.3))  # refused: no deadline involved
    from toolkit.transport import _watchdog

    assert _watchdog.pending() == 0
    assert [t for t in threading.enumerate() if isinstance(t, threading.Timer)] == []


# --- the registry client uses the same rules ----------------------------------------------------


def test_a_trickling_registry_cannot_hold_the_client() -> None:
    from toolkit.errors import RegistryError
    from toolkit.registry import RegistryClient, RetryPolicy

    policy = RetryPolicy(attempts=2, backoff=0.01, timeout=0.5)
    with trickling(HEADERS_THEN_TRICKLE, interval=0.2) as server:
        start = time.monotonic()
        with (
            RegistryClient(f"127.0.0.1:{server.port}", retry=policy) as client,
            pytest.raises(RegistryError) as info,
        ):
            client.ping()
        took = time.monotonic() - start
    assert "the status line and headers did not arrive within 1s" in str(info.value)
    assert "failed after 2 attempts" in str(info.value)
    assert server.connections == 2
    assert took < 10


def test_a_registry_redirecting_a_blob_to_http_is_refused(
    certificates: Certificates, upstream: Upstream
) -> None:
    from toolkit.errors import RegistryError
    from toolkit.registry import RegistryClient, RetryPolicy

    digest = "sha256:" + "ab" * 32
    upstream.add(f"/storage/{digest}", b"blob bytes in the clear")
    with tls_server(certificates) as tls:
        tls.redirect(f"/v2/python/blobs/{digest}", f"{upstream.base}/storage/{digest}")
        registry = tls.base.removeprefix("https://")
        with (
            RegistryClient(
                registry, scheme="https", ca=certificates.ca, retry=RetryPolicy(attempts=3)
            ) as client,
            pytest.raises(RegistryError) as info,
        ):
            client.get_blob("python", digest)
    assert (
        f"{tls.base}/v2/python/blobs/{digest} redirects to {upstream.base}/storage/{digest}: "
        "refused" in str(info.value)
    )
    assert tls.hits == [f"/v2/python/blobs/{digest}"]  # not retried
    assert upstream.count() == 0


def test_the_raw_answer_keeps_its_type_so_ntlm_can_bind_to_the_channel(
    certificates: Certificates,
) -> None:
    """requests-ntlm takes the server certificate from ``response.raw`` (an urllib3
    HTTPResponse) for channel binding; a wrapper object would silently turn that off
    (NoCertificateRetrievedWarning, an error under this suite's warnings policy)."""
    import hashlib
    import ssl

    import urllib3
    from requests_ntlm import HttpNtlmAuth

    with tls_server(certificates) as tls:
        tls.serve("/cbt", b"bound")
        with new_session() as s:
            got = s.get(tls.base + "/cbt", timeout=(5, 5), verify=str(certificates.ca), stream=True)
            assert isinstance(got.raw, urllib3.HTTPResponse)
            digest = HttpNtlmAuth("u", "p")._get_server_cert(got)
            assert got.content == b"bound"  # and the body still reads under the deadline
    der = ssl.PEM_cert_to_DER_cert(certificates.cert.read_text())
    assert digest == hashlib.sha256(der).digest()


# --- and so does the Docker Engine client over tcp:// -------------------------------------------

ENGINE_BODY_TRICKLE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 4096\r\n\r\n"
    b'{"ApiVersion": "1.41", "Pad": "'
)


@pytest.mark.parametrize(
    ("prefix", "tls"),
    [(HEADERS_THEN_TRICKLE, False), (HEADERS_THEN_TRICKLE, True), (ENGINE_BODY_TRICKLE, False)],
    ids=["headers", "headers-over-tls", "body"],
)
def test_a_trickling_engine_cannot_hold_the_docker_client(
    certificates: Certificates, prefix: bytes, tls: bool
) -> None:
    """Before: each byte came within the read timeout, so connecting (the API version check)
    waited as long as the engine trickled."""
    from toolkit.clients import connect
    from toolkit.errors import HostError
    from toolkit.hosts import HostSpec, TLSFiles

    files = TLSFiles(ca=certificates.ca, cert=certificates.cert, key=certificates.key)
    with trickling(prefix, interval=0.2, tls=certificates if tls else None) as server:
        spec = HostSpec(
            url=f"tcp://127.0.0.1:{server.port}",
            tls=files if tls else None,
            release="1809",
            source="test",
        )
        start = time.monotonic()
        with pytest.raises(HostError) as info:
            connect(spec, {}, timeout=1.0)
        took = time.monotonic() - start
    assert "did not arrive within 2s" in str(info.value), str(info.value)
    assert server.connections >= 1
    assert took < 8, f"the client was held {took:.1f}s"


def test_the_engine_adapter_bounds_ordinary_answers_but_not_streams() -> None:
    from toolkit.transport import EngineDeadlineAdapter

    adapter = EngineDeadlineAdapter()
    assert adapter.bounds(False, 60) == (120.0, 120.0)  # /info, /images/json, /wait
    assert adapter.bounds(True, 3600) == (7200.0, None)  # a build or push stream
    assert adapter.bounds(False, None) == (None, adapter.total)
