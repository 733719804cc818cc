"""Workflow templates, written as YAML an editor changes before publishing."""

from __future__ import annotations

import yaml

from schemas.inputs import Workflow

REASSIGN_NAME = "Reassign tickets for customer agent handoff"


def reassign_by_channel(account_id: str, workflow_id: str) -> str:
    """The template that rotates the ticket owner based on the ticket's source channel.

    Like the product's template, its actions are placeholders (user ids) to edit, add or
    remove; the last rule catches every other channel.
    """
    workflow = Workflow.model_validate({
        "workflow_id": workflow_id,
        "account_id": account_id,
        "name": REASSIGN_NAME,
        "rules": [
            {"when": {"channel": ["chat"]}, "assign": {"rotate": ["<chat-user-1>", "<chat-user-2>"]}},
            {"when": {"channel": ["email", "form"]},
             "assign": {"rotate": ["<email-user-1>", "<email-user-2>"]}},
            {"when": {"channel": ["whatsapp", "messenger", "instagram", "sms"]},
             "assign": {"rotate": ["<messaging-user-1>", "<messaging-user-2>"]}},
            {"when": {}, "assign": {"rotate": ["<any-user-1>", "<any-user-2>"]}},
        ],
    })
    body = {"workflows": [workflow.model_dump(mode="json", exclude_none=True)]}
    header = ("# Workflow template: " + REASSIGN_NAME + ".\n"
              "# Rules are tried in order; the first whose `when` matches assigns the ticket by\n"
              "# rotating its owner. Replace the <placeholders> with user ids, add, change or\n"
              "# remove rules, then publish with: handoff directory load THIS_FILE.yaml\n")
    return header + yaml.safe_dump(body, sort_keys=False, allow_unicode=True)
