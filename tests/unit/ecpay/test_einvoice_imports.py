"""The e-invoice library stays off the ECPay notification Lambda's cold start."""

from __future__ import annotations

import json
import subprocess
import sys


def test_notification_path_does_not_import_the_einvoice_library() -> None:
    code = (
        "import json, sys\n"
        "import ecpay_lambda.api.ecpay_callbacks\n"
        "found = [m for m in sys.modules if 'einvoice' in m or m.split('.')[0] == 'cryptography']\n"
        "print(json.dumps(sorted(found)))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(proc.stdout) == []


def test_the_library_imports_alone() -> None:
    code = "import ecpay_lambda.ecpay.einvoice as e; print(e.InvoiceClient.__name__)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "InvoiceClient"
