"""The audit actions core writes (core/audit_catalogue.py): staff accounts, operations (API tokens: accounts)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import User

from core.audit import AuditEntry
from core.audit_catalogue import COMPLIANCE_ONLY, AuditAction, declare, declare_family
from core.models import Operation

# -------------------------------------------------------------------------------------- staff (core/staff.py)

STAFF_CREATE = declare("staff.create", User, audience=COMPLIANCE_ONLY, summary="a member of staff created")
STAFF_DEACTIVATE = declare(
    "staff.deactivate", User, audience=COMPLIANCE_ONLY, summary="a member of staff deactivated: can no longer sign in"
)
STAFF_REACTIVATE = declare("staff.reactivate", User, audience=COMPLIANCE_ONLY, summary="a member of staff reactivated")
STAFF_ENROLMENT_ISSUE = declare(
    "staff.enrolment_issue", User, audience=COMPLIANCE_ONLY, summary="an enrolment link issued (the older ones revoked)"
)
STAFF_ENROL = declare(
    "staff.enrol", User, audience=COMPLIANCE_ONLY, summary="a member of staff enrolled: password and authenticator set"
)
STAFF_PASSWORD_CHANGE = declare(
    "staff.password_change", User, audience=COMPLIANCE_ONLY, summary="one's own password changed (in the admin)"
)

# ------------------------------------------------------------------------------- operations (core/operations.py)

OPERATION = declare_family(
    "operation",
    Operation,
    audience=COMPLIANCE_ONLY,
    summary="a run of a command or of the operations API that changed state: operation.<its name>",
)


def staff_event(
    action: AuditAction[User],
    user: User,
    actor: AbstractBaseUser | None,
    system_actor: str,
    *,
    from_state: str = "",
    to_state: str = "",
    **payload: Any,
) -> AuditEntry:
    """An event about a member of staff (core/staff.py, restructuring/services/staff.py): their username first in
    the payload; the system actor names who acted only when no user did."""
    return action.entry(
        user,
        actor=actor,
        system_actor="" if actor is not None else system_actor,
        from_state=from_state,
        to_state=to_state,
        payload={"username": user.get_username(), **payload},
    )
