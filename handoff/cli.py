"""The `handoff` command: worker, local Kafka, topics, schemas, triggers, demo and replay.

click does the parsing and help text, so each command is a small function over the library.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import click

from handoff.api.cli import config as config_group
from handoff.api.cli import token as token_group
from handoff.audit_cli import audit, range_options, simulate
from handoff.config import load_settings
from handoff.ops.cli import config_check


@click.group()
def main() -> None:
    """Decide when the AI customer agent hands a conversation to a human, and to whom."""


@main.command()
def worker() -> None:
    """Run the stream processor (several may run at once; they share partitions)."""
    from handoff.worker import run_worker

    run_worker(load_settings())


@main.group()
def kafka() -> None:
    """A local single-node Apache Kafka (KRaft) for development and tests."""


@kafka.command("start")
@click.option("--port", type=int, default=None, help="listener port (default: a free one)")
def kafka_start(port: int | None) -> None:
    """Start it (downloading the jars once) and print the bootstrap address last."""
    from handoff import localkafka

    click.echo(localkafka.start(port=port))


@kafka.command("stop")
def kafka_stop() -> None:
    """Stop the local broker."""
    from handoff import localkafka

    click.echo("stopped" if localkafka.stop() else "not running")


@kafka.command("status")
def kafka_status() -> None:
    """Print the bootstrap address if the local broker runs; exit 1 otherwise."""
    from handoff import localkafka

    address = localkafka.status()
    if address is None:
        sys.exit(1)
    click.echo(address)


@main.group()
def topics() -> None:
    """The contract's topics."""


@topics.command("create")
@click.option("--partitions", type=click.IntRange(1, 1024), default=None)
@click.option("--replication-factor", type=click.IntRange(1, 16), default=None)
def topics_create(partitions: int | None, replication_factor: int | None) -> None:
    """Create missing topics (compacted where the contract says) with the asked settings."""
    from streams.admin import ensure_topics

    created = asyncio.run(ensure_topics(load_settings(), partitions, replication_factor))
    for name in created:
        click.echo(f"created {name}")
    click.echo(f"{len(created)} topics created")


@main.command()
@click.option("--check", is_flag=True, help="fail if the committed schemas drifted")
def schemas(check: bool) -> None:
    """Regenerate the JSON Schema files in schemas/json from the models."""
    from schemas.generate import drift, write

    if check:
        stale = drift()
        if stale:
            raise click.ClickException("schemas drifted from the models: " + ", ".join(stale))
        click.echo("schemas match the models")
    else:
        write()
        click.echo("schemas written")


@main.command("eval-triggers")
@click.argument("csv_files", nargs=-1, required=True,
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="one JSON object instead of a table")
@click.option("--predictions", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="write each row with its prediction to this CSV")
@click.option("--by-source", is_flag=True, help="add a table per source (dataset)")
@click.option("--leave-one-source-out", "held_out", is_flag=True,
              help="score each source with a second stage trained without it (needs scikit-learn)")
@click.option("--stage2/--no-stage2", default=True, show_default=True,
              help="with the statistical second stage, or the phrase files alone")
