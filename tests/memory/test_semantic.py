"""Semantic memory with the real local model: ingestion, chunking, search, filters, hybrid."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from apps.audit.models import JournalEntry
from apps.core.errors import ValidationFailed
from apps.memory import selectors, services
from apps.memory.ingest import Section, chunk_sections, extract_sections
from apps.memory.models import Chunk, Document

pytestmark = pytest.mark.django_db


def minimal_pdf(lines: list[str]) -> bytes:
    """A one-page PDF with real text objects (Helvetica), built by hand."""
    text_ops = " ".join(f"({line}) Tj 0 -16 Td" for line in lines)
    stream = f"BT /F1 12 Tf 72 720 Td {text_ops} ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for offset in offsets:
        out += f"{offset:010d} 00000 n \n".encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def test_semantically_close_sentences_rank_above_unrelated_ones(in_acme: Any) -> None:
    for title, text in [
        ("pets", "A kitten is napping on the living room couch."),
        ("finance", "Quarterly revenue grew by eight percent compared to last year."),
        ("weather", "Heavy rain and strong winds are expected on the coast tomorrow."),
    ]:
        services.document_ingest(title=title, text=text)
    hits = selectors.memory_search(query="My cat is sleeping on the sofa", k=3)
    assert hits[0].title == "pets"
    assert hits[0].similarity > hits[1].similarity + 0.2
    finance = selectors.memory_search(query="How much did sales increase this quarter?", k=1)
    assert finance[0].title == "finance"


def test_ingest_records_source_chunks_and_a_journal_entry(in_acme: Any, local_embedder: Any) -> None:
    document = services.document_ingest(
        title="Runbook",
        text="Restart the sync worker when the queue is stuck.",
        source="wiki/runbook",
        metadata={"team": "support"},
    )
    assert document.source == "wiki/runbook" and document.embedder == local_embedder.identity
    chunk = Chunk.objects.get(document=document)
    assert chunk.dimensions == 384 and len(chunk.embedding) == 384
    assert chunk.metadata == {"team": "support", "source_type": "text"}
    entry = JournalEntry.objects.filter(kind="memory.ingested").latest("seq")
    assert entry.payload["document_id"] == str(document.id) and entry.payload["chunks"] == 1


def test_markdown_is_cut_by_section_and_keeps_its_heading_path() -> None:
    sections = extract_sections(
        "markdown",
        text=(
            "# Guide\nIntro **bold** and [a link](http://x).\n\n"
            "## Setup\n- step one\n- step two\n```\ncode # not a heading\n```"
        ),
    )
    assert [s.metadata.get("section") for s in sections] == ["Guide", "Guide > Setup"]
    assert "bold" in sections[0].text and "**" not in sections[0].text and "http://x" not in sections[0].text
    assert "code # not a heading" in sections[1].text


def test_long_text_is_chunked_with_overlap() -> None:
    words = [f"w{i}" for i in range(400)]
    pieces = chunk_sections([Section(" ".join(words))], max_words=100, overlap=20)
    assert len(pieces) == 5
    assert all(len(p.text.split()) <= 100 for p in pieces)
    assert pieces[0].text.split()[-20:] == pieces[1].text.split()[:20]
    assert pieces[-1].text.split()[-1] == "w399"


def test_pdf_text_is_extracted_page_by_page(in_acme: Any) -> None:
    pdf = minimal_pdf(["Refund policy for annual plans.", "Refunds are prorated within 30 days."])
    document = services.document_ingest(title="Refunds", source_type="pdf", content=pdf, source="refunds.pdf")
    chunk = Chunk.objects.get(document=document)
    assert "Refunds are prorated within 30 days" in chunk.text and chunk.metadata["page"] == 1
    hits = selectors.memory_search(query="can I get my money back for a yearly subscription", k=1)
    assert hits[0].document_id == document.id


def test_garbage_pdf_is_refused(in_acme: Any) -> None:
    with pytest.raises(ValidationFailed):
        services.document_ingest(title="broken", source_type="pdf", content=b"%PDF-1.4 not really")


def test_metadata_filters_and_crew_scope(in_acme: Any) -> None:
    crew_a, crew_b = uuid.uuid4(), uuid.uuid4()
    services.document_ingest(title="shared", text="The office wifi password rotates monthly.")
    services.document_ingest(
        title="crew a", text="The wifi password for the lab is printed on the router.", crew_id=crew_a
    )
    services.document_ingest(
        title="crew b",
        text="Guest wifi passwords are handed out at reception.",
        crew_id=crew_b,
        metadata={"site": "paris"},
    )
    seen_by_a = {hit.title for hit in selectors.memory_search(query="wifi password", k=10, crew_id=crew_a)}
    assert seen_by_a == {"shared", "crew a"}
    everything = {hit.title for hit in selectors.memory_search(query="wifi password", k=10)}
    assert everything == {"shared", "crew a", "crew b"}
    paris = selectors.memory_search(query="wifi password", k=10, filters={"site": "paris"})
    assert [hit.title for hit in paris] == ["crew b"]


def test_agent_scope_hides_other_agents_memories(in_acme: Any) -> None:
    crew, me, other = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    services.document_ingest(title="mine", text="The customer prefers phone calls.", crew_id=crew, agent_id=me)
    services.document_ingest(title="theirs", text="The customer prefers email.", crew_id=crew, agent_id=other)
    titles = {hit.title for hit in selectors.memory_search(query="customer preference", crew_id=crew, agent_id=me)}
    assert titles == {"mine"}


def test_hybrid_search_adds_full_text_rank(in_acme: Any) -> None:
    services.document_ingest(title="code", text="Error QX4471 means the export job lost its storage credentials.")
    for index, text in enumerate(
        [
            "The export job fails when the storage bucket is full.",
            "Exports can fail if the report is larger than two gigabytes.",
            "A failing export job retries three times before giving up.",
            "Export jobs stop when the credentials expire.",
        ]
    ):
        services.document_ingest(title=f"export {index}", text=text)
    hybrid = selectors.memory_search(query="QX4471 export failure", k=3, hybrid=True)
    assert hybrid[0].title == "code"
    assert hybrid[0].text_rank is not None and hybrid[0].text_rank > 0
    assert hybrid[0].score == pytest.approx(hybrid[0].similarity + hybrid[0].text_rank, abs=1e-6)
    plain = selectors.memory_search(query="QX4471 export failure", k=3)
    assert all(hit.text_rank is None for hit in plain)


def test_retired_document_is_kept_but_not_found(in_acme: Any) -> None:
    document = services.document_ingest(title="old policy", text="Refunds are never given.")
    services.document_retire(document=document, reason="policy changed")
    assert Document.objects.filter(pk=document.pk, is_active=False).exists()
    assert all(hit.document_id != document.id for hit in selectors.memory_search(query="refund policy", k=10))
    assert JournalEntry.objects.filter(kind="memory.retired", payload__id=str(document.id)).exists()


def test_empty_query_finds_nothing_and_bad_input_is_refused(in_acme: Any) -> None:
    assert selectors.memory_search(query="   ") == []
    with pytest.raises(ValidationFailed):
        services.document_ingest(title="", text="x")
    with pytest.raises(ValidationFailed):
        services.document_ingest(title="t", text="x", crew_id="not-a-uuid")
