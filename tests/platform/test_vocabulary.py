"""Each word of the trading vocabulary, the zero and the Decimal parser are defined once
(alpha_platform/common/vocabulary.py, alpha_platform/common/money.py) and imported
everywhere else: a scan of the source tree fails when one is defined again."""

from __future__ import annotations

import ast
import pathlib
from collections.abc import Iterator
from decimal import Decimal

from alpha_platform.common import vocabulary

ROOT = pathlib.Path(__file__).resolve().parents[2]
PACKAGES = ("alpha_platform", "exchanges", "risk", "trading", "agents")
VOCABULARY = ROOT / "alpha_platform" / "common" / "vocabulary.py"
MONEY = ROOT / "alpha_platform" / "common" / "money.py"

# The words, by vocabulary. Margin modes ("cross"/"isolated") are lower-case words that
# other code uses for other things; they are imported where used but not scanned for.
WORDS = {
    "order side": set(vocabulary.ORDER_SIDES),
    "position side": set(vocabulary.POSITION_SIDES),
    "order type": set(vocabulary.ORDER_TYPES),
    "order status": {s.value for s in vocabulary.RecordedStatus},
}


def _sources() -> Iterator[tuple[pathlib.Path, ast.Module]]:
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            yield path, ast.parse(path.read_text(), filename=str(path))


def _where(path: pathlib.Path, node: ast.AST) -> str:
    return f"{path.relative_to(ROOT)}:{node.lineno}"  # type: ignore[attr-defined]


def _str(node: ast.AST) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _vocabulary_of(words: set[str]) -> str | None:
    for name, vocabulary_words in WORDS.items():
        if len(words) >= 2 and words <= vocabulary_words:
            return name
    return None


def _redefinitions(path: pathlib.Path, tree: ast.Module) -> Iterator[str]:
    for node in ast.walk(tree):
        # BUY = "BUY" (an Enum member), BUY = "BUY", "Buy" (a TextChoices member)
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            value = node.value.elts[0] if isinstance(node.value, ast.Tuple) and node.value.elts else node.value
            word = _str(value)
            if word is not None and word == node.targets[0].id and any(word in w for w in WORDS.values()):
                yield f"{_where(path, node)} defines {word!r}"
        # ("BUY", "SELL"), ["PENDING", "NEW", ...]: a vocabulary (or part of one) listed again
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            words = [_str(e) for e in node.elts]
            if words and None not in words:
                name = _vocabulary_of(set(words))  # type: ignore[arg-type]
                if name is not None:
                    yield f"{_where(path, node)} lists {name}s {tuple(words)}"


def test_the_trading_vocabulary_is_defined_once():
    found = [hit for path, tree in _sources() if path != VOCABULARY for hit in _redefinitions(path, tree)]
    assert not found, "import these from alpha_platform.common.vocabulary:\n" + "\n".join(found)


def _is_decimal_call(node: ast.AST) -> bool:
    return isinstance(node, ast.Call) and (
        (isinstance(node.func, ast.Name) and node.func.id == "Decimal")
        or (isinstance(node.func, ast.Attribute) and node.func.attr == "Decimal"))


def _is_zero(node: ast.AST) -> bool:
    if not _is_decimal_call(node) or len(node.args) != 1 or not isinstance(node.args[0], ast.Constant):  # type: ignore[attr-defined]
        return False
    try:
        return Decimal(str(node.args[0].value)) == 0  # type: ignore[attr-defined]
    except ArithmeticError:
        return False


def test_there_is_one_zero_constant():
    found = []
    for path, tree in _sources():
        if path == MONEY:
            continue
        for node in tree.body:  # module-level constants: D0 = Decimal("0"), ZERO: Decimal = Decimal(0)
            value = node.value if isinstance(node, (ast.Assign, ast.AnnAssign)) else None
            if value is not None and _is_zero(value):
                found.append(_where(path, node))
    assert not found, "import ZERO from alpha_platform.common.money:\n" + "\n".join(found)


