"""Run history (core.store) and run-quality analysis."""

from __future__ import annotations

import datetime as dt
import json
import math
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import InvalidInputError, QCLError
from core.store import (
    SUMMARY_COLUMNS,
    RunNotFoundError,
    RunStore,
    StoreError,
    default_db_url,
    gap_percent,
    pareto_front,
    pareto_mask,
    report_quality,
    strip_secrets,
    success_probability,
    time_to_solution,
)

REPO = Path(__file__).resolve().parents[1]


def make_report(**overrides: Any) -> dict[str, Any]:
    report: dict[str, Any] = {
        "model": "digits-cnn",
        "method": "mixed-precision",
        "sampler": "sa",
        "seed": 7,
        "params": {"num_reads": 4, "num_sweeps": 100},
        "qubo": {"num_variables": 12, "num_interactions": 30},
        "energies": [-3.0, -3.0, -2.5, -1.0],
        "best": {
            "energy": -3.0,
            "feasible": True,
            "decision": {"conv1": 4, "fc": "prune"},
            "sample": {"a": 1},
        },
        "exact": {"energy": -3.0, "method": "milp"},
        "metrics": {
            "accuracy_before": 0.98,
            "accuracy_after": 0.95,
            "size_bits_before": 3200,
            "size_bits_after": 800,
            "compression_ratio": 4.0,
            "sparsity": 0.25,
            "latency_ms_before": 1.0,
            "latency_ms_after": 0.8,
        },
        "timing": {"build_s": 0.5, "embed_s": 0.0, "sample_s": 0.4, "evaluate_s": 0.1},
        "units": [
            {
                "name": "conv1",
                "params": 100,
                "options": [{"option": 4, "distortion": 0.1, "cost_bits": 400}],
            }
        ],
    }
    report.update(overrides)
    return report


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'runs.sqlite'}"


# ----------------------------------------------------------------------------- persistence


def test_add_get_roundtrip_and_fresh_instance(db_url: str) -> None:
    report = make_report()
    store = RunStore(db_url)
    run_id = store.add(report, name="first")
    assert store.get(run_id) == json.loads(json.dumps(report))
    store.close()

    fresh = RunStore(db_url)  # a new process would do exactly this
    assert fresh.count() == 1
    assert fresh.get(run_id) == json.loads(json.dumps(report))
    [summary] = fresh.list()
    assert summary.id == run_id and summary.name == "first"
    assert (
        summary.model == "digits-cnn" and summary.sampler == "sa" and summary.seed == 7
    )
    assert summary.best_energy == -3.0 and summary.exact_energy == -3.0
    assert summary.accuracy_after == 0.95 and summary.size_bits_after == 800
    assert summary.compression_ratio == 4.0
    assert summary.total_time_s == pytest.approx(1.0)
    assert summary.num_variables == 12 and summary.feasible is True
    assert summary.gap_pct == 0.0
    assert summary.p_optimum == pytest.approx(0.5)
    assert summary.tts99_s == pytest.approx(0.1 * math.log(0.01) / math.log(0.5))
    assert summary.created_at.tzinfo is not None
    assert fresh.get_params(run_id) == {"num_reads": 4, "num_sweeps": 100}


def test_numpy_values_and_missing_sections_are_accepted(db_url: str) -> None:
    store = RunStore(db_url)
    run_id = store.add(
        {
            "model": "m",
            "energies": np.array([1.0, 2.0]),
            "best": {"energy": np.float64(1.0)},
            "seed": np.int64(3),
        }
    )
    assert store.get(run_id)["energies"] == [1.0, 2.0]
    [s] = store.list()
    assert (
        s.best_energy == 1.0
        and s.seed == 3
        and s.exact_energy is None
        and s.gap_pct is None
    )
    assert s.accuracy_after is None and s.total_time_s is None
    # the default name says what ran
    assert s.name.startswith("m ")


