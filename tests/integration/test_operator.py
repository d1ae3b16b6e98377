"""The operator's commands: lead show, partners list|add|update|pause|resume, vendors."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest

from pingpost.errors import Forbidden
from tests.conftest import DEMO_SEED
from tests.leads import complete


@pytest.fixture(scope="module")
def demo(aws: str) -> None:
    from pingpost_local import seed

    seed.apply(seed.load(DEMO_SEED))


@pytest.fixture
def added(demo: None) -> Iterator[None]:
    """Partners a test adds (IDs 7000-7099) are removed after it, secrets too: the other tests
    of this process see the demo's partners only."""
    import boto3

    from pingpost.store import partners, secrets

    yield
    client = boto3.client("dynamodb")
    for partner_id in range(7000, 7100):
        key = {"partner_id": {"N": str(partner_id)}}
        if client.get_item(TableName=os.environ["PARTNERS_TABLE"], Key=key).get("Item"):
            client.delete_item(TableName=os.environ["PARTNERS_TABLE"], Key=key)
            secrets.forget(partner_id)
    partners.forget()


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
    # Every price two decimals: the cost, the sale in the timeline and in the sales
    assert "  cost 10.00  " in out and "sold to partner 142 at 25.00" in out
    assert re.search(r"partner 142\s+Roof Co\s+25\.00\n", out)
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
        "types",
    ]
    assert re.search(r"142\s+Roof Co\s+25", out)
    assert re.search(r"2001\s+Safe Drive Insurance\s+22.*\s20\n", out)
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
    # A vendor of one lead type: any other is refused (403)
    out = run(capsys, "vendors", "add", "autoco", "--lead-type", "20")
    auto_key = out.strip().splitlines()[-1]
    assert re.search(r"autoco\s+autoco\s+yes.*\s20\n", run(capsys, "vendors", "list"))
    with pytest.raises(Forbidden, match="only 20 \\(Auto Insurance\\)"):
        submit(complete("ping", Key=auto_key))
    assert submit(complete("ping", "20", Key=auto_key)).status == "Matched"


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
        r"forms-co\s+forms-co\s+yes\s+0\.00\s+fixed\s+full\s+no \(200\)\s+"
        r"www\.forms\.example\s+any\n",
        listed,
    )
    demo = (
        r"demo\s+Demo Forms\s+yes\s+10\.00\s+fixed\s+short\s+yes\s+127\.0\.0\.1,localhost\s+any\n"
    )
    assert re.search(demo, listed)
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


def buyers(fields: dict[str, str]) -> set[str]:
    """The partners a full request's lead was sold to."""
    from pingpost.store import leads

    lead = leads.get(submit(fields).lead_id)
    assert lead is not None
    return {str(partner_id) for partner_id in lead.sold_to}


def _partner_document(partner_id: int, **changes: Any) -> dict[str, Any]:
    return {
        "id": partner_id,
        "company": f"Gutter Co {partner_id}",
        "price": 22,
        "filters": {"states": ["IL"], "products": ["Gutters"], "min_score": 5},
        "delivery": {"url": "https://buyer.example/leads", "headers": {"X-Api-Key": "k-secret"}},
    } | changes


def test_partners_add_update_pause_and_resume_a_partner(
    added: None, capsys: pytest.CaptureFixture[str], tmp_path: Any
) -> None:
    import json

    import boto3

    from pingpost.store import partners
    from pingpost_local.cli import main

    # Given a partner document, as a seed file lists partners
    document = tmp_path / "partner.json"
    document.write_text(json.dumps(_partner_document(7001)))

    # When it is added, then updated with a JSON object of changes
    assert run(capsys, "partners", "add", str(document)) == "added partner 7001\n"
    changes = '{"price": 24.5, "filters": {"states": ["IL", "IN"]}, "priority": 2}'
    assert run(capsys, "partners", "update", "7001", changes) == "updated partner 7001\n"

    # Then the partner has the changes, and kept everything else (its secret header too)
    partners.forget()
    stored = partners.by_id(7001)
    assert stored is not None
    assert (str(stored.price), stored.priority) == ("24.5", 2)
    assert stored.filters.states == ["IL", "IN"] and stored.filters.products == ["Gutters"]
    assert stored.filters.min_score == 5 and stored.delivery.secret_headers == ["X-Api-Key"]
    name = f"{os.environ['PARTNER_SECRETS_PATH']}/7001/headers"
    secret = boto3.client("ssm").get_parameter(Name=name, WithDecryption=True)["Parameter"]
    assert json.loads(secret["Value"]) == {"X-Api-Key": "k-secret"}

    # And pausing takes it out of matching until it is resumed
    assert run(capsys, "partners", "pause", "7001") == "paused partner 7001\n"
    assert run(capsys, "partners", "pause", "7001") == "partner 7001 unchanged\n"
    partners.forget()
    assert partners.by_id(7001).active is False  # type: ignore[union-attr]
    assert "7001" not in buyers(complete("full", Home_Improvement_Product="Gutters"))
    assert run(capsys, "partners", "resume", "7001") == "resumed partner 7001\n"
    partners.forget()
    assert "7001" in buyers(complete("full", Home_Improvement_Product="Gutters"))

    # And adding it again, or a document the model refuses, changes nothing
    with pytest.raises(SystemExit, match="partner 7001 exists already"):
        main(["partners", "add", str(document)])
    document.write_text(json.dumps(_partner_document(7002, filters={"states": ["XX"]})))
    with pytest.raises(SystemExit, match="unknown states"):
        main(["partners", "add", str(document)])
    assert partners.read(7002) is None
    with pytest.raises(SystemExit, match="no partner 7003"):
        main(["partners", "pause", "7003"])
    with pytest.raises(SystemExit, match="id cannot change"):
        main(["partners", "update", "7001", '{"id": 7004}'])


