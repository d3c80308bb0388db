"""Helpers shared by the benchmark harnesses (bench/*.sh and their report.py).

Readings of `/usr/bin/time -v` and /proc, number formatting, the machine and version facts
that every report records, so the reports of different sections stay comparable, and the
machine-readable block of targets every report ends with (read by bench/assemble.py).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import time


def vm_hwm_kb(pid: int | str = "self") -> int:
    """Peak resident set size (VmHWM) of a live process, KiB."""
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def jvm_usage(spark) -> dict:
    """Peak RSS and CPU time of a SparkSession's JVM; call before spark.stop().

    The JVM is not a waited-for child of the Python driver, so /usr/bin/time on the driver misses
    it; /proc still has its figures while it runs.
    """
    pid = spark._jvm.java.lang.ProcessHandle.current().pid()
    stat = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime
    return {"jvm_pid": pid, "jvm_peak_rss_kb": vm_hwm_kb(pid), "jvm_cpu_s": cpu}


def parse_time(path: pathlib.Path) -> dict:
    """Fields of a `/usr/bin/time -v` report: wall s, user s, sys s, max RSS KiB."""
    out = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line.startswith("Elapsed (wall clock) time"):
            parts = [float(p) for p in line.rsplit(": ", 1)[1].split(":")]
            out["wall"] = sum(p * 60 ** i for i, p in enumerate(reversed(parts)))
        elif line.startswith("User time (seconds):"):
            out["user"] = float(line.split(": ")[1])
        elif line.startswith("System time (seconds):"):
            out["sys"] = float(line.split(": ")[1])
        elif line.startswith("Maximum resident set size (kbytes):"):
            out["rss_kb"] = int(line.split(": ")[1])
    return out


def sh(*cmd: str) -> str:
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        return (r.stdout or r.stderr).strip()
    except Exception as e:  # noqa: BLE001
        return f"n/a ({e})"


def timed_runs(out: pathlib.Path) -> dict[str, list[dict]]:
    """The runs a harness timed, by engine: `times.tsv` (engine, run, `/usr/bin/time -v` file)
    read with `parse_time`, plus `json` (the run's `<engine>.<run>.json`, when it wrote one) and
    `stdout` (its `logs/<engine>.<run>.out`)."""
    runs: dict[str, list[dict]] = {}
    for line in (out / "times.tsv").read_text().splitlines():
        engine, run, path = line.split("\t")
        t = parse_time(pathlib.Path(path))
        j = out / f"{engine}.{run}.json"
        if j.exists():
            t["json"] = json.loads(j.read_text())
        log = out / "logs" / f"{engine}.{run}.out"
        t["stdout"] = log.read_text().strip() if log.exists() else ""
        runs.setdefault(engine, []).append(t)
    return runs


def report_header(title: str, cmdline: str) -> list[str]:
    """The first lines of every report: its title, when it ran and the command that ran it."""
    return [f"# {title}", "",
            f"- Run: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M:%S} UTC",
            f"- Command: `{cmdline}`"]


def fmt_s(x: float | None) -> str:
    return "n/a" if x is None else (f"{x:.2f} s" if x < 100 else f"{x:.0f} s")


def fmt_mib(kb: float | None) -> str:
    return "n/a" if not kb else f"{kb / 1024:,.0f} MiB"


def stats(xs: list[float]) -> tuple[float | None, float | None]:
    return (min(xs), statistics.median(xs)) if xs else (None, None)


def java_version() -> str:
    out = sh("java", "-version")
    return out.splitlines()[0] if out else "?"


def machine_summary() -> str:
    """One line: CPUs, CPU model, memory, kernel."""
    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "?")
    mem_kb = next(int(ln.split()[1]) for ln in open("/proc/meminfo") if ln.startswith("MemTotal"))
    return (f"{os.cpu_count() or 1} CPUs (`nproc`), {cpu}, {mem_kb / 1024 / 1024:.1f} GiB RAM, "
            f"{platform.system()} {platform.release()}")


# The probe's fixed work: SHA-256 of PROBE_HASH_BYTES (the core), then PROBE_COPY_BYTES copied
# four times between two buffers larger than the L3 cache (memory bandwidth).
PROBE_HASH_BYTES = 256 << 20
PROBE_COPY_BYTES = 512 << 20


def speed_probe() -> dict:
    """Times a fixed piece of CPU work on one core, and reads the CPU time the hypervisor took.

    A VM's cores do not always run at one speed: the same binary on the same table can spend
    twice the CPU per GB an hour later with nothing else in the VM (bench/NOTES.md, 2026-12-03).
    A report that says how long this fixed work took at its start and end helps tell a slow host
    from a slow change. CPU seconds, not wall: that is what a busy host inflates."""
    zeros = bytes(PROBE_HASH_BYTES)
    start = time.process_time()
    hashlib.sha256(zeros).digest()
    sha = time.process_time() - start
    del zeros
    src, dst = bytearray(PROBE_COPY_BYTES), bytearray(PROBE_COPY_BYTES)
    dst[:] = src  # faults the pages in before the timing
    start = time.process_time()
    for _ in range(4):
        dst[:] = src
    copy = time.process_time() - start
    return {"sha256_s": sha, "copy_s": copy, "cpu_ticks": cpu_ticks()}


# The share of CPU time stolen by the hypervisor from which a report calls its machine shared
# (runs with that much stolen were the slow ones in bench/NOTES.md, 2026-12-03).
STOLEN_SHARED = 0.05


def cpu_ticks() -> dict:
    """The machine's total and stolen CPU time so far (/proc/stat, clock ticks)."""
    fields = [int(x) for x in pathlib.Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return {"total": sum(fields[:8]), "steal": fields[7] if len(fields) > 7 else 0}


def probe_lines(start_file: pathlib.Path) -> tuple[list[str], float]:
    """The host-speed bullet: the probe bench/lib.sh ran when the sampler started (start_file)
    against one run now; and the share of CPU time stolen in between (0 when unknown)."""
    try:
        first = json.loads(start_file.read_text())
    except (OSError, ValueError):
        return [], 0.0
    last = speed_probe()

    def work(probe: dict) -> str:
        return f"{probe['sha256_s']:.2f} + {probe['copy_s']:.2f} s"

    total = last["cpu_ticks"]["total"] - first["cpu_ticks"]["total"]
    steal = last["cpu_ticks"]["steal"] - first["cpu_ticks"]["steal"]
    share = steal / total if total > 0 else 0.0
    stolen = f"{100 * share:.1f} %" if total > 0 else "?"
    return [f"- Host speed (`benchlib.speed_probe`: SHA-256 of {PROBE_HASH_BYTES >> 20} MiB + "
            f"{4 * PROBE_COPY_BYTES >> 30} GiB of memcpy, CPU seconds on one core; lower is faster): start {work(first)}, end "
            f"{work(last)}; CPU time stolen by the hypervisor during the runs: {stolen}"], share


def machine_lines(busy_tsv: pathlib.Path) -> list[str]:
    """Markdown bullets: CPUs, memory, kernel, and whether other work shared the machine.

    busy_tsv is what bench/lib.sh's sampler wrote: time, 1-min load, compiler processes running.
    """
    busy = [ln.split("\t") for ln in busy_tsv.read_text().splitlines() if ln.count("\t") == 2] \
        if busy_tsv.exists() else []
    loads = [float(b[1]) for b in busy]
    compilers = [int(b[2]) for b in busy]
    ncpu = os.cpu_count() or 1
    probe, stolen = probe_lines(busy_tsv.with_name(busy_tsv.name + ".probe"))
    # A compiler, a load well above what this benchmark alone puts on the cores, or the host
    # taking a noticeable share of the CPU time (STOLEN_SHARED), means the figures were taken on
    # a shared machine.
    shared = bool(compilers and max(compilers) > 0) or bool(loads and max(loads) > ncpu * 0.75 + 1) \
        or stolen >= STOLEN_SHARED
    lines = [f"- {machine_summary()}", *probe]
    if loads:
        lines.append(f"- Load average (1 min) during the runs: start {loads[0]:.2f}, max {max(loads):.2f}, "
                     f"end {loads[-1]:.2f}; samples with a compiler (cargo/rustc/cc/ld) running: "
                     f"{sum(1 for c in compilers if c)}/{len(compilers)}")
    lines.append(f"- Machine shared with other work during the runs: "
                 f"**{'YES — figures are pessimistic/noisy' if shared else 'no (idle apart from this benchmark)'}**")
    return lines


def lake_version_lines(lake_bin: str, root: pathlib.Path) -> list[str]:
    """Markdown bullets naming the timed lake binary, its build time and the git state."""
    git = sh("git", "-C", str(root), "rev-parse", "--short", "HEAD")
    dirty = len([ln for ln in sh("git", "-C", str(root), "status", "--porcelain",
                                 "--untracked-files=no").splitlines() if ln.strip()])
    mtime = datetime.datetime.fromtimestamp(os.path.getmtime(lake_bin), datetime.timezone.utc)
    lines = []
    if "/debug/" in lake_bin:
        lines.append("- **WARNING: the timed lake binary is a DEBUG build: its figures are not representative.**")
    lines.append(f"- lake: `{sh(lake_bin, '--version')}` at `{lake_bin}` (built {mtime:%Y-%m-%d %H:%M} UTC); "
                 f"git {git}{f' + {dirty} modified tracked files' if dirty else ''}")
    return lines


def percentile(xs: list[float], p: float) -> float | None:
    """Nearest-rank percentile (p in 0..100): always a value that was measured."""
    if not xs:
        return None
    s = sorted(xs)
    return s[max(0, int(-(-len(s) * p // 100)) - 1)]  # index ceil(n * p / 100) - 1


def verdict_word(ok: bool | None) -> str:
    """The verdict vocabulary of the target blocks: met, NOT met, or n/a (not measurable)."""
    return "n/a" if ok is None else ("met" if ok else "NOT met")


def verdict_bold(ok: bool | None) -> str:
    """verdict_word in bold, for the bullets of a report's Targets section."""
    return f"**{verdict_word(ok)}**"


def target_block(section: str, quick: bool, targets: list[tuple[str, str, bool | None]]) -> list[str]:
    """The lines every report ends with, for bench/assemble.py: HTML comments (invisible when the
    Markdown is rendered), one naming the section and the mode, then one per target as
    `<!-- target: TARGET | MEASURED | met|NOT met|n/a -->`. targets: (target, measured, ok), ok
    None when the run could not measure it."""
    def clean(text: str) -> str:
        return " ".join(text.replace("|", "/").replace("-->", "->").replace("**", "").split())

    lines = ["", f"<!-- bench-report: section={section} mode={'quick' if quick else 'full'} -->"]
    lines += [f"<!-- target: {clean(t)} | {clean(m)} | {verdict_word(ok)} -->" for t, m, ok in targets]
    return lines


def machine_and_version_sections(busy_tsv: pathlib.Path, lake_bin: str, root: pathlib.Path,
                                 machine_notes: tuple[str, ...] = ()) -> list[str]:
    """The "## Machine" and "## Versions" sections every report starts with, up to the lake
    binary's bullets; the caller appends its own version bullets (peers, clients)."""
    return ["## Machine", "", *machine_lines(busy_tsv), *machine_notes, "",
            "## Versions", "", *lake_version_lines(lake_bin, root)]


if __name__ == "__main__" and sys.argv[1:] == ["probe"]:
    print(json.dumps(speed_probe()))
