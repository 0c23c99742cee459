"""Check every vLLM line kvplan emits with vLLM 0.34.0's own parser and config builder.

For a set of planned configurations (HBM only, CPU tier, CPU + SSD, ARC, selective offload,
tensor parallel, an odd disk directory, small trace blocks), each vLLM-based engine's command
(``vllm``, ``vllm+lmcache``, and the vLLM arguments of ``dynamo-kvbm``) is split with
``shlex`` and given to

1. ``vllm serve``'s argument parser (``make_arg_parser`` + ``validate_parsed_serve_args``),
2. ``AsyncEngineArgs.from_cli_args(...).create_engine_config()`` on a stand-in H100,
3. for native offloading, vLLM's own factories for what the config names: the offloading
   spec (``spec_name``), the CPU eviction policy and every secondary tier type; for a
   connector, ``KVConnectorFactory.get_connector_class`` (imports the connector's module),

and the resolved config is compared with what was planned (block size, device pool bytes,
CPU bytes). The Dynamo line runs on Dynamo's pinned vLLM 0.31.0; its vLLM arguments are parsed
here with 0.34.0 and its config is not built: ``create_engine_config()`` imports the
connector, and kvbm's compiled core links NVIDIA NIXL (``libnixl.so``, CUDA); the bench checks
that ``kvbm.vllm_integration.connector`` exports ``DynamoConnector`` instead. ``python -m
dynamo.vllm``'s own parser is not run (it needs the compiled Dynamo runtime). Needs the venv of bench/vllm_cpu.py (about 2.2 GB; no GPU)::

    PYTHONPATH=. /work/venvs/engines/bin/python bench/engines_check.py

Prints one row per (configuration, engine) and exits 1 if a line kvplan calls deployable
fails; a line whose settings already carry a VIOLATED rule is expected to be refused.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import shlex
import sys
import tempfile
import time
import traceback
from pathlib import Path

import vllm_cpu

from kvplan.engines import TierChoice, engine
from kvplan.engines.base import GB, GIB

CHOICES = {
    "hbm only": {},
    "dram lru": {"dram_bytes": 100 * GIB},
    "dram arc": {"dram_bytes": 100 * GIB, "eviction": "arc"},
    "dram+ssd": {"dram_bytes": 100 * GIB, "ssd_bytes": 400 * GIB},
    "ssd only": {"ssd_bytes": 50 * GB},
    "selective": {"dram_bytes": 64 * GIB, "write": "write-through-selective"},
    "tp 2": {"dram_bytes": 64 * GIB, "ssd_bytes": 64 * GIB, "tp": 2},
    "odd dir": {"dram_bytes": GIB, "ssd_bytes": GIB, "disk_dir": "/mnt/k v's $HOME"},
    "block 48": {"block_size": 48, "dram_bytes": 8 * GIB},
    "hbm lru, cpu arc": {"dram_bytes": 100 * GIB, "evictions": ("lru", "arc", "arc")},
    "selective + ssd": {"dram_bytes": 64 * GIB, "ssd_bytes": 200 * GIB,
                        "write": "write-through-selective"},
    # the default `kvplan plan`'s recommendation for every engine: 1 replica, tp 2
    "default plan": {"hbm_kv_bytes": 31 * GIB, "dram_bytes": 78 * GIB, "ssd_bytes": 1300 * GIB,
                     "tp": 2},
}
ENGINES = ("vllm", "vllm+lmcache", "dynamo-kvbm")
PROGRAMS = {"vllm": ["vllm", "serve"], "vllm+lmcache": ["vllm", "serve"],
            "dynamo-kvbm": ["python", "-m", "dynamo.vllm"]}


def serve_parser():
    from vllm.entrypoints.common.cli_args import make_arg_parser
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    parser = FlexibleArgumentParser(prog="vllm")
    make_arg_parser(parser.add_subparsers(dest="subparser").add_parser("serve"))
    return parser


def check_line(parser, name: str, choice: TierChoice) -> str:
    """Parse and build the config of one engine's line; returns what was verified."""
    from vllm.engine.arg_utils import AsyncEngineArgs
    from vllm.entrypoints.common.cli_args import validate_parsed_serve_args

    s = engine(name).settings(choice)
    words = shlex.split(s.command())
    program = PROGRAMS[name]
    start = words.index(program[0])
    assert words[start:start + len(program)] == program, words[:start + len(program)]
    args = parser.parse_args(["serve"] + words[start + len(program):])
    if getattr(args, "model_tag", None):
        args.model = args.model_tag
    validate_parsed_serve_args(args)
    kv = args.kv_transfer_config
    if kv is not None and kv.kv_connector_module_path:
        # create_engine_config() imports the connector; kvbm's links NIXL (libnixl.so, CUDA)
        assert kv.kv_role == "kv_both"
        return (f"parsed only: {kv.kv_connector} exported by "
                f"{exported_by(kv.kv_connector_module_path, kv.kv_connector)}; config not built "
                "(kvbm's compiled core links libnixl.so)")
    cfg = AsyncEngineArgs.from_cli_args(args).create_engine_config()
    assert cfg.cache_config.block_size == int(s.settings["--block-size"])
    assert cfg.cache_config.kv_cache_memory_bytes == choice.hbm_kv_bytes // choice.tp
    assert cfg.cache_config.enable_prefix_caching
    assert cfg.scheduler_config.max_num_batched_tokens == choice.max_batched_tokens
    assert cfg.parallel_config.tensor_parallel_size == choice.tp
    kv = cfg.kv_transfer_config
    if not (choice.dram_bytes or choice.ssd_bytes):
        assert kv is None, kv
        return "no connector"
    return verify_connector(kv, choice)


