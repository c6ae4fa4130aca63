"""Context assembly: what an agent should know about a mission's subject, in few tokens.

Given a subject (a ticket sender's email, ``Label:key``, or a name) it reads the subject's
two-hop neighbourhood in the graph (who they are, their company and role, the company's
plan, their recent tickets and what those were about) and adds the most relevant semantic
memories, in that order of priority, until the token budget is spent.
"""

from __future__ import annotations

import math
import re
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import transaction

from apps.core.errors import ValidationFailed

from . import graph as g
from .models import Fact, FactStatus

_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}")
_NUMBERS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five"}
RECENT_TICKETS = 3
MIN_SIMILARITY = 0.2  # cosine, all-MiniLM-L6-v2: below this a memory is rarely about the subject
MIN_BUDGET, MAX_BUDGET = 20, 8000


def estimate_tokens(text: str) -> int:
    """About four characters a token for English with Claude/GPT tokenizers; good enough to
    budget a prompt section without loading a tokenizer."""
    return math.ceil(len(text) / 4) if text else 0


@dataclass
class SubjectContext:
    subject: str
    entity: dict[str, Any] | None
    text: str
    tokens: int
    token_budget: int
    sections: list[dict[str, str]] = field(default_factory=list)
    memories: list[dict[str, Any]] = field(default_factory=list)
    truncated: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "entity": self.entity,
            "text": self.text,
            "tokens": self.tokens,
            "token_budget": self.token_budget,
            "sections": self.sections,
            "memories": self.memories,
            "truncated": self.truncated,
        }


def resolve_subject(graph: g.Graph, subject: str) -> g.Entity | None:
    """``Label:key``, an email (also inside "Name <email>"), or an exact name."""
    text = subject.strip()
    label, sep, key = text.partition(":")
    if sep and g.LABEL_RE.match(label) and "@" not in label:
        return g.entity_find(graph, label=label, key=key.strip())
    email = _EMAIL.search(text)
    if email:
        return g.entity_find(graph, label="Person", key=email.group(0).lower())
    for candidate_label in ("Person", "Company"):
        for entity in g.entity_list(graph, label=candidate_label, search=text, limit=20):
            if entity.name.lower() == text.lower():
                return entity
    return None


def _the(entity: g.Entity) -> str:
    """How to mention an entity mid-sentence: its ``mention`` property ("the Salesforce
    integration") when it has one, else its name."""
    mention = entity.properties.get("mention")
    return str(mention) if mention else entity.name


def _first_name(entity: g.Entity) -> str:
    return entity.name.split()[0] if entity.name else entity.key


def _describe(subject: g.Entity, hops: list[g.Hop]) -> list[tuple[str, str]]:
    """(section, sentence) pairs, most important first."""
    first = [hop for hop in hops if hop.via is None]
    second: dict[str, list[g.Hop]] = defaultdict(list)
    for hop in hops:
        if hop.via is not None:
            second[hop.via.rel.uid].append(hop)
    by_type: dict[str, list[g.Hop]] = defaultdict(list)
    for hop in first:
        by_type[hop.rel.type].append(hop)

    sections: list[tuple[str, str]] = []
    who = subject.name + (f" <{subject.key}>" if subject.label == "Person" and "@" in subject.key else "")
    roles = [hop for hop in by_type.pop("ROLE", []) if hop.rel.properties.get("title")]
    works = by_type.pop("WORKS_AT", [])
    if roles:
        parts = [f"the {hop.rel.properties['title']} of {hop.node.name}" for hop in roles]
        sections.append(("identity", f"{who} is {' and '.join(parts)}."))
    elif works:
        sections.append(("identity", f"{who} works at {', '.join(hop.node.name for hop in works)}."))
    else:
        sections.append(("identity", f"{who} ({subject.label})."))

    for hop in by_type.pop("ON_PLAN", []):
        sections.append(("plan", f"{subject.name} is on the {hop.node.name} plan."))
    # A company reached through both WORKS_AT and ROLE is described once.
    company_plans: dict[str, set[str]] = defaultdict(set)
    for hop in [*works, *roles]:
        for nested in second.get(hop.rel.uid, []):
            if nested.rel.type == "ON_PLAN":
                company_plans[hop.node.name].add(nested.node.name)
    for company_name, plan_names in company_plans.items():
        sections.append(("plan", f"{company_name} is on the {' and '.join(sorted(plan_names))} plan."))

    tickets = by_type.pop("OPENED", [])
    if tickets:
        tickets.sort(
            key=lambda hop: str(hop.node.properties.get("opened_at") or hop.rel.properties.get("valid_from") or ""),
            reverse=True,
        )
        recent = tickets[:RECENT_TICKETS]
        topics_of = {
            hop.rel.uid: [_the(n.node) for n in second.get(hop.rel.uid, []) if n.rel.type == "ABOUT"] for hop in recent
        }
        listed = "; ".join(
            f'{hop.node.key} "{hop.node.properties.get("subject") or hop.node.name}"'
            + (f" ({str(hop.node.properties.get('opened_at'))[:10]})" if hop.node.properties.get("opened_at") else "")
            for hop in recent
        )
        count = _NUMBERS.get(len(recent), str(len(recent)))
        common = set.intersection(*(set(t) for t in topics_of.values())) if all(topics_of.values()) else set()
        owner = _first_name(subject) + "'s"
        total = f" ({len(tickets)} tickets in total)" if len(tickets) > len(recent) else ""
        if len(recent) == 1:
            about = f" was about {topics_of[recent[0].rel.uid][0]}" if topics_of[recent[0].rel.uid] else ""
            sentence = f"{owner} last ticket{about}: {listed}{total}."
        elif common:
            sentence = f"{owner} last {count} tickets were about {' and '.join(sorted(common))}: {listed}{total}."
        else:
            detail = "; ".join(
                f"{hop.node.key} about {', '.join(topics_of[hop.rel.uid]) or 'no recorded topic'}" for hop in recent
            )
            sentence = f"{owner} last {count} tickets: {listed}{total}. Topics: {detail}."
        sections.append(("tickets", sentence))

    for rel_type, group in sorted(by_type.items()):
        names = ", ".join(f"{_the(hop.node)} ({hop.node.label})" for hop in group[:5])
        sections.append(("related", f"{rel_type.replace('_', ' ').lower()}: {names}."))
    return sections


