"""A client's recorded proof: what its last successful proof or pull depended on, so a re-run can skip it.

After a proof (or a pull) succeeded, `<workdir>/.dvc/tmp/provision-proof` (outside git: DVC ignores
`.dvc/tmp`; written as the connecting user, 0600) holds one line, `<kind> <digest>`. The digest covers
two halves:

- the client's half, computed on the client by a small constant Python script (standard library, no
  dvc started): HEAD, every `.dvc` file and `dvc.lock` of the work tree, the user's `~/.ssh/known_hosts`
  (pins and `@revoked` lines), `.dvc/config`, the
  `config.local` lines that hold no credential, and an lstat manifest (path, mode, size, mtime, inode)
  of every path those files name, recursively;
- the controller's half: the non-secret remote settings, the client key's fingerprint, storage's
  pinned host keys and the dvc build (version, guard).

A re-run reads the client's half in its fact batch; when both halves give the recorded digest, the
proof still holds. Any difference (a missing, extra or changed file, a new commit, a rotated key,
another dvc) runs the real step. Kind `data` also says the work tree held all the data then (a pull or
a status that found nothing missing); kind `access` proves access only.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from provision.engine import HostContext
from provision.facts import Fact
from provision.remote import BatchOutput

RECORD_PATH = ".dvc/tmp/provision-proof"
ACCESS = "access"
DATA = "data"

# argv: MODE ("read" or "write"), WORKDIR, RECORD (relative to WORKDIR), CREDENTIAL_KEYS (comma-separated),
# then for "write": KIND, CONTROLLER_DIGEST. "read" prints the recorded line (or "none"), the client's
# half of the digest, then every .dvc file and dvc.lock, each after a line "---". "write" records.
_PROOF_SCRIPT = r"""
import hashlib, os, re, stat, subprocess, sys

mode, workdir, record, credential_keys = sys.argv[1:5]
secret = re.compile(r"\s*(%s)\s*=" % "|".join(re.escape(k) for k in credential_keys.split(",") if k), re.I)
path_line = re.compile(r"^\s*(?:-\s+)?path:\s*(.+?)\s*$")


def git(*args):
    done = subprocess.run(["git", "-C", workdir, *args], capture_output=True)
    return done.stdout if done.returncode == 0 else b""


def read(path):
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError:
        return None


def manifest(path, name, out):
    try:
        st = os.lstat(path)
    except OSError:
        out.append("%s absent" % name)
        return
    out.append("%s %o %d %d %d" % (name, st.st_mode, st.st_size, st.st_mtime_ns, st.st_ino))
    if stat.S_ISDIR(st.st_mode):
        try:
            entries = sorted(os.listdir(path))
        except OSError:
            out.append("%s unreadable" % name)
            return
        for entry in entries:
            manifest(os.path.join(path, entry), name + "/" + entry, out)


def client_half():
    digest = hashlib.sha256()
    listed = git("ls-files", "-z", "-c", "-o", "--exclude-standard", "--", "*.dvc", "dvc.lock", "*/dvc.lock")
    files = sorted(set(name for name in listed.decode("utf-8", "surrogateescape").split("\0") if name))
    digest.update(b"head " + git("rev-parse", "--verify", "-q", "HEAD") + b"\n")
    stream, outputs = [], []
    for name in files:
        content = read(os.path.join(workdir, name)) or b""
        digest.update(("file %s %s\n" % (name, hashlib.sha256(content).hexdigest())).encode("utf-8", "surrogateescape"))
        stream.append(b"---\n" + content + (b"" if content.endswith(b"\n") or not content else b"\n"))
        base = os.path.dirname(name)
        for line in content.decode("utf-8", "replace").splitlines():
            found = path_line.match(line)
            if found:
                value = found.group(1)
                if len(value) > 1 and value[0] == value[-1] and value[0] in "'\"":
                    value = value[1:-1]
                outputs.append(os.path.normpath(os.path.join(base, value)))
    known_hosts = read(os.path.expanduser("~/.ssh/known_hosts")) or b""
    digest.update(b"known_hosts " + hashlib.sha256(known_hosts).hexdigest().encode() + b"\n")
    config = read(os.path.join(workdir, ".dvc", "config")) or b""
    digest.update(b"config " + hashlib.sha256(config).hexdigest().encode() + b"\n")
    local = read(os.path.join(workdir, ".dvc", "config.local")) or b""
    kept = [line for line in local.decode("utf-8", "surrogateescape").splitlines() if not secret.match(line)]
    digest.update(("local %s\n" % "\n".join(kept)).encode("utf-8", "surrogateescape"))
    entries = []
    for name in sorted(set(outputs)):
        manifest(os.path.join(workdir, name), name, entries)
    digest.update("\n".join(entries).encode("utf-8", "surrogateescape"))
    return digest.hexdigest(), b"".join(stream)


