"""RELIABILITY.md, "broker down after commit" (issue 14): with Redis unreachable when a request commits, the
caller still gets its success status, the failure is logged naming the task, and once the broker is back the
beat's re-drive runs the lost follow-up on a real worker, once however often it runs."""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest

from accounts.models import RiskSnapshot, Sweep, SweepShard, SweepStatus
from restructuring.models import CaseState, FeasibilityReport, Proposal, ProposalSource, ProposalState
from tests.api.conftest import World
from tests.restructuring.helpers import broker_unreachable, wait_until, worker

pytestmark = [pytest.mark.postgres, pytest.mark.celery_worker]

FOLLOWUP_TASK = "restructuring.tasks.counter_followup_task"
REDRIVE_TASK = "restructuring.tasks.feasibility_redrive_task"
SHARD_TASK = "accounts.tasks.sweep_shard_run_task"
SWEEPS_REDRIVE_TASK = "accounts.tasks.sweeps_redrive_task"
FAST_WORKER = {"WORKOUT_FEASIBILITY_PATHS": "500"}


def _not_queued(caplog: pytest.LogCaptureFixture, task: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and task in r.getMessage()]


def test_a_counter_with_the_broker_down_is_answered_201_and_its_followup_redriven_once(
    committed_world: World, caplog: pytest.LogCaptureFixture
) -> None:
    # given an offer, and Redis refusing connections when the client counters it
    world = committed_world
    api = world.api("client_a")
    offer = world.a_offer
    started = time.monotonic()
    with broker_unreachable(), caplog.at_level(logging.WARNING):
        response = api.post(f"/api/v1/offers/{offer.pk}/counter/", {"term_months": 18})
    elapsed = time.monotonic() - started

    # then the counter is answered as committed, without waiting on the broker, and the lost dispatch is logged
    assert response.status_code == 201, response.content
    assert elapsed < 5.0
    counter = Proposal.objects.get(countered_from=offer)
    assert counter.state == ProposalState.PENDING_APPROVAL
    assert counter.case.state == CaseState.PROPOSED
    assert _not_queued(caplog, FOLLOWUP_TASK), [r.getMessage() for r in caplog.records]
    key = f"counter:{offer.pk}"
    assert not FeasibilityReport.objects.filter(case=offer.case, key=key).exists()

    # when the broker is back and the beat's re-drive runs on a real worker
    with worker(route_here=True, env=FAST_WORKER) as w:
        redrive = w.send(REDRIVE_TASK)
        w.wait_for_results(1, task_id=redrive, timeout_s=60)
        results = w.wait_for_results(1, name=FOLLOWUP_TASK, timeout_s=120)

        # then the follow-up ran: a fresh feasibility report for the new round and the rules' proposals on it
        report = FeasibilityReport.objects.get(case=offer.case, key=key)
        rules_proposals = Proposal.objects.filter(
            case=offer.case, source=ProposalSource.RULES, feasibility_report=report
        )
        assert rules_proposals.exists()
        assert sorted(results[0]) == sorted(rules_proposals.values_list("pk", flat=True))
        proposals_before = Proposal.objects.filter(case=offer.case).count()

        # and running it again (the re-drive, then the follow-up itself) changes nothing
        again = w.send(REDRIVE_TASK)
        w.wait_for_results(1, task_id=again, timeout_s=60)
        twice = w.send(FOLLOWUP_TASK, case_id=offer.case_id, offer_id=offer.pk)
        assert w.wait_for_results(1, task_id=twice, timeout_s=60) == [[]]
        assert w.received(name=FOLLOWUP_TASK) == 2  # the re-drive queued it once, the test once
    assert FeasibilityReport.objects.filter(case=offer.case, key=key).count() == 1
    assert Proposal.objects.filter(case=offer.case).count() == proposals_before


def test_a_sweep_started_with_the_broker_down_is_answered_202_and_redriven_once(
    committed_world: World, caplog: pytest.LogCaptureFixture
) -> None:
    # given Redis refusing connections when an operator starts a sweep through the API
    api = committed_world.api("operator")
    with broker_unreachable(), caplog.at_level(logging.WARNING):
        response = api.post("/api/v1/operations/sweeps/", {"shards": 2})

    # then the sweep is created and answered 202; its shards' dispatch is logged as lost
    assert response.status_code == 202, response.content
    sweep = Sweep.objects.get(pk=response.json()["id"])
    assert sweep.status == SweepStatus.RUNNING
    assert _not_queued(caplog, SHARD_TASK), [r.getMessage() for r in caplog.records]

    # when the broker is back and the beat's re-drive (here: for sweeps older than 0 s) runs on a real worker
    with worker(route_here=True, env={"WORKOUT_SWEEP_REDRIVE_AFTER_SECONDS": "0"}) as w:
        redrive = w.send(SWEEPS_REDRIVE_TASK)
        shard_ids = sorted(sweep.shards.values_list("pk", flat=True))
        assert sorted(w.wait_for_results(1, task_id=redrive, timeout_s=60)[0]) == shard_ids
        wait_until(lambda: Sweep.objects.get(pk=sweep.pk).status == SweepStatus.DONE, "the re-driven sweep")
        done: Any = Sweep.objects.get(pk=sweep.pk)
        snapshots = RiskSnapshot.objects.count()

        # and running a shard again stores nothing twice
        for shard_id in shard_ids:
            w.send(SHARD_TASK, shard_id=shard_id)
        w.wait_for_results(4, name=SHARD_TASK, timeout_s=60)
    again = Sweep.objects.get(pk=sweep.pk)
    assert (again.status, again.finished_at, again.accounts) == (SweepStatus.DONE, done.finished_at, done.accounts)
    assert RiskSnapshot.objects.count() == snapshots
    assert SweepShard.objects.filter(sweep=sweep, status=SweepStatus.DONE).count() == 2
