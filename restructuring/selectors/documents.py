"""Documents as their readers may see them: a client its own (another client's are not found), an officer a case's
(one of another case is not found under this case's address)."""

from __future__ import annotations

from typing import IO

from django.core.files.storage import default_storage
from django.db.models import QuerySet
from django.shortcuts import get_object_or_404

from restructuring.models import Document


def client_documents(client_id: int) -> QuerySet[Document]:
    return Document.objects.filter(client_id=client_id)


def case_documents(case_id: int) -> QuerySet[Document]:
    return Document.objects.filter(case_id=case_id).select_related("uploaded_by").order_by("-created_at", "-pk")


def case_document(case_id: int, document_id: int) -> Document:
    return get_object_or_404(Document.objects.filter(case_id=case_id), pk=document_id)


def document_open(document: Document) -> IO[bytes]:
    """The kept file of a document, open for reading (the caller closes it: a FileResponse does)."""
    return default_storage.open(document.stored_name, "rb")
