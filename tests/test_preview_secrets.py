"""Previews: the tool's own sentence or a readable fallback, and secrets kept
out of previews, events, logs and ``show``."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from governance_support import governed_app, governed_registry, run_cli, write_tool_site
from governed_tools import GovernedTool, WebhookInput
from sqlalchemy import select

from cairnloop_core import Actor, Cairnloop, ToolSpec
from cairnloop_core.schema import events

AGENT = Actor("bot-7", "agent")
TOKEN = "tok-5up3r-s3cr3t"
SIGNING_KEY = "sk-signing-9876"
PASSWORD = "hunter2-password"
SECRETS = (TOKEN, SIGNING_KEY, PASSWORD)
WEBHOOK = {
    "url": "https://hooks.example/notify",
    "token": TOKEN,
    "signing_key": SIGNING_KEY,
    "auth": {"user": "svc", "password": PASSWORD},
}
MASKED = {
    "url": "https://hooks.example/notify",
    "token": "********",
    "signing_key": "********",
    "auth": {"user": "svc", "password": "********"},
}


@pytest.fixture(scope="module")
def tool_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tool_site(tmp_path_factory.mktemp("tool-site"))


@pytest.fixture
def app(database_url: str) -> Iterator[Cairnloop]:
    with governed_app(database_url) as instance:
        yield instance


def _event_text(app: Cairnloop) -> str:
    with app.engine.connect() as connection:
        rows = connection.execute(select(events)).all()
    return "\n".join(repr(tuple(row)) for row in rows)


def _log_text(records: list[logging.LogRecord]) -> str:
    return "\n".join(f"{r.getMessage()} {vars(r)!r}" for r in records)


def test_tool_preview_is_stored_with_the_proposal_and_its_first_event(
    app: Cairnloop,
) -> None:
    result = app.propose(
        "internal_note",
        actor=AGENT,
        input={"conversation_id": "c-1", "content": "Three words here"},
    )

    expected = (
        "Adds a 3-word internal note to conversation 'c-1', visible to operators only."
    )
    assert result.proposal.preview == expected
    assert app.get(result.proposal.id).preview == expected
    assert app.events(result.proposal.id)[0].data == {
        "outcome": "created",
        "preview": expected,
    }


def test_fallback_preview_reads_the_input_with_secret_fields_masked(
    app: Cairnloop,
) -> None:
    result = app.propose("call_webhook", actor=AGENT, input=WEBHOOK)

    assert result.proposal.preview == (
        "Call webhook: url=https://hooks.example/notify, token=********, "
        'signing_key=********, auth={"password":"********","user":"svc"}'
    )


def test_fallback_preview_shortens_long_values(app: Cairnloop) -> None:
    long_url = "https://hooks.example/" + "a" * 300

    result = app.propose(
        "call_webhook", actor=AGENT, input={**WEBHOOK, "url": long_url, "auth": None}
    )

    preview = result.proposal.preview
    assert preview.startswith(f"Call webhook: url={long_url[:199]}…, token=")
    assert len(preview) < 300


def test_failing_preview_hook_falls_back_and_logs_only_the_error_type(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    registry = governed_registry()
    registry.register_tool(
        GovernedTool(
            ToolSpec(
                name="leaky_preview",
                title="Leaky preview",
                description="Its preview hook raises with a secret in the message.",
                risk_tier="low_write",
                input_model=WebhookInput,
            ),
            preview_error=RuntimeError(f"cannot preview with {TOKEN}"),
        )
    )
    caplog.set_level(logging.DEBUG)

    with Cairnloop(database_url, registry=registry) as app:
        app.upgrade()
        result = app.propose("leaky_preview", actor=AGENT, input=WEBHOOK)

    assert result.proposal.preview.startswith("Leaky preview: url=https://")
    failures = [
        r
        for r in caplog.records
        if getattr(r, "event", None) == ("preview_hook_failed")
    ]
    assert [r.getMessage() for r in failures] == [
        "Preview hook of tool 'leaky_preview' failed: RuntimeError"
    ]
    assert not any(secret in _log_text(caplog.records) for secret in SECRETS)


def test_secrets_never_reach_events_or_logs_through_the_whole_lifecycle(
    app: Cairnloop, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)

    result = app.propose("call_webhook", actor=AGENT, input=WEBHOOK)
    app.approve(result.proposal.id, actor="alice", note="Webhook looks right.")
    outcomes = app.drain()

    assert [o.status for o in outcomes] == ["succeeded"]
    logged = _log_text(caplog.records)
    trail = _event_text(app)
    assert not any(secret in trail for secret in SECRETS)
    assert not any(secret in logged for secret in SECRETS)
    assert {"proposal_created", "proposal_approved", "proposal_succeeded"} <= {
        getattr(r, "event", None) for r in caplog.records
    }
    proposal = app.get(result.proposal.id)
    visible = proposal.as_dict(include_input=False)
    assert not any(secret in json.dumps(visible) for secret in SECRETS)
    # The row keeps the real values: the executor needs them to run the call.
    assert proposal.input == WEBHOOK


def test_secrets_of_an_invalid_call_stay_out_of_errors_events_and_logs(
    app: Cairnloop, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)

    result = app.propose(
        "call_webhook", actor=AGENT, input={**WEBHOOK, "url": "http://plain"}
    )

    assert result.outcome == "needs_input"
    assert result.errors == [
        {"field": "url", "reason": "String should match pattern '^https://'"}
    ]
    assert not any(secret in _event_text(app) for secret in SECRETS)
    assert not any(secret in _log_text(caplog.records) for secret in SECRETS)


def test_show_masks_secrets_in_both_forms(sqlite_url: str, tool_site: Path) -> None:
    # Masking happens in the command, after the row is read; SQLite stands for
    # both databases here, the facade tests above run on each.
    with governed_app(sqlite_url) as app:
        valid = app.propose("call_webhook", actor=AGENT, input=WEBHOOK).proposal.id
        invalid = app.propose(
            "call_webhook", actor=AGENT, input={**WEBHOOK, "url": "http://plain"}
        ).proposal.id

    shown = [
        run_cli(sqlite_url, "show", str(pid), *form, tool_site=tool_site)
        for pid in (valid, invalid)
        for form in ((), ("--json",))
    ]

    assert [r.code for r in shown] == [0, 0, 0, 0]
    assert not any(secret in r.stdout for r in shown for secret in SECRETS)
    assert json.loads(shown[1].stdout)["input"] == MASKED
    assert json.loads(shown[3].stdout)["input"] is None
    assert "  url: String should match pattern '^https://'\n" in shown[2].stdout
