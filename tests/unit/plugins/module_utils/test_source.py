"""source.py against real git repositories built in tmp dirs: validation, history, packing, extraction."""
from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import tarfile
from pathlib import Path
from typing import Dict, Optional

import pytest

from ansible_collections.praxis.upgrade.plugins.module_utils import source
from ansible_collections.praxis.upgrade.plugins.module_utils.manifest import build_manifest

GIT_ENV = dict(os.environ, GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull,
               GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.invalid",
               GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.invalid",
               GIT_AUTHOR_DATE="2026-01-01T00:00:00Z", GIT_COMMITTER_DATE="2026-01-01T00:00:00Z")

V1: Dict[str, Optional[str]] = {
    "README.md": "# not installed\n",
    "mcp_server/__init__.py": "",
    "mcp_server/__main__.py": "print('server v1')\n",
    "mcp_server/requirements.txt": "mcp==2.3.0\n",
    "scripts/build_rag_index.py": "#!/usr/bin/env python3\nprint('index v1')\n",
    "universal/standards/core.md": "# core v1\n",
    "universal/standards/sub/old-name.md": "# renamed in v2\n",
    "universal/standards/gone.md": "# removed in v2\n",
    "universal/workflows/wf1/README.md": "# wf1 v1\n",
    "universal/workflows/wf1/steady.md": "# never changes\n",
    "universal/usage/guide.md": "# guide v1\n",
    "universal/usage/old.md": "# usage removed in v2\n",
}
V2: Dict[str, Optional[str]] = {
    "mcp_server/__main__.py": "print('server v2')\n",
    "scripts/build_rag_index.py": "#!/usr/bin/env python3\nprint('index v2')\n",
    "universal/standards/core.md": "# core v2\n",
    "universal/standards/sub/old-name.md": None,
    "universal/standards/sub/new-name.md": "# renamed in v2\n",
    "universal/standards/gone.md": None,
    "universal/workflows/wf1/README.md": "# wf1 v2\n",
    "universal/workflows/wf2/x.md": "# wf2 new\n",
    "universal/usage/old.md": None,
}


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo)] + list(args), check=True, env=GIT_ENV,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE).stdout.decode().strip()


def write_files(repo: Path, files: Dict[str, Optional[str]]) -> None:
    for rel, text in files.items():
        path = repo / rel
        if text is None:
            if path.exists():
                git(repo, "rm", "-q", rel)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        if rel.startswith("scripts/"):
            path.chmod(0o755)


def commit(repo: Path, files: Dict[str, Optional[str]], message: str, tag: Optional[str] = None) -> str:
    write_files(repo, files)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    if tag:
        git(repo, "tag", tag)
    return git(repo, "rev-parse", "HEAD")


def make_source(root: Path, versions: int = 2) -> Path:
    """A prAxIs OS source repo: v1 (tag v1) and, with versions=2, v2 (tag v2) checked out."""
    repo = root / "praxis-os"
    repo.mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    (repo / ".gitignore").write_text("*.log\n")
    commit(repo, V1, "v1", "v1")
    if versions > 1:
        commit(repo, V2, "v2", "v2")
    return repo


@pytest.fixture()
def repo(tmp_path: Path) -> Path:
    return make_source(tmp_path)


# ---------------------------------------------------------------- inspect

def test_install_map_and_installed_rel() -> None:
    assert source.installed_rel("universal/standards/a/b.md") == "standards/universal/a/b.md"
    assert source.installed_rel("universal/usage/x.md") == "usage/x.md"
    assert source.installed_rel("mcp_server/__pycache__/m.cpython-311.pyc") is None
    assert source.installed_rel("universal/standardsX/a.md") is None
    assert source.installed_rel("README.md") is None


