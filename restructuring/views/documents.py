"""A case's documents and agreements on the case page: an officer uploads a document, and downloads the case's
documents and the agreements its offers were sent with, the same bytes the client downloads. An object of another
case is not found under this case's address."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from core.access import staff_view
from core.downloads import file_response
from core.errors import WorkoutError
from core.web import refusal_show
from restructuring.forms import DocumentForm
from restructuring.selectors.agreements import agreement_content, case_agreement
from restructuring.selectors.documents import case_document, document_open
from restructuring.selectors.lookups import case_exists
from restructuring.services.documents import document_upload_by_officer


@staff_view("restructuring.add_document")
@require_POST
def document_upload_view(request: HttpRequest, case_id: int) -> HttpResponse:
    case_exists(case_id)
    form = DocumentForm(request.POST, request.FILES)
    if not form.is_valid():
        problems = (f"{name}: {error}" for name, errors in form.errors.items() for error in errors)
        messages.error(request, " ".join(problems))
    else:
        upload = form.cleaned_data["file"]
        actor: User = request.user  # type: ignore[assignment]  # staff_view let only a signed-in user through
        try:
            document = document_upload_by_officer(
                case_id=case_id, kind=form.cleaned_data["kind"], file=upload, name=upload.name or "", actor=actor
            )
        except WorkoutError as error:
            refusal_show(request, error)
        else:
            added = _("Document %(name)s added (SHA-256 %(sha256)s).")
            messages.success(request, added % {"name": document.name, "sha256": document.sha256})
    return redirect(reverse("case", args=[case_id]) + "#documents")


@staff_view("restructuring.view_case", "restructuring.view_document")
@require_GET
def document_download_view(request: HttpRequest, case_id: int, document_id: int) -> HttpResponseBase:
    document = case_document(case_id, document_id)
    return file_response(
        document_open(document),
        content_type=document.content_type,
        filename=document.name,
        headers={"X-Document-SHA256": document.sha256},
    )


@staff_view("restructuring.view_case", "restructuring.view_proposal")
@require_GET
def agreement_download_view(request: HttpRequest, case_id: int, agreement_id: int) -> HttpResponseBase:
    agreement = case_agreement(case_id, agreement_id)
    return file_response(
        agreement_content(agreement),
        content_type="application/pdf",
        filename=f"agreement-offer-{agreement.proposal_id}.pdf",
        headers={"X-Agreement-SHA256": agreement.sha256},
    )
