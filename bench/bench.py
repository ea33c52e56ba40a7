"""The benchmark of issue 10: every goal measured as a ratio within one run on this machine.

Cases (bench/cases.py): fixture (upgrade, no-op, --check, rollback vs the bare shell procedure), scale
(a venv padded to real size, probed for downtime, backup snapshot vs `cp -al`), user content (100k
files / 5 GB must be free), fleet curve (1/4/8/16 local installations), 4 SSH hosts vs 1 over real SSH
(scripts/fleet; needs root, else not measured), Ansible's per-task floor, and the real product at real scale
(scripts/realworld with a mirror of upstream, else not measured).
Writes bench/results/bench-<stamp>.{json,md,svg} and prints the markdown.

    bench/run [--quick] [--cases fixture,scale,user,fleet,ssh,floor,real] [--pad-files N --pad-mb MB]
              [--user-files N --user-mb MB] [--fleet 1,4,8,16] [--repeats N] [--mirror PATH] [--strict]
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

from bench import cases, report, svg
from bench.report import Goal, ratio
from tests.harness import REPO

RESULTS = REPO / "bench" / "results"
CASES = ("fixture", "scale", "user", "fleet", "ssh", "floor", "real")
TITLES = {"fixture": "Fixture case", "scale": "Scale case", "user": "User-content case", "fleet": "Fleet curve",
          "ssh": "SSH fleet", "floor": "Ansible per-task floor", "real": "Real product (scripts/realworld)"}
FULL = {"pad_files": 40000, "pad_mb": 2048, "user_files": 100000, "user_mb": 5120, "fleet": "1,4,8,16",
        "repeats": 2, "floor_tasks": 20}
QUICK = {"pad_files": 4000, "pad_mb": 200, "user_files": 10000, "user_mb": 500, "fleet": "1,2,4",
         "repeats": 1, "floor_tasks": 10}


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench/run", description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, fleet 1/2/4 (a few minutes)")
    parser.add_argument("--cases", default=",".join(CASES), help="comma list of %s" % ", ".join(CASES))
    for knob in FULL:
        parser.add_argument("--" + knob.replace("_", "-"), default=None,
                            help="default %s (quick %s)" % (FULL[knob], QUICK[knob]))
    parser.add_argument("--mirror", type=Path, default=None,
                        help="a clone or bare mirror of honeyhiveai/praxis-os: the real case upgrades the real "
                             "product with it (scripts/realworld, ~5 min cached); without it that case is not "
                             "measured")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a goal fails")
    parser.add_argument("--render", type=Path, metavar="JSON",
                        help="only re-render goals, markdown and SVG of a saved (or .partial) result")
    args = parser.parse_args(argv)
    defaults = QUICK if args.quick else FULL
    for knob, value in defaults.items():
        given = getattr(args, knob)
        setattr(args, knob, type(value)(given) if given is not None else value)
    args.fleet_sizes = [int(n) for n in str(args.fleet).split(",") if n.strip()]
    args.case_list = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = set(args.case_list) - set(CASES)
    if unknown:
        parser.error("unknown case(s) %s; choose from %s" % (", ".join(sorted(unknown)), ", ".join(CASES)))
    return args


def goals(result: dict[str, Any]) -> list[Goal]:
    c = result["cases"]
    out: list[Goal] = []
    scale = c.get("scale")
    if scale:
        s = scale["seconds"]
        down, bare = scale["downtime"]["upgrade"]["downtime"], s["bare stop + start + first answer (median)"]
        out.append(Goal("Downtime during an upgrade (deps change, real-size venv) - bare restart", down - bare, 1.0,
                        "+s", "unanswered %.2f s in %d window(s); bare stop+start+first answer %.2f s; shell "
                        "procedure unanswered %.2f s" % (down, len(scale["downtime"]["upgrade"]["windows"]), bare,
                                                         scale["downtime"]["shell"]["downtime"])))
        same = s.get("the collection's venv snapshot, same conditions (backup.snapshot_venv)")
        out.append(Goal("Venv snapshot (the collection's, same conditions as cp -al) / cp -al of the venv",
                        ratio(same, s["cp -al venv"]), 1.3, detail="%s s / %.2f s (%d venv files; best of 3 each, "
                        "interleaved)" % ("%.2f" % same if same else "-", s["cp -al venv"], scale["venv"]["files"])))
        alone = s.get("venv snapshot inside praxis_backup (timings.venv_snapshot_s)")
        out.append(Goal("(info) venv snapshot inside praxis_backup (pip freeze beside it) / cp -al",
                        ratio(alone, s["cp -al venv"]), 1.3, detail="%s s / %.2f s" % (
                            "%.2f" % alone if alone else "-", s["cp -al venv"])))
        backup = s.get("praxis_backup task (venv snapshot)")
        inner = [v for k, v in s.items() if k.startswith("praxis_backup module duration_s")]
        out.append(Goal("(info) whole praxis_backup task (trees hashed, pip freeze, snapshot, verify, session) / "
                        "cp -al", ratio(backup, s["cp -al venv"]), 1.3,
                        detail="%s s / %.2f s%s" % ("%.2f" % backup if backup else "-", s["cp -al venv"],
                                                    "; the module's own duration_s %.2f s" % inner[0] if inner else "")))
        rebuild = s.get("new server's index rebuild (its log)")
        if rebuild is not None:  # only when the new server rebuilt its index at start (praxis_index_prebuild off)
            out.append(Goal("(info) downtime without the new server's index rebuild - bare restart",
                            down - rebuild - bare, 1.0, "+s",
                            detail="%.2f s unanswered - %.2f s index rebuild (the bare restart rebuilds nothing) - "
                                   "%.2f s" % (down, rebuild, bare)))
    else:
        out += [Goal(n, None, lim, u) for n, lim, u in (
            ("Downtime during an upgrade (deps change, real-size venv) - bare restart", 1.0, "+s"),
            ("Venv snapshot (the collection's, same conditions as cp -al) / cp -al of the venv", 1.3, "x"))]
    out += real_scale_goals(c)
    fleet = c.get("fleet")
    curve = dict((int(h), s) for h, s in fleet["curve"]) if fleet else {}
    if curve.get(1) and curve.get(8):
        out.append(Goal("Fleet: 8 local installations / 1 (forks 8)", curve[8] / curve[1], 2.5,
                        detail="%.1f s / %.1f s; marginal %.2f s/host%s"
                        % (curve[8], curve[1], fleet["marginal_per_host"] or 0, cpu_floor(fleet, 8))))
    elif curve.get(1) and fleet.get("marginal_per_host") and len(curve) > 1:
        projected = curve[1] + 7 * fleet["marginal_per_host"]
        out.append(Goal("Fleet: 8 local installations / 1 (PROJECTED from %s hosts)" % "/".join(map(str, curve)),
                        projected / curve[1], 2.5, detail="1 host %.1f s + 7 × %.2f s/host%s"
                        % (curve[1], fleet["marginal_per_host"], cpu_floor(fleet, 8))))
    else:
        out.append(Goal("Fleet: 8 local installations / 1 (forks 8)", None, 2.5))
    ssh = c.get("ssh")
    if ssh and ssh.get("ratio") is not None:
        first, last = ssh["curve"][0][1], ssh["curve"][-1][1]
        out.append(Goal("Fleet: 4 SSH hosts / 1 at forks 4", ssh["ratio"], 1.8, detail="%.1f s / %.1f s; marginal "
                        "%.2f s/host; %s" % (last, first, ssh["marginal_per_host"], ssh["ssh"])))
    else:
        out.append(Goal("Fleet: 4 SSH hosts / 1 at forks 4", None, 1.8,
                        detail="not measured: %s" % ssh["not_measured"] if ssh else ""))
    user = c.get("user")
    if user:
        s = user["seconds"]
        plain, big = s["upgrade without user content (best)"], s["upgrade with user content (best)"]
        out.append(Goal("User content (%d files, %.1f GB) adds to an upgrade" % (
            user["user_content"]["files"], user["user_content"]["bytes"] / 1e9), big - plain, 2.0, "+s",
            "%.1f s with vs %.1f s without" % (big, plain)))
    else:
        out.append(Goal("User content adds to an upgrade", None, 2.0, "+s"))
    fixture = c.get("fixture")
    if fixture:
        s = fixture["seconds"]
        up = s["upgrade"]
        out += [Goal("(fixture) upgrade / bare shell procedure", up / s["shell procedure (+ first answer)"], 2.0,
                     detail="%.1f s / %.1f s" % (up, s["shell procedure (+ first answer)"])),
                Goal("(fixture) no-op re-run / upgrade", s["no-op re-run"] / up, 0.3),
                Goal("(fixture) --check / upgrade", s["--check --diff"] / up, 0.5),
                Goal("(fixture) rollback / upgrade", s["rollback.yml"] / up, 0.5)]
    return out


def real_scale_goals(c: dict[str, Any]) -> list[Goal]:
    """Upgrade / shell and rollback / upgrade at real scale: on the real product (the real case), where pip,
    the index build and the model load cost what they cost; the padded fixture's ratios (its venv is real-size,
    but its pip and index take ~1 s and ~3 s, so Ansible's per-task cost dominates) are shown as info."""
    out: list[Goal] = []
    real = (c.get("real") or {}).get("seconds") or {}
    up, shell, back = real.get("upgrade"), real.get("shell"), real.get("rollback")
    not_run = "not measured: the real case did not run (--cases ...,real --mirror <path>)"
    why = (c.get("real") or {}).get("not_measured") or ("" if "real" in c else not_run)
    out.append(Goal("Upgrade at real scale (the real product) / bare shell procedure", ratio(up, shell), 1.3,
                    detail="%.1f s / %.1f s; new index built while the old server served %.1f s, downtime %.1f s "
                           "(server log)" % (up, shell, real.get("prebuild") or 0, real.get("downtime") or 0)
                    if up and shell else why))
    out.append(Goal("Rollback / upgrade at real scale (the real product)", ratio(back, up), 0.3,
                    detail="%.1f s / %.1f s" % (back, up) if back and up else why))
    scale = c.get("scale")
    if scale:
        s = scale["seconds"]
        up, shell = s["upgrade"], s["shell procedure (+ first answer)"]
        out.append(Goal("(info) padded fixture: upgrade / bare shell procedure", ratio(up, shell), 1.3,
                        detail="%.1f s / %.1f s" % (up, shell)))
        out.append(Goal("(info) padded fixture: rollback / upgrade", ratio(s["rollback.yml"], up), 0.3,
                        detail="%.1f s / %.1f s" % (s["rollback.yml"], up)))
    return out


