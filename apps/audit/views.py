"""The journal page of the portal: recent entries with filters, and a live tail."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from apps.tenants.pages import request_principal, workspace_page

from . import selectors
from .models import JournalEntry
from .serializers import JournalQuerySerializer

PAGE_SIZE = 100


@workspace_page("journal.read")
def journal_page(request: HttpRequest) -> HttpResponse:
    principal = request_principal(request)
    query = JournalQuerySerializer(data={key: value for key, value in request.GET.items() if value})
    entries: list[JournalEntry] = []
    live = False
    if query.is_valid():
        filters = query.filters()
        entries = list(selectors.journal_entry_list(filters=filters)[:PAGE_SIZE])
        # The tail pushes every new entry (of the mission, if one is named); other filters
        # would make it show entries the page does not.
        live = not any(
            [
                filters.q,
                filters.kinds,
                filters.severities,
                filters.min_severity,
                filters.until,
                filters.before_seq,
                filters.crew_id,
                filters.agent_id,
                filters.actor_kind,
                filters.actor_id,
            ]
        )
    return render(
        request,
        "audit/journal.html",
        {
            "entries": entries,
            "errors": query.errors,
            "params": request.GET,
            "newest": max((entry.seq for entry in entries), default=0),
            "live": live,
            "mission": request.GET.get("mission", ""),
            "workspace_slug": principal.workspace.slug,
        },
    )
