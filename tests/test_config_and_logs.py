"""Settings (environment over flp.toml, bad values named, passwords masked) and
logs (CPR numbers never reach a log line)."""

from __future__ import annotations

import io
import logging
import os
from pathlib import Path

import pytest

from orchestrator import cli, config, logs

PASSWORD = "s3cret-Pw"
DB_URL = f"postgresql://flp:{PASSWORD}@db.example:5432/flp"
CPR_WITH_DASH = "010203-1234"
CPR_PLAIN = "0102031234"


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """An empty working folder with no FLP_* variables, so only the test's settings count."""
    monkeypatch.chdir(tmp_path)
    for name in [n for n in os.environ if n.startswith("FLP_")]:
        monkeypatch.delenv(name)
    return tmp_path


def write_toml(folder: Path, text: str) -> Path:
    path = folder / "flp.toml"
    path.write_text(text, encoding="utf-8")
    return path


# ---------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------


def test_defaults_without_file_or_environment(workdir):
    settings = config.load({})

    assert settings.database_url is None
    assert settings.engine == "postgresql"
    assert settings.log_level is None  # each command's own default: WARNING, the orchestrator INFO
    assert settings.log_format == "keyvalue"
    assert settings.embedded_database == "flp"
    assert settings.data_dir == (workdir / config.DATA_DIR_DEFAULT).resolve()


def test_the_file_is_read_and_the_environment_wins(workdir):
    write_toml(workdir, f'log_level = "debug"\ndatabase_url = "{DB_URL}"\nhost_name = "from-file"\n')

    settings = config.load({"FLP_LOG_LEVEL": "ERROR", "FLP_HOST_NAME": ""})

    assert settings.log_level == "ERROR"  # environment over file
    assert settings.database_url == DB_URL  # file, nothing in the environment
    assert settings.host_name == "from-file"  # an empty variable does not count


def test_flp_config_names_another_file(workdir):
    other = workdir / "elsewhere.toml"
    other.write_text('database_url = "mssql+pyodbc://sql.example/flp"\n', encoding="utf-8")

    settings = config.load({"FLP_CONFIG": str(other)})

    assert settings.engine == "mssql"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("log_level", "LOUD"),
        ("log_format", "xml"),
        ("embedded_database", "flp; drop"),
        ("database_url", "mysql://flp@db.example/flp"),
        ("mongo_url", "http://mongo.example"),
        ("queue_url", "redis://queue.example"),
        ("smtp_url", "http://mail.example"),
    ],
)
@pytest.mark.parametrize("source", ["environment", "file"])
def test_a_bad_setting_is_refused_naming_it(workdir, name, value, source):
    environ = {}
    if source == "environment":
        environ[f"FLP_{name.upper()}"] = value
    else:
        write_toml(workdir, f'{name} = "{value}"\n')

    with pytest.raises(config.ConfigError, match=name):
        config.load(environ)


def test_a_refused_url_does_not_show_its_password(workdir):
    with pytest.raises(config.ConfigError) as refused:
        config.load({"FLP_DATABASE_URL": f"mysql://flp:{PASSWORD}@db.example/flp"})

    assert "database_url" in str(refused.value)
    assert PASSWORD not in str(refused.value)


def test_an_unknown_key_in_the_file_is_named(workdir):
    write_toml(workdir, 'log_level = "INFO"\ndatabse_url = "postgresql://x"\n')

    with pytest.raises(config.ConfigError, match="databse_url"):
        config.load({})


def test_a_malformed_file_is_named(workdir):
    path = write_toml(workdir, "log_level = \n")

    with pytest.raises(config.ConfigError, match=str(path.name)):
        config.load({})


def test_masked_hides_every_password():
    settings = config.Settings(
        database_url=DB_URL,
        mongo_url=f"mongodb://flp:{PASSWORD}2@mongo.example",
        queue_url=f"amqp://flp:{PASSWORD}3@queue.example",
        smtp_url=f"smtp://flp:{PASSWORD}4@mail.example:25",
    )

    shown = settings.masked()

    assert PASSWORD not in str(shown)
    assert shown["database_url"] == "postgresql://flp:***@db.example:5432/flp"
    assert shown["smtp_url"] == "smtp://flp:***@mail.example:25"
    assert shown["log_level"] == "(unset)" and shown["host_name"] == "(unset)"


def test_masked_hides_a_password_in_the_query_string():
    shown = config.Settings(database_url=f"postgresql://db.example/flp?user=flp&password={PASSWORD}").masked()

    assert PASSWORD not in str(shown)


def test_flp_config_prints_the_settings_with_passwords_masked(workdir, monkeypatch, capsys, restore_logging):
    monkeypatch.setenv("FLP_DATABASE_URL", DB_URL)
    monkeypatch.setenv("FLP_SMTP_URL", f"smtp://mailer:{PASSWORD}@mail.example:25")

    assert cli.main(["config"]) == 0

    out, err = capsys.readouterr()
    assert PASSWORD not in out + err
    assert "postgresql://flp:***@db.example:5432/flp" in out
    assert "smtp://mailer:***@mail.example:25" in out
    rows = {line.split()[0]: line.split()[1] for line in out.splitlines() if len(line.split()) == 2}
    assert rows["engine"] == "postgresql"
    assert out.splitlines()[-1] == "uses: database flp on db.example:5432 (postgresql)"


def test_flp_config_names_the_embedded_database_it_uses(workdir, monkeypatch, capsys, restore_logging):
    monkeypatch.setenv("FLP_EMBEDDED_DATABASE", "flp_demo")

    assert cli.main(["config"]) == 0

    last = capsys.readouterr().out.splitlines()[-1]
    pgdata = workdir.resolve() / ".flp" / "pgdata"
    assert last == f"uses: database flp_demo on the embedded PostgreSQL in {pgdata}"


