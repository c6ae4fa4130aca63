from __future__ import annotations

from typing import Any

from rest_framework import serializers


class StrictSerializerMixin:
    """Reject fields the serializer does not know, instead of silently ignoring them.

    A client that misspells ``max_tokens`` as ``max_token`` must hear about it.
    """

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            known = set(self.fields)  # type: ignore[attr-defined]
            unknown = sorted(set(data) - known)
            if unknown:
                raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
        return super().to_internal_value(data)  # type: ignore[misc]


class StrictSerializer(StrictSerializerMixin, serializers.Serializer):  # type: ignore[type-arg]
    pass


class StrictModelSerializer(StrictSerializerMixin, serializers.ModelSerializer):  # type: ignore[type-arg]
    pass