def test_list_order_limit_filters_and_dataframe(db_url: str) -> None:
    store = RunStore(db_url)
    ids = [
        store.add(make_report(sampler="sa"), name="alpha"),
        store.add(make_report(sampler="tabu"), name="beta"),
        store.add(make_report(sampler="sa", model="digits-mlp"), name="Gamma ray"),
    ]
    assert [s.id for s in store.list()] == ids[::-1]
    assert [s.id for s in store.list(limit=2)] == ids[:0:-1]
    assert [s.id for s in store.list(filters={"sampler": "sa"})] == [ids[2], ids[0]]
    assert [s.id for s in store.list(sampler=["tabu"], newest_first=False)] == [ids[1]]
    assert [s.id for s in store.list(name_contains="gamma")] == [ids[2]]
    assert [s.id for s in store.list(ids=[ids[0], 999])] == [ids[0]]
    assert store.count(model="digits-mlp") == 1
    assert store.count() == 3 == len(store)
    future = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    assert store.list(created_after=future) == []
    assert len(store.list(created_before=future)) == 3
    with pytest.raises(InvalidInputError, match="Unknown run filter"):
        store.list(colour="red")
    df = store.dataframe()
    assert isinstance(df, pd.DataFrame)
    assert list(df.columns) == list(SUMMARY_COLUMNS)
    assert df["id"].tolist() == ids[::-1]
    assert df.loc[df["id"] == ids[1], "sampler"].item() == "tabu"
    assert store.get_many([ids[2], 12345, ids[0]]).keys() == {ids[2], ids[0]}


def test_rename_and_delete(db_url: str) -> None:
    store = RunStore(db_url)
    a = store.add(make_report(), name="a")
    b = store.add(make_report(), name="b")
    store.rename(a, "  renamed run  ")
    assert RunStore(db_url).list(ids=[a])[0].name == "renamed run"
    with pytest.raises(InvalidInputError):
        store.rename(a, "   ")
    store.delete(b)
    assert store.count() == 1
    with pytest.raises(RunNotFoundError, match=f"no run {b}"):
        store.get(b)
    with pytest.raises(RunNotFoundError):
        store.delete(b)
    with pytest.raises(RunNotFoundError):
        store.rename(b, "x")
    assert isinstance(RunNotFoundError("x"), QCLError)


# ----------------------------------------------------------------------------- secrets


def test_tokens_are_never_stored(db_url: str, tmp_path: Path) -> None:
    secret = "DEV-0123456789abcdef"
    report = make_report(
        params={
            "num_reads": 10,
            "token": secret,
            "DWAVE_API_TOKEN": secret,
            "solver": {"Token": secret, "name": "x"},
        },
        sampler_info={
            "leap": [{"api_token": secret, "region": "na-west-1"}],
            "AuthTokenValue": secret,
        },
    )
    store = RunStore(db_url)
    run_id = store.add(report, params={"chain_strength": 2.0, "sapi_token": secret})
    saved = store.get(run_id)
    assert saved["params"] == {"num_reads": 10, "solver": {"name": "x"}}
    assert saved["sampler_info"] == {"leap": [{"region": "na-west-1"}]}
    assert store.get_params(run_id) == {"chain_strength": 2.0}
    store.close()
    raw = (tmp_path / "runs.sqlite").read_bytes()
    wal = tmp_path / "runs.sqlite-wal"
    if wal.exists():
        raw += wal.read_bytes()
    assert secret.encode() not in raw
    # the caller's report is left untouched
    assert report["params"]["token"] == secret


def test_strip_secrets_is_json_ready() -> None:
    cleaned = strip_secrets(
        {"a": (1, 2), "b": {3, 1}, "c": np.float32(0.5), "TOKEN": "x", 5: "five"}
    )
    assert cleaned == {"a": [1, 2], "b": [1, 3], "c": 0.5, "5": "five"}
    json.dumps(cleaned)


