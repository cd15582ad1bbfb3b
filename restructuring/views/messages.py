"""The message pages: the templates of client messages (every (kind, channel, locale) with its version in use and
its draft; a template's page with its versions, its draft's editor, a preview on a real case, and the review
actions), and a letter's PDF as it was stored. Officers edit and submit (restructuring.change_messagetemplate), a
senior credit officer who did not write it publishes or sends it back (restructuring.publish_messagetemplate),
compliance reads. Every change is restructuring.services.message_templates'."""

from __future__ import annotations

from typing import Any, cast

from django import forms
from django.contrib import messages
from django.contrib.auth.models import User
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_GET, require_POST

from core.access import staff_view
from core.errors import WorkoutError
from core.web import refusal_show
from restructuring.message_catalogue import LEGALLY_REQUIRED, variables_of
from restructuring.models import (
    CLIENT_NOTIFICATION_KINDS,
    TEMPLATED_CHANNELS,
    MessageTemplateStatus,
    Notification,
    NotificationChannel,
    NotificationKind,
)
from restructuring.selectors.messages import (
    message_preview_context,
    message_template_get,
    message_template_versions,
    message_templates_overview,
)
from restructuring.services.message_templates import (
    message_template_authors,
    message_template_compile,
    message_template_publish,
    message_template_reject,
    message_template_save,
    message_template_submit,
)
from restructuring.services.messages import LetterTamperedError, letter_open

VIEW = "restructuring.view_messagetemplate"
CHANGE = "restructuring.change_messagetemplate"
PUBLISH = "restructuring.publish_messagetemplate"


class TemplateForm(forms.Form):
    subject = forms.CharField(label=_("Subject"), max_length=300, required=False)
    body = forms.CharField(label=_("Text"), widget=forms.Textarea(attrs={"rows": 14, "cols": 90}), max_length=10_000)


class PreviewForm(TemplateForm):
    case = forms.IntegerField(label=_("Case"), min_value=1)


class ReasonForm(forms.Form):
    reason = forms.CharField(label=_("Why"), max_length=2000, widget=forms.TextInput(attrs={"size": 60}))


def _user(request: HttpRequest) -> User:
    return cast(User, request.user)  # staff_view let only a signed-in user through


def _slot(kind: str, channel: str, locale: str) -> None:
    if kind not in CLIENT_NOTIFICATION_KINDS or channel not in TEMPLATED_CHANNELS:
        raise Http404("no such message")
    from django.conf import settings

    if locale not in {code for code, _name in settings.LANGUAGES}:
        raise Http404("no such language")


def _back(kind: str, channel: str, locale: str) -> HttpResponse:
    return redirect(reverse("message-template", args=[kind, channel, locale]))


@require_GET
@staff_view(VIEW)
def templates_index(request: HttpRequest) -> HttpResponse:
    slots = message_templates_overview()
    kinds = [
        (NotificationKind(kind), kind in LEGALLY_REQUIRED, [s for s in slots if s.kind == kind])
        for kind in CLIENT_NOTIFICATION_KINDS
    ]
    return render(request, "messages/templates.html", {"kinds": kinds})


@require_GET
@staff_view(VIEW)
def template_detail(request: HttpRequest, kind: str, channel: str, locale: str) -> HttpResponse:
    _slot(kind, channel, locale)
    return render(request, "messages/template.html", _detail_context(request, kind, channel, locale))


def _detail_context(
    request: HttpRequest, kind: str, channel: str, locale: str, form: TemplateForm | None = None
) -> dict[str, Any]:
    versions = message_template_versions(kind, channel, locale)
    published = next((v for v in versions if v.status == MessageTemplateStatus.PUBLISHED), None)
    draft = next(
        (v for v in versions if v.status in (MessageTemplateStatus.DRAFT, MessageTemplateStatus.IN_REVIEW)), None
    )
    source = draft or published
    if form is None:
        form = TemplateForm(initial={"subject": source.subject, "body": source.body} if source else None)
    authors = message_template_authors(draft) if draft else set()
    user = _user(request)
    return {
        "kind": NotificationKind(kind),
        "channel": NotificationChannel(channel),
        "locale": locale,
        "legal": kind in LEGALLY_REQUIRED,
        "variables": sorted(variables_of(kind).items()),
        "versions": versions,
        "published": published,
        "draft": draft,
        "form": form,
        "reason_form": ReasonForm(),
        "is_author": user.pk in authors,
        "html": channel == NotificationChannel.LETTER,
    }


