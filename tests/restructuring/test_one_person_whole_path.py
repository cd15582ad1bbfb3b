"""One person, whole path (issue 13, RELIABILITY.md row "one person, whole path"): a single adversary drives every
action open to him, in any order (hypothesis RuleBasedStateMachine), and never moves money or policy alone.

The adversary is a senior credit officer holding every staff role (credit officer, senior credit officer,
compliance) and an approval limit above any debt, who also controls every client of the book: he accepts,
declines and counters offers through the client services and declares top-ups. Nobody else acts. Other people
are on the record only as they were before he started, by hypothesis's choice of the policy in force:
- "two people": the default rules written by policy-author and published by policy-publisher
  (tests/web/helpers.py `policy_in_force`);
- "command": the default rules loaded and published by a command (`ruleset_load(publish=True)`): nobody's;
- "colleague's draft": as "two people", plus a draft policy-author wrote that forgives every debt, waiting for a
  publisher.
The book: two or three accounts of 10 BTC in margin call or under water, swept, their feasibility reports and
the rules' proposals made by the follow-ups (as on the real stack), WORKOUT_TWO_APPROVALS_ABOVE at its default
or at 100.

What he may do, each through the real service: clone any rule set; add, replace or delete rules of any draft
(forgive every debt, liquidate every case, a zero rate); publish a draft, as himself or as a command would; sweep
again and run the rules on demand; move the market; draft terms (haircuts, rate cuts); edit, submit, approve (with
an override reason or without, at the version he reads or a stale one), reject, offer (current or stale
version); accept (with the offer's terms hash, a wrong one, or none), decline and counter as the client; execute
(current or stale version); propose a liquidation and carry one out; call `case_liquidate` himself; record
repayments (one, or every one due: the case closes); declare and confirm top-ups; let time pass with the
deadline beats. The rules are few, each drawing its variant (hypothesis picks a rule uniformly), and one pushes a
proposal along the whole path in one step (approve, offer, then the client accepts and he executes, or counters
and he approves, offers, accepts and executes the counter, or declines, or leaves it out; a liquidation is carried
out), so that deep paths come up within a small budget. A refusal must be a core.errors.WorkoutError and record
nothing (no audit event, no approval); anything else fails the test.

After every step, from the database:
1. every EXECUTED proposal (restructuring or liquidation) has two distinct people or more on its record: its
   makers (controls.proposal_makers: its editors; its rule set's author, editors and publisher), the approvers of
   its executed version, and for a counter-offer the people on the record of the offer it countered. As only the
   adversary acts, someone else is on every executed record.
   1b. a counter-offer borrows its offer's record only for what the offer's people set: an executed counter forgives
   no more principal than the offer it countered did, unless two people approved the counter itself.
2. no case went to liquidation through an officer (a `case.liquidate` event with a human actor) but by an
   executed liquidation proposal of that case (payload proposal_id) with two people on its record;
3. no rule set is published by one of its authors or editors; no system actor publishes while a set is in
   force; one set in force at most;
4. an executed proposal's approvals are of its current version (the approval that completed it names that
   version and no edit follows it); no proposal is approved, offered, accepted, executed or carried out while
   its case is where that is not allowed (closed, or past negotiation); a case that left negotiation keeps no
   live proposal;
5. the audit chain verifies.

Each example runs inside a savepoint its teardown rolls back, on the machine's clock (`timezone.now` patched,
moved forward by the time rule), as tests/restructuring/test_case_state_machine.py does.

Budget: `make test` runs 25 examples of at most 20 steps (about a minute on an idle machine; a failure adds up
to hypothesis's shrinking limit, some minutes). A bigger run, for bench-like use:
    WORKOUT_ADVERSARY_EXAMPLES=500 WORKOUT_ADVERSARY_STEPS=50 .venv/bin/pytest -p no:cacheprovider \\
        tests/restructuring/test_one_person_whole_path.py -k never_moves
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import Any, TypeVar
from unittest import mock

import pytest
from django.contrib.auth.models import Group, User
from django.db import transaction
from django.test import TestCase, override_settings
from django.utils import timezone
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from accounts.models import Instrument, Price
from accounts.services.sweep import sweep_run
from core.audit import audit_verify
from core.errors import WorkoutError
from core.models import AuditEvent
from core.roles import COMPLIANCE, CREDIT_OFFICER, SENIOR_CREDIT_OFFICER
from restructuring.models import (
    CLOSED_STATES,
    LIVE_PROPOSAL_STATES,
    Approval,
    ApprovalLimit,
    Case,
    CaseState,
    Installment,
    InstallmentStatus,
    Proposal,
    ProposalKind,
    ProposalState,
)
from restructuring.services.controls import proposal_makers
from restructuring.services.liquidation import PermissionDeniedError, case_liquidate, deadlines_run
from restructuring.services.negotiation.common import ApprovalRefusedError, NegotiationError, StaleTermsError
from restructuring.services.negotiation.deadlines import negotiation_deadlines_run
from restructuring.services.negotiation.execution import proposal_execute, proposal_liquidate
from restructuring.services.negotiation.offers import offer_accept, offer_counter, offer_decline, offer_send
from restructuring.services.negotiation.proposals import (
    proposal_approve,
    proposal_draft,
    proposal_edit,
    proposal_liquidation_draft,
    proposal_reject,
    proposal_submit,
)
from restructuring.services.negotiation.repayments import repayment_record
from restructuring.services.negotiation.topups import topup_confirm, topup_declare
from restructuring.services.proposals import proposals_from_rules
from rules import services as rules_services
from rules.models import RuleSet, RuleSetStatus
from rules.services import (
    DEFAULT_RULES,
    PublishPermissionError,
    rule_delete,
    rule_save,
    ruleset_clone,
    ruleset_load,
    ruleset_publish,
)
from tests.restructuring.helpers import account, btc
from tests.web.helpers import policy_in_force

T = TypeVar("T")

EXAMPLES = int(os.environ.get("WORKOUT_ADVERSARY_EXAMPLES", "25"))
STEPS = int(os.environ.get("WORKOUT_ADVERSARY_STEPS", "20"))
REASON = "the client's other assets, known to the desk"
DEBT = Decimal(750)  # a margin-call account's loan (tests/restructuring/helpers.py LOANS); under water: 1,100

# The rules the adversary writes into a draft (finding 2's "forgive everything", and two more of his liking).
FORGIVE_ALL = {
    "name": "forgive_everything",
    "priority": 1,
    "condition": "debt == debt",
    "action": "haircut_principal",
    "parameters": {"amount": "debt"},
    "package": "forgive",
}
LIQUIDATE_ALL = {
    "name": "liquidate_everything",
    "priority": 2,
    "condition": "debt == debt",
    "action": "liquidate",
    "parameters": {},
    "package": "liquidate_all",
}
ZERO_RATE = {
    "name": "zero_rate",
    "priority": 3,
    "condition": "debt == debt",
    "action": "change_rate",
    "parameters": {"rate": "0"},
    "package": "zero_rate",
}
CATALOGUE = (FORGIVE_ALL, LIQUIDATE_ALL, ZERO_RATE)

_HAIRCUTS = st.sampled_from(["0", "50", "100", "375", "750", "1100"])
_RATES = st.sampled_from(["0", "0.02", "0.06", "0.08"])
TERMS = st.fixed_dictionaries(
    {"term_months": st.integers(min_value=1, max_value=36)},
    optional={
        "rate_annual": _RATES,
        "principal_haircut": _HAIRCUTS,
        "collateral_to_add": st.sampled_from(["0", "300"]),
    },
)
# What the client changes in an offer's terms when countering (within the default bounds or beyond them).
COUNTER = st.fixed_dictionaries(
    {"extra_months": st.sampled_from([0, 6, 13])},
    optional={"rate_annual": _RATES, "principal_haircut": _HAIRCUTS, "collateral_to_add": st.just("0")},
)

# A counter the client means to get through: within the offer's default bounds, asking for some forgiveness.
COUNTER_WITHIN_BOUNDS = st.fixed_dictionaries(
    {"extra_months": st.sampled_from([0, 6]), "principal_haircut": _HAIRCUTS},
    optional={"rate_annual": st.sampled_from(["0.06", "0.08"])},
)

_NOT_YET_OFFERED = (ProposalState.DRAFT, ProposalState.PENDING_APPROVAL, ProposalState.APPROVED)
# Where each act makes sense: the proposals it is mostly tried on.
OFFICER_ACTS = {
    "edit": _NOT_YET_OFFERED,
    "submit": (ProposalState.DRAFT,),
    "approve": (ProposalState.PENDING_APPROVAL,),
    "approve without a reason": (ProposalState.PENDING_APPROVAL,),
    "approve a stale version": (ProposalState.PENDING_APPROVAL,),
    "reject": _NOT_YET_OFFERED,
    "offer": (ProposalState.APPROVED,),
    "offer a stale version": (ProposalState.APPROVED,),
    "execute": (ProposalState.ACCEPTED,),
    "execute a stale version": (ProposalState.ACCEPTED,),
    "carry out a liquidation": (ProposalState.APPROVED,),
}
CLIENT_ANSWERS = {
    answer: (ProposalState.OFFERED,)
    for answer in ("accept", "accept without a hash", "accept another hash", "decline", "counter")
}
LIKELY: dict[str, tuple[str, ...]] = {
    **OFFICER_ACTS,
    **CLIENT_ANSWERS,
    "push": (ProposalState.PENDING_APPROVAL, ProposalState.APPROVED),
}
PUSH_ANSWERS = ["accept", "counter", "counter", "decline", "leave it out"]  # the client's answer to the offer
MONEY_MOVES = ["repayment", "repayment of another amount", "every repayment due", "top-up"]
POLICY_MOVES = ["clone", "add a rule", "replace a rule", "delete a rule", "publish", "publish as a command"]

# Where a case must be for each proposal event (restructuring/services/negotiation/proposals.py _APPROVABLE and
# the edges).
_APPROVING = {
    ProposalKind.RESTRUCTURE: {CaseState.PROPOSED, CaseState.OFFERED},
    ProposalKind.LIQUIDATE: {CaseState.MARGIN_CALL, CaseState.PROPOSED, CaseState.OFFERED, CaseState.DEFAULTED},
}
_CASE_BEFORE = {
    "proposal.offer": {CaseState.PROPOSED},
    "proposal.accept": {CaseState.OFFERED},
    "proposal.execute": {CaseState.ACCEPTED},
}
# Past negotiation: a case here keeps no live proposal (a defaulted case may still be sent to liquidation).
_ENDED = {CaseState.RESTRUCTURED, CaseState.LIQUIDATING, *CLOSED_STATES}


def _adversary() -> User:
    adversary = User.objects.create_user("adversary")
    adversary.groups.add(*Group.objects.filter(name__in=[CREDIT_OFFICER, SENIOR_CREDIT_OFFICER, COMPLIANCE]))
    ApprovalLimit.objects.create(user=adversary, currency="USD", amount=Decimal("1000000000"))
    return User.objects.get(pk=adversary.pk)  # permissions are cached per instance: read them afresh


def _with_follow_ups(work: Callable[[], T]) -> T:
    """Run the on-commit follow-ups too (the case run after a sweep, feasibility, the rules; a counter's next
    round; a top-up's sweep): on the real stack Celery runs them once the action commits."""
    with TestCase.captureOnCommitCallbacks(execute=True):
        return work()


def _sweep_and_rules() -> None:
    """The beat's sweep with the case run and its follow-ups, then the rules on demand for the cases in margin
    call or among proposals (each report gets its proposals once: a newly published set proposes on the next
    report, that of a new margin call or of a counter-offer's round)."""
    _with_follow_ups(sweep_run)
    open_cases = list(
        Case.objects.filter(state__in=[CaseState.MARGIN_CALL, CaseState.PROPOSED]).values_list("pk", flat=True)
    )
    _with_follow_ups(lambda: proposals_from_rules(case_ids=open_cases))


def _client_of(proposal_id: int) -> int:
    return Case.objects.filter(proposals__pk=proposal_id).values_list("account__client_id", flat=True).get()


# ----------------------------------------------------------------------------------- the record of a proposal


def _makers(proposal: Proposal) -> set[int]:
    """Its makers, read here from the tables (and held equal to controls.proposal_makers)."""
    makers = set(proposal.editors.values_list("pk", flat=True)) | _ids(proposal.made_by_id)
    rule_set = proposal.rule_set
    if rule_set is not None:
        makers |= set(rule_set.editors.values_list("pk", flat=True))
        makers |= _ids(rule_set.created_by_id, rule_set.published_by_id)
    assert makers == set(proposal_makers(proposal)), (proposal.pk, makers, proposal_makers(proposal))
    return makers


def _ids(*user_ids: int | None) -> set[int]:
    return {user_id for user_id in user_ids if user_id is not None}


def _approvers(proposal: Proposal) -> set[int]:
    return set(
        Approval.objects.filter(proposal=proposal, version=proposal.version).values_list("approver_id", flat=True)
    )


def _people_on_record(proposal: Proposal) -> set[int]:
    people = _makers(proposal) | _approvers(proposal)
    if proposal.countered_from_id is not None:
        people |= _people_on_record(Proposal.objects.select_related("rule_set").get(pk=proposal.countered_from_id))
    return people


def _haircut(proposal: Proposal) -> Decimal:
    return Decimal(str(proposal.terms.get("principal_haircut") or "0"))


def _saw_haircut(proposal: Proposal, haircut: Decimal) -> set[int]:
    """The people on the record of terms that forgive `haircut` or more: an offer's people saw its haircut, not
    the larger one a client's counter may ask for."""
    people = (_makers(proposal) | _approvers(proposal)) if _haircut(proposal) >= haircut else set()
    if proposal.countered_from_id is not None:
        people |= _saw_haircut(Proposal.objects.select_related("rule_set").get(pk=proposal.countered_from_id), haircut)
    return people


class OnePersonWholePath(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        # Each example is undone by its teardown: the next one starts from an empty book and audit chain.
        self._savepoint = transaction.savepoint()
        self.clock: datetime = timezone.now().replace(microsecond=0)
        self._clock_patch = mock.patch("django.utils.timezone.now", new=self._now)
        self._clock_patch.start()
        self._settings: override_settings | None = None
        self.adversary: User | None = None
        self.ready = False

    def teardown(self) -> None:
        if self._settings is not None:
            self._settings.disable()
        self._clock_patch.stop()
        transaction.savepoint_rollback(self._savepoint)
        # Compiled rules are cached by rule-set id, and a rollback may hand the same ids out again (SQLite).
        rules_services._compiled.clear()

    def _now(self) -> datetime:
        self.clock += timedelta(microseconds=1)
        return self.clock

    @property
    def me(self) -> User:
        assert self.adversary is not None
        return self.adversary

    # ------------------------------------------------------------------------------------------ the world

    @initialize(
        # mostly a policy of two people: alone, the adversary can take nothing far under a policy nobody wrote
        policy=st.sampled_from(["two people", "two people", "command", "colleague's draft"]),
        bands=st.lists(st.sampled_from(["margin_call", "margin_call", "critical"]), min_size=2, max_size=3),
        two_approvals_above=st.sampled_from(["10000", "100"]),
    )
    def world(self, policy: str, bands: list[str], two_approvals_above: str) -> None:
        self._settings = override_settings(WORKOUT_TWO_APPROVALS_ABOVE=two_approvals_above)
        self._settings.enable()
        if policy == "command":
            ruleset_load(DEFAULT_RULES, publish=True)  # the system actor "setup": nobody's
        else:
            published = policy_in_force()
            if policy == "colleague's draft":
                colleague = User.objects.get(username="policy-author")
                draft = ruleset_clone(rule_set_id=published.pk, actor=colleague)
                rule_save(rule_set_id=draft.pk, rule=FORGIVE_ALL, actor=colleague)
        instrument = btc()
        for k, band in enumerate(bands):
            account(f"A{k}", instrument, band=band)
        _with_follow_ups(sweep_run)
        self.adversary = _adversary()
        self.ready = True

    # ------------------------------------------------------------------------------------------ helpers

    def _attempt(self, work: Callable[[], T]) -> T | None:
        """The adversary tries something: it succeeds, or the product refuses with a domain error and records
        nothing. Any other exception fails the test."""
        events = AuditEvent.objects.count()
        approvals = Approval.objects.count()
        try:
            return work()
        except WorkoutError:
            assert AuditEvent.objects.count() == events, "a refusal left an audit event"
            assert Approval.objects.count() == approvals, "a refusal left an approval"
            return None

    def _proposals(self) -> list[int]:
        return sorted(Proposal.objects.values_list("pk", flat=True))

    def _pick(self, data: st.DataObject, act: str) -> int | None:
        """Mostly a proposal where the act makes sense, sometimes any proposal at all (None: there is none)."""
        states = LIKELY[act]
        likely = sorted(Proposal.objects.filter(state__in=states).values_list("pk", flat=True))
        if likely and data.draw(st.integers(min_value=0, max_value=3), label="a likely one") > 0:
            return data.draw(st.sampled_from(likely), label="proposal")
        every = self._proposals()
        return data.draw(st.sampled_from(every), label="proposal") if every else None

    def _version(self, proposal_id: int) -> int:
        """What the adversary reads on the case page (he can always read it)."""
        return Proposal.objects.values_list("version", flat=True).get(pk=proposal_id)

    def _approve(self, proposal_id: int, *, reason: str = REASON) -> None:
        version = self._version(proposal_id)
        self._attempt(
            lambda: proposal_approve(proposal_id=proposal_id, actor=self.me, version=version, override_reason=reason)
        )

    def _offer(self, proposal_id: int) -> None:
        version = self._version(proposal_id)
        self._attempt(lambda: offer_send(proposal_id=proposal_id, actor=self.me, version=version))

    def _accept(self, proposal_id: int, terms_hash: str | None) -> None:
        client_id = _client_of(proposal_id)
        self._attempt(lambda: offer_accept(proposal_id=proposal_id, client_id=client_id, terms_hash=terms_hash))

    def _counter(self, proposal_id: int, change: Mapping[str, Any]) -> int | None:
        offer = Proposal.objects.get(pk=proposal_id)
        terms = {**offer.terms, **{k: v for k, v in change.items() if k != "extra_months"}}
        terms["term_months"] = int(offer.terms.get("term_months") or 12) + int(change["extra_months"])
        client_id = _client_of(proposal_id)
        counter = self._attempt(
            lambda: _with_follow_ups(lambda: offer_counter(proposal_id=proposal_id, client_id=client_id, terms=terms))
        )
        return None if counter is None else counter.pk

    def _execute(self, proposal_id: int) -> None:
        version = self._version(proposal_id)
        self._attempt(lambda: proposal_execute(proposal_id=proposal_id, actor=self.me, version=version))

    def _liquidate(self, proposal_id: int) -> None:
        version = self._version(proposal_id)
        self._attempt(lambda: proposal_liquidate(proposal_id=proposal_id, actor=self.me, version=version))

    # ------------------------------------------------------------------------------------------ the rules
    # Few rules, each with its variants as a drawn parameter: with fewer rules to choose from, a budget of 20
    # steps reaches deep paths more often (hypothesis picks a rule uniformly, then its arguments).

    @precondition(lambda self: self.ready)
    @rule(data=st.data(), move=st.sampled_from(POLICY_MOVES), written=st.sampled_from(CATALOGUE))
    def changes_the_policy(self, data: st.DataObject, move: str, written: dict[str, Any]) -> None:
        """Clone any set; write (add or replace), delete a rule of any draft; publish a draft as himself, or as
        the system actor a command publishes with (only an installation's first policy)."""
        if move == "clone":
            rule_set_id = data.draw(st.sampled_from(sorted(RuleSet.objects.values_list("pk", flat=True))), label="set")
            self._attempt(lambda: ruleset_clone(rule_set_id=rule_set_id, actor=self.me))
            return
        drafts = sorted(RuleSet.objects.filter(status=RuleSetStatus.DRAFT).values_list("pk", flat=True))
        if not drafts:
            return
        rule_set_id = data.draw(st.sampled_from(drafts), label="draft")
        names = sorted(RuleSet.objects.get(pk=rule_set_id).rules.values_list("name", flat=True)) or ["nothing"]
        if move in ("add a rule", "replace a rule"):
            replaces = data.draw(st.sampled_from(names), label="replaces") if move == "replace a rule" else None
            self._attempt(lambda: rule_save(rule_set_id=rule_set_id, rule=written, actor=self.me, replaces=replaces))
        elif move == "delete a rule":
            name = data.draw(st.sampled_from(names), label="rule")
            self._attempt(lambda: rule_delete(rule_set_id=rule_set_id, name=name, actor=self.me))
        elif move == "publish":
            self._attempt(lambda: ruleset_publish(rule_set_id=rule_set_id, actor=self.me))
        else:
            with pytest.raises(PublishPermissionError, match="a rule set is in force"):
                ruleset_publish(rule_set_id=rule_set_id, actor=None, system_actor="rules_load")

    @precondition(lambda self: self.ready)
    @rule(price=st.none() | st.sampled_from(["60", "100", "200"]))
    def the_sweep_and_the_rules_run(self, price: str | None) -> None:
        """The beat sweeps (after the market moves, or not), the case run follows, and the rules run on demand:
        new proposals from whatever set is in force."""
        if price is not None:
            btc_id = Instrument.objects.values_list("pk", flat=True).get(symbol="BTC")
            Price.objects.create(instrument_id=btc_id, time=timezone.now(), price=Decimal(price))
        self._attempt(_sweep_and_rules)

    @precondition(lambda self: self.ready)
    @rule(hours=st.sampled_from([1, 73, 24 * 40]), margin_call_deadlines=st.booleans())
    def time_passes_and_the_deadline_beats_run(self, hours: int, margin_call_deadlines: bool) -> None:
        """Offers expire, missed installments default their cases; margin calls past their deadline go to
        liquidation (the system's, not an officer's)."""
        self.clock += timedelta(hours=hours)
        negotiation_deadlines_run(now=timezone.now())
        if margin_call_deadlines:
            deadlines_run(now=timezone.now())

    @precondition(lambda self: self.ready)
    @rule(data=st.data(), liquidation=st.booleans(), terms=TERMS)
    def drafts_a_proposal(self, data: st.DataObject, liquidation: bool, terms: dict[str, Any]) -> None:
        case_id = data.draw(st.sampled_from(sorted(Case.objects.values_list("pk", flat=True))), label="case")
        if liquidation:
            self._attempt(lambda: proposal_liquidation_draft(case_id=case_id, reason="unreachable", actor=self.me))
        else:
            self._attempt(lambda: proposal_draft(case_id=case_id, terms=terms, actor=self.me))

    @precondition(lambda self: self.ready)
    @rule(data=st.data(), act=st.sampled_from(sorted(OFFICER_ACTS)), terms=TERMS)
    def acts_on_a_proposal(self, data: st.DataObject, act: str, terms: dict[str, Any]) -> None:
        """As an officer, on a proposal where the act makes sense (mostly) or on any proposal; a stale version
        is the one before or after the version he reads."""
        proposal_id = self._pick(data, act)
        if proposal_id is None:
            return
        me, version = self.me, self._version(proposal_id)
        if act == "edit":
            self._attempt(lambda: proposal_edit(proposal_id=proposal_id, terms=terms, actor=me))
        elif act == "submit":
            self._attempt(lambda: proposal_submit(proposal_id=proposal_id, actor=me))
        elif act in ("approve", "approve without a reason"):
            self._approve(proposal_id, reason=REASON if act == "approve" else "")
        elif act == "reject":
            self._attempt(lambda: proposal_reject(proposal_id=proposal_id, actor=me, reason="not now"))
        elif act == "offer":
            self._offer(proposal_id)
        elif act == "execute":
            self._execute(proposal_id)
        elif act == "carry out a liquidation":
            self._liquidate(proposal_id)
        else:  # an approval, offer or execution of a version other than the one in force: always refused
            seen = version + data.draw(st.sampled_from([-1, 1]), label="stale by")
            work = {
                "approve a stale version": lambda: proposal_approve(
                    proposal_id=proposal_id, actor=me, version=seen, override_reason=REASON
                ),
                "offer a stale version": lambda: offer_send(proposal_id=proposal_id, actor=me, version=seen),
                "execute a stale version": lambda: proposal_execute(proposal_id=proposal_id, actor=me, version=seen),
            }[act]
            assert self._attempt(work) is None, f"{act}: version {seen} of proposal {proposal_id} was taken"

    @precondition(lambda self: self.ready)
    @rule(data=st.data(), answer=st.sampled_from(sorted(CLIENT_ANSWERS)), change=COUNTER)
    def answers_as_the_client(self, data: st.DataObject, answer: str, change: dict[str, Any]) -> None:
        proposal_id = self._pick(data, answer)
        if proposal_id is None:
            return
        client_id = _client_of(proposal_id)
        if answer == "accept":
            self._accept(proposal_id, Proposal.objects.values_list("terms_hash", flat=True).get(pk=proposal_id))
        elif answer == "accept without a hash":
            self._accept(proposal_id, None)
        elif answer == "accept another hash":
            accepted = self._attempt(
                lambda: offer_accept(proposal_id=proposal_id, client_id=client_id, terms_hash="0" * 64)
            )
            assert accepted is None, "an offer was accepted on terms the client never read"
        elif answer == "decline":
            self._attempt(lambda: offer_decline(proposal_id=proposal_id, client_id=client_id, reason="no"))
        else:
            self._counter(proposal_id, change)

    @precondition(lambda self: self.ready)
    @rule(data=st.data(), naming_a_proposal=st.booleans())
    def sends_a_case_to_liquidation_himself(self, data: st.DataObject, naming_a_proposal: bool) -> None:
        """The service called directly, alone or naming any proposal of the case (the views never pass one)."""
        case_id = data.draw(st.sampled_from(sorted(Case.objects.values_list("pk", flat=True))), label="case")
        ids = sorted(Proposal.objects.filter(case_id=case_id).values_list("pk", flat=True))
        proposal_id = data.draw(st.sampled_from(ids), label="proposal") if naming_a_proposal and ids else None
        self._attempt(
            lambda: case_liquidate(case_id=case_id, reason="by myself", actor=self.me, proposal_id=proposal_id)
        )

    @precondition(lambda self: self.ready)
    @rule(data=st.data(), what=st.sampled_from(MONEY_MOVES))
    def records_money(self, data: st.DataObject, what: str) -> None:
        """A repayment of an installment (its amount, or not), every installment due repaid (the loan and the case
        close), or a top-up he declares as the client and confirms as an officer (its sweep follows)."""
        if what == "top-up":
            case = Case.objects.select_related("account").get(
                pk=data.draw(st.sampled_from(sorted(Case.objects.values_list("pk", flat=True))), label="case")
            )
            amount = data.draw(st.sampled_from([Decimal(100), Decimal(5000)]), label="amount")
            declared = self._attempt(
                lambda: topup_declare(account_id=case.account_id, client_id=case.account.client_id, amount=amount)
            )
            if declared is not None:
                self._attempt(lambda: _with_follow_ups(lambda: topup_confirm(topup_id=declared.pk, actor=self.me)))
            return
        due = sorted(Installment.objects.filter(status=InstallmentStatus.DUE).values_list("pk", flat=True))
        pool = due or sorted(Installment.objects.values_list("pk", flat=True))
        if not pool:
            return
        installment = Installment.objects.get(pk=data.draw(st.sampled_from(pool), label="installment"))
        if what == "every repayment due":
            schedule = Installment.objects.filter(proposal_id=installment.proposal_id, status=InstallmentStatus.DUE)
            for each in schedule.order_by("number"):
                self._attempt(partial(repayment_record, installment_id=each.pk, amount=each.total, actor=self.me))
            return
        amount = installment.total if what == "repayment" else installment.total + Decimal("0.01")
        self._attempt(lambda: repayment_record(installment_id=installment.pk, amount=amount, actor=self.me))

    @precondition(lambda self: self.ready)
    @rule(data=st.data(), answer=st.sampled_from(PUSH_ANSWERS), change=COUNTER_WITHIN_BOUNDS)
    def pushes_a_proposal_all_the_way(self, data: st.DataObject, answer: str, change: dict[str, Any]) -> None:
        """Submit, approve, offer; then the client accepts with the offer's hash and he executes, or the client
        counters (and he approves, offers, accepts and executes the counter), declines, or leaves the offer out (to
        answer later, or to expire). A liquidation: approve and carry it out. Each step as he would try it; a
        refused step does not stop him trying the next."""
        picked = self._pick(data, "push")
        if picked is None:
            return
        proposal_id: int = picked
        self._attempt(lambda: proposal_submit(proposal_id=proposal_id, actor=self.me))
        self._approve(proposal_id)
        if Proposal.objects.values_list("kind", flat=True).get(pk=proposal_id) == ProposalKind.LIQUIDATE:
            self._liquidate(proposal_id)
            return
        self._offer(proposal_id)
        if answer == "leave it out":
            return
        if answer == "decline":
            client_id = _client_of(proposal_id)
            self._attempt(lambda: offer_decline(proposal_id=proposal_id, client_id=client_id, reason="no"))
            return
        if answer == "counter":
            counter_id = self._counter(proposal_id, change)
            if counter_id is None:
                return
            proposal_id = counter_id
            self._approve(proposal_id)
            self._offer(proposal_id)
        self._accept(proposal_id, Proposal.objects.values_list("terms_hash", flat=True).get(pk=proposal_id))
        self._execute(proposal_id)

    # ------------------------------------------------------------------------------------------ invariants

    @invariant()
    def every_executed_proposal_has_two_people_on_its_record(self) -> None:
        if not self.ready:
            return
        for proposal in Proposal.objects.filter(state=ProposalState.EXECUTED).select_related("rule_set"):
            people = _people_on_record(proposal)
            on_record = (
                f"proposal {proposal.pk} ({proposal.name}) was executed with only {sorted(people)} on its record"
            )
            assert len(people) >= 2, on_record
            assert people - {self.me.pk}, on_record

    @invariant()
    def a_counter_offer_forgives_no_more_than_its_offer_unless_two_approved_it(self) -> None:
        if not self.ready:
            return
        executed = Proposal.objects.filter(state=ProposalState.EXECUTED, countered_from__isnull=False)
        for counter in executed.select_related("rule_set"):
            haircut = _haircut(counter)
            if haircut == 0:
                continue
            people = _saw_haircut(counter, haircut)
            assert len(people) >= 2, (
                f"counter-offer {counter.pk} forgave {haircut} of principal, more than the offer it countered; only "
                f"{sorted(people)} approved that (the offer's people never saw it)"
            )

    @invariant()
    def nobody_sends_a_case_to_liquidation_alone(self) -> None:
        if not self.ready:
            return
        for event in AuditEvent.objects.filter(action="case.liquidate", actor__isnull=False):
            proposal_id = event.payload.get("proposal_id")
            assert proposal_id is not None, f"case {event.object_id} went to liquidation by an officer alone"
            proposal = Proposal.objects.select_related("rule_set").get(pk=proposal_id)
            assert (proposal.case_id, proposal.kind, proposal.state) == (
                event.object_id,
                ProposalKind.LIQUIDATE,
                ProposalState.EXECUTED,
            ), event.payload
            people = _people_on_record(proposal)
            assert len(people) >= 2, f"case {event.object_id} liquidated by proposal {proposal_id} of {people} alone"

    @invariant()
    def policy_is_published_by_someone_who_did_not_write_it(self) -> None:
        if not self.ready:
            return
        assert RuleSet.objects.filter(status=RuleSetStatus.PUBLISHED).count() <= 1
        for rule_set in RuleSet.objects.filter(published_by__isnull=False):
            authors = set(rule_set.editors.values_list("pk", flat=True)) | {rule_set.created_by_id}
            assert rule_set.published_by_id not in authors, f"rule set v{rule_set.version} published by its author"
        for event in AuditEvent.objects.filter(action="ruleset.publish", actor__isnull=True):
            assert event.payload.get("retired") is None, f"{event.system_actor} published over a set in force"

    @invariant()
    def approvals_are_of_the_version_executed_and_cases_in_play(self) -> None:
        if not self.ready:
            return
        for proposal in Proposal.objects.filter(state=ProposalState.EXECUTED):
            current = list(Approval.objects.filter(proposal=proposal, version=proposal.version))
            assert current, f"proposal {proposal.pk} executed without an approval of version {proposal.version}"
            assert {a.terms_hash for a in current} == {proposal.terms_hash}, proposal.pk
            events = list(
                AuditEvent.objects.filter(
                    object_type="restructuring.proposal",
                    object_id=proposal.pk,
                    action__in=["proposal.approve", "proposal.edit"],
                ).order_by("sequence")
            )
            assert events, f"proposal {proposal.pk} executed without an approval on the trail"
            assert events[-1].action == "proposal.approve", (proposal.pk, [e.action for e in events])
            assert events[-1].payload["version"] == proposal.version, (proposal.pk, events[-1].payload)
        self._cases_in_play_when_their_proposals_moved()
        for case_id, state in Case.objects.filter(state__in=[*_ENDED, CaseState.DEFAULTED]).values_list("pk", "state"):
            live = Proposal.objects.filter(case_id=case_id, state__in=LIVE_PROPOSAL_STATES)
            if state == CaseState.DEFAULTED:
                live = live.exclude(kind=ProposalKind.LIQUIDATE)
            kept = list(live.values_list("pk", "kind", "state"))
            assert not kept, f"case {case_id} is {state} but keeps live proposals {kept}"

    def _cases_in_play_when_their_proposals_moved(self) -> None:
        """Replay the trail: where each case was when each of its proposals was approved, offered, accepted,
        executed or carried out."""
        case_of = dict(Proposal.objects.values_list("pk", "case_id"))
        kind_of = dict(Proposal.objects.values_list("pk", "kind"))
        state: dict[int, str] = {}
        liquidated_by: dict[int, str] = {}  # proposal id -> the case's state before its case.liquidate
        for event in AuditEvent.objects.filter(object_type__in=["restructuring.case", "restructuring.proposal"]):
            if event.object_type == "restructuring.case":
                if event.action == "case.liquidate" and event.payload.get("proposal_id") is not None:
                    liquidated_by[event.payload["proposal_id"]] = event.from_state
                state[event.object_id] = event.to_state
                continue
            case_state = state.get(case_of[event.object_id], "")
            where = f"proposal {event.object_id}: {event.action} while its case was {case_state!r}"
            if event.action in ("proposal.approve", "proposal.approval"):
                assert case_state in _APPROVING[ProposalKind(kind_of[event.object_id])], where
            elif event.action in _CASE_BEFORE:
                assert case_state in _CASE_BEFORE[event.action], where
            elif event.action == "proposal.liquidate":
                before = liquidated_by.get(event.object_id)
                assert before in _APPROVING[ProposalKind.LIQUIDATE], f"{where} (before liquidation: {before!r})"

    @invariant()
    def the_audit_chain_verifies(self) -> None:
        verification = audit_verify()
        assert verification.ok, verification


@pytest.fixture
def _fast() -> Iterator[None]:
    with override_settings(WORKOUT_FEASIBILITY_PATHS=200):
        yield


@pytest.mark.django_db
@pytest.mark.usefixtures("_fast")
def test_one_person_never_moves_money_or_policy_alone() -> None:
    run_state_machine_as_test(
        OnePersonWholePath,
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=STEPS,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        ),
    )


# ------------------------------------------------------------------------ finding 2's worst path, step by step


def _margin_call_book() -> tuple[User, Proposal]:
    """The default policy of two people, one account in margin call with the rules' proposal, the adversary."""
    policy_in_force()
    account("CALL", btc(), band="margin_call")
    _with_follow_ups(sweep_run)
    return _adversary(), Proposal.objects.get(source="rules")


def _loan_principal(case_id: int) -> Decimal:
    return Case.objects.select_related("account").get(pk=case_id).account.loans.get().principal


@pytest.mark.django_db
@pytest.mark.usefixtures("_fast")
def test_finding_2_worst_path_one_senior_is_stopped_at_every_door() -> None:
    """Finding 2 end to end under the adversary's powers (a senior who is also the client): every way to forgive
    the 750 alone, and exactly where each is refused. Nothing is forgiven and nothing he did alone executes."""
    adversary, rules_proposal = _margin_call_book()
    published = RuleSet.objects.get(status=RuleSetStatus.PUBLISHED)

    # He writes "forgive everything" into a clone of the policy: he may draft, not publish it.
    draft = ruleset_clone(rule_set_id=published.pk, actor=adversary)
    rule_save(rule_set_id=draft.pk, rule=FORGIVE_ALL, actor=adversary)
    with pytest.raises(PublishPermissionError, match=f"adversary wrote or edited rule set v{draft.version}"):
        ruleset_publish(rule_set_id=draft.pk, actor=adversary)
    # ... nor publish it as a command would: a command publishes only an installation's first policy.
    with pytest.raises(PublishPermissionError, match="a rule set is in force"):
        ruleset_publish(rule_set_id=draft.pk, actor=None, system_actor="rules_load")
    assert RuleSet.objects.get(pk=draft.pk).status == RuleSetStatus.DRAFT
    _sweep_and_rules()
    assert not Proposal.objects.filter(name="forgive").exists()

    # His own terms forgiving everything: he is their maker.
    own = proposal_draft(
        case_id=rules_proposal.case_id, terms={"term_months": 12, "principal_haircut": "750"}, actor=adversary
    )
    proposal_submit(proposal_id=own.pk, actor=adversary)
    with pytest.raises(ApprovalRefusedError, match="adversary drafted or edited its terms"):
        proposal_approve(proposal_id=own.pk, actor=adversary, version=1, override_reason=REASON)

    # The rules' proposal edited into forgiveness: the edit makes him its maker too.
    proposal_edit(
        proposal_id=rules_proposal.pk, terms={**rules_proposal.terms, "principal_haircut": "750"}, actor=adversary
    )
    proposal_submit(proposal_id=rules_proposal.pk, actor=adversary)
    with pytest.raises(ApprovalRefusedError, match="adversary drafted or edited its terms"):
        proposal_approve(proposal_id=rules_proposal.pk, actor=adversary, version=2, override_reason=REASON)
    # ... and the version the policy's people stood behind is gone: approving it is stale.
    with pytest.raises(StaleTermsError):
        proposal_approve(proposal_id=rules_proposal.pk, actor=adversary, version=1, override_reason=REASON)

    # A colleague's draft that forgives everything, which he may publish (he wrote none of it): its proposals (for
    # the next margin call) then count him among their makers.
    colleague = User.objects.get(username="policy-author")
    theirs = ruleset_clone(rule_set_id=published.pk, actor=colleague)
    rule_save(rule_set_id=theirs.pk, rule=FORGIVE_ALL, actor=colleague)
    ruleset_publish(rule_set_id=theirs.pk, actor=adversary)
    account("NEXT", Instrument.objects.get(symbol="BTC"), band="margin_call")
    _sweep_and_rules()
    forgive = Proposal.objects.get(name="forgive")
    with pytest.raises(ApprovalRefusedError, match=f"adversary published rule set v{theirs.version}"):
        proposal_approve(proposal_id=forgive.pk, actor=adversary, version=1, override_reason=REASON)

    # Liquidation alone: neither directly nor by his own proposal.
    with pytest.raises(PermissionDeniedError, match="alone"):
        case_liquidate(case_id=rules_proposal.case_id, reason="mine", actor=adversary)
    liquidation = proposal_liquidation_draft(case_id=rules_proposal.case_id, reason="mine", actor=adversary)
    with pytest.raises(ApprovalRefusedError, match="adversary drafted or edited its terms"):
        proposal_approve(proposal_id=liquidation.pk, actor=adversary, version=1)
    with pytest.raises(NegotiationError, match="only an approved liquidation"):
        proposal_liquidate(proposal_id=liquidation.pk, actor=adversary, version=1)

    assert not Approval.objects.filter(approver=adversary).exists()
    assert not Proposal.objects.filter(state__in=[ProposalState.APPROVED, ProposalState.EXECUTED]).exists()
    assert {_loan_principal(case.pk) for case in Case.objects.all()} == {DEBT}
    assert set(Case.objects.values_list("state", flat=True)) == {CaseState.PROPOSED}
    assert audit_verify().ok


@pytest.mark.django_db
@pytest.mark.usefixtures("_fast")
@override_settings(WORKOUT_TWO_APPROVALS_ABOVE="100")
def test_forgiveness_a_policy_of_two_proposes_above_the_setting_waits_for_a_second_approver() -> None:
    """A policy that forgives everything, written by one colleague and published by another (four eyes on the
    policy): its proposal has two people on record already, yet forgiving above WORKOUT_TWO_APPROVALS_ABOVE needs
    a second approver, and he is the only one."""
    policy_in_force()
    author, publisher = User.objects.get(username="policy-author"), User.objects.get(username="policy-publisher")
    forgiving = ruleset_clone(rule_set_id=RuleSet.objects.get(status=RuleSetStatus.PUBLISHED).pk, actor=author)
    rule_save(rule_set_id=forgiving.pk, rule=FORGIVE_ALL, actor=author)
    ruleset_publish(rule_set_id=forgiving.pk, actor=publisher)
    account("CALL", btc(), band="margin_call")
    _with_follow_ups(sweep_run)
    adversary = _adversary()
    forgive = Proposal.objects.get(name="forgive")
    assert forgive.terms["principal_haircut"] == "750.00"

    outcome = proposal_approve(proposal_id=forgive.pk, actor=adversary, version=1, override_reason=REASON)

    assert not outcome.approved
    assert outcome.needs == "a second approver: it forgives $750.00, above $100.00 (WORKOUT_TWO_APPROVALS_ABOVE)"
    with pytest.raises(NegotiationError, match="it cannot offer"):
        offer_send(proposal_id=forgive.pk, actor=adversary, version=1)
    with pytest.raises(NegotiationError, match="already approved version 1"):
        proposal_approve(proposal_id=forgive.pk, actor=adversary, version=1, override_reason=REASON)
    assert _loan_principal(forgive.case_id) == DEBT


# ------------------------------------------------------------------- a bypass the state machine found (issue 13)


@pytest.mark.django_db
@pytest.mark.usefixtures("_fast")
def test_bypass_found_a_counter_offer_forgives_what_no_second_person_saw() -> None:
    """REGRESSION, FOUND BY test_one_person_never_moves_money_or_policy_alone (fails on d9b7089). Shortest example
    hypothesis printed:

        state.world(policy='two people', bands=['margin_call', 'margin_call'], two_approvals_above='10000')
        state.pushes_a_proposal_all_the_way(answer='counter', change={'extra_months': 0, 'principal_haircut': '100'},
                                            data=...)  (Draw 1 (a likely one): 0, Draw 2: the rules' proposal)
        AssertionError: counter-offer 1072 forgave 100 of principal, more than the offer it countered; only [946]
        approved that (the offer's people never saw it)

    The adversary approves the rules' proposal (policy-author and policy-publisher are on its record), offers it,
    and as the client counters with a principal haircut. The counter borrows the offer's record (controls.
    people_on_record: "whose approvers set the bounds the client moved within"), but the bounds (negotiation.
    _within_bounds) limit only the term, the rate and the collateral: a haircut passes unbounded. So he alone
    approves the forgiveness (up to WORKOUT_TWO_APPROVALS_ABOVE), offers, accepts and executes it: nobody else ever
    saw it. He must be stopped before anything is forgiven: the counter refused, or its approval waiting for a
    second person. Fixed since: a counter moves only the term, the rate and the collateral (negotiation.
    COUNTER_MAY_CHANGE); the haircut is refused at the counter."""
    adversary, offer = _margin_call_book()
    assert proposal_approve(proposal_id=offer.pk, actor=adversary, version=1, override_reason=REASON).approved
    offer_send(proposal_id=offer.pk, actor=adversary, version=1)
    client_id = _client_of(offer.pk)
    refused: list[str] = []

    def attempt(step: str, work: Callable[[], T]) -> T | None:
        try:
            return work()
        except WorkoutError as refusal:
            refused.append(f"{step}: {refusal}")
            return None

    counter = attempt(
        "counter",
        lambda: _with_follow_ups(
            lambda: offer_counter(
                proposal_id=offer.pk, client_id=client_id, terms={**offer.terms, "principal_haircut": "100"}
            )
        ),
    )
    if counter is not None:
        approved = attempt(
            "approve",
            lambda: proposal_approve(proposal_id=counter.pk, actor=adversary, version=1, override_reason=REASON),
        )
        if approved is not None and not approved.approved:
            refused.append(f"approve: waits for {approved.needs}")
        attempt("offer", lambda: offer_send(proposal_id=counter.pk, actor=adversary, version=1))
        attempt("accept", lambda: offer_accept(proposal_id=counter.pk, client_id=client_id))
        attempt("execute", lambda: proposal_execute(proposal_id=counter.pk, actor=adversary, version=1))

    assert refused, "one officer who controls the client forgave 100 of principal that nobody else approved"
    assert not Proposal.objects.filter(state=ProposalState.EXECUTED).exists()
    assert _loan_principal(offer.case_id) == DEBT
