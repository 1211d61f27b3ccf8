"""Shared pytest set-up: fixtures live in plugin modules under tests/support, one per concern.

- moto_plugin: a single-threaded moto DynamoDB server process and fresh tables (store adapters).
- sql_plugin: SQLite/MySQL/PostgreSQL URLs for the SQL adapter (TEST_MYSQL_URL, TEST_POSTGRES_URL).
- sandbox_plugin: the offline ECPay sandbox as a fixture (usable by integrators' own tests).
- stack_plugin: the whole local stack (API + sandbox + dashboard) on a free loopback port.
"""

pytest_plugins = [
    "tests.support.moto_plugin",
    "tests.support.sql_plugin",
    "tests.support.sandbox_plugin",
    "tests.support.stack_plugin",
]
