"""Settings: read from the environment once, numbers checked against their bounds."""

import pytest

from pingpost.config import Settings, SettingsError, read


def test_variables_are_read_in_any_case_as_their_fields_types() -> None:
    environment = {"LEADS_TABLE": "Leads-prod", "max_redrives": "5", "Cache_Seconds": "1.5"}
    got = read(environment | {"HOME": "/"})
    assert got.leads_table == "Leads-prod"
    assert got.max_redrives == 5 and type(got.max_redrives) is int
    assert got.cache_seconds == 1.5
    assert got._replace(leads_table="LeadsTable", max_redrives=3, cache_seconds=30) == Settings()


def test_what_is_not_set_keeps_its_default() -> None:
    assert read({}) == Settings()
    assert read({}).trusted_hosts() == frozenset()
    assert read({"DELIVERY_HTTP_HOSTS": " Partner.Local., ,127.0.0.1"}).trusted_hosts() == {
        "partner.local",
        "127.0.0.1",
    }


WHOLE, NUMBER = "a whole number from", "a number from"


@pytest.mark.parametrize(
    ("name", "value", "rule"),
    [
        ("MAX_REDRIVES", "many", f"{WHOLE} 0 to 20"),
        ("MAX_REDRIVES", "21", f"{WHOLE} 0 to 20"),
        ("MAX_REDRIVES", "2.5", f"{WHOLE} 0 to 20"),
        ("MAX_REDRIVES", "\u0663", f"{WHOLE} 0 to 20"),
        ("PING_TTL_HOURS", "0", f"{WHOLE} 1 to 1000000000"),
        ("PING_TTL_HOURS", "1e300", f"{WHOLE} 1 to 1000000000"),
        ("MAX_BODY_BYTES", "100", f"{WHOLE} 1024 to 1000000000"),
        ("LEAD_ID_BLOCK", "", f"{WHOLE} 1 to 100000"),
        ("PARTNERS_HELD", "1" + "0" * 400, f"{WHOLE} 1 to 1000000000"),
        ("REPEAT_SECONDS", "1000000001", f"{WHOLE} 1 to 1000000000"),
        ("CACHE_SECONDS", "-1", f"{NUMBER} 0 to 1000000000"),
        ("CACHE_SECONDS", "1e400", f"{NUMBER} 0 to 1000000000"),
        ("POST_WAIT_SECONDS", "nan", f"{NUMBER} 0 to 1000000000"),
        ("USAGE_CACHE_SECONDS", "inf", f"{NUMBER} 0 to 1000000000"),
    ],
)
def test_a_number_it_cannot_run_with_is_refused_naming_its_variable(
    name: str, value: str, rule: str
) -> None:
    with pytest.raises(SettingsError) as refused:
        read({name: value})
    assert str(refused.value) == f"{name} must be {rule}, not {value!r}"


def test_a_whole_number_may_be_written_as_cloudformation_may_pass_a_number() -> None:
    got = read({"MAX_REDRIVES": "3.0", "PING_TTL_HOURS": " 24 "})
    assert (got.max_redrives, got.ping_ttl_hours) == (3, 24)
    assert type(got.max_redrives) is int


def test_bounds_are_inclusive() -> None:
    got = read({"MAX_REDRIVES": "20", "REDRIVE_BASE_SECONDS": " 0 ", "LEAD_RETENTION_DAYS": "3650"})
    assert (got.max_redrives, got.redrive_base_seconds, got.lead_retention_days) == (20, 0, 3650)
