"""config.toml is read by the gate, the sensors, the metrics and the CLI: whatever sits where it should be, reading
it ends at once, with a ConfigError that names the file, or with its content when it is a (linked) regular file."""

import pytest

from agent_pipeline.settings import CONFIG_FILE, ConfigError, load_config
from agent_pipeline_tests.hostile_files import plant, within


@pytest.mark.parametrize("kind", ["fifo", "socket", "directory", "dangling_symlink"])
def test_a_special_file_in_place_of_config_toml_is_an_error_not_a_hang(pipeline_home, kind):
    path = pipeline_home / CONFIG_FILE
    plant(kind, path)
    with pytest.raises(ConfigError, match=CONFIG_FILE):
        within(2.0, load_config, fifos=[path] if kind == "fifo" else [])


def test_a_symlink_to_a_regular_config_file_is_followed(pipeline_home, tmp_path):
    real = tmp_path / "dotfiles.toml"
    real.write_text('[market]\nseed = 11\n')
    (pipeline_home / CONFIG_FILE).symlink_to(real)
    assert load_config()["market"]["seed"] == 11


def test_invalid_utf8_in_config_toml_is_a_config_error(pipeline_home):
    (pipeline_home / CONFIG_FILE).write_bytes(b'[market]\nsource = "\xff"\n')
    with pytest.raises(ConfigError, match="cannot read"):
        load_config()
