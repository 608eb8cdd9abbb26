"""Offline checks of the Snowflake objects in ``infra/terraform``.

The provider cannot be downloaded everywhere, so ``terraform validate`` is not an option here. Instead:
``terraform fmt -check`` runs for real, and every ``.tf`` file is parsed with python-hcl2 to check what the
configuration *does* — which objects exist, who may do what, how Dagster logs in — with names resolved to the
values a default ``terraform apply`` would use (``var.x`` to its default, ``snowflake_schema.raw.name`` to the
schema's name, and so on).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hcl2
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
TF_DIR = REPO_ROOT / "infra" / "terraform"

DATABASE = "CRM_TERRITORY"
RAW = f"{DATABASE}.RAW"
CORE = f"{DATABASE}.CORE"
WAREHOUSE = "CRM_TERRITORY_WH"
LOADER = "CRM_TERRITORY_LOADER"
ANALYST = "CRM_TERRITORY_ANALYST"
DAGSTER_USER = "CRM_TERRITORY_DAGSTER"

TABLE_WRITES = {"INSERT", "UPDATE", "DELETE", "TRUNCATE"}
FORBIDDEN_FOR_ANALYST = TABLE_WRITES | {"OWNERSHIP", "ALL", "ALL PRIVILEGES", "CREATE TABLE", "MODIFY"}
GRANT = "snowflake_grant_privileges_to_account_role"

# Strip the quotes hcl2 8.x keeps on strings ('"RAW"' -> 'RAW'), and drop its block markers and comments.
HCL_OPTIONS = hcl2.SerializationOptions(strip_string_quotes=True, explicit_blocks=False, with_comments=False)
INTERPOLATION = re.compile(r"\$\{([^{}]+)\}")


# --- Reading the configuration -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Terraform:
    """Every .tf file of the directory, merged: blocks by kind, keyed the way Terraform addresses them."""

    resources: dict[tuple[str, str], dict]  # (type, name) -> body
    variables: dict[str, dict]
    outputs: dict[str, dict]
    locals: dict[str, Any]
    providers: list[tuple[str, dict]]  # (provider name, body); a name repeats for aliases
    required_providers: dict[str, dict]
    files: dict[str, dict]  # file name -> everything hcl2 parsed from it

    def of_type(self, resource_type: str) -> list[dict]:
        return [body for (kind, _), body in self.resources.items() if kind == resource_type]


def load_terraform(directory: Path) -> Terraform:
    resources, variables, outputs, local_values, providers, required, files = {}, {}, {}, {}, [], {}, {}
    for path in sorted(directory.glob("*.tf")):
        with path.open() as handle:
            parsed = files[path.name] = hcl2.load(handle, serialization_options=HCL_OPTIONS)
        for block in parsed.get("resource", []):
            for resource_type, named in block.items():
                for name, body in named.items():
                    resources[(resource_type, name)] = body
        for block in parsed.get("variable", []):
            variables.update(block)
        for block in parsed.get("output", []):
            outputs.update(block)
        for block in parsed.get("locals", []):
            local_values.update(block)
        for block in parsed.get("provider", []):
            providers.extend(block.items())
        for block in parsed.get("terraform", []):
            for requirement in block.get("required_providers", []):
                required.update(requirement)
    assert files, f"no .tf file in {directory}"
    return Terraform(resources, variables, outputs, local_values, providers, required, files)


@pytest.fixture(scope="module")
def tf() -> Terraform:
    assert TF_DIR.is_dir(), f"{TF_DIR} is missing"
    return load_terraform(TF_DIR)


def resolve(tf: Terraform, value: Any) -> Any:
    """The value of an expression under the variables' defaults.

    Handles what this configuration uses: literals, lists, ``var.x``, ``local.x``, a resource's ``name`` or
    ``fully_qualified_name``, and strings built from them ("${a}.${b}"). Anything else fails the test, naming it.
    """
    if isinstance(value, list):
        return [resolve(tf, item) for item in value]
    if not isinstance(value, str):
        return value
    whole = INTERPOLATION.fullmatch(value)
    if whole:
        return resolve_reference(tf, whole.group(1).strip())
    return INTERPOLATION.sub(lambda match: str(resolve_reference(tf, match.group(1).strip())), value)


def resolve_reference(tf: Terraform, reference: str) -> Any:
    parts = reference.split(".")
    if parts[0] == "var" and len(parts) == 2:
        assert "default" in tf.variables[parts[1]], f"var.{parts[1]} has no default to resolve"
        return resolve(tf, tf.variables[parts[1]]["default"])
    if parts[0] == "local" and len(parts) == 2:
        return resolve(tf, tf.locals[parts[1]])
    if len(parts) == 3 and (parts[0], parts[1]) in tf.resources:
        body = tf.resources[(parts[0], parts[1])]
        if parts[2] == "name":
            return resolve(tf, body["name"])
        if parts[2] == "fully_qualified_name" and parts[0] == "snowflake_schema":
            return f"{resolve(tf, body['database'])}.{resolve(tf, body['name'])}"
        if parts[2] == "fully_qualified_name":
            return resolve(tf, body["name"])
    raise AssertionError(f"the test cannot resolve ${{{reference}}}; extend resolve_reference()")


def variable_of(expression: Any) -> str | None:
    """'x' when the expression is exactly var.x, else None."""
    match = re.fullmatch(r"\$\{var\.(\w+)\}", expression) if isinstance(expression, str) else None
    return match.group(1) if match else None


def only_block(body: dict, key: str) -> dict:
    blocks = body[key]
    assert isinstance(blocks, list) and len(blocks) == 1, f"expected one {key} block, found {blocks!r}"
    return blocks[0]


def all_keys(node: Any) -> set[str]:
    """Every attribute and block name anywhere in a parsed structure."""
    if isinstance(node, dict):
        return set(node) | {key for child in node.values() for key in all_keys(child)}
    if isinstance(node, list):
        return {key for child in node for key in all_keys(child)}
    return set()


# --- Grants as plain facts -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Grant:
    role: str
    privileges: frozenset[str]
    on: tuple[str, str]  # e.g. ("DATABASE", "CRM_TERRITORY"), ("FUTURE TABLES IN SCHEMA", "CRM_TERRITORY.RAW")


def grant_target(tf: Terraform, body: dict) -> tuple[str, str]:
    if body.get("on_account"):
        return ("ACCOUNT", "")
    if "on_account_object" in body:
        target = only_block(body, "on_account_object")
        return (resolve(tf, target["object_type"]), resolve(tf, target["object_name"]))
    if "on_schema" in body:
        target = only_block(body, "on_schema")
        if "schema_name" in target:
            return ("SCHEMA", resolve(tf, target["schema_name"]))
        (key, where), *_ = target.items()  # all_schemas_in_database / future_schemas_in_database
        return (key.upper().replace("_", " "), resolve(tf, where))
    target = only_block(body, "on_schema_object")
    for scope in ("all", "future"):
        if scope in target:
            inner = only_block(target, scope)
            container = "SCHEMA" if "in_schema" in inner else "DATABASE"
            where = inner.get("in_schema", inner.get("in_database"))
            return (f"{scope.upper()} {resolve(tf, inner['object_type_plural'])} IN {container}", resolve(tf, where))
    return (resolve(tf, target["object_type"]), resolve(tf, target["object_name"]))


def privilege_grants(tf: Terraform) -> list[Grant]:
    grants = []
    for body in tf.of_type(GRANT):
        privileges = set(resolve(tf, body.get("privileges", [])))
        if body.get("all_privileges") in (True, "true"):
            privileges.add("ALL")
        grants.append(Grant(resolve(tf, body["account_role_name"]), frozenset(privileges), grant_target(tf, body)))
    return grants


def privileges_of(tf: Terraform, role: str) -> dict[tuple[str, str], frozenset[str]]:
    """What a role holds directly, by object."""
    held: dict[tuple[str, str], frozenset[str]] = {}
    for grant in privilege_grants(tf):
        if grant.role == role:
            held[grant.on] = held.get(grant.on, frozenset()) | grant.privileges
    return held


def role_grants(tf: Terraform) -> set[tuple[str, str, str]]:
    """(role, 'ROLE' or 'USER', grantee) for every grant of an account role."""
    edges = set()
    for body in tf.of_type("snowflake_grant_account_role"):
        role = resolve(tf, body["role_name"])
        if "parent_role_name" in body:
            edges.add((role, "ROLE", resolve(tf, body["parent_role_name"])))
        if "user_name" in body:
            edges.add((role, "USER", resolve(tf, body["user_name"])))
    return edges


# --- Formatting ------------------------------------------------------------------------------------------------


def test_terraform_fmt_is_clean():
    terraform = shutil.which("terraform")
    if terraform is None:
        pytest.fail(
            "terraform is not on PATH: it is needed to check infra/ (`terraform fmt -check`). "
            "Install Terraform >= 1.5 on this machine."
        )
    result = subprocess.run(
        [terraform, "fmt", "-check", "-recursive", "infra/"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, (
        "terraform fmt -check -recursive infra/ failed; run `terraform fmt -recursive infra/terraform`.\n"
        f"files: {result.stdout.strip()}\n{result.stderr.strip()}"
    )


# --- Provider and credentials ----------------------------------------------------------------------------------


def test_provider_is_snowflakedb_snowflake_pinned(tf: Terraform):
    snowflake = tf.required_providers.get("snowflake")
    assert snowflake is not None, "required_providers has no snowflake entry"
    assert snowflake["source"] == "snowflakedb/snowflake"
    assert snowflake.get("version"), "pin the provider's major version"


def test_no_secret_in_provider_configuration(tf: Terraform):
    secrets = {"password", "private_key", "private_key_passphrase", "token", "passcode", "oauth_client_secret"}
    for name, body in tf.providers:
        assert name == "snowflake"
        found = secrets & set(body)
        assert not found, f"provider {name} sets {found}: credentials come from the environment"


def test_no_password_anywhere(tf: Terraform):
    """Key-pair login only: no password attribute (password, login_password...) in any block of any file."""
    assert not {key for key in all_keys(tf.files) if "password" in key.lower()}
    assert not any("password" in name.lower() for name in tf.variables)


def test_grants_roles_and_users_are_made_by_the_security_admin_role(tf: Terraform):
    """Future grants and grants on SYSADMIN's objects need MANAGE GRANTS: SYSADMIN alone cannot make them."""
    aliases = {body.get("alias"): body for _, body in tf.providers}
    assert resolve(tf, aliases["security_admin"]["role"]) == "SECURITYADMIN"
    assert resolve(tf, aliases[None]["role"]) == "SYSADMIN"
    security_types = {GRANT, "snowflake_grant_account_role", "snowflake_account_role", "snowflake_service_user"}
    for (kind, name), body in tf.resources.items():
        if kind in security_types:
            assert body.get("provider") == "${snowflake.security_admin}", f"{kind}.{name}: use snowflake.security_admin"


