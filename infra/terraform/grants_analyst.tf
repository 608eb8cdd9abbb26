# What CRM_TERRITORY_ANALYST may do: use the database and the warehouse, and SELECT the tables in CORE, those
# that exist and those created later. Nothing in RAW (raw rows and quarantined rows hold unvalidated client
# data), and no write privilege anywhere.

resource "snowflake_grant_privileges_to_account_role" "analyst_database" {
  provider          = snowflake.security_admin
  account_role_name = snowflake_account_role.analyst.name
  privileges        = ["USAGE"]
  on_account_object {
    object_type = "DATABASE"
    object_name = snowflake_database.crm.name
  }
}

resource "snowflake_grant_privileges_to_account_role" "analyst_warehouse" {
  provider          = snowflake.security_admin
  account_role_name = snowflake_account_role.analyst.name
  privileges        = ["USAGE"]
  on_account_object {
    object_type = "WAREHOUSE"
    object_name = snowflake_warehouse.crm.name
  }
}

resource "snowflake_grant_privileges_to_account_role" "analyst_core_schema" {
  provider          = snowflake.security_admin
  account_role_name = snowflake_account_role.analyst.name
  privileges        = ["USAGE"]
  on_schema {
    schema_name = snowflake_schema.core.fully_qualified_name
  }
}

resource "snowflake_grant_privileges_to_account_role" "analyst_core_all_tables" {
  provider          = snowflake.security_admin
  account_role_name = snowflake_account_role.analyst.name
  privileges        = ["SELECT"]
  on_schema_object {
    all {
      object_type_plural = "TABLES"
      in_schema          = snowflake_schema.core.fully_qualified_name
    }
  }
}

resource "snowflake_grant_privileges_to_account_role" "analyst_core_future_tables" {
  provider          = snowflake.security_admin
  account_role_name = snowflake_account_role.analyst.name
  privileges        = ["SELECT"]
  on_schema_object {
    future {
      object_type_plural = "TABLES"
      in_schema          = snowflake_schema.core.fully_qualified_name
    }
  }
}