def cpu_floor(fleet: dict[str, Any], hosts: int) -> str:
    """The CPU-bound floor of a fleet run: its CPU seconds (every process it started) over the cores is the
    least wall time it can take here, whatever Ansible does in parallel (projected along the CPU line when
    that fleet size was not run)."""
    cpu = dict((int(h), c) for h, c in fleet.get("cpu_curve", []))
    marginal = fleet.get("cpu_marginal_per_host")
    if not cpu.get(1) or marginal is None:
        why = fleet.get("cpu_not_measured")
        return "; CPU not measured (%s)" % why if why else ""
    one = dict((int(h), s) for h, s in fleet["curve"])[1]
    total = cpu.get(hosts) or cpu[1] + (hosts - 1) * marginal
    least = total / fleet["cores"]
    projected = "" if hosts in cpu else "projected "
    return ("; CPU %.1f s for 1 host, %s%.1f s for %d (+%.2f per extra host): on %d cores %d hosts take at least "
            "%.1f s, %.2f× one host, before any waiting"
            % (cpu[1], projected, total, hosts, marginal, fleet["cores"], hosts, least, least / one))


def floor_note(result: dict[str, Any]) -> str | None:
    """Explain the fleet's per-host cost with Ansible's own per-task floor."""
    floor, fleet, fixture = (result["cases"].get(k) for k in ("floor", "fleet", "fixture"))
    if not floor or not fixture:
        return None
    module_tasks = sum(n for n, _sec in fixture["phases"].values())
    widest = max(floor["per_task"], key=int)
    per_host_task = floor["per_task"][widest] / int(widest)
    text = ("Ansible floor: one ping task costs %.3f s on 1 host and %.3f s per host at %s forks (local "
            "connection); the upgrade runs %d module tasks per host, so Ansible alone costs ≈ %.1f s per extra "
            "host" % (floor["per_task"]["1"] if "1" in floor["per_task"] else float("nan"), per_host_task, widest,
                      module_tasks, module_tasks * per_host_task))
    if fleet and fleet.get("marginal_per_host"):
        text += " of the measured %.2f s per extra host" % fleet["marginal_per_host"]
    return text + "."


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.render:
        result = json.loads(args.render.read_text())
        print("bench: results in %s.{md,json,svg}" % write(result))
        return 0
    cache = cases.runs.WORK / "data"
    result: dict[str, Any] = {"stamp": time.strftime("%Y%m%dT%H%M%S"), "mode": "quick" if args.quick else "full",
                              "cores": os.cpu_count() or 0, "load": "%.2f" % os.getloadavg()[0],
                              "knobs": {k: getattr(args, k) for k in FULL}, "cases": {}}
    mib = 1 << 20
    steps = {
        "fixture": (TITLES["fixture"], cases.fixture_case),
        "scale": (TITLES["scale"], lambda: cases.scale_case(cache, args.pad_files, args.pad_mb * mib)),
        "user": (TITLES["user"], lambda: cases.user_content_case(
            cache, args.user_files, args.user_mb * mib, args.repeats)),
        "fleet": (TITLES["fleet"], lambda: cases.fleet_case(args.fleet_sizes, args.repeats)),
        "ssh": (TITLES["ssh"], lambda: cases.ssh_case(args.repeats)),
        "floor": (TITLES["floor"], lambda: cases.floor_case(
            args.floor_tasks, sorted({1, min(8, max(args.fleet_sizes))}))),
        "real": (TITLES["real"], lambda: cases.real_case(args.mirror)),
    }
    for key in CASES:
        if key not in args.case_list:
            continue
        title, run = steps[key]
        started = time.monotonic()
        print("bench: %s ..." % title, flush=True)
        result["cases"][key] = run()
        print("bench: %s done in %.0f s" % (title, time.monotonic() - started), flush=True)
        RESULTS.mkdir(parents=True, exist_ok=True)  # keep what is measured so far (a long run may be cut short)
        (RESULTS / ("bench-%s.partial.json" % result["stamp"])).write_text(json.dumps(result, indent=2) + "\n")
    base = write(result)
    (RESULTS / ("bench-%s.partial.json" % result["stamp"])).unlink(missing_ok=True)
    failed = [g for g in result["goals"] if g["verdict"] == "FAIL" and not g["goal"].startswith("(info)")]
    print("bench: results in %s.{md,json,svg}" % base)
    return 1 if args.strict and failed else 0


def write(result: dict[str, Any]) -> Path:
    """Goals, markdown and SVG of a result (also of a re-rendered partial one); returns the base path."""
    result["goals"] = [g.as_dict() for g in goals(result)]
    note = floor_note(result)
    if note:
        result["cases"]["floor"]["note"] = note
    RESULTS.mkdir(parents=True, exist_ok=True)
    base = RESULTS / ("bench-%s" % result["stamp"])
    base.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    named = dict(result, cases={TITLES[k]: v for k, v in result["cases"].items()})
    text = report.markdown(named)
    print(text)
    base.with_suffix(".md").write_text(text)
    timelines, marks = {}, {}
    for key in ("scale", "fixture"):
        for label, probe in (result["cases"].get(key) or {}).get("downtime", {}).items():
            timelines["%s %s" % (key, label)] = probe["timeline"]
            marks["%s %s" % (key, label)] = result["cases"][key].get("marks", {}).get(label, [])
    curve = [(int(h), s) for h, s in (result["cases"].get("fleet") or {}).get("curve", [])]
    base.with_suffix(".svg").write_text(svg.chart(curve, timelines, marks))
    return base


if __name__ == "__main__":
    raise SystemExit(main())
