# -*- coding: utf-8 -*-
# Copyright: (c) 2026, praxis.upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The requirement SET of a pip requirements file, so pip runs only when that set changes.

`requirements_key(text)` is a digest of the normalised requirements: names per PEP 503
(`Foo_Bar` == `foo-bar`), extras and version specifiers sorted, markers with collapsed
whitespace; comments, blank lines, line continuations and the order of lines do not count.
Option lines (`-r other.txt`, `--index-url ...`, `-e path`) count as written (whitespace collapsed).
"""

from __future__ import annotations

import hashlib
import re
from typing import List

_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*(.*)$", re.S)
_SPEC = re.compile(r"\s*(===|==|!=|~=|<=|>=|<|>)\s*([^\s,]+)\s*")


def canonical_name(name: str) -> str:
    """PEP 503 normalised project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _logical_lines(text: str) -> List[str]:
    """Lines with comments removed and backslash continuations joined."""
    lines: List[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw
        if line.lstrip().startswith("#"):
            line = ""
        else:
            # pip: a comment starts at '#' preceded by whitespace
            line = re.split(r"\s+#", line, maxsplit=1)[0]
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = (pending + line).strip()
        pending = ""
        if line:
            lines.append(line)
    if pending.strip():
        lines.append(pending.strip())
    return lines


def normalise_line(line: str) -> str:
    """One requirement in canonical form (names, extras, specifiers, marker); options as written."""
    line = " ".join(line.split())
    if line.startswith("-") or "://" in line or line.startswith((".", "/")):
        return line
    requirement, _sep, marker = line.partition(";")
    match = _NAME.match(requirement)
    if not match:
        return line
    name, extras, rest = match.groups()
    out = canonical_name(name)
    if extras:
        names = sorted({canonical_name(e.strip()) for e in extras[1:-1].split(",") if e.strip()})
        out += "[%s]" % ",".join(names)
    rest = rest.strip()
    if rest.startswith("@"):
        out += " @ " + rest[1:].strip()
    elif rest:
        specs = []
        for part in rest.strip("()").split(","):
            spec = _SPEC.fullmatch(part)
            specs.append("%s%s" % spec.groups() if spec else " ".join(part.split()))
        out += ",".join(sorted(s for s in specs if s))
    marker = " ".join(marker.replace("'", '"').split())
    if marker:
        out += "; " + marker
    return out


def requirement_set(text: str) -> List[str]:
    """Sorted, de-duplicated canonical requirement lines of a requirements file's text."""
    return sorted({normalise_line(line) for line in _logical_lines(text)})


def requirements_key(text: str) -> str:
    """sha256 hex digest of the requirement set of `text` (see the module docstring)."""
    return hashlib.sha256("\n".join(requirement_set(text)).encode("utf-8")).hexdigest()


def requirements_file_key(path: str) -> str:
    """`requirements_key` of a file (read as UTF-8, undecodable bytes replaced)."""
    with open(path, "rb") as handle:
        return requirements_key(handle.read().decode("utf-8", "replace"))
