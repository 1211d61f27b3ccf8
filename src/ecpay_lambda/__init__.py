"""ECPay payment backend for AWS Lambda: protocol library, wallet domain, stores, API and local mode."""

__version__ = "0.1.0"
