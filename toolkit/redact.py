"""How URLs, paths and free text are shown: without the secrets they may carry.

The one helper for every surface that shows a URL or a path: error messages, the ``hosts``
table and ``--json``, build and dry-run lines, logs, reports and ``--debug`` tracebacks.

* URL user info is hidden (``tcp://admin:pw@10.1.2.3:2375`` -> ``tcp://***@10.1.2.3:2375``),
  whatever the scheme: a token often sits in the user name (``https://TOKEN@mirror/``). The one
  exception is an ``ssh://`` login name, which is no secret and tells hosts apart
  (``ssh://builder@h``); a password next to it is hidden (``ssh://builder:***@h``).
* Query values whose names say they are secret (``token``, ``sig``, ``X-Amz-Signature``,
  ``password``, ...), bare query words and fragments are hidden: signed URLs are credentials
  too.
* A "path" that is key material (PEM text pasted where a file name belongs) is not shown.
* Free text (a library's message, a traceback): every URL in it is redacted as above and every
  PEM block is replaced.
"""

from __future__ import annotations

import re
from pathlib import PurePath

HIDDEN = "***"

# scheme "://" then the rest of the URL token, up to whitespace, a double quote, angle bracket or
# backtick. A single quote or parenthesis closing a repr stays in the token ("'tcp://a:b@h'"):
# cutting there would show the end of a password that holds one.
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s\"<>`]*")
_AUTHORITY_END = re.compile(r"[/?#]")
_SECRET_QUERY = re.compile(
    r"(?i)(?:token|sig|signature|secret|passw(?:or)?d|pwd|key|credential|auth|session|code|"
    r"x-amz-[a-z-]+)"
)
# A PEM block, also cut short or flattened onto one line (messages join lines with spaces).
_PEM = re.compile(
    r"-----BEGIN [A-Z0-9 ]{0,60}-----.*?(?:-----END [A-Z0-9 ]{0,60}-----|\Z)", re.DOTALL
)
_PEM_MARKER = re.compile(r"-----(?:BEGIN|END) [A-Z0-9 ]{0,60}-----")
# 40 or more characters of base64 mixing upper case, lower case and digits: key material, not a
# name any file system path is made of.
_BASE64_RUN = re.compile(r"[A-Za-z0-9+/=]{40,}")
PEM_SHOWN = "<PEM text, not shown>"


def redact_url(url: str) -> str:
    """``url`` as messages may show it: its user info and secret query values hidden.

    Anything that is not ``scheme://...`` comes back as it is. The authority ends at the first
    ``/``, ``?`` or ``#`` (as for urllib, urllib3 and docker-py); when what stands there is not a
    valid ``host[:port]`` and an ``@`` comes later (a password holding an unescaped ``/``), the
    text up to that ``@`` is hidden as well.
    """
    scheme, sep, rest = url.partition("://")
    if not sep or not scheme:
        return url
    end = _AUTHORITY_END.search(rest)
    authority = rest[: end.start()] if end else rest
    tail = rest[len(authority) :]
    userinfo, at, host = authority.rpartition("@")
    if not at and "@" in tail and not _plain_host(authority):
        userinfo, _, after = rest.rpartition("@")
        return f"{scheme}://{HIDDEN}@{_redact_query(after)}"
    if at:
        user, colon, _password = userinfo.partition(":")
        if scheme.lower() == "ssh" and user and _plain_user(user):
            shown = f"{user}:{HIDDEN}" if colon else user
        else:
            shown = HIDDEN
        authority = f"{shown}@{host}"
    return f"{scheme}://{authority}{_redact_query(tail)}"


def _plain_host(authority: str) -> bool:
    """``host``, ``host:PORT`` or ``[v6]:PORT``: no text where a port belongs."""
    if authority.endswith("]"):
        return True
    _, colon, port = authority.rpartition(":")
    return not colon or port.isdigit() or not port


def _plain_user(user: str) -> bool:
    return re.fullmatch(r"[A-Za-z0-9._-]{1,64}", user) is not None


def _redact_query(tail: str) -> str:
    """Secret-named query values, bare query words and any fragment hidden (a fragment is never
    sent to a server, and is where tokens of some flows travel)."""
    rest, hash_, fragment = tail.partition("#")
    path, q, query = rest.partition("?")
    if q:

        def hide(item: str) -> str:
            name, eq, _value = item.partition("=")
            if not eq:
                return HIDDEN if item else item
            return f"{name}={HIDDEN}" if _SECRET_QUERY.search(name) else item

        path = f"{path}?{'&'.join(hide(item) for item in query.split('&'))}"
    return f"{path}#{HIDDEN}" if hash_ and fragment else f"{path}{hash_}"


def looks_like_key_material(value: str) -> bool:
    """True for text that is a certificate or key rather than a file name: a PEM marker, a line
    break, or a long run of mixed-case base64."""
    if _PEM_MARKER.search(value) or "\n" in value or "\r" in value:
        return True
    return any(
        re.search(r"[A-Z]", run) and re.search(r"[a-z]", run) and re.search(r"[0-9]", run)
        for run in _BASE64_RUN.findall(value)
    )


def redact_path(value: str | PurePath) -> str:
    """A path as messages may show it: key material pasted instead of a file name is not shown,
    and a URL (``--logs https://user:pw@...``) has its user info hidden."""
    text = str(value)
    if looks_like_key_material(text):
        return PEM_SHOWN if _PEM_MARKER.search(text) else "<key material, not shown>"
    return redact_text(text)


def redact_text(text: str) -> str:
    """Free text (a library's message, a traceback) with every URL redacted and every PEM block
    replaced."""
    if "-----" in text:
        text = _PEM.sub(PEM_SHOWN, text)
    if "://" in text:
        text = _URL.sub(lambda m: redact_url(m.group(0)), text)
    return text
