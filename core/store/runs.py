"""Persistent run history: every completed run's JSON report, plus searchable summary columns.

By default the history is a SQLite file in the user's data folder
(``~/.local/share/qubo-compression-lab/runs.sqlite`` on Linux); the environment
variable ``QCL_DB_URL`` (or ``RunStore(url=...)``) selects any SQLAlchemy URL.

Each operation is one short transaction, SQLite runs in WAL mode with a busy
timeout, so several app processes (or threads) can write at once. Keys that
look like credentials (anything containing "token", "secret", "password",
"api_key"/"apikey") are removed from params and reports before they are saved.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import os
import sqlite3
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Self

import pandas as pd
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import (
    ArgumentError,
    IntegrityError,
    NoSuchModuleError,
    OperationalError,
    SQLAlchemyError,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from sqlalchemy.pool import StaticPool

from core.errors import InvalidInputError, QCLError
from core.jsonable import to_jsonable
from core.store.analysis import report_quality, run_setting, total_time_s

APP_DIR_NAME = "qubo-compression-lab"
DB_FILENAME = "runs.sqlite"
ENV_URL = "QCL_DB_URL"
SECRET_KEY_PARTS = ("token", "secret", "password", "api_key", "apikey")
_NAME_MAX = 200


class StoreError(QCLError, RuntimeError):
    """The run history cannot be opened, read or written."""


class RunNotFoundError(QCLError, LookupError):
    """No run with the requested id exists in the history."""

    def __str__(self) -> str:  # LookupError would quote the message
        return str(self.args[0]) if self.args else ""


# ----------------------------------------------------------------------------- locations


def user_data_dir(app: str = APP_DIR_NAME) -> Path:
    """The per-user data folder, platformdirs-style (not created)."""
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        xdg = os.environ.get("XDG_DATA_HOME", "").strip()
        base = (
            Path(xdg)
            if xdg and Path(xdg).is_absolute()
            else Path.home() / ".local" / "share"
        )
    return base / app


def default_db_path() -> Path:
    return user_data_dir() / DB_FILENAME


def default_db_url() -> str:
    """``$QCL_DB_URL`` if set, else a SQLite file in the user's data folder."""
    env = os.environ.get(ENV_URL, "").strip()
    if env:
        return env
    return f"sqlite:///{default_db_path()}"


# ----------------------------------------------------------------------------- cleaning


def is_secret_key(key: Any) -> bool:
    k = str(key).lower()
    return any(part in k for part in SECRET_KEY_PARTS)


def strip_secrets(obj: Any) -> Any:
    """A JSON-ready deep copy of ``obj`` without credential-like keys.

    Drops every mapping key containing "token" (case-insensitive; also
    "secret", "password", "api_key"); everything else is converted as by
    :func:`core.jsonable.to_jsonable`.
    """
    return to_jsonable(obj, drop_key=is_secret_key)


# ----------------------------------------------------------------------------- schema


class Base(DeclarativeBase):
    pass


class RunRecord(Base):
    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    created_at: Mapped[dt.datetime] = mapped_column(
        sa.DateTime(timezone=True), index=True
    )
    name: Mapped[str] = mapped_column(sa.String(_NAME_MAX))
    model: Mapped[str | None] = mapped_column(sa.String(200), index=True)
    method: Mapped[str | None] = mapped_column(sa.String(100), index=True)
    sampler: Mapped[str | None] = mapped_column(sa.String(100), index=True)
    seed: Mapped[int | None] = mapped_column(sa.Integer)
    num_variables: Mapped[int | None] = mapped_column(sa.Integer)
    best_energy: Mapped[float | None] = mapped_column(sa.Float, index=True)
    exact_energy: Mapped[float | None] = mapped_column(sa.Float)
    gap_pct: Mapped[float | None] = mapped_column(sa.Float)
    p_optimum: Mapped[float | None] = mapped_column(sa.Float)
    tts99_s: Mapped[float | None] = mapped_column(sa.Float)
    feasible: Mapped[bool | None] = mapped_column(sa.Boolean)
    accuracy_after: Mapped[float | None] = mapped_column(sa.Float, index=True)
    size_bits_after: Mapped[float | None] = mapped_column(sa.Float, index=True)
    compression_ratio: Mapped[float | None] = mapped_column(sa.Float, index=True)
    total_time_s: Mapped[float | None] = mapped_column(sa.Float)
    setting: Mapped[str | None] = mapped_column(sa.String(_NAME_MAX))  # added in derived version 4
    params: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
    report: Mapped[dict[str, Any]] = mapped_column(sa.JSON)


