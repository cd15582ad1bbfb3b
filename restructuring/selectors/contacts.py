"""Who a client's messages go to, and how: its addresses and message preferences, for many accounts in one query
(restructuring/services/messages.py routes the messages by them)."""

from __future__ import annotations

import functools
import zoneinfo
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import time

from accounts.models import MarginAccount
from restructuring.message_catalogue import LEGALLY_REQUIRED
from restructuring.models import NotificationChannel

FALLBACK_LOCALE = "en"


@dataclass(frozen=True)
class Contact:
    """What the messages of one account need of its client: addresses, preferences, names."""

    account_id: int
    account_code: str
    currency: str
    client_name: str
    email: str
    client_id: int
    phone: str = ""
    postal_address: str = ""
    locale: str = FALLBACK_LOCALE
    time_zone: str = "UTC"
    quiet_hours_start: time | None = None
    quiet_hours_end: time | None = None
    by_email: bool = True
    by_sms: bool = True
    by_letter: bool = False

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        return zone_of(self.time_zone)

    def addresses(self, kind: str) -> list[tuple[NotificationChannel, str]]:
        """The templated channels this message goes on, with their recipient (module docstring): the address, the
        phone number, or the client's name and postal address on their lines."""
        legal = kind in LEGALLY_REQUIRED
        letter = f"{self.client_name}\n{self.postal_address.strip()}" if self.postal_address.strip() else ""
        wanted = (
            (NotificationChannel.EMAIL, self.email, self.by_email),
            (NotificationChannel.SMS, self.phone, self.by_sms),
            (NotificationChannel.LETTER, letter, self.by_letter),
        )
        return [(channel, address) for channel, address, chosen in wanted if address and (chosen or legal)]


@functools.cache
def zone_of(name: str) -> zoneinfo.ZoneInfo:
    """The time zone of an IANA name; UTC for a name this machine does not know."""
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo("UTC")


_CONTACT_FIELDS = (
    "pk",
    "code",
    "base_currency",
    "client__name",
    "client__email",
    "client_id",
    "client__message_preferences__phone",
    "client__message_preferences__postal_address",
    "client__message_preferences__locale",
    "client__message_preferences__time_zone",
    "client__message_preferences__quiet_hours_start",
    "client__message_preferences__quiet_hours_end",
    "client__message_preferences__by_email",
    "client__message_preferences__by_sms",
    "client__message_preferences__by_letter",
)


def contacts_load(account_ids: Iterable[int]) -> dict[int, Contact]:
    """The contacts of these accounts' clients, in one query (preferences where the client has them)."""
    contacts = {}
    for row in MarginAccount.objects.filter(pk__any=set(account_ids)).values_list(*_CONTACT_FIELDS):
        account_id, code, currency, name, email, client_id, phone, address, locale, zone, start, end, *chosen = row
        has_preferences = locale is not None  # a left join: None everywhere when the client has no row
        contacts[account_id] = Contact(
            account_id=account_id,
            account_code=code,
            currency=currency,
            client_name=name,
            email=email,
            client_id=client_id,
            **(
                {
                    "phone": phone,
                    "postal_address": address,
                    "locale": locale,
                    "time_zone": zone,
                    "quiet_hours_start": start,
                    "quiet_hours_end": end,
                    "by_email": chosen[0],
                    "by_sms": chosen[1],
                    "by_letter": chosen[2],
                }
                if has_preferences
                else {}
            ),
        )
    return contacts
