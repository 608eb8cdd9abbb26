# Two account roles and their hierarchy:
#
#   var.parent_role (SYSADMIN)
#     └── CRM_TERRITORY_LOADER     what Dagster runs as: reads and writes RAW and CORE
#           └── CRM_TERRITORY_ANALYST   reads CORE only
#
# The loader inherits everything the analyst can do; SYSADMIN inherits both, so admins keep control of the
# tables the loader owns. Nothing is granted to the analyst role, so it cannot inherit any write privilege.

resource "snowflake_account_role" "loader" {
  provider = snowflake.security_admin
  name     = var.loader_role_name
  comment  = "crm-territory pipeline (Dagster): read/write on ${var.database_name}.${var.raw_schema_name} and ${var.database_name}.${var.core_schema_name}."
}

resource "snowflake_account_role" "analyst" {
  provider = snowflake.security_admin
  name     = var.analyst_role_name
  comment  = "crm-territory analysts: read-only on ${var.database_name}.${var.core_schema_name}."
}

resource "snowflake_grant_account_role" "analyst_to_loader" {
  provider         = snowflake.security_admin
  role_name        = snowflake_account_role.analyst.name
  parent_role_name = snowflake_account_role.loader.name
}

resource "snowflake_grant_account_role" "loader_to_parent" {
  provider         = snowflake.security_admin
  role_name        = snowflake_account_role.loader.name
  parent_role_name = var.parent_role
}
