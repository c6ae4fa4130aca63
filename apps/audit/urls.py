from typing import Any

from django.urls import path

from . import apis, views

api_urlpatterns: list[Any] = [
    path("journal/", apis.JournalEntryListApi.as_view(), name="journal-list"),
    path("journal/export/", apis.JournalExportApi.as_view(), name="journal-export"),
    path("journal/kinds/", apis.EntryKindListApi.as_view(), name="journal-kinds"),
    path("journal/verify/", apis.JournalVerifyApi.as_view(), name="journal-verify"),
    path("journal/checkpoints/", apis.CheckpointListApi.as_view(), name="journal-checkpoints"),
    path("journal/retention/", apis.RetentionPolicyApi.as_view(), name="journal-retention"),
    path("journal/compact/", apis.CompactApi.as_view(), name="journal-compact"),
    path("journal/missions/<uuid:mission_id>/replay/", apis.MissionReplayApi.as_view(), name="journal-replay"),
    path("journal/missions/<uuid:mission_id>/forks/", apis.MissionForkApi.as_view(), name="journal-forks"),
    path("journal/<int:seq>/", apis.JournalEntryDetailApi.as_view(), name="journal-detail"),
]
portal_urlpatterns: list[Any] = [
    path("journal/", views.journal_page, name="journal"),
]
