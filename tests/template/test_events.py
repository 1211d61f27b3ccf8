"""Issue 15: events out. The table's stream feeds a Pipe whose filter is the one the code documents,
onto a bus the template creates, with a dead-letter queue and an alarm on it."""

from __future__ import annotations

import json
from typing import Any

from tests.template.test_template import resources, transformed

from ecpay_lambda.store.dynamodb_events import DETAIL_TYPE, EVENT_SOURCE, INVOICE_PIPE_FILTERS, PIPE_FILTERS


def _pipe(name: str = "WalletEventsPipe") -> dict[str, Any]:
    pipes = {n for n, r in resources().items() if r["Type"] == "AWS::Pipes::Pipe"}
    assert pipes == {"WalletEventsPipe", "WalletInvoiceEventsPipe"}
    props: dict[str, Any] = resources()[name]["Properties"]
    return props


def _filters(name: str) -> list[Any]:
    return [json.loads(f["Pattern"]) for f in _pipe(name)["SourceParameters"]["FilterCriteria"]["Filters"]]


def test_the_invoice_events_pipe_is_the_first_ones_twin_with_its_own_filter() -> None:
    invoice, ledger = _pipe("WalletInvoiceEventsPipe"), _pipe()
    assert resources()["WalletInvoiceEventsPipe"]["Condition"] == "InvoicingOn"
    assert _filters("WalletInvoiceEventsPipe") == list(INVOICE_PIPE_FILTERS)
    same = ("RoleArn", "Source", "Target", "TargetParameters")
    assert all(invoice[key] == ledger[key] for key in same)
    assert (
        invoice["SourceParameters"]["DynamoDBStreamParameters"]
        == (ledger["SourceParameters"]["DynamoDBStreamParameters"])
    )


def test_no_pipe_filter_uses_what_pipes_do_not_support() -> None:
    # EventBridge's pattern table: Pipes support neither "$or" (Or, multiple fields) nor suffix or
    # equals-ignore-case; and a Pipe takes at most five patterns.
    for name in ("WalletEventsPipe", "WalletInvoiceEventsPipe"):
        text = json.dumps(_filters(name))
        assert len(_filters(name)) <= 5
        assert not any(word in text for word in ('"$or"', '"suffix"', '"equals-ignore-case"')), name


def test_the_table_streams_old_and_new_images_to_the_pipe() -> None:
    table = resources()["WalletTable"]["Properties"]
    assert table["StreamSpecification"] == {"StreamViewType": "NEW_AND_OLD_IMAGES"}
    pipe = _pipe()
    assert pipe["Source"] == {"Fn::GetAtt": ["WalletTable", "StreamArn"]}
    assert "Enrichment" not in pipe  # no Lambda code between the ledger and the bus


def test_the_pipe_filter_is_the_documented_one() -> None:
    assert _filters("WalletEventsPipe") == list(PIPE_FILTERS)


def test_events_go_to_the_stacks_bus_with_the_documented_source() -> None:
    pipe = _pipe()
    assert resources()["WalletEventBus"]["Type"] == "AWS::Events::EventBus"
    assert pipe["Target"] == {"Fn::GetAtt": ["WalletEventBus", "Arn"]}
    bus = pipe["TargetParameters"]["EventBridgeEventBusParameters"]
    assert (bus["Source"], bus["DetailType"]) == (EVENT_SOURCE, DETAIL_TYPE)


def test_undeliverable_records_reach_a_dead_letter_queue_that_alarms() -> None:
    stream = _pipe()["SourceParameters"]["DynamoDBStreamParameters"]
    assert stream["DeadLetterConfig"]["Arn"] == {"Fn::GetAtt": ["WalletEventsDeadLetterQueue", "Arn"]}
    assert stream["MaximumRetryAttempts"] >= 1 and stream["OnPartialBatchItemFailure"] == "AUTOMATIC_BISECT"
    alarms = [
        r["Properties"]
        for r in resources().values()
        if r["Type"] == "AWS::CloudWatch::Alarm"
        and any(
            d.get("Value") == {"Fn::GetAtt": ["WalletEventsDeadLetterQueue", "QueueName"]}
            for d in r["Properties"].get("Dimensions", [])
        )
    ]
    assert len(alarms) == 1 and alarms[0]["AlarmActions"] == [{"Ref": "AlarmTopic"}]


def test_the_pipe_role_reads_the_stream_and_writes_only_the_bus_and_its_queue() -> None:
    role = resources()["WalletEventsPipeRole"]["Properties"]
    statements = role["Policies"][0]["PolicyDocument"]["Statement"]
    granted = {
        (a, json.dumps(s["Resource"], sort_keys=True))
        for s in statements
        for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    }
    resources_named = {r for _, r in granted}
    assert resources_named == {
        json.dumps({"Fn::GetAtt": ["WalletTable", "StreamArn"]}),
        json.dumps({"Fn::GetAtt": ["WalletEventBus", "Arn"]}),
        json.dumps({"Fn::GetAtt": ["WalletEventsDeadLetterQueue", "Arn"]}),
    }
    assert all(not a.endswith("*") for a, _ in granted)


def test_the_events_resources_survive_the_sam_transform() -> None:
    for mode in ("token", "jwt"):
        out = transformed(mode)["Resources"]
        assert out["WalletEventsPipe"]["Type"] == "AWS::Pipes::Pipe"