def verify_connector(kv, choice: TierChoice) -> str:
    from vllm.distributed.kv_transfer.kv_connector.factory import KVConnectorFactory

    assert kv.kv_role == "kv_both"
    if kv.kv_connector != "OffloadingConnector":
        cls = KVConnectorFactory.get_connector_class(kv)
        return f"{kv.kv_connector} -> {cls.__module__}"
    from vllm.v1.kv_offload.cpu.policies.factory import CachePolicyFactory
    from vllm.v1.kv_offload.factory import OffloadingSpecFactory
    from vllm.v1.kv_offload.tiering.factory import SecondaryTierFactory

    extra = kv.kv_connector_extra_config
    assert extra["cpu_bytes_to_use"] >= choice.dram_bytes, extra
    assert extra["cpu_bytes_to_use"] > 0, "CPUOffloadingSpec needs cpu_bytes_to_use (cpu/spec.py:99)"
    spec = OffloadingSpecFactory.get_spec_cls(extra)
    policy = CachePolicyFactory.get_cache_policy_cls(extra.get("eviction_policy", "lru"))
    tiers = [SecondaryTierFactory.get_tier_class(dict(t)).__name__
             for t in extra.get("secondary_tiers", [])]
    if choice.ssd_bytes:
        assert [t["root_dir"] for t in extra["secondary_tiers"]] == [choice.disk_dir]
    return f"{spec.__name__}, {policy.__name__}" + (f", {'+'.join(tiers)}" if tiers else "")


def exported_by(module: str, name: str) -> str:
    """The package ``module`` is installed and its ``__init__`` exports ``name`` (read, not
    imported: kvbm's connector imports NVIDIA NIXL, a CUDA transfer library)."""
    top, *rest = module.split(".")
    spec = importlib.util.find_spec(top)  # the top package only: importing kvbm loads NIXL
    assert spec is not None and spec.submodule_search_locations, f"{top} is not installed"
    init = Path(spec.submodule_search_locations[0]).joinpath(*rest, "__init__.py")
    assert init.exists(), f"{module} is not installed"
    tree = ast.parse(init.read_text())
    names = {a.asname or a.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
             for a in node.names}
    assert name in names, f"{module} does not export {name}"
    return module


def main() -> int:
    vllm_cpu.setup()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        model = str(vllm_cpu.model_dir(Path(tmp) / "llama-3.1-8b"))
        parser = serve_parser()
        rows, failed = [], 0
        for label, kw in CHOICES.items():
            choice = TierChoice(**({"model": model, "block_size": 512,
                                    "kv_bytes_per_token": 131_072, "hbm_kv_bytes": 40 * GIB}
                                   | kw))
            for name in ENGINES:
                flagged = not engine(name).settings(choice).ok
                try:
                    detail = check_line(parser, name, choice)
                    rows.append((label, name, "parses" if not detail.startswith("parsed only")
                                 else "parsed", detail))
                except (AssertionError, ValueError, TypeError, KeyError, ImportError,
                        SystemExit) as exc:
                    failed += not flagged
                    detail = f"{type(exc).__name__}: {exc}".splitlines()[0][:160]
                    rows.append((label, name, "refused" if flagged else "FAILS", detail))
                    if "-v" in sys.argv:
                        traceback.print_exc()
    width = max(len(r[0]) for r in rows)
    print(f"vLLM {vllm_cpu.VLLM_VERSION}: parser + create_engine_config() on every emitted line")
    for label, name, verdict, detail in rows:
        print(f"{label:<{width}}  {name:<13} {verdict:<7} {detail}")
    built = sum(r[2] == "parses" for r in rows)
    parsed = sum(r[2] == "parsed" for r in rows)
    refused = sum(r[2] == "refused" for r in rows)
    print(f"{built} of {len(rows)} lines parse and build a config, {parsed} parse only "
          f"(KVBM), {refused} refused where kvplan already flags a violated rule, {failed} "
          f"unexpected failures ({time.perf_counter() - t0:.1f} s)")
    print(json.dumps({"lines": len(rows), "parse_and_config": built, "parse_only": parsed,
                      "refused_as_flagged": refused, "unexpected_failures": failed}))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
