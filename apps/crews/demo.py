"""Demo data (a Support crew and a ticket mission) and the offline scripts that drive it.

The offline provider plays a script turn by turn (turn n = assistant messages so far), so the
mission's whole conversation, across both agents, is one script: the triage agent reads the
ticket and looks the account up, hands off; the responder drafts the reply, sends it (the
approvals demo policy makes that email wait for Rita), and reports.
"""

from __future__ import annotations

from typing import Any

from apps.core.context import acting_as, user_actor
from apps.tenants.models import Workspace

from .models import Autonomy, Crew, CrmAccount, CrmStage, Mission
from .tools import get_tool

DEMO_CREW = "Support"
DEMO_GOAL = "reply to the ticket from Sarah at Acme about the Salesforce integration"
SARAH = "sarah.chen@acme.example"
DEMO_TICKET = {
    "id": "T-1047",
    "from": f"Sarah Chen <{SARAH}>",
    "subject": "Salesforce integration stopped syncing contacts",
    "body": (
        "Hi team,\n\nSince Tuesday our Salesforce integration has not synced new contacts. The last "
        "successful sync was Monday 18:02 UTC; nothing changed on our side except that Marcus, our "
        "Salesforce admin, rotated the integration user's password. Our renewal pipeline depends on this. "
        "Can you help us get it running again?\n\nThanks,\nSarah Chen\nCTO, Acme"
    ),
}
DRAFT = (
    "Hi Sarah,\n\n"
    "Thanks for the clear report. The timing points at the password rotation: the integration "
    "signs in to Salesforce as the integration user, and when that password changed, Salesforce "
    "revoked the connection's token, so every sync since Tuesday was refused.\n\n"
    "To fix it:\n"
    "1. In Quarterdeck, open Settings > Integrations > Salesforce and click Reconnect.\n"
    "2. Sign in as the integration user with the new password and approve the access request.\n"
    "3. Click Sync now. Contacts created since Monday 18:02 UTC will be back-filled in one run.\n\n"
    "Your Pro plan also lets you switch the integration to OAuth with a dedicated connected app, "
    "so that future password rotations do not interrupt the sync. Happy to walk Marcus through it "
    "on a call.\n\n"
    "Best regards,\nThe Demo Support Co team"
)

TRIAGE_INSTRUCTIONS = (
    "Read the ticket, find the customer's account in the CRM (and what we remember about them), "
    "then hand the mission to the responder with a short brief: who wrote, their plan, the likely "
    "cause and what to answer."
)
RESPONDER_INSTRUCTIONS = (
    "Write the reply to the customer: draft it as a note first, then send it by email to the "
    "customer, then report what you did in one or two sentences."
)


def seed_crm() -> None:
    accounts = [
        {
            "name": "Acme",
            "domain": "acme.example",
            "stage": CrmStage.CUSTOMER,
            "plan": "Pro",
            "owner_email": "olivia@demo.quarterdeck.local",
            "notes": "Salesforce integration with a password-based integration user. Renewal in Q3.",
            "contacts": [
                {"name": "Sarah Chen", "email": SARAH, "title": "CTO"},
                {"name": "Marcus Lee", "email": "marcus.lee@acme.example", "title": "Salesforce administrator"},
            ],
        },
        {
            "name": "Globex",
            "domain": "globex.example",
            "stage": CrmStage.TRIAL,
            "plan": "Team (trial)",
            "notes": "Evaluating the HubSpot integration.",
            "contacts": [{"name": "Hank Scorpio", "email": "hank@globex.example", "title": "CEO"}],
        },
        {
            "name": "Initech",
            "domain": "initech.example",
            "stage": CrmStage.AT_RISK,
            "plan": "Business",
            "notes": "Two escalations last quarter.",
            "contacts": [{"name": "Bill Lumbergh", "email": "bill@initech.example", "title": "VP"}],
        },
    ]
    for account in accounts:
        CrmAccount.objects.get_or_create(name=account["name"], defaults=account)


def seed(workspace: Workspace, users: dict[str, Any]) -> None:
    """The demo crew and its mission (runs in the demo schema; idempotent)."""
    from .services import agent_create, crew_create, mission_create

    seed_crm()
    operator = users.get("oscar")
    with acting_as(user_actor(operator) if operator is not None else user_actor(users["admin"])):
        crew = Crew.objects.filter(name=DEMO_CREW).first()
        if crew is None:
            crew = crew_create(
                name=DEMO_CREW,
                default_model="offline-medium",
                purpose="We answer the customer tickets of Demo Support Co, accurately and kindly.",
                autonomy=Autonomy.GUIDED,
                max_steps=30,
            )

            def available(*names: str) -> list[str]:
                return [name for name in names if get_tool(name) is not None]

            agent_create(
                crew=crew,
                name="Triage",
                role="triage agent",
                instructions=TRIAGE_INSTRUCTIONS,
                model="offline-small",
                tools=available("crm_lookup", "memory_search", "handoff"),
                position=0,
            )
            agent_create(
                crew=crew,
                name="Responder",
                role="responder",
                instructions=RESPONDER_INSTRUCTIONS,
                model="offline-medium",
                tools=available("crm_lookup", "memory_search", "write_note", "send_email", "handoff"),
                position=1,
            )
        if not Mission.objects.filter(crew=crew, goal=DEMO_GOAL).exists():
            mission_create(crew=crew, goal=DEMO_GOAL, input={"ticket": DEMO_TICKET}, created_by_user=operator)
