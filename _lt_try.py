import tempfile, pathlib
from bench.common import bench_store, moto_endpoint
from bench import latency
d = pathlib.Path(tempfile.mkdtemp())
res = {}
with bench_store("sqlite", d) as s:
    res["sqlite"] = latency.measure(s, 40)
with moto_endpoint() as ep, bench_store("dynamodb", d, ep) as s:
    res["dynamodb"] = latency.measure(s, 40)
print(latency.table(res, 40).text())
