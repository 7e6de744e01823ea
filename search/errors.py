"""SearchError: a search that cannot run as asked, naming the request's fields at fault."""

from __future__ import annotations

from echoroo.errors import DomainError


class SearchError(DomainError):
    """`errors` maps each request field at fault ("embedding", "clip_uuid", "model_name", "file"...) to why.

    The API answers it as a 400 with DRF's usual body, {field: [message]}.
    """
