"""The book has one owner (accounts/services/ledger.py): no other module of the application writes cash
(MarginAccount.cash), positions (Position) or loans (MarginLoan), except the loaders that put a book in place.

The check reads the source (no import, no database): in every module outside BOOK_WRITERS it looks for
- a write method (save, delete, update, create, bulk_create, bulk_update, ...) called on one of the three models,
  a queryset of theirs, or an object that comes from one (a variable assigned from such an expression, a loop
  over one, a parameter annotated with the model, an attribute named `account`, `loan`, `positions`...);
- a book field (cash, quantity, principal...) assigned on such an object: `AccountBook.save` would write it;
- one of the models handed to a generic writer (core.bulk's `bulk_update_fields(Position, ...)`, an upsert);
- `F("cash")`, and raw SQL that inserts into, updates, deletes from or copies into their tables.
It is deliberately coarse: a read that trips it is rewritten as a plain read (values_list) or the module is
argued into BOOK_WRITERS here, in review. Tests and migrations are not scanned: fixtures build books.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest
from django.utils import timezone

from accounts.services import ledger

ROOT = Path(__file__).resolve().parents[2]

# Module prefixes allowed to write the book, and why.
BOOK_WRITERS = {
    "accounts.services.ledger": "the owner: every change the workflow makes",
    "accounts.services.book_import": "the book's import: loads a book (accounts, positions, loans) from a file",
    "accounts.services.demo_book": "the demo's synthetic book, loaded like an import",
    "demo": "the demo's synthetic book (once it leaves accounts/services)",
    "bench": "benchmark data set up before a measurement",
}

BOOK_MODELS = frozenset({"MarginAccount", "Position", "MarginLoan"})
BOOK_TABLES = ("accounts_marginaccount", "accounts_position", "accounts_marginloan")
# Related names and attributes that hold the book's objects wherever they appear (case.account, book.loan,
# account.positions, account.loans).
BOOK_ATTRIBUTES = frozenset({"account", "accounts", "loan", "loans", "position", "positions"})
BOOK_FIELDS = frozenset(
    {"cash", "quantity", "entry_price", "isolated_margin", "principal", "rate_annual", "accrued_interest", "status"}
    | {"maturity_date", "account", "account_id", "instrument", "instrument_id"}
)
WRITE_METHODS = frozenset(
    {"save", "delete", "update", "create", "bulk_create", "bulk_update", "get_or_create", "update_or_create"}
    | {"add", "set", "remove", "clear"}  # related managers: account.positions.add(...)
)
# Calls that return plain values, not the book's objects: a chain through them is a read.
PLAIN_VALUES = frozenset({"values", "values_list", "count", "exists", "aggregate", "only_pks"})
# A model class handed to a function, or put in a list, may be written by whatever receives it (core.bulk's
# bulk_update_fields(Position, ...), an import's _upsert, the demo's table of models to COPY): only these calls
# are known to read it.
READS_A_MODEL = frozenset(
    {"isinstance", "issubclass", "cast", "type", "ForeignKey", "OneToOneField", "ManyToManyField", "register"}
)
RAW_WRITE = re.compile(
    r"\b(?:UPDATE|INSERT\s+INTO|DELETE\s+FROM|COPY|TRUNCATE(?:\s+TABLE)?)\s+\"?(?:" + "|".join(BOOK_TABLES) + r")\b",
    re.IGNORECASE,
)
# Builtins that hand back what they are given: list(Position.objects...) holds positions.
CONTAINERS = frozenset({"list", "tuple", "set", "frozenset", "dict", "sorted", "reversed", "iter", "next", "enumerate"})
SKIPPED_DIRS = frozenset({"tests", "migrations", ".venv", ".git", "node_modules", "static", "templates", "docs"})


@dataclass(frozen=True)
class Write:
    module: str
    line: int
    what: str

    def __str__(self) -> str:
        return f"{self.module}:{self.line}: {self.what}"


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def allowed(module: str) -> bool:
    return any(module == prefix or module.startswith(prefix + ".") for prefix in BOOK_WRITERS)


def _model_names(tree: ast.Module) -> set[str]:
    """The names the module gives the book's models (imports, aliases)."""
    names = set(BOOK_MODELS)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            names |= {a.asname for a in node.names if a.name in BOOK_MODELS and a.asname}
    return names