def test_a_partner_changed_since_it_was_read_is_not_written_over(added: None) -> None:
    from pingpost.models import Partner
    from pingpost.store import partners

    # Given a partner read by one operator, then changed by another
    partners.put(Partner.model_validate(_partner_document(7010)))
    found = partners.read(7010)
    assert found is not None
    first, written = found
    partners.put(first.model_copy(update={"price": Decimal(30)}), written=written)

    # When the first writes its change over the partner as it read it
    with pytest.raises(partners.PartnerChanged):
        partners.put(first.model_copy(update={"priority": 9}), written=written)

    # Then the other's change stands, and the refused one is not written
    now = partners.read(7010)
    assert now is not None and (now[0].price, now[0].priority) == (30, 0)


def _meanwhile(monkeypatch: pytest.MonkeyPatch, other: Callable[[], object]) -> None:
    """`other` (another operator's write) runs once the next partner write has stored its
    secrets and reads the table's version: the two race, and the next one loses."""
    from pingpost.store import partners

    version = partners._version

    def racing() -> Any:
        monkeypatch.setattr(partners, "_version", version)
        other()
        return version()

    monkeypatch.setattr(partners, "_version", racing)


def test_a_refused_partner_write_leaves_its_secret_headers_as_they_were(
    added: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pingpost.models import Partner
    from pingpost.store import partners, secrets

    def stored_headers(request: str) -> dict[str, str]:
        secrets._cache.clear()  # as a new container reads them
        return secrets.headers(7011, request)

    # Given a partner whose delivery and bid send secret headers, read by one operator
    bidding = {
        "bid": {"url": "https://buyer.example/bid", "headers": {"X-Bid-Key": "b-old"}},
        "post": {"url": "https://buyer.example/post"},
    }
    partners.put(Partner.model_validate(_partner_document(7011, **bidding)))

    # When another operator changes it while the first one writes new header values, or drops
    # the headers, over the partner it read (after its secrets, as the write reads the version)
    version = partners._version
    for change in (
        _partner_document(7011, **bidding)
        | {"delivery": {"url": "https://buyer.example/leads", "headers": {"X-Api-Key": "new"}}},
        _partner_document(7011) | {"delivery": {"url": "https://buyer.example/leads"}},
    ):
        found = partners.read(7011)
        assert found is not None
        first, written = found
        other = first.model_copy(update={"priority": 3})
        _meanwhile(
            monkeypatch, lambda other=other, written=written: partners.put(other, written=written)
        )
        with pytest.raises(partners.PartnerChanged):
            partners.put(Partner.model_validate(change), written=written)
        assert partners._version is version  # the other write came

        # Then the partner as it stands still sends the values it was written with
        assert stored_headers("delivery") == {"X-Api-Key": "k-secret"}
        assert stored_headers("bid") == {"X-Bid-Key": "b-old"}

    # And a write that lands drops the values of the headers it no longer has
    now = partners.read(7011)
    assert now is not None and now[0].priority == 3
    partners.put(
        Partner.model_validate(
            _partner_document(7011) | {"delivery": {"url": "https://b.example/"}}
        ),
        written=now[1],
    )
    assert stored_headers("delivery") == stored_headers("bid") == {}


def test_a_vendor_key_rotates_with_both_keys_working_until_it_finishes(
    demo: None, capsys: pytest.CaptureFixture[str]
) -> None:
    from pingpost.errors import PingPostError
    from pingpost_local.cli import main

    def status(key: str) -> str:
        try:
            return str(submit(complete("ping", Key=key)).status)
        except PingPostError as error:
            return f"{error.status} {error}"

    # Given a vendor with its Key
    old = run(capsys, "vendors", "add", "rotating").strip().splitlines()[-1]
    assert status(old) == "Matched"

    # When a rotation starts, both Keys work, and a second rotation waits for its end
    new = run(capsys, "vendors", "rotate-key", "rotating").strip().splitlines()[-1]
    assert new != old and len(new) >= 40
    assert (status(old), status(new)) == ("Matched", "Matched")
    with pytest.raises(SystemExit, match="rotation under way"):
        main(["vendors", "rotate-key", "rotating"])

    # Then when it finishes, only the new Key works
    assert "only the new Key works now" in run(
        capsys, "vendors", "rotate-key", "rotating", "--finish"
    )
    assert (status(old), status(new)) == ("401 Invalid Key", "Matched")
    with pytest.raises(SystemExit, match="no rotation under way"):
        main(["vendors", "rotate-key", "rotating", "--finish"])

    # And a disabled vendor is refused until it is enabled again
    assert run(capsys, "vendors", "disable", "rotating") == "vendor rotating disabled\n"
    assert status(new) == "403 This Key's vendor account is disabled"
    assert run(capsys, "vendors", "enable", "rotating") == "vendor rotating enabled\n"
    assert status(new) == "Matched"
    with pytest.raises(SystemExit, match="no vendor nobody"):
        main(["vendors", "disable", "nobody"])


def test_partners_reindex_files_a_table_written_before_the_index(
    added: None, capsys: pytest.CaptureFixture[str]
) -> None:
    import os

    import boto3

    from pingpost.store import partners

    # Given a table whose partners were written before the index (none of its items, no mark)
    client = boto3.client("dynamodb")
    table = os.environ["COUNTERS_TABLE"]
    for page in client.get_paginator("scan").paginate(TableName=table):
        for item in page["Items"]:
            if item["counter"]["S"].startswith(partners.INDEX):
                client.delete_item(TableName=table, Key={"counter": item["counter"]})
    client.update_item(
        TableName=table,
        Key={"counter": {"S": partners.VERSION}},
        UpdateExpression="REMOVE #ix",
        ExpressionAttributeNames={"#ix": "indexed"},
    )
    partners.forget()
    # Its leads are still sold, each container reading every partner
    assert "510" in buyers(complete("full", Home_Improvement_Product="Gutters"))

    # When the operator indexes it, leads are sold by the index
    said = run(capsys, "partners", "reindex")
    count = len(partners.all_partners())
    assert said.startswith(f"indexed {count} partners in ")
    partners.forget()
    assert "510" in buyers(complete("full", Home_Improvement_Product="Gutters"))
    assert partners._kept.indexed and not partners._kept.whole


def _with_key(partner_id: int, value: str, **more: Any) -> Any:
    from pingpost.models import Partner

    delivery = {"url": "https://buyer.example/leads", "headers": {"X-Api-Key": value}}
    return Partner.model_validate(_partner_document(partner_id, **more) | {"delivery": delivery})


def _added(partner: Any) -> tuple[Any, int]:
    """The partner written, as an operator then reads it (with the version that wrote it)."""
    from pingpost.store import partners

    partners.put(partner)
    found = partners.read(partner.id)
    assert found is not None
    return found


def _stored_key(partner_id: int, request: str = "delivery") -> dict[str, str]:
    from pingpost.store import secrets

    secrets._cache.clear()  # as a new container reads them
    return secrets.headers(partner_id, request)


@pytest.mark.parametrize(
    "race", ["changed, B after A's secrets", "changed, B before them", "added by both"]
)
def test_a_write_that_lost_a_race_leaves_the_winners_secret_values(
    added: None, monkeypatch: pytest.MonkeyPatch, race: str
) -> None:
    from pingpost.store import partners

    # Given a partner two operators read, and change its key at once (or both add it)
    adding = race == "added by both"
    written = None if adding else _added(_with_key(7021, "k-secret"))[1]

    # When B's write lands after A stored its value (or before), and A's is refused
    lands = _meanwhile if race == "changed, B after A's secrets" else _before_its_secrets
    lands(monkeypatch, lambda: partners.put(_with_key(7021, "B"), new=adding, written=written))
    with pytest.raises(partners.PartnerChanged):
        partners.put(_with_key(7021, "A"), new=adding, written=written)

    # Then the partner as it stands sends B's value (A put back over it what it found first)
    assert _stored_key(7021) == {"X-Api-Key": "B"}


def test_a_write_whose_outcome_is_unknown_leaves_its_secret_values(
    added: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from botocore.exceptions import ReadTimeoutError

    from pingpost.store import dynamodb, partners

    partners.put(_with_key(7022, "old"))
    real = dynamodb().transact_write_items

    def written_then_timed_out(**request: Any) -> Any:
        real(**request)
        raise ReadTimeoutError(endpoint_url="dynamodb")

    monkeypatch.setattr(dynamodb(), "transact_write_items", written_then_timed_out)
    with pytest.raises(ReadTimeoutError):
        partners.put(_with_key(7022, "new"))
    monkeypatch.undo()
    # The write landed: the partner sends the values it was written with
    assert _stored_key(7022) == {"X-Api-Key": "new"}


def test_a_write_that_fails_storing_its_secrets_puts_back_those_it_stored(
    added: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from botocore.exceptions import ClientError

    from pingpost.store import partners, secrets

    bid = {"url": "https://buyer.example/bid", "headers": {"X-Bid-Key": "b-old"}}
    post = {"url": "https://buyer.example/post"}
    partners.put(_with_key(7023, "k-old", bid=bid, post=post))
    put = secrets.put

    def throttled_bid(partner_id: int, headers: dict[str, str], request: str = "delivery") -> int:
        if request == "bid":
            raise ClientError({"Error": {"Code": "ThrottlingException"}}, "PutParameter")
        return put(partner_id, headers, request)

    monkeypatch.setattr(secrets, "put", throttled_bid)
    new_bid = bid | {"headers": {"X-Bid-Key": "b-new"}}
    with pytest.raises(ClientError, match="Throttling"):
        partners.put(_with_key(7023, "k-new", bid=new_bid, post=post))
    monkeypatch.undo()
    assert _stored_key(7023) == {"X-Api-Key": "k-old"}
    assert _stored_key(7023, "bid") == {"X-Bid-Key": "b-old"}


def test_a_refused_write_says_so_when_its_old_values_cannot_be_put_back(
    added: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from botocore.exceptions import ClientError

    from pingpost.store import partners, secrets

    first, written = _added(_with_key(7024, "old"))

    def other_write_then_ssm_refuses() -> None:
        partners.put(first.model_copy(update={"priority": 2}), written=written)
        monkeypatch.setattr(secrets, "put", throttled)

    def throttled(*args: Any, **named: Any) -> int:
        raise ClientError({"Error": {"Code": "ThrottlingException"}}, "PutParameter")

    said: list[str] = []
    monkeypatch.setattr(partners.logger, "error", lambda text, *values: said.append(text % values))
    _meanwhile(monkeypatch, other_write_then_ssm_refuses)
    with pytest.raises(partners.PartnerChanged):  # the write's error, not SSM's
        partners.put(_with_key(7024, "new"), written=written)
    assert said[0].startswith("partner 7024: its delivery headers as they were could not be put")


def _before_its_secrets(monkeypatch: pytest.MonkeyPatch, other: Callable[[], object]) -> None:
    """`other` (another operator's whole write) runs just before the next partner write stores
    its secrets."""
    from pingpost.store import secrets

    put = secrets.put

    def racing(*args: Any, **named: Any) -> int:
        monkeypatch.setattr(secrets, "put", put)
        other()
        return put(*args, **named)

    monkeypatch.setattr(secrets, "put", racing)


def test_dropped_headers_stored_again_by_a_later_write_are_kept(
    added: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pingpost.models import Partner
    from pingpost.store import partners

    written = _added(_with_key(7033, "old"))[1]
    write = partners._write

    def then_another(*args: Any, **named: Any) -> None:
        # A's write has landed; B reads it and stores headers again before A deletes its own
        write(*args, **named)
        monkeypatch.setattr(partners, "_write", write)
        found = partners.read(7033)
        assert found is not None
        partners.put(_with_key(7033, "B"), written=found[1])

    monkeypatch.setattr(partners, "_write", then_another)
    dropped = _partner_document(7033) | {"delivery": {"url": "https://buyer.example/leads"}}
    partners.put(Partner.model_validate(dropped), written=written)
    now = partners.read(7033)
    assert now is not None and now[0].delivery.secret_headers == ["X-Api-Key"]
    assert _stored_key(7033) == {"X-Api-Key": "B"}


def test_a_write_that_fails_before_its_transaction_puts_its_values_back(
    added: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from botocore.exceptions import ClientError

    from pingpost.store import partners

    written = _added(_with_key(7034, "old"))[1]

    def throttled() -> Any:
        raise ClientError({"Error": {"Code": "ThrottlingException"}}, "GetItem")

    monkeypatch.setattr(partners, "_version", throttled)
    with pytest.raises(ClientError):
        partners.put(_with_key(7034, "new"), written=written)
    monkeypatch.undo()
    now = partners.read(7034)
    assert now is not None and now[1] == written  # certainly not written
    assert _stored_key(7034) == {"X-Api-Key": "old"}
