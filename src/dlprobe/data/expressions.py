"""Safe math expressions in one variable `x`, for user-defined target functions.

    >>> expression = parse_expression("exp(-x**2) * sin(8*x)")
    >>> y = evaluate_on_grid(expression, np.linspace(-1, 1, 101))   # (101,) float64

The text is parsed with `ast` and evaluated by walking the tree ourselves over a whitelist of
node types, names and numpy functions; nothing is ever passed to eval/exec/compile. Anything off
the whitelist raises `ExpressionError` with a one-line message naming the offending piece.
"""

from __future__ import annotations

import ast
import dataclasses

import numpy as np

from dlprobe.errors import ExpressionError

MAX_LENGTH = 300  # characters; also bounds the work the parser can be made to do
MAX_DEPTH = 50  # nested operations/calls/parentheses; keeps our recursive walk far from Python's limit
MAX_EXPONENT = 100  # |constant exponent|; x**1000 or 9**9**9 is a typo or an attack, not a target

CONSTANTS = {"pi": np.pi, "e": np.e}
UNARY_FUNCTIONS = {
    "sin": np.sin, "cos": np.cos, "tan": np.tan, "exp": np.exp, "log": np.log,
    "log10": np.log10, "sqrt": np.sqrt, "abs": np.abs, "tanh": np.tanh, "sinh": np.sinh,
    "cosh": np.cosh, "arcsinh": np.arcsinh, "asinh": np.arcsinh, "arctan": np.arctan,
    "atan": np.arctan, "arccos": np.arccos, "acos": np.arccos, "arcsin": np.arcsin,
    "asin": np.arcsin, "sign": np.sign, "sinc": np.sinc,  # numpy's sinc is sin(pi x)/(pi x)
    "floor": np.floor, "ceil": np.ceil,
}
BINARY_FUNCTIONS = {"minimum": np.minimum, "maximum": np.maximum}
BINARY_OPERATORS = {
    ast.Add: np.add, ast.Sub: np.subtract, ast.Mult: np.multiply,
    ast.Div: np.true_divide, ast.Pow: np.power,
}
UNARY_OPERATORS = {ast.UAdd: np.positive, ast.USub: np.negative}
_ALLOWED_FUNCTIONS = ", ".join(sorted({**UNARY_FUNCTIONS, **BINARY_FUNCTIONS}))
_FORBIDDEN_KINDS = {  # friendlier wording for the constructs people (or attackers) try most
    ast.Attribute: "attribute access", ast.Subscript: "subscripts", ast.Lambda: "lambdas",
    ast.ListComp: "comprehensions", ast.SetComp: "comprehensions", ast.DictComp: "comprehensions",
    ast.GeneratorExp: "comprehensions", ast.Compare: "comparisons", ast.BoolOp: "and/or",
    ast.IfExp: "conditional expressions", ast.NamedExpr: "assignments", ast.Starred: "starred arguments",
}


@dataclasses.dataclass(frozen=True)
class Expression:
    """A validated expression (build it with `parse_expression`, which checks the tree).

    Calling it on a float64 array `x` of any shape returns `y` of the same shape; inf/nan are
    returned silently, use `evaluate_on_grid` to have them rejected.
    """

    text: str
    tree: ast.Expression = dataclasses.field(repr=False, compare=False)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        # inf/nan are the caller's to judge (evaluate_on_grid does); numpy's warnings would be noise.
        with np.errstate(all="ignore"):
            value = _evaluate(self.tree.body, x)
        return np.broadcast_to(np.asarray(value, dtype=np.float64), x.shape).copy()


def parse_expression(text: str) -> Expression:
    """Parse and validate `text`; raise ExpressionError naming the first offending piece."""
    if not isinstance(text, str):
        raise ExpressionError(f"expression must be a string, got {type(text).__name__}")
    text = text.strip()  # ast refuses leading blanks ("unexpected indent") that users do not see
    if not text:
        raise ExpressionError("empty expression: give a formula in x, e.g. 'exp(-x**2)*sin(8*x)'")
    if len(text) > MAX_LENGTH:
        raise ExpressionError(
            f"expression {_shorten(text)} is {len(text)} characters long, the limit is {MAX_LENGTH}")
    _check_bracket_depth(text)
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as error:
        # Python reports offset 0 (or None) when the text ends too early, e.g. "x +".
        line = f"line {error.lineno} " if (error.lineno or 1) > 1 else ""
        column = f"column {error.offset}" if error.offset else f"column {len(text) + 1} (end of text)"
        raise ExpressionError(
            f"syntax error in expression {text!r} at {line}{column}: {error.msg}") from None
    except (ValueError, RecursionError, MemoryError, OverflowError) as error:
        raise ExpressionError(f"cannot parse expression {text!r}: {error}") from None
    _check_tree_depth(tree, text)
    _validate(tree.body, text)
    return Expression(text=text, tree=tree)


def evaluate_on_grid(expression: Expression, x: np.ndarray) -> np.ndarray:
    """Evaluate on `x` (any shape) and return float64 `y` of the same shape, all finite or ExpressionError."""
    x = np.asarray(x, dtype=np.float64)
    return require_finite(expression(x), x, f"expression {expression.text!r}")


def require_finite(values: np.ndarray, x: np.ndarray, label: str) -> np.ndarray:
    """Return `values` unchanged if all finite, else raise ExpressionError naming the first bad `x`."""
    bad = ~np.isfinite(values)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise ExpressionError(
            f"{label} is {values.flat[first]} at x = {x.flat[first]:.6g} ({int(bad.sum())} of "
            f"{values.size} grid points are not finite; division by zero or outside the domain of "
            f"log/sqrt/arcsin?)")
    return values


