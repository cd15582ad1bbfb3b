"""The restructuring agreements kept (restructuring.models.Agreement): which one a client or an officer may read, and
its bytes, checked against their hash before anyone is given them."""

from __future__ import annotations

import hashlib

from django.core.files.storage import default_storage
from django.db.models import QuerySet
from django.shortcuts import get_object_or_404

from core.errors import Conflict, NotFoundError
from restructuring.models import Agreement
from restructuring.selectors.client import client_proposals


class AgreementCorruptError(Conflict):
    """The kept file of an agreement no longer hashes to its recorded SHA-256: it is given to nobody, and nothing is
    executed on it."""

    code = "agreement_corrupt"


def agreement_content(agreement: Agreement) -> bytes:
    """The kept PDF of `agreement`, exactly the bytes whose hash was recorded (AgreementCorruptError otherwise)."""
    with default_storage.open(agreement.stored_name, "rb") as kept:
        content = kept.read()
    if hashlib.sha256(content).hexdigest() != agreement.sha256:
        raise AgreementCorruptError(
            f"the kept file of agreement {agreement.sha256} (offer {agreement.proposal_id}) does not match its hash: "
            "it is not served; operations must restore it from backup",
            agreement_id=agreement.pk,
        )
    return content


def client_offer_agreement(client_id: int, proposal_id: int) -> Agreement:
    """The agreement an offer of the client's was sent with: not found for another client's offer, one never offered
    to it, or an offer sent before agreements were drawn."""
    proposal = client_proposals(client_id).select_related("agreement").filter(pk=proposal_id).first()
    if proposal is None:
        raise NotFoundError(f"offer {proposal_id} does not exist", proposal_id=proposal_id)
    if proposal.agreement is None:
        raise NotFoundError(f"offer {proposal_id} has no agreement document", proposal_id=proposal_id)
    return proposal.agreement


def case_agreement(case_id: int, agreement_id: int) -> Agreement:
    """An agreement of one of the case's offers (404 for another case's)."""
    return get_object_or_404(Agreement.objects.filter(proposal__case_id=case_id), pk=agreement_id)


def case_agreements(case_id: int) -> QuerySet[Agreement]:
    return Agreement.objects.filter(proposal__case_id=case_id).order_by("-created_at", "-pk")
