"""The help formatter of every ``prp`` command: plain text, with every option's default.

Rules: descriptions are the subcommand modules' docstrings, written in reStructuredText for the
code's readers; ``--help`` shows them as plain text (``literal``, :role:`target` and
**strong** lose their markup) with their line breaks kept. Every option's help ends with its
default: ``(default: X)`` is appended unless the help already names its default (options whose
default is None must say what None means), flags show ``(default: off)``.
"""

from __future__ import annotations

import argparse
import copy
import re

_ROLE = re.compile(r":[a-z]+(?::[a-z]+)?:`~?([^`]+)`")
_LITERAL = re.compile(r"``([^`]+)``")
_STRONG = re.compile(r"\*\*([^*]+)\*\*")


def plain(text: str) -> str:
    """``text`` without reStructuredText inline markup."""
    return _STRONG.sub(r"\1", _LITERAL.sub(r"\1", _ROLE.sub(r"\1", text)))


def _shown(default: object) -> str:
    """A default as help shows it (``%`` escaped for argparse)."""
    if isinstance(default, (list, tuple)):
        text = ",".join(map(str, default)) or "none"
    else:
        text = "none" if default == "" else str(default)
    return text.replace("%", "%%")


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Plain-text descriptions as written, and each option's default."""

    def _format_text(self, text: str) -> str:
        return super()._format_text(plain(text))

    def _format_action(self, action: argparse.Action) -> str:
        shown = action.option_strings and action.help != argparse.SUPPRESS
        if shown and not (action.help or "").strip() and action.default not in (None, argparse.SUPPRESS):
            action = copy.copy(action)  # an option written without help still shows its default
            action.help = f"(default: {_shown(action.default)})"
        return super()._format_action(action)

    def _get_help_string(self, action: argparse.Action) -> str:
        text = plain(action.help or "")
        if (action.help == argparse.SUPPRESS or not action.option_strings or action.required
                or isinstance(action, argparse._HelpAction) or "default" in text.lower()):
            return text
        if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
            return f"{text} (default: {'off' if action.default is False else 'on'})"
        if action.default is None or action.default is argparse.SUPPRESS:
            return text
        return f"{text} (default: {_shown(action.default)})"
