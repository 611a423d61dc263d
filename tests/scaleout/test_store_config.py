"""`store:` in a junto config: validated with errors naming the field, and built into the stores it names."""

from __future__ import annotations

import pytest
import yaml

from junto.config import load_config
from junto.errors import ConfigError
from junto.stores import build_stores


def config(tmp_path, **fields):
    path = tmp_path / "junto.yaml"
    path.write_text(yaml.safe_dump({"pool": "embedded", **fields}))
    return load_config(path)


@pytest.mark.parametrize(("store", "field", "message"), [
    ("redis//127.0.0.1:6379", "store.url", "must be 'memory' or a Redis URL"),
    ("http://127.0.0.1:6379/0", "store.url", "must be 'memory' or a Redis URL"),
    ("redis://127.0.0.1:6379/zero", "store.url", "the database after the host must be a number"),
    ("redis://127.0.0.1:99999/0", "store.url", "must be 'memory' or a Redis URL"),
    ({"url": "memory", "timeout_s": 0}, "store.timeout_s", "greater than 0"),
    ({"url": "memory", "prefix": "a b"}, "store.prefix", "pattern"),
    ({"url": "memory", "ttl": 5}, "store.ttl", "unknown field"),
])
def test_bad_store_settings_name_the_field(tmp_path, store, field, message):
    with pytest.raises(ConfigError) as err:
        config(tmp_path, store=store)
    assert f"junto.yaml: {field}: " in err.value.message and message in err.value.message, err.value.message


def test_the_default_store_is_this_process(tmp_path):
    stores = build_stores(config(tmp_path))
    assert stores.kind == "memory" and not stores.shared and stores.status() == "memory"
    assert stores.checkpoints is None


def test_a_redis_url_builds_the_redis_stores_and_a_relative_sqlite_path_is_the_configs(tmp_path):
    cfg = config(tmp_path, store="redis://:s3cret@127.0.0.1:6390/2", checkpoints="sqlite:///state/runs.db")
    assert cfg.store.url == "redis://:s3cret@127.0.0.1:6390/2" and cfg.store.prefix == "junto"
    stores = build_stores(cfg)
    assert stores.kind == "redis" and stores.shared
    assert "s3cret" not in stores.connection.safe_url and "6390" in stores.connection.safe_url
    assert stores.checkpoints.kind == "sqlite" and stores.checkpoints.target == str(tmp_path / "state" / "runs.db")
