"""The conversation's forms on the case page: a note, a contact (with the promise made in it, if one was), a
promise to pay. Each POST calls its service and comes back to the case's conversation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.contrib.auth.models import User
from django.forms import Form
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.translation import gettext
from django.views.decorators.http import require_POST

from core.access import staff_view
from core.money import money_text
from core.web import service_run
from restructuring.forms import ContactForm, NoteForm, PromiseForm
from restructuring.models import PromiseToPay
from restructuring.selectors.lookups import case_exists
from restructuring.services.conversation import contact_log_with_promise, note_add, promise_make


def _back(case_id: int) -> HttpResponseRedirect:
    return redirect(reverse("case", args=[case_id]) + "#conversation")


def _actor(request: HttpRequest) -> User:
    return request.user  # type: ignore[return-value]  # staff_view let only a signed-in user through


def _invalid(request: HttpRequest, form: Form) -> None:
    messages.error(
        request,
        " ".join(
            f"{form.fields[name].label or name if name in form.fields else name}: {error}"
            for name, errors in form.errors.items()
            for error in errors
        ),
    )


def _promise_taken(promise: PromiseToPay) -> str:
    """The promise in the reader's words, its amount in its currency (core.money, as the page shows it)."""
    return gettext("Promise to pay %(amount)s by %(due)s taken.") % {
        "amount": money_text(promise.amount, promise.case.account.base_currency),
        "due": promise.due.isoformat(),
    }


def _case_form_action(
    request: HttpRequest, case_id: int, form: Form, act: Callable[[dict[str, Any]], str]
) -> HttpResponse:
    """An entry on a case from a form: the case looked up (404), the form's errors the message, else the service
    called with the form's data; what it did, or its refusal, is the message."""
    case_exists(case_id)
    if not form.is_valid():
        _invalid(request, form)
    else:
        service_run(request, lambda: act(form.cleaned_data))
    return _back(case_id)


@staff_view("restructuring.add_note")
@require_POST
def note_add_view(request: HttpRequest, case_id: int) -> HttpResponse:
    def act(data: dict[str, Any]) -> str:
        note = note_add(
            case_id=case_id,
            text=data["text"],
            remind_on=data["remind_on"],
            corrects_id=data["corrects"],
            actor=_actor(request),
        )
        return gettext("Note %(id)s added.") % {"id": note.pk}

    return _case_form_action(request, case_id, NoteForm(request.POST), act)


@staff_view("restructuring.add_contact")
@require_POST
def contact_log_view(request: HttpRequest, case_id: int) -> HttpResponse:
    form = ContactForm(request.POST)

    def act(data: dict[str, Any]) -> str:
        contact, promise = contact_log_with_promise(
            case_id=case_id,
            channel=data["channel"],
            direction=data["direction"],
            outcome=data["outcome"],
            person=data["person"],
            summary=data["summary"],
            corrects_id=data["corrects"],
            promise=form.promise(),
            actor=_actor(request),
        )
        logged = gettext("%(channel)s logged.") % {"channel": contact.get_channel_display()}
        return f"{logged} {_promise_taken(promise)}" if promise else logged

    return _case_form_action(request, case_id, form, act)


@staff_view("restructuring.add_promisetopay")
@require_POST
def promise_make_view(request: HttpRequest, case_id: int) -> HttpResponse:
    def act(data: dict[str, Any]) -> str:
        promise = promise_make(
            case_id=case_id,
            amount=data["promise_amount"],
            due=data["promise_due"],
            method=data["promise_method"],
            actor=_actor(request),
        )
        return _promise_taken(promise)

    return _case_form_action(request, case_id, PromiseForm(request.POST), act)