def eval_triggers(
    csv_files: tuple[Path, ...], as_json: bool, predictions: Path | None, by_source: bool,
    held_out: bool, stage2: bool,
) -> None:
    """Precision, recall and false positives of the human-request detector on labelled CSVs.

    Rows are counted per language and per source (the ``source`` column, else
    the file name).  --leave-one-source-out retrains the second stage's weights
    for each source without it (its training inputs plus these rows, less that
    source; the shipped threshold is kept) and scores that source with it; the
    phrase files are the same in every fold.
    """
    from handoff.triggers.evaluate import (
        RowLike,
        evaluate,
        format_held_out,
        leave_one_source_out,
        read_rows,
        source_group,
        write_predictions,
    )
    from handoff.triggers.human_request import HumanRequestDetector

    dirs = load_settings().human_request_dirs
    detector = HumanRequestDetector.load(dirs, stage2=stage2)
    rows = [row for csv_file in csv_files for row in read_rows(csv_file)]
    report = evaluate(rows, detector)
    if predictions is not None:
        write_predictions(predictions, rows, detector)
    folds = None
    if held_out:
        if detector.stage2 is None:
            def build(training: list[RowLike]) -> HumanRequestDetector:
                return detector  # nothing in the phrase files is fitted to rows
        else:
            from handoff.triggers import train_stage2

            groups = {source_group(row.source) for row in rows}
            inputs = train_stage2.default_rows()
            threshold = detector.stage2.threshold

            def build(training: list[RowLike]) -> HumanRequestDetector:
                kept = {source_group(row.source) for row in train_stage2.as_rows(training)}
                without = groups - kept
                fold = [row for row in dict.fromkeys([*inputs, *train_stage2.as_rows(training)])
                        if source_group(row.source) not in without]
                click.echo(f"  training without {', '.join(sorted(without))} ...", err=True)
                model = train_stage2.fit(train_stage2.as_rows(fold), detector.with_stage2(None),
                                         threshold=threshold)
                return detector.with_stage2(model)

        folds = leave_one_source_out(rows, build)
    if as_json:
        data = report.to_json()
        if folds is not None:
            data["leave_one_source_out"] = {name: c.to_json() for name, c in folds.items()}
        click.echo(json.dumps(data, indent=2))
    else:
        click.echo(report.format_table(by_source=by_source))
        if folds is not None:
            click.echo("\nleave one source out (each source scored by a detector trained without it)")
            click.echo(format_held_out(folds))


@main.command()
@click.option("--seconds", type=float, default=20.0, help="how long to show handoffs")
@click.option("--keep-kafka", is_flag=True, help="leave the local broker running afterwards")
def demo(seconds: float, keep_kafka: bool) -> None:
    """Start a local broker and a worker, send sample multi-channel traffic, print handoffs."""
    from handoff.demo import run_demo

    sys.exit(run_demo(seconds=seconds, keep_kafka=keep_kafka))


@main.group()
def directory() -> None:
    """Users, teams, inboxes and help desks."""


@directory.command("load")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def directory_load(file: Path) -> None:
    """Publish a directory (and optional workflows) from a YAML file to the directory topic."""
    from handoff.publish import load_yaml_file, publish_fixture

    counts = asyncio.run(publish_fixture(load_settings(), load_yaml_file(file)))
    for topic, count in counts.items():
        click.echo(f"{count} records -> {topic}")


@main.group()
def workflow() -> None:
    """Ticket-based workflows."""


@workflow.command("template")
@click.argument("name", type=click.Choice(["reassign-by-channel"]))
@click.option("--account", default="acme", show_default=True)
@click.option("--workflow-id", default="wf-reassign", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None)
def workflow_template(name: str, account: str, workflow_id: str, out: Path | None) -> None:
    """Write the "Reassign tickets for customer agent handoff" template as YAML, ready to edit."""
    from handoff.templates import reassign_by_channel

    text = reassign_by_channel(account, workflow_id)
    if out is None:
        click.echo(text, nl=False)
    else:
        out.write_text(text)
        click.echo(f"wrote {out}")


@main.command()
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="write {topic, key, value} lines here")
@click.option("--to-prefix", default=None, help="publish the outputs under this topic prefix")
@range_options
def replay(out: Path | None, to_prefix: str | None, log_range: Any) -> None:
    """Re-run the decision core over the sequenced input log (from its start; a range limits
    which outputs are written, state is rebuilt from the start)."""
    from handoff.replay import run_replay

    if (out is None) == (to_prefix is None):
        raise click.UsageError("give exactly one of --out FILE.jsonl or --to-prefix P")
    count = asyncio.run(run_replay(load_settings(), out=out, to_prefix=to_prefix,
                                   log_range=log_range, progress=True))
    click.echo(f"{count} output records")


# Command groups that live in their own modules register here, one line each.
main.add_command(audit)
main.add_command(simulate)
main.add_command(config_check)
main.add_command(token_group)
main.add_command(config_group)


if __name__ == "__main__":
    main()
