"""`handoff audit` and `handoff simulate`, and the range options `handoff replay` shares with them.

Only click is imported here; the commands import their machinery when they run, so the rest of
the command line starts as fast as before.
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def range_options(command: F) -> F:
    """Add --from-offset/--to-offset/--from-time/--to-time; the command gets `log_range`."""

    @functools.wraps(command)
    def wrapper(*args: Any, from_offset: tuple[str, ...], to_offset: tuple[str, ...],
                from_time: str | None, to_time: str | None, **kwargs: Any) -> Any:
        from handoff.history import LogRange, parse_offsets, parse_time

        try:
            log_range = LogRange(
                from_offsets=parse_offsets(from_offset), to_offsets=parse_offsets(to_offset),
                from_time=parse_time(from_time) if from_time else None,
                to_time=parse_time(to_time) if to_time else None)
        except ValueError as exc:
            raise click.UsageError(str(exc)) from None
        return command(*args, log_range=log_range, **kwargs)

    options = [
        click.option("--from-offset", multiple=True, metavar="[PARTITION:]OFFSET",
                     help="first offset of handoff.account-events whose outputs count "
                          "(repeat per partition; a bare OFFSET is for every partition)"),
        click.option("--to-offset", multiple=True, metavar="[PARTITION:]OFFSET",
                     help="offset where the range ends (not included)"),
        click.option("--from-time", default=None, metavar="RFC3339",
                     help="start at the first record sequenced at or after this time"),
        click.option("--to-time", default=None, metavar="RFC3339",
                     help="end before the first record sequenced at or after this time"),
    ]
    for option in reversed(options):
        wrapper = option(wrapper)
    return wrapper  # type: ignore[return-value]


@click.command("audit")
@click.argument("conversation_id")
@click.option("--json", "as_json", is_flag=True, help="a JSON list of steps instead of text")
def audit(conversation_id: str, as_json: bool) -> None:
    """The decision trail of one conversation, re-derived from the topics and checked against
    what the live worker published."""
    from aiokafka.errors import KafkaError

    from handoff.audit import NotFound, format_trail, run_audit
    from handoff.config import load_settings

    try:
        trail = asyncio.run(run_audit(load_settings(), conversation_id))
    except (NotFound, LookupError) as exc:
        raise click.ClickException(str(exc)) from None
    except KafkaError as exc:
        raise click.ClickException(f"Kafka: {exc}") from None
    if as_json:
        click.echo(json.dumps(trail.to_json(), indent=2, ensure_ascii=False))
    else:
        click.echo(format_trail(trail))


@click.command("simulate")
@click.option("--config", "config_file", required=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="the proposed settings: a config object as in a config request (YAML or "
                   "JSON), optionally as {account_id, config}")
@click.option("--account", default=None, help="the account they are for (default: the file's "
                                              "account_id)")
@click.option("--list-changed", is_flag=True, help="list the conversations whose outcome changes")
@click.option("--json", "as_json", is_flag=True, help="one JSON object instead of tables")
@click.option("--quiet", is_flag=True, help="no progress on stderr")
@range_options
def simulate(config_file: Path, account: str | None, list_changed: bool, as_json: bool,
             quiet: bool, log_range: Any) -> None:
    """What-if: replay recorded traffic with proposed settings and compare with what happened."""
    from aiokafka.errors import KafkaError

    from handoff.config import load_settings
    from handoff.simulate import format_report, load_proposal, run_simulation

    try:
        account_id, raw = load_proposal(config_file, account)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    try:
        report = asyncio.run(run_simulation(load_settings(), account_id, raw, log_range,
                                            progress=not quiet))
    except LookupError as exc:
        raise click.ClickException(str(exc)) from None
    except KafkaError as exc:
        raise click.ClickException(f"Kafka: {exc}") from None
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    if as_json:
        click.echo(json.dumps(report.to_json(list_changed), indent=2, ensure_ascii=False))
    else:
        click.echo(format_report(report, list_changed))
