"""The one error the classifier services raise: what was refused, keyed by the request's field at fault."""

from __future__ import annotations

from echoroo.errors import DomainError


class ClassifierError(DomainError):
    """A request the services refuse. `errors` maps a field ("label", "model_run", "clips"…) to a message;
    the key "status" means a job or classifier is not in a state that allows it (the API answers 409)."""

    CONFLICT_FIELDS = ("status",)
