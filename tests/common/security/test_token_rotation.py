"""Token rotation: the files it writes, and what a service's TokenFile accepts after it."""

from __future__ import annotations

import multiprocessing
import os
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from libs.common import names
from libs.common.errors import Unauthorized
from libs.common.security.accepted_tokens import TokenFile
from libs.common.security.api_token import ensure_token, read_token
from libs.common.security.token_rotation import previous_path, read_previous, rotate_token
from libs.runtime.token_cmds import token as token_command

NOW = 1_800_000_000.0


class Clock:
    """The time TokenFile sees: moved by the test, so a grace period ends without waiting."""

    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


def test_the_old_token_is_accepted_until_its_grace_ends(data_dir: Path) -> None:
    old = ensure_token(data_dir)
    clock = Clock()
    tokens = TokenFile(data_dir, clock)
    tokens.check(old)
    done = rotate_token(data_dir, grace=300, now=NOW)
    new = read_token(data_dir)
    assert new is not None and new != old
    assert done.expires == NOW + 300 and done.replaced
    # The same TokenFile object: a running service, not a restarted one.
    tokens.check(new)
    tokens.check(old)
    clock.now = NOW + 299.9
    tokens.check(old)
    clock.now = NOW + 300
    with pytest.raises(Unauthorized, match="rotated out"):
        tokens.check(old)
    tokens.check(new)
    with pytest.raises(Unauthorized, match="wrong token"):
        tokens.check("not-a-token")


def test_grace_zero_refuses_the_old_token_at_once(data_dir: Path) -> None:
    old = ensure_token(data_dir)
    tokens = TokenFile(data_dir, Clock())
    tokens.check(old)
    assert rotate_token(data_dir, grace=0, now=NOW).expires is None
    with pytest.raises(Unauthorized, match="rotated out"):
        tokens.check(old)
    tokens.check(read_token(data_dir) or "")


def test_rotated_files_are_private(data_dir: Path) -> None:
    ensure_token(data_dir)
    rotate_token(data_dir, grace=60)
    for path in (data_dir / names.TOKEN_FILE, previous_path(data_dir)):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    # Nothing but the two files and the lock is left behind (no temporary files).
    assert sorted(p.name for p in data_dir.iterdir()) == sorted(
        [".api.token.lock", names.TOKEN_FILE, previous_path(data_dir).name]
    )


def test_a_change_within_one_mtime_tick_is_still_seen(data_dir: Path) -> None:
    ensure_token(data_dir)
    tokens = TokenFile(data_dir, Clock())
    before = (data_dir / names.TOKEN_FILE).stat()
    rotate_token(data_dir, grace=0)
    # The same timestamps as before: rotation replaces the file, so its inode still differs.
    os.utime(data_dir / names.TOKEN_FILE, ns=(before.st_atime_ns, before.st_mtime_ns))
    tokens.check(read_token(data_dir) or "")


def test_a_later_rotation_keeps_the_earlier_grace(data_dir: Path) -> None:
    first = ensure_token(data_dir)
    rotate_token(data_dir, grace=600, now=NOW)
    second = read_token(data_dir)
    rotate_token(data_dir, grace=60, now=NOW + 10)
    expiry = {p.token: p.expires for p in read_previous(data_dir)}
    assert expiry == {first: NOW + 600, second: NOW + 70}


def test_grace_zero_revokes_every_earlier_token_too(data_dir: Path) -> None:
    # After a leak: tokens still in the grace of earlier rotations must end as well.
    first = ensure_token(data_dir)
    rotate_token(data_dir, grace=5, now=NOW)
    second = read_token(data_dir)
    rotate_token(data_dir, grace=600, now=NOW + 10)
    third = read_token(data_dir)
    clock = Clock()
    clock.now = NOW + 20
    tokens = TokenFile(data_dir, clock)
    for token in (second, third):
        tokens.check(token or "")
    done = rotate_token(data_dir, grace=0, now=NOW + 20)
    assert done.expires is None and done.revoked_earlier == 1
    for token in (first, second, third):
        with pytest.raises(Unauthorized, match="rotated out"):
            tokens.check(token or "")
    tokens.check(read_token(data_dir) or "")
    # Revoked, not forgotten; a token whose grace had already ended keeps its own end.
    assert {p.token: p.expires for p in read_previous(data_dir)} == {
        first: NOW + 5,
        second: NOW + 20,
        third: NOW + 20,
    }


def test_grace_zero_from_the_command_says_what_it_revoked(data_dir: Path) -> None:
    ensure_token(data_dir)
    runner = CliRunner()
    args = ["rotate", "--data", str(data_dir)]
    assert runner.invoke(token_command, [*args, "--grace", "600"]).exit_code == 0
    revoked = runner.invoke(token_command, [*args, "--grace", "0"])
    assert revoked.exit_code == 0, revoked.output
    assert "the old token is revoked, and 1 replaced earlier" in revoked.output
    shown = runner.invoke(token_command, ["show", "--data", str(data_dir)])
    assert "also valid" not in shown.output
    helped = runner.invoke(token_command, ["rotate", "--help"])
    assert "every earlier token" in " ".join(helped.output.split())


def _rotate(data_dir: Path) -> None:
    rotate_token(data_dir, grace=60)


def test_rotations_at_once_run_one_after_the_other(data_dir: Path) -> None:
    original = ensure_token(data_dir)
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        pool.map(_rotate, [data_dir] * 8)
    current = read_token(data_dir)
    replaced = [p.token for p in read_previous(data_dir)]
    # Each rotation replaced the token the one before wrote: none was lost or written twice.
    assert len(replaced) == 8 and len(set(replaced)) == 8
    assert replaced[0] == original and current not in replaced
    tokens = TokenFile(data_dir)
    for token in [current, *replaced]:
        tokens.check(token or "")


def test_a_damaged_list_of_old_tokens_leaves_the_current_one_working(data_dir: Path) -> None:
    old = ensure_token(data_dir)
    rotate_token(data_dir, grace=60)
    previous_path(data_dir).write_text("{not json")
    tokens = TokenFile(data_dir)
    tokens.check(read_token(data_dir) or "")
    with pytest.raises(Unauthorized, match="wrong token"):
        tokens.check(old)


def test_a_missing_token_file_is_named(data_dir: Path) -> None:
    ensure_token(data_dir)
    tokens = TokenFile(data_dir)
    (data_dir / names.TOKEN_FILE).unlink()
    with pytest.raises(Unauthorized, match="no API token"):
        tokens.check("anything")


def test_the_commands_never_print_the_token_unless_asked(data_dir: Path) -> None:
    ensure_token(data_dir)
    runner = CliRunner()
    rotated = runner.invoke(token_command, ["rotate", "--data", str(data_dir), "--grace", "30"])
    assert rotated.exit_code == 0, rotated.output
    current = read_token(data_dir)
    assert current is not None and current not in rotated.output
    assert "stays valid until" in rotated.output
    shown = runner.invoke(token_command, ["show", "--data", str(data_dir)])
    assert shown.exit_code == 0 and current not in shown.output
    assert "mode 0600" in shown.output and "also valid" in shown.output
    revealed = runner.invoke(token_command, ["show", "--data", str(data_dir), "--reveal"])
    assert current in revealed.output


def test_bad_arguments_are_refused(data_dir: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    negative = runner.invoke(token_command, ["rotate", "--data", str(data_dir), "--grace", "-1"])
    assert negative.exit_code == 2 and "--grace" in negative.output
    missing = runner.invoke(token_command, ["rotate", "--data", str(tmp_path / "nope")])
    assert missing.exit_code == 2 and "does not exist" in missing.output
