"""Write the JSON Schema of every topic into `schemas/json/`; `--check` fails on drift."""

from __future__ import annotations

import sys
from pathlib import Path

import orjson

from schemas.topics import SPECS, json_schema

SCHEMA_DIR = Path(__file__).parent / "json"


def rendered() -> dict[str, bytes]:
    """File name to bytes for every topic's schema, as they should be committed."""
    out: dict[str, bytes] = {}
    for topic in SPECS:
        schema = {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": str(topic),
            "x-kafka-key": SPECS[topic].key,
            **json_schema(topic),
        }
        out[f"{topic}.schema.json"] = (
            orjson.dumps(schema, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"
        )
    return out


def drift() -> list[str]:
    """Names of committed schema files that differ from the models (or are missing/extra)."""
    want = rendered()
    have = {p.name: p.read_bytes() for p in SCHEMA_DIR.glob("*.schema.json")}
    return sorted(name for name in want.keys() | have.keys() if want.get(name) != have.get(name))


def write() -> None:
    """Regenerate the committed schema files from the models."""
    SCHEMA_DIR.mkdir(exist_ok=True)
    for stale in SCHEMA_DIR.glob("*.schema.json"):
        stale.unlink()
    for name, body in rendered().items():
        (SCHEMA_DIR / name).write_bytes(body)


if __name__ == "__main__":
    if "--check" in sys.argv:
        stale = drift()
        if stale:
            sys.exit("schemas drifted from the models, run `handoff schemas`: " + ", ".join(stale))
    else:
        write()
