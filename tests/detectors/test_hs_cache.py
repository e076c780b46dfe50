"""Compiled Hyperscan databases are reused across processes only when they are intact and private."""
from __future__ import annotations

from pathlib import Path

import pytest

from detectors import _hs

PATTERNS = [r"ignore\s+previous", r"sk-[a-z0-9]{8}"]
FLAGS = [_hs.CASELESS | _hs.SINGLEMATCH, _hs.SINGLEMATCH]
TEXT = b"please IGNORE   previous rules, key sk-abcd1234"


@pytest.fixture()
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "hs"
    monkeypatch.setenv(_hs.CACHE_DIR_ENV, str(directory))
    return directory


@pytest.fixture()
def builds(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = _hs._build

    def counted(mode, exprs, flags):
        calls.append(len(exprs))
        return real(mode, exprs, flags)

    monkeypatch.setattr(_hs, "_build", counted)
    return calls


def _files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.hsdb"))


def test_a_second_compile_loads_the_stored_database_and_scans_the_same(cache_dir: Path, builds: list[int]) -> None:
    first = _hs.scan_ids(_hs.compile_block(PATTERNS, FLAGS), TEXT)
    again = _hs.scan_ids(_hs.compile_block(PATTERNS, FLAGS), TEXT)
    assert first == again == {0, 1}
    assert builds == [2]
    (stored,) = _files(cache_dir)
    assert stored.stat().st_mode & 0o777 == 0o600
    assert cache_dir.stat().st_mode & 0o777 == 0o700


def test_stream_databases_are_stored_and_loaded_too(cache_dir: Path, builds: list[int]) -> None:
    for _ in range(2):
        db = _hs.compile_stream([r"secret-[0-9]{4}"], [0])
        found: list[int] = []

        def on_match(pid: int, *rest: object) -> None:
            found.append(pid)

        # The binding keeps no reference to the handler: this frame holds it.
        with db.stream(match_event_handler=on_match) as stream:
            stream.scan(b"the secre")
            stream.scan(b"t-1234 ends")
        assert found == [0]
    assert builds == [1]


def test_another_pattern_set_or_flag_is_another_file(cache_dir: Path, builds: list[int]) -> None:
    _hs.compile_block(PATTERNS, FLAGS)
    _hs.compile_block(PATTERNS[:1], FLAGS[:1])
    _hs.compile_block(PATTERNS, [_hs.SINGLEMATCH, _hs.SINGLEMATCH])
    assert len(_files(cache_dir)) == 3
    assert builds == [2, 1, 2]


def test_a_damaged_file_is_ignored_compiled_again_and_replaced(cache_dir: Path, builds: list[int]) -> None:
    _hs.compile_block(PATTERNS, FLAGS)
    (stored,) = _files(cache_dir)
    raw = bytearray(stored.read_bytes())
    raw[-5] ^= 0xFF  # a flipped byte Hyperscan itself would load and run
    stored.write_bytes(bytes(raw))
    assert _hs.scan_ids(_hs.compile_block(PATTERNS, FLAGS), TEXT) == {0, 1}
    stored.write_bytes(bytes(raw[:40]))  # a truncated file
    assert _hs.scan_ids(_hs.compile_block(PATTERNS, FLAGS), TEXT) == {0, 1}
    assert builds == [2, 2, 2]
    assert _hs._load(stored, _hs.hyperscan.HS_MODE_BLOCK) is not None  # the last build was stored intact


def test_a_file_or_directory_others_can_write_is_not_trusted(cache_dir: Path, builds: list[int]) -> None:
    _hs.compile_block(PATTERNS, FLAGS)
    (stored,) = _files(cache_dir)
    stored.chmod(0o622)
    _hs.compile_block(PATTERNS, FLAGS)
    stored.chmod(0o600)
    cache_dir.chmod(0o777)
    _hs.compile_block(PATTERNS, FLAGS)
    cache_dir.chmod(0o700)
    _hs.compile_block(PATTERNS, FLAGS)
    assert builds == [2, 2, 2]


def test_a_symlink_in_place_of_a_stored_file_is_not_followed(cache_dir: Path, builds: list[int], tmp_path: Path) -> None:
    _hs.compile_block(PATTERNS, FLAGS)
    (stored,) = _files(cache_dir)
    elsewhere = tmp_path / "elsewhere.hsdb"
    elsewhere.write_bytes(stored.read_bytes())
    elsewhere.chmod(0o600)
    stored.unlink()
    stored.symlink_to(elsewhere)
    _hs.compile_block(PATTERNS, FLAGS)
    assert builds == [2, 2]


def test_without_the_variable_nothing_is_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 builds: list[int]) -> None:
    monkeypatch.delenv(_hs.CACHE_DIR_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    _hs.compile_block(PATTERNS, FLAGS)
    _hs.compile_block(PATTERNS, FLAGS)
    assert builds == [2, 2]
    assert list(tmp_path.rglob("*.hsdb")) == []


def test_an_unwritable_directory_only_costs_the_reuse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      builds: list[int]) -> None:
    blocked = tmp_path / "file-not-dir"
    blocked.write_text("x")
    monkeypatch.setenv(_hs.CACHE_DIR_ENV, str(blocked / "hs"))
    assert _hs.scan_ids(_hs.compile_block(PATTERNS, FLAGS), TEXT) == {0, 1}
    assert builds == [2]