def _derived_columns(report: Mapping[str, Any]) -> dict[str, float | str | None]:
    """The columns computed from a report by rules that may change (see DERIVED_VERSION); a report too damaged
    to read gives none."""
    try:
        quality = report_quality(report)
        setting = run_setting(report)
        return {
            "gap_pct": _num(quality["gap_pct"]),
            "p_optimum": _num(quality["p_optimum"]),
            "tts99_s": _num(quality["tts99_s"]),
            "total_time_s": total_time_s(report),
            "setting": None if setting is None else setting[:_NAME_MAX],
        }
    except Exception:  # noqa: BLE001 - one odd stored report must not make the history unreadable
        return {"gap_pct": None, "p_optimum": None, "tts99_s": None, "total_time_s": None, "setting": None}


class StoreMeta(Base):
    """Facts about the history itself (key -> value), e.g. which rules its derived columns follow."""

    __tablename__ = "store_meta"

    key: Mapped[str] = mapped_column(sa.String(100), primary_key=True)
    value: Mapped[str] = mapped_column(sa.String(200))


#: version of the rules behind the columns derived from each report (gap, P(optimum), TTS, total time);
#: bump it when :func:`core.store.analysis.report_quality` or ``total_time_s`` change, and opening an older
#: history recomputes them from the stored reports. 2: feasible reads only, a tolerance relative to the
#: optimum alone, none without an exact energy; none for multi-QUBO/exact/ga/rl runs; total_s preferred.
#: 3: reads and the best decision by their decoded objective where the report has it. 4: the ``setting``
#: column (added to older histories on opening). 5: the setting names the rounding objective and says "1 bit".
DERIVED_VERSION = 5


#: summary columns returned by :meth:`RunStore.list` (everything but params/report)
SUMMARY_COLUMNS: tuple[str, ...] = (
    "id",
    "created_at",
    "name",
    "model",
    "method",
    "sampler",
    "seed",
    "num_variables",
    "best_energy",
    "exact_energy",
    "gap_pct",
    "p_optimum",
    "tts99_s",
    "feasible",
    "accuracy_after",
    "size_bits_after",
    "compression_ratio",
    "total_time_s",
    "setting",
)

FILTER_KEYS = (
    "model",
    "method",
    "sampler",
    "name_contains",
    "ids",
    "created_after",
    "created_before",
)


@dataclass(frozen=True)
class RunSummary:
    id: int
    created_at: dt.datetime
    name: str
    model: str | None
    method: str | None
    sampler: str | None
    seed: int | None
    num_variables: int | None
    best_energy: float | None
    exact_energy: float | None
    gap_pct: float | None
    p_optimum: float | None
    tts99_s: float | None
    feasible: bool | None
    accuracy_after: float | None
    size_bits_after: float | None
    compression_ratio: float | None
    total_time_s: float | None
    setting: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# ----------------------------------------------------------------------------- helpers


def _num(x: Any) -> float | None:
    if isinstance(x, bool) or x is None:
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if not math.isnan(v) else None


def _int(x: Any) -> int | None:
    if isinstance(x, bool) or x is None:
        return None
    try:
        return int(x)
    except (TypeError, ValueError):
        return None


