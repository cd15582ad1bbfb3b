"""One HTTP POST to a server outside, bounded in time and in where it may go (a client's webhook endpoint).

A total deadline
----------------
The deadline covers the whole call: name resolution, connecting, the TLS handshake, sending, the status line,
the headers and what is read of the body. A per-read timeout does not: a server that drips one byte every 3 s
never trips a 5 s read timeout and held a sender for 261 s, past the lease that keeps other senders off the
notification (restructuring/services/notifications.py). libcurl (pycurl) enforces `CURLOPT_TIMEOUT_MS` over the
entire transfer, its resolver runs in a thread it abandons at the deadline, and the calling thread is never
interrupted by a signal (`CURLOPT_NOSIGNAL`).

Where it may go
---------------
Every address libcurl is about to open a connection to passes through `CURLOPT_OPENSOCKETFUNCTION` first, so
the address checked is the address connected to (core/addresses.py: public only, unless `allow_private`):
a name that resolves inside, or a DNS answer that changes between a check and the connection (rebinding), is
refused before a packet is sent. Only http and https; redirects are not followed; proxies from the environment
are not used (a proxy would connect on our behalf to an address we never saw).

What comes back
---------------
A 2xx status is success as soon as the headers are in: the body is not waited for, unless the caller needs it
(`success_body_bytes`: an SMS provider's answer names the message it queued), and then at most that much of it.
Otherwise the status, its reason phrase and the first `EXCERPT_BYTES` of the body (what came of it by the
deadline), for the error message.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import certifi
import pycurl

from core.addresses import address_refusal

EXCERPT_BYTES = 300
USER_AGENT = "Workout-Webhooks/1"


class DestinationRefused(Exception):
    """The URL may not be called (not http(s), or its host resolves to an address inside): retrying is pointless."""


class PostFailed(Exception):
    """No answer within the deadline, or none at all (refused, reset, TLS failure): worth retrying."""


@dataclass(frozen=True)
class PostAnswer:
    status: int
    reason: str
    excerpt: str  # the start of the body, for errors; empty for a 2xx
    body: bytes = b""  # a 2xx's body, up to the `success_body_bytes` asked for

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


@dataclass
class _Transfer:
    """What the callbacks saw during one transfer."""

    allow_private: bool
    success_body_bytes: int = 0
    refused: list[tuple[str, str]] = field(default_factory=list)  # (address, why)
    status: int = 0
    reason: str = ""
    body: bytearray = field(default_factory=bytearray)
    stopped_reading: bool = False

    def open_socket(self, purpose: int, address: Any) -> Any:
        host = str(address.addr[0])
        if not self.allow_private:
            refusal = address_refusal(host)
            if refusal is not None:
                self.refused.append((host, refusal))
                return pycurl.SOCKET_BAD
        return socket.socket(address.family, address.socktype, address.protocol)

    def header(self, line: bytes) -> int | None:
        if line.startswith(b"HTTP/"):  # a status line (there may be a 100 Continue before the final one)
            _version, _, rest = line.decode("iso-8859-1").strip().partition(" ")
            code, _, self.reason = rest.partition(" ")
            self.status = int(code) if code.isdigit() else 0
        elif line in (b"\r\n", b"\n") and 200 <= self.status < 300 and not self.success_body_bytes:
            # the end of a success's headers, whose body is not wanted
            self.stopped_reading = True
            return 0  # see `write`
        return None

    def write(self, data: bytes) -> int | None:
        # Stop at the body of a success (it is not needed) and after the excerpt of a failure: returning a count
        # other than len(data) ends the transfer there (CURLE_WRITE_ERROR, recognised by `stopped_reading`).
        if 200 <= self.status < 300 and not self.success_body_bytes:
            self.stopped_reading = True
            return 0
        limit = self.success_body_bytes if 200 <= self.status < 300 else EXCERPT_BYTES
        self.body += data[: limit - len(self.body)]
        if len(self.body) >= limit:
            self.stopped_reading = True
            return 0
        return None


def http_post(
    url: str,
    *,
    body: bytes,
    headers: Mapping[str, str],
    deadline_seconds: float,
    allow_private: bool = False,
    ca_bundle: str | None = None,
    success_body_bytes: int = 0,
) -> PostAnswer:
    """POST `body` to `url` and return the answer, all within `deadline_seconds`; raise DestinationRefused or
    PostFailed. `ca_bundle` is the PEM file of the certificate authorities trusted for https (certifi's by
    default). `success_body_bytes`: read that much of a 2xx's body (none by default)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise DestinationRefused(f"not an http(s) URL: {url[:200]}")
    transfer = _Transfer(allow_private=allow_private, success_body_bytes=success_body_bytes)
    curl = pycurl.Curl()
    try:
        curl.setopt(pycurl.URL, url)
        curl.setopt(pycurl.PROTOCOLS, pycurl.PROTO_HTTP | pycurl.PROTO_HTTPS)
        curl.setopt(pycurl.FOLLOWLOCATION, 0)
        curl.setopt(pycurl.PROXY, "")  # never a proxy from the environment
        curl.setopt(pycurl.NOSIGNAL, 1)
        deadline_ms = max(1, int(deadline_seconds * 1000))
        curl.setopt(pycurl.TIMEOUT_MS, deadline_ms)
        curl.setopt(pycurl.CONNECTTIMEOUT_MS, deadline_ms)
        curl.setopt(pycurl.HTTP_VERSION, pycurl.CURL_HTTP_VERSION_1_1)
        curl.setopt(pycurl.CAINFO, ca_bundle or certifi.where())
        curl.setopt(pycurl.POST, 1)
        curl.setopt(pycurl.POSTFIELDS, body)
        # "Expect:" keeps libcurl from waiting for a "100 Continue" before sending a body over 1 KiB.
        curl.setopt(pycurl.HTTPHEADER, [f"{name}: {value}" for name, value in headers.items()] + ["Expect:"])
        curl.setopt(pycurl.USERAGENT, headers.get("User-Agent", USER_AGENT))
        curl.setopt(pycurl.OPENSOCKETFUNCTION, transfer.open_socket)
        curl.setopt(pycurl.HEADERFUNCTION, transfer.header)
        curl.setopt(pycurl.WRITEFUNCTION, transfer.write)
        try:
            curl.perform()
        except pycurl.error as error:
            code, message = error.args
            answered = transfer.status >= 300 and code == pycurl.E_OPERATION_TIMEDOUT  # a failure, slowly told
            if not (code == pycurl.E_WRITE_ERROR and transfer.stopped_reading) and not answered:
                raise _failure(parts.hostname, transfer, code, message, curl, deadline_seconds) from None
    finally:
        curl.close()
    if 200 <= transfer.status < 300:
        return PostAnswer(status=transfer.status, reason=transfer.reason, excerpt="", body=bytes(transfer.body))
    return PostAnswer(status=transfer.status, reason=transfer.reason, excerpt=transfer.body.decode("utf-8", "replace"))


def _failure(host: str, transfer: _Transfer, code: int, message: str, curl: Any, deadline_seconds: float) -> Exception:
    if transfer.refused:
        address, why = transfer.refused[0]
        return DestinationRefused(f"{host} resolves to a non-public address ({address}{why}): refused")
    if code == pycurl.E_OPERATION_TIMEDOUT:
        return PostFailed(f"timed out: no complete answer within {deadline_seconds:g} s ({message})")
    errno = int(curl.getinfo(pycurl.OS_ERRNO))
    return PostFailed(f"{message} ({os.strerror(errno)})" if errno else message)