@require_POST
@staff_view(VIEW, CHANGE)
def template_save(request: HttpRequest, kind: str, channel: str, locale: str) -> HttpResponse:
    _slot(kind, channel, locale)
    form = TemplateForm(request.POST)
    if form.is_valid():
        try:
            draft = message_template_save(
                kind=kind,
                channel=channel,
                locale=locale,
                subject=form.cleaned_data["subject"],
                body=form.cleaned_data["body"],
                actor=_user(request),
            )
        except WorkoutError as error:
            field = error.context.get("field")
            form.add_error(field if field in form.fields else None, str(error))
        else:
            messages.success(request, f"Draft v{draft.version} saved: submit it for review when it is ready.")
            return _back(kind, channel, locale)
    return render(request, "messages/template.html", _detail_context(request, kind, channel, locale, form), status=400)


def _review_action(request: HttpRequest, template_id: int, act: Any, done: str) -> HttpResponse:
    template = message_template_get(template_id)
    try:
        act(template)
    except WorkoutError as error:
        refusal_show(request, error)
    else:
        messages.success(request, done.format(version=template.version))
    return _back(template.kind, template.channel, template.locale)


@require_POST
@staff_view(VIEW, CHANGE)
def template_submit(request: HttpRequest, template_id: int) -> HttpResponse:
    return _review_action(
        request,
        template_id,
        lambda t: message_template_submit(template_id=t.pk, actor=_user(request)),
        "Draft v{version} is in review: another person publishes it.",
    )


@require_POST
@staff_view(VIEW, PUBLISH)
def template_publish(request: HttpRequest, template_id: int) -> HttpResponse:
    return _review_action(
        request,
        template_id,
        lambda t: message_template_publish(template_id=t.pk, actor=_user(request)),
        "Version {version} is published: messages are written from it from now on.",
    )


@require_POST
@staff_view(VIEW, PUBLISH)
def template_reject(request: HttpRequest, template_id: int) -> HttpResponse:
    form = ReasonForm(request.POST)
    reason = form.cleaned_data["reason"] if form.is_valid() else ""
    return _review_action(
        request,
        template_id,
        lambda t: message_template_reject(template_id=t.pk, actor=_user(request), reason=reason),
        "Version {version} is sent back to its authors.",
    )


@require_POST
@staff_view(VIEW, "restructuring.view_case")
def template_preview(request: HttpRequest, kind: str, channel: str, locale: str) -> HttpResponse:
    """The text in the editor, rendered on a real case (htmx): computes, writes nothing."""
    _slot(kind, channel, locale)
    form = PreviewForm(request.POST)
    context: dict[str, Any] = {"channel": channel}
    if not form.is_valid():
        context["problem"] = "; ".join(
            f"{name}: {' '.join(str(e) for e in errors)}" for name, errors in form.errors.items()
        )
        return render(request, "messages/_preview.html", context)
    data = form.cleaned_data
    preview = message_preview_context(data["case"], kind)
    try:
        compiled = message_template_compile(kind=kind, channel=channel, subject=data["subject"], body=data["body"])
    except WorkoutError as error:
        context["problem"] = str(error)
        return render(request, "messages/_preview.html", context)
    subject, body = compiled.render(preview.context, locale=locale, time_zone=preview.contact.zone)
    context |= {"preview": preview, "subject": subject, "body": body}
    return render(request, "messages/_preview.html", context)


@require_GET
@staff_view("restructuring.view_case")
def letter_download(request: HttpRequest, notification_id: int) -> HttpResponse:
    """A letter's PDF as it was stored when it was sent, checked against the SHA-256 recorded then."""
    notification = get_object_or_404(Notification, pk=notification_id, channel=NotificationChannel.LETTER)
    if not notification.letter_sha256:
        raise Http404("this letter has not been produced yet")
    try:
        data = letter_open(notification)
    except LetterTamperedError as error:
        return HttpResponse(str(error), status=409, content_type="text/plain; charset=utf-8")
    except FileNotFoundError:
        raise Http404("the stored letter is missing") from None
    response = FileResponse(iter([data]), content_type="application/pdf")
    response["Content-Disposition"] = f'inline; filename="letter-{notification.pk}.pdf"'
    response["X-Letter-SHA256"] = notification.letter_sha256
    return cast(HttpResponse, response)
