"""Uniform invoice filing periods (two months each) and when an invoice can still be voided.

A Taiwanese uniform invoice belongs to a bimonthly period (Jan-Feb, Mar-Apr, ..., Nov-Dec), whose VAT
return is filed by the 15th of the next odd month. A sale refunded within the invoice's own period
is voided (作廢); later, the return of that period may already be filed, so it gets an allowance
(折讓, a credit note) instead.

What ``can_void`` chooses: the same filing period, on Taipei dates. ECPay's back office lets a
merchant void-and-reissue until the 13th of the next odd month (its support page: "3-4月開立的發票,
最晚可於" the 13th of May), two days before the return is due; whether its API's Invalid accepts a
void of the previous period in those 13 days is not stated in any source stored here. The strict
rule never asks ECPay for a void it could refuse, and an allowance is always lawful, so the wallet
uses it; ``void_deadline`` gives ECPay's outer limit for information.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from ..timezone import TAIPEI


def taipei_date(moment: date | datetime) -> date:
    """A date as is; an aware datetime as its Taipei calendar date (naive datetimes are refused)."""
    if isinstance(moment, datetime):
        if moment.tzinfo is None:
            raise ValueError("naive datetime: pass an aware datetime (UTC recommended)")
        return moment.astimezone(TAIPEI).date()
    return moment


def filing_period(day: date | datetime) -> tuple[date, date]:
    """The first and last day of the bimonthly period containing ``day`` (Taipei date)."""
    d = taipei_date(day)
    first_month = d.month if d.month % 2 else d.month - 1
    start = date(d.year, first_month, 1)
    following = date(d.year + 1, 1, 1) if first_month == 11 else date(d.year, first_month + 2, 1)
    return start, following - timedelta(days=1)


def void_deadline(invoice_date: date | datetime) -> date:
    """The 13th of the month after the invoice's period: ECPay's back-office limit for a void."""
    _, end = filing_period(invoice_date)
    after = end + timedelta(days=1)
    return date(after.year, after.month, 13)


def can_void(invoice_date: date | datetime, today: date | datetime) -> bool:
    """True when ``today`` is in the invoice's filing period (and not before the invoice)."""
    issued = taipei_date(invoice_date)
    now = taipei_date(today)
    start, end = filing_period(issued)
    return issued <= now <= end and start <= now
