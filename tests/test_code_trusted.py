"""Tests are judged where the candidate cannot reach (issue 22): the sandbox returns only the values of the
candidate's own calls; module functions, builtins, method calls and subscripts around them, and expected
sides built from iterators, run in trusted code on plain values, or the test is flagged weak."""

import textwrap

import pytest

from verifiers.code import SandboxConfig, SandboxPool, verify
from verifiers.code.testsplit import compile_assert


@pytest.fixture(scope="module")
def pool():
    p = SandboxPool(SandboxConfig(size=1))
    yield p
    p.close()


def wrong(pool, program, tests):
    v = verify(textwrap.dedent(program), tests, pool=pool)
    assert v.error is None, v.error  # a cheat is a wrong answer, never a verifier error
    assert not v.passed, v.details["tests"]
    assert v.details["weak_tests"] == []  # and the test was not quietly judged next to the candidate


def right(pool, program, tests):
    v = verify(textwrap.dedent(program), tests, pool=pool)
    assert v.passed, (v.reason, v.error)


SHADOWED = [  # (cheat, test): the expected side names a module the candidate shadows or patches
    ("import heapq\nheapq.nsmallest = lambda n, xs: [9]\ndef smallest(xs, n):\n    return [9]\n",
     "assert heapq.nsmallest(2, [5, 1, 3]) == smallest([5, 1, 3], 2)"),
    ("class heapq:\n    nsmallest = staticmethod(lambda n, xs: [9])\ndef smallest(xs, n):\n    return [9]\n",
     "assert heapq.nsmallest(2, [5, 1, 3]) == smallest([5, 1, 3], 2)"),
    ("import statistics\nstatistics.mean = lambda xs: 7\ndef avg(xs):\n    return 7\n",
     "assert avg([1, 2, 3]) == statistics.mean([1, 2, 3])"),
    ("import statistics\nstatistics.median = lambda xs: 2\ndef f():\n    return [5, 5, 9]\n",
     "assert statistics.median(f()) == 2"),
    ("import functools\nfunctools.reduce = lambda f, xs: 0\ndef total(xs):\n    return 0\n",
     "assert total([1, 2]) == functools.reduce(lambda a, b: a + b, [1, 2])"),
    ("import operator\noperator.mul = lambda a, b: 1\ndef prod(a, b):\n    return 1\n",
     "assert prod(3, 4) == operator.mul(3, 4)"),
    ("import sys\nsys.maxsize = 5\ndef big():\n    return 5\n", "assert big() == sys.maxsize"),
    ("import math\nmath.isinf = lambda x: True\ndef f(x):\n    return 1.0\n", "assert math.isinf(f(1))"),
    ("import math\nmath.factorial = lambda n: 1\ndef f(n):\n    return 1\n", "assert f(5) == math.factorial(5)"),
    ("import cmath\ncmath.isclose = lambda a, b, **k: True\ndef f(x):\n    return 2.0\n",
     "assert cmath.isclose(f(1), 1.5)"),
    ("import bisect\nbisect.bisect_left = lambda xs, x: 0\ndef pos(xs, x):\n    return 0\n",
     "assert pos([1, 2, 3], 3) == bisect.bisect_left([1, 2, 3], 3)"),
    ("import builtins\nbuiltins.sorted = lambda xs, **k: list(xs)\ndef f():\n    return [3, 1]\n",
     "assert f() == sorted(f())"),
    ("def sorted(xs, **k):\n    return list(xs)\ndef f():\n    return [3, 1]\n", "assert f() == sorted([3, 1])"),
]


@pytest.mark.parametrize("cheat,test", SHADOWED, ids=[f"shadow-{i}" for i in range(len(SHADOWED))])
def test_shadowed_or_patched_modules_do_not_pass(pool, cheat, test):
    wrong(pool, cheat, [test])


LYING = [  # values whose type lies: a subclass of str/float/int with its own methods
    ("class S(str):\n    def isupper(self): return True\ndef f(x):\n    return S('abc')\n", "assert f(1).isupper()"),
    ("class S(str):\n    def startswith(self, p): return True\ndef f(x):\n    return S('zzz')\n",
     "assert f(1).startswith('ab')"),
    ("class S(str):\n    def lower(self): return 'abc'\ndef f(x):\n    return S('ZZZ')\n",
     "assert f(1).lower() == 'abc'"),
    ("class F(float):\n    def is_integer(self): return True\ndef f(x):\n    return F(1.5)\n",
     "assert f(1).is_integer()"),
    ("import math\nclass F(float):\n    pass\ndef f(x):\n    return F('inf')\n", "assert math.isinf(f(1))"),
    ("class L(list):\n    def count(self, x): return 3\ndef f(x):\n    return L([1])\n", "assert f(1).count(1) == 3"),
    ("class D(dict):\n    def get(self, k, d=None): return 5\ndef f(x):\n    return D()\n",
     "assert f(1).get('a') == 5"),
    ("class S(str):\n    def __getitem__(self, i): return 'a'\ndef f(x):\n    return S('zz')\n",
     "assert f(1)[0] == 'a'"),
    ("class C(complex):\n    def __eq__(self, o): return True\ndef f(x):\n    return C(5)\n",
     "assert cmath.isclose(f(1), 1 + 2j)"),
]


@pytest.mark.parametrize("cheat,test", LYING, ids=[f"lying-{i}" for i in range(len(LYING))])
def test_lying_subclasses_do_not_pass(pool, cheat, test):
    wrong(pool, cheat, [test])


