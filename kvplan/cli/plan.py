"""`kvplan plan` (being built)."""


def plan() -> None:
    """plan (being built)."""
