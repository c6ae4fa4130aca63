"""REST endpoints: crews, agents, missions (create, list, detail with trajectory, control, fork)
and the tool registry. Thin: validate, call one service or selector, serialize."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response

from apps.tenants.drf import WorkspaceAPIView, WorkspaceGenericViewSet

from . import selectors, services
from .models import Agent, Crew, Mission
from .serializers import (
    AgentCreateSerializer,
    AgentSerializer,
    AgentUpdateSerializer,
    CrewCreateSerializer,
    CrewSerializer,
    CrewUpdateSerializer,
    MissionCreateSerializer,
    MissionDetailSerializer,
    MissionFilterSerializer,
    MissionForkSerializer,
    MissionSerializer,
    ToolSerializer,
)
from .tools import all_tools


class NamePagination(CursorPagination):
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 500
    ordering = ("name", "id")


class MissionPagination(CursorPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500
    ordering = ("-created_at", "-id")


class CrewViewSet(WorkspaceGenericViewSet):
    read_permission = "crews.view"
    write_permission = "crews.manage"
    serializer_class = CrewSerializer
    pagination_class = NamePagination
    queryset = Crew.objects.none()

    def get_queryset(self) -> Any:
        return selectors.crew_list()

    def list(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(CrewSerializer(page, many=True).data)

    def retrieve(self, request: Request, pk: str) -> Response:
        return Response(CrewSerializer(self.get_queryset().filter(pk=selectors.crew_get(crew_id=pk).pk).get()).data)

    @extend_schema(request=CrewCreateSerializer, responses={201: CrewSerializer})
    def create(self, request: Request) -> Response:
        serializer = CrewCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        crew = services.crew_create(**serializer.validated_data)
        return Response(CrewSerializer(crew).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=CrewUpdateSerializer, responses=CrewSerializer)
    def partial_update(self, request: Request, pk: str) -> Response:
        serializer = CrewUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        crew = services.crew_update(crew=selectors.crew_get(crew_id=pk), **serializer.validated_data)
        return Response(CrewSerializer(crew).data)


class AgentViewSet(WorkspaceGenericViewSet):
    read_permission = "crews.view"
    write_permission = "crews.manage"
    serializer_class = AgentSerializer
    pagination_class = NamePagination
    queryset = Agent.objects.none()

    def get_queryset(self) -> Any:
        crew_id = self.request.query_params.get("crew")
        return selectors.agent_list(crew=selectors.crew_get(crew_id=crew_id) if crew_id else None)

    @extend_schema(parameters=[OpenApiParameter("crew", str, description="Only this crew's agents.")])
    def list(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(AgentSerializer(page, many=True).data)

    def retrieve(self, request: Request, pk: str) -> Response:
        return Response(AgentSerializer(selectors.agent_get(agent_id=pk)).data)

    @extend_schema(request=AgentCreateSerializer, responses={201: AgentSerializer})
    def create(self, request: Request) -> Response:
        serializer = AgentCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        crew = selectors.crew_get(crew_id=data.pop("crew"))
        agent = services.agent_create(crew=crew, **data)
        return Response(AgentSerializer(agent).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=AgentUpdateSerializer, responses=AgentSerializer)
    def partial_update(self, request: Request, pk: str) -> Response:
        serializer = AgentUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        agent = services.agent_update(agent=selectors.agent_get(agent_id=pk), **serializer.validated_data)
        return Response(AgentSerializer(agent).data)


class MissionViewSet(WorkspaceGenericViewSet):
    """Missions. Reading needs missions.view, starting or forking one missions.run, and
    cancel/pause/resume/retry missions.control (they take effect at the mission's next step)."""

    read_permission = "missions.view"
    write_permission = "missions.run"
    action_permissions = {
        "cancel": "missions.control",
        "pause": "missions.control",
        "resume": "missions.control",
        "retry": "missions.control",
        "fork": "missions.run",
    }
    serializer_class = MissionSerializer
    pagination_class = MissionPagination
    queryset = Mission.objects.none()

    def _user(self) -> Any:
        return getattr(self.principal, "user", None)

    @extend_schema(
        parameters=[
            OpenApiParameter("status", str, description="Only missions in this status."),
            OpenApiParameter("crew", str, description="Only this crew's missions."),
        ]
    )
    def list(self, request: Request) -> Response:
        filters = MissionFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        queryset = selectors.mission_list(
            status=filters.validated_data.get("status"),
            crew_id=str(filters.validated_data["crew"]) if filters.validated_data.get("crew") else None,
        )
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(MissionSerializer(page, many=True).data)

    @extend_schema(
        parameters=[OpenApiParameter("checkpoints", bool, description="Include the checkpoint list (default true).")],
        responses=MissionDetailSerializer,
    )
    def retrieve(self, request: Request, pk: str) -> Response:
        return Response(self._detail(selectors.mission_get(mission_id=pk)))

    def _detail(self, mission: Mission) -> dict[str, Any]:
        with_checkpoints = self.request.query_params.get("checkpoints", "true").lower() not in ("0", "false", "no")
        trajectory = selectors.mission_trajectory(mission=mission, with_checkpoints=with_checkpoints)
        return MissionDetailSerializer(mission, context={"trajectory": trajectory}).data  # type: ignore[return-value]

    @extend_schema(request=MissionCreateSerializer, responses={201: MissionDetailSerializer})
    def create(self, request: Request) -> Response:
        serializer = MissionCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        crew = selectors.crew_get(crew_id=data.pop("crew"))
        mission = services.mission_create(crew=crew, created_by_user=self._user(), **data)
        return Response(self._detail(mission), status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses=MissionSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str) -> Response:
        mission = services.mission_cancel(mission=selectors.mission_get(mission_id=pk))
        return Response(MissionSerializer(mission).data)

    @extend_schema(request=None, responses=MissionSerializer)
    @action(detail=True, methods=["post"])
    def pause(self, request: Request, pk: str) -> Response:
        mission = services.mission_pause(mission=selectors.mission_get(mission_id=pk))
        return Response(MissionSerializer(mission).data)

    @extend_schema(request=None, responses=MissionSerializer)
    @action(detail=True, methods=["post"])
    def resume(self, request: Request, pk: str) -> Response:
        mission = services.mission_resume(mission=selectors.mission_get(mission_id=pk))
        return Response(MissionSerializer(mission).data)

    @extend_schema(request=None, responses=MissionSerializer)
    @action(detail=True, methods=["post"])
    def retry(self, request: Request, pk: str) -> Response:
        mission = services.mission_retry(mission=selectors.mission_get(mission_id=pk))
        return Response(MissionSerializer(mission).data)

    @extend_schema(request=MissionForkSerializer, responses={201: MissionDetailSerializer})
    @action(detail=True, methods=["post"])
    def fork(self, request: Request, pk: str) -> Response:
        serializer = MissionForkSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        fork = services.mission_fork(
            mission=selectors.mission_get(mission_id=pk), created_by_user=self._user(), **serializer.validated_data
        )
        return Response(self._detail(fork), status=status.HTTP_201_CREATED)


class ToolListApi(WorkspaceAPIView):
    """The tools agents may be given (the registry), with their argument schemas."""

    read_permission = "crews.view"

    @extend_schema(responses=ToolSerializer(many=True))
    def get(self, request: Request) -> Response:
        return Response(
            [
                {
                    "name": t.name,
                    "description": t.description,
                    "parameters": t.parameters,
                    "credentials": list(t.credentials),
                    "side_effects": t.side_effects,
                }
                for t in all_tools()
            ]
        )
