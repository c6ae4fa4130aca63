"""The reviewer inbox at /w/<slug>/inbox/: server-rendered, kept live by a little JavaScript
(static/js/approvals-inbox.js) over the WebSocket at /ws/w/<slug>/inbox/."""

from __future__ import annotations

import json
from typing import Any, cast

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.middleware.csrf import get_token
from django.shortcuts import render
from django.template.loader import render_to_string
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from apps.core.errors import QuarterdeckError, ValidationFailed
from apps.core.exceptions import envelope
from apps.tenants.pages import request_principal, workspace_page

from . import registry, selectors, services
from .presenters import card_context, render_card


@require_GET
@workspace_page("approvals.view")
def inbox(request: HttpRequest) -> HttpResponse:
    principal = request_principal(request)
    can_decide = principal.can("approvals.decide")
    decider = services.Decider.for_principal(principal) if can_decide else None
    box = selectors.inbox(decider=decider)
    slug = principal.workspace.slug
    everything = [*box.mine, *box.others, *box.decided]
    missions = registry.mission_info(sorted({r.mission_id for r in everything}, key=str))

    # Rendered without the request so context processors do not run once per card.
    token = get_token(request)

    def cards(requests: list[Any], decide: bool) -> list[str]:
        return [
            render_to_string(
                "approvals/_request_card.html",
                {
                    **card_context(
                        r, slug=slug, can_decide=decide, mission=missions.get(r.mission_id), events=list(r.events.all())
                    ),
                    "csrf_token": token,
                },
            )
            for r in requests
        ]

    return render(
        request,
        "approvals/inbox.html",
        {
            "mine": cards(box.mine, True),
            "others": cards(box.others, False),
            "decided": cards(box.decided, False),
            "can_decide": can_decide,
            "ws_path": f"/ws/w/{slug}/inbox/",
            "me": {"role": principal.role, "user_id": getattr(principal.user, "pk", None)},
        },
    )


def _wants_json(request: HttpRequest) -> bool:
    return "application/json" in request.headers.get("Accept", "")


@require_POST
@workspace_page("approvals.decide")
def decide(request: HttpRequest, request_id: str) -> HttpResponse:
    """The inbox's form: approve / deny / comment, with an optional edited-arguments box.
    Answers JSON to the page's script, or redirects back for a plain form post."""
    principal = request_principal(request)
    decision = request.POST.get("decision", "")
    comment = request.POST.get("comment", "")
    raw_arguments = request.POST.get("arguments", "").strip()
    try:
        arguments = None
        if decision == "approve" and raw_arguments:
            try:
                arguments = json.loads(raw_arguments)
            except json.JSONDecodeError as exc:
                raise ValidationFailed(
                    "The edited arguments are not valid JSON.", details={"arguments": [str(exc)]}
                ) from None
        selectors.request_get(request_id=request_id, with_events=False)
        updated = services.request_decide(
            request_id=request_id,
            decider=services.Decider.for_principal(principal),
            decision=cast(services.Decision, decision),  # the service rejects anything else
            comment=comment,
            arguments=arguments,
        )
    except QuarterdeckError as exc:
        if _wants_json(request):
            return JsonResponse(envelope(exc.code, exc.message, exc.details), status=exc.status_code)
        messages.error(request, exc.message)
        return HttpResponseRedirect(reverse("approvals:inbox"))
    if _wants_json(request):
        fresh = selectors.request_get(request_id=updated.pk)
        html = render_card(fresh, slug=principal.workspace.slug, can_decide=True, events=list(fresh.events.all()))
        return JsonResponse({"id": str(fresh.pk), "status": fresh.status, "html": html})
    messages.success(request, f"{updated.tool_name}: {updated.status}.")
    return HttpResponseRedirect(reverse("approvals:inbox") + f"#req-{updated.pk}")
