"""Is a committed record still what today's code gives? (issue 26). The checks of :mod:`revgnn.measure.registry`.

:func:`check` compares a record with today's code the way its kinds ask: its memory sample or probe measured again
(the same bytes), its training or model fingerprint computed again (the same numbers, to
:data:`~revgnn.measure.fingerprint.RTOL`). :func:`stale_line` says in one line which record is stale, why and the
command that regenerates it; :func:`regenerate` runs that command and writes the record's fingerprint
(:func:`fingerprint`). A record's training commands are read by the command line's own parser, which this package may
not import: the caller passes it as ``parse`` (``revgnn records`` does), so a default changed in the parser changes
the fingerprint as it changes the runs.
"""
from __future__ import annotations

import datetime
import logging
import os
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from revgnn.training.records import git_revision, read_json, write_json

from .fingerprint import FINGERPRINT_VERSION, differences, model_numerics, training_numerics
from .registry import Record, memory_rows

__all__ = ["ROOT", "Parse", "fingerprint", "check", "stale_line", "regenerate", "attach_fingerprint", "command_argv",
           "run_command", "load"]

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]   # the repository root: records and benchmarks are read from here
Parse = Callable[[str], tuple]               # a ``revgnn train`` command line -> (ModelConfig, TrainConfig)


def load(record: Record, root: Path = ROOT) -> dict:
    """The record's content; a FileNotFoundError naming the command that writes it."""
    path = root / record.file
    if not path.is_file():
        raise FileNotFoundError(f"{record.file} does not exist; write it with `{record.command}`")
    return read_json(path)


def command_argv(command: str) -> tuple[list[str], dict[str, str]]:
    """A registered command as (argv, environment changes): ``python`` is this interpreter; ``env -u NAME`` unsets."""
    words = shlex.split(command)
    unset = []
    if words[0] == "env":
        words = words[1:]
        while words[0] == "-u":
            unset.append(words[1])
            words = words[2:]
    if words[0] == "python":
        words[0] = sys.executable
    env = {name: None for name in unset}
    return words, env


def run_command(argv: list[str], env_changes: dict, root: Path, timeout: float | None = None,
                capture: bool = True) -> subprocess.CompletedProcess:
    """Run ``argv`` in ``root`` with ``root`` first on PYTHONPATH, one torch thread unless the environment says
    otherwise, and the environment changes of :func:`command_argv` (a value None unsets)."""
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")]))
    for name, value in env_changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return subprocess.run(argv, cwd=root, env=env, capture_output=capture, text=True, timeout=timeout)


def _measure(record: Record, extra: tuple[str, ...], root: Path) -> dict:
    """Run the record's command with ``extra`` arguments into a temporary file; its memory rows."""
    argv, env = command_argv(record.command)
    with tempfile.TemporaryDirectory(prefix="revgnn-records-") as tmp:
        out = Path(tmp) / record.stem
        done = run_command([*argv, *extra, "--out", str(out)], env, root, timeout=1800)
        if done.returncode != 0 or not out.is_file():
            raise RuntimeError(f"`{' '.join(shlex.quote(a) for a in [*argv, *extra])}` failed "
                               f"({done.returncode}): {done.stderr.strip()[-800:]}")
        return memory_rows(record.name, read_json(out))


def _key(key) -> str:
    return " | ".join(map(str, key)) if isinstance(key, tuple) else str(key)


def _training_commands(record: Record, content: dict) -> dict[str, str]:
    commands = {c: c for c in record.commands}
    if record.rows_have_commands:
        commands.update({row["name"]: row["command"] for row in content.get("rows", [])})
    return commands


