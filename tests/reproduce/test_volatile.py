"""Embedded timestamps and ids in output files are ignored when comparing, and named."""

from __future__ import annotations

import gzip
import io
import struct
import zipfile
import zlib

from lockstep.reproduce.compare import DIFFERS, IDENTICAL, Tolerance, compare_files
from lockstep.reproduce.volatile import equal_but_volatile


def pdf(date: str, ident: str, text: str = "hello") -> bytes:
    body = (
        f"%PDF-1.4\n1 0 obj << /Producer (test) /CreationDate (D:{date}) >> endobj\n"
        f"2 0 obj << /Length 5 >> stream\n{text}\nendstream endobj\n"
    )
    xref_at = len(body)
    return (
        body + f"xref\n0 3\n0000000000 65535 f \ntrailer << /ID [<{ident}><{ident}>] >>\n"
        f"startxref\n{xref_at}\n%%EOF\n"
    ).encode()


def png(chunks: list[tuple[bytes, bytes]]) -> bytes:
    out = b"\x89PNG\r\n\x1a\n"
    for kind, data in chunks:
        out += struct.pack(">I", len(data)) + kind + data
        out += struct.pack(">I", zlib.crc32(kind + data))
    return out


def zipped(members: dict[str, bytes], when: tuple[int, ...]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(zipfile.ZipInfo(name, date_time=when), data)  # type: ignore[arg-type]
    return buffer.getvalue()


def test_pdf_dates_and_ids_are_volatile_but_content_is_not() -> None:
    a = pdf("20261130101010Z", "AB12")
    b = pdf("20261201235959+01'00'", "CD34EF")
    found = equal_but_volatile(".pdf", a, b)
    assert found is not None and "PDF /CreationDate date" in found and "PDF /ID" in found
    assert equal_but_volatile(".pdf", a, pdf("20261201235959Z", "CD34", text="world")) is None
    finding = compare_files("plots/loss.pdf", a, b, Tolerance())
    assert finding.status == IDENTICAL and "CreationDate" in finding.detail


def test_png_time_and_text_chunks_are_volatile() -> None:
    ihdr = (b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0))
    idat = (b"IDAT", zlib.compress(b"\x00\x00"))
    end = (b"IEND", b"")
    a = png(
        [ihdr, (b"tIME", b"\x07\xea\x0b\x1e\x0a\x00\x00"), (b"tEXt", b"date\x00now"), idat, end]
    )
    b = png([ihdr, (b"tIME", b"\x07\xea\x0c\x01\x0b\x00\x00"), idat, end])
    assert equal_but_volatile(".png", a, b) == ["PNG tEXt chunk", "PNG tIME chunk"]
    other = png([ihdr, (b"IDAT", zlib.compress(b"\x00\x01")), end])
    assert equal_but_volatile(".png", a, other) is None


def test_zip_member_times_and_gzip_headers_are_volatile() -> None:
    a = zipped({"a.txt": b"1", "b.txt": b"2"}, (2026, 11, 30, 10, 0, 0))
    b = zipped({"a.txt": b"1", "b.txt": b"2"}, (2026, 12, 1, 23, 59, 58))
    assert a != b
    assert equal_but_volatile(".zip", a, b) == ["ZIP member times and extra fields"]
    assert (
        equal_but_volatile(".zip", a, zipped({"a.txt": b"1", "b.txt": b"3"}, (2026, 1, 1, 0, 0, 0)))
        is None
    )
    g1 = gzip.compress(b"rows", mtime=1)
    g2 = gzip.compress(b"rows", mtime=2)
    assert g1 != g2 and equal_but_volatile(".gz", g1, g2) == ["gzip header time and name"]


def test_svg_generator_comments_and_metadata_dates() -> None:
    def svg(day: str) -> bytes:
        return (
            f"<svg><!-- Created with matplotlib 3.9, 2026-11-{day} -->"
            f'<dc:date>2026-11-{day}</dc:date><path d="M0 0"/></svg>'
        ).encode()

    a, b = svg("30"), svg("01")
    assert equal_but_volatile(".svg", a, b) is not None
    c = b.replace(b"M0 0", b"M0 1")
    assert compare_files("fig.svg", a, c, Tolerance()).status == DIFFERS
