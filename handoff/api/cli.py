"""`handoff token` (API tokens, through Kafka) and `handoff config` (settings, through the API)."""

from __future__ import annotations

import asyncio
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
import yaml

from handoff.api.client import DEFAULT_URL, ApiError, Client
from handoff.config import load_settings

F = TypeVar("F", bound=Callable[..., Any])


# -- tokens ---------------------------------------------------------------------------------


@click.group("token")
def token() -> None:
    """API tokens: each stands for one directory user; only its hash is stored."""


@token.command("create")
@click.argument("user_id")
@click.option("--note", default="", help="what the token is for (shown by `token list`)")
def token_create(user_id: str, note: str) -> None:
    """Issue a token for USER_ID and print it (last line). It is not shown again."""
    from handoff.api.tokens import publish_token
    from streams.admin import ensure_topics

    settings = load_settings()
    if settings.create_topics:
        asyncio.run(ensure_topics(settings))
    secret, record = asyncio.run(publish_token(settings, user_id, note))
    click.echo(f"token {record.token_id} for user {user_id}; store it now, it is not shown again:",
               err=True)
    click.echo(secret)


@token.command("revoke")
@click.argument("tokens", nargs=-1)
@click.option("--user", "user_id", default=None, help="revoke every token of this user")
def token_revoke(tokens: tuple[str, ...], user_id: str | None) -> None:
    """Revoke tokens, given as the token itself or its id (or all of --user's)."""
    from handoff.api.tokens import read_tokens, revoke_tokens, token_id_of

    if not tokens and user_id is None:
        raise click.UsageError("give TOKEN or TOKEN_ID arguments, or --user USER_ID")
    settings = load_settings()
    ids: list[str] = []
    for given in tokens:
        token_id = token_id_of(given)
        if token_id is None:
            raise click.BadParameter(f"{given[:24]!r} is neither a token nor a token id",
                                     param_hint="TOKENS")
        ids.append(token_id)
    if user_id is not None:
        ids += [r.token_id for r in asyncio.run(read_tokens(settings)).values()
                if r.user_id == user_id]
    ids = sorted(set(ids))
    asyncio.run(revoke_tokens(settings, ids))
    for token_id in ids:
        click.echo(f"revoked {token_id}")
    click.echo(f"{len(ids)} tokens revoked")


@token.command("list")
@click.option("--user", "user_id", default=None)
def token_list(user_id: str | None) -> None:
    """The live tokens: id, user, when made, note (never the tokens themselves)."""
    from handoff.api.tokens import read_tokens

    for record in sorted(asyncio.run(read_tokens(load_settings())).values(),
                         key=lambda r: r.created_at):
        if user_id is None or record.user_id == user_id:
            click.echo(f"{record.token_id}  {record.user_id}  "
                       f"{record.created_at.isoformat()}  {record.note}".rstrip())


# -- settings -------------------------------------------------------------------------------


def api_options(fun: F) -> F:
    fun = click.option("--token", envvar="HANDOFF_API_TOKEN", default=None,
                       help="bearer token (default: $HANDOFF_API_TOKEN)")(fun)
    fun = click.option("--url", envvar="HANDOFF_API_URL", default=DEFAULT_URL, show_default=True,
                       help="a worker's web server (or $HANDOFF_API_URL)")(fun)
    return fun


def _client(url: str, token: str | None) -> Client:
    if not token:
        raise click.UsageError("no token: pass --token or set HANDOFF_API_TOKEN "
                               "(see `handoff token create USER_ID`)")
    return Client(url, token)


def _call(action: Callable[[], Any]) -> Any:
    try:
        return action()
    except ApiError as exc:
        for line in exc.lines():
            click.echo(line, err=True)
        sys.exit(1)


# The first line `config get` writes: which account and version the file was made from.
_HEADER = re.compile(r"^# handoff settings of account (?P<account>\S+), version (?P<version>\d+)\b")
_BODY_KEYS = {"account_id", "version", "config", "actor", "event_id", "updated_at"}


def read_config_file(path: Path) -> dict[str, Any]:
    """A YAML (or JSON) file holding the config object, or a config request with `config:`."""
    return read_config_file_version(path)[0]


