"""Fuzz every reader: any input reads into a valid result or fails with kvplan's own error.

Each input kind (every trace format, workload Parquet, hardware profiles, price tables,
model configs) gets mutated seed documents (tests/fuzz_inputs.py); the property is checked by
:func:`fuzz_inputs.check_case`. The longer run is bench/bench_fuzz.py. The examples per kind
keep this file well under a minute on 2 cores.
"""

from __future__ import annotations

import fuzz_inputs as F
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from kvplan.cli.main import app

SETTINGS = settings(max_examples=150, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.mark.parametrize("kind", F.KINDS)
def test_any_input_reads_or_fails_with_a_one_line_error_naming_the_file(kind, tmp_path):
    folder = tmp_path

    @SETTINGS
    @given(st.data())
    def check(data):
        case = F.make_case(kind, F.Chooser.from_hypothesis(data))
        path = F.write_case(case, folder)
        problem = F.check_case(case, path)
        assert problem is None, f"{problem}\ninput: {case.data[:500]!r}"

    check()


@settings(max_examples=25, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.data())
def test_through_the_cli_a_bad_trace_exits_2_never_1(tmp_path_factory, data):
    """The CLI turns every reader error into exit 2 and one line; no output file is left."""
    kind = data.draw(st.sampled_from(list(F.TRACE_FORMATS) + ["parquet"]))
    case = F.make_case(kind, F.Chooser.from_hypothesis(data))
    folder = tmp_path_factory.mktemp("fuzz-cli")
    src = F.write_case(case, folder)
    out = folder / "out.parquet"
    r = CliRunner().invoke(app, ["trace", "convert", str(src), "-o", str(out), "--format",
                                 case.fmt], env={"COLUMNS": "120"})
    assert r.exit_code in (0, 2), (r.exit_code, r.output, case.data[:300])
    if r.exit_code == 2:
        lines = [x for x in r.output.splitlines() if x.strip()]
        assert len(lines) == 1 and lines[0].startswith("Error: "), r.output
        assert not out.exists()
    assert not list(folder.glob(".*.tmp"))
