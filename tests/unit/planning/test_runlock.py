"""Stale Snakemake locks: removed only when no recorded run can still be going on.

Records of other machines are written here the way those machines would
write them: a JSON file in the runs folder.
"""

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from pixelflow.planning import runlock

HOST = socket.gethostname()
BOOT_ID = Path("/proc/sys/kernel/random/boot_id").read_text(encoding="ascii").strip()
LONG_AGO = 1_000_000_000.0  # 2001, before this machine booted


def make_locks(snakemake_dir):
    locks = snakemake_dir / "locks"
    locks.mkdir(parents=True)
    (locks / "0.output.lock").write_text("results/a\n", encoding="utf-8")
    return locks


def ended_process_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def write_record(snakemake_dir, name, *, host, boot_id, pid, started, written=None):
    record = snakemake_dir / runlock.RUNS_FOLDER / name
    record.parent.mkdir(parents=True, exist_ok=True)
    body = {"host": host, "boot_id": boot_id, "pid": pid, "started": started, "written": written or time.time()}
    record.write_text(json.dumps(body), encoding="utf-8")
    return record


def records(snakemake_dir):
    return sorted(path.name for path in (snakemake_dir / runlock.RUNS_FOLDER).iterdir())


def test_locks_of_a_run_whose_process_ended_are_removed(tmp_path):
    locks = make_locks(tmp_path)
    pid = ended_process_pid()
    write_record(tmp_path, f"{HOST}-{pid}-12345.json", host=HOST, boot_id=BOOT_ID, pid=pid, started="12345")
    assert runlock.clear_stale_locks(tmp_path)
    assert not locks.exists()
    assert records(tmp_path) == [], "the dead run's record is kept"
    assert runlock.stale_lock_report(tmp_path) is None


def test_locks_of_a_live_run_are_kept(tmp_path):
    locks = make_locks(tmp_path)
    record = runlock.register_run(tmp_path, os.getpid())
    assert not runlock.clear_stale_locks(tmp_path)
    assert (locks / "0.output.lock").is_file()
    assert runlock.stale_lock_report(tmp_path) is None, "a live run of this machine owns its locks"
    runlock.end_run(record)
    assert runlock.clear_stale_locks(tmp_path)
    assert not locks.exists()


def test_a_record_names_this_machine_and_process(tmp_path):
    record = runlock.register_run(tmp_path, os.getpid())
    body = json.loads(record.read_text(encoding="utf-8"))
    assert body["host"] == HOST
    assert body["boot_id"] == BOOT_ID
    assert body["pid"] == os.getpid()
    assert body["started"] == runlock.process_start_time(os.getpid())
    assert records(tmp_path) == [record.name], "a partial file is left beside the record"


def test_a_reused_pid_does_not_pass_for_the_recorded_run(tmp_path):
    make_locks(tmp_path)
    wrong_start = str(int(runlock.process_start_time(os.getpid())) + 1)
    write_record(tmp_path, "reused.json", host=HOST, boot_id=BOOT_ID, pid=os.getpid(), started=wrong_start)
    assert runlock.clear_stale_locks(tmp_path)
    assert records(tmp_path) == []


@pytest.mark.parametrize("alive_here", [True, False], ids=["pid alive here", "pid unknown here"])
def test_locks_are_kept_while_a_run_of_another_host_is_recorded(tmp_path, alive_here):
    locks = make_locks(tmp_path)
    pid = os.getpid() if alive_here else ended_process_pid()
    started = runlock.process_start_time(os.getpid()) if alive_here else "777"
    other = f"{HOST}-login2"
    record = write_record(tmp_path, "login2.json", host=other, boot_id=str(uuid.uuid4()), pid=pid, started=started)
    assert not runlock.clear_stale_locks(tmp_path)
    assert (locks / "0.output.lock").is_file()
    assert record.is_file()
    message = runlock.stale_lock_report(tmp_path)
    assert f"host {other} (pid {pid})" in message
    assert str(locks) in message and str(record) in message and "snakemake --unlock" in message
    assert [run.record for run in runlock.uncheckable_runs(tmp_path)] == [record]


def test_a_run_of_this_host_name_before_its_last_boot_has_ended(tmp_path):
    locks = make_locks(tmp_path)
    write_record(
        tmp_path, "rebooted.json", host=HOST, boot_id=str(uuid.uuid4()), pid=os.getpid(), started="1", written=LONG_AGO
    )
    assert runlock.clear_stale_locks(tmp_path)
    assert not locks.exists()
    assert records(tmp_path) == []


