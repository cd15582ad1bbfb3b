"""The audit actions of the rules (core/audit_catalogue.py): writing and publishing rule sets."""

from __future__ import annotations

from core.audit_catalogue import STAFF, declare
from rules.models import RuleSet

RULESET_CREATE = declare("ruleset.create", RuleSet, audience=STAFF, summary="a draft rule set created")
RULESET_CLONE = declare("ruleset.clone", RuleSet, audience=STAFF, summary="a draft rule set cloned from another")
RULESET_RULE_SAVE = declare("ruleset.rule_save", RuleSet, audience=STAFF, summary="a rule of a draft added or edited")
RULESET_RULE_DELETE = declare("ruleset.rule_delete", RuleSet, audience=STAFF, summary="a rule of a draft deleted")
RULESET_PUBLISH = declare(
    "ruleset.publish", RuleSet, audience=STAFF, summary="a rule set published: in force, the previous one retired"
)