def _str(x: Any, limit: int = 200) -> str | None:
    return None if x is None else str(x)[:limit]


def _sub(d: Any, key: str) -> Mapping[str, Any]:
    v = d.get(key) if isinstance(d, Mapping) else None
    return v if isinstance(v, Mapping) else {}


def _as_utc(t: dt.datetime) -> dt.datetime:
    # SQLite drops tzinfo; every stored time is UTC
    return t.replace(tzinfo=dt.UTC) if t.tzinfo is None else t.astimezone(dt.UTC)


def _default_name(report: Mapping[str, Any], created: dt.datetime) -> str:
    parts = [
        str(report.get(k))
        for k in ("model", "method", "sampler")
        if report.get(k) is not None
    ]
    return (" / ".join(parts) or "run") + created.strftime(" %Y-%m-%d %H:%M:%S")


def _not_found(run_id: int) -> RunNotFoundError:
    return RunNotFoundError(f"There is no run {run_id} in the history.")


def _clean_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip():
        raise InvalidInputError("A run name must be a non-empty piece of text.")
    return name.strip()[:_NAME_MAX]


# ----------------------------------------------------------------------------- the store


WAL_SWITCH_WAIT_S = 30.0


def _switch_to_wal(cur: sqlite3.Cursor) -> None:
    """Put the database in WAL mode, waiting for other processes doing the same.

    SQLite answers "database is locked" at once, without its busy handler, when
    the journal mode is changed while another connection is switching it too
    (several processes opening a new file together), so retry here.
    """
    deadline = time.monotonic() + WAL_SWITCH_WAIT_S
    delay = 0.01
    while True:
        try:
            cur.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc).lower() or time.monotonic() + delay > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.5)


