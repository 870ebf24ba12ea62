import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest
from gate_fixtures import bench, run, samples

from ptq.host.cache import atomic_write, cache_dir


def test_atomic_write_replaces_the_file(tmp_path):
    target = tmp_path / "sub" / "f.bin"
    atomic_write(target, lambda fh: fh.write(b"one"))
    atomic_write(target, lambda fh: fh.write(b"two"))
    assert target.read_bytes() == b"two"
    assert os.listdir(target.parent) == ["f.bin"]


def test_a_crash_mid_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "f.bin"
    target.write_bytes(b"old")

    def crash(fh):
        fh.write(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, crash)
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["f.bin"]


def test_cache_dir_honours_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("PTQ_CACHE_DIR", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c" and cache_dir().is_dir()


# Issue 29 (bad inputs, round three), row 16: a kill -9 mid-save leaves a temporary file the next save
# of the same file removes; Ctrl-C or SIGTERM mid-write leaves the old file, no temporary file, one line.

# `ptq merge ... -o merged.json`, whose write signals its own process half-way through.
SIGNALLED = textwrap.dedent("""
    import os, signal, sys
    import ptq.cli.merge
    from ptq.cli import main
    from ptq.host.cache import atomic_write

    def signalled(path, write):
        def half(fh):
            fh.write(b"{" * 1_000_000)
            fh.flush()
            os.kill(os.getpid(), getattr(signal, sys.argv[1]))
            write(fh)
        return atomic_write(path, half)

    ptq.cli.merge.atomic_write = signalled
    sys.exit(main(["merge", "shard.json", "-o", "merged.json"]))
""")


def _temporaries(directory):
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


@pytest.fixture
def shard(tmp_path):
    (tmp_path / "shard.json").write_text(json.dumps(run(bench("m-fp32", samples(1e-3, n=2000)))))
    (tmp_path / "signalled.py").write_text(SIGNALLED)
    done = subprocess.run(
        [sys.executable, "-m", "ptq.cli", "merge", "shard.json", "-o", "merged.json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    return tmp_path


def _signalled(cwd, name: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "signalled.py", name], cwd=cwd, capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_a_kill_mid_write_leaves_the_old_file_and_the_next_write_removes_its_litter(shard):
    before = (shard / "merged.json").read_bytes()
    for _ in range(2):
        killed = _signalled(shard, "SIGKILL")
        assert killed.returncode == -signal.SIGKILL
        assert (shard / "merged.json").read_bytes() == before
        assert len(_temporaries(shard)) == 1  # the kill's, and only the latest: each write removed the one before
    again = subprocess.run(
        [sys.executable, "-m", "ptq.cli", "merge", "shard.json", "-o", "merged.json"],
        cwd=shard,
        capture_output=True,
        text=True,
    )
    assert again.returncode == 0 and _temporaries(shard) == []
    assert (shard / "merged.json").read_bytes() == before


@pytest.mark.slow
@pytest.mark.parametrize(("name", "code"), [("SIGINT", 130), ("SIGTERM", 143)])
def test_an_interrupt_mid_write_leaves_the_old_file_and_says_so_in_one_line(shard, name, code):
    before = (shard / "merged.json").read_bytes()
    done = _signalled(shard, name)
    said = "Ctrl-C" if name == "SIGINT" else "signal SIGTERM"
    assert done.returncode == code and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        f"ptq: interrupted ({said}); a file being written was left as it was (each write is a temporary file renamed "
        "into place, and the temporary file is removed): rerun the command"
    ]
    assert (shard / "merged.json").read_bytes() == before and _temporaries(shard) == []


WRITER = textwrap.dedent("""
    import sys
    from ptq.host.cache import atomic_write

    def slow(fh):
        fh.write(b"theirs")
        fh.flush()
        print("writing", flush=True)
        sys.stdin.readline()  # held open until the test says

    atomic_write(sys.argv[1], slow)
""")


def test_a_temporary_file_another_process_is_writing_is_left_alone(tmp_path):
    target = tmp_path / "f.json"
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(target)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert writer.stdout.readline() == "writing\n"
        [live] = _temporaries(tmp_path)
        atomic_write(target, lambda fh: fh.write(b"ours"))
        assert _temporaries(tmp_path) == [live] and target.read_bytes() == b"ours"
        writer.communicate("go\n", timeout=60)
    finally:
        writer.kill()
    assert writer.returncode == 0 and target.read_bytes() == b"theirs" and _temporaries(tmp_path) == []


def test_a_symlink_is_written_through_and_an_existing_files_mode_is_kept(tmp_path):
    real = tmp_path / "real.toml"
    real.write_bytes(b"old")
    real.chmod(0o640)
    link = tmp_path / "link.toml"
    link.symlink_to(real.name)
    assert atomic_write(link, lambda fh: fh.write(b"new")) == link
    assert link.is_symlink() and real.read_bytes() == b"new" and real.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.toml", "real.toml"]
