"""The client's address as this site should believe it, behind a known number of trusted reverse proxies.

Behind a proxy every request arrives from the proxy's address (REMOTE_ADDR), so a lockout keyed on it locks
everyone out at once, and anyone can lock out any username. Each proxy appends the address it received the
request from to X-Forwarded-For; a client can write whatever it likes to the left of that. With
`WORKOUT_TRUSTED_PROXIES` = N, the last N entries were written by our proxies, and the N-th from the right is
the address the outermost of them saw: the client. Entries further left were sent by the client and are never
read, so an attacker who adds a victim's address as an extra hop locks out only its own address.

With N = 0 (the default: the app serves clients directly) the header is ignored altogether, since any client
can send it. A request with fewer entries than N did not come through the proxies as configured (a health
check from inside, say): its own REMOTE_ADDR is used. So is an entry that is not an IP address.

django-axes reads the address through this function (AXES_CLIENT_IP_CALLABLE in config/settings.py).
"""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.http import HttpRequest


def client_ip(request: HttpRequest) -> str | None:
    remote = request.META.get("REMOTE_ADDR") or None
    trusted = int(settings.WORKOUT_TRUSTED_PROXIES)
    if trusted <= 0:
        return remote
    hops = [hop.strip() for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
    if len(hops) < trusted:
        return remote
    candidate = hops[-trusted]
    try:
        return str(ipaddress.ip_address(candidate.strip("[]")))
    except ValueError:
        return remote
