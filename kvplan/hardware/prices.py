"""PriceTable: dollars per GiB of each KV tier and per GPU-hour, from a TOML data file.

The bundled table (hwprofiles/prices.toml) cites a source and a date for every price; users
pass their own file with the same fields. See docs/cost-model.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path

from kvplan.bundled import bundled_file
from kvplan.errors import InputError
from kvplan.hardware.validate import check_keys, read_toml, typed_value

PRICES_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class PriceTable:
    """What a GiB of each tier and a GPU-hour cost."""

    usd_per_gib_hbm: float
    """GPU price attributed to its HBM (GPU cost / HBM GiB): the cost of HBM-resident KV."""
    usd_per_gib_dram: float
    """Server DRAM, per GiB."""
    usd_per_gib_ssd: float
    """Enterprise NVMe, per GiB."""
    usd_per_gpu_hour: float
    """Rental price of one GPU for an hour."""
    sources: dict[str, str] = field(default_factory=dict)
    """Price field -> where the figure comes from."""
    dates: dict[str, str] = field(default_factory=dict)
    """Price field -> when it was observed (YYYY-MM)."""


PRICE_FIELDS = tuple(f.name for f in fields(PriceTable) if f.name.startswith("usd_"))


def load_prices(path: str | Path | None = None) -> PriceTable:
    """The price table at ``path`` (None: the bundled hwprofiles/prices.toml), validated."""
    path = Path(path) if path is not None else bundled_file("hwprofiles", "prices.toml")
    data = read_toml(path)
    if data.get("schema_version") != PRICES_SCHEMA_VERSION:
        raise InputError(path, f"expected schema_version = {PRICES_SCHEMA_VERSION}",
                         field="schema_version")
    check_keys(path, "", data, {"schema_version", "prices", "sources", "dates"}, {"prices"})
    prices = data["prices"]
    check_keys(path, "prices", prices, set(PRICE_FIELDS), set(PRICE_FIELDS))
    values = {k: typed_value(path, f"prices.{k}", prices[k], float) for k in PRICE_FIELDS}
    for key, value in values.items():
        if not 0 <= value < 1e6:
            raise InputError(path, f"{value!r} is out of range (expected 0 to 1e6 USD)",
                             field=f"prices.{key}")
    notes = {t: _notes(path, t, data.get(t, {})) for t in ("sources", "dates")}
    return PriceTable(**values, **notes)


def _notes(path: Path, table: str, entries: object) -> dict[str, str]:
    if not isinstance(entries, dict):
        raise InputError(path, "expected a table of strings", field=table)
    check_keys(path, table, entries, set(PRICE_FIELDS), set())
    return {k: typed_value(path, f"{table}.{k}", v, str) for k, v in entries.items()}
