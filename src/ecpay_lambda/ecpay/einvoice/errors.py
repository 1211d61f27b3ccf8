"""The e-invoice errors: a refused envelope, a refused request, a rule the request breaks.

They sit in the library's one hierarchy (``ecpay.errors``): an answer ECPay gave is a
``ResponseError``; a request refused before sending is an ``EcpayValidationError``. A failure to get
an answer at all stays the AIO part's ``TransportError`` (a timeout: the caller cannot know whether
ECPay acted, and resolves it with GetIssue).
"""

from __future__ import annotations

from ..errors import EcpayValidationError, ResponseError


class InvoiceEnvelopeError(ResponseError):
    """A ``Data`` field that does not decrypt, unpad, URL-decode and parse as a JSON object."""


class InvoiceTransportError(ResponseError):
    """ECPay answered ``TransCode`` other than 1: it refused the envelope (key, Timestamp, format).

    Nothing was done: the request never reached the invoice service proper.
    """

    def __init__(self, trans_code: int, trans_msg: str, endpoint: str = "") -> None:
        where = f"{endpoint}: " if endpoint else ""
        super().__init__(
            f"{where}ECPay refused the envelope: TransCode {trans_code} ({trans_msg or 'no message'})"
        )
        self.trans_code = trans_code
        self.trans_msg = trans_msg
        self.endpoint = endpoint


class InvoiceRejected(ResponseError):
    """The decrypted answer's ``RtnCode`` is not 1: ECPay refused the request itself."""

    def __init__(self, rtn_code: int, rtn_msg: str, endpoint: str = "") -> None:
        where = f"{endpoint}: " if endpoint else ""
        super().__init__(f"{where}ECPay answered RtnCode {rtn_code} ({rtn_msg or 'no message'})")
        self.rtn_code = rtn_code
        self.rtn_msg = rtn_msg
        self.endpoint = endpoint


class InvoiceRuleError(EcpayValidationError):
    """A request breaks one of ECPay's invoice rules; ``code`` names the rule for programs.

    Codes: ``tax_id_format``, ``tax_id_checksum``, ``donation_with_tax_id``, ``carrier_with_print``,
    ``donation_with_print``, ``tax_id_print``, ``print_needs_name_address``, ``mobile_barcode_format``,
    ``citizen_certificate_format``, ``member_carrier_num``, ``carrier_num_without_type``,
    ``love_code_format``, ``contact_required``, ``email_format``, ``phone_format``, ``field_length``,
    ``relate_number_format``, ``items_required``, ``item_amount``, ``items_sum``, ``amount``,
    ``tax_type``, ``inv_type``, ``invoice_no_format``, ``reason_length``, ``allowance_no_format``.
    """

    def __init__(self, code: str, message: str, field: str = "") -> None:
        super().__init__(field or code, message)
        self.code = code
        self.message = message