# --- Objects --------------------------------------------------------------------------------------------------


def test_database_and_both_schemas(tf: Terraform):
    assert [resolve(tf, body["name"]) for body in tf.of_type("snowflake_database")] == [DATABASE]
    schemas = {
        resolve_reference(tf, f"snowflake_schema.{name}.fully_qualified_name")
        for kind, name in tf.resources
        if kind == "snowflake_schema"
    }
    assert schemas == {RAW, CORE}


def test_tables_are_left_to_the_ddl_file(tf: Terraform):
    """infra/snowflake/tables.sql (`crm_territory.cli apply-ddl`) owns the tables; Terraform must not fight it."""
    table_types = {kind for kind, _ in tf.resources if "table" in kind and not kind.startswith("snowflake_grant")}
    assert not table_types


def test_warehouse_suspends_quickly_and_resumes_on_demand(tf: Terraform):
    (warehouse,) = tf.of_type("snowflake_warehouse")
    assert resolve(tf, warehouse["name"]) == WAREHOUSE
    assert resolve(tf, warehouse["warehouse_size"]) == "XSMALL"
    suspend_variable = variable_of(warehouse["auto_suspend"])
    assert suspend_variable, "auto_suspend must come from a variable"
    assert 60 <= tf.variables[suspend_variable]["default"] <= 300
    assert tf.variables[suspend_variable].get("validation"), "auto_suspend needs a validation (0 = never suspend)"
    assert warehouse["auto_resume"] in (True, "true")
    assert warehouse["initially_suspended"] in (True, "true")


