"""The journal in the workspace admin (``/w/<slug>/admin/``): read-only, filterable,
searchable by full text, mission/crew/agent id or sequence number."""

from __future__ import annotations

import json
import uuid
from typing import Any

from django.contrib import admin, messages
from django.contrib.postgres.search import SearchQuery
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from apps.core.admin import AppendOnlyAdmin
from apps.core.admin_sites import workspace_admin_site

from . import services
from .catalog import all_kinds
from .models import SEARCH_CONFIG, JournalCheckpoint, JournalEntry, MissionFork, PayloadSearchVector, RetentionPolicy
from .verify import journal_verify


class KindAreaFilter(admin.SimpleListFilter):
    """Kinds grouped by area ("llm", "budget"...), from the catalog rather than a
    SELECT DISTINCT over a huge table."""

    title = "kind"
    parameter_name = "area"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        areas = sorted({kind.name.split(".", 1)[0] for kind in all_kinds()})
        return [(area, area) for area in areas]

    def queryset(self, request: HttpRequest, queryset: QuerySet[JournalEntry]) -> QuerySet[JournalEntry]:
        if self.value():
            return queryset.filter(kind__startswith=f"{self.value()}.")
        return queryset


class ActorKindFilter(admin.SimpleListFilter):
    """Fixed choices: a plain field filter would SELECT DISTINCT over the whole journal."""

    title = "actor"
    parameter_name = "actor_kind"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(kind, kind) for kind in ("user", "api_key", "agent", "system")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[JournalEntry]) -> QuerySet[JournalEntry]:
        return queryset.filter(actor_kind=self.value()) if self.value() else queryset


@admin.register(JournalEntry, site=workspace_admin_site)
class JournalEntryAdmin(AppendOnlyAdmin):
    list_display = ["seq", "created_at", "kind", "severity", "actor_label", "mission_id", "short_hash"]
    list_filter = ["severity", KindAreaFilter, ActorKindFilter, "created_at"]
    search_fields = ["kind"]  # see get_search_results
    search_help_text = "Full text over payloads; or a sequence number, a mission/crew/agent id, a kind."
    ordering = ["-seq"]
    list_per_page = 100
    readonly_fields = ["pretty_payload"]
    fieldsets = [
        (None, {"fields": ["seq", "created_at", "kind", "severity"]}),
        ("Who", {"fields": ["actor_kind", "actor_id", "actor_label", "request_id"]}),
        ("References", {"fields": ["crew_id", "mission_id", "agent_id"]}),
        ("Payload", {"fields": ["pretty_payload"]}),
        ("Chain", {"fields": ["prev_hash", "hash"]}),
    ]
    actions = ["verify_journal"]

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[JournalEntry], search_term: str
    ) -> tuple[QuerySet[JournalEntry], bool]:
        term = search_term.strip()
        if not term:
            return queryset, False
        if term.isdigit():
            return queryset.filter(seq=int(term)), False
        try:
            ref = uuid.UUID(term)
        except ValueError:
            pass
        else:
            return queryset.filter(mission_id=ref) | queryset.filter(crew_id=ref) | queryset.filter(agent_id=ref), False
        if "." in term and " " not in term:
            return queryset.filter(kind__startswith=term), False
        document = PayloadSearchVector()
        return queryset.alias(document=document).filter(
            document=SearchQuery(term, config=SEARCH_CONFIG, search_type="websearch")
        ), False

    @admin.display(description="hash")
    def short_hash(self, obj: JournalEntry) -> str:
        return obj.hash[:12]

    @admin.display(description="payload")
    def pretty_payload(self, obj: JournalEntry) -> str:
        return format_html("<pre>{}</pre>", json.dumps(obj.payload, indent=2, sort_keys=True))

    @admin.action(description="Verify the whole journal (chain and checkpoints)")
    def verify_journal(self, request: HttpRequest, queryset: QuerySet[JournalEntry]) -> None:
        result = journal_verify()
        if result.ok:
            self.message_user(
                request, f"Journal OK: {result.entries} entries up to #{result.head_seq}.", messages.SUCCESS
            )
        else:
            problem = result.first_problem
            assert problem is not None
            self.message_user(request, f"First bad sequence: {problem.seq} ({problem.reason}).", messages.ERROR)


@admin.register(JournalCheckpoint, site=workspace_admin_site)
class JournalCheckpointAdmin(AppendOnlyAdmin):
    list_display = ["seq", "created_at", "reason", "hash", "signature"]
    list_filter = ["reason"]
    actions = ["take_checkpoint"]

    @admin.action(description="Take a new signed checkpoint now")
    def take_checkpoint(self, request: HttpRequest, queryset: QuerySet[JournalCheckpoint]) -> None:
        checkpoint = services.journal_checkpoint()
        self.message_user(request, f"Checkpoint at #{checkpoint.seq}." if checkpoint else "The journal is empty.")


@admin.register(MissionFork, site=workspace_admin_site)
class MissionForkAdmin(AppendOnlyAdmin):
    list_display = ["id", "source_mission_id", "from_seq", "new_mission_id", "entry_seq", "created_at"]
    search_fields = ["=source_mission_id", "=new_mission_id"]


@admin.register(RetentionPolicy, site=workspace_admin_site)
class RetentionPolicyAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ["severity", "keep_days", "updated_at"]
    fields = ["severity", "keep_days"]
    readonly_fields = ["severity"]
    actions = ["compact_now"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: RetentionPolicy, form: Any, change: bool) -> None:
        # Through the service, so the change is journaled.
        services.retention_policy_set(severity=obj.severity, keep_days=obj.keep_days)

    @admin.action(description="Apply retention now (compact expired entries)")
    def compact_now(self, request: HttpRequest, queryset: QuerySet[RetentionPolicy]) -> None:
        done = services.journal_compact()
        removed = sum(c.removed for c in done)
        self.message_user(request, f"Compacted {removed} entries into {len(done)} summaries.", messages.SUCCESS)