def test_flp_config_refuses_a_bad_setting_naming_it(workdir, monkeypatch, capsys, restore_logging):
    monkeypatch.setenv("FLP_LOG_LEVEL", "LOUD")

    assert cli.main(["config"]) == 2

    assert "log_level" in capsys.readouterr().err


def test_a_mistyped_flp_variable_is_named_with_the_nearest_setting(workdir):
    with pytest.raises(config.ConfigError) as refused:
        config.load({"FLP_DATABSE_URL": DB_URL})

    assert str(refused.value) == (
        "environment variable FLP_DATABSE_URL is not a setting (did you mean FLP_DATABASE_URL?)"
    )


def test_an_flp_variable_like_no_setting_lists_the_settings(workdir):
    with pytest.raises(config.ConfigError) as refused:
        config.load({"FLP_ZZZ": "1"})

    assert "FLP_ZZZ is not a setting (the settings are FLP_DATABASE_URL, FLP_DATA_DIR" in str(refused.value)


@pytest.mark.parametrize(
    "name", ["FLP_CONFIG", "FLP_REQUIRE_SERVICES", "FLP_TEST_DATABASE_URL", "FLP_BENCH_DATABASE_URL"]
)
def test_the_flp_variables_of_tests_ci_and_benchmarks_are_allowed(workdir, name):
    config.check_environment({name: "1", "FLP_LOG_FORMAT": "json", "FLP_HOST_NAME": "h"})


def test_host_is_flp_host_name_or_this_machine(workdir):
    import socket

    assert config.load({"FLP_HOST_NAME": "orch-a"}).host == "orch-a"
    assert config.load({}).host == socket.gethostname()


# ---------------------------------------------------------------------------
# Logs
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("configured", "verbosity", "default", "expected"),
    [
        (None, 0, "WARNING", "WARNING"),  # an interactive command
        (None, 0, "INFO", "INFO"),  # flp orchestrator
        (None, 1, "WARNING", "INFO"),
        (None, 1, "INFO", "INFO"),
        (None, 2, "WARNING", "DEBUG"),
        (None, 3, "INFO", "DEBUG"),
        ("ERROR", 2, "WARNING", "ERROR"),  # FLP_LOG_LEVEL wins
    ],
)
def test_the_log_level(configured, verbosity, default, expected):
    assert logs.level_for(configured, verbosity, default) == expected


def test_json_lines_carry_the_same_fields_masked(restore_logging):
    import json

    logs.setup("INFO", "json")
    (handler,) = logging.getLogger().handlers
    buffer = io.StringIO()
    handler.setStream(buffer)

    logging.getLogger("flp.test").info("seeded", extra={"rows": 3, "patient": CPR_PLAIN})

    line = json.loads(buffer.getvalue())
    assert line["level"] == "info" and line["msg"] == "seeded" and line["logger"] == "flp.test"
    assert line["rows"] == 3 and line["patient"] == logs.CPR_MASK


def test_alembic_and_pgserver_info_is_hidden_unless_debug(restore_logging):
    logs.setup("INFO")
    assert not logging.getLogger("alembic.runtime.migration").isEnabledFor(logging.INFO)
    logs.setup("DEBUG")
    assert logging.getLogger("alembic.runtime.migration").isEnabledFor(logging.DEBUG)


@pytest.fixture
def log_lines(restore_logging):
    """flp's logging as the CLI sets it up, its one handler writing to a buffer."""
    logs.setup("DEBUG")
    (handler,) = logging.getLogger().handlers
    buffer = io.StringIO()
    handler.setStream(buffer)  # same handler, formatter and filter; only the stream differs
    return buffer.getvalue


@pytest.mark.parametrize("cpr", [CPR_WITH_DASH, CPR_PLAIN])
def test_a_cpr_number_is_masked_in_message_args_and_extra_fields(log_lines, cpr):
    log = logging.getLogger("flp.test")

    log.info(f"patient {cpr} in the message")
    log.info("patient %s in the args", cpr)
    log.info("patient in an extra field", extra={"patient": cpr, "note": f"cpr={cpr};"})

    out = log_lines()
    assert out.count(logs.CPR_MASK) == 4
    assert cpr not in out
    assert CPR_PLAIN not in out.replace("-", "")


def test_a_cpr_number_is_masked_in_exception_text(log_lines):
    log = logging.getLogger("flp.test")

    try:
        raise ValueError(f"no patient with cpr {CPR_WITH_DASH} or {CPR_PLAIN}")
    except ValueError:
        log.exception("upload failed")

    out = log_lines()
    assert "ValueError" in out
    assert out.count(logs.CPR_MASK) == 2
    assert CPR_WITH_DASH not in out and CPR_PLAIN not in out


@pytest.mark.parametrize(
    "number",
    [
        "01020312345",  # eleven digits
        "1234567890123",  # an order number
        "010203-12345",  # five digits after the dash
        "1010203-1234",  # seven digits before the dash
    ],
)
def test_longer_digit_runs_are_not_masked(log_lines, number):
    logging.getLogger("flp.test").info("reference %s", number)

    out = log_lines()
    assert number in out
    assert logs.CPR_MASK not in out


def test_a_cpr_number_in_a_non_string_extra_field_is_masked(log_lines):
    logging.getLogger("flp.test").info("batch", extra={"patients": [CPR_PLAIN], "first": int("1102031234")})

    out = log_lines()
    assert CPR_PLAIN not in out and "1102031234" not in out
