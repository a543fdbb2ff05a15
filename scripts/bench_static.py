#!/usr/bin/env python3
"""The static binary next to the glibc one: `scripts/bench --static`.

Runs dist/envoke-x86_64-unknown-linux-musl (scripts/release) and target/release/envoke (cargo
build --release) against the same local OpenBao and moto (bench.py's servers), in interleaved
rounds so that background load falls on both alike, and measures:
  - launch time of `envoke run -- true` with 1 and 100 secrets (half AWS, half Vault), and
    envoke's CPU time for it (wait4: less shaken by the servers sharing the two cores), and with
    no references, next to `true` alone (the overhead),
  - the idle supervisor's private memory (RssAnon) and peak RSS, 100 references resolved,
  - `--mask` throughput: 64 MiB of text from the command through envoke's masking pump,
  - the binary's size.
The table replaces the section between `<!-- static:start -->` and `<!-- static:end -->` of
docs/benchmarks.md (and goes to stdout).
"""
import datetime
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402  (the servers, manifests and timing of the main benchmark)

ROOT = bench.ROOT
BINARIES = {
    "glibc": ROOT / "target" / "release" / "envoke",
    "static": ROOT / "dist" / "envoke-x86_64-unknown-linux-musl",
}
RUNS = int(os.environ.get("BENCH_RUNS", "21"))
MASK_BYTES = 64 * 1024 * 1024
MASK_RUNS = 5


def mask_throughput(binary, env, cwd):
    """MiB/s of text through `--mask` (one value to mask), envoke's stdout to /dev/null."""
    command = [str(binary), "run", "--mask", "-m", "mixed-1.toml", "--", "sh", "-c",
               f"yes 'a line of ordinary log output, nothing secret in it' | head -c {MASK_BYTES}"]
    walls = [bench.launch(command, env, cwd)[0] for _ in range(MASK_RUNS)]
    return MASK_BYTES / (1024 * 1024) / statistics.median(walls)


def idle_memory(binary, env, cwd):
    """RssAnon and VmHWM (kB) of a supervising envoke, highest of three."""
    bench.ENVOKE = binary
    profiles = [bench.idle_profile(env, cwd)[0] for _ in range(3)]
    return max(p["RssAnon"] for p in profiles), max(p["VmHWM"] for p in profiles)


def main():
    for name, path in BINARIES.items():
        if not path.exists():
            raise SystemExit(f"{path} is missing ({name}): scripts/bench --static builds both")
    with tempfile.TemporaryDirectory() as workdir:
        servers = bench.Servers(workdir)
        try:
            servers.seed(100)
            env = dict(servers.env)
            for n in (1, 100):
                (Path(workdir) / f"mixed-{n}.toml").write_text(bench.manifest(n))
            (Path(workdir) / "envoke.toml").write_text(bench.manifest(100))
            (Path(workdir) / "none.toml").write_text("[env]\n")
            launches = {("true", None): ["true"]}
            for name, binary in BINARIES.items():
                launches[(name, 0)] = [str(binary), "run", "-m", "none.toml", "--", "true"]
                for n in (1, 100):
                    launches[(name, n)] = [str(binary), "run", "-m", f"mixed-{n}.toml", "--",
                                           "true"]
            for command in launches.values():
                bench.launch(command, env, workdir)  # warm the servers' caches
            times = {label: [] for label in launches}
            cpu = {label: [] for label in launches}
            for _ in range(RUNS):
                for label, command in launches.items():
                    time.sleep(0.1)
                    wall, used = bench.launch(command, env, workdir)
                    times[label].append(wall)
                    cpu[label].append(used)
            median = {label: statistics.median(t) for label, t in times.items()}
            cpu = {label: statistics.median(c) for label, c in cpu.items()}
            memory = {name: idle_memory(binary, env, workdir) for name, binary in BINARIES.items()}
            mask = {name: mask_throughput(binary, env, workdir)
                    for name, binary in BINARIES.items()}
        finally:
            servers.stop()

    true = median[("true", None)]
    out = [f"Produced by `scripts/bench --static` on {datetime.date.today().isoformat()}, on "
           f"{bench.machine()}: both binaries from the same commit, {RUNS} interleaved rounds, "
           "medians; the command is `true`.\n",
           "| | glibc (`cargo build --release`) | static (musl, `scripts/release`) | static ÷ glibc |",
           "|---|---:|---:|---:|"]

    def row(what, glibc, static, text=bench.ms, ratio=True):
        out.append(f"| {what} | {text(glibc)} | {text(static)} | "
                   f"{f'{static / glibc:.2f}×' if ratio else '—'} |")

    for n in (1, 100):
        row(f"launch, {n} secret{'s' if n > 1 else ''}", median[("glibc", n)],
            median[("static", n)])
        row(f"... envoke's CPU for it (user + system)", cpu[("glibc", n)], cpu[("static", n)])
    row("launch, no references", median[("glibc", 0)], median[("static", 0)])
    row(f"overhead over `true` ({bench.ms(true)})", median[("glibc", 0)] - true,
        median[("static", 0)] - true)
    row("idle supervisor, private memory (RssAnon)", memory["glibc"][0], memory["static"][0],
        lambda kb: f"{kb} kB")
    row("idle supervisor, peak RSS", memory["glibc"][1], memory["static"][1],
        lambda kb: f"{kb} kB")
    row("`--mask` throughput, 64 MiB of text", mask["glibc"], mask["static"],
        lambda mibs: f"{mibs:.0f} MiB/s")
    row("binary size", BINARIES["glibc"].stat().st_size, BINARIES["static"].stat().st_size,
        lambda size: f"{size / 1e6:.1f} MB")
    out.append("")
    bench.write_section("static", out)


if __name__ == "__main__":
    main()
