"""The API's JSON parser: DRF's, refusing what would otherwise reach the server as a 500.

Python's json module recurses once per level of nesting, so a body of 10,000 nested arrays raises
RecursionError, which DRF's parser does not catch; and PostgreSQL stores no NUL character in
text or jsonb, so a "\\u0000" in any string would fail at the database instead of in validation.
"""

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

# No request body of this API nests beyond a few levels (a job's config with a species list is 3).
MAX_DEPTH = 32


class GuardedJSONParser(JSONParser):
    """JSONParser with a nesting limit and no NUL characters, each a 400 that says which."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError as error:
            raise ParseError(f"JSON parse error - nested deeper than {MAX_DEPTH} levels.") from error
        check_json(data)
        return data


def check_json(data: object) -> None:
    """Raise ParseError if the parsed body nests deeper than MAX_DEPTH or holds a NUL character."""
    pending = [(data, 1)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, str):
            if "\x00" in value:
                raise ParseError("JSON parse error - a string contains a NUL character (\\u0000).")
            continue
        if not isinstance(value, dict | list):
            continue
        if depth > MAX_DEPTH:
            raise ParseError(f"JSON parse error - nested deeper than {MAX_DEPTH} levels.")
        children = [*value.keys(), *value.values()] if isinstance(value, dict) else value
        pending.extend((child, depth + 1) for child in children)
