"""Fault-matrix suite (issue 8): real `ansible-playbook` runs against fixture installations in `process`
server mode, each case judged by full-tree manifests after the documented recovery.

Run: `make faults` (= `pytest -q -n 2 tests/faults`); the matrix is printed at the end
and written to tests/output/fault-matrix.md (git-ignored).

How a case is judged
- One OLD installation (fixture v1 with user content) is installed once per session; every case gets a
  `cp -a` copy (the venv's scripts relocated like the fixture does), in a project named `app`.
- OLD = the full-tree manifest of that installation; NEW = the manifest of an identical copy after one
  reference `upgrade.yml` to v2 that succeeded (built once, shared by the xdist workers, with the task
  list of an upgrade and of a rollback that the kill-by-task cases use).
- A manifest holds every file, directory and symlink (as a link) below the project, `.praxis-os/venv`
  included, with modes, plus `venv/bin/python -m pip freeze --all`. Contents are hashed with the project's
  own absolute path replaced by `<PROJECT>` (the venv's scripts and pyvenv.cfg name it) so copies at
  different paths compare; in the three append-only records (VERSION.txt, UPDATE_LOG.txt,
  INSTALLATION_SUMMARY.md) timestamps and session ids are replaced too: they name when and by which run
  the same records were written. Bytecode outside the venv is compared by what it was compiled from
  (`fresh`/`stale` against its source's mtime and size, `orphan`), not by its bytes (they name the path it
  was compiled at): a rollback promises it back. Runs and servers write bytecode like a real host's
  (`PYTHONDONTWRITEBYTECODE` emptied; the OLD installation's server has run once).
- Left out as volatile runtime files, each judged elsewhere or legitimately different per run:
  `.praxis-os/.cache/mcp_server.log` (appended by every server start/stop and probe),
  `.praxis-os/.mcp_server_state.json` (pid/port of the running server: the server check judges it),
  `.praxis-os/.upgrade-lock` (the leftover check requires it gone), `.praxis-os/.cache/facts.d/` (the session
  facts file: ids and timestamps; an unfinished status counts as a leftover),
  `.praxis-os/.backups/` (timestamped per session), `.praxis-os/.cache/upgrade-summary-*` (per-run reports),
  the venv's `__pycache__/` and `*.pyc` (pip's bytecode: the product promises bytecode back only outside
  the venv). Nothing else: staging (`.cache/upgrade/`), the shipped source archive and the base manifest
  are compared.
- End state: exactly OLD, exactly NEW, or MIXED (the differing paths are named). Also required: the
  user's own files byte-identical, exactly one server process of this project (cwd = the project) that is
  the state file's pid, answers MCP and lists the end state's tools (when the installation had a server),
  and no leftovers: `*.new-*`/`*.old-*`, `*.tmp` temp files, staging, the source archive, a held lock,
  an unfinished session, any other process of the project.
- "Refused before any change": exit != 0, the tree strictly unchanged (all but the venv's bytecode and the
  server log: facts, lock, backups and the installation's bytecode included), the failure messages (fatal results and ERROR lines only,
  not task names) contain the case's cause key words and a next step.

Kills: tests/faults/callback_plugins/praxis_fault_kill.py (test-only, enabled per run) kills the run at the
n-th task event; by time, the test kills the run's process tree. Both use tests/proctree.py: SIGKILL every
descendant of `ansible-playbook` except detached servers (a crashed controller leaves those running) and the group.

Development: `PRAXIS_FAULTS_PREPARED=<dir>` reuses a prepared directory (sources, OLD installation, NEW
reference) across pytest runs; `PRAXIS_FAULTS_OUTPUT=<dir>` writes the matrix (and `fault-matrix.jsonl`, one
row per finished case as it finishes) there instead of tests/output/.
"""
