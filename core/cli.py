"""Command line: ``python -m core {models,samplers,evaluate,run}``.

Errors a user can cause end in one readable line on stderr and exit status 2;
anything else is a bug and exits 1 with a one-line summary as well (set
QCL_DEBUG=1 for the traceback).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

from core.errors import QCLError
from core.jsonable import to_jsonable


def _write_json(obj: dict, out: Path | None) -> None:
    text = json.dumps(to_jsonable(obj), indent=2, allow_nan=False)
    if out is None:
        print(text)
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")
        print(f"wrote {out}")


def cmd_models(args: argparse.Namespace) -> int:
    from core.models import list_models

    specs = list_models()
    if args.json:
        _write_json({"models": [vars(s) | {"input_shape": list(s.input_shape)} for s in specs]}, None)
        return 0
    width = max(len(s.name) for s in specs)
    for s in specs:
        shape = "x".join(map(str, s.input_shape))
        print(f"{s.name:<{width}}  {s.family:<11}  input {shape:<7}  data {s.default_data:<6}  {s.description}")
    return 0


def cmd_samplers(args: argparse.Namespace) -> int:
    from core.solvers import available_samplers

    infos = available_samplers()
    if args.json:
        _write_json({"samplers": [
            {"name": i.name, "available": i.is_available, "reason": i.reason_unavailable, "description": i.description}
            for i in infos
        ]}, None)
        return 0
    width = max(len(i.name) for i in infos)
    for i in infos:
        status = "available" if i.is_available else f"unavailable: {i.reason_unavailable}"
        print(f"{i.name:<{width}}  {status}\n{'':<{width}}  {i.description}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from core.workspace import evaluate_report, open_workspace

    ws = open_workspace(args.model, data=args.data, weights=args.weights, seed=args.seed)
    report = evaluate_report(ws, latency_repeats=args.repeats, threads=args.threads)
    _write_json(report, args.out)
    if args.out is not None:
        print(f"{args.model}: accuracy {report['accuracy']:.4f} on {report['num_examples']} {ws.data.name} "
              f"examples, {report['params']} params, {report['size_bits']} bits")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from core.runs import run_from_args

    report, bqm = run_from_args(args)
    if args.bqm is not None:
        args.bqm.parent.mkdir(parents=True, exist_ok=True)
        args.bqm.write_text(json.dumps(to_jsonable(bqm.to_serializable()), allow_nan=False))
    _write_json(report, args.out)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m core", description="QUBO Compression Lab engine")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("models", help="list built-in and torchvision models")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("samplers", help="list samplers and whether each is available here")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_samplers)

    p = sub.add_parser("evaluate", help="accuracy, loss, size and latency of a model")
    p.add_argument("--model", required=True)
    p.add_argument("--data", default=None, help="digits or random (default: the model's own)")
    p.add_argument("--weights", default="default", choices=["default", "random", "pretrained"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--repeats", type=int, default=20, help="timed runs per latency measurement")
    p.add_argument("--threads", type=int, default=1, help="torch threads during latency measurement")
    p.add_argument("--out", type=Path, default=None)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("run", help="formulate, solve, compress and evaluate")
    from core.runs import add_run_arguments

    add_run_arguments(p)
    p.set_defaults(func=cmd_run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except QCLError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - last line of defence: one line, not a traceback
        if os.environ.get("QCL_DEBUG"):
            traceback.print_exc()
        print(f"error: unexpected failure ({type(exc).__name__}: {exc}); set QCL_DEBUG=1 for details",
              file=sys.stderr)
        return 1
