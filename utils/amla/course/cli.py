"""The ``amla`` command: build, run and bench the course notebooks, and check the environment."""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from amla.course.hours import HOURS, hour

OK, FAIL, INFO = "\u2713", "\u2717", "\u00b7"
MIN_IPYWIDGETS = (7, 7)
TOOLS = ("jupytext", "nbformat", "nbclient", "nbconvert", "jupyter_client", "ipykernel", "zmq", "traitlets")
"""Modules of the ``tools`` extra: build, run and bench need them, notebooks (and Colab) do not."""


def _hour_number(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"hour {text!r} is not a number; expected e.g. 01 or 3")
    try:
        return hour(int(text)).number
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _root(args: argparse.Namespace) -> Path:
    from amla.course.build import check_root, find_root

    return check_root(args.root) if args.root else find_root(command=args.command)


def _profile(args: argparse.Namespace) -> str:
    from amla.course.runner import check_profile
    from amla.toolkit.env import profile  # imports torch, so only when needed

    return check_profile(args.profile or profile())


# --- build -------------------------------------------------------------------------------------


def cmd_build(args: argparse.Namespace) -> int:
    from amla.course.build import build

    root = _root(args)
    lines = build(root, hours=args.hours or None, check=args.check)
    for line in lines:
        print(line)
    if args.check and lines:
        print(f"{len(lines)} file(s) out of date; run amla build", file=sys.stderr)
        return 1
    if not lines:
        print("up to date: every notebook and README.md match their sources")
    return 0


# --- run and bench -----------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    from amla.course.runner import execute, notebooks

    root = _root(args)
    profile = _profile(args)
    chosen = notebooks(root, args.hours or None, student=args.student)
    rows: list[tuple[str, str, str, float]] = []
    failed = 0
    for h, path in chosen:
        shown = path.relative_to(root).as_posix()
        print(f"running {shown} (profile {profile}) ...", file=sys.stderr, flush=True)
        result = execute(path, profile, timeout=args.timeout)
        if args.save:
            import nbformat

            target = Path(args.save) / path.name
            target.parent.mkdir(parents=True, exist_ok=True)
            nbformat.write(result.executed, target)
        failed += not result.ok
        status = "ok" if result.ok else f"FAILED {result.error}"
        rows.append((f"{h.number:02d}", shown, status, result.wall_s))
    print(format_table(rows))
    return 1 if failed else 0


def format_table(rows: list[tuple[str, str, str, float]]) -> str:
    """The ``amla run`` table: hour, notebook, status, wall seconds, and a total line."""
    header = ("hour", "notebook", "status", "wall s")
    total = sum(row[3] for row in rows)
    cells = [(a, b, c, f"{d:.1f}") for a, b, c, d in rows]
    footer = ("total", "", f"{sum(r[2] == 'ok' for r in rows)}/{len(rows)} ok", f"{total:.1f}")
    widths = [max(len(r[i]) for r in [header, *cells, footer]) for i in range(3)]

    def line(r: tuple[str, str, str, str]) -> str:
        return "  ".join(r[i].ljust(widths[i]) for i in range(3)) + "  " + r[3].rjust(8)

    return "\n".join([line(header), *map(line, cells), line(footer)])


def cmd_bench(args: argparse.Namespace) -> int:
    from amla.course.runner import execute, notebooks
    from amla.toolkit.env import pick_device

    root = _root(args)
    profile = _profile(args)
    device = pick_device().type
    failed = 0
    for h, path in notebooks(root, args.hours):
        result = execute(path, profile, timeout=args.timeout)
        record: dict[str, object] = {
            "hour": h.number,
            "notebook": path.relative_to(root).as_posix(),
            "profile": profile,
            "device": device,
            "wall_s": round(result.wall_s, 2),
            "metrics": result.metrics,
            "ok": result.ok,
        }
        if not result.ok:
            record["error"] = result.error
            failed += 1
        print(json.dumps(record), flush=True)
    return 1 if failed else 0


# --- doctor ------------------------------------------------------------------------------------


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version)[:2])


def _data_dir_check(path: Path) -> tuple[bool, str]:
    if path.is_dir():
        writable = "writable" if os.access(path, os.W_OK) else "read-only"
        return os.access(path, os.R_OK), f"data dir {path} exists ({writable})"
    parent = next((p for p in path.parents if p.exists()), None)
    if parent is not None and parent.is_dir() and os.access(parent, os.W_OK):
        return True, f"data dir {path} can be created"
    return False, f"data dir {path} is missing and {parent} is not writable; set AMLA_DATA to a writable folder"


