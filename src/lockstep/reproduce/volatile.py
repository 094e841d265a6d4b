"""Volatile bytes inside output files: embedded timestamps and ids that differ on every write.

``normalize`` returns a file's bytes with the known volatile parts blanked out,
and names what it blanked, so two PDFs that differ only in ``/CreationDate``
compare equal and the verdict can say why. Formats: PDF (dates, ``/ID``, XMP
dates), PNG (``tIME`` and text chunks), ZIP (member times and extra fields;
``.pt`` checkpoints, ``.npz``, ``.docx``... are zips), gzip (header time and
name), SVG/HTML/XML (generator comments and ``<meta>``, metadata dates).
"""

from __future__ import annotations

import io
import re
import struct
import zlib
from collections.abc import Callable

Normalizer = Callable[[bytes], tuple[bytes, list[str]]]

_PDF_PATTERNS = (
    (re.compile(rb"/(CreationDate|ModDate)\s*\((?:[^()\\]|\\.)*\)"), "PDF /{} date"),
    (re.compile(rb"/(ID)\s*\[\s*<[0-9A-Fa-f]*>\s*<[0-9A-Fa-f]*>\s*\]"), "PDF /{}"),
    (
        re.compile(rb"<(xmp:CreateDate|xmp:ModifyDate|xmp:MetadataDate)>[^<]*</"),
        "PDF XMP {}",
    ),
    (re.compile(rb"(xmpMM:DocumentID|xmpMM:InstanceID)>[^<]*<"), "PDF XMP {}"),
)
_MARKUP_PATTERNS = (
    (
        re.compile(
            rb"<!--(?:(?!-->).)*(?:[Cc]reated|[Gg]enerat|[Pp]roduced)(?:(?!-->).)*-->", re.S
        ),
        "generator comment",
    ),
    (
        re.compile(rb"<meta\s+name=[\"'](?:generator|date|created)[\"'][^>]*>", re.I),
        "generator <meta>",
    ),
    (re.compile(rb"<(dc:date)>[^<]*</"), "SVG metadata {}"),
)
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_VOLATILE = {b"tIME", b"tEXt", b"zTXt", b"iTXt"}


def _blank(
    data: bytes, patterns: tuple[tuple[re.Pattern[bytes], str], ...]
) -> tuple[bytes, list[str]]:
    found: list[str] = []
    for pattern, label in patterns:

        def replace(match: re.Match[bytes], label: str = label) -> bytes:
            name = match.group(1).decode(errors="replace") if match.groups() else ""
            described = label.format(name)
            if described not in found:
                found.append(described)
            return b"<volatile:" + described.encode() + b">"

        data = pattern.sub(replace, data)
    return data, found


def _pdf(data: bytes) -> tuple[bytes, list[str]]:
    if not data.startswith(b"%PDF"):
        return data, []
    blanked, found = _blank(data, _PDF_PATTERNS)
    if found:
        # The cross-reference table holds byte offsets, which shift when a date's length does.
        blanked = re.sub(rb"xref\s.*?trailer", b"xref <volatile> trailer", blanked, flags=re.S)
        blanked = re.sub(rb"startxref\s+\d+", b"startxref <volatile>", blanked)
    return blanked, found


def _png(data: bytes) -> tuple[bytes, list[str]]:
    if not data.startswith(_PNG_SIGNATURE):
        return data, []
    kept = [_PNG_SIGNATURE]
    found: list[str] = []
    position = len(_PNG_SIGNATURE)
    while position + 8 <= len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        end = position + 12 + length
        if end > len(data):
            return data, []  # truncated: compare the raw bytes
        if kind in _PNG_VOLATILE:
            label = f"PNG {kind.decode()} chunk"
            if label not in found:
                found.append(label)
        else:
            kept.append(data[position:end])
        position = end
    return b"".join(kept), found


def _zip(data: bytes) -> tuple[bytes, list[str]]:
    if not data.startswith(b"PK\x03\x04"):
        return data, []
    import zipfile

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
            canonical = [
                (m.filename, m.file_size, m.CRC, archive.read(m.filename)) for m in members
            ]
            times = {m.date_time for m in members}
    except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError):
        return data, []
    out = io.BytesIO()
    for name, size, crc, content in canonical:
        out.write(struct.pack(">QQI", len(name), size, crc) + name.encode() + content)
    # Only worth naming when the archive's raw bytes could differ by member times at all.
    return out.getvalue(), (["ZIP member times and extra fields"] if times else [])


def _gzip(data: bytes) -> tuple[bytes, list[str]]:
    if not data.startswith(b"\x1f\x8b") or len(data) < 10:
        return data, []
    try:
        content = zlib.decompress(data, 16 + zlib.MAX_WBITS)
    except zlib.error:
        return data, []
    return b"gzip:" + content, ["gzip header time and name"]


def _markup(data: bytes) -> tuple[bytes, list[str]]:
    return _blank(data, _MARKUP_PATTERNS)


_BY_SUFFIX: dict[str, Normalizer] = {
    ".pdf": _pdf,
    ".png": _png,
    ".zip": _zip,
    ".pt": _zip,
    ".pth": _zip,
    ".npz": _zip,
    ".jar": _zip,
    ".whl": _zip,
    ".docx": _zip,
    ".xlsx": _zip,
    ".pptx": _zip,
    ".odt": _zip,
    ".gz": _gzip,
    ".tgz": _gzip,
    ".svg": _markup,
    ".html": _markup,
    ".htm": _markup,
    ".xml": _markup,
}


def normalize(suffix: str, data: bytes) -> tuple[bytes, list[str]]:
    """The bytes with known volatile parts blanked, and what was blanked (empty: untouched)."""
    normalizer = _BY_SUFFIX.get(suffix.lower())
    if normalizer is None:
        return data, []
    return normalizer(data)


def equal_but_volatile(suffix: str, a: bytes, b: bytes) -> list[str] | None:
    """What made two different files differ when only volatile parts did; None otherwise."""
    left, found_a = normalize(suffix, a)
    right, found_b = normalize(suffix, b)
    if left != right:
        return None
    return sorted(set(found_a) | set(found_b)) or None
