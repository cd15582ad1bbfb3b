"""An uploaded file, judged by what it holds, not by what it is called: its type told from its content (the
`filetype` library's magic numbers), its size, its SHA-256, and a name safe to keep and to offer for download.

Accepted: PDF, PNG and JPEG. Refused, each with its own code and a message naming the problem (field `file`):
- an empty file (`file_empty`) or one above the size limit (`file_too_large`);
- an archive (`file_is_archive`): zip, tar, gzip, 7z, rar and the rest, Office and OpenDocument files (zip
  containers: a .docx is a zip), and any file that is also a zip (a PDF or an image with a zip appended: the zip's
  directory is at its end, where a reader of the start never looks);
- an executable (`file_is_executable`): Windows (MZ), ELF, WebAssembly, Flash, a script (`#!`);
- anything else, or a content nobody recognises (`file_type_refused`).

The name: the last part of the path the client sent (`/` or `\\`), printable characters only, through Django's
`get_valid_filename` (spaces to `_`, nothing but letters, digits, `-`, `_` and `.`), no leading dot, at most
NAME_MAX_LENGTH characters, and an extension that says what the content is (`report.exe` holding a PDF is kept as
`report.exe.pdf`). It is a label: a stored file's path never contains it.
"""

from __future__ import annotations

import hashlib
import re
import zipfile
from dataclasses import dataclass
from typing import IO

import filetype
from django.core.exceptions import SuspiciousFileOperation
from django.utils.text import get_valid_filename

from core.errors import Invalid

NAME_MAX_LENGTH = 100
_HEAD_BYTES = 8192  # what filetype reads to tell a type

# The content types accepted, with the extensions a name of each may end in (the first is added when it has none).
ACCEPTED: dict[str, tuple[str, ...]] = {
    "application/pdf": ("pdf",),
    "image/png": ("png",),
    "image/jpeg": ("jpg", "jpeg"),
}
_ARCHIVES = frozenset(
    {
        "zip", "tar", "rar", "gz", "bz2", "7z", "xz", "br", "lz", "lz4", "lzo", "zst", "Z", "ar", "deb", "rpm",
        "cab", "crx", "epub", "docx", "xlsx", "pptx", "odt", "ods", "odp",
    }
)  # fmt: skip
_EXECUTABLES = frozenset({"exe", "elf", "wasm", "swf", "nes"})


class FileRefusedError(Invalid):
    """An uploaded file is refused: nothing of it is kept."""

    code = "file_refused"

    def __init__(self, message: str) -> None:
        super().__init__(message, field="file")


class FileEmptyError(FileRefusedError):
    code = "file_empty"


class FileTooLargeError(FileRefusedError):
    code = "file_too_large"


class FileArchiveError(FileRefusedError):
    code = "file_is_archive"


class FileExecutableError(FileRefusedError):
    code = "file_is_executable"


class FileTypeError(FileRefusedError):
    code = "file_type_refused"


@dataclass(frozen=True)
class InspectedFile:
    name: str  # safe (module docstring)
    content_type: str  # one of ACCEPTED, told from the content
    size: int
    sha256: str


def file_inspect(file: IO[bytes], *, name: str, max_bytes: int) -> InspectedFile:
    """Judge an uploaded file (module docstring): its type, size, hash and safe name; FileRefusedError otherwise.
    `file` must be seekable (Django's uploaded files are); it is read at most once past `max_bytes` and left at its
    start."""
    shown = safe_name(name, "")[:60] or "the file"
    file.seek(0)
    digest = hashlib.sha256()
    size = 0
    while chunk := file.read(1 << 16):
        size += len(chunk)
        if size > max_bytes:
            raise FileTooLargeError(f"{shown} is larger than {max_bytes} bytes, the most a document may be")
        digest.update(chunk)
    if size == 0:
        raise FileEmptyError(f"{shown} is empty (0 bytes): upload the document itself")
    file.seek(0)
    head = file.read(_HEAD_BYTES)
    kind = filetype.guess(head)
    if head.startswith(b"#!"):
        raise FileExecutableError(f"{shown} is a script (it starts with #!): executables are refused")
    if kind is not None and kind.extension in _EXECUTABLES:
        raise FileExecutableError(f"{shown} is an executable ({kind.extension}): executables are refused")
    if kind is not None and kind.extension in _ARCHIVES:
        raise FileArchiveError(
            f"{shown} is an archive ({kind.extension}): archives are refused; upload each document as a PDF, PNG "
            "or JPEG"
        )
    if kind is None or kind.mime not in ACCEPTED:
        what = f"{kind.mime} ({kind.extension})" if kind is not None else "of a type not recognised"
        raise FileTypeError(f"{shown} is {what}: a document must be a PDF, PNG or JPEG")
    file.seek(0)
    if zipfile.is_zipfile(file):
        raise FileArchiveError(f"{shown} is a {kind.extension} that is also a zip archive: archives are refused")
    file.seek(0)
    return InspectedFile(
        name=safe_name(name, ACCEPTED[kind.mime][0], ACCEPTED[kind.mime]),
        content_type=kind.mime,
        size=size,
        sha256=digest.hexdigest(),
    )


_PATH_SEPARATORS = re.compile(r"[\\/]")


def safe_name(raw: str, extension: str, allowed: tuple[str, ...] = ()) -> str:
    """The name to keep for an uploaded file (module docstring): ending in `.extension` unless it already ends in
    one of `allowed`; "document" when nothing of it is usable."""
    last = _PATH_SEPARATORS.split(raw or "")[-1]
    printable = "".join(ch for ch in last if ch.isprintable())
    try:
        name = get_valid_filename(printable).lstrip(".")
    except SuspiciousFileOperation:  # nothing left, or only dots
        name = ""
    stem, dot, ext = name.rpartition(".")
    if not dot:
        stem, ext = name, ""
    if extension and ext.lower() not in allowed:
        stem, ext = name, extension
    stem = stem.strip("._-")[: NAME_MAX_LENGTH - len(ext) - 1] if ext else stem.strip("._-")[:NAME_MAX_LENGTH]
    stem = stem or "document"
    return f"{stem}.{ext}" if ext else stem
