"""`heatctl schema`: print the JSON schema of the site configuration, generated from the models."""

from __future__ import annotations

import argparse
import json

from controller.site.models import SiteConfig


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("schema", help="print the site configuration's JSON schema")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    print(json.dumps(SiteConfig.model_json_schema(mode="validation"), indent=2, sort_keys=True))
    return 0
