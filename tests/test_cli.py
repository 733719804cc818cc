"""The command line: settings errors, the workflow template, schema check."""

from __future__ import annotations

import yaml
from click.testing import CliRunner

from handoff.cli import main
from schemas.inputs import Workflow


def test_bad_setting_is_refused_naming_the_variable() -> None:
    result = CliRunner().invoke(main, ["topics", "create"],
                                env={"HANDOFF_PARTITIONS": "zero", "KAFKA_BOOTSTRAP_SERVERS": "x:1"})
    assert result.exit_code != 0
    assert "HANDOFF_PARTITIONS='zero'" in str(result.exception) + result.output


def test_workflow_template_is_a_valid_editable_workflow() -> None:
    result = CliRunner().invoke(main, ["workflow", "template", "reassign-by-channel",
                                       "--account", "acme", "--workflow-id", "wf-1"])
    assert result.exit_code == 0, result.output
    doc = yaml.safe_load(result.output)
    workflow = Workflow.model_validate(doc["workflows"][0])
    assert workflow.name == "Reassign tickets for customer agent handoff"
    assert [r.when.channel for r in workflow.rules][:3] == [
        ["chat"], ["email", "form"], ["whatsapp", "messenger", "instagram", "sms"]]
    assert workflow.rules[-1].when.channel is None  # the catch-all


def test_schemas_check_passes_on_the_committed_files() -> None:
    result = CliRunner().invoke(main, ["schemas", "--check"])
    assert result.exit_code == 0, result.output