# Which hours need which optional extra (pip install 'amla[NAME]') and which data files (by name prefix).
EXTRAS = {"pretrained": ("Hour 07", ("transformers",)), "graphs": ("Hours 13-14", ("torch_geometric", "networkx")),
          "rl": ("Hours 15-18", ("gymnasium",))}
DATA_HOURS = {"tinyshakespeare": "Hours 06-07", "mnist-": "Hours 08, 11-12 (optional: 8x8 digits otherwise)",
              "planetoid-": "Hour 14", "sentence-polarity": "Hour 07", "reveal.js": "amla slides",
              "mathjax": "amla slides and amla site"}


def _compile_check(try_it: bool) -> tuple[str, str]:
    """Whether ``torch.compile`` can run here (Hour 09): a C compiler for the CPU backend; with ``try_it``, a real
    compilation of a small function (seconds)."""
    compiler = next((c for c in ("cc", "gcc", "clang") if shutil.which(c)), None)
    if not try_it:
        if compiler is None:
            return INFO, ("torch.compile: no C compiler on PATH, so Hour 09 runs eagerly (it says so); install gcc "
                          "(apt install gcc) to compile")
        return OK, f"torch.compile: C compiler {shutil.which(compiler)} found (amla doctor --compile tries a compile)"
    import torch

    from amla.transformers.efficiency import compile_or_fallback

    _, seconds, how = compile_or_fallback(lambda x: torch.sin(x) * 2 + 1, torch.randn(8))
    if seconds is None:
        return INFO, f"torch.compile: {how}; Hour 09 runs eagerly"
    return OK, f"torch.compile: compiled a small function in {seconds:.1f} s ({how})"


def _widget_frontend_check() -> tuple[str, str]:
    """The frontend half of ipywidgets: jupyterlab_widgets (JupyterLab, VS Code) or widgetsnbextension (Notebook);
    its major version must match ipywidgets' (8 -> 3 and 4, 7 -> 1)."""
    from importlib.metadata import PackageNotFoundError, version

    if "google.colab" in sys.modules:
        return OK, "widget frontend: Colab's own"
    try:
        widgets = _version_tuple(version("ipywidgets"))
    except PackageNotFoundError:
        return INFO, "widget frontend: ipywidgets is missing, so the views show static pictures"
    found = []
    for name in ("jupyterlab_widgets", "widgetsnbextension"):
        try:
            found.append((name, version(name)))
        except PackageNotFoundError:
            pass
    if not found:
        return INFO, ("widget frontend: neither jupyterlab_widgets nor widgetsnbextension is installed, so the views "
                      "show their static pictures; pip install 'ipywidgets>=7.7' brings them")
    name, v = found[0]
    want = {8: (3, 4), 7: (1, 2)}.get(widgets[0], ())
    major = _version_tuple(v)[0] if name == "jupyterlab_widgets" else {4: 3, 3: 1}.get(_version_tuple(v)[0], -1)
    if want and major not in want:
        return FAIL, (f"widget frontend: {name} {v} does not match ipywidgets {'.'.join(map(str, widgets))}; "
                      f"pip install -U ipywidgets {name}")
    return OK, f"widget frontend: {name} {v} (for ipywidgets {'.'.join(map(str, widgets))})"