# ----------------------------------------------------------------------------- locations and errors


def test_default_url_uses_data_folder_and_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("QCL_DB_URL", raising=False)
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    expected = tmp_path / "xdg" / "qubo-compression-lab" / "runs.sqlite"
    assert default_db_url() == f"sqlite:///{expected}"
    store = RunStore()
    store.add(make_report())
    assert expected.is_file()  # folders were created
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert (
        default_db_url()
        == f"sqlite:///{tmp_path / 'home/.local/share/qubo-compression-lab/runs.sqlite'}"
    )
    other = f"sqlite:///{tmp_path / 'other.sqlite'}"
    monkeypatch.setenv("QCL_DB_URL", other)
    assert default_db_url() == other
    assert RunStore().count() == 0


def test_in_memory_store() -> None:
    store = RunStore("sqlite://")
    store.add(make_report())
    assert store.count() == 1


@pytest.mark.parametrize(
    "url", ["not a url at all", "nosuchdb://user@host/db", "sqlite+nodriver:///x.db"]
)
def test_bad_url_is_a_plain_error(url: str) -> None:
    with pytest.raises(InvalidInputError, match="run-history address"):
        RunStore(url)


def test_unreadable_database_is_a_plain_error(tmp_path: Path) -> None:
    bad = tmp_path / "runs.sqlite"
    bad.write_bytes(b"this is not a database, just some text " * 200)
    with pytest.raises(StoreError, match="not a SQLite database or is damaged") as info:
        RunStore(f"sqlite:///{bad}")
    assert isinstance(info.value, QCLError)
    with pytest.raises(StoreError, match="is a folder"):
        RunStore(f"sqlite:///{tmp_path}")


def test_password_is_hidden_in_messages() -> None:
    with pytest.raises(QCLError) as info:
        RunStore("postgresql+nodriver://user:hunter2@localhost/db")
    assert "hunter2" not in str(info.value)


# ----------------------------------------------------------------------------- concurrency


def test_concurrent_writers_threads(db_url: str) -> None:
    RunStore(db_url)  # create the schema once
    errors: list[BaseException] = []

    def writer(k: int) -> None:
        try:
            store = RunStore(db_url)
            for i in range(15):
                store.add(make_report(seed=k * 100 + i))
        except BaseException as exc:  # noqa: BLE001 - collected and re-raised in the test thread
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    store = RunStore(db_url)
    assert store.count() == 60
    assert sorted(s.seed for s in store.list(limit=None)) == sorted(
        k * 100 + i for k in range(4) for i in range(15)
    )


def test_concurrent_writers_processes(db_url: str) -> None:
    script = (
        "import sys\n"
        "from core.store import RunStore\n"
        "s = RunStore(sys.argv[1])\n"
        "for i in range(10):\n"
        "    s.add({'model': 'p', 'seed': int(sys.argv[2]) * 100 + i, 'best': {'energy': -1.0}})\n"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, db_url, str(k)],
            cwd=REPO,
            stderr=subprocess.PIPE,
        )
        for k in range(3)
    ]
    for p in procs:
        _, err = p.communicate(timeout=60)
        assert p.returncode == 0, err.decode()
    store = RunStore(db_url)
    assert store.count(model="p") == 30
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"


def test_wal_switch_waits_for_a_lock_held_elsewhere(tmp_path: Path) -> None:
    """SQLite refuses a journal-mode change at once while another connection holds
    the file; the switch retries instead of failing (seen with several processes
    opening a new history together)."""
    import sqlite3

    from core.store.runs import _switch_to_wal

    path = tmp_path / "locked.sqlite"
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN EXCLUSIVE")
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("PRAGMA busy_timeout = 0")
    cur = other.cursor()
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        cur.execute("PRAGMA journal_mode = WAL")
    release = threading.Timer(0.2, lambda: holder.execute("COMMIT"))
    release.start()
    try:
        _switch_to_wal(cur)
    finally:
        release.join()
    assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    holder.close()
    other.close()


