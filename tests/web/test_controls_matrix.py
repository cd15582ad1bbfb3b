"""The controls matrix (issue 13): every state-changing action of the officer and compliance UI x every actor, with the
outcome each must get, asserted row by row; and every URL of the UI accounted for, so that a new way to change state
cannot be added without its row.

Actors, named by what they are to the objects acted on:
- maker: mia, a credit officer who drafted the officer proposals and the liquidation proposals acted on, and edited
  the draft rule set;
- officer: olaf, another credit officer, who approved what stands approved;
- senior: sam, a senior credit officer, who cloned (wrote) the draft rule set;
- author: paula, the credit officer who wrote the policy in force (its rules made the rules' proposal);
- publisher: pete, the senior who published that policy;
- administrator: ada, who administers staff (roles, limits, enrolment links) and holds no credit permission;
- compliance: cora; client: a client's login; anonymous.

Outcomes: "ok" (done, with at least one audit event), "refused" (the service refuses: nothing changes, no event),
"forbidden" (403 before any service: the role lacks the permission), "login" (sent to sign in).

Every attempt runs in a savepoint rolled back afterwards, so each starts from the same world. The API's actions have
their own matrix (tests/api/test_authorisation_matrix.py) and the admin's its own test (tests/core/test_admin.py);
commands are audited per tests/core/test_commands_audit.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.test import Client, TestCase, override_settings
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone

from accounts.models import WebhookEndpoint
from core.models import AuditEvent
from core.roles import ADMINISTRATOR, CLIENT, COMPLIANCE, CREDIT_OFFICER, SENIOR_CREDIT_OFFICER
from restructuring.models import (
    ApprovalLimit,
    Case,
    Installment,
    MessageTemplate,
    Notification,
    Proposal,
    ProposalKind,
    Team,
    TeamMembership,
)
from restructuring.services.case_sweep import cases_apply_risk
from restructuring.services.message_templates import message_template_save, message_template_submit
from restructuring.services.negotiation.execution import proposal_execute
from restructuring.services.negotiation.offers import offer_accept, offer_send
from restructuring.services.negotiation.proposals import (
    proposal_approve,
    proposal_draft,
    proposal_liquidation_draft,
    proposal_submit,
)
from rules.models import Rule, RuleSet
from rules.services import DEFAULT_RULES, rule_save, ruleset_clone, ruleset_load, ruleset_publish
from tests.documents import PDF, ZIP
from tests.restructuring.helpers import account, btc, sweep_only
from tests.web.helpers import signed_in, staff_user

pytestmark = [pytest.mark.django_db]

ACTORS = ("maker", "officer", "senior", "author", "publisher", "administrator", "compliance", "client", "anonymous")
CREDIT_STAFF = ("maker", "officer", "senior", "author", "publisher")
OVERRIDE = "the client's other assets"  # the test book's proposals are flagged (no cash): approvals carry a reason


@dataclass
class World:
    users: dict[str, User]
    case: Case  # in PROPOSED: the rules' proposal and mia's, both pending
    rules_proposal: Proposal  # pending; made by the policy of paula and pete
    made_by_maker: Proposal  # mia's, pending
    draft: Proposal  # mia's, a draft
    approved: Proposal  # mia's, approved by olaf
    accepted: Proposal  # another case's: approved, offered, accepted by the client
    liquidation_pending: Proposal  # mia's liquidation proposal on a third case
    liquidation_approved: Proposal  # mia's, approved by olaf, on a fourth case
    installment: Installment  # of a fifth case, restructured
    delivered: Notification  # a webhook notification of the case, sent to its client's endpoint
    delivering: Notification  # another, still pending
    policy: RuleSet
    rules_draft: RuleSet  # cloned by sam, a rule edited by mia
    newcomer: User  # a member of staff being set up by the administrator: no role yet
    leaver: User  # a member of staff deactivated
    template_draft: MessageTemplate  # mia's draft of a message template, not yet submitted
    template_in_review: MessageTemplate  # mia's, in review
    template_by_senior: MessageTemplate  # sam's, in review


@pytest.fixture(autouse=True)
def _small_monte_carlo() -> Iterator[None]:
    with override_settings(WORKOUT_FEASIBILITY_PATHS=300):
        yield


def _approve(proposal: Proposal, actor: User) -> None:
    proposal_approve(proposal_id=proposal.pk, actor=actor, version=proposal.version, override_reason=OVERRIDE)


@pytest.fixture
def world() -> World:
    users = {
        "maker": staff_user("mia", CREDIT_OFFICER),
        "officer": staff_user("olaf", CREDIT_OFFICER),
        "senior": staff_user("sam", SENIOR_CREDIT_OFFICER),
        "author": staff_user("paula", CREDIT_OFFICER),
        "publisher": staff_user("pete", SENIOR_CREDIT_OFFICER),
        "administrator": staff_user("ada", ADMINISTRATOR),
        "compliance": staff_user("cora", COMPLIANCE),
        "client": staff_user("cliff", CLIENT),
    }
    mia, olaf, sam = users["maker"], users["officer"], users["senior"]
    policy = ruleset_publish(
        rule_set_id=ruleset_load(DEFAULT_RULES, actor=users["author"]).pk, actor=users["publisher"]
    )
    instrument = btc()
    accounts = [account(f"M{k}", instrument, band="margin_call") for k in range(5)]
    with TestCase.captureOnCommitCallbacks(execute=True), TestCase.captureOnCommitCallbacks(execute=True):
        cases_apply_risk(sweep_id=sweep_only().pk)
    cases = [Case.objects.get(account=a) for a in accounts]
    rules_of = {c.pk: Proposal.objects.get(case=c, source="rules") for c in cases}

    case = cases[0]
    made = proposal_draft(case_id=case.pk, terms={"term_months": 6}, actor=mia)
    proposal_submit(proposal_id=made.pk, actor=mia)
    draft = proposal_draft(case_id=case.pk, terms={"term_months": 9}, actor=mia)
    approved = proposal_draft(case_id=case.pk, terms={"term_months": 3}, actor=mia)
    proposal_submit(proposal_id=approved.pk, actor=mia)
    _approve(approved, olaf)

    accepted = rules_of[cases[1].pk]
    _approve(accepted, olaf)
    offer_send(proposal_id=accepted.pk, actor=olaf, version=1)
    offer_accept(proposal_id=accepted.pk, client_id=cases[1].account.client_id)

    liquidation_pending = proposal_liquidation_draft(case_id=cases[2].pk, reason="unreachable", actor=mia)
    liquidation_approved = proposal_liquidation_draft(case_id=cases[3].pk, reason="unreachable", actor=mia)
    _approve(liquidation_approved, olaf)

    executed = rules_of[cases[4].pk]
    _approve(executed, olaf)
    offer_send(proposal_id=executed.pk, actor=olaf, version=1)
    offer_accept(proposal_id=executed.pk, client_id=cases[4].account.client_id)
    proposal_execute(proposal_id=executed.pk, actor=olaf, version=1)

    # the desk: olaf works on sam's team, paula (the author) is on leave from it
    desk = Team.objects.create(name="Desk", senior=sam)
    TeamMembership.objects.create(team=desk, user=olaf)
    TeamMembership.objects.create(team=desk, user=users["author"], on_leave=True)
    ApprovalLimit.objects.create(user=mia, currency="USD", amount=Decimal(100000))  # what the administrator clears
    rules_draft = ruleset_clone(rule_set_id=policy.pk, actor=sam)
    extension = rules_draft.rules.get(name="concentrated_term")
    rule_save(
        rule_set_id=rules_draft.pk,
        actor=mia,
        rule={**_rule_fields(extension), "parameters": {"months": "18"}},
        replaces=extension.name,
    )
    delivered, delivering = _webhook_notifications(case)

    def _template(kind: str, channel: str, locale: str, author: User, *, submit: bool) -> MessageTemplate:
        shipped = MessageTemplate.objects.get(kind=kind, channel=channel, locale=locale, status="published")
        draft = message_template_save(
            kind=kind, channel=channel, locale=locale, subject=shipped.subject, body=shipped.body + " ", actor=author
        )
        return message_template_submit(template_id=draft.pk, actor=author) if submit else draft

    return World(
        template_draft=_template("cured", "letter", "en", mia, submit=False),
        template_in_review=_template("margin_call", "email", "en", mia, submit=True),
        template_by_senior=_template("offer", "sms", "de", sam, submit=True),
        users=users,
        case=case,
        delivered=delivered,
        delivering=delivering,
        rules_proposal=rules_of[case.pk],
        made_by_maker=made,
        draft=draft,
        approved=Proposal.objects.get(pk=approved.pk),
        accepted=Proposal.objects.get(pk=accepted.pk),
        liquidation_pending=liquidation_pending,
        liquidation_approved=Proposal.objects.get(pk=liquidation_approved.pk),
        installment=Installment.objects.filter(proposal=executed).order_by("number").first(),  # type: ignore[arg-type]
        policy=policy,
        rules_draft=rules_draft,
        newcomer=User.objects.create_user("newcomer"),
        leaver=User.objects.create_user("leaver", is_active=False),
    )


def _webhook_notifications(case: Case) -> tuple[Notification, Notification]:
    """A sent and a pending webhook notification of the case, to an endpoint of its client (the sending is
    tests/restructuring/test_webhook_endpoints.py's)."""
    now = timezone.now()
    endpoint = WebhookEndpoint.objects.create(
        client_id=case.account.client_id,
        url="https://hooks.client.example/workout",
        event_types=["*"],
        secret="whsec_matrix",
        created_at=now,
        updated_at=now,
    )
    common = {"case": case, "channel": "webhook", "recipient": endpoint.url, "webhook_endpoint": endpoint}
    sent = Notification.objects.create(
        **common, kind="margin_call", status="sent", attempts=1, sent_at=now, next_attempt_at=now, created_at=now
    )
    pending = Notification.objects.create(**common, kind="deadline_reminder", next_attempt_at=now, created_at=now)
    return sent, pending


def _rule_fields(rule: Rule) -> dict[str, Any]:
    fields = ("name", "description", "priority", "condition", "action", "parameters", "package", "stop_processing")
    return {f: getattr(rule, f) for f in fields}


def _rule_id(world: World, name: str) -> int:
    return world.rules_draft.rules.get(name=name).pk


def _rule_form(rule: Rule, **changes: Any) -> dict[str, Any]:
    data = {**_rule_fields(rule), **changes}
    form = {k: v for k, v in data.items() if k not in ("parameters", "stop_processing")}
    form.update({f"p_{k}": v for k, v in data["parameters"].items()})
    if data["stop_processing"]:
        form["stop_processing"] = "on"
    return form


TERMS = {
    "name": "officer terms",
    "term_months": "6",
    "rate_annual": "",
    "kind": "level",
    "moratorium_months": "0",
    "grace_interest_months": "0",
    "grace_principal_months": "0",
    "arrears_treatment": "capitalise",
    "collateral_to_add": "0",
    "principal_haircut": "0",
}


def _in_days(days: int) -> str:
    return (timezone.localdate() + timedelta(days=days)).isoformat()


def _terms(prefix: str) -> dict[str, str]:
    return {f"{prefix}-{k}": v for k, v in TERMS.items()}


@dataclass(frozen=True)
class Action:
    name: str
    url_name: str  # the URL's name: every writing URL of the UI has at least one row
    # The path and the form posted, given the world and the acting user (None: anonymous).
    request: Callable[[World, User | None], tuple[str, dict[str, Any]]]
    outcomes: dict[str, str]  # actor -> outcome


def _staff(ok: tuple[str, ...] = CREDIT_STAFF, refused: tuple[str, ...] = (), forbidden: tuple[str, ...] = ()) -> dict:
    """The outcomes of a credit action: the credit staff's as given; the administrator, compliance and clients hold
    no credit permission; anonymous is sent to sign in."""
    outcomes = {actor: "ok" for actor in ok}
    outcomes.update({actor: "refused" for actor in refused})
    outcomes.update({actor: "forbidden" for actor in forbidden})
    assert set(outcomes) == set(CREDIT_STAFF), outcomes
    return {
        **outcomes,
        "administrator": "forbidden",
        "compliance": "forbidden",
        "client": "forbidden",
        "anonymous": "login",
    }


def _administration(administrator: str = "ok") -> dict[str, str]:
    """The outcomes of a staff administration action: the administrator's as given, everyone else's refused."""
    outcomes = {actor: "forbidden" for actor in ACTORS}
    return {**outcomes, "administrator": administrator, "anonymous": "login"}


MATRIX = [
    Action(
        "draft a proposal", "proposal-new", lambda w, _: (f"/cases/{w.case.pk}/proposals/new/", _terms("new")), _staff()
    ),
    Action(
        "edit a proposal's terms",
        "proposal-edit",
        lambda w, _: (f"/proposals/{w.made_by_maker.pk}/edit/", _terms("edit")),
        _staff(),
    ),
    Action("submit a draft", "proposal-submit", lambda w, _: (f"/proposals/{w.draft.pk}/submit/", {}), _staff()),
    Action(
        "approve an officer's proposal",
        "proposal-approve",
        lambda w, _: (f"/proposals/{w.made_by_maker.pk}/approve/", {"version": "1", "override_reason": OVERRIDE}),
        _staff(ok=("officer", "senior", "author", "publisher"), refused=("maker",)),
    ),
    Action(
        "approve the rules' proposal",
        "proposal-approve",
        lambda w, _: (f"/proposals/{w.rules_proposal.pk}/approve/", {"version": "1", "override_reason": OVERRIDE}),
        _staff(ok=("maker", "officer", "senior"), refused=("author", "publisher")),
    ),
    Action(
        "approve a stale version",
        "proposal-approve",
        lambda w, _: (f"/proposals/{w.made_by_maker.pk}/approve/", {"version": "2", "override_reason": OVERRIDE}),
        _staff(ok=(), refused=CREDIT_STAFF),
    ),
    Action(
        "approve a flagged proposal without a reason",
        "proposal-approve",
        lambda w, _: (f"/proposals/{w.rules_proposal.pk}/approve/", {"version": "1"}),
        _staff(ok=(), refused=CREDIT_STAFF),
    ),
    Action(
        "reject a proposal",
        "proposal-reject",
        lambda w, _: (f"/proposals/{w.rules_proposal.pk}/reject/", {"reason": "no"}),
        _staff(),
    ),
    Action(
        "send an offer",
        "proposal-offer",
        lambda w, _: (f"/proposals/{w.approved.pk}/offer/", {"version": str(w.approved.version), "hours": ""}),
        _staff(),
    ),
    Action(
        "execute an accepted offer",
        "proposal-execute",
        lambda w, _: (f"/proposals/{w.accepted.pk}/execute/", {"version": "1"}),
        _staff(),
    ),
    Action(
        "propose a liquidation",
        "case-liquidate",
        lambda w, _: (f"/cases/{w.case.pk}/liquidate/", {"reason": "unreachable"}),
        _staff(),
    ),
    Action(
        "approve a liquidation proposal",
        "proposal-approve",
        lambda w, _: (f"/proposals/{w.liquidation_pending.pk}/approve/", {"version": "1"}),
        _staff(ok=("officer", "senior", "author", "publisher"), refused=("maker",)),
    ),
    Action(
        "carry out an approved liquidation",
        "proposal-liquidate",
        lambda w, _: (f"/proposals/{w.liquidation_approved.pk}/liquidate/", {"version": "1"}),
        _staff(),
    ),
    Action(
        "record a repayment",
        "repayment-record",
        lambda w, _: (f"/installments/{w.installment.pk}/repayment/", {"amount": str(w.installment.total)}),
        _staff(),
    ),
    Action(
        "record a partial payment (less than the installment: allocated by the waterfall, the rest carried)",
        "repayment-record",
        lambda w, _: (f"/installments/{w.installment.pk}/repayment/", {"amount": "1.00"}),
        _staff(),
    ),
    Action(
        "add a note",
        "note-add",
        lambda w, _: (f"/cases/{w.case.pk}/notes/", {"text": "asked for a week", "remind_on": _in_days(7)}),
        _staff(),
    ),
    Action(
        "log a contact",
        "contact-log",
        lambda w, _: (
            f"/cases/{w.case.pk}/contacts/",
            {"channel": "call", "direction": "outbound", "outcome": "no_answer", "promise_method": "card"},
        ),
        _staff(),
    ),
    Action(
        "log a contact with a promise to pay",
        "contact-log",
        lambda w, _: (
            f"/cases/{w.case.pk}/contacts/",
            {
                "channel": "call",
                "direction": "outbound",
                "outcome": "promise",
                "person": "the treasurer",
                "promise_amount": "300.00",
                "promise_due": _in_days(3),
                "promise_method": "bank_transfer",
            },
        ),
        _staff(),
    ),
    Action(
        "take a promise to pay",
        "promise-make",
        lambda w, _: (
            f"/cases/{w.case.pk}/promises/",
            {"promise_amount": "300.00", "promise_due": _in_days(3), "promise_method": "card"},
        ),
        _staff(),
    ),
    Action(
        "take a promise to pay dated in the past",
        "promise-make",
        lambda w, _: (
            f"/cases/{w.case.pk}/promises/",
            {"promise_amount": "300.00", "promise_due": _in_days(-1), "promise_method": "card"},
        ),
        _staff(ok=(), refused=CREDIT_STAFF),
    ),
    Action("clone a rule set", "rules-clone", lambda w, _: (f"/rules/{w.policy.pk}/clone/", {}), _staff()),
    Action(
        "add a rule to a draft",
        "rules-rule-add",
        lambda w, _: (
            f"/rules/{w.rules_draft.pk}/rules/new/",
            _rule_form(w.rules_draft.rules.get(name="concentrated_term"), name="another_term"),
        ),
        _staff(),
    ),
    Action(
        "edit a rule of a draft",
        "rules-rule-edit",
        lambda w, _: (
            f"/rules/{w.rules_draft.pk}/rules/{w.rules_draft.rules.get(name='illiquid_term').pk}/",
            _rule_form(w.rules_draft.rules.get(name="illiquid_term"), priority=77),
        ),
        _staff(),
    ),
    Action(
        "delete a rule of a draft",
        "rules-rule-delete",
        lambda w, _: (
            f"/rules/{w.rules_draft.pk}/rules/{w.rules_draft.rules.get(name='illiquid_term').pk}/delete/",
            {},
        ),
        _staff(),
    ),
    Action(
        "publish a draft rule set",
        "rules-publish",
        lambda w, _: (f"/rules/{w.rules_draft.pk}/publish/", {}),
        _staff(ok=("publisher",), refused=("senior",), forbidden=("maker", "officer", "author")),
    ),
    # staff administration: the administrator alone, and never on themselves
    Action(
        "create a member of staff",
        "staff-create",
        lambda w, _: ("/staff/create/", {"username": "fresh", "email": "", "role": CREDIT_OFFICER}),
        _administration(),
    ),
    Action(
        "issue an enrolment link",
        "staff-link",
        lambda w, _: (f"/staff/{w.newcomer.pk}/link/", {}),
        _administration(),
    ),
    Action(
        "issue oneself an enrolment link",
        "staff-link",
        lambda w, me: (f"/staff/{me.pk if me else 0}/link/", {}),
        _administration("refused"),
    ),
    Action(
        "grant a role",
        "staff-role-grant",
        lambda w, _: (f"/staff/{w.newcomer.pk}/roles/grant/", {"role": SENIOR_CREDIT_OFFICER}),
        _administration(),
    ),
    Action(
        "grant oneself a role",
        "staff-role-grant",
        lambda w, me: (f"/staff/{me.pk if me else 0}/roles/grant/", {"role": SENIOR_CREDIT_OFFICER}),
        _administration("refused"),
    ),
    Action(
        "revoke a role",
        "staff-role-revoke",
        lambda w, _: (f"/staff/{w.users['officer'].pk}/roles/revoke/", {"role": CREDIT_OFFICER}),
        _administration(),
    ),
    Action(
        "set an authority limit",
        "staff-limit-set",
        lambda w, _: (f"/staff/{w.users['officer'].pk}/limits/set/", {"currency": "USD", "amount": "1000000"}),
        _administration(),
    ),
    Action(
        "set oneself an authority limit",
        "staff-limit-set",
        lambda w, me: (f"/staff/{me.pk if me else 0}/limits/set/", {"currency": "USD", "amount": "1000000"}),
        _administration("refused"),
    ),
    Action(
        "clear an authority limit",
        "staff-limit-clear",
        lambda w, _: (f"/staff/{w.users['maker'].pk}/limits/clear/", {"currency": "USD"}),
        _administration(),
    ),
    Action(
        "deactivate a member of staff",
        "staff-deactivate",
        lambda w, _: (f"/staff/{w.users['officer'].pk}/deactivate/", {}),
        _administration(),
    ),
    Action(
        "reactivate a member of staff",
        "staff-reactivate",
        lambda w, _: (f"/staff/{w.leaver.pk}/reactivate/", {}),
        _administration(),
    ),
]

MATRIX.extend(
    # the text of client messages (restructuring/services/message_templates.py): officers write and submit drafts, a
    # senior who did not write one publishes it or sends it back
    [
        Action(
            "save a draft message template",
            "message-template-save",
            lambda w, _: (
                "/messages/templates/liquidation/email/de/save/",
                {"subject": "Verwertung: Konto {{ account }}", "body": "Guten Tag {{ client_name }}."},
            ),
            _staff(),
        ),
        Action(
            "save a message template naming an unknown variable",
            "message-template-save",
            lambda w, _: (
                "/messages/templates/liquidation/email/de/save/",
                {"subject": "Verwertung", "body": "{{ password }}"},
            ),
            _staff(ok=(), refused=CREDIT_STAFF),
        ),
        Action(
            "submit a draft message template",
            "message-template-submit",
            lambda w, _: (f"/messages/templates/{w.template_draft.pk}/submit/", {}),
            _staff(),
        ),
        Action(
            "publish a message template in review",
            "message-template-publish",
            lambda w, _: (f"/messages/templates/{w.template_in_review.pk}/publish/", {}),
            _staff(ok=("senior", "publisher"), forbidden=("maker", "officer", "author")),
        ),
        Action(
            "publish a message template one wrote",
            "message-template-publish",
            lambda w, _: (f"/messages/templates/{w.template_by_senior.pk}/publish/", {}),
            _staff(ok=("publisher",), refused=("senior",), forbidden=("maker", "officer", "author")),
        ),
        Action(
            "send a message template back to its authors",
            "message-template-reject",
            lambda w, _: (f"/messages/templates/{w.template_in_review.pk}/reject/", {"reason": "too harsh"}),
            _staff(ok=("senior", "publisher"), forbidden=("maker", "officer", "author")),
        ),
    ]
)

MATRIX.append(
    # a member of staff's own preference (core/preferences.py): anyone of staff, for themselves only
    Action(
        "choose one's language",
        "language-choose",
        lambda w, _: ("/account/language/", {"language": "de"}),
        {**{actor: "ok" for actor in ACTORS}, "client": "forbidden", "anonymous": "login"},
    )
)

MATRIX += [
    # a webhook notification delivered again to its endpoint (restructuring/services/webhooks.py), from the case's
    # webhook page; one still being delivered is refused
    Action(
        "deliver a webhook notification again",
        "notification-redeliver",
        lambda w, _: (f"/notifications/{w.delivered.pk}/redeliver/", {}),
        _staff(),
    ),
    Action(
        "deliver again a webhook notification still pending",
        "notification-redeliver",
        lambda w, _: (f"/notifications/{w.delivering.pk}/redeliver/", {}),
        _staff(ok=(), refused=CREDIT_STAFF),
    ),
]
MATRIX.extend(
    [
        # a case's documents (restructuring/services/documents.py): judged by content; tests/web/test_documents_pages.py
        # and tests/api/test_documents.py hold each refusal
        Action(
            "upload a document to a case",
            "document-upload",
            lambda w, _: (
                f"/cases/{w.case.pk}/documents/",
                {"kind": "proof_of_funds", "file": SimpleUploadedFile("funds.pdf", PDF)},
            ),
            _staff(),
        ),
        Action(
            "upload an archive to a case",
            "document-upload",
            lambda w, _: (
                f"/cases/{w.case.pk}/documents/",
                {"kind": "other", "file": SimpleUploadedFile("a.zip", ZIP)},
            ),
            _staff(ok=(), refused=CREDIT_STAFF),
        ),
    ]
)

MATRIX.append(
    # the queue's bulk actions (restructuring/services/bulk.py): the world's case waits on staff (proposals pending),
    # so a reminder is refused for it, case by case; tests/web/test_bulk_actions.py holds the reminders sent
    Action(
        "remind the selected cases' clients",
        "queue-bulk",
        lambda w, _: ("/queue/bulk/", {"action": "remind", "cases": [w.case.pk]}),
        _staff(ok=(), refused=CREDIT_STAFF),
    )
)

MATRIX += [
    # the desk (restructuring/views/desk.py over restructuring/services/assignment.py): a senior's; the service
    # refuses an officer (in words the page shows), and a target on leave whoever asks
    Action(
        "reassign a case",
        "case-reassign",
        lambda w, _: (f"/cases/{w.case.pk}/reassign/", {"to": "olaf", "reason": "balance the desk"}),
        _staff(ok=("senior", "publisher"), refused=("maker", "officer", "author")),
    ),
    Action(
        "reassign a case to an officer on leave",
        "case-reassign",
        lambda w, _: (f"/cases/{w.case.pk}/reassign/", {"to": "paula"}),
        _staff(ok=(), refused=CREDIT_STAFF),
    ),
    Action(
        "send an officer on leave (their cases redistributed)",
        "staff-leave-start",
        lambda w, _: (f"/staff/{w.users['officer'].pk}/leave/start/", {}),
        _staff(ok=("senior", "publisher"), refused=("maker", "officer", "author")),
    ),
    Action(
        "bring an officer back from leave",
        "staff-leave-end",
        lambda w, _: (f"/staff/{w.users['author'].pk}/leave/end/", {}),
        _staff(ok=("senior", "publisher"), refused=("maker", "officer", "author")),
    ),
]

# The UI's URLs that change nothing: GET pages, and POSTs that only compute (their rows check that they write
# nothing). Sign-in and sign-out change the session only (django-axes records failed sign-ins). Every other URL of
# the UI must have a row in MATRIX.
READ_ONLY = {
    "home",
    "queue",
    "cascade",
    "case",
    "audit",
    "audit-export",
    "audit-verify",
    "audit-case",
    "rules",
    "rules-set",
    "rules-check",
    "rules-dry-run",
    "case-webhooks",
}
# The communication log and the templates, read: the lists, a template's page, a letter's PDF, compliance's search
# and export of the messages sent; a template's preview computes and writes nothing (checked below).
READ_ONLY |= {
    "message-templates",
    "message-template",
    "message-template-preview",
    "message-letter",
    "audit-messages",
    "audit-messages-export",
}
SESSION_ONLY = {"login", "logout", "two-factor-setup"}
# A provider's delivery reports, signed with the provider's secret (no session): tests/restructuring/test_sms.py holds
# them (signed, unsigned, wrongly signed, an unknown message).
PROVIDER_HOOKS = {"hook-sms-twilio"}
# A member of staff redeeming their own one-time enrolment link (signed out: the link is the credential), audited:
# tests/web/test_staff_enrolment.py holds it (valid, used, expired, unknown, revoked links).
ENROLMENT = {"enrol"}
READ_ONLY |= {"staff", "staff-team"}
# Downloads of a case's documents and of its offers' agreements (GET, tests/web/test_documents_pages.py).
READ_ONLY |= {"document-download", "agreement-download"}


def _outcome(response: Any, events_before: int) -> str:
    written = AuditEvent.objects.count() - events_before
    if response.status_code == 403:
        assert not written
        return "forbidden"
    if response.status_code == 302 and response["Location"].startswith("/login/"):
        assert not written
        return "login"
    return "ok" if written else "refused"


def _attempt(world: World, action: Action, actor: str) -> str:
    with transaction.atomic():
        web = Client() if actor == "anonymous" else signed_in(world.users[actor])
        events = AuditEvent.objects.count()
        path, data = action.request(world, world.users.get(actor))
        outcome = _outcome(web.post(path, data), events)
        transaction.set_rollback(True)
    return outcome


def test_every_action_x_every_actor_gets_its_outcome(world: World) -> None:
    failures = []
    for action in MATRIX:
        for actor in ACTORS:
            want = action.outcomes[actor]
            got = _attempt(world, action, actor)
            if got != want:
                failures.append(f"{action.name} as {actor}: {got}, want {want}")
    assert not failures, "\n".join(failures)


def _names(patterns: list[URLPattern | URLResolver], prefix: str = "") -> set[str]:
    names = set()
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            route = prefix + str(pattern.pattern)
            if route.startswith(("admin/", "api/")):
                continue  # the admin's and the API's own tests hold those
            names |= _names(pattern.url_patterns, route)
        elif pattern.name and not (prefix + str(pattern.pattern)).startswith(("admin/", "api/")):
            names.add(pattern.name)
    return names


def test_every_url_of_the_ui_is_read_only_or_in_the_matrix() -> None:
    routed = _names(get_resolver().url_patterns)
    in_matrix = {action.url_name for action in MATRIX}

    accounted = in_matrix | READ_ONLY | SESSION_ONLY | ENROLMENT | PROVIDER_HOOKS
    assert routed - accounted == set(), "a URL without a row in the controls matrix"
    assert accounted - routed == set(), "a row names no URL"


def test_the_read_only_urls_refuse_a_write_or_write_nothing(world: World) -> None:
    """A POST to a page is refused (405); the POSTs that only compute (a rule's check, a dry run) write nothing."""
    web = signed_in(world.users["senior"])
    events = AuditEvent.objects.count()
    proposals = Proposal.objects.count()
    pages = ["/queue/", f"/cases/{world.case.pk}/", "/audit/", "/audit/export.csv", "/rules/"]
    pages += [
        f"/audit/cases/{world.case.pk}/",
        f"/rules/{world.policy.pk}/",
        f"/cases/{world.case.pk}/webhooks/",
        "/staff/team/",
    ]
    pages += ["/messages/templates/", "/messages/templates/margin_call/email/en/", "/audit/messages/"]
    pages += ["/audit/messages/export.csv"]
    for page in pages:
        assert web.post(page, {}).status_code == 405, page
    assert web.post(f"/rules/{world.rules_draft.pk}/dry-run/").status_code == 200
    assert web.post("/cascade/", {"symbol": "BTC", "drop": "0.3"}).status_code == 200
    preview = {
        "subject": "Call {{ call_amount|money:currency }}",
        "body": "Dear {{ client_name }}",
        "case": world.case.pk,
    }
    assert web.post("/messages/templates/margin_call/email/en/preview/", preview).status_code == 200
    check = _rule_form(world.rules_draft.rules.get(name="illiquid_term"))
    assert web.post(f"/rules/{world.rules_draft.pk}/check/", check).status_code == 200
    assert signed_in(world.users["administrator"]).post("/staff/", {}).status_code == 405
    audit = signed_in(world.users["compliance"])
    assert audit.post("/audit/verify/").status_code in (200, 405)
    assert (AuditEvent.objects.count(), Proposal.objects.count()) == (events, proposals)
    assert not Proposal.objects.filter(kind=ProposalKind.LIQUIDATE, state="executed").exists()
    assert Group.objects.filter(name=CREDIT_OFFICER).exists()
