"""From a file or a text to chunks: text extraction (plain text, Markdown, PDF) and chunking.

Chunks are cut on paragraph boundaries and kept under the local model's input length
(all-MiniLM-L6-v2 reads 256 word pieces, about 180 English words); a short overlap keeps a
sentence that straddles two chunks findable from either.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from typing import Any

from apps.core.errors import ValidationFailed

MAX_WORDS = 160
OVERLAP_WORDS = 30
MAX_PDF_PAGES = 500

_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")
_MD_INLINE = [
    (re.compile(r"!\[([^\]]*)\]\([^)]*\)"), r"\1"),  # images -> alt text
    (re.compile(r"\[([^\]]+)\]\([^)]*\)"), r"\1"),  # links -> their text
    (re.compile(r"(\*\*|__)(.+?)\1"), r"\2"),
    (re.compile(r"(?<![\w*])[*_]([^*_\n]+)[*_](?![\w*])"), r"\1"),
    (re.compile(r"`([^`]+)`"), r"\1"),
]


@dataclass
class Section:
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class Piece:
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)


def extract_sections(source_type: str, *, text: str | None = None, content: bytes | None = None) -> list[Section]:
    if source_type == "pdf":
        if content is None:
            raise ValidationFailed(details={"content": ["A PDF is ingested from its bytes."]})
        return _pdf_sections(content)
    if text is None:
        if content is None:
            raise ValidationFailed(details={"text": ["Give the text to remember."]})
        try:
            text = content.decode("utf-8")
        except UnicodeDecodeError:
            raise ValidationFailed(details={"content": ["The file is not UTF-8 text."]}) from None
    text = text.replace("\x00", "")
    if source_type == "markdown":
        return _markdown_sections(text)
    return [Section(text=text)]


def _pdf_sections(content: bytes) -> list[Section]:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(content))
        if reader.is_encrypted:
            raise ValidationFailed("Encrypted PDFs cannot be read.", details={"content": ["The PDF is encrypted."]})
        if len(reader.pages) > MAX_PDF_PAGES:
            raise ValidationFailed(details={"content": [f"At most {MAX_PDF_PAGES} pages."]})
        sections = []
        for number, page in enumerate(reader.pages, start=1):
            page_text = (page.extract_text() or "").replace("\x00", "")
            if page_text.strip():
                sections.append(Section(text=page_text, metadata={"page": number}))
    except (PdfReadError, ValueError, KeyError, TypeError) as exc:
        raise ValidationFailed("The PDF could not be read.", details={"content": [str(exc)[:200]]}) from exc
    if not sections:
        raise ValidationFailed("The PDF has no text (scanned pages need OCR).", details={"content": ["No text found."]})
    return sections


def _strip_inline(line: str) -> str:
    for pattern, replacement in _MD_INLINE:
        line = pattern.sub(replacement, line)
    return line


def _markdown_sections(text: str) -> list[Section]:
    """One section per heading; each remembers its heading path ("Setup > Salesforce")."""
    sections: list[Section] = []
    path: list[str] = []
    lines: list[str] = []
    in_fence = False

    def flush() -> None:
        body = "\n".join(lines).strip()
        if body:
            meta = {"section": " > ".join(path)} if path else {}
            heading = (path[-1].rstrip(":.") + ": ") if path else ""
            sections.append(Section(text=heading + body, metadata=meta))
        lines.clear()

    for raw in text.splitlines():
        if _FENCE.match(raw):
            in_fence = not in_fence
            continue
        match = None if in_fence else _HEADING.match(raw)
        if match:
            flush()
            level = len(match.group(1))
            del path[level - 1 :]
            path.extend([""] * (level - 1 - len(path)))
            path.append(_strip_inline(match.group(2)))
            path[:] = [p for p in path if p]
            continue
        line = raw if in_fence else _strip_inline(re.sub(r"^\s*([-*+]|\d+\.)\s+", "", raw))
        lines.append(line)
    flush()
    return sections


def _paragraphs(text: str) -> list[str]:
    return [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]


def chunk_sections(sections: list[Section], *, max_words: int = MAX_WORDS, overlap: int = OVERLAP_WORDS) -> list[Piece]:
    pieces: list[Piece] = []
    for section in sections:
        words_so_far: list[str] = []
        for paragraph in _paragraphs(section.text):
            words = paragraph.split()
            if words_so_far and len(words_so_far) + len(words) > max_words:
                pieces.append(Piece(" ".join(words_so_far), dict(section.metadata)))
                words_so_far = words_so_far[-overlap:] if overlap else []
            words_so_far.extend(words)
            while len(words_so_far) > max_words:
                pieces.append(Piece(" ".join(words_so_far[:max_words]), dict(section.metadata)))
                words_so_far = words_so_far[max_words - overlap :] if overlap else words_so_far[max_words:]
        if words_so_far and (not pieces or pieces[-1].text != " ".join(words_so_far)):
            pieces.append(Piece(" ".join(words_so_far), dict(section.metadata)))
    return pieces
