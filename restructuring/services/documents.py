"""Documents: a client uploads its own (the API), an officer uploads a case's (the case page). Each is judged by its
content before anything is kept (core/uploads.py: PDF, PNG or JPEG; nothing empty, too large, archived or
executable), then kept through Django's storage API under a name of our own (never the uploaded name), with the
SHA-256 of its bytes and an audit event, in one transaction.

A refused file leaves nothing: no row, no file, no event. The file is written before the row (a row must not name a
file that is not there); if the row's transaction fails, the file is removed again.
"""

from __future__ import annotations

import uuid
from typing import IO

from django.conf import settings
from django.contrib.auth.models import User
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone

from accounts.models import Client
from core.audit import audit_record
from core.errors import NotFoundError, PermissionDenied, ValidationError
from core.uploads import file_inspect
from restructuring.audit_events import DOCUMENT_UPLOAD
from restructuring.models import Case, Document, DocumentKind, DocumentSource
from restructuring.selectors.client import client_cases


def document_upload_by_client(
    *, client_id: int, kind: str, file: IO[bytes], name: str, case_id: int | None = None
) -> Document:
    """A client's own document, on one of its cases or on none (another client's case is not found)."""
    case = None
    if case_id is not None:
        case = client_cases(client_id).filter(pk=case_id).first()
        if case is None:
            raise NotFoundError(f"case {case_id} does not exist", case_id=case_id, field="case")
    client = Client.objects.filter(pk=client_id).first()
    if client is None:
        raise NotFoundError(f"client {client_id} does not exist", client_id=client_id)
    return _upload(client=client, case=case, kind=kind, file=file, name=name, actor=None)


def document_upload_by_officer(*, case_id: int, kind: str, file: IO[bytes], name: str, actor: User) -> Document:
    """A document an officer adds to a case (its client's)."""
    if not actor.has_perm("restructuring.add_document"):
        raise PermissionDenied(f"{actor.get_username()} may not upload documents", permission="add_document")
    case = Case.objects.select_related("account__client").filter(pk=case_id).first()
    if case is None:
        raise NotFoundError(f"case {case_id} does not exist", case_id=case_id)
    return _upload(client=case.account.client, case=case, kind=kind, file=file, name=name, actor=actor)


def _upload(
    *, client: Client, case: Case | None, kind: str, file: IO[bytes], name: str, actor: User | None
) -> Document:
    if kind not in DocumentKind.values:
        raise ValidationError(f"kind {kind!r}: one of {', '.join(DocumentKind.values)}", field="kind")
    inspected = file_inspect(file, name=name, max_bytes=settings.WORKOUT_DOCUMENT_MAX_BYTES)
    now = timezone.now()
    # Our own name: the client's id, the date and a random part; the uploaded name is only the row's label.
    stored = default_storage.save(f"documents/client-{client.pk}/{now:%Y/%m}/{uuid.uuid4().hex}", File(file))
    try:
        with transaction.atomic():
            document = Document.objects.create(
                client=client,
                case=case,
                kind=kind,
                name=inspected.name,
                content_type=inspected.content_type,
                size=inspected.size,
                sha256=inspected.sha256,
                file=stored,
                source=DocumentSource.OFFICER if actor else DocumentSource.CLIENT,
                uploaded_by=actor,
                created_at=now,
            )
            audit_record(
                DOCUMENT_UPLOAD.entry(
                    document,
                    actor=actor,
                    system_actor="" if actor else f"client:{client.code}"[:64],
                    account_id=case.account_id if case else None,
                    payload={
                        "kind": kind,
                        "case_id": case.pk if case else None,
                        "name": inspected.name,
                        "content_type": inspected.content_type,
                        "size": inspected.size,
                        "sha256": inspected.sha256,
                    },
                )
            )
    except BaseException:
        default_storage.delete(stored)
        raise
    return document