# ----------------------------------------------------------------------------- analysis


def test_gap_percent() -> None:
    assert gap_percent(-95.0, -100.0) == pytest.approx(5.0)
    assert gap_percent(-100.0, -100.0) == 0.0
    assert gap_percent(110.0, 100.0) == pytest.approx(10.0)
    assert gap_percent(-1.0, None) is None
    assert gap_percent(None, -1.0) is None
    assert gap_percent(0.0, 0.0) == 0.0
    assert gap_percent(0.5, 0.0) == math.inf
    assert gap_percent(-101.0, -100.0) == pytest.approx(
        -1.0
    )  # reference was not optimal


def test_success_probability() -> None:
    assert success_probability([-2.0, -2.0, -1.0, 0.0], -2.0) == 0.5
    # within 1e-6 relative counts, 1e-5 relative does not
    assert success_probability([-1000.0 + 5e-4, -1000.0 + 2e-2], -1000.0) == 0.5
    # occurrences weight aggregated samples
    assert success_probability([-2.0, -1.0], -2.0, num_occurrences=[1, 3]) == 0.25
    # without an optimum the best energy seen is the best-known optimum
    assert success_probability([3.0, 1.0, 1.0, 2.0]) == 0.5
    assert success_probability([0.0, 1e-13, 1e-9, 1.0], 0.0) == pytest.approx(0.5)
    # relative to the optimum alone: a QUBO of small distortions (optimum 5.9e-5) has states 1.5e-9 apart
    assert success_probability([5.86e-5, 5.86e-5 + 1e-11, 5.86e-5 + 1.5e-9], 5.86e-5) == pytest.approx(2 / 3)
    assert success_probability([-1.0, -1.0], -5.0) == 0.0
    # a read below a best-known optimum reached it
    assert success_probability([-6.0, -1.0], -5.0) == 0.5
    with pytest.raises(InvalidInputError):
        success_probability([], -1.0)
    with pytest.raises(InvalidInputError):
        success_probability([1.0, 2.0], 1.0, num_occurrences=[1])


def test_time_to_solution() -> None:
    assert time_to_solution(2.0, 0.0) == math.inf
    assert time_to_solution(2.0, 1.0) == 2.0
    assert time_to_solution(2.0, 0.1) == pytest.approx(
        2.0 * math.log(0.01) / math.log(0.9)
    )
    assert time_to_solution(1e-3, 0.5) == pytest.approx(1e-3 * 6.643856189774724)
    # never less than one read
    assert time_to_solution(2.0, 0.999) == 2.0
    assert time_to_solution(1.0, 0.5, target=0.5) == pytest.approx(1.0)
    for bad in (-0.1, 1.1, float("nan")):
        with pytest.raises(InvalidInputError):
            time_to_solution(1.0, bad)
    with pytest.raises(InvalidInputError):
        time_to_solution(-1.0, 0.5)
    with pytest.raises(InvalidInputError):
        time_to_solution(1.0, 0.5, target=1.0)


def test_report_quality_without_exact_has_no_optimum_to_reach() -> None:
    """The run's own best is no optimum: measured against it, every run would "reach" it."""
    q = report_quality(
        make_report(
            exact=None, energies=[-1.0, -3.0, -3.0, -3.0], num_occurrences=[1, 1, 1, 1]
        )
    )
    assert q == {"gap_pct": None, "p_optimum": None, "tts99_s": None}
    assert report_quality({"best": {"energy": 1.0}}) == {
        "gap_pct": None,
        "p_optimum": None,
        "tts99_s": None,
    }


