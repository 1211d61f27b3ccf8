"""Local mode: one loopback server composing the template-routed API, the ECPay sandbox and the dashboard.

Only composition lives here; business rules stay in ``wallet`` and the protocol in ``ecpay``.
"""
