"""`kvplan calibrate` (being built)."""


def calibrate() -> None:
    """calibrate (being built)."""
