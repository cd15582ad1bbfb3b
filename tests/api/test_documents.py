"""Documents through the API (issue 18): a client uploads its own (multipart), judged by content; each refused file
is a 400 naming the problem and leaves nothing (no row, no file, no event); a kept one has its SHA-256 and its audit
event; lists, metadata and contents follow the ownership rules (another client's: 404)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from django.conf import settings
from django.core.files.storage import default_storage
from django.test import override_settings

from core.models import AuditEvent
from restructuring.models import Document
from tests.api.conftest import World
from tests.documents import JPEG, PDF, PNG, REFUSED

pytestmark = pytest.mark.django_db

DOCUMENTS = "/api/v1/documents/"


def _kept_files() -> set[str]:
    root = Path(settings.MEDIA_ROOT)
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and "documents" in p.parts}


def test_a_client_uploads_a_document_kept_with_its_hash_and_its_event(world: World) -> None:
    api = world.api("client_a")

    response = api.upload(
        DOCUMENTS, "../../etc/My Funds.pdf", PDF, fields={"kind": "proof_of_funds", "case": world.a_case.pk}
    )

    assert response.status_code == 201, response.json()
    body = response.json()
    document = Document.objects.get(pk=body["id"])
    assert body == {
        "id": document.pk,
        "kind": "proof_of_funds",
        "case": world.a_case.pk,
        "name": "My_Funds.pdf",  # the last part of the path, made safe
        "content_type": "application/pdf",
        "size": len(PDF),
        "sha256": hashlib.sha256(PDF).hexdigest(),
        "source": "client",
        "created_at": body["created_at"],
    }
    assert (document.client_id, document.uploaded_by_id) == (world.a.pk, None)
    # kept under a name of our own, never the client's, and exactly the bytes sent
    assert document.stored_name.startswith(f"documents/client-{world.a.pk}/")
    assert "Funds" not in document.stored_name
    assert default_storage.open(document.stored_name, "rb").read() == PDF
    event = AuditEvent.objects.get(action="document.upload", object_id=document.pk)
    assert (event.system_actor, event.account_id) == (f"client:{world.a.code}", world.a_case.account_id)
    assert event.payload == {
        "kind": "proof_of_funds",
        "case_id": world.a_case.pk,
        "name": "My_Funds.pdf",
        "content_type": "application/pdf",
        "size": len(PDF),
        "sha256": hashlib.sha256(PDF).hexdigest(),
    }
    # on the client's timeline of its case, as a document
    timeline = api.get(f"/api/v1/cases/{world.a_case.pk}/").json()["timeline"]
    assert {"action": "document.upload", "object": "document", "object_id": document.pk, "by": "you"}.items() <= next(
        e for e in timeline if e["action"] == "document.upload" and e["object_id"] == document.pk
    ).items()


def test_images_are_documents_too_and_a_name_that_lies_about_its_type_is_corrected(world: World) -> None:
    api = world.api("client_a")

    png = api.upload(DOCUMENTS, "passport.png", PNG, fields={"kind": "identification"})
    jpeg = api.upload(DOCUMENTS, "passport.exe", JPEG, fields={"kind": "identification"})

    assert png.status_code == 201
    assert (png.json()["content_type"], png.json()["name"], png.json()["case"]) == ("image/png", "passport.png", None)
    assert jpeg.status_code == 201
    assert (jpeg.json()["content_type"], jpeg.json()["name"]) == ("image/jpeg", "passport.exe.jpg")


@pytest.mark.parametrize("problem", sorted(REFUSED))
def test_a_refused_file_is_a_400_naming_the_problem_and_nothing_is_kept(world: World, problem: str) -> None:
    content, name, code, words = REFUSED[problem]
    api = world.api("client_a")
    files, rows, events = _kept_files(), Document.objects.count(), AuditEvent.objects.count()

    response = api.upload(DOCUMENTS, name, content, fields={"kind": "proof_of_funds", "case": world.a_case.pk})

    assert response.status_code == 400, response.json()
    error = response.json()["error"]
    assert (error["code"], error["field"]) == (code, "file")
    assert words in error["message"]
    assert (_kept_files(), Document.objects.count(), AuditEvent.objects.count()) == (files, rows, events)


def test_a_file_over_the_limit_is_refused_and_so_is_a_body_far_over_it(world: World) -> None:
    api = world.api("client_a")
    files, rows = _kept_files(), Document.objects.count()
    with override_settings(WORKOUT_DOCUMENT_MAX_BYTES=len(PDF) - 1):
        over = api.upload(DOCUMENTS, "funds.pdf", PDF, fields={"kind": "proof_of_funds"})
        exact = api.upload(DOCUMENTS, "funds.pdf", PDF[:-1], fields={"kind": "proof_of_funds"})  # the last newline off
    with override_settings(WORKOUT_DOCUMENT_MAX_BYTES=1000):
        # refused from its Content-Length, before the body is read
        huge = api.upload(DOCUMENTS, "funds.pdf", PDF + b" " * 200_000, fields={"kind": "proof_of_funds"})

    assert over.status_code == 400
    assert over.json()["error"] == {
        "code": "file_too_large",
        "message": f"funds.pdf is larger than {len(PDF) - 1} bytes, the most a document may be",
        "field": "file",
    }
    assert huge.status_code == 400
    assert huge.json()["error"]["code"] == "file_too_large"
    assert "a document may be at most 1000 bytes" in huge.json()["error"]["message"]
    assert exact.status_code == 201  # at the limit: kept
    assert (_kept_files() - files, Document.objects.count()) == ({Document.objects.latest("pk").stored_name}, rows + 1)


def test_the_form_is_checked_and_another_clients_case_is_not_found(world: World) -> None:
    api = world.api("client_a")
    files, rows = _kept_files(), Document.objects.count()

    bad_kind = api.upload(DOCUMENTS, "funds.pdf", PDF, fields={"kind": "passport"})
    foreign_case = api.upload(DOCUMENTS, "funds.pdf", PDF, fields={"kind": "other", "case": world.b_case.pk})
    unknown_field = api.upload(DOCUMENTS, "funds.pdf", PDF, fields={"kind": "other", "owner": world.b.pk})
    no_file = api.http.post(DOCUMENTS, {"kind": "other"}, headers={**api._headers("k-nofile")}, secure=True)
    as_json = api.post(DOCUMENTS, {"kind": "other"})

    assert (bad_kind.status_code, bad_kind.json()["error"]["field"]) == (400, "kind")
    assert foreign_case.status_code == 404
    assert foreign_case.json()["error"] == {
        "code": "not_found",
        "message": f"case {world.b_case.pk} does not exist",
        "field": "case",
    }
    assert (unknown_field.status_code, unknown_field.json()["error"]["code"]) == (400, "unknown_field")
    assert (no_file.status_code, no_file.json()["error"]["field"]) == (400, "file")
    assert as_json.status_code == 415
    assert (_kept_files(), Document.objects.count()) == (files, rows)


def test_lists_metadata_and_contents_are_the_callers_own(world: World) -> None:
    a, b = world.api("client_a"), world.api("client_b")

    listed = a.get(DOCUMENTS).json()["results"]
    detail = a.get(f"{DOCUMENTS}{world.a_document.pk}/")
    content = a.get(f"{DOCUMENTS}{world.a_document.pk}/content/")

    assert [d["id"] for d in listed] == [world.a_document.pk]
    assert detail.json()["sha256"] == hashlib.sha256(PDF).hexdigest()
    assert (content.status_code, content["Content-Type"]) == (200, "application/pdf")
    assert b"".join(content.streaming_content) == PDF  # a FileResponse
    assert content["Content-Disposition"] == 'attachment; filename="funds.pdf"'
    assert content["X-Document-SHA256"] == hashlib.sha256(PDF).hexdigest()
    for path in (f"{DOCUMENTS}{world.b_document.pk}/", f"{DOCUMENTS}{world.b_document.pk}/content/"):
        refused = a.get(path)
        assert refused.status_code == 404
        assert refused["Content-Type"].startswith("application/json")
    assert [d["id"] for d in b.get(DOCUMENTS).json()["results"]] == [world.b_document.pk]
    assert b.get(f"{DOCUMENTS}{world.a_document.pk}/content/").status_code == 404
    # staff tokens are not clients
    assert world.api("operator").get(DOCUMENTS).status_code == 403


def test_an_upload_retried_with_its_key_is_kept_once(world: World) -> None:
    api = world.api("client_a")
    rows = Document.objects.count()

    first = api.upload(DOCUMENTS, "funds.pdf", PDF, key="upload-1", fields={"kind": "proof_of_funds"})
    again = api.upload(DOCUMENTS, "funds.pdf", PDF, key="upload-1", fields={"kind": "proof_of_funds"})
    other = api.upload(DOCUMENTS, "funds.png", PNG, key="upload-1", fields={"kind": "proof_of_funds"})

    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert (other.status_code, other.json()["error"]["code"]) == (422, "idempotency_key_reused")
    assert Document.objects.count() == rows + 1
    assert AuditEvent.objects.filter(action="document.upload", object_id=first.json()["id"]).count() == 1
