"""The shipped ``config.yaml``: it loads, equals the defaults and documents every key."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel

from mnemo_events.config import Settings, load_config
from mnemo_events.exceptions import ConfigError

CONFIG = Path(__file__).resolve().parent.parent / "config.yaml"


def _model_keys(model: type[BaseModel], prefix: str = "") -> set[str]:
    """Every key path of a settings model, nested models included."""
    keys: set[str] = set()
    for name, info in model.model_fields.items():
        path = f"{prefix}{name}"
        keys.add(path)
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys |= _model_keys(annotation, f"{path}.")
    return keys


def _documented_keys(text: str) -> tuple[set[str], set[str]]:
    """Key paths in the YAML, and those without a comment line right above them."""
    keys: set[str] = set()
    bare: set[str] = set()
    stack: list[tuple[int, str]] = []
    previous = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped:
            previous = ""
            continue
        if stripped.startswith("#"):
            previous = stripped
            continue
        indent = len(line) - len(line.lstrip(" "))
        key = stripped.split(":", 1)[0]
        while stack and stack[-1][0] >= indent:
            stack.pop()
        path = ".".join([*(name for _, name in stack), key])
        keys.add(path)
        if not previous.startswith("#"):
            bare.add(path)
        stack.append((indent, key))
        previous = stripped
    return keys, bare


class TestShippedConfig:
    def test_loads_and_equals_the_defaults(self) -> None:
        """The shipped file is valid and sets every key to its default value."""
        assert load_config(CONFIG, environ={}) == Settings()

    def test_has_exactly_the_keys_of_the_models(self) -> None:
        """Every settings key appears in the file, and no key the models do not know."""
        keys, _ = _documented_keys(CONFIG.read_text(encoding="utf-8"))
        assert keys == _model_keys(Settings)

    def test_every_key_has_a_comment(self) -> None:
        """Each key, sections included, has a comment line directly above it."""
        _, bare = _documented_keys(CONFIG.read_text(encoding="utf-8"))
        assert bare == set()

    @pytest.mark.parametrize(
        ("variable", "value", "read"),
        [
            ("MNEMO_EVENTS_SERVER_PORT", "9000", lambda s: s.server.port == 9000),
            ("MNEMO_EVENTS_EVENTS_VALIDATION", "warn", lambda s: s.events.validation == "warn"),
            (
                "MNEMO_EVENTS_WEBHOOKS_DELIVERY_STORE_PATH",
                "",
                lambda s: s.webhooks.delivery_store_path is None,
            ),
        ],
    )
    def test_environment_overrides_one_key(self, variable: str, value: str, read: object) -> None:
        """A MNEMO_EVENTS_<SECTION>_<KEY> variable replaces that key of the shipped file."""
        settings = load_config(CONFIG, environ={variable: value})
        assert callable(read)
        assert read(settings)

    def test_a_bad_copy_is_refused_with_the_key_path(self, tmp_path: Path) -> None:
        """A typo in a copy of the file is refused, naming the key path and the file."""
        bad = tmp_path / "config.yaml"
        text = CONFIG.read_text(encoding="utf-8").replace("max_body_bytes:", "max_body_byte:")
        bad.write_text(text, encoding="utf-8")
        with pytest.raises(ConfigError, match=r"config\.yaml: unknown key 'server\.max_body_byte'"):
            load_config(bad, environ={})