def _mentions_model(node: ast.AST | None, models: set[str]) -> bool:
    if node is None:
        return False
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name) and sub.id in models:
            return True
        if isinstance(sub, ast.Attribute) and sub.attr in BOOK_MODELS:
            return True
        if isinstance(sub, ast.Constant) and isinstance(sub.value, str) and set(re.findall(r"\w+", sub.value)) & models:
            return True  # a string annotation
    return False


class _Scope:
    """One function (or the module body): the names bound to the book's objects in it, found flow-insensitively
    (every binding counts, wherever it is), which errs towards finding a write."""

    def __init__(self, body: list[ast.stmt], args: ast.arguments | None, models: set[str], outer: set[str]) -> None:
        self.models = models
        self.names = set(outer)
        if args is not None:
            for arg in [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]:
                if arg is not None and _mentions_model(arg.annotation, models):
                    self.names.add(arg.arg)
        nodes = [n for stmt in body for n in _walk_local(stmt)]
        while True:
            before = len(self.names)
            for node in nodes:
                self._bind(node)
            if len(self.names) == before:
                break

    def book(self, node: ast.AST) -> bool:
        """Whether an expression is one of the book's models, a queryset of theirs or one of their objects."""
        if isinstance(node, ast.Name):
            return node.id in self.models or node.id in self.names
        if isinstance(node, ast.Attribute):
            return node.attr in BOOK_MODELS or node.attr in BOOK_ATTRIBUTES or self.book(node.value)
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute):
                return func.attr not in PLAIN_VALUES and self.book(func.value)
            if isinstance(func, ast.Name) and func.id in self.models:
                return True  # a new object: MarginLoan(...)
            return isinstance(func, ast.Name) and func.id in CONTAINERS and any(self.book(a) for a in node.args)
        if isinstance(node, ast.Subscript):
            return self.book(node.value)
        if isinstance(node, ast.IfExp):
            return self.book(node.body) or self.book(node.orelse)
        if isinstance(node, ast.BoolOp):
            return any(self.book(v) for v in node.values)
        if isinstance(node, ast.ListComp | ast.SetComp | ast.GeneratorExp):
            return self.book(node.elt) or any(self.book(g.iter) for g in node.generators)
        if isinstance(node, ast.DictComp):
            return self.book(node.value) or any(self.book(g.iter) for g in node.generators)
        if isinstance(node, ast.List | ast.Tuple | ast.Set):
            return any(self.book(e) for e in node.elts)
        if isinstance(node, ast.Starred):
            return self.book(node.value)
        return False

    def _bind(self, node: ast.AST) -> None:
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign) and self.book(node.value):
            targets = node.targets
        elif (
            isinstance(node, ast.AnnAssign)
            and (_mentions_model(node.annotation, self.models) or (node.value is not None and self.book(node.value)))
        ) or (isinstance(node, ast.For | ast.AsyncFor | ast.comprehension) and self.book(node.iter)):
            targets = [node.target]
        elif isinstance(node, ast.withitem) and node.optional_vars is not None and self.book(node.context_expr):
            targets = [node.optional_vars]
        elif isinstance(node, ast.NamedExpr) and self.book(node.value):
            targets = [node.target]
        for target in targets:
            for sub in ast.walk(target):
                if isinstance(sub, ast.Name):
                    self.names.add(sub.id)


def _walk_local(node: ast.AST) -> list[ast.AST]:
    """The nodes of a statement, not those of the functions in it (each is a scope of its own)."""
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
        return []
    found = [node]
    for child in ast.iter_child_nodes(node):
        found += _walk_local(child)
    return found


