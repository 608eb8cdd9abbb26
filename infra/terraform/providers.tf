# Credentials come from the environment only, never from this code or from tfvars:
#   SNOWFLAKE_ORGANIZATION_NAME, SNOWFLAKE_ACCOUNT_NAME, SNOWFLAKE_USER, and either
#   SNOWFLAKE_AUTHENTICATOR=SNOWFLAKE_JWT + SNOWFLAKE_PRIVATE_KEY (+ SNOWFLAKE_PRIVATE_KEY_PASSPHRASE),
#   or SNOWFLAKE_AUTHENTICATOR=EXTERNALBROWSER for a person, or SNOWFLAKE_PROFILE (~/.snowflake/config).
# See README.md. Only the role each provider uses is set here: it is not a secret.

# Creates and owns the account objects: database, schemas, warehouse.
provider "snowflake" {
  role = var.object_admin_role
}

# Creates the roles and the service user and makes every grant. Future grants, and grants on objects that
# another role (SYSADMIN) owns, need the MANAGE GRANTS privilege, which SECURITYADMIN holds and SYSADMIN does not.
provider "snowflake" {
  alias = "security_admin"
  role  = var.security_admin_role
}