def _returned(node: ast.AST) -> Iterator[ast.AST]:
    if isinstance(node, ast.IfExp):
        yield from _returned(node.body)
        yield from _returned(node.orelse)
    elif node is not None:
        yield node


def _handles_invalid_operation(handler: ast.ExceptHandler) -> bool:
    names = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    return any(isinstance(n, (ast.Name, ast.Attribute)) and (getattr(n, "id", None) or getattr(n, "attr", None))
               == "InvalidOperation" for n in names)


def _parsers(path: pathlib.Path, tree: ast.Module) -> Iterator[str]:
    for func in ast.walk(tree):
        if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for node in ast.walk(func):
            # return Decimal(str(value)) / return None if ... else Decimal(value): a parser
            if isinstance(node, ast.Return) and node.value is not None:
                for value in _returned(node.value):
                    if _is_decimal_call(value) and value.args and not isinstance(value.args[0], ast.Constant):  # type: ignore[attr-defined]
                        yield f"{_where(path, func)} {func.name}() returns Decimal(...) of its input"
            # try: Decimal(...) except InvalidOperation: a parser with its own answer to garbage
            if isinstance(node, ast.Try) and any(_handles_invalid_operation(h) for h in node.handlers if h.type):
                if any(_is_decimal_call(n) for stmt in node.body for n in ast.walk(stmt)):
                    yield f"{_where(path, func)} {func.name}() parses with Decimal(...) and catches InvalidOperation"


def test_there_is_one_decimal_parser():
    found = [hit for path, tree in _sources() if path != MONEY for hit in _parsers(path, tree)]
    assert not found, ("parse with alpha_platform.common.money.to_decimal (default=, invalid=, nonfinite=):\n"
                       + "\n".join(found))


def test_the_scan_sees_what_it_is_meant_to_see():
    """The checks above flag the shapes they are written against (and only those)."""
    source = '''
class Side:
    BUY = "BUY", "Buy"
class OrderSide:
    SELL = "SELL"
OPEN = ("PENDING", "NEW", "PARTIALLY_FILLED", "UNKNOWN")
LEGIT = ("BUY", "other")
D0 = Decimal("0")
ONE = Decimal("1")
def _dec(value):
    return None if value is None else Decimal(str(value))
def _safe(value):
    try:
        return Decimal(value) * 2
    except InvalidOperation:
        return None
def _step(places):
    return Decimal(1).scaleb(-int(places))
'''
    tree = ast.parse(source)
    path = ROOT / "x.py"
    assert [h.split(" ", 1)[1] for h in _redefinitions(path, tree)] == [
        "defines 'BUY'", "defines 'SELL'", "lists order statuss ('PENDING', 'NEW', 'PARTIALLY_FILLED', 'UNKNOWN')"]
    assert [_where(path, n) for n in tree.body if isinstance(n, ast.Assign) and _is_zero(n.value)] == ["x.py:8"]
    assert [h.split(" ", 1)[1] for h in _parsers(path, tree)] == [
        "_dec() returns Decimal(...) of its input", "_safe() parses with Decimal(...) and catches InvalidOperation"]


def test_the_database_choices_hold_the_vocabularys_values():
    from trading.models import Order, PositionSide, Side

    assert Side.values == list(vocabulary.ORDER_SIDES)
    assert PositionSide.values == list(vocabulary.POSITION_SIDES)
    assert Order.Type.values == list(vocabulary.ORDER_TYPES)
    assert Order.Status.values == [s.value for s in vocabulary.RecordedStatus]
    assert set(Order.OPEN_STATUSES) <= set(Order.Status.values)
    # What a venue reports is a part of what the platform records, and open means the same.
    assert {s.value for s in vocabulary.OrderStatus} <= set(Order.Status.values)
    assert {s.value for s in vocabulary.OrderStatus if s.is_open} <= set(Order.OPEN_STATUSES)
