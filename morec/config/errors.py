"""The one error a config gives: a bad key, type or value, named."""


class ConfigError(ValueError):
    pass


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)
