"""Webhooks at the edges (issue 14): a total deadline per call whatever the server does, and only public
addresses, judged on the address actually connected to.

The client's server is the only thing outside the machine: here a real socket server in a thread on 127.0.0.1
that answers as slowly as a hostile one would (one byte at a time, a TLS handshake never answered, a full
accept queue). DNS is outside too: the rebinding test stands in for a resolver whose answer changes.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.utils import timezone

from accounts.models import WebhookEndpoint
from accounts.services.sweep import sweep_run
from core.addresses import address_refusal
from core.errors import Invalid
from restructuring.models import Notification, NotificationStatus
from restructuring.services.case_sweep import cases_apply_risk
from restructuring.services.notifications import notifications_drain
from restructuring.services.webhooks import webhook_url_check
from tests.accounts.test_sweep import _btc
from tests.restructuring.test_notifications import SECRET, Endpoint, _called, _Handler, _Server

DRIP_SECONDS = 0.2  # far below the deadline, so that no single read ever waits long enough to time out
DEADLINE = 1.0


# ----------------------------------------------------------------------------------------- a hostile server


@dataclass
class Hostile:
    url: str
    requests: int = 0


def _read_request(conn: socket.socket) -> None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        (int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")),
        0,
    )
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            return
        body += chunk


def _drip(conn: socket.socket, data: bytes, stop: threading.Event) -> None:
    for byte in data:
        if stop.wait(DRIP_SECONDS):
            return
        conn.sendall(bytes([byte]))


def _serve_one(conn: socket.socket, mode: str, stop: threading.Event, server: Hostile) -> None:
    with conn:
        try:
            if mode == "tls_silent":  # takes the connection, never answers the client's hello
                stop.wait(30)
                return
            _read_request(conn)
            server.requests += 1
            if mode == "headers_drip":  # a success, one byte of its status line and headers at a time
                _drip(conn, b"HTTP/1.1 204 No Content\r\nX-Slow: yes\r\nContent-Length: 0\r\n\r\n", stop)
            elif mode == "body_drip":  # a failure whose headers come at once, and its body a byte at a time
                conn.sendall(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 400\r\n\r\n")
                _drip(conn, b"e" * 400, stop)
        except OSError:  # the client gave up: that is the point
            pass


@pytest.fixture
def hostile(request: pytest.FixtureRequest) -> Iterator[Hostile]:
    mode: str = request.param
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    scheme = "https" if mode == "tls_silent" else "http"
    server = Hostile(url=f"{scheme}://127.0.0.1:{port}/hooks")
    stop = threading.Event()
    fillers: list[socket.socket] = []
    threads: list[threading.Thread] = []
    if mode == "connect_hangs":
        # A backlog of none, filled by one connection never accepted: the kernel drops further SYNs, so a
        # connect waits for as long as the client lets it.
        listener.listen(0)
        filler = socket.create_connection(("127.0.0.1", port))
        fillers.append(filler)
    else:
        listener.listen(8)
        listener.settimeout(0.05)

        def accept() -> None:
            while not stop.is_set():
                try:
                    conn, _ = listener.accept()
                except TimeoutError:
                    continue
                except OSError:
                    return
                thread = threading.Thread(target=_serve_one, args=(conn, mode, stop, server), daemon=True)
                threads.append(thread)
                thread.start()

        acceptor = threading.Thread(target=accept, daemon=True)
        acceptor.start()
        threads.append(acceptor)
    yield server
    stop.set()
    for thread in threads:
        thread.join(timeout=5)
    for filler in fillers:
        filler.close()
    listener.close()


# ----------------------------------------------------------------------------------------- the deadline


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("hostile", "heard"),
    [
        ("headers_drip", True),  # with a per-read timeout: about 11 s, and then a success
        ("body_drip", True),  # with a per-read timeout: 80 s reading the error's excerpt
        ("tls_silent", False),
        ("connect_hangs", False),
    ],
    indirect=["hostile"],
)
def test_a_webhook_call_ends_at_its_deadline_whatever_the_server_does(
    hostile: Hostile, heard: bool, settings: Any
) -> None:
    # given the deadline lowered to 1 s (so that the test runs in seconds) and a server that answers, if at all,
    # more slowly than that, though never more than 0.2 s apart
    settings.WORKOUT_WEBHOOK_ALLOW_PRIVATE_NETWORKS = True
    settings.WORKOUT_WEBHOOK_TIMEOUT_SECONDS = DEADLINE
    _called("DRIP", _btc(), webhook_url=hostile.url)
    cases_apply_risk(sweep_id=sweep_run().pk)

    # when the outbox is drained
    started = time.monotonic()
    result = notifications_drain()
    took = time.monotonic() - started

    # then the call ended at its deadline (the rest of the drain is a few queries), as a failure to retry
    assert took < DEADLINE + 0.5, took
    assert result.as_dict() == {"sent": 0, "retrying": 1, "failed": 0}
    row = Notification.objects.get()
    assert "timed out" in row.last_error or row.last_error.startswith("HTTP 500"), row.last_error
    assert hostile.requests == int(heard)


@pytest.mark.django_db
def test_a_lease_that_a_batch_of_sends_could_outlast_is_refused_at_start(settings: Any) -> None:
    # the defaults pass: 10 sends of at most 10 s (SMTP) within the 220 s lease
    call_command("check")

    # a webhook deadline as long as the lease, or one that ten sends in a row would outlast, is refused
    for deadline, lease in [(220.0, 220.0), (300.0, 220.0), (22.0, 220.0), (5.0, 40.0)]:
        settings.WORKOUT_WEBHOOK_TIMEOUT_SECONDS = deadline
        settings.WORKOUT_NOTIFICATION_LEASE_SECONDS = lease
        with pytest.raises(SystemCheckError, match=r"restructuring\.E001.*could claim a notification"):
            call_command("check")
    # and so is no deadline at all
    settings.WORKOUT_WEBHOOK_TIMEOUT_SECONDS, settings.WORKOUT_NOTIFICATION_LEASE_SECONDS = 0.0, 220.0
    with pytest.raises(SystemCheckError, match="must be more than 0"):
        call_command("check")
    # a lease long enough for the batch is fine
    settings.WORKOUT_WEBHOOK_TIMEOUT_SECONDS, settings.WORKOUT_NOTIFICATION_LEASE_SECONDS = 30.0, 301.0
    call_command("check")


# ----------------------------------------------------------------------------------------- https still works


def _certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for "localhost" and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


@pytest.mark.django_db
def test_an_https_webhook_is_verified_against_the_trusted_authorities(tmp_path: Path, settings: Any) -> None:
    # given an https endpoint whose certificate names localhost, trusted through WORKOUT_WEBHOOK_CA_BUNDLE
    cert_path, key_path = _certificate(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    server = _Server(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.endpoint = Endpoint(url=f"https://localhost:{server.server_address[1]}/hooks/workout")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    settings.WORKOUT_WEBHOOK_ALLOW_PRIVATE_NETWORKS = True
    try:
        _called("TLS", _btc(), webhook_url=server.endpoint.url)
        cases_apply_risk(sweep_id=sweep_run().pk)

        # an authority that did not sign it: refused by the client, nothing posted
        assert notifications_drain().retrying == 1
        assert "certificate" in Notification.objects.get().last_error.lower()
        assert server.endpoint.requests == []

        # the one that did: posted
        settings.WORKOUT_WEBHOOK_CA_BUNDLE = str(cert_path)
        Notification.objects.update(next_attempt_at=Notification.objects.get().created_at)
        assert notifications_drain().sent == 1
        (received,) = server.endpoint.requests
        assert received.json()["type"] == "margin_call"
        assert received.headers["X-Workout-Signature"].startswith("sha256=")
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


# ----------------------------------------------------------------------------------------- addresses


# (address, refused, what the refusal names)
ADDRESSES = [
    # IPv4
    ("8.8.8.8", False, ""),
    ("127.0.0.1", True, ""),
    ("10.1.2.3", True, ""),
    ("100.64.0.1", True, ""),  # shared address space (carrier-grade NAT)
    ("169.254.169.254", True, ""),  # cloud metadata
    ("0.0.0.0", True, ""),  # noqa: S104 (connects to this machine)
    ("224.0.0.1", True, ""),  # multicast
    ("255.255.255.255", True, ""),
    # IPv6 itself
    ("2001:4860:4860::8888", False, ""),
    ("::1", True, ""),
    ("::", True, ""),
    ("fe80::1", True, ""),
    ("fc00::1", True, ""),
    ("ff02::1", True, ""),
    # IPv4-mapped and IPv4-translated
    ("::ffff:127.0.0.1", True, "IPv4-mapped of 127.0.0.1"),
    ("::ffff:10.0.0.1", True, "IPv4-mapped of 10.0.0.1"),
    ("::ffff:8.8.8.8", False, ""),
    ("::ffff:0:127.0.0.1", True, "IPv4-translated of 127.0.0.1"),
    # IPv4-compatible
    ("::127.0.0.1", True, "IPv4-compatible of 127.0.0.1"),
    ("::169.254.169.254", True, "IPv4-compatible of 169.254.169.254"),
    # NAT64, the well-known prefix and the local-use one
    ("64:ff9b::7f00:1", True, "NAT64 of 127.0.0.1"),
    ("64:ff9b::a9fe:a9fe", True, "NAT64 of 169.254.169.254"),
    ("64:ff9b::808:808", False, ""),
    ("64:ff9b:1::808:808", True, "local-use NAT64"),
    ("64:ff9b:1::7f00:1", True, "local-use NAT64"),
    # 6to4: bits 16-48
    ("2002:7f00:1::1", True, "6to4 of 127.0.0.1"),
    ("2002:c0a8:101::1", True, "6to4 of 192.168.1.1"),
    ("2002:808:808::1", False, ""),
    # Teredo: the client is the inverse of the last 32 bits (0x80fffffe is ~127.0.0.1), the server bits 32-64
    ("2001:0:4136:e378:8000:63bf:80ff:fffe", True, "Teredo client of 127.0.0.1"),
    ("2001:0:7f00:1:8000:63bf:f7f7:f7f7", True, "Teredo server of 127.0.0.1"),  # its client is 8.8.8.8
    ("2001:0:4136:e378:8000:63bf:f5ff:fffe", True, "Teredo client of 10.0.0.1"),
]


@pytest.mark.parametrize(("address", "refused", "names"), ADDRESSES)
def test_which_addresses_a_webhook_may_reach(address: str, refused: bool, names: str) -> None:
    refusal = address_refusal(address)
    assert (refusal is not None) == refused, refusal
    if names:
        assert refusal is not None
        assert names in refusal


def _url(address: str, port: int = 8443) -> str:
    host = f"[{address}]" if ":" in address else address
    return f"http://{host}:{port}/hooks"


def _registered(url: str) -> WebhookEndpoint:
    """An endpoint as the model holds it (its `clean` checks the URL, as the API's service does)."""
    now = timezone.now()
    return WebhookEndpoint(url=url, event_types=["*"], secret=SECRET, created_at=now, updated_at=now)


@pytest.mark.django_db
@pytest.mark.parametrize(("address", "refused", "names"), ADDRESSES)
def test_a_webhook_url_to_a_non_public_address_is_refused_when_it_is_set(
    address: str, refused: bool, names: str, settings: Any
) -> None:
    settings.WORKOUT_WEBHOOK_ALLOW_PRIVATE_NETWORKS = False
    endpoint = _registered(_url(address))
    if not refused:
        endpoint.full_clean(exclude=["client"])
        assert webhook_url_check(_url(address)) == _url(address)
        return
    with pytest.raises(ValidationError) as raised:
        endpoint.full_clean(exclude=["client"])
    (message,) = raised.value.message_dict["url"]
    assert "non-public address" in message
    assert names in message
    # and the API's service refuses it the same way, naming the field
    with pytest.raises(Invalid) as invalid:
        webhook_url_check(_url(address))
    assert (invalid.value.message, invalid.value.context) == (message, {"field": "url"})


@pytest.mark.django_db
@pytest.mark.parametrize(
    "url",
    ["http://localhost/x", "http://api.localhost/x", "http://127.1/x", "http://2130706433/x", "http://0x7f.1/x"],
)
def test_a_webhook_url_naming_this_machine_in_any_spelling_is_refused_when_it_is_set(url: str, settings: Any) -> None:
    settings.WORKOUT_WEBHOOK_ALLOW_PRIVATE_NETWORKS = False
    with pytest.raises(ValidationError, match="refused"):
        _registered(url).full_clean(exclude=["client"])
    with pytest.raises(Invalid):
        webhook_url_check(url)


@pytest.mark.django_db
def test_a_webhook_url_to_a_public_name_or_a_private_one_where_allowed_is_accepted(settings: Any) -> None:
    settings.WORKOUT_WEBHOOK_ALLOW_PRIVATE_NETWORKS = False
    _registered("https://hooks.example.com/x").full_clean(exclude=["client"])
    webhook_url_check("https://hooks.example.com/x")
    settings.WORKOUT_WEBHOOK_ALLOW_PRIVATE_NETWORKS = True
    _registered("http://10.0.0.5:8080/x").full_clean(exclude=["client"])
    webhook_url_check("http://10.0.0.5:8080/x")


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    server = _Server(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    server.endpoint = Endpoint(url=f"http://127.0.0.1:{server.server_address[1]}/hooks/workout")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.endpoint
    server.shutdown()
    server.server_close()
    thread.join()


# Stored URLs (written before the check at registration, or around it) whose host is, or resolves to, a
# non-public address: each names the address the connection would have been opened to.
STORED = [
    ("localhost", "localhost resolves to a non-public address ("),
    ("127.1", "127.1 resolves to a non-public address (127.0.0.1)"),
    ("2130706433", "2130706433 resolves to a non-public address (127.0.0.1)"),
    ("0.0.0.0", "0.0.0.0 resolves to a non-public address (0.0.0.0)"),  # noqa: S104
    ("[::]", ":: resolves to a non-public address (::)"),
    ("[::ffff:127.0.0.1]", "IPv4-mapped of 127.0.0.1"),
    ("[::127.0.0.1]", "(::127.0.0.1, which is IPv4-compatible of 127.0.0.1)"),
    ("[64:ff9b::7f00:1]", "(64:ff9b::7f00:1, which is NAT64 of 127.0.0.1)"),
    ("[64:ff9b:1::7f00:1]", "which is local-use NAT64"),
    ("[2002:7f00:1::1]", "(2002:7f00:1::1, which is 6to4 of 127.0.0.1)"),
    ("[2001:0:4136:e378:8000:63bf:80ff:fffe]", "which is Teredo client of 127.0.0.1"),
]


@pytest.mark.django_db
def test_every_address_is_checked_as_the_connection_is_opened(
    endpoint: Endpoint, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    # given production's setting, and stored webhook URLs that reach this machine in every spelling
    settings.WORKOUT_WEBHOOK_ALLOW_PRIVATE_NETWORKS = False
    settings.WORKOUT_WEBHOOK_TIMEOUT_SECONDS = DEADLINE
    port = endpoint.url.split(":")[2].split("/")[0]
    btc = _btc()
    for i, (host, _) in enumerate(STORED):
        _called(f"AT{i:02}", btc, webhook_url=f"http://{host}:{port}/hooks/workout")

    # when they are sent
    with django_capture_on_commit_callbacks(execute=True):
        cases_apply_risk(sweep_id=sweep_run().pk)
    notifications_drain()

    # then each failed for good, naming the address, and the endpoint heard nothing
    rows = dict(Notification.objects.values_list("case__account__code", "last_error"))
    for i, (_, error) in enumerate(STORED):
        assert error in rows[f"AT{i:02}"], rows[f"AT{i:02}"]
        assert rows[f"AT{i:02}"].endswith(": refused")
    assert set(Notification.objects.values_list("status", flat=True)) == {NotificationStatus.FAILED}
    assert endpoint.requests == []


@pytest.mark.django_db
def test_a_name_whose_dns_answer_changes_after_the_check_is_refused_at_the_connection(
    endpoint: Endpoint, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a resolver that first answers a public address for the client's host, and this machine afterwards
    # (DNS rebinding: the attacker's name server changes its answer between the check and the connection)
    settings.WORKOUT_WEBHOOK_ALLOW_PRIVATE_NETWORKS = False
    real = socket.getaddrinfo
    answers: list[str] = []

    def rebinding(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "localhost" and not answers:
            answers.append("public")
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", port or 0))]
        answers.append("real")
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    port = endpoint.url.split(":")[2].split("/")[0]
    _called("REBIND", _btc(), webhook_url=f"http://localhost:{port}/hooks/workout")
    cases_apply_risk(sweep_id=sweep_run().pk)

    # when it is sent
    result = notifications_drain()

    # then the address connected to was checked: refused for good, and the endpoint heard nothing
    assert result.as_dict() == {"sent": 0, "retrying": 0, "failed": 1}
    assert Notification.objects.get().last_error.startswith("localhost resolves to a non-public address (")
    assert endpoint.requests == []
    assert ipaddress.ip_address("93.184.216.34").is_global  # the first answer would have passed any check
