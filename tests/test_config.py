"""Loading settings: defaults, YAML files, environment overrides and clear refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from mnemo_events.config import EventsConfig, RetryConfig, Settings, load_config
from mnemo_events.exceptions import ConfigError


def test_defaults_without_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With no file and no variable, the documented defaults apply."""
    monkeypatch.chdir(tmp_path)
    settings = load_config(environ={})
    assert settings == Settings()
    assert settings.events.max_queue_size == 10_000
    assert settings.events.delivery_timeout == 30.0
    assert settings.events.history_size == 1_000
    assert settings.events.validation == "strict"
    assert settings.webhooks.persistence_path == "./data/webhooks.json"


def test_file_in_working_directory_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """config.yaml in the working directory is read when no path is given."""
    (tmp_path / "config.yaml").write_text("events:\n  max_queue_size: 42\n")
    monkeypatch.chdir(tmp_path)
    assert load_config(environ={}).events.max_queue_size == 42


def test_environment_variable_names_the_file(tmp_path: Path) -> None:
    """MNEMO_EVENTS_CONFIG names the file to read."""
    path = tmp_path / "other.yaml"
    path.write_text("events:\n  history_size: 5\n")
    settings = load_config(environ={"MNEMO_EVENTS_CONFIG": str(path)})
    assert settings.events.history_size == 5


def test_environment_overrides_single_keys(tmp_path: Path) -> None:
    """MNEMO_EVENTS_<SECTION>_<KEY> overrides one key, parsed as YAML scalars."""
    path = tmp_path / "c.yaml"
    path.write_text("events:\n  max_queue_size: 5\n  history_size: 9\n")
    settings = load_config(
        path,
        environ={
            "MNEMO_EVENTS_EVENTS_MAX_QUEUE_SIZE": "77",
            "MNEMO_EVENTS_WEBHOOKS_ALLOW_PRIVATE_NETWORKS": "true",
            "MNEMO_EVENTS_API_KEY": "a secret, not a setting",
        },
    )
    assert settings.events.max_queue_size == 77
    assert settings.events.history_size == 9
    assert settings.webhooks.allow_private_networks is True


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("events:\n  max_queue_sise: 5\n", "unknown key 'events.max_queue_sise'"),
        ("evnts:\n  enabled: true\n", "unknown key 'evnts'"),
        ("events:\n  max_queue_size: -1\n", "events.max_queue_size"),
        ("events:\n  validation: loose\n", "events.validation"),
        ("webhooks:\n  default_retry:\n    max_attempts: 0\n", "default_retry.max_attempts"),
        ("- a\n- b\n", "must hold a mapping"),
        ("events: [\n", "not valid YAML"),
    ],
)
def test_bad_files_are_refused_naming_key_and_file(tmp_path: Path, text: str, message: str) -> None:
    """A bad file raises ConfigError naming the key path, the reason and the file."""
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as info:
        load_config(path, environ={})
    assert str(path) in str(info.value)
    assert isinstance(info.value, ValueError)


def test_missing_file_is_refused(tmp_path: Path) -> None:
    """A named file that does not exist is refused with its path."""
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "absent.yaml", environ={})


def test_empty_file_means_defaults(tmp_path: Path) -> None:
    """An empty file is valid and gives the defaults."""
    path = tmp_path / "empty.yaml"
    path.write_text("")
    assert load_config(path, environ={}) == Settings()


def test_retry_config_checks_its_bounds() -> None:
    """RetryConfig refuses a max delay below the base delay, naming both."""
    with pytest.raises(ValueError, match=r"max_delay_seconds \(1.0\) is below"):
        RetryConfig(base_delay_seconds=2.0, max_delay_seconds=1.0)


def test_models_refuse_unknown_fields() -> None:
    """Settings models refuse unknown fields given in code too."""
    with pytest.raises(ValueError, match="max_queue"):
        EventsConfig(max_queue=3)  # type: ignore[call-arg]
