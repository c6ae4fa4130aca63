from typing import Any

from django.urls import path
from rest_framework.routers import SimpleRouter

from . import apis, views

router = SimpleRouter(trailing_slash=True)
router.register("budgets/ledger", apis.LedgerViewSet, basename="ledger")
router.register("budgets", apis.BudgetViewSet, basename="budget")

api_urlpatterns: list[Any] = [
    path("budgets/spend/", apis.SpendApi.as_view(), name="budget-spend"),
    *router.urls,
]
portal_urlpatterns: list[Any] = [
    path("budgets/", views.budget_overview, name="overview"),
]