target = os.path.join(workdir, record)
if mode == "read":
    if not os.path.isdir(os.path.join(workdir, ".git")):
        sys.stdout.write("none\nabsent\n")
        sys.exit(0)
    line = (read(target) or b"none").decode("ascii", "replace").strip() or "none"
    half, stream = client_half()
    sys.stdout.write(line.splitlines()[0] + "\n" + half + "\n")
    sys.stdout.flush()
    sys.stdout.buffer.write(stream)
else:
    kind, controller = sys.argv[5:7]
    half, _ = client_half()
    digest = hashlib.sha256(("%s\n%s" % (half, controller)).encode()).hexdigest()
    os.makedirs(os.path.dirname(target), mode=0o700, exist_ok=True)
    staged = "%s.%d" % (target, os.getpid())
    fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write("%s %s\n" % (kind, digest))
    os.replace(staged, target)
"""


def combined_digest(client_half: str, controller_half: str) -> str:
    """The recorded digest from its two halves (the script computes it the same way)."""
    return hashlib.sha256(f"{client_half}\n{controller_half}".encode()).hexdigest()


def controller_half(inputs: Mapping[str, object]) -> str:
    """The digest of what only the controller knows: settings, key fingerprint, pins, dvc build."""
    return hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()


@dataclass(frozen=True)
class ProofState:
    """What the client's record says, the client's half of the digest now, and its .dvc files."""

    recorded_kind: str | None
    recorded_digest: str | None
    client_half: str | None
    dvc_files: str

    def holds(self, controller: str, *, kind: str) -> bool:
        """The record is of `kind` (`data` counts as `access` too) and both halves still give its digest."""
        if self.recorded_digest is None or self.client_half is None:
            return False
        if kind == DATA and self.recorded_kind != DATA:
            return False
        return self.recorded_digest == combined_digest(self.client_half, controller)


def proof_argv(mode: str, workdir: str, credential_keys: Sequence[str], *extra: str) -> list[str]:
    return ["python3", "-I", "-c", _PROOF_SCRIPT, mode, workdir, RECORD_PATH, ",".join(sorted(credential_keys)),
            *extra]


@dataclass(frozen=True)
class ProofRecordFact(Fact):
    """The recorded proof of a checkout and the client's half of its digest now, read as the connecting user."""

    workdir: str
    credential_keys: tuple[str, ...]

    @property
    def key(self) -> tuple[str, str]:
        return ("proof-record", self.workdir)

    def argv(self) -> list[str]:
        return proof_argv("read", self.workdir, self.credential_keys)

    def parse(self, output: BatchOutput) -> ProofState:
        lines = output.stdout.split("\n", 2)
        if output.rc != 0 or len(lines) < 2 or lines[1] == "absent":
            return ProofState(None, None, None, "")
        kind, _, digest = lines[0].partition(" ")
        recorded = kind in (ACCESS, DATA) and len(digest) == 64
        return ProofState(kind if recorded else None, digest if recorded else None, lines[1],
                          lines[2] if len(lines) > 2 else "")


def record_proof(ctx: HostContext, fact: ProofRecordFact, controller: str, *, kind: str) -> None:
    """Write the record after a successful proof (kind `data`: the work tree holds all the data too)."""
    ctx.run(proof_argv("write", fact.workdir, fact.credential_keys, kind, controller),
            f"recording the proof in {fact.workdir}/{RECORD_PATH}")
    ctx.forget(fact)
