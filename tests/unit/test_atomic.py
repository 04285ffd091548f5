"""Atomic outputs: nothing half-written is ever left under the target's name."""

from pathlib import Path

import numpy as np
import pytest
from pixelflow.atomic import PARTIAL_MARK, atomic_dir, atomic_file, partial_name, write_bytes, write_text


class Boom(Exception):
    pass


def entries(folder: Path) -> list[str]:
    return sorted(entry.name for entry in folder.iterdir())


def test_partial_name_is_hidden_fresh_beside_the_target_and_keeps_the_suffix(tmp_path):
    target = tmp_path / "sub" / "stack.npy"
    names = {partial_name(target) for _ in range(50)}
    assert len(names) == 50
    for name in names:
        assert name.parent == target.parent
        assert name.suffix == ".npy"
        assert name.name.startswith(f".stack{PARTIAL_MARK}")


def test_atomic_file_writes_the_target_on_success(tmp_path):
    target = tmp_path / "deep" / "out.txt"
    with atomic_file(target) as temporary:
        assert temporary.parent == target.parent and temporary.suffix == ".txt"
        temporary.write_text("done")
        assert not target.exists()  # nothing visible under the final name before the end
    assert target.read_text() == "done"
    assert entries(target.parent) == ["out.txt"]


def test_atomic_file_suffix_lets_writers_choose_the_format(tmp_path):
    target = tmp_path / "array.npy"
    with atomic_file(target) as temporary:
        np.save(temporary, np.arange(5))  # np.save appends .npy unless the name already ends with it
    assert np.array_equal(np.load(target), np.arange(5))
    assert entries(tmp_path) == ["array.npy"]


def test_atomic_file_failure_leaves_no_target_and_no_partial(tmp_path):
    target = tmp_path / "out.bin"
    with pytest.raises(Boom), atomic_file(target) as temporary:
        temporary.write_bytes(b"half")
        raise Boom
    assert entries(tmp_path) == []


def test_atomic_file_failure_keeps_the_previous_target(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(Boom), atomic_file(target) as temporary:
        temporary.write_bytes(b"new but broken")
        raise Boom
    assert target.read_bytes() == b"old"
    assert entries(tmp_path) == ["out.bin"]


def test_atomic_file_replaces_the_previous_target_on_success(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    write_bytes(target, b"new")
    assert target.read_bytes() == b"new"
    write_text(target, "ünïcode")
    assert target.read_bytes() == "ünïcode".encode()
    assert entries(tmp_path) == ["out.bin"]


def test_atomic_file_body_that_writes_nothing_fails_cleanly(tmp_path):
    with pytest.raises(FileNotFoundError), atomic_file(tmp_path / "never.txt"):
        pass
    assert entries(tmp_path) == []


def test_atomic_dir_appears_only_complete(tmp_path):
    target = tmp_path / "shard-0000"
    with atomic_dir(target) as temporary:
        assert temporary.is_dir() and temporary.parent == tmp_path
        (temporary / "a.png").write_bytes(b"a")
        (temporary / "nested").mkdir()
        (temporary / "nested" / "b").write_bytes(b"b")
        assert not target.exists()
    assert entries(target) == ["a.png", "nested"]
    assert (target / "nested" / "b").read_bytes() == b"b"
    assert entries(tmp_path) == ["shard-0000"]


def test_atomic_dir_failure_leaves_no_target_and_no_partial(tmp_path):
    target = tmp_path / "shard-0000"
    with pytest.raises(Boom), atomic_dir(target) as temporary:
        (temporary / "a.png").write_bytes(b"a")
        raise Boom
    assert entries(tmp_path) == []


def test_atomic_dir_failure_keeps_the_previous_folder(tmp_path):
    target = tmp_path / "shard-0000"
    target.mkdir()
    (target / "old.png").write_bytes(b"old")
    with pytest.raises(Boom), atomic_dir(target) as temporary:
        (temporary / "new.png").write_bytes(b"new")
        raise Boom
    assert entries(target) == ["old.png"]
    assert entries(tmp_path) == ["shard-0000"]


@pytest.mark.parametrize("previous", ["empty folder", "full folder", "file"])
def test_atomic_dir_replaces_the_previous_target_on_success(tmp_path, previous):
    target = tmp_path / "shard-0000"
    if previous == "file":
        target.write_bytes(b"old")
    else:
        target.mkdir()
        if previous == "full folder":
            (target / "old.png").write_bytes(b"old")
    with atomic_dir(target) as temporary:
        (temporary / "new.png").write_bytes(b"new")
    assert entries(target) == ["new.png"]
    assert entries(tmp_path) == ["shard-0000"]


def test_stale_partials_of_a_file_are_removed_on_the_next_write(tmp_path):
    target = tmp_path / "stack.npy"
    stale_file = partial_name(target)
    stale_file.write_bytes(b"left by a killed job")
    stale_dir = tmp_path / f".stack{PARTIAL_MARK}999abcdef.npy"
    stale_dir.mkdir()
    (stale_dir / "junk").write_bytes(b"junk")
    unrelated = [tmp_path / "stack.npy.bak", tmp_path / f".stack{PARTIAL_MARK}1.png", tmp_path / ".other.npy"]
    for path in unrelated:
        path.write_bytes(b"keep me")
    write_bytes(target, b"fresh")
    assert target.read_bytes() == b"fresh"
    assert entries(tmp_path) == sorted(path.name for path in [target, *unrelated])


def test_stale_partials_of_a_folder_are_removed_on_the_next_write(tmp_path):
    target = tmp_path / "shard-0003"
    stale = partial_name(target)
    stale.mkdir()
    (stale / "image.png").write_bytes(b"half")
    other_shard = partial_name(tmp_path / "shard-0004")
    other_shard.mkdir()
    with atomic_dir(target) as temporary:
        (temporary / "manifest.tsv").write_text("index\n")
    assert entries(tmp_path) == sorted([other_shard.name, "shard-0003"])


def test_stale_partials_are_removed_even_when_the_new_write_fails(tmp_path):
    target = tmp_path / "out.txt"
    partial_name(target).write_text("stale")
    with pytest.raises(Boom), atomic_file(target) as temporary:
        temporary.write_text("broken")
        raise Boom
    assert entries(tmp_path) == []


def test_writing_one_target_spares_the_partial_of_another_being_written(tmp_path):
    # "montage" and "montage.png" are different targets; a write of the first must not
    # delete the in-progress partial of the second (which would make that write fail).
    with atomic_file(tmp_path / "montage.png") as temporary:
        temporary.write_bytes(b"png bytes")
        write_bytes(tmp_path / "montage", b"other target")
        assert temporary.exists()
    assert (tmp_path / "montage.png").read_bytes() == b"png bytes"
    assert entries(tmp_path) == ["montage", "montage.png"]
