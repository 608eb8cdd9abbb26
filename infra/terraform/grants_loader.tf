# What CRM_TERRITORY_LOADER (Dagster) may do: use the database and the warehouse, create tables in RAW and
# CORE (for `apply-ddl`), and read and rewrite every table there, those that exist and those created later.
#
# CREATE STAGE and CREATE FILE FORMAT are there because Dagster's Snowflake I/O manager writes a DataFrame with
# the connector's write_pandas, which uploads through a temporary stage and a temporary file format created in
# the target schema. The loader gets no CREATE SCHEMA: the schemas are Terraform's.

locals {
  loader_schema_privileges = ["USAGE", "CREATE TABLE", "CREATE STAGE", "CREATE FILE FORMAT"]
  loader_table_privileges  = ["SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE"]
}

resource "snowflake_grant_privileges_to_account_role" "loader_database" {
  provider          = snowflake.security_admin
  account_role_name = snowflake_account_role.loader.name
  privileges        = ["USAGE"]
  on_account_object {
    object_type = "DATABASE"
    object_name = snowflake_database.crm.name
  }
}

resource "snowflake_grant_privileges_to_account_role" "loader_warehouse" {
  provider          = snowflake.security_admin
  account_role_name = snowflake_account_role.loader.name
  privileges        = ["USAGE"]
  on_account_object {
    object_type = "WAREHOUSE"
    object_name = snowflake_warehouse.crm.name
  }
}

# --- RAW ---------------------------------------------------------------------------------------------------

resource "snowflake_grant_privileges_to_account_role" "loader_raw_schema" {
  provider          = snowflake.security_admin
  account_role_name = snowflake_account_role.loader.name
  privileges        = local.loader_schema_privileges
  on_schema {
    schema_name = snowflake_schema.raw.fully_qualified_name
  }
}

resource "snowflake_grant_privileges_to_account_role" "loader_raw_all_tables" {
  provider          = snowflake.security_admin
  account_role_name = snowflake_account_role.loader.name
  privileges        = local.loader_table_privileges
  on_schema_object {
    all {
      object_type_plural = "TABLES"
      in_schema          = snowflake_schema.raw.fully_qualified_name
    }
  }
}

resource "snowflake_grant_privileges_to_account_role" "loader_raw_future_tables" {
  provider          = snowflake.security_admin
  account_role_name = snowflake_account_role.loader.name
  privileges        = local.loader_table_privileges
  on_schema_object {
    future {
      object_type_plural = "TABLES"
      in_schema          = snowflake_schema.raw.fully_qualified_name
    }
  }
}

# --- CORE --------------------------------------------------------------------------------------------------

resource "snowflake_grant_privileges_to_account_role" "loader_core_schema" {
  provider          = snowflake.security_admin
  account_role_name = snowflake_account_role.loader.name
  privileges        = local.loader_schema_privileges
  on_schema {
    schema_name = snowflake_schema.core.fully_qualified_name
  }
}

resource "snowflake_grant_privileges_to_account_role" "loader_core_all_tables" {
  provider          = snowflake.security_admin
  account_role_name = snowflake_account_role.loader.name
  privileges        = local.loader_table_privileges
  on_schema_object {
    all {
      object_type_plural = "TABLES"
      in_schema          = snowflake_schema.core.fully_qualified_name
    }
  }
}

resource "snowflake_grant_privileges_to_account_role" "loader_core_future_tables" {
  provider          = snowflake.security_admin
  account_role_name = snowflake_account_role.loader.name
  privileges        = local.loader_table_privileges
  on_schema_object {
    future {
      object_type_plural = "TABLES"
      in_schema          = snowflake_schema.core.fully_qualified_name
    }
  }
}
