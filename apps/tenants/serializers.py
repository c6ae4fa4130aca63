from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from rest_framework import serializers

from apps.core.permissions import Role
from apps.core.serializers import StrictSerializer

from .models import ApiKey, Membership, Workspace, validate_workspace_slug


class WorkspaceSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    # A string, not a "uri": it is empty when the workspace has no webhook.
    webhook_url = serializers.CharField(read_only=True, help_text="The notification webhook, or empty for none.")

    class Meta:
        model = Workspace
        fields = ["id", "name", "slug", "is_active", "email_domains", "webhook_url", "created_at"]
        read_only_fields = fields


class WorkspaceProvisionSerializer(StrictSerializer):
    name = serializers.CharField(max_length=100)
    slug = serializers.CharField(max_length=40, validators=[validate_workspace_slug])
    owner = serializers.CharField(required=False, help_text="Username or email of the first owner.")
    email_domains = serializers.ListField(child=serializers.CharField(max_length=253), required=False)


class WorkspaceUpdateSerializer(StrictSerializer):
    name = serializers.CharField(max_length=100, required=False)
    email_domains = serializers.ListField(child=serializers.CharField(max_length=253), required=False)
    webhook_url = serializers.URLField(required=False, allow_blank=True)


class ProvisionedSerializer(serializers.Serializer):  # type: ignore[type-arg]
    workspace = WorkspaceSerializer()
    seconds = serializers.FloatField()


class MemberUserSerializer(serializers.Serializer):  # type: ignore[type-arg]
    id = serializers.IntegerField()
    username = serializers.CharField()
    email = serializers.EmailField()


class MembershipSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    user = MemberUserSerializer(read_only=True)

    class Meta:
        model = Membership
        fields = ["id", "user", "role", "created_at"]
        read_only_fields = fields


class MembershipCreateSerializer(StrictSerializer):
    user = serializers.CharField(help_text="Username or email of an existing user.")
    role = serializers.ChoiceField(choices=Role.choices)

    def validate_user(self, value: str) -> Any:
        user_model = get_user_model()
        user = (
            user_model.objects.filter(username=value).first() or user_model.objects.filter(email__iexact=value).first()
        )
        if user is None:
            raise serializers.ValidationError("No user with this username or email.")
        return user


class MembershipUpdateSerializer(StrictSerializer):
    role = serializers.ChoiceField(choices=Role.choices)


class ApiKeySerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    is_live = serializers.BooleanField(read_only=True)

    class Meta:
        model = ApiKey
        fields = ["id", "name", "prefix", "role", "created_at", "last_used_at", "expires_at", "revoked_at", "is_live"]
        read_only_fields = fields


class ApiKeyCreateSerializer(StrictSerializer):
    name = serializers.CharField(max_length=100)
    role = serializers.ChoiceField(choices=Role.choices, default=Role.OPERATOR)
    expires_at = serializers.DateTimeField(required=False, allow_null=True)


class ApiKeyCreatedSerializer(ApiKeySerializer):
    token = serializers.CharField(read_only=True, help_text="Shown once. Store it now.")

    class Meta(ApiKeySerializer.Meta):
        fields = [*ApiKeySerializer.Meta.fields, "token"]
        read_only_fields = fields
