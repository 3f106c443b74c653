"""Configuration comes from the environment and bad values are named."""
from __future__ import annotations

import pytest

from webapp.config import DEFAULT_SYMBOLS, Config, ConfigError


def test_defaults_and_normalisation() -> None:
    cfg = Config.from_env({"DATABASE_URL": "postgres://u:p@db:5432/x", "REDIS_URL": "redis://r:6379/0"})
    assert cfg.DATABASE_URL == "postgresql+psycopg2://u:p@db:5432/x"
    assert cfg.SYMBOLS == tuple(DEFAULT_SYMBOLS) and "BRK.B" in cfg.SYMBOLS
    assert (cfg.SMA_PERIOD, cfg.TICK_SECONDS, cfg.MARKET_DATA_PROVIDER) == (5, 60, "sim")
    cfg = Config.from_env({"SYMBOLS": "aapl, msft brk.b AAPL", "TICK_SECONDS": "5"})
    assert cfg.SYMBOLS == ("AAPL", "MSFT", "BRK.B") and cfg.TICK_SECONDS == 5


@pytest.mark.parametrize(
    "env, needle",
    [
        ({"MARKET_DATA_PROVIDER": "bloomberg"}, "choose one of sim, finnhub"),
        ({"MARKET_DATA_PROVIDER": "finnhub"}, "needs FINNHUB_API_KEY"),
        ({"SYMBOLS": "AAPL $$$"}, "SYMBOLS has '$$$'"),
        ({"SMA_PERIOD": "five"}, "SMA_PERIOD must be an integer"),
        ({"SMA_PERIOD": "0"}, "SMA_PERIOD must be at least 1"),
        ({"TICK_SECONDS": "7"}, "TICK_SECONDS=7"),
        ({"FINNHUB_TIMEOUT_SECONDS": "-1"}, "must be positive"),
        ({"SIM_FOLLOWS_MARKET_HOURS": "maybe"}, "true or false"),
    ],
)
def test_bad_settings_are_named(env, needle) -> None:
    with pytest.raises(ConfigError) as err:
        Config.from_env(env)
    assert needle in str(err.value)


def test_the_api_key_is_never_in_repr() -> None:
    cfg = Config.from_env({"MARKET_DATA_PROVIDER": "finnhub", "FINNHUB_API_KEY": "sk-secret-123"})
    assert cfg.FINNHUB_API_KEY == "sk-secret-123" and "sk-secret-123" not in repr(cfg)


def test_missing_services_say_how_to_fix() -> None:
    with pytest.raises(ConfigError) as err:
        Config.from_env({}).require_services()
    assert "DATABASE_URL and REDIS_URL not set" in str(err.value) and "make run" in str(err.value)


def test_the_key_make_run_made_is_used_and_no_dev_key_warned(tmp_path) -> None:
    """`make run` keeps a SECRET_KEY in DATA_DIR; a `flask` command or restart signs with it instead of
    warning that the development key is in use (issue 26, item 17)."""
    from webapp.config import DEV_SECRET_KEY

    data = tmp_path / "data"
    assert Config.from_env({"DATA_DIR": str(data)}).SECRET_KEY == DEV_SECRET_KEY
    data.mkdir()
    (data / "secret_key").write_text("k" * 64 + "\n")
    assert Config.from_env({"DATA_DIR": str(data)}).SECRET_KEY == "k" * 64
    assert Config.from_env({"DATA_DIR": str(data), "SECRET_KEY": "set"}).SECRET_KEY == "set"