def doctor_checks(try_compile: bool = False) -> list[tuple[str, str]]:
    """(mark, text) of each check; a FAIL mark is a hard requirement that is not met."""
    from importlib.metadata import PackageNotFoundError, version

    from amla.toolkit.data import data_dir, status

    checks: list[tuple[str, str]] = []
    try:
        widgets = version("ipywidgets")
        good = _version_tuple(widgets) >= MIN_IPYWIDGETS
        checks.append((OK if good else FAIL, f"ipywidgets {widgets} (needs >= {'.'.join(map(str, MIN_IPYWIDGETS))})"))
    except PackageNotFoundError:
        checks.append((FAIL, "ipywidgets is not installed; pip install 'ipywidgets>=7.7'"))
    has_kernel = importlib.util.find_spec("ipykernel") is not None
    checks.append((OK, "ipykernel importable") if has_kernel else (FAIL, "ipykernel missing; pip install ipykernel"))
    missing_tools = [m for m in ("jupytext", "nbclient") if importlib.util.find_spec(m) is None]
    if missing_tools:
        checks.append((INFO, f"{', '.join(missing_tools)} missing: amla build/run/bench need pip install 'amla[tools]'"))
    else:
        checks.append((OK, "instructor tools (jupytext, nbclient) for amla build/run/bench"))
    checks.append(_widget_frontend_check())
    checks.append(_compile_check(try_compile))
    for extra, (hours, modules) in EXTRAS.items():
        missing = [m for m in modules if importlib.util.find_spec(m) is None]
        checks.append((INFO, f"{hours}: {', '.join(missing)} missing; pip install 'amla[{extra}]'") if missing
                      else (OK, f"{hours}: {', '.join(modules)} (amla[{extra}])"))
    good, text = _data_dir_check(data_dir())
    checks.append((OK if good else FAIL, text))
    for name, state in status().items():
        mark = OK if state == "ok" else FAIL if "WRONG" in state else INFO
        hint = "; delete it to download again" if mark == FAIL else ""
        hours = next((h for prefix, h in DATA_HOURS.items() if name.startswith(prefix)), "")
        checks.append((mark, f"{name}{f' ({hours})' if hours else ''}: {state}{hint}"))
    return checks


def cmd_doctor(args: argparse.Namespace) -> int:
    from amla.toolkit.env import env_report

    facts = env_report()
    width = max(map(len, facts))
    for key, value in facts.items():
        print(f"{key.ljust(width)}  {value}")
    print()
    checks = doctor_checks(try_compile=args.compile)
    for mark, text in checks:
        print(f"{mark} {text}")
    return 1 if any(mark == FAIL for mark, _ in checks) else 0


# --- grade -------------------------------------------------------------------------------------


def cmd_grade(args: argparse.Namespace) -> int:
    from amla.course.grade import NOT_A_SANDBOX, grade, table, write_csv

    missing = [str(p) for p in args.notebooks if not p.is_file()]
    if missing:
        raise ValueError(f"no such notebook file(s): {', '.join(missing)}")
    if args.limit <= 0:
        raise ValueError(f"--limit must be a positive number of seconds, got {args.limit:g}")
    print(NOT_A_SANDBOX)
    grades = grade([p.resolve() for p in args.notebooks], limit_s=args.limit, profile=args.profile)
    print(table(grades))
    write_csv(grades, args.csv)
    print(f"one row per student and exercise: {args.csv}")
    return 0


# --- fetch -------------------------------------------------------------------------------------


def cmd_fetch(args: argparse.Namespace) -> int:
    from amla.toolkit.data import REMOTE_FILES, fetch

    unknown = [name for name in args.names if name not in REMOTE_FILES]
    if unknown:
        raise ValueError(f"unknown data file(s) {', '.join(unknown)}; known: {', '.join(sorted(REMOTE_FILES))}")
    for name in args.names:
        print(f"{name}: {fetch(name)} (sha256 verified)")
    return 0


# --- slides and site ---------------------------------------------------------------------------


def cmd_slides(args: argparse.Namespace) -> int:
    from amla.course.slides import make_slides

    root = _root(args)
    profile = _profile(args) if args.profile else None
    out = Path(args.out) if args.out else root / "build" / "slides"
    for path in make_slides(root, args.hours or None, out=out, solutions=args.solutions, profile=profile):
        print(path)
    return 0


def cmd_site(args: argparse.Namespace) -> int:
    from amla.course.site import build_site

    root = _root(args)
    profile = _profile(args)
    out = Path(args.out) if args.out else root / "build" / "site"
    print(build_site(root, args.hours or None, out=out, profile=profile))
    return 0


