"""Message templates as data (restructuring/services/message_templates.py): a change is a draft, reviewed and
published by a second person, on the record; the version used is recorded on every message; versions are kept."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import transaction

from accounts.models import Client
from core.errors import Conflict, PermissionDenied, ValidationError
from core.models import AuditEvent
from core.roles import COMPLIANCE, CREDIT_OFFICER, SENIOR_CREDIT_OFFICER
from restructuring.models import (
    CLIENT_NOTIFICATION_KINDS,
    TEMPLATED_CHANNELS,
    Case,
    MessageTemplate,
    MessageTemplateStatus,
    Notification,
    NotificationKind,
)
from restructuring.services.case_sweep import cases_apply_risk
from restructuring.services.message_templates import (
    MessageTemplateReviewError,
    content_sha256,
    message_template_publish,
    message_template_reject,
    message_template_save,
    message_template_submit,
    message_templates_ensure,
)
from restructuring.services.notifications import notification_enqueue
from tests.restructuring.helpers import account, btc, run_together, sweep_only
from tests.web.helpers import staff_user

pytestmark = [pytest.mark.django_db]

SUBJECT = "Margin call: {{ account }} needs {{ call_amount|money:currency }}"
BODY = "Hello {{ client_name }}, pay {{ call_amount|money:currency }} by {{ deadline|datetime }}. Case {{ case_id }}."


def _people() -> dict[str, Any]:
    return {
        "alice": staff_user("alice", CREDIT_OFFICER),
        "bob": staff_user("bob", CREDIT_OFFICER),
        "sam": staff_user("sam", SENIOR_CREDIT_OFFICER),
        "pete": staff_user("pete", SENIOR_CREDIT_OFFICER),
        "cora": staff_user("cora", COMPLIANCE),
    }


def _draft(actor: Any, body: str = BODY) -> MessageTemplate:
    return message_template_save(
        kind="margin_call", channel="email", locale="en", subject=SUBJECT, body=body, actor=actor
    )


def test_every_client_message_has_a_published_template_per_channel_and_locale_after_migrate() -> None:
    published = set(
        MessageTemplate.objects.filter(status=MessageTemplateStatus.PUBLISHED).values_list("kind", "channel", "locale")
    )
    assert published == {
        (k, c, loc) for k in CLIENT_NOTIFICATION_KINDS for c in TEMPLATED_CHANNELS for loc in ("en", "de")
    }
    assert len(published) == 15 * 3 * 2  # 15 client kinds (webhook_disabled among them), 3 channels, 2 locales
    # shipped: version 1, nobody's, installed without an event; installing again installs nothing
    assert set(MessageTemplate.objects.values_list("version", "created_by", "published_by")) == {(1, None, None)}
    assert message_templates_ensure() == 0


def test_a_change_is_drafted_submitted_and_published_by_a_second_person_on_the_record() -> None:
    people = _people()
    shipped = MessageTemplate.objects.get(kind="margin_call", channel="email", locale="en")

    # an officer drafts a change (version 2, from the version in use), a colleague edits it, the first submits it
    draft = _draft(people["alice"])
    assert (draft.version, draft.status, draft.based_on, draft.created_by) == (2, "draft", shipped, people["alice"])
    draft = _draft(people["bob"], body=BODY + " Thank you.")
    assert draft.version == 2
    assert draft.body.endswith("Thank you.")
    message_template_submit(template_id=draft.pk, actor=people["alice"])

    # neither author may review it, even as a senior: a senior who wrote it is refused too
    message_template_save(
        kind="offer", channel="sms", locale="de", subject="", body="Angebot {{ proposal_id }}", actor=people["sam"]
    )
    for author in ("alice", "bob"):
        with pytest.raises(PermissionDenied):
            message_template_publish(template_id=draft.pk, actor=people[author])
    own = MessageTemplate.objects.get(kind="offer", channel="sms", locale="de", status="draft")
    message_template_submit(template_id=own.pk, actor=people["sam"])
    with pytest.raises(MessageTemplateReviewError, match="sam wrote or edited offer sms de v2: another person"):
        message_template_publish(template_id=own.pk, actor=people["sam"])
    with pytest.raises(MessageTemplateReviewError):
        message_template_reject(template_id=own.pk, actor=people["sam"], reason="mine")
    with pytest.raises(PermissionDenied):  # compliance reads the templates, and changes nothing
        _draft(people["cora"])

    # a senior who did not write it publishes it: version 2 in use, version 1 retired and kept
    published = message_template_publish(template_id=draft.pk, actor=people["sam"])
    assert (published.status, published.published_by) == ("published", people["sam"])
    assert MessageTemplate.objects.get(pk=shipped.pk).status == MessageTemplateStatus.RETIRED
    assert list(
        MessageTemplate.objects.filter(kind="margin_call", channel="email", locale="en")
        .order_by("version")
        .values_list("version", "status")
    ) == [(1, "retired"), (2, "published")]

    # every step on the trail, with the text and who wrote it
    events = list(AuditEvent.objects.filter(object_type="restructuring.messagetemplate", object_id=draft.pk))
    assert [(e.action, e.actor.username if e.actor else "") for e in events] == [
        ("message_template.edit", "alice"),
        ("message_template.edit", "bob"),
        ("message_template.submit", "alice"),
        ("message_template.publish", "sam"),
    ]
    publish = events[-1].payload
    assert (publish["body"], publish["subject"]) == (BODY + " Thank you.", SUBJECT)
    assert publish["sha256"] == content_sha256(SUBJECT, BODY + " Thank you.")
    assert (publish["version"], publish["retired"], publish["authors"]) == (
        2,
        1,
        sorted([people["alice"].pk, people["bob"].pk]),
    )
    assert (events[-1].from_state, events[-1].to_state) == ("in_review", "published")


def test_a_published_version_never_changes_and_the_next_change_is_a_new_version() -> None:
    people = _people()
    draft = _draft(people["alice"])
    message_template_submit(template_id=draft.pk, actor=people["alice"])
    message_template_publish(template_id=draft.pk, actor=people["sam"])
    with pytest.raises(Conflict):
        message_template_submit(template_id=draft.pk, actor=people["alice"])
    again = _draft(people["bob"], body=BODY + " v3")
    assert (again.pk != draft.pk, again.version, again.based_on_id) == (True, 3, draft.pk)
    assert MessageTemplate.objects.get(pk=draft.pk).body == BODY


def test_a_reviewer_sends_a_draft_back_and_editing_a_draft_in_review_takes_it_out_of_review() -> None:
    people = _people()
    draft = _draft(people["alice"])
    message_template_submit(template_id=draft.pk, actor=people["alice"])
    with pytest.raises(ValidationError, match="needs a reason"):
        message_template_reject(template_id=draft.pk, actor=people["sam"], reason=" ")
    back = message_template_reject(template_id=draft.pk, actor=people["sam"], reason="too harsh")
    assert (back.status, back.review_note) == ("draft", "too harsh")
    with pytest.raises(Conflict):  # not in review: nothing to publish
        message_template_publish(template_id=draft.pk, actor=people["sam"])
    message_template_submit(template_id=draft.pk, actor=people["alice"])
    edited = _draft(people["alice"], body=BODY + " Kindly.")
    assert (edited.pk, edited.status, edited.submitted_at) == (draft.pk, "draft", None)


@pytest.mark.parametrize(
    ("channel", "subject", "body", "field", "problem"),
    [
        ("email", SUBJECT, "{{ password }}", "body", "unknown variable password"),
        ("email", "", BODY, "subject", "a email needs a subject"),
        ("sms", "Hello", "x", "subject", "an SMS has no subject"),
        ("email", SUBJECT, " ", "body", "no text"),
        ("email", SUBJECT, "{% include 'x' %}", "body", "'include'"),
        ("sms", "", "{{ client_name }}" + "x" * 1600, "body", "the sms is 1624 characters long: at most 1600"),
    ],
)
def test_a_template_that_would_not_render_is_refused_naming_the_field(
    channel: str, subject: str, body: str, field: str, problem: str
) -> None:
    alice = staff_user("alice", CREDIT_OFFICER)
    with pytest.raises(ValidationError, match=problem) as refused:
        message_template_save(kind="margin_call", channel=channel, locale="en", subject=subject, body=body, actor=alice)
    assert refused.value.context["field"] == field
    assert not MessageTemplate.objects.exclude(created_by=None).exists()
    assert not AuditEvent.objects.exists()


def test_each_message_records_the_version_it_was_written_from_and_keeps_its_text() -> None:
    # given a client with an email in margin call, told from the shipped version
    people = _people()
    margin_account = account("CALL", btc(), band="margin_call")
    Client.objects.filter(pk=margin_account.client_id).update(email="c@client.example")
    cases_apply_risk(sweep_id=sweep_only().pk)
    case = Case.objects.get(account=margin_account)
    first = Notification.objects.get(case=case, kind="margin_call", channel="email")
    assert first.template is not None
    assert first.template.version == 1

    # when a new version is published and the client is reminded
    draft = message_template_save(
        kind="deadline_reminder",
        channel="email",
        locale="en",
        subject="Reminder v2",
        body="Pay by {{ deadline|datetime }}.",
        actor=people["alice"],
    )
    message_template_submit(template_id=draft.pk, actor=people["alice"])
    message_template_publish(template_id=draft.pk, actor=people["pete"])
    with transaction.atomic():
        notification_enqueue(case=case, kind=NotificationKind.DEADLINE_REMINDER, payload={"deadline": case.deadline})

    # then the reminder names version 2 and says what it says; the call keeps its version and text
    reminder = Notification.objects.get(case=case, kind="deadline_reminder", channel="email")
    assert reminder.template is not None
    assert (reminder.template_id, reminder.template.version, reminder.subject) == (draft.pk, 2, "Reminder v2")
    assert reminder.body.startswith("Pay by ")
    assert Notification.objects.get(pk=first.pk).template_id == first.template_id


@pytest.mark.django_db(transaction=True)
def test_two_people_starting_a_draft_at_once_get_one_draft() -> None:
    alice, bob = staff_user("alice", CREDIT_OFFICER), staff_user("bob", CREDIT_OFFICER)
    outcomes = run_together(lambda: _draft(alice), lambda: _draft(bob, body=BODY + "!"))
    drafts = MessageTemplate.objects.filter(kind="margin_call", channel="email", locale="en", status="draft")
    assert drafts.count() == 1
    errors = [o.error for o in outcomes if o.error is not None]
    assert all(isinstance(e, Conflict) for e in errors)
    assert drafts.get().version == 2
