"""The restructuring agreement of an offer: drawn as a PDF when the offer is sent (core/pdf.py), kept through
Django's storage API, recorded with the SHA-256 of the bytes kept (restructuring.models.Agreement).

`agreement_issue` runs inside the sender's transaction, the proposal locked, so that the offer's audit event can
name the hash: the file is written first and removed again if that transaction fails in the service
(`agreement_files_discard`). A rollback of a transaction around the service's leaves the file behind, unnamed by
any row, and harmless (its name is new: nothing reads it).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from core.pdf import pdf_render
from restructuring.models import Agreement, Proposal
from restructuring.selectors.agreement_document import AGREEMENT_TEMPLATE, agreement_context
from restructuring.terms import terms_hash


def agreement_language() -> str:
    """The language agreements are drawn in: the site's (LANGUAGE_CODE). Clients have no language of their own yet."""
    return settings.LANGUAGE_CODE


def agreement_issue(proposal: Proposal, *, now: datetime) -> Agreement:
    """Draw and keep the agreement of `proposal` as it is being offered (offered_at and expires_at set, the row
    locked by the caller); the stored bytes' SHA-256 is the agreement's."""
    language = agreement_language()
    context = agreement_context(proposal, language=language, now=now)
    rendered = pdf_render(AGREEMENT_TEMPLATE, context, language=language)
    wanted = f"agreements/case-{proposal.case_id}/offer-{proposal.pk}-v{proposal.version}-{rendered.sha256[:16]}.pdf"
    name = default_storage.save(wanted, ContentFile(rendered.pdf))
    try:
        return Agreement.objects.create(
            proposal=proposal,
            version=proposal.version,
            terms_hash=proposal.terms_hash or terms_hash(proposal.terms),
            sha256=rendered.sha256,
            file=name,
            size=len(rendered.pdf),
            language=language,
            created_at=now,
        )
    except BaseException:
        default_storage.delete(name)
        raise


def agreement_files_discard(agreements: Iterable[Agreement]) -> None:
    """Remove the files of agreements whose rows were rolled back."""
    for agreement in agreements:
        default_storage.delete(agreement.stored_name)
