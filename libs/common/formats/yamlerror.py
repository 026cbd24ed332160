"""A YAML parse error as one line: where (line, column) and what, without PyYAML's excerpt of
the text and its caret, which take several lines of a log or a terminal."""

from __future__ import annotations

import yaml


def yaml_problem(err: yaml.YAMLError) -> str:
    """`line 3, column 5: expected ',' or ']', but got '<stream end>'`, or the error's text when
    it has no position."""
    if isinstance(err, yaml.MarkedYAMLError) and err.problem:
        mark = err.problem_mark or err.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        return f"{where}{err.problem}"
    return " ".join(str(err).split())