def test_honest_wrappers_and_methods_pass(pool):
    right(pool, "def f(x):\n    return float('inf')\n", ["assert math.isinf(f(1))", "assert not math.isnan(f(1))"])
    right(pool, "def f(x):\n    return 'ABC'\n", ["assert f(1).isupper()", "assert f(1).startswith('AB')",
                                                  "assert f(1).lower() == 'abc'", "assert f(1)[1:] == 'BC'"])
    right(pool, "def smallest(xs, n):\n    return sorted(xs)[:n]\n",
          ["assert heapq.nsmallest(2, [5, 1, 3]) == smallest([5, 1, 3], 2)",
           "assert smallest([4, 2], 1) == heapq.nsmallest(1, [4, 2])"])
    right(pool, "def f(x):\n    return {'b': 1, 'a': 2}\n",
          ["assert sorted(f(1).items()) == [('a', 2), ('b', 1)]", "assert f(1).get('a') == 2",
           "assert list(f(1)) == ['b', 'a']", "assert list(f(1).keys()) == ['b', 'a']",
           "assert f(1) == {'a': 2, 'b': 1}"])  # a dict keeps the candidate's order, == ignores it
    wrong(pool, "def f(x):\n    return {'a': 2, 'b': 1}\n", ["assert list(f(1)) == ['b', 'a']"])
    right(pool, "def avg(xs):\n    return sum(xs) / len(xs)\n",
          ["assert avg([1.0, 2.0, 3.0]) == statistics.mean([1.0, 2.0, 3.0])",
           "assert statistics.mean([avg([2.0, 4.0])]) == 3.0"])
    right(pool, "def big():\n    return 9223372036854775807\n", ["assert big() == sys.maxsize"])
    right(pool, "def f(x):\n    return 1.5\n", ["assert cmath.isclose(f(1), 1.5)"])
    right(pool, "def root(x):\n    return (1 + 2j) * x\n",
          ["assert cmath.isclose(root(1), 1 + 2j)", "assert abs(root(2) - (2 + 4j)) < 1e-9", "assert root(1) == 1 + 2j"])
    right(pool, "def f(xs):\n    return [x * 2 for x in xs]\n", ["assert all(v % 2 == 0 for v in f([1, 2]))"])
    right(pool, "def f(x):\n    return [x]\n", ["assert type(f(1)) == list", "assert type(f(1)[0]) is int",
                                                 "assert type(f(1)) != tuple"])
    wrong(pool, "class L(list):\n    pass\ndef f(x):\n    return L([x])\n", ["assert type(f(1)) == list"])
    wrong(pool, "def f(x):\n    return True\n", ["assert type(f(1)) == int"])
    right(pool, "class Calculator:\n    def add(self, a, b):\n        return a + b\n",
          ["assert Calculator().add(2, 3) == 5"])


def test_numpy_results_are_judged_on_their_plain_values(pool):
    pytest.importorskip("numpy")
    right(pool, "import numpy as np\ndef f(x):\n    return np.array([1.0, 2.0])\n",
          ["assert np.allclose(f(1), [1.0, 2.0])", "assert f(1)[0] == 1.0"])
    wrong(pool, "import numpy as np\nnp.allclose = lambda a, b: True\ndef f(x):\n    return [9.0]\n",
          ["assert np.allclose(f(1), [1.0, 2.0])"])


@pytest.mark.parametrize("expected", ["list(range(3))", "sorted(reversed([2, 1, 0]))", "list(map(int, '012'))",
                                      "[i for i in range(3)]", "list(filter(lambda v: v >= 0, [-1, 0, 1, 2]))"])
def test_iterator_expected_sides_are_evaluated(pool, expected):
    right(pool, "def f():\n    return [0, 1, 2]\n", [f"assert f() == {expected}"])
    wrong(pool, "def f():\n    return [0, 1]\n", [f"assert f() == {expected}"])


def test_sum_of_an_iterator_is_evaluated(pool):
    right(pool, "def f(n):\n    return 6\n", ["assert f(4) == sum(range(4))", "assert sum(range(f(4))) == 15"])
    wrong(pool, "def f(n):\n    return 5\n", ["assert f(4) == sum(range(4))"])


def test_a_candidate_call_on_the_tests_own_variable_is_flagged_weak(pool):
    v = verify("def f(x):\n    return x\n", ["assert all(f(x) == x for x in range(3))"], pool=pool)
    assert v.passed and v.details["weak_tests"] == [0]


@pytest.mark.parametrize("source,kinds", [
    ("assert math.isinf(f(x))", ["candidate"]),
    ("assert f(x).isupper()", ["candidate", "trusted"]),
    ("assert Solution().two_sum([2, 7], 9) == [0, 1]", ["candidate"]),
    ("assert heapq.nsmallest(2, [5, 1, 3]) == g()", ["pure", "candidate"]),
    ("assert np.allclose(f(x), [1, 2])", ["candidate", "trusted"]),
    ("assert f(4) == sum(range(4))", ["candidate", "pure"]),
    ("assert code(7) == 217", ["candidate"]),  # a function named like a stdlib module is the candidate's
    ("assert Calculator().add(2, 3) == 5", ["candidate"]),  # a method of an object the test builds
    ("assert calc(2).add(3) == 5", ["candidate", "trusted"]),  # `add` of a value: set.add, trusted
])
def test_split_kinds(source, kinds):
    assert compile_assert(source).kinds == kinds
