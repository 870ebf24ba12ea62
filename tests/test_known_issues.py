import pytest

from ptq.run.known_issues import KnownIssue, known_issue
from ptq.run.matrix import Case


def test_known_issue_matches_by_globs():
    issue = KnownIssue("resnet*,vgg16", "static_*", "why")
    assert issue.matches(Case("resnet18", "static_int8"))
    assert issue.matches(Case("vgg16", "static_int8_jit"))
    assert not issue.matches(Case("resnet18", "dynamic_int8"))
    assert not issue.matches(Case("mobilenet_v2", "static_int8"))


def test_the_measured_minilm_ort_static_issue_is_registered():
    issue = known_issue(Case("minilm_l6", "ort_static_int8"))
    assert issue is not None and "cosine 0.44" in issue.reason
    assert known_issue(Case("minilm_l6", "ort_dynamic_int8")) is None


@pytest.mark.slow
def test_known_issue_is_skipped_with_its_reason_unless_asked(pytester: pytest.Pytester):
    pytester.makepyfile(test_suite="def test_case(ptq_bench):\n    ptq_bench()\n")
    pytester.makeconftest(
        "from ptq.run.known_issues import KnownIssue, register_known_issue\n"
        "register_known_issue(KnownIssue('micro_linear_256', 'dynamic_int8', 'measured: it is broken'))\n"
    )
    args = [
        "--benchmark-disable",
        "--ptq-models=micro_linear_256",
        "--ptq-recipes=fp32,dynamic_int8",
        "-rs",
        "-p",
        "no:cacheprovider",
    ]
    result = pytester.runpytest_subprocess(*args)
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["SKIPPED*micro_linear_256-dynamic_int8: known issue: measured: it is broken*"])
    result = pytester.runpytest_subprocess(*args, "--ptq-run-known-issues")
    result.assert_outcomes(passed=2)


def test_a_known_issue_registered_twice_is_refused(monkeypatch):
    import ptq.run.known_issues as ki
    from ptq.errors import DuplicateRegistration

    monkeypatch.setattr(ki, "_ISSUES", [])
    ki.register_known_issue(KnownIssue("m*", "r", "measured once"))
    with pytest.raises(DuplicateRegistration, match="models 'm\\*' x recipes 'r' is already registered"):
        ki.register_known_issue(KnownIssue("m*", "r", "measured again"))
