"""Portal pages: the workspace's missions (and a form to start one), and a mission page whose
timeline is fed live by the journal's WebSocket tail (static/js/crews-timeline.js)."""

from __future__ import annotations

import json

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from apps.core.errors import QuarterdeckError
from apps.core.money import format_usd
from apps.tenants.pages import request_principal, workspace_page

from . import selectors, services
from .models import FINISHED_STATUSES, MissionStatus


@require_GET
@workspace_page("missions.view")
def mission_list(request: HttpRequest) -> HttpResponse:
    principal = request_principal(request)
    status = request.GET.get("status") or None
    if status not in MissionStatus.values:
        status = None
    crew_id = request.GET.get("crew") or None
    try:
        queryset = selectors.mission_list(status=status, crew_id=crew_id)
    except QuarterdeckError:
        queryset = selectors.mission_list(status=status)
    page = Paginator(queryset, 50).get_page(request.GET.get("page"))
    crews = list(selectors.crew_list(include_inactive=False))
    return render(
        request,
        "crews/missions.html",
        {
            "page": page,
            "missions": [(m, format_usd(m.cost_micros, 4)) for m in page.object_list],
            "crews": crews,
            "statuses": MissionStatus.choices,
            "status": status or "",
            "crew_id": crew_id or "",
            "can_run": principal.can("missions.run"),
        },
    )


@require_POST
@workspace_page("missions.run")
def mission_start(request: HttpRequest) -> HttpResponse:
    principal = request_principal(request)
    try:
        crew = selectors.crew_get(crew_id=request.POST.get("crew", ""))
        raw_input = request.POST.get("input", "").strip()
        data = json.loads(raw_input) if raw_input else {}
        if not isinstance(data, dict):
            raise ValueError("The input must be a JSON object.")
        mission = services.mission_create(
            crew=crew, goal=request.POST.get("goal", "").strip(), input=data, created_by_user=principal.user
        )
    except (QuarterdeckError, ValueError) as exc:
        messages.error(request, f"The mission was not started: {getattr(exc, 'message', exc)}")
        return HttpResponseRedirect(reverse("crews:missions"))
    messages.success(request, "Mission queued; a worker picks it up at once.")
    return HttpResponseRedirect(reverse("crews:mission-detail", kwargs={"mission_id": mission.pk}))


@require_GET
@workspace_page("missions.view")
def mission_detail(request: HttpRequest, mission_id: str) -> HttpResponse:
    principal = request_principal(request)
    mission = selectors.mission_get(mission_id=mission_id)
    trajectory = selectors.mission_trajectory(mission=mission, with_checkpoints=True)
    can_control = principal.can("missions.control")
    agents = {str(a.pk): a.name for a in selectors.agent_list(crew=mission.crew)}
    return render(
        request,
        "crews/mission.html",
        {
            "mission": mission,
            "cost": format_usd(mission.cost_micros, 4),
            "trajectory": trajectory,
            "agents_json": json.dumps(agents),
            "input_json": json.dumps(mission.input, indent=2, ensure_ascii=False),
            "finished": mission.status in FINISHED_STATUSES,
            "can_control": can_control,
            "can_run": principal.can("missions.run"),
            "ws_path": f"/ws/w/{principal.workspace.slug}/journal/?after=0&mission={mission.pk}",
            "controls": _controls(mission.status, mission.control) if can_control else [],
        },
    )


def _controls(status: str, control: str) -> list[tuple[str, str]]:
    if status in (MissionStatus.FAILED, MissionStatus.CANCELLED):
        return [("retry", "Retry from the last checkpoint")]
    if status == MissionStatus.COMPLETED:
        return []
    options = [("cancel", "Cancel")]
    if status == MissionStatus.PAUSED:
        options.insert(0, ("resume", "Resume"))
    elif control != "pause":
        options.insert(0, ("pause", "Pause"))
    return options


@require_POST
@workspace_page("missions.view")
def mission_control(request: HttpRequest, mission_id: str) -> HttpResponse:
    """Cancel / pause / resume / retry (missions.control) and fork (missions.run)."""
    principal = request_principal(request)
    mission = selectors.mission_get(mission_id=mission_id)
    action = request.POST.get("action", "")
    if not principal.can("missions.run" if action == "fork" else "missions.control"):
        raise PermissionDenied(action)
    target = mission
    try:
        if action == "cancel":
            services.mission_cancel(mission=mission)
            messages.success(request, "Cancel requested: it takes effect at the mission's next step.")
        elif action == "pause":
            services.mission_pause(mission=mission)
            messages.success(request, "Pause requested: it takes effect at the mission's next step.")
        elif action == "resume":
            services.mission_resume(mission=mission)
            messages.success(request, "Resumed from the last checkpoint.")
        elif action == "retry":
            services.mission_retry(mission=mission)
            messages.success(request, "Queued again; it continues from its last checkpoint.")
        elif action == "fork":
            step = request.POST.get("step", "").strip()
            target = services.mission_fork(
                mission=mission, step=int(step) if step else None, created_by_user=principal.user
            )
            messages.success(request, f"Forked after step {target.steps}.")
        else:
            messages.error(request, "Unknown action.")
    except (QuarterdeckError, ValueError) as exc:
        messages.error(request, str(getattr(exc, "message", exc)))
    return HttpResponseRedirect(reverse("crews:mission-detail", kwargs={"mission_id": target.pk}))