def test_pareto_mask_and_front() -> None:
    size = [100, 200, 200, 300, 50, 400, float("nan"), 50]
    acc = [0.90, 0.95, 0.93, 0.95, 0.80, 0.99, 0.99, 0.80]
    mask = pareto_mask(size, acc)
    # 50/0.80 (twice, duplicates stay), 100/0.90, 200/0.95, 400/0.99
    assert mask.tolist() == [True, True, False, False, True, True, False, True]
    df = pd.DataFrame({"id": range(8), "size_bits_after": size, "accuracy_after": acc})
    front = pareto_front(df)
    assert front["size_bits_after"].tolist() == [50, 50, 100, 200, 400]
    assert pareto_front(df.iloc[:0]).empty
    with pytest.raises(InvalidInputError):
        pareto_front(df, x="nope")


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    st.lists(
        st.tuples(st.integers(0, 20), st.integers(0, 20)),
        min_size=1,
        max_size=40,
    )
)
def test_pareto_mask_property(points: list[tuple[int, int]]) -> None:
    x = np.array([p[0] for p in points], dtype=float)
    y = np.array([p[1] for p in points], dtype=float)
    mask = pareto_mask(x, y)

    def dominates(i: int, j: int) -> bool:
        return x[i] <= x[j] and y[i] >= y[j] and (x[i] < x[j] or y[i] > y[j])

    n = len(points)
    for j in range(n):
        dominated = any(dominates(i, j) for i in range(n))
        assert mask[j] == (not dominated)


def test_per_read_quality_only_where_reads_are_independent_samples_of_one_qubo() -> None:
    assert report_quality(make_report())["p_optimum"] == 0.5  # sa: two of four reads at the optimum
    multi = make_report(qubo={"num_variables": 40, "num_interactions": 90, "num_subproblems": 4})
    for report in (multi, make_report(sampler="exact"), make_report(sampler="ga"), make_report(sampler="rl")):
        q = report_quality(report)
        assert q["p_optimum"] is None and q["tts99_s"] is None and q["gap_pct"] == 0.0
    assert report_quality(make_report(sampler="not-in-the-registry"))["p_optimum"] == 0.5


def test_only_feasible_reads_reach_the_optimum() -> None:
    """An over-budget state within a hair of the optimum's energy (the capacity encoding's near-tie) is no hit."""
    report = make_report(energies=[-3.0, -3.0, -3.0, -1.0], feasible_reads=[True, False, True, True])
    q = report_quality(report)
    assert q["p_optimum"] == 0.5
    assert q["tts99_s"] == pytest.approx(0.1 * math.log(0.01) / math.log(0.5))
    none = report_quality(make_report(energies=[-3.0, -1.0], feasible_reads=[False, True]))
    assert none["p_optimum"] == 0.0 and none["tts99_s"] == math.inf
    assert report_quality(make_report(feasible_reads=[True]))["p_optimum"] == 0.5  # misaligned flags: ignored


def test_total_time_is_the_runs_wall_time_where_the_report_has_it() -> None:
    from core.store import total_time_s

    overlapping = {"build_s": 1.0, "sample_s": 2.0, "quantize_s": 3.5, "total_s": 4.0}
    assert total_time_s(make_report(timing=overlapping)) == 4.0
    assert total_time_s(make_report(timing={"build_s": 1.0, "sample_s": 2.0})) == 3.0


def test_compare_defaults_to_comparable_runs_and_shows_blanks_not_words() -> None:
    from core.store import default_comparison, for_display

    runs = pd.DataFrame({"id": [9, 8, 7, 6], "method": ["filter-pruning", "mixed-precision", "filter-pruning",
                                                        "filter-pruning"],
                         "model": ["digits-cnn", "digits-cnn", "digits-mlp", "digits-cnn"],
                         "p_optimum": [None, 0.5, None, 0.0], "tts99_s": [None, 1.5, None, math.inf],
                         "gap_pct": [0.0, None, 1.0, 2.0]})
    assert default_comparison(runs) == [9, 6]  # the newest, and the next of its method and model
    assert default_comparison(runs.iloc[1:2]) == [8]
    assert default_comparison(runs.iloc[:0]) == []
    unknown = runs.assign(method=[None, "mixed-precision", None, None], model=[None, "digits-cnn", None, "x"])
    assert default_comparison(unknown) == [9, 7]  # runs without a method or model pair with each other
    assert default_comparison(runs.assign(setting=["50%", "x", "y", "75%"])) == [9]  # other QUBOs: alone
    shown = for_display(runs)
    assert shown["p_optimum"].isna().tolist() == [True, False, True, False]
    assert shown["tts99_s"].isna().tolist() == [True, False, True, True]  # infinite: never reached, blank
    assert shown["tts99_s"][1] == 1.5 and shown["gap_pct"].dtype == float


