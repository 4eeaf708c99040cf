"""The embedded Redis's users (issue 12): the aclfile, the credentials file, and what is shown."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from services.launcher import redis_access
from services.launcher.platform import without_password


def test_the_aclfile_turns_the_default_user_off_and_holds_no_password() -> None:
    passwords = redis_access.load_credentials(Path("/nonexistent/credentials.json"))
    text = redis_access.acl_file_text(passwords)
    lines = text.splitlines()
    assert lines[0].startswith("user default off ")
    assert "nopass" not in text
    assert not [name for name, password in passwords.items() if password in text]
    users = {line.split()[1]: line for line in lines}
    assert set(users) == {"default", "faas-admin", "faas-gateway", "faas-dispatcher"}
    for service in ("faas-gateway", "faas-dispatcher"):
        rules = users[service].split()
        assert "-@all" in rules and "+@all" not in rules and "~*" not in rules
        for command in ("flushall", "flushdb", "config", "acl", "debug", "shutdown", "keys"):
            assert f"+{command}" not in rules
        assert all(rule.startswith("~faas:") for rule in rules if rule.startswith("~"))
    assert "+zrange" in users["faas-dispatcher"] and "+zrange" not in users["faas-gateway"]
    assert "~faas:request:*" in users["faas-gateway"].split()
    assert "~faas:request:*" not in users["faas-dispatcher"].split()


def test_a_key_prefix_is_matched_literally() -> None:
    passwords = redis_access.load_credentials(Path("/nonexistent/credentials.json"))
    text = redis_access.acl_file_text(passwords, prefix="a*b?:")
    assert "~a\\*b\\?:task:*" in text.split()
    with pytest.raises(ValueError, match="white space"):
        redis_access.acl_file_text(passwords, prefix="a b:")


def test_credentials_are_made_once_kept_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "credentials.json"
    passwords = redis_access.load_credentials(path)
    assert not path.exists()  # reading makes nothing
    assert len(set(passwords.values())) == 3 and all(len(p) >= 40 for p in passwords.values())
    redis_access.save_credentials(path, passwords)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert redis_access.load_credentials(path) == passwords
    path.chmod(0o644)
    redis_access.save_credentials(path, passwords)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    # A user the file lacks (written by an older version) gets a password; the others keep theirs.
    path.write_text(json.dumps({"faas-admin": passwords["faas-admin"]}))
    again = redis_access.load_credentials(path)
    assert again["faas-admin"] == passwords["faas-admin"]
    assert again["faas-gateway"] != passwords["faas-gateway"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["credentials.json"]


def test_a_url_is_shown_without_its_password() -> None:
    assert without_password("redis://u:secret@h:1/0") == "redis://u:***@h:1/0"
    assert without_password("redis://:secret@h:1/0") == "redis://:***@h:1/0"
    assert without_password("redis://h:1/0") == "redis://h:1/0"
