"""The management function's lean request path: its common, well-formed requests without pydantic.

The Powertools resolver (api/app.py) with its pydantic models is the single source of truth for the
API: OpenAPI, every refusal, CORS, the rare routes. Importing it costs more than boto3 itself, so a
cold start that only creates a user or lists transactions would pay for machinery it does not use
(the cold-start rule, docs/performance.md). This package serves the hot routes (``table.py``) when
a request is one it can vouch for: every value passes the same rules pydantic applies (``checks.py``),
and the answer is rendered byte for byte as the models render it (``render.py``). Whenever it is
not sure, it says so and api/handlers.py hands the request, unchanged, to the resolver. Both paths
run the same route logic (api/operations.py) and answer errors alike (api/answers.py).
"""