def test_a_history_saved_under_older_quality_rules_is_recomputed_once(tmp_path: Path) -> None:
    """Opening a history whose P(optimum)/TTS columns follow older rules recomputes them from the reports."""
    import sqlalchemy as sa

    from core.store.runs import DERIVED_VERSION, RunRecord, StoreMeta

    url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    store = RunStore(url)
    run_id = store.add(make_report(exact=None))  # no exact optimum: nothing to reach
    assert store.list()[0].p_optimum is None
    with store.engine.begin() as conn:  # as an older version saved it: P measured against the run's own best
        conn.execute(sa.update(RunRecord).where(RunRecord.id == run_id).values(p_optimum=0.5, tts99_s=0.3))
        conn.execute(sa.delete(StoreMeta))
    assert RunStore(url).list()[0].p_optimum is None  # refreshed on opening
    with store.engine.begin() as conn:
        conn.execute(sa.update(RunRecord).values(p_optimum=0.5))
        assert conn.execute(sa.select(StoreMeta.value)).scalar() == str(DERIVED_VERSION)
    assert RunStore(url).list()[0].p_optimum == 0.5  # only once: a current history is left as it is


def test_run_setting_names_what_defines_the_qubo() -> None:
    from core.store.analysis import run_setting

    assert run_setting({"method": "adaround", "params": {"bits": 3, "scale": "mse"}}) == "3 bits, mse"
    assert run_setting({"method": "adaround", "params": {"bits": 1, "scale": "minmax", "target": "fisher"}}) == (
        "1 bit, minmax, fisher")
    assert run_setting({"method": "filter-pruning", "params": {"sparsity": {"conv1": 0.5, "conv2": 0.5},
                                                                "importance": "fisher", "refine": "tt"}}) == (
        "50% sparsity, fisher, refine tt")
    budgeted = {"method": "mixed-precision", "uncompressed_bits": 1000,
                "params": {"lambda_bits": 0.003, "lambda_bits_given": 0.0, "budget_bits": 250,
                           "budget_encoding": "capacity"}}
    assert run_setting(budgeted) == "λ bits 0, budget 25% capacity"  # the λ given, not the search's
    assert run_setting({"method": "mixed-precision", "params": {"lambda_bits": 1.0, "budget_bits": None}}) == (
        "λ bits 1, no budget")
    assert run_setting({"method": "mixed-precision", "params": {"encoding": "paper", "lambda_bits": 1.0}}) == (
        "paper encoding, λ bits 1, no budget")
    assert run_setting({"method": "adaround"}) is None and run_setting({}) is None


def test_an_older_history_gets_the_setting_column_on_opening(tmp_path: Path) -> None:
    import sqlalchemy as sa

    from core.store.runs import StoreMeta

    url = f"sqlite:///{tmp_path / 'v3.sqlite'}"
    store = RunStore(url)
    run_id = store.add(make_report(method="adaround", params={"bits": 2, "scale": "minmax"}))
    with store.engine.begin() as conn:  # as version 3 left it: no setting column
        conn.execute(sa.text("ALTER TABLE runs DROP COLUMN setting"))
        conn.execute(sa.update(StoreMeta).values(value="3"))
    store.engine.dispose()
    reopened = RunStore(url)
    assert reopened.list()[0].setting == "2 bits, minmax" and reopened.get(run_id)["method"] == "adaround"
    assert reopened.dataframe()["setting"].tolist() == ["2 bits, minmax"]


