from __future__ import annotations

from django import forms

from .models import SourceType
from .services import MAX_FACT_CHARS


class SearchForm(forms.Form):
    q = forms.CharField(max_length=2000, required=False, label="Search memory")
    hybrid = forms.BooleanField(required=False, label="Also rank by keywords (hybrid)")


class IngestForm(forms.Form):
    title = forms.CharField(max_length=300)
    source_type = forms.ChoiceField(
        choices=[(SourceType.TEXT, "Plain text"), (SourceType.MARKDOWN, "Markdown"), (SourceType.PDF, "PDF")]
    )
    text = forms.CharField(widget=forms.Textarea(attrs={"rows": 6}), required=False)
    file = forms.FileField(required=False, help_text="A .txt, .md or .pdf file instead of the text.")

    def clean(self) -> dict[str, object]:
        data = super().clean() or {}
        if not data.get("text") and not data.get("file"):
            raise forms.ValidationError("Paste a text or choose a file.")
        if data.get("source_type") == SourceType.PDF and not data.get("file"):
            raise forms.ValidationError("A PDF is uploaded as a file.")
        return data


class FactForm(forms.Form):
    text = forms.CharField(max_length=MAX_FACT_CHARS, widget=forms.Textarea(attrs={"rows": 2}))
    subject = forms.CharField(max_length=400, required=False, help_text="Label:key, e.g. Person:sarah@acme.example")
    relationship = forms.CharField(max_length=63, required=False, help_text="e.g. WORKS_AT, ROLE, ON_PLAN")
    object = forms.CharField(max_length=400, required=False, help_text="Label:key, e.g. Company:acme.example")


class CorrectForm(forms.Form):
    text = forms.CharField(max_length=MAX_FACT_CHARS, widget=forms.Textarea(attrs={"rows": 2}))
    reason = forms.CharField(max_length=500, required=False)


class RetireForm(forms.Form):
    reason = forms.CharField(max_length=500, required=False)


class ContextForm(forms.Form):
    subject = forms.CharField(max_length=300, help_text="An email, Label:key, or a name")
    token_budget = forms.IntegerField(min_value=20, max_value=8000, initial=400)
    query = forms.CharField(max_length=2000, required=False, help_text="What the mission is about (optional)")