def _valid_hits(hits: list[Any], at: datetime) -> list[Any]:
    """Reading the past: keep facts that were valid at ``at`` and documents that existed."""
    from .models import Document

    fact_ids = [hit.fact_id for hit in hits if hit.fact_id]
    valid_facts = {
        str(pk)
        for pk in Fact.objects.filter(pk__in=fact_ids, valid_from__lte=at)
        .exclude(valid_to__lte=at)
        .values_list("pk", flat=True)
    }
    existing = set(
        Document.objects.filter(pk__in=[hit.document_id for hit in hits], created_at__lte=at).values_list(
            "pk", flat=True
        )
    )
    return [hit for hit in hits if (hit.fact_id in valid_facts if hit.fact_id else hit.document_id in existing)]


def graph_context(
    graph: g.Graph, subject: str, *, at: datetime | None = None
) -> tuple[g.Entity | None, list[tuple[str, str]]]:
    """The graph half of the context: the subject and its sentences, most important first."""
    with transaction.atomic():  # one transaction for both reads, not one each
        entity = resolve_subject(graph, subject)
        if entity is None:
            return None, [("identity", f"Nothing is remembered about {subject}.")]
        found, hops = g.neighborhood(graph, label=entity.label, key=entity.key, at=at)
    if found is None:
        return None, [("identity", f"Nothing is remembered about {subject}.")]
    return found, _describe(found, hops)


def context_for_subject(
    *,
    subject: str,
    token_budget: int = 400,
    query: str | None = None,
    crew_id: uuid.UUID | str | None = None,
    agent_id: uuid.UUID | str | None = None,
    k: int = 5,
    at: datetime | None = None,
) -> SubjectContext:
    """A compact context about ``subject`` within ``token_budget`` (estimated) tokens.

    ``query`` (e.g. the ticket's text) steers which semantic memories are added; without it
    the subject's name is the query. ``at`` reads the graph as it was at that moment.
    """
    from .selectors import memory_search

    subject = (subject or "").strip()
    if not subject or len(subject) > 300:
        raise ValidationFailed(details={"subject": ["Give a subject of 1-300 characters."]})
    if not MIN_BUDGET <= int(token_budget) <= MAX_BUDGET:
        raise ValidationFailed(details={"token_budget": [f"Between {MIN_BUDGET} and {MAX_BUDGET}."]})
    entity, sentences = graph_context(g.Graph.current(), subject, at=at)

    search_for = query or (entity.name if entity else subject)
    hits = memory_search(query=search_for, k=k, crew_id=crew_id, agent_id=agent_id) if search_for else []
    # A context is for what matters: weakly related memories cost tokens and attention.
    hits = [hit for hit in hits if hit.similarity >= MIN_SIMILARITY]
    if at is not None:
        hits = _valid_hits(hits, at)
    facts_first: list[str] = []
    if entity is not None:
        about = Fact.objects.about(label=entity.label, key=entity.key).filter(status=FactStatus.ACTIVE, relationship="")
        if at is not None:
            about = about.filter(valid_from__lte=at)
        facts_first = list(about.order_by("-created_at").values_list("text", flat=True)[:k])

    budget = int(token_budget)
    lines: list[str] = []
    sections: list[dict[str, str]] = []
    used = 0
    truncated = False

    def take(section: str, line: str) -> bool:
        nonlocal used, truncated
        cost = estimate_tokens(line) + 1
        if used + cost > budget:
            truncated = True
            return False
        lines.append(line)
        sections.append({"section": section, "text": line})
        used += cost
        return True

    for section, sentence in sentences:
        if not take(section, sentence) and section == "identity" and not lines:
            # Even a tiny budget gets the beginning of who this is.
            clipped = sentence[: max(0, budget * 4 - 4)].rstrip() + "…"
            lines.append(clipped)
            sections.append({"section": section, "text": clipped})
            used = estimate_tokens(clipped)
    memories: list[dict[str, Any]] = []
    seen = {line.lower() for line in lines}
    header_taken = False
    header = "Also remembered:"
    candidates: list[tuple[str, dict[str, Any] | None]] = [(text, None) for text in facts_first] + [
        (hit.text, {"text": hit.text, "similarity": round(hit.similarity, 4), "document_id": str(hit.document_id)})
        for hit in hits
    ]
    for text, memory in candidates:
        if text.lower() in seen:
            continue
        line = f"- {text}"
        if not header_taken:
            # The header only goes in with a first memory under it.
            if used + estimate_tokens(header) + estimate_tokens(line) + 2 > budget:
                truncated = True
                continue
            header_taken = take("memories", header)
        if take("memories", line):
            seen.add(text.lower())
            if memory is not None:
                memories.append(memory)
    text = "\n".join(lines)
    return SubjectContext(
        subject=subject,
        entity=entity.as_dict() if entity else None,
        text=text,
        tokens=estimate_tokens(text),
        token_budget=budget,
        sections=sections,
        memories=memories,
        truncated=truncated,
    )