def test_the_refresh_survives_odd_reports_and_runs_in_batches(tmp_path: Path) -> None:
    import sqlalchemy as sa

    from core.store.runs import RunRecord, StoreMeta

    url = f"sqlite:///{tmp_path / 'odd.sqlite'}"
    store = RunStore(url)
    ids = [store.add(make_report(exact=None)) for _ in range(5)]
    with store.engine.begin() as conn:
        conn.execute(sa.update(RunRecord).where(RunRecord.id == ids[0]).values(report=[1, 2]))
        conn.execute(sa.update(RunRecord).where(RunRecord.id == ids[1]).values(report={"energies": "x", "exact": 3}))
        conn.execute(sa.update(RunRecord).values(p_optimum=0.5))
        conn.execute(sa.delete(StoreMeta))
    reopened = RunStore(url)  # opens: the damaged rows get empty columns, the others their values
    reopened._refresh_derived(batch=2)  # nothing left to do: the version was written
    rows = {r.id: r for r in reopened.list()}
    assert all(rows[i].p_optimum is None for i in ids) and len(rows) == 5
    with store.engine.begin() as conn:
        conn.execute(sa.delete(StoreMeta))
        conn.execute(sa.update(RunRecord).values(p_optimum=0.5))
    reopened._refresh_derived(batch=2)  # 5 runs in batches of 2
    assert all(r.p_optimum is None for r in reopened.list())


def test_the_best_read_is_judged_against_the_exact_optimum_by_its_decision() -> None:
    from core.store import best_against_exact

    best = {"energy": -2.9999, "objective": -3.0, "feasible": True}
    assert best_against_exact(make_report(best=best)) == {
        "value": -3.0, "gap": 0.0, "verdict": "optimum", "feasible": True, "energy_apart": True, "budget": None}
    # with a budget, the decision is also judged on the budget problem (lambdas as given, size in exact bits)
    with_budget = make_report(best={**best, "objective_in_bits": -3.0})
    with_budget["exact"]["objective_in_bits"] = -3.2
    assert best_against_exact(with_budget)["budget"] == {
        "optimum": -3.2, "value": -3.0, "gap": pytest.approx(0.2), "reaches": False, "encoding_gap": None}
    with_budget["exact"]["qubo_optimum_in_bits"] = -3.1  # the QUBO's optimum scored on the budget problem
    assert best_against_exact(with_budget)["budget"]["encoding_gap"] == pytest.approx(0.1)
    with_budget["exact"]["qubo_optimum_in_bits"] = -3.2 * (1 - 1e-9)  # within the tolerance: none
    assert best_against_exact(with_budget)["budget"]["encoding_gap"] == 0.0
    with_budget["exact"]["objective_in_bits"] = -3.0
    assert best_against_exact(with_budget)["budget"]["reaches"]
    with_budget["best"]["feasible"] = False  # an infeasible read is not scored on the budget problem
    assert best_against_exact(with_budget)["budget"] is None
    assert best_against_exact(make_report(best={**best, "objective": -2.0}))["verdict"] == "above"
    assert best_against_exact(make_report(best={**best, "objective": -3.5}))["verdict"] == "below"
    infeasible = best_against_exact(make_report(best={"energy": -4.0, "objective": None, "feasible": False}))
    assert infeasible["verdict"] == "above" and infeasible["value"] == -4.0  # judged by its energy, never "below"
    assert best_against_exact(make_report(best={"energy": -3.0, "objective": None, "feasible": True}))["verdict"] == (
        "optimum")  # a decoder without an objective (the paper encoding): its energy
    assert best_against_exact(make_report(exact=None)) is None
