"""The sign-in lockout behind reverse proxies (issue 14): the locked address is the client's, read from
X-Forwarded-For as far as the trusted proxies wrote it (WORKOUT_TRUSTED_PROXIES), never the proxy's and never
an address the client wrote itself.

Requests are made as the proxy would pass them on: REMOTE_ADDR is the proxy's address, and X-Forwarded-For
holds what the client sent (if anything) with the address the proxy received the request from appended.
"""

from __future__ import annotations

from typing import Any

import pytest
from axes.models import AccessAttempt
from django.contrib.auth.models import User
from django.test import Client

from tests.web.helpers import PASSWORD, current_code, staff_user

pytestmark = pytest.mark.django_db

PROXY = "10.0.0.2"
ALICE = "198.51.100.7"
ATTACKER = "203.0.113.66"
LIMIT = 5  # AXES_FAILURE_LIMIT


@pytest.fixture
def alice() -> User:
    return staff_user("alice", "credit_officer")


def _sign_in(alice: User, *, remote: str, forwarded: str | None, password: str = PASSWORD) -> int:
    meta = {"REMOTE_ADDR": remote}
    if forwarded is not None:
        meta["HTTP_X_FORWARDED_FOR"] = forwarded
    form = {"username": "alice", "password": password, "otp_token": current_code(alice)}
    return Client().post("/login/", form, **meta).status_code  # type: ignore[arg-type]


def _locked_addresses() -> set[str]:
    return set(AccessAttempt.objects.filter(failures_since_start__gte=LIMIT).values_list("ip_address", flat=True))


def test_behind_one_proxy_the_lockout_is_the_clients_not_the_proxys(alice: User, settings: Any) -> None:
    # given one trusted proxy, and an attacker who fails alice's password five times through it
    settings.WORKOUT_TRUSTED_PROXIES = 1
    for _ in range(LIMIT):
        _sign_in(alice, remote=PROXY, forwarded=ATTACKER, password="guess")

    # then the attacker's address is locked, not the proxy's that everyone comes through
    assert _locked_addresses() == {ATTACKER}
    assert _sign_in(alice, remote=PROXY, forwarded=ATTACKER) == 429
    # and alice, through the same proxy from her own address, signs in
    assert _sign_in(alice, remote=PROXY, forwarded=ALICE) == 302


def test_a_spoofed_extra_hop_locks_only_the_spoofers_own_address(alice: User, settings: Any) -> None:
    # given one trusted proxy, and an attacker who writes alice's address into X-Forwarded-For itself: the proxy
    # appends the attacker's real address after it
    settings.WORKOUT_TRUSTED_PROXIES = 1
    for _ in range(LIMIT):
        _sign_in(alice, remote=PROXY, forwarded=f"{ALICE}, {ATTACKER}", password="guess")

    # then the lock is on the attacker's address, and alice is not locked out
    assert _locked_addresses() == {ATTACKER}
    assert _sign_in(alice, remote=PROXY, forwarded=ALICE) == 302
    # nor can the attacker escape its lock by writing another address in front
    assert _sign_in(alice, remote=PROXY, forwarded=f"192.0.2.200, {ATTACKER}") == 429


def test_behind_two_proxies_the_address_the_outer_one_saw_is_the_clients(alice: User, settings: Any) -> None:
    # given two trusted proxies (a load balancer, then nginx): the outer appends the client, the inner the outer
    settings.WORKOUT_TRUSTED_PROXIES = 2
    outer = "10.0.0.9"
    for _ in range(LIMIT):
        _sign_in(alice, remote=PROXY, forwarded=f"{ALICE}, {ATTACKER}, {outer}", password="guess")

    assert _locked_addresses() == {ATTACKER}
    assert _sign_in(alice, remote=PROXY, forwarded=f"{ALICE}, {outer}") == 302


def test_without_trusted_proxies_the_header_is_ignored(alice: User, settings: Any) -> None:
    # given no proxy (the default): clients connect directly, and any of them can write X-Forwarded-For
    settings.WORKOUT_TRUSTED_PROXIES = 0
    for _ in range(LIMIT):
        _sign_in(alice, remote=ATTACKER, forwarded=ALICE, password="guess")

    # then the lock is on the address the attacker connected from, whatever it wrote
    assert _locked_addresses() == {ATTACKER}
    assert _sign_in(alice, remote=ATTACKER, forwarded="192.0.2.200") == 429
    assert _sign_in(alice, remote=ALICE, forwarded=None) == 302


def test_a_request_that_did_not_come_through_the_proxies_is_keyed_on_its_own_address(
    alice: User, settings: Any
) -> None:
    # given one trusted proxy, a request without the header (from inside, past the proxy) or with garbage in it
    settings.WORKOUT_TRUSTED_PROXIES = 1
    for forwarded in (None, "not-an-address", None, "", None):
        _sign_in(alice, remote=ATTACKER, forwarded=forwarded, password="guess")

    assert _locked_addresses() == {ATTACKER}
