"""Django's user commands (`createsuperuser`, `changepassword`) with an audit event: they write users, and every
write leaves an event. See apps.py for why this is an app of its own."""
