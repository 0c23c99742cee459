"""`kvplan replay` (being built)."""


def replay() -> None:
    """replay (being built)."""
