"""`heatctl modes`: print the mode diagram, generated from the transition table (mermaid)."""

from __future__ import annotations

import argparse

from controller.core.modes import mermaid_diagram


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("modes", help="print the mode diagram (mermaid), generated from the transition table")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    print(mermaid_diagram())
    return 0