# --- Roles and privileges -------------------------------------------------------------------------------------


def test_both_roles_exist(tf: Terraform):
    roles = {resolve(tf, body["name"]) for body in tf.of_type("snowflake_account_role")}
    assert {LOADER, ANALYST} <= roles


def test_role_hierarchy_analyst_to_loader_to_parent(tf: Terraform):
    edges = role_grants(tf)
    assert (ANALYST, "ROLE", LOADER) in edges
    assert (LOADER, "ROLE", "SYSADMIN") in edges
    assert tf.variables["parent_role"]["default"] == "SYSADMIN"


def test_loader_reads_and_writes_raw_and_core_including_future_tables(tf: Terraform):
    held = privileges_of(tf, LOADER)
    nothing: frozenset[str] = frozenset()
    assert "USAGE" in held.get(("DATABASE", DATABASE), nothing)
    assert "USAGE" in held.get(("WAREHOUSE", WAREHOUSE), nothing)
    for schema in (RAW, CORE):
        # CREATE STAGE / FILE FORMAT: write_pandas (Dagster's I/O manager) uploads through temporary ones.
        schema_privileges = held.get(("SCHEMA", schema), nothing)
        assert {"USAGE", "CREATE TABLE", "CREATE STAGE", "CREATE FILE FORMAT"} <= schema_privileges, schema
        for tables in ("ALL TABLES IN SCHEMA", "FUTURE TABLES IN SCHEMA"):
            assert {"SELECT"} | TABLE_WRITES <= held.get((tables, schema), nothing), (tables, schema)


