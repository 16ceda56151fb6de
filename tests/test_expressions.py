"""Safe expression parser: values against numpy, hostile inputs rejected, fuzzing with Hypothesis."""

import ast
import builtins
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dlprobe.data.expressions import Expression, evaluate_on_grid, parse_expression
from dlprobe.errors import ExpressionError

GRID = np.linspace(-0.9, 0.9, 36)  # even count: avoids 0, and +-1 so log/arcsin/1/x style references stay finite

VALID = [
    ("exp(-x**2)*sin(8*x)", lambda x: np.exp(-x**2) * np.sin(8 * x)),
    ("sin(5*pi*x)/(5*pi*x)", lambda x: np.sin(5 * np.pi * x) / (5 * np.pi * x)),
    ("sinc(5*x)", lambda x: np.sinc(5 * x)),
    ("sign(sin(5*pi*x))", lambda x: np.sign(np.sin(5 * np.pi * x))),
    ("abs(x) + sqrt(abs(x))", lambda x: np.abs(x) + np.sqrt(np.abs(x))),
    ("log(1 + x**2) - log10(2 + x)", lambda x: np.log(1 + x**2) - np.log10(2 + x)),
    ("tanh(3*x) * cosh(x) - sinh(x)", lambda x: np.tanh(3 * x) * np.cosh(x) - np.sinh(x)),
    ("arcsinh(5*x) + asinh(x)", lambda x: np.arcsinh(5 * x) + np.arcsinh(x)),
    ("arctan(x) + atan(2*x) + arccos(x) - arcsin(x)",
     lambda x: np.arctan(x) + np.arctan(2 * x) + np.arccos(x) - np.arcsin(x)),
    ("tan(x) + e**x", lambda x: np.tan(x) + np.e**x),
    ("floor(3*x) + ceil(3*x)", lambda x: np.floor(3 * x) + np.ceil(3 * x)),
    ("minimum(x, 0.25) + maximum(x**2, 0.1)", lambda x: np.minimum(x, 0.25) + np.maximum(x**2, 0.1)),
    ("-x**2 + +x - -3", lambda x: -x**2 + x + 3),  # ** binds tighter than unary minus, as in Python
    ("2**-x + x**-2 + 1e-3", lambda x: 2.0**-x + x**-2.0 + 1e-3),
    ("5*pi*x*sin(5*pi*x)", lambda x: 5 * np.pi * x * np.sin(5 * np.pi * x)),
    ("  (x + 1) * (x - 1)  ", lambda x: (x + 1) * (x - 1)),
    ("x**100 + x**-100", lambda x: x**100.0 + x**-100.0),  # the exponent limit is inclusive
]


@pytest.mark.parametrize("text, reference", VALID, ids=[text for text, _ in VALID])
def test_values_match_numpy(text, reference):
    expression = parse_expression(text)
    assert isinstance(expression, Expression) and expression.text == text.strip()
    y = evaluate_on_grid(expression, GRID)
    assert y.dtype == np.float64 and y.shape == GRID.shape
    np.testing.assert_allclose(y, reference(GRID), rtol=1e-14, atol=1e-14)


def test_constants_broadcast_to_the_grid_shape():
    y = parse_expression("pi + e")(np.zeros((4, 1)))
    assert y.shape == (4, 1) and np.all(y == np.pi + np.e)
    assert parse_expression("7")(np.arange(3.0)).tolist() == [7.0, 7.0, 7.0]


HOSTILE = [
    "__import__('os')", "x.__class__", "().__class__.__bases__", "open('f')", "lambda: 1",
    "[x for x in y]", "x[0]", "'a'", "9**9**9", "x**1000", "x**-101", "2**(10**3)", "foo(x)",
    "import os", "", "   ", "x +", "sin(x, y=2)", "(" * 200 + "x" + ")" * 200,
    "sin(" * 55 + "x" + ")" * 55, "-" * 60 + "x", "x" + "+x" * 149, "1j", "True", "None",
    "y", "sin", "x(2)", "sin()", "sin(x, x)", "minimum(x)", "sin(*x)", "x < 1", "x and 1",
    "x if x else 1", "(x := 2)", "{x}", "(x, 1)", "f'{x}'", "b'x'", "x @ x", "x // 2", "x % 2",
    "~x", "1e400", "__builtins__", "x.real", "getattr(x, 'real')", "\x00", "x\n+1", "exec('1')",
]


@pytest.mark.parametrize("text", HOSTILE, ids=[repr(text)[:30] for text in HOSTILE])
def test_hostile_inputs_are_rejected(text):
    with pytest.raises(ExpressionError) as caught:
        parse_expression(text)
    assert "\n" not in str(caught.value)  # the CLI prints one line