class RunStore:
    """The run history at ``url`` (default: :func:`default_db_url`).

    >>> store = RunStore("sqlite:///:memory:")
    >>> run_id = store.add({"model": "digits-cnn", "best": {"energy": -1.0}})
    >>> store.get(run_id)["model"]
    'digits-cnn'
    """

    def __init__(self, url: str | URL | None = None, *, echo: bool = False) -> None:
        raw = default_db_url() if url is None else url
        try:
            self.url: URL = make_url(raw)
        except (ArgumentError, ValueError, TypeError) as exc:
            raise InvalidInputError(
                f"The run-history address {str(raw)!r} is not a valid database URL "
                "(expected e.g. sqlite:///path/to/runs.sqlite or postgresql://user@host/db)."
            ) from exc
        self._display = self.url.render_as_string(hide_password=True)
        self._is_sqlite = self.url.get_backend_name() == "sqlite"
        self._memory = self._is_sqlite and self.url.database in (None, "", ":memory:")
        if self._is_sqlite and not self._memory:
            self._prepare_sqlite_file(Path(str(self.url.database)).expanduser())

        kwargs: dict[str, Any] = {"echo": echo, "future": True}
        if self._is_sqlite:
            kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False}
            if self._memory:
                kwargs["poolclass"] = StaticPool
        else:
            kwargs["pool_pre_ping"] = True
        try:
            self.engine: Engine = sa.create_engine(self.url, **kwargs)
        except (NoSuchModuleError, ArgumentError, ImportError) as exc:
            raise InvalidInputError(
                f"The run-history address {self._display!r} names a database this installation "
                "cannot talk to (unknown dialect or missing driver)."
            ) from exc
        if self._is_sqlite:
            event.listen(self.engine, "connect", self._sqlite_on_connect)
        self._create_schema()
        self._refresh_derived()

    # -- setup

    def _prepare_sqlite_file(self, path: Path) -> None:
        if path.is_dir():
            raise StoreError(
                f"The run-history path {str(path)!r} is a folder, not a database file."
            )
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"Cannot create the folder for the run history at {str(path.parent)!r}: {exc.strerror or exc}."
            ) from exc

    def _sqlite_on_connect(self, dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        try:
            cur.execute("PRAGMA busy_timeout = 30000")
            if not self._memory:
                _switch_to_wal(cur)
                cur.execute("PRAGMA synchronous = NORMAL")
        finally:
            cur.close()

    def _create_schema(self) -> None:
        for attempt in range(3):
            try:
                with self._errors("open"):
                    Base.metadata.create_all(self.engine)
                    self._add_missing_columns()
                return
            except StoreError as exc:
                # two processes creating the same table (or column) at once: the loser retries
                if attempt == 2 or not any(w in str(exc.__cause__).lower() for w in ("already exists", "duplicate column")):
                    raise

    def _add_missing_columns(self) -> None:
        """Columns added to :class:`RunRecord` since a history was created (their values come from
        :meth:`_refresh_derived`)."""
        present = {c["name"] for c in sa.inspect(self.engine).get_columns(RunRecord.__tablename__)}
        missing = [c for c in RunRecord.__table__.columns if c.name not in present]
        quote = self.engine.dialect.identifier_preparer
        with self.engine.begin() as conn:
            for column in missing:  # plain ADD (no COLUMN keyword) is what every dialect accepts
                kind = column.type.compile(dialect=self.engine.dialect)
                conn.execute(sa.text(f"ALTER TABLE {quote.format_table(RunRecord.__table__)} "
                                     f"ADD {quote.format_column(column)} {kind}"))

    def _refresh_derived(self, batch: int = 50) -> None:
        """Recompute the derived columns of runs saved under older rules (once per history).

        In short transactions of ``batch`` runs, so other processes are not locked out for long and a large
        history is never in memory at once; the version is written last (an interrupted refresh reruns)."""
        with self._errors("update"), Session(self.engine) as session:
            with session.begin():
                version = session.scalar(sa.select(StoreMeta.value).where(StoreMeta.key == "derived_version"))
            if version is not None and int(version) >= DERIVED_VERSION:
                return
            last = -1
            while True:
                with session.begin():
                    rows = session.execute(
                        sa.select(RunRecord.id, RunRecord.report)
                        .where(RunRecord.id > last).order_by(RunRecord.id).limit(batch)
                    ).all()
                    for run_id, report in rows:
                        derived = _derived_columns(report if isinstance(report, Mapping) else {})
                        session.execute(sa.update(RunRecord).where(RunRecord.id == run_id).values(**derived))
                if len(rows) < batch:
                    break
                last = int(rows[-1][0])
            with contextlib.suppress(IntegrityError), session.begin():  # another process wrote it first
                meta = session.get(StoreMeta, "derived_version")
                if meta is None:
                    session.add(StoreMeta(key="derived_version", value=str(DERIVED_VERSION)))
                else:
                    meta.value = str(DERIVED_VERSION)

    @contextlib.contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        try:
            yield
        except QCLError:
            raise
        except OperationalError as exc:
            msg = str(getattr(exc, "orig", exc)).lower()
            if (
                "not a database" in msg
                or "malformed" in msg
                or "file is encrypted" in msg
            ):
                raise StoreError(
                    f"The run history at {self._display!r} cannot be read: the file is not a "
                    "SQLite database or is damaged. Move it aside or set QCL_DB_URL to another file."
                ) from exc
            if "locked" in msg or "busy" in msg:
                raise StoreError(
                    f"The run history at {self._display!r} is busy (another process holds it); try again."
                ) from exc
            if "readonly" in msg or "read-only" in msg:
                raise StoreError(
                    f"The run history at {self._display!r} is read-only; cannot {action}."
                ) from exc
            raise StoreError(
                f"Cannot {action} the run history at {self._display!r}: the database could not be opened or read."
            ) from exc
        except SQLAlchemyError as exc:
            msg = str(getattr(exc, "orig", exc)).lower()
            if "not a database" in msg or "malformed" in msg:
                raise StoreError(
                    f"The run history at {self._display!r} cannot be read: the file is not a "
                    "SQLite database or is damaged. Move it aside or set QCL_DB_URL to another file."
                ) from exc
            raise StoreError(
                f"Cannot {action} the run history at {self._display!r}."
            ) from exc

    def __repr__(self) -> str:
        return f"RunStore({self._display!r})"

    def close(self) -> None:
        """Release database connections (the store can still be used afterwards)."""
        self.engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing

    def add(
        self,
        report: Mapping[str, Any],
        name: str | None = None,
        *,
        params: Mapping[str, Any] | None = None,
    ) -> int:
        """Save a completed run's report; returns the new run id.

        ``params`` defaults to ``report["params"]`` (sampler/method parameters).
        Credential-like keys are removed from both before saving.
        """
        if not isinstance(report, Mapping):
            raise InvalidInputError(
                "A run report must be a dictionary (the JSON report of a run)."
            )
        clean = strip_secrets(report)
        clean_params = strip_secrets(
            params if params is not None else report.get("params") or {}
        )
        if not isinstance(clean_params, dict):
            raise InvalidInputError("Run parameters must be a dictionary.")
        created = dt.datetime.now(dt.UTC)
        best, exact, metrics = (
            _sub(clean, "best"),
            _sub(clean, "exact"),
            _sub(clean, "metrics"),
        )
        feasible = best.get("feasible")
        record = RunRecord(
            created_at=created,
            name=_clean_name(name)
            if name is not None
            else _default_name(clean, created),
            model=_str(clean.get("model")),
            method=_str(clean.get("method"), 100),
            sampler=_str(clean.get("sampler"), 100),
            seed=_int(clean.get("seed")),
            num_variables=_int(_sub(clean, "qubo").get("num_variables")),
            best_energy=_num(best.get("energy")),
            exact_energy=_num(exact.get("energy")),
            feasible=feasible if isinstance(feasible, bool) else None,
            accuracy_after=_num(metrics.get("accuracy_after")),
            size_bits_after=_num(metrics.get("size_bits_after")),
            compression_ratio=_num(metrics.get("compression_ratio")),
            **_derived_columns(clean),
            params=clean_params,
            report=clean,
        )
        with (
            self._errors("save a run to"),
            Session(self.engine) as session,
            session.begin(),
        ):
            session.add(record)
            session.flush()
            run_id = int(record.id)
        return run_id

    def rename(self, run_id: int, name: str) -> None:
        """Give run ``run_id`` a new display name."""
        new = _clean_name(name)
        with self._errors("rename a run in"), self.engine.begin() as conn:
            result = conn.execute(
                sa.update(RunRecord).where(RunRecord.id == int(run_id)).values(name=new)
            )
            if result.rowcount == 0:
                raise _not_found(run_id)

    def delete(self, run_id: int) -> None:
        """Remove run ``run_id`` from the history."""
        with self._errors("delete a run from"), self.engine.begin() as conn:
            result = conn.execute(
                sa.delete(RunRecord).where(RunRecord.id == int(run_id))
            )
            if result.rowcount == 0:
                raise _not_found(run_id)

    # -- reading

    def _read_value(self, run_id: int, column: Any) -> Any:
        """``column`` of run ``run_id``; RunNotFoundError if there is no such run."""
        with self._errors("read"), Session(self.engine) as session:
            row = session.execute(
                sa.select(column).where(RunRecord.id == int(run_id))
            ).first()
        if row is None:
            raise _not_found(run_id)
        return row[0]

    def get(self, run_id: int) -> dict[str, Any]:
        """The full report of run ``run_id`` (as saved, secrets stripped)."""
        report = self._read_value(run_id, RunRecord.report)
        if report is None:  # a run without a report counts as missing
            raise _not_found(run_id)
        return dict(report)

    def get_params(self, run_id: int) -> dict[str, Any]:
        """The saved parameters of run ``run_id``."""
        return dict(self._read_value(run_id, RunRecord.params) or {})

    def get_many(self, run_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
        """Reports of several runs at once, keyed by id (missing ids are skipped)."""
        ids = [int(i) for i in run_ids]
        if not ids:
            return {}
        with self._errors("read"), Session(self.engine) as session:
            rows = session.execute(
                sa.select(RunRecord.id, RunRecord.report).where(RunRecord.id.in_(ids))
            ).all()
        found = {int(i): dict(r) for i, r in rows}
        return {i: found[i] for i in ids if i in found}

    def _filtered(
        self, stmt: sa.Select[Any], filters: Mapping[str, Any]
    ) -> sa.Select[Any]:
        unknown = set(filters) - set(FILTER_KEYS)
        if unknown:
            raise InvalidInputError(
                f"Unknown run filter(s) {sorted(unknown)}; use any of {list(FILTER_KEYS)}."
            )
        for key in ("model", "method", "sampler"):
            value = filters.get(key)
            if value is None:
                continue
            col = getattr(RunRecord, key)
            if isinstance(value, str):
                stmt = stmt.where(col == value)
            else:
                stmt = stmt.where(col.in_([str(v) for v in value]))
        if filters.get("name_contains"):
            stmt = stmt.where(
                RunRecord.name.icontains(str(filters["name_contains"]), autoescape=True)
            )
        if filters.get("ids") is not None:
            stmt = stmt.where(RunRecord.id.in_([int(i) for i in filters["ids"]]))
        if filters.get("created_after") is not None:
            stmt = stmt.where(RunRecord.created_at >= _as_utc(filters["created_after"]))
        if filters.get("created_before") is not None:
            stmt = stmt.where(RunRecord.created_at < _as_utc(filters["created_before"]))
        return stmt

    def list(
        self,
        limit: int | None = 100,
        filters: Mapping[str, Any] | None = None,
        *,
        offset: int = 0,
        newest_first: bool = True,
        **more_filters: Any,
    ) -> list[RunSummary]:
        """Summaries of saved runs, newest first.

        Filters (dict or keywords): ``model``, ``method``, ``sampler`` (a value
        or a list of values), ``name_contains``, ``ids``, ``created_after``,
        ``created_before`` (datetimes, UTC if naive). ``limit=None``: all runs.
        """
        merged = {**(filters or {}), **more_filters}
        cols = [getattr(RunRecord, c) for c in SUMMARY_COLUMNS]
        stmt = self._filtered(sa.select(*cols), merged)
        order = RunRecord.id.desc() if newest_first else RunRecord.id.asc()
        stmt = stmt.order_by(order).offset(max(0, int(offset)))
        if limit is not None:
            stmt = stmt.limit(max(0, int(limit)))
        with self._errors("read"), Session(self.engine) as session:
            rows = session.execute(stmt).all()
        out = []
        for row in rows:
            values = dict(zip(SUMMARY_COLUMNS, row, strict=True))
            values["created_at"] = _as_utc(values["created_at"])
            out.append(RunSummary(**values))
        return out

    def dataframe(
        self,
        limit: int | None = 100,
        filters: Mapping[str, Any] | None = None,
        **more_filters: Any,
    ) -> pd.DataFrame:
        """:meth:`list` as a pandas DataFrame (one row per run, columns :data:`SUMMARY_COLUMNS`)."""
        rows = [s.as_dict() for s in self.list(limit, filters, **more_filters)]
        df = pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))
        return df

    def count(
        self, filters: Mapping[str, Any] | None = None, **more_filters: Any
    ) -> int:
        """Number of saved runs (optionally filtered like :meth:`list`)."""
        merged = {**(filters or {}), **more_filters}
        stmt = self._filtered(sa.select(sa.func.count(RunRecord.id)), merged)
        with self._errors("read"), Session(self.engine) as session:
            return int(session.execute(stmt).scalar_one())

    def __len__(self) -> int:
        return self.count()