def test_loader_holds_nothing_outside_its_database_and_warehouse(tf: Terraform):
    for on in privileges_of(tf, LOADER):
        assert on in {("DATABASE", DATABASE), ("WAREHOUSE", WAREHOUSE)} or on[1] in {RAW, CORE}, on


def test_analyst_only_reads_core(tf: Terraform):
    expected = {
        ("DATABASE", DATABASE): {"USAGE"},
        ("WAREHOUSE", WAREHOUSE): {"USAGE"},
        ("SCHEMA", CORE): {"USAGE"},
        ("ALL TABLES IN SCHEMA", CORE): {"SELECT"},
        ("FUTURE TABLES IN SCHEMA", CORE): {"SELECT"},
    }
    assert privileges_of(tf, ANALYST) == expected


def test_analyst_gets_no_write_ownership_or_raw_access_by_any_route(tf: Terraform):
    for grant in privilege_grants(tf):
        if grant.role == ANALYST:
            assert not grant.privileges & FORBIDDEN_FOR_ANALYST, grant
            assert grant.on[1] != RAW, grant
            assert not grant.on[0].endswith(" IN DATABASE"), f"{grant}: a database-wide grant would reach RAW"
    for body in tf.of_type("snowflake_grant_ownership"):
        assert resolve(tf, body.get("account_role_name")) != ANALYST, "the analyst must own nothing"
    # No role is granted to the analyst, so it cannot inherit anyone's write privileges.
    assert not {edge for edge in role_grants(tf) if edge[1:] == ("ROLE", ANALYST)}


# --- Dagster's service user ----------------------------------------------------------------------------------


def service_users(tf: Terraform) -> list[dict]:
    users = tf.of_type("snowflake_service_user")
    for body in tf.of_type("snowflake_user"):  # the older way: a user of TYPE = SERVICE
        if str(resolve(tf, body.get("type", ""))).upper() == "SERVICE":
            users.append(body)
    return users


def test_dagster_service_user_logs_in_with_a_key_pair_as_the_loader(tf: Terraform):
    (user,) = service_users(tf)
    assert resolve(tf, user["name"]) == DAGSTER_USER
    key_variable = variable_of(user.get("rsa_public_key"))
    assert key_variable, "rsa_public_key must come from a variable"
    assert "default" not in tf.variables[key_variable], "the public key must be supplied, not defaulted"
    assert resolve(tf, user["default_role"]) == LOADER
    assert resolve(tf, user["default_warehouse"]) == WAREHOUSE
    assert resolve(tf, user["default_namespace"]) == CORE
    assert (LOADER, "USER", DAGSTER_USER) in role_grants(tf), "a default role is not a grant"


# --- Variables, outputs, example -------------------------------------------------------------------------------


def test_every_variable_has_a_description(tf: Terraform):
    undescribed = [name for name, body in tf.variables.items() if not str(body.get("description", "")).strip()]
    assert not undescribed


def test_outputs_carry_the_names_dagster_needs(tf: Terraform):
    expected = {
        "database_name": DATABASE,
        "raw_schema_name": "RAW",
        "core_schema_name": "CORE",
        "warehouse_name": WAREHOUSE,
        "loader_role_name": LOADER,
        "analyst_role_name": ANALYST,
        "dagster_user_name": DAGSTER_USER,
    }
    assert {name: resolve(tf, tf.outputs[name]["value"]) for name in expected if name in tf.outputs} == expected
    env = {key: resolve(tf, value) for key, value in tf.outputs["dagster_env"]["value"].items()}
    assert env == {
        "CRM_STORAGE": "snowflake",
        "SNOWFLAKE_USER": DAGSTER_USER,
        "SNOWFLAKE_ROLE": LOADER,
        "SNOWFLAKE_WAREHOUSE": WAREHOUSE,
        "SNOWFLAKE_DATABASE": DATABASE,
    }


def test_tfvars_example_sets_only_declared_variables_and_every_required_one(tf: Terraform):
    with (TF_DIR / "terraform.tfvars.example").open() as handle:
        example = hcl2.load(handle, serialization_options=HCL_OPTIONS)
    assert set(example) <= set(tf.variables), set(example) - set(tf.variables)
    required = {name for name, body in tf.variables.items() if "default" not in body}
    assert required <= set(example), required - set(example)
