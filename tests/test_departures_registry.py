"""The departures registry in process: which environment each connection plays, whether
an environment is played (asked by every `close`, answered without a scan of all
sessions), and the `sessions` gauge kept in step. The end-to-end behaviour over a real
WebSocket is tests/test_departures.py's."""

from __future__ import annotations

import secrets

from python_env.server import departures, metrics


class Env:
    def close(self) -> None:
        pass


def _sessions() -> float:
    return metrics.snapshot().get(("sessions", "", ""), 0.0)


def _key() -> str:
    return f"test-{secrets.token_hex(8)}"


def test_an_environment_is_connected_while_a_connection_plays_it():
    env, key = Env(), _key()
    sessions, count = _sessions(), departures.count()
    assert not departures.connected(env)
    departures.register(key, env)
    assert departures.connected(env)
    assert _sessions() == sessions + 1 and departures.count() == count + 1
    departures.register(key, env)  # the next reset on the same connection
    assert departures.connected(env)
    assert _sessions() == sessions + 1 and departures.count() == count + 1
    assert departures.take(key) is env
    assert not departures.connected(env)
    assert _sessions() == sessions and departures.count() == count
    assert departures.take(key) is None
    assert _sessions() == sessions


def test_a_key_given_another_environment_releases_the_first():
    first, second, key = Env(), Env(), _key()
    sessions = _sessions()
    departures.register(key, first)
    departures.register(key, second)
    assert not departures.connected(first) and departures.connected(second)
    assert _sessions() == sessions + 1
    assert departures.take(key) is second
    assert not departures.connected(second) and _sessions() == sessions


def test_an_environment_under_two_keys_stays_connected_until_both_depart():
    env, one, two = Env(), _key(), _key()
    departures.register(one, env)
    departures.register(two, env)
    assert departures.take(one) is env
    assert departures.connected(env)
    assert departures.take(two) is env
    assert not departures.connected(env)


def test_equal_environments_are_told_apart():
    class Same(Env):
        def __eq__(self, other: object) -> bool:
            return isinstance(other, Same)

        __hash__ = object.__hash__

    played, other, key = Same(), Same(), _key()
    departures.register(key, played)
    try:
        assert departures.connected(played) and not departures.connected(other)
    finally:
        departures.take(key)
