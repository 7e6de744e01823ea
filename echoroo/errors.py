"""The one domain error: what a service refuses, naming each field at fault, or a state that forbids it now.

Every app's error is this class under its own name (ConfigError, SearchError, ClassifierError,
ExportError, ValidationError, AnnotationError), so that one DRF exception handler
(echoroo.api.errors.exception_handler) answers them all the same way: a 400 with DRF's usual body
{field: [message]}, or a 409 {"detail": ...} when `conflict` is set (a job's or classifier's status).
"""

from __future__ import annotations


class DomainError(ValueError):
    """`errors` maps each field at fault to what is wrong with it; `conflict`: the state forbids this now (409)."""

    # Fields whose presence makes the error a conflict (e.g. "status": a job not in a state that allows it).
    CONFLICT_FIELDS: tuple[str, ...] = ()

    def __init__(self, errors: dict[str, str], *, conflict: bool = False):
        self.errors = dict(errors)
        self.conflict = conflict or any(name in self.errors for name in self.CONFLICT_FIELDS)
        super().__init__(self.message)

    def renamed(self, names: dict[str, str]) -> DomainError:
        """The same error with the services' field names as the request spells them (e.g. model_run -> source_uuid)."""
        return type(self)(
            {names.get(field, field): message for field, message in self.errors.items()}, conflict=self.conflict
        )

    @property
    def message(self) -> str:
        return "; ".join(f"{field}: {message}" for field, message in self.errors.items())
