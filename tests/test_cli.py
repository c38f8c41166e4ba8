"""The command line: bad values are refused by argparse with one line and exit code 2, the same
way by ``dev`` and ``simulator`` (one definition of each option)."""

from __future__ import annotations

import pytest

from backendauth_operator.commands.cli import build_parser, main


@pytest.mark.parametrize("command", ["dev", "simulator"])
@pytest.mark.parametrize(
    ("option", "value", "words"),
    [
        ("--fail-rate", "2", "between 0 and 1"),
        ("--throttle-rate", "-0.1", "between 0 and 1"),
        ("--timeout-rate", "nan", "between 0 and 1"),
        ("--ambiguous-rate", "half", "not a number"),
        ("--job-seconds", "abc", "not a number"),
        ("--job-seconds", "-1", "0 or more"),
        ("--job-seconds", "inf", "finite"),
        ("--latency-ms", "-5", "must not be negative"),
        ("--latency-ms", "1.5", "not a whole number"),
    ],
)
def test_a_bad_value_exits_2_with_one_line_naming_the_option(
    command: str, option: str, value: str, words: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as raised:
        main([command, option, value])
    assert raised.value.code == 2
    error_lines = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(error_lines) == 1 and option in error_lines[0] and words in error_lines[0], error_lines


def test_dev_and_simulator_share_their_behaviour_options() -> None:
    parser = build_parser()
    dev = parser.parse_args(["dev", "--fail-rate", "0.5", "--job-seconds", "2", "--latency-ms", "7"])
    sim = parser.parse_args(["simulator", "--fail-rate", "0.5", "--job-seconds", "2", "--latency-ms", "7"])
    shared = ("fail_rate", "throttle_rate", "timeout_rate", "ambiguous_rate", "job_seconds", "latency_ms")
    assert [getattr(dev, n) for n in shared] == [getattr(sim, n) for n in shared] == [0.5, 0, 0, 0, 2.0, 7]
