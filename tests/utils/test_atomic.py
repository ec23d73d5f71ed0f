import json

import pytest

from amcprune.utils.atomic import append_jsonl, atomic_path, read_jsonl, write_json_atomic


def test_atomic_path_leaves_nothing_on_error(tmp_path):
    target = tmp_path / "out.bin"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("killed")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_atomic_path_replaces_existing_only_on_success(tmp_path):
    target = tmp_path / "out.json"
    write_json_atomic(target, {"a": 1})
    with pytest.raises(ValueError):
        with atomic_path(target) as tmp:
            tmp.write_text("{broken")
            raise ValueError
    assert json.loads(target.read_text()) == {"a": 1}
    write_json_atomic(target, {"a": 2})
    assert json.loads(target.read_text()) == {"a": 2}


def test_read_jsonl_ignores_torn_last_line(tmp_path):
    path = tmp_path / "r.jsonl"
    append_jsonl(path, {"i": 0})
    append_jsonl(path, {"i": 1})
    with open(path, "a") as fh:
        fh.write('{"i": 2, "trunc')
    assert [r["i"] for r in read_jsonl(path)] == [0, 1]
    assert read_jsonl(tmp_path / "missing.jsonl") == []


def test_atomic_files_get_the_usual_mode(tmp_path):
    import os

    umask = os.umask(0o022)
    try:
        write_json_atomic(tmp_path / "m.json", {})
    finally:
        os.umask(umask)
    assert (tmp_path / "m.json").stat().st_mode & 0o777 == 0o644