def _shorten(text: str, limit: int = 40) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _piece(node: ast.AST, text: str) -> str:
    """The source text of `node` (what the user typed), for error messages."""
    segment = ast.get_source_segment(text, node)
    return segment if segment is not None else ast.unparse(node)


def _check_bracket_depth(text: str) -> None:
    # Before parsing: Python's own parser has hard limits on nesting with less friendly errors.
    depth = deepest = 0
    for character in text:
        depth += character in "([{"
        depth -= character in ")]}"
        deepest = max(deepest, depth)
    if deepest > MAX_DEPTH:
        raise ExpressionError(
            f"expression {_shorten(text)} nests brackets {deepest} deep, the limit is {MAX_DEPTH}")


def _check_tree_depth(tree: ast.Expression, text: str) -> None:
    stack = [(tree.body, 1)]  # iterative, so a hostile tree cannot exhaust the Python stack here
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ExpressionError(
                f"expression {_shorten(text)} nests operations more than {MAX_DEPTH} deep")
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node)
                     if isinstance(child, ast.expr))


def _validate(node: ast.AST, text: str) -> None:
    """Raise ExpressionError unless every node under `node` is on the whitelist (depth <= MAX_DEPTH)."""
    where = f"in expression {text!r}"
    if isinstance(node, ast.Constant):
        value = node.value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ExpressionError(f"constant {_piece(node, text)} is not a real number {where}")
        try:
            finite = np.isfinite(float(value))
        except OverflowError:
            finite = False
        if not finite:
            raise ExpressionError(f"number {_piece(node, text)} is too large {where}")
    elif isinstance(node, ast.Name):
        _reject_dunder(node.id, where)
        if node.id in UNARY_FUNCTIONS or node.id in BINARY_FUNCTIONS:
            raise ExpressionError(f"function '{node.id}' must be called, e.g. {node.id}(x), {where}")
        if node.id != "x" and node.id not in CONSTANTS:
            raise ExpressionError(f"unknown name '{node.id}' {where}, allowed: x, pi, e")
    elif isinstance(node, ast.BinOp) and type(node.op) in BINARY_OPERATORS:
        _validate(node.left, text)
        _validate(node.right, text)
        if isinstance(node.op, ast.Pow) and not _mentions_x(node.right):
            with np.errstate(all="ignore"):
                exponent = float(_evaluate(node.right, np.float64(0.0)))
            if not abs(exponent) <= MAX_EXPONENT:  # also catches nan
                piece = _piece(node.right, text)
                value = "" if piece == f"{exponent:g}" else f" (= {exponent:.6g})"
                raise ExpressionError(
                    f"exponent {piece}{value} in {_piece(node, text)} is too large {where}, "
                    f"the limit is |exponent| <= {MAX_EXPONENT}")
    elif isinstance(node, ast.UnaryOp) and type(node.op) in UNARY_OPERATORS:
        _validate(node.operand, text)
    elif isinstance(node, ast.Call):
        _validate_call(node, text, where)
    else:
        kind = _FORBIDDEN_KINDS.get(type(node), f"'{type(node).__name__}' syntax")
        raise ExpressionError(
            f"{kind} not allowed: {_piece(node, text)!r} {where}; use numbers, x, pi, e, "
            f"+ - * / ** and the functions {_ALLOWED_FUNCTIONS}")


def _reject_dunder(name: str, where: str) -> None:
    # Checked first so probes like __import__ get a message saying exactly why they fail.
    if name.startswith("__") or name.endswith("__"):
        raise ExpressionError(
            f"dunder name '{name}' not allowed {where}; allowed names: x, pi, e and the functions "
            f"{_ALLOWED_FUNCTIONS}")


def _validate_call(node: ast.Call, text: str, where: str) -> None:
    if not isinstance(node.func, ast.Name):
        raise ExpressionError(
            f"only plain function names can be called, not {_piece(node.func, text)!r}, {where}")
    name = node.func.id
    _reject_dunder(name, where)
    if name == "x" or name in CONSTANTS:
        raise ExpressionError(f"'{name}' is a value, not a function, {where}; write {name}*(...)")
    if name in UNARY_FUNCTIONS:
        arity = 1
    elif name in BINARY_FUNCTIONS:
        arity = 2
    else:
        raise ExpressionError(f"unknown function '{name}' {where}, allowed: {_ALLOWED_FUNCTIONS}")
    if node.keywords:
        raise ExpressionError(
            f"keyword argument {_piece(node.keywords[0], text)!r} not allowed in {name}() {where}")
    if len(node.args) != arity:
        raise ExpressionError(
            f"{name}() takes {arity} argument{'s' * (arity > 1)}, got {len(node.args)} {where}")
    for argument in node.args:
        _validate(argument, text)


def _mentions_x(node: ast.AST) -> bool:
    return any(isinstance(child, ast.Name) and child.id == "x" for child in ast.walk(node))


def _evaluate(node: ast.AST, x: np.ndarray) -> np.ndarray:
    """Value of a validated node at `x`: an array shaped like `x` or a float64 scalar."""
    if isinstance(node, ast.Constant):
        return np.float64(node.value)
    if isinstance(node, ast.Name):
        return x if node.id == "x" else np.float64(CONSTANTS[node.id])
    if isinstance(node, ast.BinOp):
        return BINARY_OPERATORS[type(node.op)](_evaluate(node.left, x), _evaluate(node.right, x))
    if isinstance(node, ast.UnaryOp):
        return UNARY_OPERATORS[type(node.op)](_evaluate(node.operand, x))
    if isinstance(node, ast.Call):
        function = UNARY_FUNCTIONS.get(node.func.id) or BINARY_FUNCTIONS[node.func.id]
        return function(*(_evaluate(argument, x) for argument in node.args))
    raise AssertionError(f"unvalidated node {type(node).__name__}")  # a bug, not a user error
