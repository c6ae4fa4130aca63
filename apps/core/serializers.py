from __future__ import annotations

from typing import Any

from django.core.validators import MaxValueValidator, MinValueValidator
from rest_framework import serializers

# PostgreSQL's bigint: an integer outside it fails in the database, not in validation.
BIGINT_MIN, BIGINT_MAX = -(2**63), 2**63 - 1


class StrictSerializerMixin:
    """Reject fields the serializer does not know, instead of silently ignoring them.

    A client that misspells ``max_tokens`` as ``max_token`` must hear about it.
    """

    def get_fields(self) -> dict[str, serializers.Field]:  # type: ignore[type-arg]
        """The fields, every integer bounded to bigint unless it has tighter bounds already."""
        fields: dict[str, serializers.Field] = super().get_fields()  # type: ignore[misc,type-arg]
        for field in fields.values():
            _bound_integers(field)
        return fields

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


def _bound_integers(field: serializers.Field) -> None:  # type: ignore[type-arg]
    if isinstance(field, serializers.ListField | serializers.DictField):
        _bound_integers(field.child)
    if not isinstance(field, serializers.IntegerField):
        return
    if field.max_value is None:
        field.max_value = BIGINT_MAX
        message = field.error_messages["max_value"].format(max_value=BIGINT_MAX)
        field.validators.append(MaxValueValidator(BIGINT_MAX, message=message))
    if field.min_value is None:
        field.min_value = BIGINT_MIN
        message = field.error_messages["min_value"].format(min_value=BIGINT_MIN)
        field.validators.append(MinValueValidator(BIGINT_MIN, message=message))
