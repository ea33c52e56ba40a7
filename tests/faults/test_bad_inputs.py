"""Bad inputs: each must be refused before any change (the whole tree, strictly: lock, facts, backups
included) with a message naming the cause (key words) and a next step."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any, Callable

import pytest

from tests.faults import lib

pytestmark = pytest.mark.slow


def _git(repo: Path, *args: str) -> None:
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@t")
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, env=env)


def _source_copy(case: lib.Case, name: str) -> Path:
    dest = case.dir / "bad-sources" / name
    shutil.copytree(case.sources["v2"], dest, symlinks=True)
    return dest


# --- the setups: (case, installation, prepared) -> (playbook, extra vars, group vars) ---------------------
Setup = Callable[[lib.Case, lib.Install, lib.Prepared], tuple[str, dict[str, Any], dict[str, Any]]]


def var(**values: Any) -> Setup:
    return lambda case, inst, prepared: ("upgrade.yml", {"praxis_source": str(case.sources["v2"]), **values}, {})


def source(path: Callable[[lib.Case], str]) -> Setup:
    return lambda case, inst, prepared: ("upgrade.yml", {"praxis_source": path(case)}, {})


def dirty(case: lib.Case) -> str:
    dest = _source_copy(case, "dirty")
    (dest / "universal" / "standards" / "scratch.md").write_text("# not committed\n")
    return str(dest)


def not_praxis(case: lib.Case) -> str:
    dest = case.dir / "bad-sources" / "empty"
    dest.mkdir(parents=True)
    _git(dest, "init", "-q")
    _git(dest, "commit", "-q", "--allow-empty", "-m", "empty")
    return str(dest)


def escaping_link(case: lib.Case) -> str:
    dest = _source_copy(case, "link")
    (dest / "universal" / "standards" / "leak.md").symlink_to("/etc/passwd")
    _git(dest, "add", "universal/standards/leak.md")
    _git(dest, "commit", "-q", "-m", "a link leaving the source")
    return str(dest)


def no_source(case: lib.Case, inst: lib.Install, prepared: lib.Prepared) -> tuple[str, dict[str, Any], dict[str, Any]]:
    return "upgrade.yml", {}, {}


def project_dir(value: Callable[[lib.Case, lib.Install], str]) -> Setup:
    return lambda case, inst, prepared: ("upgrade.yml", {"praxis_source": str(case.sources["v2"]),
                                                         "praxis_project_dir": value(case, inst)}, {})


def target(change: Callable[[lib.Install, lib.Prepared], None]) -> Setup:
    def setup(case: lib.Case, inst: lib.Install, prepared: lib.Prepared) -> tuple[str, dict[str, Any], dict[str, Any]]:
        change(inst, prepared)
        return "upgrade.yml", {"praxis_source": str(case.sources["v2"])}, {}
    return setup


def write(rel: str, data: bytes) -> Callable[[lib.Install, lib.Prepared], None]:
    def change(inst: lib.Install, prepared: lib.Prepared) -> None:
        path = inst.home / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return change


def base_manifest_entry(rel: str) -> Callable[[lib.Install, lib.Prepared], None]:
    def change(inst: lib.Install, prepared: lib.Prepared) -> None:
        path = inst.home / ".cache" / "base-manifest.json"
        data = json.loads(path.read_text())
        data["files"][rel] = "0" * 64
        path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    return change


def link_outside(inst: lib.Install, prepared: lib.Prepared) -> None:
    (inst.home / "standards" / "universal" / "outside-link.md").symlink_to("/etc/hostname")


def non_utf8_name(inst: lib.Install, prepared: lib.Prepared) -> None:
    path = os.path.join(os.fsencode(inst.home / "standards" / "universal"), b"caf\xe9-notes.md")
    with open(path, "wb") as handle:
        handle.write(b"# notes\n")


def broken_venv(inst: lib.Install, prepared: lib.Prepared) -> None:
    (inst.home / "venv" / "bin" / "python").unlink()


def home_symlink(case: lib.Case, inst: lib.Install, prepared: lib.Prepared) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """`.praxis-os` is a symlink to another project's installation (which must stay untouched too)."""
    other = case.install(prepared.old, http=False, alias="other")
    shutil.rmtree(inst.home)
    inst.home.symlink_to(other.home)
    return "upgrade.yml", {"praxis_source": str(case.sources["v2"])}, {}


def not_installation(case: lib.Case, inst: lib.Install, prepared: lib.Prepared) -> tuple[str, dict[str, Any], dict[str, Any]]:
    empty = case.dir / "plain-project"
    empty.mkdir()
    (empty / "README.md").write_text("# a project without prAxIs OS\n")
    return "upgrade.yml", {"praxis_source": str(case.sources["v2"]), "praxis_project_dir": str(empty)}, {}


def rollback_named(name: Callable[[lib.Case, lib.Prepared], str]) -> Setup:
    return lambda case, inst, prepared: ("rollback.yml", {"praxis_backup_name": name(case, prepared)}, {})


def other_backup(case: lib.Case, prepared: lib.Prepared) -> str:
    backups = sorted((prepared.ref / lib.HOME / ".backups").iterdir())
    return str(backups[-1])


