# The database and its two schemas, owned by var.object_admin_role (SYSADMIN).
#
# The tables are NOT managed by Terraform. After `terraform apply`, the deployment creates them from
# infra/snowflake/tables.sql by running `python -m crm_territory.cli apply-ddl` as the loader role:
# RAW.CRM_API_CLIENTS, RAW.CLIENTS, RAW.INGEST_MANIFEST, RAW.QUARANTINED_CLIENTS,
# CORE.CLIENT_DIM, CORE.TERRITORY_DIM, CORE.ASSIGNMENTS_FACT.
# The loader therefore owns the tables, and the future-table grants in grants_*.tf give each role its access
# to them as they are created.

resource "snowflake_database" "crm" {
  name    = var.database_name
  comment = "crm-territory: CRM clients, territories and assignments (managed by Terraform in infra/terraform)."

  # Dropping the database drops every table in it: refuse to plan that. Remove this line to tear down on purpose.
  lifecycle {
    prevent_destroy = true
  }
}

resource "snowflake_schema" "raw" {
  database = snowflake_database.crm.name
  name     = var.raw_schema_name
  comment  = "Raw layer: the CRM API snapshot, every usable source row, the ingest manifest, quarantined rows."

  lifecycle {
    prevent_destroy = true
  }
}

resource "snowflake_schema" "core" {
  database = snowflake_database.crm.name
  name     = var.core_schema_name
  comment  = "Star schema: client_dim, territory_dim, assignments_fact. What analysts read."

  lifecycle {
    prevent_destroy = true
  }
}
