from django.urls import path

from . import apis, views

api_urlpatterns = [
    path("memory/documents/", apis.DocumentListApi.as_view(), name="memory-document-list"),
    path("memory/documents/<uuid:document_id>/", apis.DocumentDetailApi.as_view(), name="memory-document-detail"),
    path("memory/search/", apis.SearchApi.as_view(), name="memory-search"),
    path("memory/facts/", apis.FactListApi.as_view(), name="memory-fact-list"),
    path("memory/facts/<uuid:fact_id>/", apis.FactDetailApi.as_view(), name="memory-fact-detail"),
    path("memory/facts/<uuid:fact_id>/correct/", apis.FactCorrectApi.as_view(), name="memory-fact-correct"),
    path("memory/facts/<uuid:fact_id>/retire/", apis.FactRetireApi.as_view(), name="memory-fact-retire"),
    path("memory/entities/", apis.EntityListApi.as_view(), name="memory-entity-list"),
    path("memory/entities/<uuid:uid>/", apis.EntityDetailApi.as_view(), name="memory-entity-detail"),
    path("memory/relationships/", apis.RelationshipListApi.as_view(), name="memory-relationship-list"),
    path(
        "memory/relationships/<uuid:uid>/close/", apis.RelationshipCloseApi.as_view(), name="memory-relationship-close"
    ),
    path("memory/context/", apis.ContextApi.as_view(), name="memory-context"),
    path("memory/types/", apis.TypeListApi.as_view(), name="memory-types"),
]

portal_urlpatterns = [
    path("memory/", views.memory_home, name="home"),
    path("memory/ingest/", views.document_ingest, name="ingest"),
    path("memory/documents/<uuid:document_id>/", views.document_detail, name="document"),
    path("memory/facts/", views.fact_list, name="facts"),
    path("memory/facts/<uuid:fact_id>/correct/", views.fact_correct, name="fact-correct"),
    path("memory/facts/<uuid:fact_id>/retire/", views.fact_retire, name="fact-retire"),
    path("memory/entities/", views.entity_list, name="entities"),
    path("memory/entities/<uuid:uid>/", views.entity_detail, name="entity"),
    path("memory/context/", views.context_preview, name="context"),
]
