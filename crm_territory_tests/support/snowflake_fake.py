"""fakesnow for the Snowflake storage tests: the real connector and dagster-snowflake over DuckDB.

Lives in the tests, never in the package.
"""

from collections.abc import Iterator
from contextlib import contextmanager

import fakesnow

# fakesnow.server() imports its submodule fakesnow.server, which then shadows the function on the package: the
# function is kept here, taken before any test has started a server.
_start_server = fakesnow.server

FAKE_ENV = {
    "SNOWFLAKE_ACCOUNT": "crm-test-account",
    "SNOWFLAKE_USER": "CRM_TERRITORY_DAGSTER",
    "SNOWFLAKE_PASSWORD": "not-a-real-password",
    "SNOWFLAKE_DATABASE": "CRM_TERRITORY",
    "SNOWFLAKE_WAREHOUSE": "CRM_TERRITORY_WH",
    "SNOWFLAKE_ROLE": "CRM_TERRITORY_LOADER",
}


@contextmanager
def fake_snowflake() -> Iterator[None]:
    # fakesnow patches snowflake.connector (connect, pandas_tools.write_pandas) for the context; the Snowflake
    # storage looks write_pandas up on its module at call time, so nothing else needs patching.
    with fakesnow.patch():
        yield


@contextmanager
def deployed_warehouse() -> Iterator:
    """fakesnow as a deployment leaves it: the schemas Terraform creates (infra/terraform/database.tf), then the
    tables' DDL; yields a connection of FAKE_ENV's account (closed after)."""
    import snowflake.connector

    from crm_territory.storage.warehouse_ddl import apply_ddl

    with fake_snowflake():
        connection = snowflake.connector.connect(**{k.removeprefix("SNOWFLAKE_").lower(): v for k, v in FAKE_ENV.items()})
        for schema in ("RAW", "CORE"):
            connection.cursor().execute(f"CREATE SCHEMA IF NOT EXISTS CRM_TERRITORY.{schema}")
        apply_ddl(connection)
        try:
            yield connection
        finally:
            connection.close()


@contextmanager
def fake_snowflake_server() -> Iterator[dict]:
    """fakesnow's server on 127.0.0.1: the real connector over HTTP, so another process can share the warehouse.

    Yields the connection arguments (user, password, account, host, port, protocol). Every server of a process
    shares one in-memory warehouse: give each test its own database.
    """
    if not callable(_start_server):
        raise RuntimeError("fakesnow.server was imported before crm_territory_tests.support.snowflake_fake: import this first")
    with _start_server() as kwargs:
        yield kwargs


@contextmanager
def refusing_login_endpoint() -> Iterator[dict[str, str]]:
    """A local HTTP endpoint that answers Snowflake's login request the way Snowflake does for a wrong
    password. Yields the SNOWFLAKE_HOST/_PORT/_PROTOCOL variables pointing the real connector at it."""
    import http.server
    import json
    import threading

    class RefuseLogin(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's naming)
            self.rfile.read(int(self.headers.get("content-length", 0)))
            body = json.dumps(
                {"data": None, "code": "390100", "message": "Incorrect username or password was specified.", "success": False}
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RefuseLogin)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield {"SNOWFLAKE_HOST": "127.0.0.1", "SNOWFLAKE_PORT": str(server.server_address[1]), "SNOWFLAKE_PROTOCOL": "http"}
    finally:
        server.shutdown()
        server.server_close()
