"""The forwarding path (sections 1, 2, 6) and routing by jurisdiction (section 6)."""

from __future__ import annotations

from conformance.items import ItemFactory, ItemSpec, rejected
from conformance.registry import item_case
from hfp.v1 import receipt_pb2

R = receipt_pb2


# --- who may hand an item over ---------------------------------------------------------


@item_case(
    "PTH-001",
    "3",
    "own item sent with a via path whose last entry is someone else gets SENDER_MISMATCH",
    reject=True,
)
def via_not_sender(f: ItemFactory) -> ItemSpec:
    report = f.report("pth-via-other")
    return f.report_spec(report, rejected(R.REJECT_REASON_SENDER_MISMATCH), via=[f.other.member_id])


@item_case(
    "PTH-002",
    "3",
    "a third party's item sent as if authored by the TLS peer (empty via) gets SENDER_MISMATCH",
    reject=True,
)
def not_the_author(f: ItemFactory) -> ItemSpec:
    report = f.report("pth-third-party", author=f.other.member_id)
    return f.report_spec(report, rejected(R.REJECT_REASON_SENDER_MISMATCH), party=f.other)


@item_case(
    "PTH-003",
    "6",
    "a third party's item relayed by the TLS peer (via = [peer]) is accepted",
    reject=False,
)
def relayed(f: ItemFactory) -> ItemSpec:
    report = f.report("pth-relayed", author=f.other.member_id)
    return f.report_spec(report, f.accepted_here(), party=f.other, via=[f.me.member_id])


@item_case(
    "PTH-004",
    "6",
    "an item whose via path already holds the receiver gets LOOP_DETECTED",
    reject=True,
)
def receiver_in_path(f: ItemFactory) -> ItemSpec:
    report = f.report("pth-loop", author=f.other.member_id)
    return f.report_spec(
        report,
        rejected(R.REJECT_REASON_LOOP_DETECTED),
        party=f.other,
        via=[f.target, f.me.member_id],
    )


@item_case("PTH-005", "6", "a via path of 5 entries gets LOOP_DETECTED", reject=True)
def path_too_long(f: ItemFactory) -> ItemSpec:
    report = f.report("pth-five", author=f.other.member_id)
    via = [f.other.member_id, *f.path_members, f.me.member_id]
    return f.report_spec(report, rejected(R.REJECT_REASON_LOOP_DETECTED), party=f.other, via=via)


@item_case(
    "PTH-006",
    "6",
    "a via path of exactly 4 entries for a report the receiver handles is accepted",
    reject=False,
)
def path_at_limit(f: ItemFactory) -> ItemSpec:
    report = f.report("pth-four", author=f.other.member_id)
    via = [*f.path_members, f.me.member_id]
    return f.report_spec(report, f.accepted_here(), party=f.other, via=via)


# --- routing ------------------------------------------------------------------------------


@item_case(
    "RTE-001",
    "6",
    "a report for the receiver's own jurisdiction is ACCEPTED with a case_id",
    reject=False,
)
def own_jurisdiction(f: ItemFactory) -> ItemSpec:
    return f.report_spec(f.report("rte-own"), f.accepted_here())


@item_case(
    "RTE-002",
    "6",
    "a report for another hotline's country is FORWARDED to that hotline",
    reject=False,
)
def other_hotline(f: ItemFactory) -> ItemSpec:
    report = f.report("rte-other", country=f.other_country)
    return f.report_spec(report, f.routed(f.other.member_id))


@item_case(
    "RTE-003",
    "6",
    "a report for a country no hotline covers goes to the roster's fallback member",
    reject=False,
)
def uncovered(f: ItemFactory) -> ItemSpec:
    report = f.report("rte-uncovered", country=f.uncovered_country)
    return f.report_spec(report, f.routed(f.fallback))


@item_case("RTE-004", "6", "a report for ZZ (unknown) goes to the fallback member", reject=False)
def unknown_country(f: ItemFactory) -> ItemSpec:
    return f.report_spec(f.report("rte-zz", country="ZZ"), f.routed(f.fallback))


@item_case(
    "RTE-005",
    "6",
    "a report for the sender's own jurisdiction (XA) is FORWARDED back to its responsible member",
    reject=False,
)
def back_to_author(f: ItemFactory) -> ItemSpec:
    report = f.report("rte-own-author", country=f.own_country)
    return f.report_spec(report, f.routed(f.me.member_id))