@pytest.mark.parametrize("text, fragment", [
    ("os(x)", "unknown function 'os'"),
    ("os + x", "unknown name 'os'"),
    ("__import__('os')", "dunder name '__import__'"),
    ("x.__class__", "attribute access"),
    ("x**1000", "|exponent| <= 100"),
    ("9**9**9", "9**9"),
    ("x +", "column 4"),
    ("x ) + 1", "column 3"),
    ("sin(x, y=2)", "'y=2'"),
    ("(" * 200 + "x" + ")" * 200, "limit is 300"),
    ("sin(" * 55 + "x" + ")" * 55, "limit is 50"),
])
def test_messages_name_the_offending_piece(text, fragment):
    with pytest.raises(ExpressionError) as caught:
        parse_expression(text)
    assert fragment in str(caught.value)


def test_non_finite_grid_values_name_the_x():
    with pytest.raises(ExpressionError, match=r"'1/x' is inf at x = 0\b"):
        evaluate_on_grid(parse_expression("1/x"), np.linspace(-1, 1, 5))
    with pytest.raises(ExpressionError, match=r"nan at x = -1\b"):
        evaluate_on_grid(parse_expression("log(x)"), np.linspace(-1, 1, 5))
    with pytest.raises(ExpressionError, match="inf"):  # overflow, not a huge literal exponent
        evaluate_on_grid(parse_expression("exp(1000*x)"), np.linspace(-1, 1, 5))


def test_no_numpy_warnings_escape():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = parse_expression("log(x) + sqrt(x)")(np.array([-1.0, 0.0, 1.0]))
        with pytest.raises(ExpressionError):
            evaluate_on_grid(parse_expression("arcsin(2*x)/x"), np.array([0.0, 0.9]))
    assert np.isnan(y[0]) and y[1] == -np.inf and y[2] == 1.0


def test_never_compiles_code(monkeypatch):
    # ast.parse uses compile(..., flags=PyCF_ONLY_AST), which builds a tree and runs nothing;
    # any other compile/eval/exec would mean user text reached the interpreter.
    real_compile = builtins.compile

    def ast_only_compile(source, filename, mode, flags=0, *args, **kwargs):
        assert flags & ast.PyCF_ONLY_AST, "code object compiled from user text"
        return real_compile(source, filename, mode, flags, *args, **kwargs)

    def forbidden(*args, **kwargs):
        raise AssertionError("eval/exec called")

    monkeypatch.setattr(builtins, "compile", ast_only_compile)
    monkeypatch.setattr(builtins, "eval", forbidden)
    monkeypatch.setattr(builtins, "exec", forbidden)
    assert parse_expression("exp(-x**2)*sin(8*x)")(np.array([0.0]))[0] == 0.0
    with pytest.raises(ExpressionError):
        parse_expression("__import__('os').system('true')")


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=60),
                 st.text(alphabet="x()+-*/.,0123456789 episnco_[]'=:lambd", max_size=40)))
def test_any_text_parses_or_raises_expression_error(text):
    try:
        expression = parse_expression(text)
    except ExpressionError:
        return
    y = expression(np.linspace(-1, 1, 7))  # whatever parses must also evaluate without raising
    assert y.shape == (7,) and y.dtype == np.float64


def _trees():
    """Random valid expressions as (text, numpy reference function) pairs, fully parenthesized."""
    leaves = st.one_of(
        st.just(("x", lambda x: x)),
        st.just(("pi", lambda x: np.pi)),
        st.just(("e", lambda x: np.e)),
        st.floats(-10, 10, allow_nan=False, allow_subnormal=False).map(lambda c: (f"({c!r})", lambda x, c=c: c)),
    )
    binary = {"+": np.add, "-": np.subtract, "*": np.multiply, "/": np.true_divide}
    unary = {"sin": np.sin, "cos": np.cos, "tanh": np.tanh, "abs": np.abs, "arctan": np.arctan,
             "sinc": np.sinc, "sign": np.sign, "floor": np.floor}

    def extend(children):
        def binary_node(pair, op):
            (a, fa), (b, fb) = pair
            return f"({a} {op} {b})", lambda x: binary[op](fa(x), fb(x))

        def unary_node(child, name):
            a, fa = child
            return f"{name}({a})", lambda x: unary[name](fa(x))

        def power_node(child, exponent):
            a, fa = child
            return f"({a})**{exponent}", lambda x: np.power(fa(x), float(exponent))

        return st.one_of(
            st.builds(binary_node, st.tuples(children, children), st.sampled_from(sorted(binary))),
            st.builds(unary_node, children, st.sampled_from(sorted(unary))),
            st.builds(power_node, children, st.integers(-3, 3)),
            children.map(lambda child: (f"-{child[0]}", lambda x: -child[1](x))),
        )

    return st.recursive(leaves, extend, max_leaves=8)


@settings(max_examples=200, deadline=None)
@given(_trees())
def test_random_arithmetic_trees_match_numpy(tree):
    text, reference = tree
    x = np.linspace(-2, 2, 9)
    with np.errstate(all="ignore"):
        expected = np.broadcast_to(np.asarray(reference(x), dtype=np.float64), x.shape)
    try:
        expression = parse_expression(text)
    except ExpressionError as error:  # only the size limits may refuse a generated tree
        assert len(text) > 300 or "deep" in str(error), str(error)
        return
    # Same operations in the same order, so equal bit for bit (nan and inf included).
    np.testing.assert_array_equal(expression(x), expected)