def test_inspect_returns_version_manifest_and_history(repo: Path) -> None:
    info = source.inspect(str(repo))
    assert info["commit"] == git(repo, "rev-parse", "HEAD") and len(info["commit"]) == 40
    assert info["describe"] == "v2"
    assert info["path"] == str(repo.resolve())
    manifest = info["manifest"]
    assert set(manifest) == {
        "mcp_server/__init__.py", "mcp_server/__main__.py", "mcp_server/requirements.txt",
        "scripts/build_rag_index.py", "standards/universal/core.md", "standards/universal/sub/new-name.md",
        "workflows/wf1/README.md", "workflows/wf1/steady.md", "workflows/wf2/x.md", "usage/guide.md",
    }
    assert manifest["standards/universal/core.md"] == sha("# core v2\n")
    assert info["requirements_sha256"] == sha("mcp==2.3.0\n")
    assert info["file_count"] == 10
    assert info["bytes"] == sum((repo / src).stat().st_size for src in [
        "mcp_server/__init__.py", "mcp_server/__main__.py", "mcp_server/requirements.txt",
        "scripts/build_rag_index.py", "universal/standards/core.md", "universal/standards/sub/new-name.md",
        "universal/workflows/wf1/README.md", "universal/workflows/wf1/steady.md",
        "universal/workflows/wf2/x.md", "universal/usage/guide.md"])
    history = info["history"]
    # Older versions only; the current one is excluded, paths without older versions are omitted.
    assert history["standards/universal/core.md"] == [sha("# core v1\n")]
    assert history["scripts/build_rag_index.py"] == [sha("#!/usr/bin/env python3\nprint('index v1')\n")]
    # Removed and renamed-away paths keep their versions, so a pristine old copy can be recognised.
    assert history["standards/universal/gone.md"] == [sha("# removed in v2\n")]
    assert history["standards/universal/sub/old-name.md"] == [sha("# renamed in v2\n")]
    assert history["usage/old.md"] == [sha("# usage removed in v2\n")]
    assert "workflows/wf1/steady.md" not in history
    assert "standards/universal/sub/new-name.md" not in history
    assert not any(rel.startswith("universal/") or rel == "README.md" for rel in history)
    assert info["workflows"] == ["workflows/wf1", "workflows/wf2"]


def test_workflows_owned_include_those_an_older_version_shipped(repo: Path) -> None:
    """A workflow upstream dropped stays the framework's (an installation of the older version holds it);
    a workflow no version ships is the user's."""
    commit(repo, {"universal/workflows/wf2/x.md": None}, "drop wf2")
    info = source.inspect(str(repo))
    assert "workflows/wf2/x.md" not in info["manifest"]
    assert info["workflows"] == ["workflows/wf1", "workflows/wf2"]


def test_history_covers_merged_branches_and_skips_ignored_and_symlink_blobs(repo: Path) -> None:
    git(repo, "checkout", "-q", "-b", "side", "v1")
    commit(repo, {"universal/standards/core.md": "# core side\n"}, "side edit")
    git(repo, "checkout", "-q", "main")
    commit(repo, {"universal/workflows/wf1/steady.md": "# steady 2\n"}, "main edit")
    git(repo, "merge", "-q", "-X", "ours", "--no-edit", "side")
    (repo / "mcp_server" / "__pycache__").mkdir()
    (repo / "mcp_server" / "__pycache__" / "m.pyc").write_bytes(b"\0pyc")
    os.symlink("core.md", repo / "universal" / "standards" / "link.md")
    git(repo, "add", "-f", "mcp_server/__pycache__/m.pyc", "universal/standards/link.md")
    git(repo, "commit", "-q", "-m", "tracked junk and a link")
    info = source.inspect(str(repo))
    assert sha("# core side\n") in info["history"]["standards/universal/core.md"]
    assert info["history"]["workflows/wf1/steady.md"] == [sha("# never changes\n")]
    assert not any("__pycache__" in rel for rel in list(info["manifest"]) + list(info["history"]))
    # An in-tree symlink is installed as the file it points to; its link blob is not a version.
    assert info["manifest"]["standards/universal/link.md"] == info["manifest"]["standards/universal/core.md"]
    assert "standards/universal/link.md" not in info["history"]


def test_git_ignored_files_are_not_part_of_the_version(repo: Path) -> None:
    (repo / "mcp_server" / "debug.log").write_text("local noise\n")
    info = source.inspect(str(repo))
    assert "mcp_server/debug.log" not in info["manifest"]


