"""Target-function registry, expression targets and the train/test grids."""

import pickle

import numpy as np
import pytest
import torch

from dlprobe.data.functions import (TargetFunction, available_functions, function_dataset,
                                    get_function)
from dlprobe.errors import ConfigError, ExpressionError

DENSE = np.linspace(-1, 1, 20001)  # step 1e-4: contains 0, +-1 and every zero k/5 of sin(5*pi*x)
CLOSED_FORMS = {  # independent references, written from the formulas, not from the registry code
    "sinc": lambda x: np.sin(5 * np.pi * x) / (5 * np.pi * x),
    "sign-sin": lambda x: np.sign(np.sin(5 * np.pi * x)),
    "abs-sinc": lambda x: np.abs(np.sin(5 * np.pi * x) / (5 * np.pi * x)),
    "sin-cos": lambda x: np.sin(3 * np.pi * x) + np.cos(6 * np.pi * x),
    "cos": lambda x: np.cos(5 * np.pi * x),
    "arcsinh": lambda x: np.log(5 * x + np.sqrt(25 * x**2 + 1)),
    "x-sin": lambda x: 5 * np.pi * x * np.sin(5 * np.pi * x),
}


def test_registry_holds_the_expected_targets_defaults_first():
    names = [target.name for target in available_functions()]
    assert names[:2] == ["sinc", "sign-sin"]
    assert sorted(names) == sorted(CLOSED_FORMS)
    for target in available_functions():
        assert isinstance(target, TargetFunction) and target.formula and target.domain == (-1.0, 1.0)


@pytest.mark.parametrize("name", sorted(CLOSED_FORMS))
def test_registered_targets_are_finite_and_match_their_formula(name):
    target = get_function(name)
    y = target(DENSE)
    assert y.shape == DENSE.shape and y.dtype == np.float64 and np.isfinite(y).all()
    # Away from the zeros k/5 of sin(5*pi*x), where sinc is 0/0 and sign-sin jumps.
    away = np.abs(5 * DENSE - np.round(5 * DENSE)) > 1e-6
    with np.errstate(all="ignore"):
        np.testing.assert_allclose(y[away], CLOSED_FORMS[name](DENSE[away]), rtol=1e-10, atol=1e-12)


def test_sinc_limit_at_zero_is_exact():
    sinc = get_function("sinc")
    assert sinc(np.array([0.0]))[0] == 1.0
    assert get_function("abs-sinc")(np.array([0.0]))[0] == 1.0
    np.testing.assert_allclose(sinc(np.array([1e-9, -1e-9])), 1.0, rtol=1e-15)  # continuous
    assert abs(sinc(np.array([0.2]))[0]) < 1e-15  # first zero at 5x = 1


def test_sign_sin_takes_only_sign_values_and_is_zero_exactly_at_the_zeros():
    sign_sin = get_function("sign-sin")
    y = sign_sin(DENSE)
    assert set(np.unique(y)) == {-1.0, 0.0, 1.0}
    zeros = np.arange(-5, 6) / 5.0  # sin(5*pi*x) = 0 exactly there
    assert np.all(sign_sin(zeros) == 0.0)
    # Elsewhere only at grid points that round onto a zero (linspace's -0.6 is not exactly -0.6).
    zero_x = DENSE[y == 0.0]
    assert {-1.0, 0.0, 1.0} <= set(zero_x) and np.all(np.abs(5 * zero_x - np.round(5 * zero_x)) < 1e-12)
    np.testing.assert_array_equal(sign_sin(-DENSE), -y)  # odd
    assert sign_sin(np.array([0.1, 0.3, -0.1])).tolist() == [1.0, -1.0, -1.0]


def test_spot_values():
    assert get_function("x-sin")(np.array([0.1]))[0] == pytest.approx(np.pi / 2, rel=1e-14)
    assert get_function("sin-cos")(np.array([0.0]))[0] == 1.0
    assert get_function("cos")(np.array([0.2]))[0] == pytest.approx(-1.0, rel=1e-14)
    assert get_function("arcsinh")(np.array([0.2]))[0] == pytest.approx(np.log(1 + np.sqrt(2)))


def test_expression_targets():
    target = get_function("  exp(-x**2)*sin(8*x) ")
    assert target.name == target.formula == "exp(-x**2)*sin(8*x)" and target.domain == (-1.0, 1.0)
    np.testing.assert_allclose(target(DENSE), np.exp(-DENSE**2) * np.sin(8 * DENSE), rtol=1e-15)
    assert get_function("x-pi")(np.array([1.0]))[0] == 1.0 - np.pi  # name-like but a valid formula
    assert get_function("x", domain=(0, 2)).domain == (0.0, 2.0)


