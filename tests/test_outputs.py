"""hear_gram/outputs.py: the output rule every tool uses (checked before work, atomic, no temporary left)."""

import os

import pytest

from hear_gram.outputs import OutputError, atomic_path, check_output, stale_temporaries, write_text


def test_check_output_rules(tmp_path):
    (tmp_path / "in.wav").write_bytes(b"x")
    (tmp_path / "old.npz").write_bytes(b"x")
    assert check_output(tmp_path / "new.npz", option="--out") == str(tmp_path / "new.npz")
    assert check_output(tmp_path / "old.npz", overwrite=True) == str(tmp_path / "old.npz")
    for path, kw, match in [
        (tmp_path / "old.npz", {}, "exists; pass --overwrite to replace it"),
        (tmp_path / "in.wav", {"overwrite": True, "inputs": [str(tmp_path / ".." / tmp_path.name / "in.wav")]},
         "is also an input"),
        (tmp_path / "no" / "x.npz", {}, "does not exist"),
        (tmp_path, {}, "is an existing directory"),
        ("", {}, "empty path"),
    ]:
        with pytest.raises(OutputError, match=match):
            check_output(path, **kw)


@pytest.mark.parametrize("error", [ValueError("writer bug"), KeyboardInterrupt()])
def test_a_failed_write_keeps_the_old_file_and_removes_its_temporary(tmp_path, error):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(type(error)):
        with atomic_path(target) as tmp:
            open(tmp, "wb").write(b"half")
            raise error
    assert os.listdir(tmp_path) == ["out.bin"] and target.read_bytes() == b"old"


def test_new_files_get_the_usual_mode_and_existing_ones_keep_theirs(tmp_path):
    old = os.umask(0o027)
    try:
        write_text(tmp_path / "a.txt", "a")
        (tmp_path / "b.txt").write_text("b")
        os.chmod(tmp_path / "b.txt", 0o600)
        write_text(tmp_path / "b.txt", "new b")
    finally:
        os.umask(old)
    assert oct(os.stat(tmp_path / "a.txt").st_mode & 0o777) == "0o640"
    assert oct(os.stat(tmp_path / "b.txt").st_mode & 0o777) == "0o600" and (tmp_path / "b.txt").read_text() == "new b"


def test_stale_temporaries_are_found(tmp_path):
    (tmp_path / ".ckpt.pt.abc123.tmp").write_bytes(b"")
    (tmp_path / ".other.abc.tmp").write_bytes(b"")
    assert [os.path.basename(p) for p in stale_temporaries(tmp_path / "ckpt.pt")] == [".ckpt.pt.abc123.tmp"]