def book_writes(source: str, module: str) -> list[Write]:
    """Every place `source` writes the book, as the module docstring describes."""
    tree = ast.parse(source)
    models = _model_names(tree)
    writes: list[Write] = []

    def scan(body: list[ast.stmt], args: ast.arguments | None, outer: set[str]) -> None:
        scope = _Scope(body, args, models, outer)
        for stmt in body:
            for node in _walk_local(stmt):
                _check(node, scope)
            for node in ast.walk(stmt):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node not in nested_done:
                    nested_done.add(node)
                    scan(node.body, node.args, scope.names)

    def _check(node: ast.AST, scope: _Scope) -> None:
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute) and func.attr in WRITE_METHODS and scope.book(func.value):
                writes.append(Write(module, line, f"{ast.unparse(func)}(...) writes the book"))
            callee = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            passed = [*node.args, *(k.value for k in node.keywords)]
            if callee not in READS_A_MODEL and any(_is_model(a, models) for a in passed):
                writes.append(Write(module, line, f"{callee}(...) is handed a book model"))
            if (
                isinstance(func, ast.Name)
                and func.id == "F"
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and node.args[0].value == "cash"
            ):
                writes.append(Write(module, line, 'F("cash") computes a cash balance'))
        elif isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for sub in (a for target in targets for a in _assigned_attributes(target)):
                if sub.attr in BOOK_FIELDS and scope.book(sub.value):
                    writes.append(Write(module, line, f"{ast.unparse(sub)} is assigned"))
        elif isinstance(node, ast.List | ast.Tuple | ast.Set | ast.Dict):
            values = node.values if isinstance(node, ast.Dict) else node.elts
            if any(v is not None and _is_model(v, models) for v in values):
                writes.append(Write(module, line, f"a book model is held in {ast.unparse(node)[:60]}"))
        elif isinstance(node, ast.Delete):
            for target in node.targets:
                if isinstance(target, ast.Attribute) and scope.book(target.value):
                    writes.append(Write(module, line, f"del {ast.unparse(target)}"))

    nested_done: set[ast.AST] = set()
    scan(tree.body, None, set())
    for number, text in enumerate(source.splitlines(), start=1):
        if RAW_WRITE.search(text):
            writes.append(Write(module, number, f"raw SQL writes a book table: {text.strip()[:80]}"))
    return sorted(set(writes), key=lambda w: (w.line, w.what))


def _assigned_attributes(target: ast.AST) -> list[ast.Attribute]:
    """The attributes an assignment sets: `a.b = ...`, `a.b, c.d = ...` (not those read in a subscript's key)."""
    if isinstance(target, ast.Attribute):
        return [target]
    if isinstance(target, ast.Tuple | ast.List):
        return [a for e in target.elts for a in _assigned_attributes(e)]
    if isinstance(target, ast.Starred):
        return _assigned_attributes(target.value)
    return []


def _is_model(node: ast.AST, models: set[str]) -> bool:
    return (isinstance(node, ast.Name) and node.id in models) or (
        isinstance(node, ast.Attribute) and node.attr in BOOK_MODELS
    )


def application_modules() -> list[tuple[str, Path]]:
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        relative = path.relative_to(ROOT).parts
        if SKIPPED_DIRS & set(relative[:-1]) or any(p.endswith(".egg-info") or p.startswith(".") for p in relative):
            continue
        found.append((_module(path), path))
    return found


# -------------------------------------------------------------------------------------------- the guard


def test_only_the_ledger_and_the_book_loaders_write_the_book() -> None:
    modules = application_modules()
    assert any(m == "restructuring.services.liquidation" for m, _ in modules)  # the scan sees the application
    found = [
        str(write)
        for module, path in modules
        if not allowed(module)
        for write in book_writes(path.read_text(encoding="utf-8"), module)
    ]
    assert found == [], "the book is written only through accounts/services/ledger.py:\n" + "\n".join(found)


def test_the_ledger_and_the_loaders_are_what_the_scan_calls_writers() -> None:
    """The allowed writers are real and do write (a stale entry would let a new module hide behind it)."""
    modules = dict(application_modules())
    writes = {m: book_writes(p.read_text(encoding="utf-8"), m) for m, p in modules.items() if allowed(m)}
    assert writes["accounts.services.ledger"]
    for prefix in BOOK_WRITERS:
        present = [m for m in writes if m == prefix or m.startswith(prefix + ".")]
        if present:  # demo_book and demo/: one of the two, before and after the demo leaves accounts
            assert any(writes[m] for m in present), f"{prefix} writes nothing: take it off BOOK_WRITERS"
    assert any(m.startswith(("accounts.services.demo_book", "demo.")) or m == "demo" for m in writes)


# ---------------------------------------------------------------------- the scan finds each kind of write


ROGUE = """
from decimal import Decimal
from django.db.models import F
from accounts.models import MarginAccount, MarginLoan as Loan, Position
from core.bulk import bulk_update_fields

def credit(account_id, amount):
    MarginAccount.objects.filter(pk=account_id).update(cash=F("cash") + amount)  # write: update, F

def repay(account_id):
    loan = Loan.objects.select_for_update().get(account_id=account_id)
    loan.principal = Decimal(0)  # write: assigned
    loan.save(update_fields=["principal"])  # write: save

def fills(ids):
    positions = {p.pk: p for p in Position.objects.filter(pk__in=ids)}
    for p in positions.values():
        p.quantity -= 1  # write: assigned
    Position.objects.bulk_update(list(positions.values()), ["quantity"])  # write: bulk_update
    bulk_update_fields(Position, list(positions.values()), ["quantity"])  # write: handed

def through_the_case(case):
    case.account.cash += 1  # write: assigned
    case.account.save()  # write: save

def typed(loan: "Loan | None", book):
    loan.delete()  # write: delete
    book.account.positions.create(quantity=1)  # write: create

def raw(cursor):
    cursor.execute("UPDATE accounts_marginaccount SET cash = 0")  # write: raw SQL
    cursor.execute('INSERT INTO "accounts_position" (quantity) VALUES (1)')  # write: raw SQL

BOOK = (MarginAccount, Position)  # write: held, to be written by whoever takes it

def tables(copy):
    copy(_Table(MarginAccount, {"cash": ["0"]}))  # write: handed
"""

