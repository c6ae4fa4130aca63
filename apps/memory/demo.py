"""Demo memory for the Support mission: the customer whose ticket the demo answers.

After seeding, ``context_for_subject(subject=DEMO_SUBJECT)`` says that Sarah Chen is the CTO
of Acme, Acme is on the Pro plan, and her last three tickets were about the Salesforce
integration. Idempotent: entities are keyed, facts and relationships are not written twice,
documents are recognised by their source.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from . import services
from .models import Document

DEMO_SUBJECT = "sarah.chen@acme.example"
DEMO_COMPANY_KEY = "acme.example"
DEMO_PROJECT_KEY = "salesforce-integration"

SARAH = {"label": "Person", "key": DEMO_SUBJECT, "name": "Sarah Chen"}
MARCUS = {"label": "Person", "key": "marcus.lee@acme.example", "name": "Marcus Lee"}
PRIYA = {"label": "Person", "key": "priya.patel@globex.example", "name": "Priya Patel"}
ACME = {"label": "Company", "key": DEMO_COMPANY_KEY, "name": "Acme"}
GLOBEX = {"label": "Company", "key": "globex.example", "name": "Globex"}
PRO = {"label": "Plan", "key": "pro", "name": "Pro"}
STARTER = {"label": "Plan", "key": "starter", "name": "Starter"}
SALESFORCE = {
    "label": "Project",
    "key": DEMO_PROJECT_KEY,
    "name": "Salesforce integration",
    "properties": {"mention": "the Salesforce integration"},
}
BILLING = {"label": "Project", "key": "billing", "name": "Billing", "properties": {"mention": "billing"}}

# (key, subject, opened_at, status, about, opened by)
TICKETS = [
    ("T-1021", "Invoice shows the wrong seat count", "2025-01-14T09:12:00", "solved", BILLING, SARAH),
    ("T-1038", "Salesforce sync drops custom fields", "2025-02-03T16:40:00", "solved", SALESFORCE, SARAH),
    ("T-1040", "Salesforce OAuth token expires every day", "2025-02-19T08:05:00", "solved", SALESFORCE, SARAH),
    ("T-1042", "Duplicate contacts after the Salesforce import", "2025-03-04T11:27:00", "solved", SALESFORCE, SARAH),
    ("T-1044", "How do I add a teammate?", "2025-03-06T10:00:00", "solved", BILLING, PRIYA),
]

FACTS: list[dict[str, Any]] = [
    {"text": "Sarah Chen works at Acme.", "subject": SARAH, "relationship": "WORKS_AT", "object": ACME},
    {
        "text": "Sarah Chen is the CTO of Acme.",
        "subject": SARAH,
        "relationship": "ROLE",
        "object": ACME,
        "properties": {"title": "CTO"},
    },
    {"text": "Acme is on the Pro plan.", "subject": ACME, "relationship": "ON_PLAN", "object": PRO},
    {
        "text": "Marcus Lee works at Acme as a Salesforce administrator.",
        "subject": MARCUS,
        "relationship": "WORKS_AT",
        "object": ACME,
    },
    {"text": "Priya Patel works at Globex.", "subject": PRIYA, "relationship": "WORKS_AT", "object": GLOBEX},
    {"text": "Globex is on the Starter plan.", "subject": GLOBEX, "relationship": "ON_PLAN", "object": STARTER},
    {
        "text": (
            "Sarah Chen prefers short answers with concrete steps, and wants Marcus Lee copied on Salesforce issues."
        ),
        "subject": SARAH,
    },
    {"text": "Acme syncs about 40,000 contacts from Salesforce every night.", "subject": ACME},
    {"text": "Acme renews its Pro subscription every March.", "subject": ACME},
]

DOCUMENTS = [
    (
        "demo:kb/salesforce-integration",
        "Salesforce integration: troubleshooting",
        """# Salesforce integration: troubleshooting

## Custom fields are not synced
Custom fields sync only when they are mapped. Open Settings > Integrations > Salesforce >
Field mapping, map each custom field to a CRM property, then run a full resync. Fields of
type formula are read-only and cannot be written back.

## The OAuth token expires every day
Salesforce revokes refresh tokens when the connected app's policy is "Refresh token valid
until revoked" is not set. Ask the customer's Salesforce admin to set the refresh token
policy to "valid until revoked" and reconnect the integration.

## Duplicate contacts after an import
Duplicates appear when the import matches on name instead of email. Turn on "match
contacts by email" in the field mapping, then use the merge tool to merge duplicates.
The nightly sync never deletes contacts.
""",
    ),
    (
        "demo:kb/plans",
        "Plans and support commitments",
        """# Plans and support commitments

## Starter
Email support, first response within two business days. No CRM integrations.

## Pro
Priority support with a first response within four hours, the Salesforce and HubSpot
integrations, and a named support engineer for accounts over 50 seats.

## Enterprise
Everything in Pro, plus a 99.9% uptime commitment, SSO, and a dedicated channel.
""",
    ),
]


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def seed_demo_memory(workspace: Any, users: dict[str, Any]) -> None:
    for fact in FACTS:
        services.memory_write_fact(source="demo", **fact)
    for key, subject, opened_at, status, about, opener in TICKETS:
        ticket = {
            "label": "Ticket",
            "key": key,
            "name": f"{key} {subject}",
            "properties": {"subject": subject, "opened_at": opened_at + "Z", "status": status},
        }
        services.relationship_write(subject=opener, relationship="OPENED", object=ticket, valid_from=_at(opened_at))
        services.relationship_write(subject=ticket, relationship="ABOUT", object=about, valid_from=_at(opened_at))
    for source, title, body in DOCUMENTS:
        if not Document.objects.filter(source=source).exists():
            services.document_ingest(title=title, source_type="markdown", text=body, source=source)
