"""``EncryptedTextField``: a model field that stores AES-256-GCM ciphertext bound to its row.

Usage (any app)::

    class OAuthConnection(models.Model):
        id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
        client_secret = EncryptedTextField()

    conn.client_secret = "s3cr3t"     # plaintext is kept only until save()
    conn.save()                       # encrypted in pre_save with the current key
    conn.client_secret                # a Sealed handle: repr/str never show the value
    conn.client_secret.reveal()       # decrypts (workspace schema, model, field and pk in the AAD)

Why a handle instead of the plaintext as the attribute value: Django hands ``from_db_value``
neither the row nor its primary key, so the value cannot be decrypted at load time; and a
handle that prints as ``<sealed v1>`` cannot end up in a template, a log line, a serializer
or a prompt by accident. Decrypting is always the explicit ``reveal()``.

Rules the field enforces:
- the primary key must be known before the first save (use a UUID pk with a default);
- plaintext can only be written through ``save()`` (``QuerySet.update(field="x")`` raises),
  while raw ciphertext bytes pass through (that is how rotation rewrites rows);
- no lookups other than ``isnull`` (comparing ciphertexts is meaningless).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.core import checks
from django.db import DEFAULT_DB_ALIAS, connections, models
from django.db.models.query_utils import DeferredAttribute
from django.views.decorators.debug import sensitive_variables

from .crypto import SealContext, key_version, seal, unseal


@dataclass(frozen=True)
class _Stored:
    ciphertext: bytes
    schema: str  # the schema the row was read from or written to


@dataclass(frozen=True)
class _Pending:
    plaintext: str

    def __repr__(self) -> str:
        return "_Pending(<hidden>)"


def _active_schema(alias: str = DEFAULT_DB_ALIAS) -> str:
    return str(getattr(connections[alias], "schema_name", "public"))


class Sealed:
    """The attribute value of an encrypted field. Never shows its plaintext unless asked."""

    __slots__ = ("_field", "_instance")

    def __init__(self, instance: models.Model, field: EncryptedTextField):
        self._instance = instance
        self._field = field

    @property
    def _state(self) -> _Stored | _Pending:
        return self._instance.__dict__[self._field.attname]  # type: ignore[no-any-return]

    @property
    def is_saved(self) -> bool:
        return isinstance(self._state, _Stored)

    @property
    def key_version(self) -> int | None:
        state = self._state
        return key_version(state.ciphertext) if isinstance(state, _Stored) else None

    @property
    def ciphertext(self) -> bytes | None:
        state = self._state
        return state.ciphertext if isinstance(state, _Stored) else None

    def context(self) -> SealContext:
        state = self._state
        schema = state.schema if isinstance(state, _Stored) else _active_schema()
        return self._field.seal_context(schema=schema, pk=self._instance.pk)

    @sensitive_variables()
    def reveal(self) -> str:
        """The plaintext. Raises ``DecryptionFailed`` when the ciphertext does not belong here."""
        state = self._state
        if isinstance(state, _Pending):
            return state.plaintext
        return unseal(state.ciphertext, context=self.context())

    def __repr__(self) -> str:
        version = self.key_version
        return "<sealed, unsaved>" if version is None else f"<sealed v{version}>"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        # Two handles are equal only when they hold the same ciphertext; plaintexts are never compared.
        return isinstance(other, Sealed) and self.is_saved and self.ciphertext == other.ciphertext

    def __hash__(self) -> int:
        return hash(self.ciphertext)

    def __reduce__(self) -> Any:
        raise TypeError("A sealed value cannot be pickled on its own; pickle the model instance.")


class _EncryptedDescriptor(DeferredAttribute):
    """Stores ``_Stored``/``_Pending`` in ``instance.__dict__[attname]``; hands out ``Sealed``."""

    field: EncryptedTextField

    def __get__(self, instance: Any, cls: Any = None) -> Any:
        if instance is None:
            return self
        state = super().__get__(instance, cls)  # loads a deferred value first
        if state is None:
            return None
        return Sealed(instance, self.field)

    def __set__(self, instance: Any, value: Any) -> None:
        instance.__dict__[self.field.attname] = self.field.to_state(value)


class EncryptedTextField(models.BinaryField):
    """Text encrypted with AES-256-GCM under the vault key ring (see module docstring)."""

    descriptor_class = _EncryptedDescriptor
    # For django-stubs: what the attribute accepts and what it hands out.
    _pyi_private_set_type: str | Sealed | bytes | None
    _pyi_private_get_type: Sealed  # type: ignore[assignment]
    description = "Text encrypted with AES-256-GCM, bound to workspace, model, field and primary key"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("editable", False)  # forms and serializers never see the value
        kwargs.setdefault("null", True)
        kwargs.setdefault("blank", True)
        super().__init__(*args, **kwargs)

    def deconstruct(self) -> Any:
        name, path, args, kwargs = super().deconstruct()
        # Record only departures from this field's own defaults, so migrations stay stable.
        for key in ("null", "blank", "editable"):
            kwargs.pop(key, None)
        if not self.null:
            kwargs["null"] = False
        if not self.blank:
            kwargs["blank"] = False
        if self.editable:
            kwargs["editable"] = True
        return name, path, args, kwargs

    def check(self, **kwargs: Any) -> list[checks.CheckMessage]:
        errors = list(super().check(**kwargs))
        model = getattr(self, "model", None)
        if model is not None and not model._meta.abstract:
            pk = model._meta.pk
            if pk is not None and not isinstance(pk, models.UUIDField):
                errors.append(
                    checks.Warning(
                        "Encrypted fields bind ciphertext to the primary key, which must be known before "
                        "the first save; use a UUIDField primary key with a default.",
                        obj=self,
                        id="vault.W001",
                    )
                )
        return errors

    # --- state ---------------------------------------------------------------------------------
    def to_state(self, value: Any) -> _Stored | _Pending | None:
        if value is None:
            return None
        if isinstance(value, Sealed):
            return value._state  # the ciphertext stays bound to where it was sealed
        if isinstance(value, memoryview):
            value = value.tobytes()
        if isinstance(value, (bytes, bytearray)):
            # b"" is BinaryField's default for a new, non-null row: nothing is stored yet.
            return _Stored(bytes(value), _active_schema()) if value else None
        if isinstance(value, str):
            return _Pending(value)
        raise TypeError(f"{self.model.__name__}.{self.name} takes a str (plaintext), not {type(value).__name__}")

    def seal_context(self, *, schema: str, pk: Any) -> SealContext:
        if pk is None:
            raise ValueError(
                f"{self.model._meta.label}.{self.name}: the primary key must be set before encrypting "
                "(it is part of the associated data); use a UUID primary key with a default."
            )
        return SealContext(schema=schema, model=self.model._meta.label_lower, field=self.name, pk=str(pk))

    # --- persistence ---------------------------------------------------------------------------
    @sensitive_variables()
    def pre_save(self, model_instance: models.Model, add: bool) -> Any:
        state = model_instance.__dict__.get(self.attname)
        if isinstance(state, _Pending):
            schema = _active_schema(model_instance._state.db or DEFAULT_DB_ALIAS)
            ciphertext = seal(state.plaintext, context=self.seal_context(schema=schema, pk=model_instance.pk))
            # Drop the plaintext from the instance as soon as it is sealed.
            model_instance.__dict__[self.attname] = _Stored(ciphertext, schema)
            return ciphertext
        if isinstance(state, _Stored):
            return state.ciphertext
        return None

    def get_db_prep_value(self, value: Any, connection: Any, prepared: bool = False) -> Any:
        if isinstance(value, Sealed):
            state = value._state
            if isinstance(state, _Pending):
                raise TypeError(f"{self.name}: save the instance to encrypt a new value")
            value = state.ciphertext
        elif isinstance(value, _Stored):
            value = value.ciphertext
        elif isinstance(value, (str, _Pending)):
            raise TypeError(
                f"{self.name}: plaintext can only be written through Model.save(), which binds it to the row"
            )
        return super().get_db_prep_value(value, connection, prepared)

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> bytes | None:
        if value is None:
            return None
        return bytes(value)

    def to_python(self, value: Any) -> Any:
        # Sealed handles and raw states pass through full_clean() untouched.
        return value

    def value_from_object(self, obj: models.Model) -> bytes | None:  # type: ignore[override]
        # What serializers (dumpdata) and model_to_dict see: the ciphertext, never plaintext.
        state = obj.__dict__.get(self.attname)
        return state.ciphertext if isinstance(state, _Stored) else None

    def value_to_string(self, obj: models.Model) -> str:
        import base64

        ciphertext = self.value_from_object(obj)
        return "" if ciphertext is None else base64.b64encode(ciphertext).decode("ascii")

    def get_lookup(self, lookup_name: str) -> Any:
        if lookup_name != "isnull":
            return None  # FieldError: comparing ciphertexts is meaningless
        return super().get_lookup(lookup_name)


def encrypted_fields(model: type[models.Model]) -> list[EncryptedTextField]:
    """The encrypted fields stored in ``model``'s own table."""
    return [f for f in model._meta.local_concrete_fields if isinstance(f, EncryptedTextField)]