def read_config_file_version(path: Path) -> tuple[dict[str, Any], tuple[str, int] | None]:
    """The config in FILE and the (account, version) it was read from, when the file says:
    the header line of `config get`, or the `account_id` and `version` of `config get --json`.
    """
    try:
        text = path.read_text(encoding="utf-8")
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise click.BadParameter(f"{path}: not YAML: {exc}", param_hint="FILE") from None
    base: tuple[str, int] | None = None
    header = _HEADER.match(text)
    if header is not None:
        base = (header["account"], int(header["version"]))
    if data is None:
        data = {}
    if isinstance(data, dict) and "config" in data and set(data) <= _BODY_KEYS \
            and isinstance(data["config"], dict):
        if isinstance(data.get("version"), int) and isinstance(data.get("account_id"), str):
            base = (data["account_id"], data["version"])
        data = data["config"]
    if not isinstance(data, dict):
        raise click.BadParameter(f"{path}: expected a mapping of settings (custom_triggers, "
                                 "process, routing, messages, unassigned_chat)",
                                 param_hint="FILE")
    return data, base


def _yaml(config: dict[str, Any]) -> str:
    return yaml.safe_dump(config, sort_keys=False, allow_unicode=True, width=100)


@click.group("config")
def config() -> None:
    """An account's handoff settings, through a worker's HTTP API."""


@config.command("get")
@click.argument("account_id")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="write the YAML here instead of printing it")
@click.option("--json", "as_json", is_flag=True, help="the API's answer as JSON")
@api_options
def config_get(account_id: str, out: Path | None, as_json: bool, url: str,
               token: str | None) -> None:
    """The current settings as YAML, ready to edit and `config set`."""
    body = _call(lambda: _client(url, token).get_settings(account_id))
    if as_json:
        text = json.dumps(body, indent=2, ensure_ascii=False) + "\n"
    else:
        who = f", saved by {body['actor']} at {body['updated_at']}" if body.get("actor") else \
            " (the defaults)"
        text = (f"# handoff settings of account {account_id}, version {body['version']}{who}\n"
                + _yaml(body["config"]))
    if out is None:
        click.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")
        click.echo(f"wrote {out} (version {body['version']})")


@config.command("set")
@click.argument("account_id")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True,
              help="save even if the settings changed since FILE was read with `config get`")
@api_options
def config_set(account_id: str, file: Path, force: bool, url: str, token: str | None) -> None:
    """Save the settings in FILE; prints the new version once the stream accepted them.

    A FILE written by `config get` names the version it was read from: it is saved only if
    that is still the current version (If-Match), so another editor's save is not overwritten
    unnoticed. --force saves it anyway.
    """
    settings, base = read_config_file_version(file)
    based_on = None if force or base is None or base[0] != account_id else base[1]
    client = _client(url, token)
    try:
        body = client.put_settings(account_id, settings, if_version=based_on)
    except ApiError as exc:
        for line in exc.lines():
            click.echo(line, err=True)
        if exc.status == 412:
            current = exc.body
            who = f" by {current.get('actor')} at {current.get('updated_at')}" \
                if current.get("actor") else ""
            click.echo(f"{file} was read from version {based_on}; account {account_id} is at "
                       f"version {current.get('version')}{who}. Get it again "
                       f"(`handoff config get {account_id} --out {file}`) and redo your "
                       "change, or pass --force to overwrite it.", err=True)
        sys.exit(1)
    click.echo(f"saved: account {account_id}, version {body['version']}")


@config.command("validate")
@click.argument("account_id")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@api_options
def config_validate(account_id: str, file: Path, url: str, token: str | None) -> None:
    """Check FILE against the account's directory without saving it."""
    settings = read_config_file(file)
    body = _call(lambda: _client(url, token).validate(account_id, settings))
    click.echo(f"valid for account {account_id}; it would be saved as:")
    click.echo(_yaml(body["config"]), nl=False)


@config.command("history")
@click.argument("account_id")
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="the API's answer as JSON")
@api_options
def config_history(account_id: str, limit: int, as_json: bool, url: str,
                   token: str | None) -> None:
    """Accepted versions, newest first."""
    body = _call(lambda: _client(url, token).history(account_id, limit))
    if as_json:
        click.echo(json.dumps(body, indent=2, ensure_ascii=False))
        return
    for v in body["versions"]:
        cfg = v["config"]
        routing = cfg["routing"]
        where = (f"workflow {routing['workflow_id']} in {routing['destination']}"
                 if routing["mode"] == "workflow" else f"direct to {routing.get('destination')}")
        click.echo(f"v{v['version']}  {v['updated_at']}  by {v['actor']}  {cfg['process']}, "
                   f"{where}, {len(cfg['custom_triggers'])} custom triggers")
    if not body["versions"]:
        click.echo(f"no saved versions: account {account_id} uses the defaults")
