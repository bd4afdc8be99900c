"""QPU-like samplers: simulated QPUs, the real D-Wave QPU, Leap hybrid.

Simulated QPU
    :class:`SimulatedQPUSampler` is :class:`dwave.system.testing.MockDWaveSampler`
    on a full Pegasus P16 or Zephyr Z12 graph, with simulated annealing
    (:class:`dwave.samplers.SimulatedAnnealingSampler`) run on the *embedded,
    physical* problem instead of the mock's default steepest descent. Behind
    :class:`~core.embedding.MinorEmbeddingComposite` it reproduces what minor
    embedding does to a problem (chains, chain strength, chain breaks, majority
    vote); it does not simulate quantum physics, noise or QPU timing.

Real QPU and Leap hybrid
    :class:`DWaveQPUSampler` and :class:`LeapHybridBQMSampler` connect to
    D-Wave Leap with a token given explicitly or read from the
    ``DWAVE_API_TOKEN`` environment variable. The token is passed to the cloud
    client and nothing else: it is not kept on our objects, not shown in any
    ``repr``, message or exception, never written anywhere, and a logging
    filter masks it in the cloud client's own (debug) logs; that filter holds
    the tokens it masks in process memory only. Missing tokens and network, authentication or
    timeout failures become a one-sentence
    :class:`~core.errors.UnavailableError`; connection attempts are not retried
    and time out after ``request_timeout`` seconds.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator
from typing import Any

import dimod
from dwave.samplers import SimulatedAnnealingSampler
from dwave.system.testing import MockDWaveSampler

from core.embedding.topologies import TOPOLOGIES, Topology, get_topology
from core.errors import InvalidInputError, UnavailableError
from core.solvers.base import validate_beta_range, validate_positive_float, validate_positive_int

__all__ = [
    "TOKEN_ENV_VAR",
    "DWaveQPUSampler",
    "LeapHybridBQMSampler",
    "SimulatedQPUSampler",
    "has_token",
    "qpu_topology",
    "redact",
    "resolve_token",
]

TOKEN_ENV_VAR = "DWAVE_API_TOKEN"
DEFAULT_REQUEST_TIMEOUT_S = 10.0
_MASK = "***"

NO_TOKEN_MESSAGE = (
    "No D-Wave Leap API token: set the DWAVE_API_TOKEN environment variable (or enter a "
    "token in the app) to use the 'dwave' and 'leap-hybrid' solvers. The simulated QPUs "
    "'mock-qpu-pegasus' and 'mock-qpu-zephyr' need no token."
)


# --------------------------------------------------------------------------- simulated QPU


class SimulatedQPUSampler(MockDWaveSampler):
    """A simulated QPU: MockDWaveSampler + simulated annealing.

    It reproduces minor embedding and chain breaks on an Advantage-like Pegasus
    P16 (``"pegasus"``), Advantage2-like Zephyr Z12 (``"zephyr"``) or Chimera
    C16 (``"chimera"``) graph, not quantum physics: the physical problem is
    solved by classical simulated annealing.

    Args:
        topology: ``"pegasus"``, ``"zephyr"`` or ``"chimera"``.
        num_sweeps: default annealing sweeps per read.
        beta_range: default (hot, cold) inverse temperatures; None lets the
            annealer choose from the problem's biases.

    Example:
        >>> from core.embedding import MinorEmbeddingComposite
        >>> sampler = MinorEmbeddingComposite(SimulatedQPUSampler("zephyr"))
        >>> ss = sampler.sample_ising({}, {("a", "b"): -1}, num_reads=5, seed=1)
        >>> float(ss.first.energy)
        -1.0
    """

    _extra_parameters = ("seed", "num_sweeps", "beta_range")

    def __init__(
        self,
        topology: str = "pegasus",
        *,
        num_sweeps: int = 1000,
        beta_range: tuple[float, float] | None = None,
    ) -> None:
        self.topology: Topology = get_topology(topology)
        spec = TOPOLOGIES[self.topology.name]
        self.num_sweeps = validate_positive_int(num_sweeps, "num_sweeps")
        self.beta_range = validate_beta_range(beta_range)
        graph = self.topology.graph
        super().__init__(
            nodelist=sorted(graph.nodes),
            edgelist=sorted(tuple(sorted(e)) for e in graph.edges),
            topology_type=spec.family,
            topology_shape=list(spec.shape),
            substitute_sampler=SimulatedAnnealingSampler(),
            exact_solver_cutoff=0,
        )
        self.properties["chip_id"] = f"simulated-{self.topology.name}"
        self.properties["simulated"] = True
        for name in self._extra_parameters:
            self.parameters[name] = []
            self.mocked_parameters.add(name)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.topology.name!r})"

    def sample(self, bqm: dimod.BinaryQuadraticModel, **kwargs: Any) -> dimod.SampleSet:
        """Simulated annealing on the physical (embedded) problem.

        Accepts the mocked QPU parameters (``num_reads``, ``answer_mode``,
        ``label``) plus ``seed``, ``num_sweeps`` and ``beta_range`` for the
        annealer; other QPU parameters are rejected.
        """
        kwargs.setdefault("num_sweeps", self.num_sweeps)
        if kwargs.get("beta_range", self.beta_range) is not None:
            kwargs["beta_range"] = validate_beta_range(
                kwargs.get("beta_range", self.beta_range)
            )
        else:
            kwargs.pop("beta_range", None)
        # the mock forwards every kwarg to the annealer: keep QPU-only ones away from it
        label = kwargs.pop("label", None)
        if kwargs.get("answer_mode") == "histogram":
            del kwargs["answer_mode"]  # the mock's default; "raw" is passed through
        sampleset = super().sample(bqm, **kwargs)
        if label is not None:
            sampleset.info["problem_label"] = label
        return sampleset


def qpu_topology(sampler: Any) -> Topology | None:
    """The qubit-graph topology of the QPU-like sampler in a composite chain (first children down), or None
    for a sampler that takes problems as they are."""
    while sampler is not None:
        topology = getattr(sampler, "topology", None)
        if topology is not None:
            return topology
        children = getattr(sampler, "children", None)
        sampler = children[0] if children else None
    return None


# --------------------------------------------------------------------------- tokens


class _RedactingFilter(logging.Filter):
    """Masks registered secrets in log records of the D-Wave cloud client."""

    def __init__(self) -> None:
        super().__init__()
        self._secrets: set[str] = set()
        self._lock = threading.Lock()

    def add(self, secret: str) -> None:
        if not secret:
            return
        with self._lock:
            self._secrets.add(secret)

    def redact(self, text: str) -> str:
        with self._lock:
            secrets = sorted(self._secrets, key=len, reverse=True)
        for secret in secrets:
            text = text.replace(secret, _MASK)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken record is not ours to fix
            return True
        cleaned = self.redact(message)
        if cleaned != message:
            record.msg = cleaned
            record.args = ()
        return True


_redactor = _RedactingFilter()
_LOGGER_PREFIXES = ("dwave.cloud", "dwave.system", "urllib3")


def _protect_logs(token: str) -> None:
    """Register ``token`` for masking and attach the filter to cloud loggers."""
    if token:
        _redactor.add(token)
    manager = logging.Logger.manager
    names = [n for n in list(manager.loggerDict) if n.startswith(_LOGGER_PREFIXES)]
    for name in {*names, *_LOGGER_PREFIXES}:
        logger = logging.getLogger(name)
        if _redactor not in logger.filters:
            logger.addFilter(_redactor)


def redact(text: str, token: str | None = None) -> str:
    """``text`` with the given token and every registered token masked."""
    if token:
        text = text.replace(token, _MASK)
    return _redactor.redact(text)


def resolve_token(token: str | None = None) -> str:
    """The token to use: ``token`` if given, else ``$DWAVE_API_TOKEN``.

    Raises:
        UnavailableError: when neither is set (the message never contains a
            token).
    """
    value = token if token is not None else os.environ.get(TOKEN_ENV_VAR)
    if not isinstance(value, str) or not value.strip():
        raise UnavailableError(NO_TOKEN_MESSAGE)
    return value.strip()


def has_token(token: str | None = None) -> bool:
    """Whether a token is available (given or in the environment)."""
    try:
        resolve_token(token)
    except UnavailableError:
        return False
    return True


def _describe_cloud_error(exc: BaseException, service: str, timeout: float) -> str:
    import requests
    from dwave.cloud.api.exceptions import RequestTimeout, ResourceAuthenticationError
    from dwave.cloud.exceptions import (
        SolverAuthenticationError,
        SolverNotFoundError,
        SolverOfflineError,
    )

    if isinstance(exc, (SolverAuthenticationError, ResourceAuthenticationError)):
        return f"D-Wave Leap rejected the API token for the {service}; check DWAVE_API_TOKEN."
    if isinstance(exc, SolverNotFoundError):
        return f"No {service} is available to this Leap account (or the requested solver name is wrong)."
    if isinstance(exc, SolverOfflineError):
        return f"The {service} is offline right now; try again later or use a simulated QPU."
    if isinstance(
        exc,
        (
            RequestTimeout,
            TimeoutError,
            requests.Timeout,
            requests.ConnectionError,
            OSError,
        ),
    ):
        return (
            f"Could not reach D-Wave Leap for the {service} (no network, or no answer within "
            f"{timeout:g} s). Check the connection, or use a simulated QPU "
            "('mock-qpu-pegasus', 'mock-qpu-zephyr')."
        )
    return f"The {service} failed ({type(exc).__name__}); try again, or use a simulated QPU."


@contextlib.contextmanager
def _cloud_errors(token: str, service: str, timeout: float) -> Iterator[None]:
    """Turn any failure talking to Leap into a plain UnavailableError."""
    _protect_logs(token)
    try:
        yield
    except (InvalidInputError, UnavailableError):
        raise
    except Exception as exc:  # noqa: BLE001 - every cloud failure becomes one plain message
        message = redact(_describe_cloud_error(exc, service, timeout), token)
        raise UnavailableError(message) from None


def _client_config(request_timeout: float, config: dict[str, Any]) -> dict[str, Any]:
    out = {"request_timeout": request_timeout, "http_retry_total": 0}
    out.update(config)
    return out


def _connect_dwave_sampler(**config: Any) -> dimod.Sampler:
    """Create a :class:`dwave.system.DWaveSampler` (tests replace this)."""
    from dwave.system import DWaveSampler

    return DWaveSampler(**config)


def _connect_leap_hybrid(**config: Any) -> dimod.Sampler:
    """Create a :class:`dwave.system.LeapHybridSampler` (tests replace this)."""
    from dwave.system import LeapHybridSampler

    return LeapHybridSampler(**config)


class _LeapSampler(dimod.Sampler):
    """A Leap solver behind this module's guards (token, timeout, plain errors).

    Subclasses name the ``_service`` (as said in messages) and ``_connect`` to
    it; the arguments are those of :class:`DWaveQPUSampler`.
    """

    _service: str

    def __init__(
        self,
        token: str | None = None,
        *,
        solver: str | dict[str, Any] | None = None,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT_S,
        **config: Any,
    ) -> None:
        secret = resolve_token(token)
        self._timeout = validate_positive_float(request_timeout, "request_timeout")
        options = _client_config(self._timeout, config)
        if solver is not None:
            options["solver"] = solver
        with _cloud_errors(secret, self._service, self._timeout):
            self._child = self._connect(token=secret, **options)

    def _connect(self, **config: Any) -> dimod.Sampler:
        raise NotImplementedError

    @property
    def parameters(self) -> dict[str, Any]:
        return self._child.parameters

    @property
    def properties(self) -> dict[str, Any]:
        return self._child.properties

    def sample(
        self, bqm: dimod.BinaryQuadraticModel, **parameters: Any
    ) -> dimod.SampleSet:
        """Submit the problem (already embedded, for a QPU) and wait for the answers."""
        with _cloud_errors("", self._service, self._timeout):
            sampleset = self._child.sample(bqm, **parameters)
            sampleset.resolve()
        return sampleset

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._child.close()


class DWaveQPUSampler(_LeapSampler, dimod.Structured):
    """The real D-Wave QPU (:class:`dwave.system.DWaveSampler`), guarded.

    Structured: use it behind :class:`~core.embedding.MinorEmbeddingComposite`
    (the ``dwave`` registry entry does).

    Args:
        token: Leap API token; default ``$DWAVE_API_TOKEN``. Not stored here.
        solver: solver name or feature filter (default: the QPU with most
            qubits).
        request_timeout: seconds to wait for each request (no retries).
        **config: further :class:`dwave.cloud.Client` options (``region``,
            ``endpoint``, ...).

    Raises:
        UnavailableError: no token, or Leap cannot be reached / rejects it.
    """

    _service = "D-Wave QPU"

    def _connect(self, **config: Any) -> dimod.Sampler:
        return _connect_dwave_sampler(**config)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(chip_id={self.properties.get('chip_id')!r})"

    @property
    def nodelist(self) -> list[int]:
        return self._child.nodelist

    @property
    def edgelist(self) -> list[tuple[int, int]]:
        return self._child.edgelist

    def to_networkx_graph(self) -> Any:
        return self._child.to_networkx_graph()


class LeapHybridBQMSampler(_LeapSampler):
    """Leap's hybrid BQM solver (:class:`dwave.system.LeapHybridSampler`), guarded.

    Takes problems far larger than a QPU holds, with no embedding step. Sample
    parameter ``time_limit`` (seconds; the solver enforces a minimum that grows
    with problem size).

    Args:
        token: Leap API token; default ``$DWAVE_API_TOKEN``. Not stored here.
        solver: hybrid solver name or feature filter.
        request_timeout: seconds to wait for each request (no retries).
        **config: further :class:`dwave.cloud.Client` options.

    Raises:
        UnavailableError: no token, or Leap cannot be reached / rejects it.
    """

    _service = "Leap hybrid solver"

    def _connect(self, **config: Any) -> dimod.Sampler:
        return _connect_leap_hybrid(**config)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
