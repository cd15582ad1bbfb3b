"""Benchmark of the auto-assignment of a sweep's new cases. Prints one JSON object on its last line.

    python bench/assignment.py [--cases 5000] [--officers 40] [--repeat 5]

In its own database (`workout_bench_assign`; BENCH_DATABASE_URL overrides) it writes, once, a synthetic desk:
`--cases` accounts with loans (debts from 1,000 to 400,000 USD, so some need a senior's authority), as many
unassigned open cases (a third in margin call, a sixth critical, the rest warnings), and `--officers` officers
on two teams: a quarter seniors (5,000,000 authority), the rest credit officers (250,000; every fifth with an own
limit of 100,000), every tenth on leave, and an existing load: a tenth as many cases again, already assigned.

It then times `cases_assign_new` over every unassigned case, `--repeat` times, each in a transaction rolled back
so each run starts from the same desk. That is what the sweep calls in the transaction that opens its cases, with
the new cases it holds in memory (account, band, currency: read here before the clock starts): it places them
and the sweep inserts each case with its officer, and its "case.open" event (written for every new case anyway)
names them; so the figure has no update of the cases and no event, which the sweep no longer writes either.
`cases_balance` (`manage.py cases_assign`: the same placing of cases already written, their update, and a
"case.assign" event per case) is timed the same way, for comparison. And the whole of the sweep's opening of these
cases (built, placed, inserted, their "case.open" events written) with and without the assignment
(`opening_s`, `opening_unassigned_s`): the difference is what assigning costs the sweep.

`assign_s` is the median; `queries` the statements one run issued (fixed, whatever the number of cases);
`assigned` / `unplaced` what a run did; `max_load_spread` the largest difference in urgency points between two
eligible credit officers of the same authority after the run (the balance); `balance_s` the median of
`cases_balance` over the same cases, `balance_queries` its statements; `load_average` the machine's (1, 5, 15
minutes) at the end (other work on a shared machine inflates the times).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from decimal import Decimal
from typing import Any

os.environ.setdefault("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/workout_bench_assign")

from common import database_ready, machine


def _desk(cases: int, officers: int) -> None:
    from django.contrib.auth.models import Group, User
    from django.db import connection, transaction
    from django.utils import timezone

    from accounts.models import Client, MarginAccount, MarginLoan
    from core.roles import CREDIT_OFFICER, SENIOR_CREDIT_OFFICER
    from restructuring.models import ApprovalLimit, Case, CaseState, Team, TeamMembership

    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE core_auditevent, restructuring_case, restructuring_team, accounts_client, auth_user "
            "RESTART IDENTITY CASCADE"
        )
    now = timezone.now()
    with transaction.atomic():
        teams = [Team.objects.create(name=f"Desk {i}") for i in range(2)]
        groups = {name: Group.objects.get(name=name) for name in (CREDIT_OFFICER, SENIOR_CREDIT_OFFICER)}
        users = User.objects.bulk_create([User(username=f"officer{i:03}") for i in range(officers)])
        for i, user in enumerate(users):
            role = SENIOR_CREDIT_OFFICER if i % 4 == 0 else CREDIT_OFFICER
            user.groups.add(groups[role])
            if role == CREDIT_OFFICER and i % 5 == 1:
                ApprovalLimit.objects.create(user=user, currency="USD", amount=Decimal(100_000))
        TeamMembership.objects.bulk_create(
            TeamMembership(team=teams[i % 2], user=user, on_leave=i % 10 == 9) for i, user in enumerate(users)
        )
        for team in teams:
            team.senior = users[0]
            team.save()
        total = cases + cases // 10  # the new cases, and the load the officers already carry
        clients = Client.objects.bulk_create(Client(code=f"C{i:06}", name=f"Client {i}") for i in range(total))
        accounts = MarginAccount.objects.bulk_create(
            MarginAccount(code=f"A{i:06}", client=client) for i, client in enumerate(clients)
        )
        MarginLoan.objects.bulk_create(
            MarginLoan(account=account, principal=Decimal(1_000 + (i * 7919) % 399_000), rate_annual=Decimal("0.08"))
            for i, account in enumerate(accounts)
        )
        bands = ["margin_call", "warning", "critical", "margin_call", "warning", "warning"]
        Case.objects.bulk_create(
            Case(
                account=account,
                state=CaseState.MARGIN_CALL if bands[i % 6] != "warning" else CaseState.WARNING,
                band=bands[i % 6],
                opened_at=now,
                state_changed_at=now,
                assignee=users[i % officers] if i >= cases else None,
            )
            for i, account in enumerate(accounts)
        )


def _write(placements: dict[int, Any]) -> None:
    """The placed officers on the bench's cases (their accounts'), to measure the balance."""
    from django.db import connection

    accounts = list(placements)
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE restructuring_case AS c SET assignee_id = v.assignee, team_id = v.team "
            "FROM unnest(CAST(%s AS bigint[]), CAST(%s AS integer[]), CAST(%s AS bigint[])) "
            "AS v(account, assignee, team) "
            "WHERE c.account_id = v.account AND c.assignee_id IS NULL",
            [accounts, [placements[a].user_id for a in accounts], [placements[a].team_id for a in accounts]],
        )


def _opening(new: list[Any], *, assign: bool) -> float:
    """The sweep's opening of the bench's new cases, timed as the sweep does it (restructuring/services/case_sweep.py:
    the cases built, placed with their officers when `assign`, inserted, and their "case.open" events written,
    naming the officers), in the caller's transaction: the cases are deleted first (the bench's desk has them)."""
    from decimal import Decimal

    from django.utils import timezone

    from restructuring.models import Case
    from restructuring.services import case_sweep
    from restructuring.services.assignment import cases_assign_new

    Case.objects.filter(account_id__any=[c.account_id for c in new]).delete()
    now = timezone.now()
    risks = {
        c.account_id: case_sweep._Risk(c.account_id, c.band, Decimal("0.9"), Decimal(500), Decimal(300), 1, c.currency)
        for c in new
    }
    start = time.perf_counter()
    cases = [case_sweep._case_open(risk, now) for risk in risks.values()]
    owners = cases_assign_new(cases=new).placements if assign else {}
    for case in cases:
        owner = owners.get(case.account_id)
        if owner is not None:
            case.assignee_id, case.team_id, case.assigned_at = owner.user_id, owner.team_id, now
    case_sweep.bulk_insert(Case, cases, key="account")
    entries: list[Any] = []
    for case in cases:
        case_sweep._entries_for_new(case, risks[case.account_id], entries, owners.get(case.account_id))
    case_sweep.audit_record_many(entries)
    return time.perf_counter() - start


def _spread() -> float:
    from django.conf import settings
    from django.db.models import Count

    from restructuring.models import OPEN_STATES, Case

    weights = settings.WORKOUT_ASSIGN_WEIGHTS
    loads: dict[int, float] = {}
    rows = (
        Case.objects.filter(
            state__in=OPEN_STATES,
            assignee__team_membership__on_leave=False,
            assignee__groups__name="credit_officer",
            assignee__approval_limits__isnull=True,
        )
        .values_list("assignee_id", "band")
        .annotate(n=Count("pk"))
    )
    for uid, band, n in rows:
        loads[uid] = loads.get(uid, 0.0) + weights.get(band, 1) * n
    return max(loads.values()) - min(loads.values()) if loads else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=5000)
    parser.add_argument("--officers", type=int, default=60)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    database_ready()
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from restructuring.models import Case
    from restructuring.services.assignment import NewCase, cases_assign_new, cases_balance

    log = lambda *a: print(*a, file=sys.stderr, flush=True)  # noqa: E731
    if Case.objects.filter(assignee__isnull=True).count() != args.cases:
        log(f"writing the desk: {args.cases} cases, {args.officers} officers")
        _desk(args.cases, args.officers)
    # Every run rolls back: the dead rows it leaves (5,000 case updates, 5,000 to 10,000 events) are autovacuum's
    # to clear, which on a busy machine lags; the bench starts from a vacuumed desk so that runs compare.
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE restructuring_case, core_auditevent")
    rows = list(
        Case.objects.filter(assignee__isnull=True)
        .order_by("pk")
        .values_list("pk", "account_id", "band", "account__base_currency")
    )
    new = [NewCase(account_id, band, currency) for _pk, account_id, band, currency in rows]
    ids = [pk for pk, *_ in rows]
    figures: dict[str, Any] = {"bench": "assignment", "cases": len(new), "officers": args.officers}
    times: list[float] = []
    balance_times: list[float] = []
    opening: list[float] = []
    opening_unassigned: list[float] = []
    for run in range(args.repeat):
        with transaction.atomic():
            with CaptureQueriesContext(connection) as queries:
                start = time.perf_counter()
                result = cases_assign_new(cases=new)
                times.append(time.perf_counter() - start)
            if run == 0:
                figures["queries"] = len(queries)
                figures["assigned"], figures["unplaced"] = result.assigned, result.unplaced
                _write(result.placements)  # as the sweep inserts them (not timed here: it inserts them anyway)
                figures["max_load_spread"] = _spread()
            transaction.set_rollback(True)
        with transaction.atomic():
            with CaptureQueriesContext(connection) as queries:
                start = time.perf_counter()
                cases_balance(case_ids=ids, system_actor="bench", now=timezone.now())
                balance_times.append(time.perf_counter() - start)
            figures["balance_queries"] = len(queries)
            transaction.set_rollback(True)
        for assign, opened in ((True, opening), (False, opening_unassigned)):
            with transaction.atomic():
                opened.append(_opening(new, assign=assign))
                transaction.set_rollback(True)
        log(
            f"run {run + 1}: {times[-1]:.3f} s (cases_balance, with its events: {balance_times[-1]:.3f} s; "
            f"the sweep's opening {opening[-1]:.3f} s, without assigning {opening_unassigned[-1]:.3f} s)"
        )
    figures["assign_s"] = round(statistics.median(times), 4)
    figures["opening_s"] = round(statistics.median(opening), 4)
    figures["opening_unassigned_s"] = round(statistics.median(opening_unassigned), 4)
    figures["assign_max_s"] = round(max(times), 4)
    figures["balance_s"] = round(statistics.median(balance_times), 4)
    figures["load_average"] = [round(x, 2) for x in os.getloadavg()]
    figures["machine"] = machine()
    figures["date"] = time.strftime("%Y-%m-%d")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
