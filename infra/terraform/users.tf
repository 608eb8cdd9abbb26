# The service user Dagster logs in as. TYPE = SERVICE: no password and no interactive login, key-pair
# authentication only. Terraform holds only the public key; the private key stays with the deployment
# (Dagster reads it from SNOWFLAKE_PRIVATE_KEY_PATH).

resource "snowflake_service_user" "dagster" {
  provider = snowflake.security_admin
  name     = var.dagster_user_name
  comment  = "crm-territory Dagster code location (managed by Terraform in infra/terraform)."

  rsa_public_key = var.dagster_rsa_public_key

  default_role      = snowflake_account_role.loader.name
  default_warehouse = snowflake_warehouse.crm.name
  default_namespace = "${snowflake_database.crm.name}.${snowflake_schema.core.name}"
  # Sessions run with the loader role alone, never with whatever else might be granted to the user later.
  default_secondary_roles_option = "NONE"
}

# A default role is only a default: the role must also be granted to the user.
resource "snowflake_grant_account_role" "loader_to_dagster" {
  provider  = snowflake.security_admin
  role_name = snowflake_account_role.loader.name
  user_name = snowflake_service_user.dagster.name
}