def fingerprint(record: Record, content: dict, parse: Parse, root: Path = ROOT) -> dict:
    """Today's fingerprint of a record: the training numbers of its commands, the model numbers of its ``models``,
    the bytes of its probe (see :mod:`revgnn.measure.registry`), with the revision that computed them."""
    fp: dict = {"version": FINGERPRINT_VERSION}
    commands = _training_commands(record, content)
    if commands:
        fp["training"] = {key: training_numerics(*parse(cmd)) for key, cmd in commands.items()}
    if record.models:
        fp["models"] = {name: model_numerics(cfg, train) for name, cfg, train in record.models}
    if record.probe:
        rows = _measure(record, record.probe, root)
        fp["probe"] = {"arguments": list(record.probe), "rows": {_key(k): v for k, v in rows.items()}}
    fp["git_revision"] = git_revision()
    fp["date"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    return fp


def _memory_problems(recorded: dict, fresh: dict, what: str) -> list[str]:
    problems = []
    for key, row in fresh.items():
        old = recorded.get(key)
        if old is None:
            problems.append(f"{what}: no recorded point {_key(key)}")
            continue
        for name in sorted(set(row) & set(old)):
            if row[name] != old[name]:
                problems.append(f"{what} {_key(key)}: {name} {old[name]:,} (recorded) != {row[name]:,} (today)")
    return problems


def check(record: Record, parse: Parse, root: Path = ROOT) -> list[str]:
    """Why the record is not what today's code gives, one short line per reason; ``[]`` when it is fresh."""
    try:
        content = load(record, root)
    except FileNotFoundError as err:
        return [str(err)]
    problems = []
    fp = content.get("fingerprint")
    wants = bool(_training_commands(record, content) or record.models or record.probe)
    if wants and not isinstance(fp, dict):
        return ["it carries no fingerprint of its computation"]
    if wants and fp.get("version") != FINGERPRINT_VERSION:
        return [f"its fingerprint is of version {fp.get('version')}, today's procedure is {FINGERPRINT_VERSION}"]
    commands = _training_commands(record, content)
    for key, cmd in commands.items():
        fresh = training_numerics(*parse(cmd))
        problems += [f"training numbers of {key!r}: {d}" for d in
                     differences((fp.get("training") or {}).get(key) or {}, fresh)[:2]]
    for name, cfg, train in record.models:
        fresh = model_numerics(cfg, train)
        problems += [f"model numbers of {name!r}: {d}" for d in
                     differences((fp.get("models") or {}).get(name) or {}, fresh)[:2]]
    if record.probe:
        fresh = {_key(k): v for k, v in _measure(record, record.probe, root).items()}
        problems += _memory_problems((fp.get("probe") or {}).get("rows") or {}, fresh, "probe")
    if record.sample:
        recorded = memory_rows(record.name, content)
        for extra in record.sample:
            problems += _memory_problems(recorded, _measure(record, extra, root), "sample")
    return problems


def stale_line(record: Record, problems: list[str]) -> str:
    """One line: the stale record, its first reason and the command that regenerates it."""
    memory_only = record.memory_command and all(p.startswith(("sample", "probe")) for p in problems)
    command = record.memory_command if memory_only else record.command
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return (f"{record.file} is stale: {problems[0]}{more}; regenerate it with `revgnn records regenerate "
            f"{record.name}{' --memory' if memory_only else ''}` ({command})")


def regenerate(record: Record, parse: Parse, root: Path = ROOT, memory_only: bool = False) -> dict:
    """Run the record's command (``memory_command`` with ``memory_only``), then write its fingerprint into it.

    Returns:
        ``{"seconds", "loadavg_start", "loadavg_end"}`` of the command (a timing record needs an idle machine: the
        load average says whether it had one).
    """
    import time

    command = record.memory_command if memory_only else record.command
    if not command:
        raise ValueError(f"{record.name} has no memory-only command; run `revgnn records regenerate {record.name}`")
    argv, env = command_argv(command)
    start_load, start = os.getloadavg(), time.perf_counter()
    log.info("%s: %s (about %d s)", record.name, command, record.cost_s)
    done = run_command(argv, env, root, capture=False)
    if done.returncode != 0:
        raise RuntimeError(f"`{command}` failed with exit status {done.returncode}")
    seconds = time.perf_counter() - start
    content = load(record, root)
    content["fingerprint"] = fingerprint(record, content, parse, root)
    write_json(root / record.file, content)
    return {"seconds": seconds, "loadavg_start": list(start_load), "loadavg_end": list(os.getloadavg())}


def attach_fingerprint(record: Record, parse: Parse, root: Path = ROOT) -> dict:
    """Write today's fingerprint into a record without running its command: for a record whose numbers were shown to
    be today's by another route (its revision's fingerprint computed with that revision's code, equal to today's)."""
    content = load(record, root)
    content["fingerprint"] = fingerprint(record, content, parse, root)
    write_json(root / record.file, content)
    return content["fingerprint"]