def test_another_machine_with_this_host_name_is_not_taken_for_an_earlier_boot(tmp_path):
    locks = make_locks(tmp_path)
    record = write_record(tmp_path, "twin.json", host=HOST, boot_id=str(uuid.uuid4()), pid=4242, started="1")
    assert not runlock.clear_stale_locks(tmp_path)
    assert locks.is_dir() and record.is_file()
    assert f"host {HOST} (pid 4242)" in runlock.stale_lock_report(tmp_path)


def test_a_machine_without_a_boot_id_cannot_be_checked(tmp_path):
    make_locks(tmp_path)
    record = write_record(tmp_path, "no-boot-id.json", host=HOST, boot_id=None, pid=ended_process_pid(), started="1")
    assert not runlock.clear_stale_locks(tmp_path)
    assert record.is_file()


@pytest.mark.parametrize("content", [b"{not json", b"", b"[1, 2]", b'{"host": "login2"}', b"\xff\xfe"])
def test_a_garbled_record_keeps_the_locks_and_is_named(tmp_path, content):
    locks = make_locks(tmp_path)
    (tmp_path / runlock.RUNS_FOLDER).mkdir()
    record = tmp_path / runlock.RUNS_FOLDER / "garbled.json"
    record.write_bytes(content)
    assert not runlock.clear_stale_locks(tmp_path)
    assert locks.is_dir() and record.read_bytes() == content
    message = runlock.stale_lock_report(tmp_path)
    assert str(record) in message and "snakemake --unlock" in message


def test_ended_runs_of_this_machine_are_forgotten_beside_another_hosts_run(tmp_path):
    locks = make_locks(tmp_path)
    pid = ended_process_pid()
    write_record(tmp_path, "dead.json", host=HOST, boot_id=BOOT_ID, pid=pid, started="12345")
    write_record(tmp_path, "other.json", host="login2", boot_id=BOOT_ID, pid=pid, started="12345")
    assert not runlock.clear_stale_locks(tmp_path)
    assert locks.is_dir()
    assert records(tmp_path) == ["other.json"]
    assert runlock.stale_lock_report(tmp_path).count("pid") == 1


def test_several_uncheckable_runs_are_all_named(tmp_path):
    make_locks(tmp_path)
    write_record(tmp_path, "a.json", host="login2", boot_id=None, pid=11, started="1")
    write_record(tmp_path, "b.json", host="login3", boot_id=None, pid=22, started="1")
    message = runlock.stale_lock_report(tmp_path)
    assert "host login2 (pid 11) or a run on host login3 (pid 22)" in message


def test_old_style_records_are_checked_as_this_machines(tmp_path):
    locks = make_locks(tmp_path)
    folder = tmp_path / runlock.RUNS_FOLDER
    folder.mkdir()
    (folder / f"{os.getpid()}-{runlock.process_start_time(os.getpid())}").touch()
    (folder / f"{ended_process_pid()}-12345").touch()
    assert not runlock.clear_stale_locks(tmp_path)
    assert records(tmp_path) == [f"{os.getpid()}-{runlock.process_start_time(os.getpid())}"]
    assert runlock.stale_lock_report(tmp_path) is None
    (folder / f"{os.getpid()}-{runlock.process_start_time(os.getpid())}").unlink()
    assert runlock.clear_stale_locks(tmp_path)
    assert not locks.exists()


def test_a_record_being_written_is_ignored(tmp_path):
    make_locks(tmp_path)
    (tmp_path / runlock.RUNS_FOLDER).mkdir()
    (tmp_path / runlock.RUNS_FOLDER / ".login2-1-1.partial-1abc.json").write_text("{", encoding="utf-8")
    assert runlock.clear_stale_locks(tmp_path)


def test_nothing_happens_without_locks(tmp_path):
    assert not runlock.clear_stale_locks(tmp_path)
    (tmp_path / "locks").mkdir()
    assert not runlock.clear_stale_locks(tmp_path)
    assert (tmp_path / "locks").is_dir()
    write_record(tmp_path, "other.json", host="login2", boot_id=None, pid=11, started="1")
    assert runlock.stale_lock_report(tmp_path) is None


def test_start_time_is_none_for_an_ended_process():
    assert runlock.process_start_time(ended_process_pid()) is None
    assert runlock.process_start_time(os.getpid()) is not None
