"""The journal's REST API: read, search, export, replay, fork; checkpoints and retention."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import orjson
from asgiref.sync import sync_to_async
from django.http import StreamingHttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from apps.core.errors import NotFound
from apps.core.pagination import KeysetPagination
from apps.tenants.access import workspace_schema
from apps.tenants.drf import WorkspaceAPIView, WorkspaceGenericAPIView
from apps.tenants.models import Workspace

from . import selectors, services
from .catalog import all_kinds
from .replay import replay_mission
from .selectors import JournalFilters
from .serializers import (
    CheckpointCreateSerializer,
    CheckpointSerializer,
    CompactionSerializer,
    CompactSerializer,
    EntryKindSerializer,
    ForkCreateSerializer,
    ForkSerializer,
    JournalEntrySerializer,
    JournalQuerySerializer,
    ReplayQuerySerializer,
    ReplaySerializer,
    RetentionPolicySerializer,
    RetentionPolicySetSerializer,
    VerifySerializer,
)
from .verify import journal_verify

_PAGING_PARAMS = {"cursor", "page_size"}


def _filters(request: Request) -> JournalFilters:
    params = {key: value for key, value in request.query_params.items() if key not in _PAGING_PARAMS}
    serializer = JournalQuerySerializer(data=params)
    serializer.is_valid(raise_exception=True)
    return serializer.filters()


class JournalEntryListApi(WorkspaceGenericAPIView):
    """Entries, newest first, with filters and full-text search; keyset pagination."""

    read_permission = "journal.read"
    pagination_class = KeysetPagination
    serializer_class = JournalEntrySerializer

    @extend_schema(parameters=[JournalQuerySerializer], responses=JournalEntrySerializer(many=True))
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(selectors.journal_entry_list(filters=_filters(request)))
        return self.get_paginated_response(JournalEntrySerializer(page, many=True).data)


class JournalEntryDetailApi(WorkspaceAPIView):
    read_permission = "journal.read"

    @extend_schema(responses=JournalEntrySerializer)
    def get(self, request: Request, seq: int) -> Response:
        entry = selectors.journal_entry_get(seq=seq)
        if entry is None:
            raise NotFound("No journal entry with this sequence number.")
        return Response(JournalEntrySerializer(entry).data)


_EXPORT_CHUNK = 2000


class JournalExportApi(WorkspaceAPIView):
    """The filtered journal as JSON Lines, oldest first, streamed in keyset chunks."""

    read_permission = "journal.read"

    @extend_schema(
        parameters=[JournalQuerySerializer],
        responses={(200, "application/jsonl"): OpenApiResponse(OpenApiTypes.STR, description="One entry per line.")},
    )
    def get(self, request: Request) -> StreamingHttpResponse:
        filters = _filters(request)
        workspace = self.principal.workspace
        stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
        response = StreamingHttpResponse(_export_lines(workspace, filters), content_type="application/jsonl")
        response["Content-Disposition"] = f'attachment; filename="journal-{workspace.slug}-{stamp}.jsonl"'
        return response


def _export_chunk(workspace: Workspace, filters: JournalFilters, after: int) -> list[bytes]:
    # The response streams after the view returned (and the middleware left the schema):
    # each chunk re-enters the workspace schema itself.
    with workspace_schema(workspace):
        entries = selectors.journal_entry_list(filters=filters).filter(seq__gt=after).order_by("seq")
        return [orjson.dumps(entry.as_dict()) + b"\n" for entry in entries[:_EXPORT_CHUNK]]


async def _export_lines(workspace: Workspace, filters: JournalFilters) -> AsyncIterator[bytes]:
    after = filters.after_seq or 0
    while True:
        lines = await sync_to_async(_export_chunk)(workspace, filters, after)
        if not lines:
            return
        yield b"".join(lines)
        after = orjson.loads(lines[-1])["seq"]
        if len(lines) < _EXPORT_CHUNK:
            return


class EntryKindListApi(WorkspaceAPIView):
    """The catalog: every entry kind with its payload schema."""

    read_permission = "journal.read"

    @extend_schema(responses=EntryKindSerializer(many=True))
    def get(self, request: Request) -> Response:
        return Response(EntryKindSerializer(all_kinds(), many=True).data)


class JournalVerifyApi(WorkspaceAPIView):
    read_permission = "journal.manage"

    @extend_schema(responses=VerifySerializer)
    def get(self, request: Request) -> Response:
        return Response(journal_verify().as_dict())


class CheckpointListApi(WorkspaceGenericAPIView):
    read_permission = "journal.read"
    write_permission = "journal.manage"
    pagination_class = KeysetPagination
    serializer_class = CheckpointSerializer

    @extend_schema(responses=CheckpointSerializer(many=True))
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(selectors.checkpoint_list())
        return self.get_paginated_response(CheckpointSerializer(page, many=True).data)

    @extend_schema(request=CheckpointCreateSerializer, responses={201: CheckpointSerializer, 204: None})
    def post(self, request: Request) -> Response:
        CheckpointCreateSerializer(data=request.data).is_valid(raise_exception=True)
        checkpoint = services.journal_checkpoint()
        if checkpoint is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(CheckpointSerializer(checkpoint).data, status=status.HTTP_201_CREATED)


class RetentionPolicyApi(WorkspaceAPIView):
    """Per-severity retention; POST sets one severity's policy."""

    read_permission = "journal.read"
    write_permission = "journal.manage"

    @extend_schema(responses=RetentionPolicySerializer(many=True))
    def get(self, request: Request) -> Response:
        return Response(RetentionPolicySerializer(selectors.retention_policy_list(), many=True).data)

    @extend_schema(request=RetentionPolicySetSerializer, responses=RetentionPolicySerializer)
    def post(self, request: Request) -> Response:
        serializer = RetentionPolicySetSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        policy = services.retention_policy_set(**serializer.validated_data)
        return Response(RetentionPolicySerializer(policy).data)


