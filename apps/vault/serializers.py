from __future__ import annotations

from typing import Any

from rest_framework import serializers

from apps.core.serializers import StrictSerializer

from .models import (
    AccessRecord,
    Decision,
    Grant,
    OAuthConnection,
    Secret,
    SecretKind,
    SubjectType,
    Tier,
    TokenAuthMethod,
)
from .services import MAX_VALUE_CHARS


def _secret_value_field(*, required: bool) -> serializers.CharField:
    # Write-only: accepted on input, never part of any response.
    return serializers.CharField(
        write_only=True,
        required=required,
        trim_whitespace=False,
        max_length=MAX_VALUE_CHARS,
        style={"input_type": "password"},
    )


class SecretSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    key_version = serializers.SerializerMethodField()
    live_grants = serializers.IntegerField(read_only=True, default=0)

    class Meta:
        model = Secret
        fields = [
            "id",
            "name",
            "kind",
            "tier",
            "description",
            "key_version",
            "live_grants",
            "created_at",
            "updated_at",
            "value_changed_at",
            "created_by",
        ]
        read_only_fields = fields

    def get_key_version(self, obj: Secret) -> int | None:
        return obj.value.key_version if obj.value is not None else None


class SecretCreateSerializer(StrictSerializer):
    name = serializers.CharField(max_length=100)
    value = _secret_value_field(required=True)
    kind = serializers.ChoiceField(choices=SecretKind.choices, default=SecretKind.API_KEY)
    tier = serializers.ChoiceField(choices=Tier.choices, default=Tier.L2)
    description = serializers.CharField(required=False, allow_blank=True, default="")


class SecretUpdateSerializer(StrictSerializer):
    name = serializers.CharField(max_length=100, required=False)
    value = _secret_value_field(required=False)
    kind = serializers.ChoiceField(choices=SecretKind.choices, required=False)
    tier = serializers.ChoiceField(choices=Tier.choices, required=False)
    description = serializers.CharField(required=False, allow_blank=True)


class GrantSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    secret_name = serializers.CharField(source="secret.name", read_only=True)
    state = serializers.CharField(read_only=True)

    class Meta:
        model = Grant
        fields = [
            "id",
            "secret",
            "secret_name",
            "subject_type",
            "subject_id",
            "mission_id",
            "expires_at",
            "note",
            "state",
            "created_at",
            "created_by",
            "revoked_at",
            "revoked_by",
            "revoke_reason",
        ]
        read_only_fields = fields


class GrantCreateSerializer(StrictSerializer):
    secret = serializers.UUIDField(help_text="The secret's id.")
    subject_type = serializers.ChoiceField(choices=SubjectType.choices)
    subject_id = serializers.UUIDField(help_text="The crew's or the agent's id.")
    mission_id = serializers.UUIDField(required=False, allow_null=True, help_text="Only within this mission.")
    expires_at = serializers.DateTimeField(required=False, allow_null=True, help_text="Lease end.")
    lease_seconds = serializers.IntegerField(
        required=False, min_value=1, max_value=366 * 24 * 3600, help_text="Lease length; instead of expires_at."
    )
    note = serializers.CharField(required=False, allow_blank=True, max_length=300, default="")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs.get("expires_at") and attrs.get("lease_seconds"):
            raise serializers.ValidationError({"lease_seconds": ["Give expires_at or lease_seconds, not both."]})
        return attrs


class GrantRevokeSerializer(StrictSerializer):
    reason = serializers.CharField(required=False, allow_blank=True, max_length=300, default="")


class AccessRecordSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    class Meta:
        model = AccessRecord
        fields = [
            "id",
            "created_at",
            "secret_id",
            "secret_name",
            "tier",
            "crew_id",
            "agent_id",
            "mission_id",
            "tool_name",
            "intent",
            "decision",
            "reason_code",
            "reason",
            "judge",
            "grant_id",
            "approval_reference",
            "request_id",
            "duration_ms",
        ]
        read_only_fields = fields


class AccessFilterSerializer(StrictSerializer):
    secret = serializers.UUIDField(required=False)
    decision = serializers.ChoiceField(choices=Decision.choices, required=False)
    crew = serializers.UUIDField(required=False)
    agent = serializers.UUIDField(required=False)
    mission = serializers.UUIDField(required=False)
    cursor = serializers.CharField(required=False)
    page_size = serializers.IntegerField(required=False)


class OAuthConnectionSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    has_refresh_token = serializers.SerializerMethodField()

    class Meta:
        model = OAuthConnection
        fields = [
            "id",
            "provider",
            "display_name",
            "client_id",
            "token_url",
            "auth_method",
            "scopes",
            "state",
            "expires_at",
            "has_refresh_token",
            "last_refreshed_at",
            "refresh_count",
            "last_error_code",
            "last_error",
            "last_error_at",
            "broken_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def get_has_refresh_token(self, obj: OAuthConnection) -> bool:
        return obj.refresh_token is not None


class OAuthConnectionCreateSerializer(StrictSerializer):
    provider = serializers.SlugField(max_length=50)
    display_name = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    client_id = serializers.CharField(max_length=300)
    client_secret = _secret_value_field(required=True)
    token_url = serializers.URLField(max_length=500)
    auth_method = serializers.ChoiceField(choices=TokenAuthMethod.choices, required=False)
    scopes = serializers.CharField(max_length=1000, required=False, allow_blank=True, default="")
    refresh_token = _secret_value_field(required=False)
    access_token = _secret_value_field(required=False)
    expires_at = serializers.DateTimeField(required=False, allow_null=True)


class OAuthConnectionUpdateSerializer(StrictSerializer):
    display_name = serializers.CharField(max_length=100, required=False, allow_blank=True)
    client_id = serializers.CharField(max_length=300, required=False)
    client_secret = _secret_value_field(required=False)
    token_url = serializers.URLField(max_length=500, required=False)
    auth_method = serializers.ChoiceField(choices=TokenAuthMethod.choices, required=False)
    scopes = serializers.CharField(max_length=1000, required=False, allow_blank=True)
    refresh_token = _secret_value_field(required=False)
    access_token = _secret_value_field(required=False)
    expires_at = serializers.DateTimeField(required=False, allow_null=True)
