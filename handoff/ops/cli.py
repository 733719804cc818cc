"""`handoff config-check`: the effective settings, secrets masked, or why they are refused."""

from __future__ import annotations

import json
from typing import Any

import click
from pydantic import AliasChoices

from handoff.config import WorkerSettings, is_secret, load_settings

MASK = "********"


def env_name(field: str, model: type[WorkerSettings] = WorkerSettings) -> str:
    """The environment variable a setting is read from (the first when there are several)."""
    alias = model.model_fields[field].validation_alias
    if isinstance(alias, AliasChoices) and alias.choices and isinstance(alias.choices[0], str):
        return alias.choices[0]
    if isinstance(alias, str):
        return alias
    return f"HANDOFF_{field.upper()}"


def effective(settings: WorkerSettings) -> list[tuple[str, Any, bool]]:
    """(variable, value with secrets masked, whether it was given rather than defaulted)."""
    values = settings.model_dump(mode="json")
    given = settings.model_fields_set
    rows = []
    model = type(settings)
    for field in model.model_fields:
        value = values[field]
        if is_secret(field) and value not in (None, ""):
            value = MASK
        rows.append((env_name(field, model), value, field in given))
    return rows


@click.command("config-check")
@click.option("--json", "as_json", is_flag=True, help="one JSON object instead of NAME=value lines")
def config_check(as_json: bool) -> None:
    """Print the effective settings (secrets masked); exit 1 naming any bad variable."""
    rows = effective(load_settings())
    if as_json:
        click.echo(json.dumps({name: value for name, value, _ in rows}, indent=2))
        return
    for name, value, given in rows:
        text = value if isinstance(value, str) else json.dumps(value)
        click.echo(f"{name}={text}" + ("" if given else "  # default"))