READS = """
from accounts.models import MarginAccount, MarginLoan, Position

def reads(account_id, proposal, plan, settings):
    cash = MarginAccount.objects.filter(pk=account_id).values_list("cash", flat=True).first()
    positions = list(Position.objects.filter(account_id=account_id).select_related("instrument"))
    total = sum(p.quantity for p in positions)
    rows = dict(MarginLoan.objects.values_list("account_id", "principal"))
    rows.update({0: 1})
    plan.status = "booked"
    plan.save()
    proposal.terms = {"rate": 1}
    proposal.save(update_fields=["terms"])
    figures = {}
    figures.update(cash=cash, total=total)
    isinstance(proposal, MarginAccount)
    account = models.ForeignKey(MarginAccount, on_delete=models.PROTECT)
    cursor.execute("SELECT cash FROM accounts_marginaccount")
    return positions
"""


def _marked(source: str) -> list[int]:
    return [number for number, text in enumerate(source.splitlines(), start=1) if "# write" in text]


def test_the_scan_finds_every_kind_of_write() -> None:
    lines = sorted({w.line for w in book_writes(ROGUE, "rogue")})
    assert lines == _marked(ROGUE)
    assert any('F("cash")' in w.what for w in book_writes(ROGUE, "rogue"))


def test_the_scan_lets_reads_and_other_models_be() -> None:
    assert book_writes(READS, "reads") == []


def test_the_scan_found_the_writes_the_workflow_made_before_the_ledger() -> None:
    """What restructuring wrote before issue 16 (negotiation.py and liquidation.py), in miniature: each is found."""
    before = """
from django.db.models import F
from accounts.models import LoanStatus, MarginAccount, MarginLoan, Position

def topup_confirm(topup, now):
    MarginAccount.objects.filter(pk=topup.account_id).update(cash=F("cash") + topup.amount)  # write

def proposal_execute(case, schedule):
    loan = MarginLoan.objects.select_for_update().filter(account=case.account, status=LoanStatus.ACTIVE).first()
    loan.principal = schedule.principal  # write
    loan.save(update_fields=["principal"])  # write

def liquidation_book(case, orders, given, realised):
    account = MarginAccount.objects.select_for_update().get(pk=case.account_id)
    positions = {p.pk: p for p in Position.objects.select_for_update(of=("self",)).filter(pk__in=orders)}
    Position.objects.bulk_update(list(positions.values()), ["quantity", "isolated_margin"])  # write
    account.cash += realised  # write
    account.save(update_fields=["cash", "updated_at"])  # write
"""
    assert sorted({w.line for w in book_writes(before, "negotiation")}) == _marked(before)


# ------------------------------------------------------------------------------------ the ledger's guards


def test_the_ledger_writes_only_inside_a_transaction() -> None:
    # No database is touched: the refusal comes before any query.
    with pytest.raises(RuntimeError, match="inside the caller's transaction"):
        ledger.cash_credit(account_id=1, amount=Decimal("1.00"), now=timezone.now())
    with pytest.raises(RuntimeError, match="inside the caller's transaction"):
        ledger.loan_repay(account_id=1, principal=Decimal(0), close=True)
    with pytest.raises(RuntimeError, match="inside the caller's transaction"):
        ledger.account_book_lock(1)


@pytest.mark.django_db
def test_a_credit_is_a_positive_decimal() -> None:
    for amount in (Decimal(0), Decimal("-1.00")):
        with pytest.raises(ValueError, match="more than 0"):
            ledger.cash_credit(account_id=1, amount=amount, now=timezone.now())
    with pytest.raises(TypeError, match="finite Decimal"):
        ledger.cash_credit(account_id=1, amount=1.5, now=timezone.now())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="finite Decimal"):
        ledger.cash_credit(account_id=1, amount=Decimal("NaN"), now=timezone.now())
