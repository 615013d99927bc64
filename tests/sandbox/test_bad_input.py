"""Bad input never takes the host down: whatever the code, a result comes back
and the session keeps working."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tinyact.sandbox import open_session
from tinyact.schema import ExecResult


@pytest.fixture(scope="module")
def box():
    with open_session() as s:
        s.execute("anchor = 123")
        yield s


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    code=st.one_of(
        st.text(max_size=200),  # mostly not Python at all, surrogates included
        st.sampled_from(["print(", "\x00", "def f(:", "\udcff = 1", "1" * 5000, "'''", "\\", "lambda: (yield)"]),
        st.lists(st.sampled_from(["x = 1", "print(x)", "del x", "raise ValueError('v')", "1/0", "import os"]),
                 max_size=6).map("\n".join),
    )
)
def test_any_code_gives_a_result(box, code):
    r = box.execute(code, timeout=5)
    assert isinstance(r, ExecResult)
    r.model_dump_json()
    assert box.execute("anchor").value == "123"


def test_huge_code_and_huge_values(box):
    code = "big = [" + ",".join(str(i) for i in range(200_000)) + "]\nlen(big)"
    assert box.execute(code).value == "200000"
    r = box.execute("'v' * 10**6")
    assert r.ok and len(r.value) < 70_000  # the repr is cut at the output limit
    r = box.execute("final_answer('w' * 10**5)")
    assert r.called_final_answer and len(r.final_answer) == 10**5


def test_code_must_be_str(box):
    with pytest.raises(TypeError):
        box.execute(b"1")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        box.execute("1", timeout=0)