# --- parser ------------------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="amla", description="Build, run and check the course notebooks.")
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    hours_help = f"hour numbers, e.g. 01 3 (1 to {len(HOURS)})"
    root_help = "course repository (default: found above the current directory)"
    profile_help = "smoke, cpu or gpu (default: AMLA_PROFILE, else gpu with CUDA, else cpu)"

    b = commands.add_parser("build", help="build solutions/ and hours/ notebooks and README.md from the sources")
    b.add_argument("hours", nargs="*", type=_hour_number, metavar="NN", help=hours_help + "; default: all")
    b.add_argument("--check", action="store_true", help="write nothing; fail if a file is missing or out of date")
    b.add_argument("--root", help=root_help)
    b.set_defaults(func=cmd_build)

    r = commands.add_parser("run", help="execute notebooks and print a table of status and time")
    r.add_argument("hours", nargs="*", type=_hour_number, metavar="NN", help=hours_help + "; default: all built")
    r.add_argument("--profile", help=profile_help)
    r.add_argument("--student", action="store_true", help="run the hours/ notebooks (shows where exercises remain)")
    r.add_argument("--save", metavar="DIR", help="write the executed notebooks into DIR")
    r.add_argument("--timeout", type=int, metavar="S", help="seconds allowed per cell (default: no limit)")
    r.add_argument("--root", help=root_help)
    r.set_defaults(func=cmd_run)

    n = commands.add_parser("bench", help="execute solutions notebooks and print one JSON line of metrics each")
    n.add_argument("hours", nargs="+", type=_hour_number, metavar="NN", help=hours_help)
    n.add_argument("--profile", help=profile_help)
    n.add_argument("--timeout", type=int, metavar="S", help="seconds allowed per cell (default: no limit)")
    n.add_argument("--root", help=root_help)
    n.set_defaults(func=cmd_bench)

    d = commands.add_parser("doctor", help="print the environment and check what the notebooks need")
    d.add_argument("--compile", action="store_true", help="also compile a small function with torch.compile")
    d.set_defaults(func=cmd_doctor)
    g = commands.add_parser("grade", help="run students' notebooks through the self-checks (not a sandbox: it runs "
                                          "their code) and tabulate each exercise")
    g.add_argument("notebooks", nargs="+", type=Path, metavar="NOTEBOOK.ipynb")
    g.add_argument("--limit", type=float, default=300.0, help="seconds per notebook (default 300)")
    g.add_argument("--csv", type=Path, default=Path("grades.csv"), help="where to write the CSV (default grades.csv)")
    g.add_argument("--profile", default="smoke", help="the profile the notebooks run under (default smoke)")
    g.set_defaults(func=cmd_grade)

    s = commands.add_parser("slides", help="turn hours into reveal.js slides that work offline (student version: "
                            "answers hidden)")
    s.add_argument("hours", nargs="*", type=_hour_number, metavar="NN", help=hours_help + "; default: all built")
    s.add_argument("--solutions", action="store_true", help="the instructor's deck: from solutions/, each answer "
                   "a speaker note (S in the deck)")
    s.add_argument("--profile", help="execute the notebook under this profile first, so the slides show its outputs "
                   "(default: the notebook as stored, without outputs)")
    s.add_argument("--out", metavar="DIR", help="where to write the decks (default build/slides)")
    s.add_argument("--root", help=root_help)
    s.set_defaults(func=cmd_slides)

    w = commands.add_parser("site", help="build the course website from the hours executed under a profile")
    w.add_argument("hours", nargs="*", type=_hour_number, metavar="NN", help=hours_help + "; default: all built")
    w.add_argument("--profile", help=profile_help)
    w.add_argument("--out", metavar="DIR", help="where to write the site (default build/site)")
    w.add_argument("--root", help=root_help)
    w.set_defaults(func=cmd_site)

    f = commands.add_parser("fetch", help="download data files (sha256-verified) into the data directory, or into "
                            "the user's cache where that is read-only")
    f.add_argument("names", nargs="+", metavar="NAME", help="names of amla.toolkit.data.REMOTE_FILES, e.g. "
                   "sentence-polarity")
    f.set_defaults(func=cmd_fetch)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``amla`` and ``python -m amla``; returns the exit status."""
    try:
        args = parser().parse_args(argv)
    except SystemExit as exit_:  # --help, or a usage error argparse has already printed
        return exit_.code if isinstance(exit_.code, int) else 2
    try:
        return int(args.func(args))
    except (ValueError, FileNotFoundError) as err:  # BuildError is a ValueError
        print(f"amla {args.command}: error: {err}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as err:
        if (err.name or "").split(".")[0] not in TOOLS:
            raise
        print(f"amla {args.command}: error: {err.name} is missing; this command needs the instructor tools: "
              "pip install 'amla[tools]' (make setup installs them)", file=sys.stderr)
        return 2
