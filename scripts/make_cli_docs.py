"""Write docs/cli.md, the ``bulk-panel`` reference, from the command's own parser: every pipeline
flag comes from a stage parameter (``bulk_panel.compute.stages``), its help from the parameter's
``doc=``, so the page cannot drift from the code (tests/test_cli.py checks it is current).

    python scripts/make_cli_docs.py            # rewrite docs/cli.md
    python scripts/make_cli_docs.py --check    # exit 1 when docs/cli.md is out of date
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "cli.md"


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _name(action: argparse.Action) -> str:
    if not action.option_strings:
        return f"`{action.metavar or action.dest}`"
    flags = ", ".join(f"`{o}`" for o in action.option_strings)
    takes = action.nargs != 0 and not isinstance(action, argparse.BooleanOptionalAction)
    return f"{flags} {action.metavar or action.dest.split('.')[-1].upper()}" if takes else flags


def reference() -> str:
    """The Markdown page for every ``bulk-panel`` command."""
    from bulk_panel.cli import make_parser

    parser = make_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {c.dest: c.help for c in commands._choices_actions}
    lines = [
        "# `bulk-panel` command reference",
        "",
        "Generated from the command's parser by `python scripts/make_cli_docs.py`; every pipeline flag",
        "is a stage parameter (`bulk_panel/compute/stages.py`) and its help is that parameter's doc.",
        "Exit status: 0 ok, 1 failure (one line saying why), 2 usage error.",
        "",
    ]
    lines += [f"- [`bulk-panel {name}`](#bulk-panel-{name}): {helps[name]}" for name in commands.choices]
    for name, sub in commands.choices.items():
        lines += ["", f"## bulk-panel {name}", "", _cell(sub.description or helps[name]), "",
                  "| argument | what it does |", "|---|---|"]
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            lines.append(f"| {_name(action)} | {_cell(action.help or '')} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only say whether docs/cli.md is current")
    args = parser.parse_args(argv)
    text = reference()
    if args.check:
        current = DOC.is_file() and DOC.read_text(encoding="utf-8") == text
        print(f"{DOC}: {'current' if current else 'out of date: run python scripts/make_cli_docs.py'}")
        return 0 if current else 1
    DOC.write_text(text, encoding="utf-8")
    print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