class CompactApi(WorkspaceAPIView):
    read_permission = "journal.manage"
    write_permission = "journal.manage"

    @extend_schema(request=CompactSerializer, responses=CompactionSerializer(many=True))
    def post(self, request: Request) -> Response:
        serializer = CompactSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        done = services.journal_compact(up_to_seq=serializer.validated_data.get("up_to_seq"))
        return Response(CompactionSerializer(done, many=True).data)


class MissionReplayApi(WorkspaceAPIView):
    """A mission reconstructed from the journal alone."""

    read_permission = "journal.read"

    @extend_schema(parameters=[ReplayQuerySerializer], responses=ReplaySerializer)
    def get(self, request: Request, mission_id: uuid.UUID) -> Response:
        query = ReplayQuerySerializer(data=request.query_params.dict())
        query.is_valid(raise_exception=True)
        state = replay_mission(mission_id=mission_id, up_to_seq=query.validated_data.get("up_to"))
        return Response(state.as_dict())


class MissionForkApi(WorkspaceAPIView):
    """Forks of a mission (as source or as the fork); POST forks it at a sequence number."""

    read_permission = "journal.read"
    write_permission = "missions.run"

    @extend_schema(responses=ForkSerializer(many=True))
    def get(self, request: Request, mission_id: uuid.UUID) -> Response:
        return Response(ForkSerializer(selectors.fork_list(mission_id=mission_id), many=True).data)

    @extend_schema(request=ForkCreateSerializer, responses={201: ForkSerializer})
    def post(self, request: Request, mission_id: uuid.UUID) -> Response:
        serializer = ForkCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data: dict[str, Any] = serializer.validated_data
        fork = services.mission_fork(
            source_mission_id=mission_id,
            from_seq=data["from_seq"],
            reason=data.get("reason", ""),
            new_mission_id=data.get("new_mission_id"),
        )
        return Response(ForkSerializer(fork).data, status=status.HTTP_201_CREATED)
