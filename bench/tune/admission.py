"""Admission of trials into a shared Optuna study: an exact budget, no duplicate parameters.

Many workers (processes, machines) run ``study.optimize`` on one study. The storage numbers
trials atomically in creation order. A trial is *decided* once it carries the user attribute
``bench.admission``; trial k, its parameters sampled, waits until every lower-numbered RUNNING
trial is decided and then decides itself against them, so decisions are taken in trial-number
order, as if by one process:

- ``surplus``: ``budget`` trials are live already (complete, pruned, or admitted and running):
  the trial fails and its worker stops;
- ``duplicate``: a live trial has the same parameters: the trial fails, the worker samples again;
- ``admitted``: the trial is evaluated.

Rejected trials end FAIL and count toward nothing, so the study ends with exactly ``budget``
complete or pruned trials. Only an admitted trial that dies (a killed worker) leaves it short;
its heartbeat marks it failed and the next start makes the count up.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

log = logging.getLogger("bench")
ADMISSION = "bench.admission"
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


class Rejected(Exception):
    """A trial that must not be evaluated (surplus or duplicate): it ends FAIL, uncounted."""


def is_live(trial: FrozenTrial) -> bool:
    """Complete, pruned, or running and admitted: a trial that counts toward the budget."""
    admitted = trial.user_attrs.get(ADMISSION) == "admitted"
    return trial.state in FINISHED or (trial.state == TrialState.RUNNING and admitted)


def finished_trials(study: optuna.Study) -> list[FrozenTrial]:
    return study.get_trials(deepcopy=False, states=FINISHED)


def fail_stale_trials(study: optuna.Study) -> None:
    """Mark trials whose heartbeat stopped (killed workers) FAIL, running the stale callback."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def _undecided(trial: FrozenTrial) -> bool:
    return trial.state == TrialState.RUNNING and ADMISSION not in trial.user_attrs


class _QuietRejections(logging.Filter):
    """Optuna logs a failed trial with its traceback; a rejection needs one line, not that."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], Rejected):
            record.exc_info = None
        return True


@dataclass
class Admission:
    """Decides each trial of one worker; also an optimize callback that stops at the budget.

    ``attrs`` (worker index, seed, process) are recorded on every trial the worker starts.
    """

    budget: int
    attrs: dict[str, Any] = field(default_factory=dict)
    max_duplicates: int = 50  # consecutive: the space has fewer distinct points than asked
    poll_s: float = 0.1
    _duplicates: int = 0

    def admit(self, trial: optuna.Trial) -> None:
        """Decide ``trial`` (its parameters sampled); raise :class:`Rejected` unless admitted."""
        for key, value in self.attrs.items():
            trial.set_user_attr(key, value)
        study = trial.study
        live = [t for t in self._lower_decided(study, trial.number) if is_live(t)]
        if len(live) >= self.budget:
            study.stop()
            self._reject(trial, "surplus", f"{self.budget} trials are already live")
        same = [t.number for t in live if t.params == trial.params]
        if same:
            self._duplicates += 1
            if self._duplicates >= self.max_duplicates:
                log.warning(
                    "%d duplicate samples in a row: the search space seems to hold fewer "
                    "than %d distinct points; this worker stops",
                    self._duplicates,
                    self.budget,
                )
                study.stop()
            self._reject(trial, "duplicate", f"same parameters as trial {same[0]}")
        self._duplicates = 0
        trial.set_user_attr(ADMISSION, "admitted")

    def _lower_decided(self, study: optuna.Study, number: int) -> list[FrozenTrial]:
        """The trials numbered below ``number``, once none of them is undecided."""
        while True:
            lower = [t for t in study.get_trials(deepcopy=False) if t.number < number]
            if not any(_undecided(t) for t in lower):
                return lower
            time.sleep(self.poll_s)
            fail_stale_trials(study)  # a worker that died while deciding

    @staticmethod
    def _reject(trial: optuna.Trial, why: str, detail: str):
        trial.set_user_attr(ADMISSION, why)
        raise Rejected(f"{why}: {detail}")

    def full(self, study: optuna.Study) -> bool:
        """Whether ``budget`` trials are live (a dead worker's trial first failed)."""
        fail_stale_trials(study)
        return sum(is_live(t) for t in study.get_trials(deepcopy=False)) >= self.budget

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        """After each trial: stop this worker once the budget is live."""
        if self.full(study):
            study.stop()


def optimize(
    study: optuna.Study,
    objective: Callable[[optuna.Trial], float],
    admission: Admission,
    callbacks: Iterable[Callable[[optuna.Study, FrozenTrial], None]] = (),
) -> None:
    """``study.optimize`` until the study's budget is live; ``objective`` calls ``admit``."""
    quiet = _QuietRejections()
    logger = logging.getLogger("optuna.study._optimize")
    logger.addFilter(quiet)
    try:
        if not admission.full(study):
            study.optimize(objective, catch=(Rejected,), callbacks=[admission, *callbacks])
    finally:
        logger.removeFilter(quiet)
