"""Password logins are SSHSessions with other connect arguments: what the target and its jump hosts are
given, and what the password strategy makes of sshd's answers (the lab tests log in for real)."""

from __future__ import annotations

from pathlib import Path

import paramiko
import pytest

from provision.connection import (
    HostKeyOptions,
    PasswordLoginDisabled,
    SSHSession,
    SSHTarget,
    _OfferedMethods,
    _PasswordOnly,
    _RefuseUnknownHost,
)

PASSWORD = "s3cret-Value-xyz"


class Transport:
    """sshd's answer to one authentication request, given up front."""

    def __init__(self, refusal: Exception | None = None) -> None:
        self.refusal = refusal
        self.calls: list[tuple[str, tuple[object, ...], dict[str, object]]] = []

    def auth_password(self, *args: object, **kwargs: object) -> list[str]:
        self.calls.append(("password", args, kwargs))
        if self.refusal is not None:
            raise self.refusal
        return []

    def auth_none(self, *args: object) -> list[str]:
        self.calls.append(("none", args, {}))
        if self.refusal is not None:
            raise self.refusal
        return []


def test_the_target_logs_in_with_the_strategy_alone_and_jump_hosts_with_their_keys(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".fabric.yml").write_text(  # a user's Fabric config file is not read at all
        "forward_agent: true\nrun: {pty: true}\nconnect_kwargs: {key_filename: [/keys/fabric]}\n"
        "authentication: {strategy_class: fabric.auth.OpenSSHAuthStrategy}\n")
    jump = SSHTarget("10.0.0.1", 22, "admin", ("/keys/admin",))
    target = SSHTarget("10.0.0.2", 2222, "dvc", ("/keys/ignored",), (jump,))
    strategy = _PasswordOnly("dvc", PASSWORD)
    session = SSHSession(target, HostKeyOptions(tmp_path / "pins"), timeout=5, login=strategy)
    final, hop = session.connection, session.connection.gateway
    assert final.connect_kwargs["auth_strategy"] is strategy
    assert not {"key_filename", "look_for_keys", "allow_agent", "password", "pkey"} & set(final.connect_kwargs)
    assert hop.connect_kwargs["key_filename"] == ["/keys/admin"] and "auth_strategy" not in hop.connect_kwargs
    assert not final.forward_agent and not hop.forward_agent
    for connection in (final, hop):
        assert not connection.config.run.pty and connection.authentication.strategy_class is None
    assert isinstance(final.client._policy, _RefuseUnknownHost) and isinstance(hop.client._policy, _RefuseUnknownHost)


def test_the_password_strategy_sends_the_password_method_alone() -> None:
    transport = Transport()
    strategy = _PasswordOnly("dvc", PASSWORD)
    strategy.authenticate(transport)  # type: ignore[arg-type]
    assert strategy.accepted
    assert transport.calls == [("password", ("dvc", PASSWORD), {"fallback": False})], "no keyboard-interactive"


def test_a_refused_password_is_told_apart_from_no_password_login() -> None:
    strategy = _PasswordOnly("dvc", PASSWORD)
    strategy.authenticate(Transport(paramiko.AuthenticationException("Authentication failed.")))  # type: ignore[arg-type]
    assert not strategy.accepted
    with pytest.raises(PasswordLoginDisabled, match=r"offers: publickey\)") as disabled:
        _PasswordOnly("dvc", PASSWORD).authenticate(
            Transport(paramiko.BadAuthenticationType("Bad authentication type", ["publickey"])))  # type: ignore[arg-type]
    assert PASSWORD not in str(disabled.value)


def test_offered_methods_are_asked_with_the_none_method() -> None:
    strategy = _OfferedMethods("dvc")
    strategy.authenticate(Transport(paramiko.BadAuthenticationType("", ["publickey", "password"])))  # type: ignore[arg-type]
    assert strategy.methods == ["publickey", "password"]
