"""The `heatctl` command. Each verb lives in its own module under controller/cli/verbs/.

A verb module has `register(subparsers)` (adds its parser, sets `func`) and its `func(args) -> int`.
Errors reach the operator as one line on stderr and an exit code (see EXIT_CODES), never as a
traceback.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import sys

from controller import __version__

EXIT_CODES = """\
exit codes:
  0  ok
  1  refused or failed (a bad config, a refused change, a failed check; `status --check`: a trip
     is latched or the mode is safe_degrade)
  2  usage (bad arguments)
  3  the daemon is unreachable (no socket, or nothing listening on it)
"""

# Verb modules, in the order `heatctl --help` lists them. A module that is missing is skipped, so
# that verbs can land one at a time.
VERB_MODULES = [
    "controller.cli.verbs.check_config",
    "controller.cli.verbs.schema",
    "controller.cli.verbs.modes",
    "controller.cli.verbs.simulate",
    "controller.cli.verbs.cost",
    "controller.cli.verbs.sweep",
    "controller.cli.verbs.points",
    "controller.cli.verbs.sim_plant",
    "controller.cli.verbs.demo",
    "controller.cli.verbs.run",
    "controller.cli.verbs.status",
    "controller.cli.verbs.mode",
    "controller.cli.verbs.hold",
    "controller.cli.verbs.release",
    "controller.cli.verbs.override",
    "controller.cli.verbs.ack",
    "controller.cli.verbs.alarms",
    "controller.cli.verbs.shelve",
    "controller.cli.verbs.unshelve",
    "controller.cli.verbs.trip_test",
    "controller.cli.verbs.events",
    "controller.cli.verbs.config_history",
    "controller.cli.verbs.report",
    "controller.cli.verbs.envelope",
    "controller.cli.verbs.plan",
    "controller.cli.verbs.commission",
    "controller.cli.verbs.fleet",
    "controller.cli.verbs.completion",
]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, as argparse does, but no usage dump
        sys.stderr.write(f"heatctl: {_with_suggestion(message, self)} (see '{self.prog} --help')\n")
        raise SystemExit(2)


def _with_suggestion(message: str, parser: argparse.ArgumentParser) -> str:
    """"invalid choice: 'stauts'" gets "did you mean 'status'?" (difflib, the closest verb only)."""
    if "invalid choice: " not in message:
        return message
    wrong = message.split("invalid choice: ", 1)[1].split(" ", 1)[0].strip("'\"")
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            close = difflib.get_close_matches(wrong, list(action.choices), n=1, cutoff=0.6)
            if close:
                return f"unknown verb {wrong!r}; did you mean {close[0]!r}?"
            return f"unknown verb {wrong!r}"
    return message


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="heatctl", description="Supervisory controller for data-centre heat reuse.",
                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXIT_CODES)
    parser.add_argument("--version", action="version", version=f"heatctl {__version__}")
    subparsers = parser.add_subparsers(dest="verb", metavar="VERB", parser_class=_Parser)
    for name in VERB_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from controller.site.loader import ConfigError

    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        # A bad site config (or cost model, or plan) in any verb: one line per problem, exit 1.
        for line in exc.problems:
            sys.stderr.write(line + "\n")
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `heatctl ... | head`: the reader went away; that is not an error worth a traceback.
        import os
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    raise SystemExit(main())
