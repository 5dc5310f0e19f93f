"""Loading settings: defaults, YAML files, environment overrides and clear refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from mnemo_events.config import EventsConfig, RetryConfig, Settings, check_api_key, load_config
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


class TestEnvironment:
    @pytest.mark.parametrize("key", ["Tr0ub4dor #3", "~", "null", "'quoted'", "a: b", "#x"])
    def test_string_settings_are_taken_verbatim(self, key: str) -> None:
        """A string setting from the environment is the variable's text, never parsed as YAML."""
        settings = load_config(environ={"MNEMO_EVENTS_SERVER_API_KEY": key})
        assert settings.server.api_key == key

    def test_nested_keys_take_effect(self) -> None:
        """MNEMO_EVENTS_WEBHOOKS_DEFAULT_RETRY_MAX_ATTEMPTS sets the nested retry setting."""
        settings = load_config(
            environ={
                "MNEMO_EVENTS_WEBHOOKS_DEFAULT_RETRY_MAX_ATTEMPTS": "9",
                "MNEMO_EVENTS_WEBHOOKS_DEFAULT_RETRY_JITTER": "0.5",
            }
        )
        assert settings.webhooks.default_retry.max_attempts == 9
        assert settings.webhooks.default_retry.jitter == 0.5
        assert settings.webhooks.default_retry.base_delay_seconds == 1.0

    def test_nested_override_keeps_the_rest_of_the_files_section(self, tmp_path: Path) -> None:
        """A nested variable changes one key of the file's retry section and keeps the others."""
        path = tmp_path / "c.yaml"
        path.write_text("webhooks:\n  default_retry:\n    base_delay_seconds: 2.5\n")
        env = {"MNEMO_EVENTS_WEBHOOKS_DEFAULT_RETRY_MAX_ATTEMPTS": "3"}
        retry = load_config(path, environ=env).webhooks.default_retry
        assert (retry.max_attempts, retry.base_delay_seconds) == (3, 2.5)

    @pytest.mark.parametrize(
        ("variable", "closest"),
        [
            ("MNEMO_EVENTS_EVENTS_MAX_QUEU_SIZE", "MNEMO_EVENTS_EVENTS_MAX_QUEUE_SIZE"),
            ("MNEMO_EVENTS_SERVER_APIKEY", "MNEMO_EVENTS_SERVER_API_KEY"),
            ("MNEMO_EVENTS_WEBHOOKS_RETRY_MAX_ATTEMPTS", "MNEMO_EVENTS_WEBHOOKS_DEFAULT_RETRY_MAX"),
        ],
    )
    def test_a_mistyped_variable_is_refused_naming_the_closest(
        self, variable: str, closest: str
    ) -> None:
        """An unknown MNEMO_EVENTS_* variable raises ConfigError naming it and the closest one."""
        with pytest.raises(ConfigError, match=f"unknown environment variable {variable}") as info:
            load_config(environ={variable: "1"})
        assert f"did you mean {closest}" in str(info.value)

    def test_variables_that_are_not_settings_are_allowed(self, tmp_path: Path) -> None:
        """The config file's variable, the default key variable and env: targets are no typos."""
        path = tmp_path / "c.yaml"
        path.write_text("server:\n  api_key: env:MNEMO_EVENTS_OTHER_KEY\n")
        env = {
            "MNEMO_EVENTS_CONFIG": str(path),
            "MNEMO_EVENTS_API_KEY": "k" * 20,
            "MNEMO_EVENTS_OTHER_KEY": "k" * 20,
        }
        assert load_config(environ=env).server.api_key == "env:MNEMO_EVENTS_OTHER_KEY"

    def test_a_bad_value_names_the_key_and_the_variable(self) -> None:
        """A value the model refuses is reported with the key path and the variable's name."""
        with pytest.raises(ConfigError, match=r"server\.port") as info:
            load_config(environ={"MNEMO_EVENTS_SERVER_PORT": "eighty"})
        assert "MNEMO_EVENTS_SERVER_PORT" in str(info.value)

    def test_a_refused_api_key_is_never_echoed(self, tmp_path: Path) -> None:
        """A file whose API key has the wrong type is refused without showing the value."""
        path = tmp_path / "c.yaml"
        path.write_text("server:\n  api_key: [hunter2-secret-value]\n")
        with pytest.raises(ConfigError, match=r"server\.api_key") as info:
            load_config(path, environ={})
        assert "hunter2" not in str(info.value)

    def test_a_mistyped_file_key_names_the_closest(self, tmp_path: Path) -> None:
        """A mistyped YAML key is refused with the closest real key, as a variable is."""
        path = tmp_path / "c.yaml"
        path.write_text("events:\n  max_queu_size: 5\n")
        with pytest.raises(ConfigError, match=r"did you mean 'events\.max_queue_size'"):
            load_config(path, environ={})


class TestCheckApiKey:
    @pytest.mark.parametrize(
        ("key", "problem"),
        [("short-key", "9 characters long"), ("caf\u00e9-key-0123456", "not printable ASCII"),
         ("tab\tkey-0123456789", "not printable ASCII")],
    )  # fmt: skip
    def test_bad_keys_are_refused_without_echo(self, key: str, problem: str) -> None:
        """A short or non-printable key raises ConfigError naming the problem, not the key."""
        with pytest.raises(ConfigError, match=problem) as info:
            check_api_key(key, "MNEMO_EVENTS_SERVER_API_KEY")
        assert key not in str(info.value)

    def test_a_good_key_passes(self) -> None:
        """A printable key of 12 characters or more is accepted."""
        check_api_key("Tr0ub4dor #3", "server.api_key")
