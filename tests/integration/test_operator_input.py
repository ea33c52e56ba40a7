"""Every operator input is checked before the lock and before any change (issue 8 items 4, 5, 9, 10, 11;
issue 9 day-one bugs 1-3). Bad values are batched: many hosts in one real ansible-playbook run, each with
one bad variable, all named in one refusal; every project judged by a full-tree hash afterwards."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.harness import BIN, REPO, ansible_env
from tests.integration.conftest import NO_CHANGE, fx, output, snapshot, tree_diff

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def fleet(make_fleet: Any) -> Any:
    fleet = make_fleet("opinput")
    fleet.add("h", "v1")
    fleet.source("v2")
    return fleet


def flat(text: str) -> str:
    # the YAML callback wraps long messages and doubles single quotes inside quoted strings
    return " ".join(text.split()).replace("''", "'")


def run_inventory(fleet: Any, inventory: dict, playbook: str = "upgrade.yml", *args: str,
                  cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    path = fleet.workdir / ("inventory-%d.json" % len(list(fleet.workdir.glob("inventory-*.json"))))
    path.write_text(json.dumps(inventory, indent=2))
    command = [str(BIN / "ansible-playbook"), "-i", str(path), str(REPO / "playbooks" / playbook), *args]
    return subprocess.run(command, cwd=cwd or fleet.workdir, env=ansible_env(env), text=True,
                          capture_output=True, timeout=600, check=False, start_new_session=True)


def base_vars(fleet: Any) -> dict[str, Any]:
    return {"ansible_python_interpreter": sys.executable, "praxis_report_dir": str(fleet.workdir / "reports"),
            "praxis_pip_args": ["--no-index", "--find-links", str(fx.wheelhouse())],
            "praxis_health_timeout": 30}


def everything(fleet: Any) -> dict[str, tuple[str, int]]:
    """The whole fleet directory: every project (venv, cache, backups included) and the reports."""
    return snapshot(fleet.workdir, exclude=("inventory", "bad-", "readiness.yml"))


# --- operator variables: one run, one host per bad value, refused on the controller ------------------

HOST_CASES: dict[str, tuple[dict[str, Any], list[str]]] = {
    # case: (the host's bad variables, words the refusal must hold for that host)
    "conflict_policy_value": ({"praxis_conflict_policy": "keep_locl"}, ["did you mean 'keep_local'"]),
    "server_mode_value": ({"praxis_server_mode": "proces"}, ["praxis_server_mode is 'proces'", "one of auto"]),
    "systemd_scope_value": ({"praxis_systemd_scope": "global"}, ["praxis_systemd_scope is 'global'"]),
    "keep_backups_negative": ({"praxis_keep_backups": -1}, ["praxis_keep_backups is -1", ">= 1"]),
    "keep_backups_word": ({"praxis_keep_backups": "three"}, ["praxis_keep_backups is 'three'", "not an integer"]),
    "health_timeout_zero": ({"praxis_health_timeout": 0}, ["praxis_health_timeout is 0"]),
    "health_timeout_negative": ({"praxis_health_timeout": -30}, ["praxis_health_timeout is -30"]),
    "lock_stale_after_zero": ({"praxis_lock_stale_after": 0}, ["praxis_lock_stale_after is 0"]),
    "min_tools_negative": ({"praxis_min_tools": -2}, ["praxis_min_tools is -2"]),
    "pip_args_string": ({"praxis_pip_args": "--no-index --find-links /w"}, ["praxis_pip_args", "not a list"]),
    "pip_args_numbers": ({"praxis_pip_args": ["--retries", 3]}, ["praxis_pip_args has items that are not strings"]),
    "server_env_string": ({"praxis_server_env": "HF_HOME=/x"}, ["praxis_server_env", "not a dict"]),
    "server_env_number": ({"praxis_server_env": {"HF_HUB_OFFLINE": 1}}, ["HF_HUB_OFFLINE=1", "quote them"]),
    "expected_tools_string": ({"praxis_expected_tools": "search_standards"}, ["praxis_expected_tools", "not a list"]),
    "smoke_calls_string": ({"praxis_smoke_calls": "get_server_info"}, ["praxis_smoke_calls", "not a list"]),
    "backup_name_path": ({"praxis_backup_name": "/other/.praxis-os/.backups/2026-01-01-000000"}, ["never a path"]),
    "home_name_path": ({"praxis_home_name": "sub/.praxis-os"}, ["not a plain directory name"]),
    "break_lock_word": ({"praxis_break_lock": "maybe"}, ["praxis_break_lock is 'maybe'", "not a boolean"]),
    "report_dir_relative": ({"praxis_report_dir": "reports"}, ["praxis_report_dir is 'reports'", "absolute"]),
    "serial_word_in_inventory": ({"praxis_serial": "abc"}, ["praxis_serial has 'abc'"]),
    "serial_zero_in_inventory": ({"praxis_serial": [0]}, ["praxis_serial has batch size 0"]),
    "max_fail_above_100": ({"praxis_max_fail_percentage": 150}, ["praxis_max_fail_percentage is 150"]),
    "typo_conflict_policy": ({"praxis_conflict_polcy": "take_upstream"},
                             ["unknown variable praxis_conflict_polcy", "did you mean praxis_conflict_policy"]),
    "typo_server_mode": ({"praxis_server_mod": "none"}, ["unknown variable praxis_server_mod",
                                                         "did you mean praxis_server_mode"]),
    "typo_unrelated": ({"praxis_favourite_editor": "vim"}, ["unknown variable praxis_favourite_editor", "remove it or rename it"]),
    "undefined_reference": ({"praxis_min_tools": "{{ no_such_variable }}"},
                            ["praxis_min_tools cannot be evaluated", "no_such_variable"]),
    "project_dir_relative": ({"praxis_project_dir": "projects/h"}, ["praxis_project_dir is 'projects/h'"]),
    "project_dir_missing": ({"praxis_project_dir": None}, ["praxis_project_dir is not set"]),
}


def bad_inventory(fleet: Any, cases: dict[str, tuple[dict[str, Any], list[str]]]) -> dict:
    hosts = {}
    for case, (variables, _words) in cases.items():
        host = {"ansible_connection": "local", "praxis_project_dir": str(fleet.hosts[0].project)}
        host.update(variables)
        hosts[case] = {k: v for k, v in host.items() if v is not None}
    return {"praxis": {"hosts": hosts, "vars": base_vars(fleet)}}


def test_bad_operator_variables_are_all_named_before_any_host_is_touched(fleet: Any) -> None:
    before = everything(fleet)
    proc = run_inventory(fleet, bad_inventory(fleet, HOST_CASES), "upgrade.yml",
                         "-e", json.dumps({"praxis_source": str(fleet.source("v2"))}))
    text = output(proc)
    assert proc.returncode != 0
    failure = flat(text[text.index("fatal: [localhost]"):])
    assert "%d problem(s)" % len(HOST_CASES) in failure, failure[:3000]
    for case, (_variables, words) in HOST_CASES.items():
        mine = [p for p in failure.split(" | ") if (case + ": ") in p]
        assert mine, "no problem named for %s in %s" % (case, failure[:3000])
        assert all(word in mine[0] for word in words) and "Next:" in mine[0], mine[0]
    assert "TASK [Preflight]" not in text
    assert "TASK [Validate the source checkout" not in text  # not even the archive was written
    assert tree_diff(before, everything(fleet)) == NO_CHANGE


RUN_CASES: dict[str, tuple[Any, list[str]]] = {
    "serial_word": ("abc", ["praxis_serial has 'abc'"]),
    "serial_negative": (-1, ["praxis_serial has batch size -1"]),
    "serial_empty": ([], ["praxis_serial is an empty list"]),
    "serial_zero_percent": ("0%", ["1%-100%"]),
    "serial_list_with_junk": ([1, "x%"], ["praxis_serial has 'x%'"]),
}


@pytest.mark.parametrize("case", sorted(RUN_CASES))
def test_bad_serial_on_the_command_line_is_refused_before_batches(fleet: Any, case: str) -> None:
    value, words = RUN_CASES[case]
    before = everything(fleet)
    proc = fleet.playbook("upgrade.yml", extra={"praxis_source": str(fleet.source("v2")), "praxis_serial": value})
    text = output(proc)
    assert proc.returncode != 0
    failure = flat(text[text.index("fatal: [localhost]"):])
    assert all(word in failure for word in words) and "Next:" in failure, failure[:2000]
    assert "Traceback" not in text and "TASK [Preflight]" not in text
    assert tree_diff(before, everything(fleet)) == NO_CHANGE


def test_a_bad_value_reaches_a_role_run_alone_through_preflight(fleet: Any) -> None:
    """The preflight role run alone (a readiness check): its action plugin checks the same table."""
    playbook = fleet.workdir / "readiness.yml"
    playbook.write_text(
        "- hosts: praxis\n  gather_facts: false\n  roles:\n    - praxis.upgrade.common\n  tasks:\n"
        "    - ansible.builtin.include_role:\n        name: praxis.upgrade.preflight\n")
    cases = {k: HOST_CASES[k] for k in ("typo_server_mode", "keep_backups_negative", "undefined_reference")}
    inventory = bad_inventory(fleet, cases)
    inventory["praxis"]["hosts"]["good"] = {"ansible_connection": "local",
                                            "praxis_project_dir": str(fleet.hosts[0].project)}
    before = everything(fleet)
    path = fleet.workdir / "inventory-readiness.json"
    path.write_text(json.dumps(inventory))
    proc = subprocess.run([str(BIN / "ansible-playbook"), "-i", str(path), str(playbook)], cwd=fleet.workdir,
                          env=ansible_env(), text=True, capture_output=True, timeout=600, check=False)
    text = flat(output(proc))
    assert proc.returncode != 0
    assert "fatal: [typo_server_mode]" in text and "did you mean praxis_server_mode" in text
    assert "fatal: [keep_backups_negative]" in text and "praxis_keep_backups is -1" in text
    assert "fatal: [undefined_reference]" in text and "praxis_min_tools cannot be evaluated" in text
    assert "good : ok=" in text and "failed=0" in text.split("good : ")[1][:120]
    assert tree_diff(before, everything(fleet)) == NO_CHANGE


# --- targets that later phases would trip over: found in preflight ----------------------------------

def variant(fleet: Any, name: str) -> Path:
    dest = fleet.workdir / "variants" / name
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(fleet.hosts[0].project, dest, symlinks=True)
    return dest


def home_linked_elsewhere(fleet: Any) -> tuple[Path, list[str]]:
    project = fleet.workdir / "variants" / "linked"
    project.mkdir(parents=True, exist_ok=True)
    (project / ".praxis-os").symlink_to(fleet.hosts[0].home)
    return project, ["is a symlink to %s" % fleet.hosts[0].home, str(project / ".praxis-os"),
                     "Next: point praxis_project_dir at the project that owns"]


def link_out_of_standards(fleet: Any) -> tuple[Path, list[str]]:
    project = variant(fleet, "outside-link")
    (project / ".praxis-os" / "standards" / "universal" / "leak.md").symlink_to("/etc/hostname")
    return project, ["standards/universal/leak.md -> /etc/hostname", "point outside the installation", "Next:"]


def non_utf8_name(fleet: Any) -> tuple[Path, list[str]]:
    project = variant(fleet, "non-utf8")
    os.close(os.open(os.fsencode(project / ".praxis-os" / "workflows" / "spec_creation_v1") + b"/r\xe9sum\xe9.md",
                     os.O_CREAT | os.O_WRONLY, 0o644))
    return project, ["workflows/spec_creation_v1/r\\xe9sum\\xe9.md", "not printable UTF-8",
                     "Next: rename or remove them"]


def newline_name(fleet: Any) -> tuple[Path, list[str]]:
    project = variant(fleet, "newline")
    (project / ".praxis-os" / "scripts" / "two\nlines.py").write_text("x = 1\n")
    return project, ["scripts/two\\nlines.py", "not printable UTF-8"]


def corrupt_base_manifest(fleet: Any) -> tuple[Path, list[str]]:
    project = variant(fleet, "corrupt-base")
    (project / ".praxis-os" / ".cache" / "base-manifest.json").write_text('{"commit": "abc", "files": {')
    return project, ["base manifest", "unreadable or corrupt", "Next: move it aside"]


def tampered_base_manifest(fleet: Any) -> tuple[Path, list[str]]:
    project = variant(fleet, "tampered-base")
    (project / ".praxis-os" / ".cache" / "base-manifest.json").write_text(
        json.dumps({"commit": "abc", "files": {"../../etc/passwd": "0" * 64}}))
    return project, ["base manifest is corrupt", "Next: move it aside"]


TARGET_CASES = {
    "home_linked_elsewhere": home_linked_elsewhere,
    "link_out_of_standards": link_out_of_standards,
    "non_utf8_name": non_utf8_name,
    "newline_name": newline_name,
    "corrupt_base_manifest": corrupt_base_manifest,
    "tampered_base_manifest": tampered_base_manifest,
}


def test_bad_targets_are_refused_in_preflight_before_the_lock(fleet: Any) -> None:
    made = {case: make(fleet) for case, make in TARGET_CASES.items()}
    hosts = {case: {"ansible_connection": "local", "praxis_project_dir": str(project)}
             for case, (project, _words) in made.items()}
    before = everything(fleet)
    proc = run_inventory(fleet, {"praxis": {"hosts": hosts, "vars": base_vars(fleet)}}, "upgrade.yml",
                         "-e", json.dumps({"praxis_source": str(fleet.source("v2")), "praxis_serial": "100%",
                                           "praxis_max_fail_percentage": 100}))
    text = output(proc)
    assert proc.returncode != 0
    for case, (_project, words) in made.items():
        assert "fatal: [%s]" % case in text, text[-3000:]
        failure = flat(text[text.index("fatal: [%s]" % case):])[:3000]
        assert all(word in failure for word in words), (case, failure)
    assert "TASK [Backup]" not in text and "Traceback" not in text
    after = everything(fleet)
    changed = tree_diff(before, after)
    # only the controller's own outputs: the packed source and the run report
    assert changed["removed"] == [] and changed["changed"] == [], changed
    assert all(rel.startswith("reports/") for rel in changed["added"]), changed


# --- the operator contract: defaults every play sees, run-level values, report dir ------------------

def test_minimal_inventory_failed_upgrade_rolls_back_with_the_designed_message(fleet: Any, tmp_path: Path) -> None:
    """Day-one bug 1 and 3: an inventory with only praxis_project_dir (and praxis_source) — the rescue still
    has praxis_report_dir (the default: <real cwd>/praxis-reports, not $PWD) and writes a rolled_back row;
    a user's praxis_report_dir gets the source archive."""
    project = variant(fleet, "minimal")
    before = snapshot(project, exclude=(".praxis-os/.cache", ".praxis-os/.backups"))
    real_cwd = tmp_path / "operator"
    real_cwd.mkdir()
    linked_cwd = tmp_path / "cwd-link"
    linked_cwd.symlink_to(real_cwd)
    inventory = {"praxis": {"hosts": {"m": {"ansible_connection": "local", "praxis_project_dir": str(project)}},
                            "vars": {"ansible_python_interpreter": sys.executable}}}
    # a tool the v2 server does not have: the validate phase fails, the rescue rolls back
    extra = {"praxis_source": str(fleet.source("v2")), "praxis_expected_tools": ["no_such_tool"],
             "praxis_pip_args": ["--no-index", "--find-links", str(fx.wheelhouse())]}
    proc = run_inventory(fleet, inventory, "upgrade.yml", "-e", json.dumps(extra), cwd=linked_cwd,
                         env={"PWD": "/nonexistent/stale-pwd"})
    text = flat(output(proc))
    assert proc.returncode != 0
    assert "is undefined" not in text, text[-3000:]
    assert "failed in phase validate" in text and "rolled back from backup" in text, text[-3000:]
    reports = sorted((real_cwd / "praxis-reports").glob("upgrade-*.json"))
    assert reports, "no run report under the real cwd"
    row = json.loads(reports[-1].read_text())
    assert "rolled_back" in json.dumps(row)
    assert list((real_cwd / "praxis-reports" / "sources").glob("praxis-source-*.tar.gz"))
    assert not Path("/nonexistent/stale-pwd").exists()
    assert tree_diff(before, snapshot(project, exclude=(".praxis-os/.cache", ".praxis-os/.backups"))) == NO_CHANGE


