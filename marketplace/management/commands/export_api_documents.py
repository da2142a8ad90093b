"""Writes the REST API's OpenAPI document and the socket's AsyncAPI document as JSON files: the
SDK's types are generated from them (sdk/scripts/generate.mjs) and its check compares them."""

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandParser

from project.api import api
from realtime.asyncapi import build_document


def render(document: dict) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


class Command(BaseCommand):
    help = "Write openapi.json and asyncapi.json into a directory (the SDK's sdk/schema/)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("directory", type=Path)

    def handle(self, *args, directory: Path, **options) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        documents = {
            "openapi.json": api.get_openapi_schema(),
            "asyncapi.json": build_document(),
        }
        for name, document in documents.items():
            (directory / name).write_text(render(document), encoding="utf-8")
            self.stdout.write(f"wrote {directory / name}")
