"""The operator's commands: lead show, partners list, vendors add."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.conftest import DEMO_SEED
from tests.leads import complete


@pytest.fixture(scope="module")
def demo(aws: str) -> None:
    from pingpost_local import seed

    seed.apply(seed.load(DEMO_SEED))


def run(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    from pingpost_local.cli import main

    main(list(args))
    return capsys.readouterr().out


def submit(fields: dict[str, str]) -> Any:
    from pingpost import exchange
    from pingpost.decoding import Request

    return exchange.submit(Request(fields))


def test_lead_show_explains_the_lead_with_personal_data_masked(
    demo: None, capsys: pytest.CaptureFixture[str]
) -> None:
    ping = submit(complete("ping"))
    submit(
        complete(
            "post",
            Lead_ID=str(ping.lead_id),
            Email="jane.roe@example.com",
            First_Name="Jane",
            Home_Phone="3125550142",
            TCPA_Consent="Yes",
            TCPA_Language="I agree to be called.",
        )
    )
    out = run(capsys, "lead", "show", str(ping.lead_id))
    assert re.search(r"Consent\n  ip\s+75\.2\.\*\.\*\n  landing_page\s+landing\n", out)
    assert re.search(r"  given\s+Yes\n  language\s+I agree to be called\.\n  at\s+20", out)
    assert f"Lead {ping.lead_id}  vendor demo  status sold" in out
    assert "j***@example.com" in out and "jane.roe" not in out
    assert "******0142" in out and "J***" in out
    assert re.search(r"ping\s+Matched", out) and re.search(r"sale\s+sold to partner 142", out)
    assert re.search(r"142\s+Roof Co\s+sold", out)
    assert re.search(r"1543\s+Everything Home\s+matched", out)
    assert "Not considered" in out and "225" in out  # Bath Masters buys bathrooms only
    clear = run(capsys, "lead", "show", str(ping.lead_id), "--pii")
    assert "jane.roe@example.com" in clear and "3125550142" in clear
    assert re.search(r"  ip\s+75\.2\.92\.149\n", clear)


def test_lead_show_of_an_unknown_lead_says_so(demo: None) -> None:
    from pingpost_local.cli import main

    with pytest.raises(SystemExit, match="no lead 987654321"):
        main(["lead", "show", "987654321"])


def test_partners_list(demo: None, capsys: pytest.CaptureFixture[str]) -> None:
    out = run(capsys, "partners", "list")
    assert out.splitlines()[0].split() == [
        "id",
        "company",
        "price",
        "active",
        "test",
        "priority",
        "states",
        "products",
        "caps",
    ]
    assert re.search(r"142\s+Roof Co\s+25", out)
    assert re.search(r"1543\s+Everything Home\s+12\S*\s+yes\s+no\s+0\s+any\s+any", out)


def test_vendors_add_prints_a_new_key_once_and_stores_its_hash(
    demo: None, capsys: pytest.CaptureFixture[str]
) -> None:
    import boto3

    out = run(capsys, "vendors", "add", "newco", "--name", "New Co", "--cost", "7.5")
    key = out.strip().splitlines()[-1]
    assert len(key) >= 40
    stored = boto3.client("dynamodb").scan(TableName="VendorsTable")["Items"]
    assert key not in str(stored)
    answer = submit(complete("ping", Key=key))
    assert answer.status == "Matched"
    from pingpost_local.cli import main

    with pytest.raises(SystemExit, match="exists already"):
        main(["vendors", "add", "newco"])


def test_vendors_list_and_redirect_hosts(demo: None, capsys: pytest.CaptureFixture[str]) -> None:
    out = run(
        capsys,
        "vendors",
        "add",
        "forms-co",
        "--response-style",
        "full",
        "--redirect-host",
        "www.forms.example",
        "--no-http-errors",
    )
    assert "vendor forms-co created" in out
    listed = run(capsys, "vendors", "list")
    assert listed.splitlines()[0].split()[:3] == ["id", "name", "active"]
    assert re.search(
        r"forms-co\s+forms-co\s+yes\s+0\s+fixed\s+full\s+no \(200\)\s+"
        r"www\.forms\.example\n",
        listed,
    )
    assert re.search(r"demo\s+Demo Forms\s+yes\s+10\S*\s+fixed\s+short\s+yes\s+\(none\)", listed)
    said = run(
        capsys, "vendors", "redirect-hosts", "forms-co", "WWW.Forms.Example.", "thanks.example"
    )
    assert said == "vendor forms-co redirect hosts: www.forms.example, thanks.example\n"
    from pingpost.store import vendors

    (stored,) = [v for v in vendors.all_vendors() if v.id == "forms-co"]
    assert stored.redirect_hosts == ["www.forms.example", "thanks.example"]
    assert stored.response_style == "full" and not stored.http_errors
    from pingpost_local.cli import main

    with pytest.raises(SystemExit, match="redirect_hosts must be host names"):
        main(["vendors", "redirect-hosts", "forms-co", "http://evil.example/x"])
    with pytest.raises(SystemExit, match="no vendor nobody"):
        main(["vendors", "redirect-hosts", "nobody", "a.example"])