@pytest.mark.parametrize("given,needle", [
    (None, "praxis_source is not set"),
    ("", "praxis_source is not set"),
    ("relative/path", "is relative"),
    ("/nonexistent/praxis-os-xyz", "does not exist"),
])
def test_inspect_refuses_bad_paths(given: Optional[str], needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        source.inspect(given)


def test_inspect_refuses_a_plain_directory(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a git work tree"):
        source.inspect(str(tmp_path))


def test_inspect_refuses_a_subdirectory_of_the_work_tree(repo: Path) -> None:
    with pytest.raises(ValueError, match="set praxis_source to %s" % repo):
        source.inspect(str(repo / "universal"))


def test_inspect_refuses_a_repo_without_commits(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    with pytest.raises(ValueError, match="has no commit yet"):
        source.inspect(str(tmp_path))


def test_inspect_refuses_dirty_trees_and_lists_paths(repo: Path) -> None:
    (repo / "universal" / "standards" / "core.md").write_text("edited\n")
    with pytest.raises(ValueError, match=r"universal/standards/core.md.*commit or stash"):
        source.inspect(str(repo))
    git(repo, "checkout", "--", ".")
    for index in range(7):
        (repo / "scripts" / ("untracked-%d.txt" % index)).write_text("x")
    with pytest.raises(ValueError, match=r"untracked-0.txt.*untracked-4.txt and 2 more") as info:
        source.inspect(str(repo))
    assert "untracked-5.txt" not in str(info.value)


def test_inspect_judges_cleanliness_on_what_is_installed(repo: Path) -> None:
    """Upstream commits runtime files (.praxis-os/.cache/mcp_server.log); touching one is not dirt."""
    runtime = repo / ".praxis-os" / ".cache" / "mcp_server.log"
    runtime.parent.mkdir(parents=True)
    runtime.write_text("started\n")
    git(repo, "add", "-f", str(runtime))
    git(repo, "commit", "-q", "-m", "commit a runtime file, as upstream does")
    runtime.write_text("started\nstopped\n")
    (repo / "notes.txt").write_text("untracked outside the installed trees\n")
    assert source.inspect(str(repo))["commit"]
    (repo / "installation").mkdir()
    (repo / "installation" / "05-venv-mcp.md").write_text("read by the upgrade: must be clean\n")
    with pytest.raises(ValueError, match=r"installation/05-venv-mcp.md"):
        source.inspect(str(repo))


@pytest.mark.parametrize("remove,needle", [
    ("mcp_server", "mcp_server/ (the server package)"),
    ("mcp_server/requirements.txt", "mcp_server/requirements.txt"),
    ("universal/standards", "universal/standards/"),
])
def test_inspect_refuses_a_non_praxis_source_naming_what_is_missing(repo: Path, remove: str, needle: str) -> None:
    git(repo, "rm", "-r", "-q", remove)
    git(repo, "commit", "-q", "-m", "break it")
    with pytest.raises(ValueError, match="not a prAxIs OS source") as info:
        source.inspect(str(repo))
    assert needle in str(info.value)


def test_inspect_needs_main_or_init(repo: Path) -> None:
    git(repo, "rm", "-q", "mcp_server/__init__.py", "mcp_server/__main__.py")
    git(repo, "commit", "-q", "-m", "no package")
    with pytest.raises(ValueError, match=r"__main__.py or mcp_server/__init__.py"):
        source.inspect(str(repo))


def test_inspect_refuses_a_symlink_pointing_outside(repo: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("not yours\n")
    os.symlink(str(secret), repo / "universal" / "standards" / "escape.md")
    git(repo, "add", "universal/standards/escape.md")
    git(repo, "commit", "-q", "-m", "escape")
    with pytest.raises(ValueError, match=r"escape.md points outside.*self-contained"):
        source.inspect(str(repo))


def test_inspect_explains_a_missing_git(repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    with pytest.raises(source.GitError, match="`git` command is not installed"):
        source.inspect(str(repo))


# ---------------------------------------------------------------- pack

def test_pack_is_deterministic_and_reused(repo: Path, tmp_path: Path) -> None:
    info = source.inspect(str(repo))
    first = source.pack(info["path"], info, str(tmp_path / "cache-a"))
    second = source.pack(info["path"], info, str(tmp_path / "cache-b"))
    assert first["written"] and second["written"]
    assert first["archive_sha256"] == second["archive_sha256"]
    assert Path(first["archive"]).read_bytes() == Path(second["archive"]).read_bytes()
    assert os.path.basename(first["archive"]) == "praxis-source-%s.tar.gz" % info["commit"]
    assert first["archive_bytes"] == os.path.getsize(first["archive"])
    mtime = os.stat(first["archive"]).st_mtime_ns
    again = source.pack(info["path"], info, str(tmp_path / "cache-a"))
    assert not again["written"] and again["archive_sha256"] == first["archive_sha256"]
    assert os.stat(first["archive"]).st_mtime_ns == mtime


def test_pack_rewrites_a_damaged_archive(repo: Path, tmp_path: Path) -> None:
    info = source.inspect(str(repo))
    packed = source.pack(info["path"], info, str(tmp_path / "cache"))
    Path(packed["archive"]).write_bytes(b"truncated")
    again = source.pack(info["path"], info, str(tmp_path / "cache"))
    assert again["written"] and again["archive_sha256"] == packed["archive_sha256"]
    Path(packed["archive"] + ".json").write_text("{not json")
    assert source.pack(info["path"], info, str(tmp_path / "cache"))["written"]


def test_archive_layout_metadata_and_header(repo: Path, tmp_path: Path) -> None:
    info = source.inspect(str(repo))
    packed = source.pack(info["path"], info, str(tmp_path / "cache"))
    with tarfile.open(packed["archive"]) as tar:
        members = {m.name: m for m in tar.getmembers()}
        header = json.loads(tar.extractfile("praxis-source.json").read())
        assert tar.extractfile("standards/universal/core.md").read() == b"# core v2\n"
    assert set(members) == set(info["manifest"]) | {"praxis-source.json"}
    assert header == {"commit": info["commit"], "describe": "v2", "manifest": info["manifest"]}
    assert {(m.uid, m.gid, m.uname, m.gname, m.mtime) for m in members.values()} == \
        {(0, 0, "", "", info["committed_at"])}
    assert members["scripts/build_rag_index.py"].mode == 0o755
    assert members["workflows/wf1/README.md"].mode == 0o644
    assert all(m.isreg() for m in members.values())


def test_pack_refuses_relative_dir_and_a_source_changed_since_inspect(repo: Path, tmp_path: Path) -> None:
    info = source.inspect(str(repo))
    with pytest.raises(ValueError, match="archive_dir .* is relative"):
        source.pack(info["path"], info, "cache")
    (repo / "universal" / "standards" / "core.md").write_text("changed after inspect\n")
    with pytest.raises(ValueError, match="changed since it was inspected"):
        source.pack(info["path"], info, str(tmp_path / "cache"))
    git(repo, "checkout", "--", ".")
    commit(repo, {"universal/standards/late.md": "late\n"}, "late")
    with pytest.raises(ValueError, match="file list differs"):
        source.pack(info["path"], info, str(tmp_path / "cache"))


# ---------------------------------------------------------------- extract

@pytest.fixture()
def packed(repo: Path, tmp_path: Path) -> dict:
    info = source.inspect(str(repo))
    info.update(source.pack(info["path"], info, str(tmp_path / "cache")))
    return info


def test_extract_verifies_and_is_idempotent(packed: dict, tmp_path: Path) -> None:
    dest = tmp_path / "target" / ".cache" / "upgrade" / packed["commit"]
    outcome = source.extract(packed["archive"], str(dest), packed["manifest"])
    assert outcome == {"extracted": True, "verified": True, "dest": str(dest)}
    tree = build_manifest(str(dest))
    assert json.loads((dest / "praxis-source.json").read_text())["commit"] == packed["commit"]
    del tree["praxis-source.json"]
    assert tree == packed["manifest"]
    assert os.access(dest / "scripts" / "build_rag_index.py", os.X_OK)
    assert [p.name for p in dest.parent.iterdir()] == [packed["commit"]]  # no temp dir left
    assert source.extract(packed["archive"], str(dest), packed["manifest"])["extracted"] is False


def test_extract_replaces_a_damaged_staging_dir(packed: dict, tmp_path: Path) -> None:
    dest = tmp_path / "stage"
    source.extract(packed["archive"], str(dest), packed["manifest"])
    (dest / "workflows" / "wf1" / "README.md").write_text("damaged\n")
    (dest / "stray.txt").write_text("stray\n")
    assert source.extract(packed["archive"], str(dest), packed["manifest"])["extracted"] is True
    assert (dest / "workflows" / "wf1" / "README.md").read_text() == "# wf1 v2\n"
    assert not (dest / "stray.txt").exists()


def test_extract_refuses_an_archive_from_another_manifest(packed: dict, tmp_path: Path) -> None:
    dest = tmp_path / "stage"
    wrong = dict(packed["manifest"])
    wrong["workflows/wf1/README.md"] = sha("something else\n")
    wrong["workflows/missing.md"] = sha("x")
    del wrong["usage/guide.md"]
    with pytest.raises(ValueError, match=r"missing: workflows/missing.md; changed: workflows/wf1/README.md; "
                                         r"extra: usage/guide.md"):
        source.extract(packed["archive"], str(dest), wrong)
    assert list(tmp_path.glob("stage*")) == [] and list(tmp_path.glob(".stage*")) == []


def test_extract_refuses_a_missing_archive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist on this host"):
        source.extract(str(tmp_path / "nope.tar.gz"), str(tmp_path / "stage"), {"a/b": sha("x")})


def _evil_archive(path: Path, member: tarfile.TarInfo, data: bytes = b"") -> None:
    with tarfile.open(str(path), "w:gz") as tar:
        ok = tarfile.TarInfo("workflows/ok.md")
        ok.size = 3
        tar.addfile(ok, io.BytesIO(b"ok\n"))
        member.size = len(data) if member.isreg() else 0
        tar.addfile(member, io.BytesIO(data) if member.isreg() else None)


def _member(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info


@pytest.mark.parametrize("member,needle", [
    (_member("../escape.md"), "unsafe member"),
    (_member("workflows/../../escape.md"), "unsafe member"),
    (_member("/etc/escape.md"), "unsafe member"),
    (_member("workflows/link", tarfile.SYMTYPE, "/etc/passwd"), "link or special file"),
    (_member("workflows/hard", tarfile.LNKTYPE, "workflows/ok.md"), "link or special file"),
    (_member("workflows/dev", tarfile.CHRTYPE), "link or special file"),
    (_member("workflows/fifo", tarfile.FIFOTYPE), "link or special file"),
    (_member("workflows/ok.md"), "holds workflows/ok.md twice"),
])
def test_extract_refuses_unsafe_members(tmp_path: Path, member: tarfile.TarInfo, needle: str) -> None:
    archive = tmp_path / "evil.tar.gz"
    _evil_archive(archive, member, b"evil\n")
    stage = tmp_path / "area" / "stage"
    with pytest.raises(ValueError, match=needle):
        source.extract(str(archive), str(stage), {"workflows/ok.md": sha("ok\n")})
    assert sorted(p.name for p in (tmp_path / "area").iterdir()) == []
    assert not (tmp_path / "escape.md").exists()


def test_extract_accepts_directory_members_and_dot_slash_names(tmp_path: Path) -> None:
    archive = tmp_path / "ok.tar.gz"
    with tarfile.open(str(archive), "w:gz") as tar:
        tar.addfile(_member("./workflows/", tarfile.DIRTYPE))
        info = _member("./workflows/ok.md")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"ok\n"))
    stage = tmp_path / "stage"
    assert source.extract(str(archive), str(stage), {"workflows/ok.md": sha("ok\n")})["extracted"]
    assert (stage / "workflows" / "ok.md").read_text() == "ok\n"
