from __future__ import annotations

from rest_framework import serializers

from apps.core.serializers import StrictSerializer

from .models import Notification


class NotificationSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    class Meta:
        model = Notification
        fields = ["id", "kind", "subject", "body", "link", "created_at", "read_at"]
        read_only_fields = fields


class MarkReadSerializer(StrictSerializer):
    ids = serializers.ListField(child=serializers.IntegerField(min_value=1), required=False, max_length=1000)


class MarkedSerializer(serializers.Serializer):  # type: ignore[type-arg]
    marked = serializers.IntegerField()
