"""Why a PATCH could not be applied (pure). The admin API turns these into 4xx answers."""

from __future__ import annotations


class PatchError(Exception):
    """The patch document is malformed or does not fit the item: a 400 for the client."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class PatchConflictError(PatchError):
    """The patch is well formed but the item is not in the state it expects (a failed JSON
    Patch ``test``): a 409, as RFC 5789 §2.2 suggests for a conflicting state."""