def test_domain_override_keeps_the_registered_function():
    target = get_function("sinc", domain=(-2, 3))
    assert target.domain == (-2.0, 3.0) and target.name == "sinc"
    assert get_function("sinc").domain == (-1.0, 1.0)  # the registry itself is untouched


@pytest.mark.parametrize("text", ["sincc", "sign_sin", "sign-sinn", "Sinc", "foo"])
def test_unknown_names_list_the_registry(text):
    with pytest.raises(ExpressionError, match=r"unknown target function .*sinc, sign-sin"):
        get_function(text)


@pytest.mark.parametrize("text", ["__import__('os')", "x.__class__", "sin(x, y=2)", "", "x +"])
def test_unsafe_or_broken_expressions_keep_the_parser_message(text):
    with pytest.raises(ExpressionError) as caught:
        get_function(text)
    assert "registered names" not in str(caught.value)


@pytest.mark.parametrize("domain", [(1, -1), (0, 0), (0, np.inf), (0,), "ab", 5])
def test_bad_domains(domain):
    with pytest.raises(ConfigError):
        get_function("sinc", domain=domain)


@pytest.mark.parametrize("num_train, num_test", [(1001, 100), (1000, 200), (3, 1), (2, 7), (5, 4)])
def test_dataset_grids(num_train, num_test):
    x_train, y_train, x_test, y_test = function_dataset(
        get_function("sin-cos"), num_train, num_test, dtype=torch.float64)
    assert x_train.shape == y_train.shape == (num_train, 1)
    assert x_test.shape == y_test.shape == (num_test, 1)
    assert all(t.dtype == torch.float64 for t in (x_train, y_train, x_test, y_test))
    assert x_train[0, 0] == -1.0 and x_train[-1, 0] == 1.0
    assert torch.all(torch.diff(x_train[:, 0]) > 0) and torch.all(torch.diff(x_test[:, 0]) > 0)
    assert torch.all((x_test > -1.0) & (x_test < 1.0))
    gaps = (x_test - x_train.T).abs()  # (num_test, num_train)
    assert gaps.min() > 1e-9  # no test point on a training point
    reference = CLOSED_FORMS["sin-cos"]
    np.testing.assert_allclose(y_train.numpy(), reference(x_train.numpy()), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(y_test.numpy(), reference(x_test.numpy()), rtol=1e-12, atol=1e-12)


def test_dataset_default_dtype_domain_and_name():
    x_train, y_train, x_test, _ = function_dataset("sinc", 11, 4)
    assert x_train.dtype == y_train.dtype == torch.float32
    assert y_train[5, 0] == 1.0  # x = 0 is on the grid and sinc(0) is exact
    x_train, _, x_test, _ = function_dataset(get_function("x", domain=(2, 4)), 5, 2)
    assert x_train[:, 0].tolist() == [2.0, 2.5, 3.0, 3.5, 4.0]
    assert torch.all((x_test > 2) & (x_test < 4))


@pytest.mark.parametrize("num_train, num_test", [(1, 10), (0, 10), (10, 0), (True, 10), (10.0, 5)])
def test_dataset_sizes_are_validated(num_train, num_test):
    with pytest.raises(ConfigError, match="num_t"):
        function_dataset("sinc", num_train, num_test)


def test_dataset_dtype_is_validated():
    with pytest.raises(ConfigError, match="dtype"):
        function_dataset("sinc", 10, 5, dtype=torch.int64)


def test_non_finite_targets_are_reported_with_their_x():
    with pytest.raises(ExpressionError, match=r"'1/x' on \[-1, 1\] is inf at x = 0\b"):
        function_dataset("1/x", 101, 10)  # odd count: 0 is a training point
    with pytest.raises(ExpressionError, match="nan at x = -1"):
        function_dataset(get_function("log(x)", domain=(-1, 1)), 10, 10)


def test_targets_pickle_for_worker_processes():
    for target in [*available_functions(), get_function("exp(-x**2)*sin(8*x)")]:
        copy = pickle.loads(pickle.dumps(target))
        assert copy.name == target.name
        np.testing.assert_array_equal(copy(DENSE), target(DENSE))