# case -> (setup, cause key words ("a|b": either))
CASES: dict[str, tuple[Setup, tuple[str, ...]]] = {
    "source-relative": (source(lambda c: "sources/v2"), ("relative|not absolute",)),
    "source-missing": (source(lambda c: str(c.dir / "no-such-checkout")), ("no-such-checkout",)),
    "source-dirty": (source(dirty), ("scratch.md|uncommitted|dirty|not clean",)),
    "source-not-praxis": (source(not_praxis), ("mcp_server|not a prAxIs|layout",)),
    "source-link-outside": (source(escaping_link), ("leak.md",)),
    "source-unset": (no_source, ("praxis_source",)),
    "var-conflict-policy-typo-value": (var(praxis_conflict_policy="keep-local"), ("praxis_conflict_policy",)),
    "var-typo-conflict-polcy": (var(praxis_conflict_polcy="take_upstream"), ("praxis_conflict_polcy",
                                                                             "praxis_conflict_policy")),
    "var-typo-server-mod": (var(praxis_server_mod="process"), ("praxis_server_mod", "praxis_server_mode")),
    "var-keep-backups-negative": (var(praxis_keep_backups=-1), ("praxis_keep_backups",)),
    "var-keep-backups-word": (var(praxis_keep_backups="three"), ("praxis_keep_backups",)),
    "var-health-timeout-zero": (var(praxis_health_timeout=0), ("praxis_health_timeout",)),
    "var-health-timeout-negative": (var(praxis_health_timeout=-5), ("praxis_health_timeout",)),
    "var-serial-word": (var(praxis_serial="abc"), ("serial",)),
    "var-serial-negative": (var(praxis_serial=-1), ("serial",)),
    "var-pip-args-string": (var(praxis_pip_args="--no-index"), ("praxis_pip_args",)),
    "var-server-mode-unknown": (var(praxis_server_mode="bogus"), ("praxis_server_mode",)),
    "var-min-tools-word": (var(praxis_min_tools="many"), ("praxis_min_tools",)),
    "var-lock-stale-after-word": (var(praxis_lock_stale_after="soon"), ("praxis_lock_stale_after",)),
    "var-break-lock-word": (var(praxis_break_lock="maybe"), ("praxis_break_lock",)),
    "var-server-env-string": (var(praxis_server_env="HF_HOME=/tmp"), ("praxis_server_env",)),
    "var-max-fail-percentage-150": (var(praxis_max_fail_percentage=150), ("praxis_max_fail_percentage",)),
    "var-home-name-with-path": (var(praxis_home_name="../elsewhere"), ("praxis_home_name",)),
    "project-missing": (project_dir(lambda c, i: str(c.dir / "does-not-exist")), ("does-not-exist",)),
    "project-relative": (project_dir(lambda c, i: "h/app"), ("relative|not absolute",)),
    "project-not-installation": (not_installation, (".praxis-os",)),
    "home-symlink-to-other-install": (home_symlink, ("symlink",)),
    "state-corrupt": (target(write(".cache/facts.d/praxis_upgrade.fact", b"{not json")), ("praxis_upgrade.fact",)),
    "lock-corrupt": (target(write(".upgrade-lock", b"\x00garbage")), (".upgrade-lock",)),
    "base-manifest-corrupt": (target(write(".cache/base-manifest.json", b"[1, 2")), ("base-manifest",)),
    "base-manifest-dotdot": (target(base_manifest_entry("../../etc/passwd")), ("base-manifest", "..")),
    "base-manifest-absolute": (target(base_manifest_entry("/etc/passwd")), ("/etc/passwd",)),
    "framework-link-outside": (target(link_outside), ("outside-link.md",)),
    "framework-non-utf8-name": (target(non_utf8_name), ("-notes.md",)),
    "venv-python-missing": (target(broken_venv), ("venv",)),
    "backup-name-other-installation": (rollback_named(other_backup), ("praxis_backup_name",)),
    "backup-name-dotdot": (rollback_named(lambda c, p: "../../etc"), ("praxis_backup_name",)),
    "backup-name-unknown": (rollback_named(lambda c, p: "2020-01-01-000000"), ("2020-01-01-000000",)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input(name: str, case: lib.Case, prepared: lib.Prepared, conclude: Any) -> None:
    setup, cause = CASES[name]
    inst = case.install(prepared.old, http=False)
    playbook, extra, group_vars = setup(case, inst, prepared)
    watched = list(case.installs)
    before = {i.name: lib.manifest(i.project, strict=True) for i in watched}
    run = case.run(playbook, None, extra=extra, installs=[inst], **group_vars)
    verdict = lib.refused(case, inst, before[inst.name], run, cause)
    for other in watched:
        if other is not inst:
            changed = lib.diff(before[other.name], lib.manifest(other.project, strict=True))
            if changed:
                verdict.end_state = "CHANGED"
                verdict.problems.append(f"{other.name} changed: {', '.join(changed[:6])}")
    shown = {k: v for k, v in extra.items() if k != "praxis_source" or name.startswith("source")}
    conclude(f"{name}: {playbook} {json.dumps(shown)[:90] if shown else ''}".strip(), "none (must refuse)", verdict,
             note=f"exit {run.returncode}")
