"""Inline secret values are redacted from every log line; references are kept."""

from __future__ import annotations

import logging

import pytest

from backendauth_operator.runtime.logfilters import RedactSecrets, redact


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ("{'clientSecret': 'v4lue', 'clientId': 'c'}", "'clientId': 'c'"),
        ('{"facebook":{"clientSecret":"v4lue"}}', '"facebook"'),
        ("{'privateKey': '-----BEGIN\\nv4lue\\n-----END'}", "privateKey"),
        ('{"privateKey":"v4lue \\" still inside"}', "privateKey"),
        ("client_secret: 'v4lue'", "client_secret"),
    ],
)
def test_inline_secret_values_are_replaced(text: str, kept: str) -> None:
    out = redact(text)
    assert "v4lue" not in out and "***" in out and kept in out


def test_references_and_other_text_are_left_alone() -> None:
    text = "{'clientSecretRef': {'name': 'google-oauth', 'key': 'clientSecret'}, 'x': 'clientSecret'}"
    assert redact(text) == text


def test_the_filter_rewrites_records_with_their_arguments() -> None:
    record = logging.LogRecord(
        "kopf.objects", logging.DEBUG, __file__, 1, "Body: %s", ({"clientSecret": "v4lue"},), None
    )
    assert RedactSecrets().filter(record) is True
    assert record.getMessage() == "Body: {'clientSecret': '***'}"