def test_report_dir_from_group_vars_gets_the_source_archive(fleet: Any, tmp_path: Path) -> None:
    reports = tmp_path / "group-reports"
    inventory = {"praxis": {"hosts": {"h": {"ansible_connection": "local",
                                            "praxis_project_dir": str(fleet.hosts[0].project)}},
                            "vars": dict(base_vars(fleet), praxis_report_dir=str(reports))}}
    proc = run_inventory(fleet, inventory, "upgrade.yml", "--tags", "praxis_preflight",
                         "-e", json.dumps({"praxis_source": str(fleet.source("v2"))}), cwd=tmp_path)
    assert proc.returncode == 0, output(proc)[-3000:]
    assert list((reports / "sources").glob("praxis-source-*.tar.gz"))
    assert not (tmp_path / "praxis-reports").exists()


def test_serial_in_the_inventory_warns_and_on_the_command_line_batches(fleet: Any) -> None:
    """`--tags praxis_preflight` is the fleet readiness check: it batches like the upgrade, changes nothing."""
    hosts = {name: {"ansible_connection": "local", "praxis_project_dir": str(fleet.hosts[0].project)}
             for name in ("r1", "r2", "r3", "r4")}
    inventory = {"praxis": {"hosts": hosts, "vars": dict(base_vars(fleet), praxis_serial=2)}}
    before = everything(fleet)
    proc = run_inventory(fleet, inventory, "upgrade.yml", "--tags", "praxis_preflight",
                         "-e", json.dumps({"praxis_source": str(fleet.source("v2"))}))
    text = flat(output(proc))
    assert proc.returncode == 0, text[-3000:]
    assert "praxis_serial=2 is set in the inventory" in text and "-e" in text
    assert text.count("PLAY [Upgrade prAxIs OS installations, canary first]") == 3  # 1, 25%, 100% of 4
    proc = run_inventory(fleet, {"praxis": {"hosts": hosts, "vars": base_vars(fleet)}}, "upgrade.yml",
                         "--tags", "praxis_preflight",
                         "-e", json.dumps({"praxis_source": str(fleet.source("v2")), "praxis_serial": 2}))
    text = flat(output(proc))
    assert proc.returncode == 0, text[-3000:]
    assert "is set in the inventory" not in text
    assert text.count("PLAY [Upgrade prAxIs OS installations, canary first]") == 2  # 2 + 2
    changed = tree_diff(before, everything(fleet))
    assert changed["removed"] == [] and changed["changed"] == [], changed
    assert all(rel.startswith("reports/") for rel in changed["added"]), changed


