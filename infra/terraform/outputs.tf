# The names the deployment needs: Dagster's environment (see README.md) and `apply-ddl`.

output "database_name" {
  description = "SNOWFLAKE_DATABASE for Dagster."
  value       = snowflake_database.crm.name
}

output "raw_schema_name" {
  description = "Schema of the raw layer."
  value       = snowflake_schema.raw.name
}

output "core_schema_name" {
  description = "Schema of the star schema (what analysts read)."
  value       = snowflake_schema.core.name
}

output "warehouse_name" {
  description = "SNOWFLAKE_WAREHOUSE for Dagster."
  value       = snowflake_warehouse.crm.name
}

output "loader_role_name" {
  description = "SNOWFLAKE_ROLE for Dagster and for `python -m crm_territory.cli apply-ddl`."
  value       = snowflake_account_role.loader.name
}

output "analyst_role_name" {
  description = "Read-only role to grant to analysts."
  value       = snowflake_account_role.analyst.name
}

output "dagster_user_name" {
  description = "SNOWFLAKE_USER for Dagster (key-pair authentication)."
  value       = snowflake_service_user.dagster.name
}

output "dagster_env" {
  description = "Dagster's environment, less SNOWFLAKE_ACCOUNT (<org>-<account>) and SNOWFLAKE_PRIVATE_KEY_PATH, which Terraform does not know."
  value = {
    CRM_STORAGE         = "snowflake"
    SNOWFLAKE_USER      = snowflake_service_user.dagster.name
    SNOWFLAKE_ROLE      = snowflake_account_role.loader.name
    SNOWFLAKE_WAREHOUSE = snowflake_warehouse.crm.name
    SNOWFLAKE_DATABASE  = snowflake_database.crm.name
  }
}
