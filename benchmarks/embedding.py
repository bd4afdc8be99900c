"""Clique vs heuristic minor embedding of dense problems (DESIGN section 6).

For fully connected problems of 20, 40 and 60 variables on the Advantage-like
Pegasus P16 and Advantage2-like Zephyr Z12 graphs, compare
``minorminer.busclique.find_clique_embedding`` (the project's fast path) with
the general ``minorminer.find_embedding`` heuristic: wall time, chain lengths
and qubits used. Every embedding is checked for validity. Prints a markdown
table.

    python benchmarks/embedding.py [--sizes 20 40 60] [--topologies pegasus zephyr]
                                   [--seed 0] [--timeout 300]

The clique embedder keeps a per-topology cache on disk; it is warmed up once
before timing (the one-off cost is printed separately), since that is what a
running app sees.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import dimod
from dwave.embedding import is_valid_embedding

from core.embedding import (
    EmbeddingNotFoundError,
    find_embedding,
    get_topology,
    problem_graph,
)


def warm_up(topology: str) -> float:
    """Build the graph and the busclique cache; return the seconds it took."""
    t0 = time.perf_counter()
    topo = get_topology(topology)
    find_embedding([(0, 1)], topo, "clique", use_cache=False)
    return time.perf_counter() - t0


def run(
    sizes: list[int], topologies: list[str], seed: int, timeout: float
) -> list[dict]:
    rows: list[dict] = []
    for topology in topologies:
        cold = warm_up(topology)
        print(
            f"# {topology}: graph + clique cache warm-up {cold:.2f} s", file=sys.stderr
        )
        topo = get_topology(topology)
        for n in sizes:
            bqm = dimod.generators.gnp_random_bqm(n, 1.0, "BINARY", random_state=seed)
            source = problem_graph(bqm)
            for method in ("clique", "heuristic"):
                t0 = time.perf_counter()
                try:
                    result = find_embedding(
                        bqm, topo, method, seed=seed, timeout=timeout, use_cache=False
                    )
                except EmbeddingNotFoundError:
                    rows.append(
                        {
                            "topology": topo.label,
                            "n": n,
                            "method": method,
                            "failed": True,
                            "time_s": time.perf_counter() - t0,
                        }
                    )
                    continue
                valid = is_valid_embedding(result.embedding, source, topo.graph)
                rows.append(
                    {
                        "topology": topo.label,
                        "n": n,
                        "method": method,
                        "failed": False,
                        "time_s": result.time_s,
                        "max_chain": result.max_chain_length,
                        "mean_chain": result.mean_chain_length,
                        "qubits": result.qubits_used,
                        "valid": valid,
                    }
                )
                print(
                    f"# {topo.label} n={n} {method}: {result.time_s:.3f} s",
                    file=sys.stderr,
                )
    return rows


def markdown(rows: list[dict]) -> str:
    lines = [
        "| topology | variables | method | time (s) | max chain | mean chain | qubits used | valid |",
        "|---|---:|---|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        if r["failed"]:
            lines.append(
                f"| {r['topology']} | {r['n']} | {r['method']} | {r['time_s']:.3f} | - | - | - | no embedding found |"
            )
            continue
        lines.append(
            f"| {r['topology']} | {r['n']} | {r['method']} | {r['time_s']:.3f} | "
            f"{r['max_chain']} | {r['mean_chain']:.2f} | {r['qubits']} | {'yes' if r['valid'] else 'NO'} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[20, 40, 60])
    parser.add_argument("--topologies", nargs="+", default=["pegasus", "zephyr"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--timeout", type=float, default=300.0, help="heuristic time limit (s)"
    )
    args = parser.parse_args(argv)

    rows = run(args.sizes, args.topologies, args.seed, args.timeout)
    print(
        f"Dense (complete-graph) problems, seed {args.seed}, heuristic timeout {args.timeout:g} s; "
        f"{platform.processor() or platform.machine()}, Python {platform.python_version()}.\n"
    )
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
