"""Portal pages for memory (under /w/<slug>/memory/): search, documents, facts, the graph,
and a preview of the context an agent would get."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from apps.core.errors import QuarterdeckError
from apps.tenants.pages import request_principal, workspace_page

from . import selectors, services
from .context import context_for_subject
from .forms import ContextForm, CorrectForm, FactForm, IngestForm, RetireForm, SearchForm
from .models import FactStatus


def _error(request: HttpRequest, exc: QuarterdeckError) -> None:
    details = exc.details if isinstance(exc.details, dict) else {}
    extra = "; ".join(
        f"{field}: {' '.join(str(m) for m in (msgs if isinstance(msgs, list) else [msgs]))}"
        for field, msgs in details.items()
        if isinstance(msgs, (list, str))
    )
    messages.error(request, f"{exc.message} {extra}".strip())


@workspace_page("memory.read")
def memory_home(request: HttpRequest) -> HttpResponse:
    principal = request_principal(request)
    form = SearchForm(request.GET or None)
    hits = []
    if form.is_valid() and form.cleaned_data["q"]:
        try:
            hits = selectors.memory_search(query=form.cleaned_data["q"], k=10, hybrid=form.cleaned_data["hybrid"])
        except QuarterdeckError as exc:
            _error(request, exc)
    return render(
        request,
        "memory/home.html",
        {
            "form": form,
            "hits": hits,
            "documents": selectors.document_list()[:10],
            "facts": selectors.fact_list()[:10],
            "graph": selectors.graph_summary(),
            "embedder": services.memory_settings().embedder,
            "ingest_form": IngestForm() if principal.can("memory.write") else None,
        },
    )


@require_POST
@workspace_page("memory.write")
def document_ingest(request: HttpRequest) -> HttpResponse:
    form = IngestForm(request.POST, request.FILES)
    if not form.is_valid():
        for error in form.errors.values():
            messages.error(request, " ".join(str(message) for message in error))
        return redirect("memory:home")
    data = form.cleaned_data
    upload = data.get("file")
    try:
        document = services.document_ingest(
            title=data["title"],
            source_type=data["source_type"],
            text=None if upload else data["text"],
            content=upload.read() if upload else None,
            source=upload.name if upload else "portal",
        )
    except QuarterdeckError as exc:
        _error(request, exc)
        return redirect("memory:home")
    messages.success(request, f"Remembered {document.title} ({document.chunk_count} chunks).")
    return redirect("memory:document", document_id=document.id)


@workspace_page("memory.read")
def document_detail(request: HttpRequest, document_id: str) -> HttpResponse:
    document = selectors.document_get(document_id=document_id)
    return render(
        request, "memory/document.html", {"document": document, "chunks": selectors.chunk_list(document=document)}
    )


@workspace_page("memory.read")
def fact_list(request: HttpRequest) -> HttpResponse:
    principal = request_principal(request)
    status = request.GET.get("status", FactStatus.ACTIVE)
    form = FactForm(request.POST or None) if principal.can("memory.write") else None
    if request.method == "POST":
        if form is None:
            from django.core.exceptions import PermissionDenied

            raise PermissionDenied("memory.write")
        if form.is_valid():
            data = form.cleaned_data
            try:
                fact = services.memory_write_fact(
                    text=data["text"],
                    subject=data["subject"] or None,
                    relationship=data["relationship"] or None,
                    object=data["object"] or None,
                    source="portal",
                )
            except QuarterdeckError as exc:
                _error(request, exc)
            else:
                messages.success(request, f"Remembered: {fact.text}")
                return HttpResponseRedirect(reverse("memory:facts"))
    facts = selectors.fact_list(status=None if status == "all" else status)[:200]
    return render(
        request,
        "memory/facts.html",
        {
            "facts": facts,
            "status": status,
            "statuses": ["all", *FactStatus.values],
            "form": form,
            "can_write": principal.can("memory.write"),
            "can_manage": principal.can("memory.manage"),
        },
    )


def _back(request: HttpRequest) -> HttpResponse:
    target = request.POST.get("next", "")
    if target.startswith("/") and not target.startswith("//"):
        return HttpResponseRedirect(target)
    return redirect("memory:facts")


@require_POST
@workspace_page("memory.write")
def fact_correct(request: HttpRequest, fact_id: str) -> HttpResponse:
    form = CorrectForm(request.POST)
    if form.is_valid():
        try:
            new = services.fact_correct(
                fact=selectors.fact_get(fact_id=fact_id),
                text=form.cleaned_data["text"],
                reason=form.cleaned_data["reason"],
            )
        except QuarterdeckError as exc:
            _error(request, exc)
        else:
            messages.success(request, f"Corrected: {new.text}")
    else:
        messages.error(request, "Give the corrected text.")
    return _back(request)


@require_POST
@workspace_page("memory.manage")
def fact_retire(request: HttpRequest, fact_id: str) -> HttpResponse:
    form = RetireForm(request.POST)
    form.is_valid()
    try:
        fact = services.fact_retire(
            fact=selectors.fact_get(fact_id=fact_id), reason=form.cleaned_data.get("reason", "")
        )
    except QuarterdeckError as exc:
        _error(request, exc)
    else:
        messages.success(request, f"Retired: {fact.text}")
    return _back(request)


@workspace_page("memory.read")
def entity_list(request: HttpRequest) -> HttpResponse:
    label = request.GET.get("label", "")
    search = request.GET.get("q", "")[:200]
    entities = []
    try:
        entities = selectors.entity_list(label=label or None, search=search, limit=100)
    except QuarterdeckError as exc:
        _error(request, exc)
    return render(
        request,
        "memory/entities.html",
        {"entities": entities, "label": label, "q": search, "labels": services.entity_labels()},
    )


@workspace_page("memory.read")
def entity_detail(request: HttpRequest, uid: str) -> HttpResponse:
    principal = request_principal(request)
    entity = selectors.entity_get(uid=uid)
    relationships = selectors.entity_relationships(entity=entity, include_closed=True)
    return render(
        request,
        "memory/entity.html",
        {
            "entity": entity,
            "properties": sorted(entity.properties.items()),
            "current": [r for r in relationships if r.is_current],
            "closed": [r for r in relationships if not r.is_current],
            "facts": selectors.fact_list(status=None, label=entity.label, key=entity.key)[:100],
            "can_write": principal.can("memory.write"),
            "can_manage": principal.can("memory.manage"),
        },
    )


@workspace_page("memory.read")
def context_preview(request: HttpRequest) -> HttpResponse:
    form = ContextForm(request.GET or None)
    result = None
    if form.is_valid():
        try:
            result = context_for_subject(
                subject=form.cleaned_data["subject"],
                token_budget=form.cleaned_data["token_budget"],
                query=form.cleaned_data["query"] or None,
            )
        except QuarterdeckError as exc:
            _error(request, exc)
    return render(request, "memory/context.html", {"form": form, "result": result})
