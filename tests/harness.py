"""A local fleet of fixture installations driven by the real ansible-playbook.

Used by the demo (`make demo`), the benchmark (`bench/run`) and the integration tests, so all three
exercise the collection exactly as an operator does: an inventory, `playbooks/*.yml`, extra vars.
"""
from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from tests.fixtures import praxis_fixture as fx

REPO = Path(__file__).resolve().parent.parent
COLLECTIONS = REPO / ".build" / "collections"
BIN = Path(sys.executable).parent


def ansible_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
        "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        "PRAXIS_WHEELHOUSE": str(fx.wheelhouse()),
    })
    env.update(extra or {})
    return env


@dataclass
class Host:
    name: str
    project: Path
    install: dict[str, Any]
    http: bool = False

    @property
    def home(self) -> Path:
        return self.project / ".praxis-os"

    def state(self) -> dict[str, Any] | None:
        path = self.home / ".cache" / "facts.d" / "praxis_upgrade.fact"
        return json.loads(path.read_text()) if path.exists() else None

    def version_commit(self) -> str:
        for line in (self.home / "VERSION.txt").read_text().splitlines():
            if line.startswith("commit="):
                return line.split("=", 1)[1]
        return ""


@dataclass
class Fleet:
    """Fixture installations under `workdir`, one inventory alias each, local connection."""

    workdir: Path
    sources: dict[str, Path] = field(default_factory=dict)
    hosts: list[Host] = field(default_factory=list)

    def source(self, version: str) -> Path:
        """A source checkout at `version` (one repository per version, each with full history)."""
        if version not in self.sources:
            dest = self.workdir / "sources" / version
            fx.make_source(dest, version)
            self.sources[version] = dest
        return self.sources[version]

    def add(self, name: str, version: str = "v1", user_content: bool = True, http: bool = False,
            mode: str = "fixture") -> Host:
        """`mode="docs"`: installed as upstream's installation docs do (no base manifest, no VERSION.txt)."""
        project = self.workdir / "projects" / name
        info = fx.install(self.source(version), project, fx.wheelhouse(), user_content=user_content, mode=mode)
        host = Host(name, project, info, http)
        if http:
            fx.start_http_server(project)
        self.hosts.append(host)
        return host

    def add_project(self, name: str, files: dict[str, str] | None = None, http: bool = False) -> Host:
        """A project with no installation yet (for install.yml), holding `files` ({project rel path: text})."""
        project = self.workdir / "projects" / name
        project.mkdir(parents=True)
        for rel, text in (files or {}).items():
            (project / rel).parent.mkdir(parents=True, exist_ok=True)
            (project / rel).write_text(text, encoding="utf-8")
        host = Host(name, project, {}, http)
        self.hosts.append(host)
        return host

    def inventory(self, **group_vars: Any) -> Path:
        path = self.workdir / "inventory.yml"
        hosts = {
            h.name: {"ansible_connection": "local", "praxis_project_dir": str(h.project)} for h in self.hosts
        }
        variables = {
            "ansible_python_interpreter": sys.executable,
            "praxis_pip_args": ["--no-index", "--find-links", str(fx.wheelhouse())],
            "praxis_report_dir": str(self.workdir / "reports"),
            "praxis_health_timeout": 30,
        }
        variables.update(group_vars)
        path.write_text(json.dumps({"praxis": {"hosts": hosts, "vars": variables}}, indent=2))
        return path

    def playbook(self, name: str, *args: str, extra: dict[str, Any] | None = None,
                 env: dict[str, str] | None = None, timeout: float = 600, **group_vars: Any
                 ) -> subprocess.CompletedProcess:
        command = [str(BIN / "ansible-playbook"), "-i", str(self.inventory(**group_vars)),
                   str(REPO / "playbooks" / name), *args]
        if extra:
            command += ["-e", json.dumps(extra)]
        # its own session: a fault-injection point kills the whole process group of the run
        return subprocess.run(command, cwd=self.workdir, env=ansible_env(env), text=True,
                              capture_output=True, timeout=timeout, check=False, start_new_session=True)

    def upgrade(self, version: str = "v2", *args: str, **kwargs: Any) -> subprocess.CompletedProcess:
        extra = dict(kwargs.pop("extra", None) or {}, praxis_source=str(self.source(version)))
        return self.playbook("upgrade.yml", *args, extra=extra, **kwargs)

    def install(self, version: str = "v1", *args: str, **kwargs: Any) -> subprocess.CompletedProcess:
        extra = dict(kwargs.pop("extra", None) or {}, praxis_source=str(self.source(version)))
        return self.playbook("install.yml", *args, extra=extra, **kwargs)

    def reports(self) -> list[Path]:
        return sorted((self.workdir / "reports").glob("upgrade-*.json"), key=lambda p: p.stat().st_mtime)

    def last_report(self) -> dict[str, Any]:
        return json.loads(self.reports()[-1].read_text())

    def stop(self) -> None:
        """Stop every server the fleet's projects run (by their verified state-file pids)."""
        for host in self.hosts:
            try:
                fx.stop_server(host.project)
            except fx.FixtureError:
                pass


def snapshot(root: Path, exclude: Iterable[str] = ()) -> dict[str, tuple[str, int]]:
    """{relative path: (sha256 or link target, mode)} of everything below `root` but `exclude` prefixes."""
    exclude = tuple(exclude)
    result: dict[str, tuple[str, int]] = {}
    for current, dirs, files in os.walk(root):
        for name in sorted(dirs + files):
            path = Path(current) / name
            rel = path.relative_to(root).as_posix()
            if rel.startswith(exclude) or "__pycache__" in rel:
                continue
            info = path.lstat()
            if stat.S_ISLNK(info.st_mode):
                result[rel] = ("-> " + os.readlink(path), stat.S_IMODE(info.st_mode))
            elif stat.S_ISDIR(info.st_mode):
                result[rel + "/"] = ("dir", stat.S_IMODE(info.st_mode))
            else:
                result[rel] = (hashlib.sha256(path.read_bytes()).hexdigest(), stat.S_IMODE(info.st_mode))
    return result


# Runtime paths that legitimately change on every run and are excluded from "nothing changed" proofs.
RUNTIME = (".praxis-os/.cache", ".praxis-os/.backups", ".praxis-os/.mcp_server_state.json")
