"""Roles are groups (docs/architecture.md, "Who uses it"), created with their permissions after every migrate.

- credit_officer: works the queue, drafts and edits proposals, approves within their limit, sends offers,
  executes accepted restructurings and records repayments, sends a case to liquidation; adds notes, logs
  contacts and takes promises to pay; has a webhook notification delivered again; uploads a case's documents and
  reads them; drafts the text of client messages (message templates).
- senior_credit_officer: all of that, the senior approval (larger limit, escalated cases), publishes rule sets,
  reviews and publishes message templates (never one they wrote).
- compliance: reads cases (their agreements and documents too), the messages sent and their templates, and the
  audit trail, exports them, verifies the
  chain; acts on nothing.
- administrator: administers staff and nothing else: sees the members of staff, creates them, issues their
  enrolment links (restructuring/services/staff.py, core/staff.py), grants and revokes roles, sets their
  authority limits, deactivates and reactivates them (auth's view, add and change user permissions). No
  permission of the credit workflow: an administrator sees no case, proposal or rule. Nobody grants a role or
  a limit to themselves, nor issues themselves a link. A superuser has every permission and so counts as an
  administrator too (the first one of a fresh install is made with `manage.py staff_enrol`).
- client: the API's users (each linked to its Client); no staff permission at all.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Group, Permission
from django.utils.translation import gettext_lazy

CREDIT_OFFICER = "credit_officer"
SENIOR_CREDIT_OFFICER = "senior_credit_officer"
COMPLIANCE = "compliance"
ADMINISTRATOR = "administrator"
CLIENT = "client"
# The roles an administrator grants on the staff page (a client's user is not made there).
STAFF_ROLES = (CREDIT_OFFICER, SENIOR_CREDIT_OFFICER, COMPLIANCE, ADMINISTRATOR)
# What the pages call them, in the reader's language.
ROLE_LABELS = {
    CREDIT_OFFICER: gettext_lazy("credit officer"),
    SENIOR_CREDIT_OFFICER: gettext_lazy("senior credit officer"),
    COMPLIANCE: gettext_lazy("compliance"),
    ADMINISTRATOR: gettext_lazy("administrator"),
    CLIENT: gettext_lazy("client"),
}

_OFFICER = [
    "restructuring.view_case",
    "restructuring.view_proposal",
    "restructuring.draft_proposal",
    "restructuring.approve_proposal",
    "restructuring.offer_proposal",
    "restructuring.execute_proposal",
    "restructuring.liquidate_case",
    "restructuring.book_liquidation",
    # the conversation: notes, contacts and promises to pay (restructuring/services/conversation.py)
    "restructuring.add_note",
    "restructuring.add_contact",
    "restructuring.add_promisetopay",
    # a webhook notification delivered again to its endpoint (restructuring/services/webhooks.py)
    "restructuring.redeliver_notification",
    # documents: the case's, uploaded and read on the case page (restructuring/services/documents.py)
    "restructuring.add_document",
    "restructuring.view_document",
    # the text of client messages: drafts (restructuring/services/message_templates.py)
    "restructuring.view_messagetemplate",
    "restructuring.change_messagetemplate",
    "rules.view_ruleset",
    "rules.add_ruleset",
    "rules.change_ruleset",
]
ROLES: dict[str, list[str]] = {
    CREDIT_OFFICER: _OFFICER,
    SENIOR_CREDIT_OFFICER: [
        *_OFFICER,
        "restructuring.approve_senior",
        "restructuring.assign_case",
        "restructuring.publish_messagetemplate",
        "rules.publish_ruleset",
    ],
    COMPLIANCE: [
        "restructuring.view_case",
        "restructuring.view_proposal",
        "restructuring.view_document",
        "core.view_auditevent",
        "restructuring.view_messagetemplate",
        "rules.view_ruleset",
    ],
    ADMINISTRATOR: ["auth.view_user", "auth.add_user", "auth.change_user"],
    CLIENT: [],
}


def roles_ensure(**_: Any) -> None:
    """Create the role groups with exactly their permissions (idempotent; a post_migrate receiver)."""
    for name, codenames in ROLES.items():
        group, _created = Group.objects.get_or_create(name=name)
        wanted = []
        for dotted in codenames:
            app_label, codename = dotted.split(".")
            permission = Permission.objects.filter(content_type__app_label=app_label, codename=codename).first()
            if permission is not None:  # an app migrated later brings its permissions then
                wanted.append(permission)
        group.permissions.set(wanted)