# --- disk: estimated from allocated blocks, proven on a small tmpfs ---------------------------------

def tmpfs_upgrade(fleet: Any, name: str, room: int) -> dict[str, Any]:
    """Upgrade a copy of host h on a tmpfs holding exactly its files plus `room` free bytes."""
    work = fleet.workdir / "tmpfs" / name
    work.mkdir(parents=True, exist_ok=True)
    mount = work / "mnt"
    inventory = {"praxis": {"hosts": {name: {"ansible_connection": "local",
                                             "praxis_project_dir": str(mount / "project")}},
                            "vars": base_vars(fleet)}}
    (work / "inventory.json").write_text(json.dumps(inventory))
    spec = {"stash": str(fleet.hosts[0].project), "mount": str(mount), "room": room, "cwd": str(work),
            "inventory": str(work / "inventory.json"), "source": str(fleet.source("v2"))}
    (work / "spec.json").write_text(json.dumps(spec))
    subprocess.run(["unshare", "--mount", sys.executable, "-m", "tests.integration.tmpfs_case",
                    str(work / "spec.json"), str(work / "result.json")], cwd=REPO, check=True, timeout=900,
                   env=ansible_env())
    return json.loads((work / "result.json").read_text())


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"), reason="needs root for unshare + tmpfs")
def test_disk_estimate_refuses_what_would_hit_enospc_and_passes_what_fits(fleet: Any) -> None:
    from ansible_collections.praxis.upgrade.plugins.module_utils import source as sources
    from ansible_collections.praxis.upgrade.plugins.module_utils import target_checks

    info = sources.inspect(str(fleet.source("v2")))
    home = fleet.hosts[0].home
    apparent = sum(p.stat().st_size for tree in target_checks.FRAMEWORK_TREES if (home / tree).is_dir()
                   for p in (home / tree).rglob("*") if p.is_file() and not p.is_symlink())
    # what the old estimate asked for (2 x apparent bytes written + backed up): preflight passed it and the
    # upgrade then ran out of space; now refused before anything changes
    old_room = 2 * (info["bytes"] + apparent) + 64 * 1024
    refused = tmpfs_upgrade(fleet, "old-estimate", old_room)
    text = flat(refused["output"])
    assert refused["rc"] != 0 and "not enough free disk" in text and "Next: free some space" in text, text[-3000:]
    assert "TASK [Backup]" not in text
    assert tree_diff(refused["before"], refused["after"]) == NO_CHANGE
    # the new estimate's room (computed the way preflight does, plus a little for the copy's rounding): the
    # whole upgrade fits
    need = target_checks.disk_need(str(home), str(home.parent), info["bytes"], info["file_count"], 4096)
    fits = tmpfs_upgrade(fleet, "new-estimate", need["needed_bytes"] + 256 * 1024)
    assert fits["rc"] == 0, flat(fits["output"])[-3000:]
    assert "No space left" not in fits["output"]
    assert "commit=%s" % info["commit"] in fits["version"]
    print("disk: old room %d refused; new room %d (estimate %d) fit, %d left free after the upgrade"
          % (old_room, need["needed_bytes"] + 256 * 1024, need["needed_bytes"], fits["free_after"]))
