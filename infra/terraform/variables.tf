# Names default to what the Python side and infra/snowflake/tables.sql expect. Every name must be an unquoted
# Snowflake identifier in upper case: the provider quotes identifiers, so a lower-case name would create a
# case-sensitive object that Dagster's unquoted SQL could not find.

# --- Roles Terraform runs as -------------------------------------------------------------------------------

variable "object_admin_role" {
  description = "Role the default provider runs as: it creates and owns the database, the schemas and the warehouse."
  type        = string
  default     = "SYSADMIN"
}

variable "security_admin_role" {
  description = "Role the security_admin provider runs as: it creates the roles and the service user and makes the grants (needs CREATE ROLE, CREATE USER and MANAGE GRANTS)."
  type        = string
  default     = "SECURITYADMIN"
}

# --- Database and schemas ----------------------------------------------------------------------------------

variable "database_name" {
  description = "Database holding the crm-territory tables (Dagster's SNOWFLAKE_DATABASE)."
  type        = string
  default     = "CRM_TERRITORY"

  validation {
    condition     = can(regex("^[A-Z_][A-Z0-9_$]*$", var.database_name))
    error_message = "database_name must be an upper-case unquoted identifier (A-Z, 0-9, _ and $, not starting with a digit)."
  }
}

variable "raw_schema_name" {
  description = "Schema for the raw layer (crm_api_clients, raw_clients, ingest_manifest, quarantined_clients)."
  type        = string
  default     = "RAW"

  validation {
    condition     = can(regex("^[A-Z_][A-Z0-9_$]*$", var.raw_schema_name))
    error_message = "raw_schema_name must be an upper-case unquoted identifier (A-Z, 0-9, _ and $, not starting with a digit)."
  }
}

variable "core_schema_name" {
  description = "Schema for the star schema (client_dim, territory_dim, assignments_fact): what analysts read."
  type        = string
  default     = "CORE"

  validation {
    condition     = can(regex("^[A-Z_][A-Z0-9_$]*$", var.core_schema_name))
    error_message = "core_schema_name must be an upper-case unquoted identifier (A-Z, 0-9, _ and $, not starting with a digit)."
  }
}

# --- Warehouse ---------------------------------------------------------------------------------------------

variable "warehouse_name" {
  description = "Warehouse Dagster and analysts run their queries on (Dagster's SNOWFLAKE_WAREHOUSE)."
  type        = string
  default     = "CRM_TERRITORY_WH"

  validation {
    condition     = can(regex("^[A-Z_][A-Z0-9_$]*$", var.warehouse_name))
    error_message = "warehouse_name must be an upper-case unquoted identifier (A-Z, 0-9, _ and $, not starting with a digit)."
  }
}

variable "warehouse_size" {
  description = "Warehouse size. XSMALL is plenty for a million clients; each step up doubles the credits per hour."
  type        = string
  default     = "XSMALL"

  validation {
    condition     = contains(["XSMALL", "SMALL", "MEDIUM", "LARGE", "XLARGE", "XXLARGE", "XXXLARGE", "X4LARGE", "X5LARGE", "X6LARGE"], var.warehouse_size)
    error_message = "warehouse_size must be one of XSMALL, SMALL, MEDIUM, LARGE, XLARGE, XXLARGE, XXXLARGE, X4LARGE, X5LARGE, X6LARGE."
  }
}

variable "auto_suspend_seconds" {
  description = "Seconds of inactivity after which the warehouse suspends (and stops costing credits). Between 60 and 3600: 0 would mean never suspend."
  type        = number
  default     = 60

  validation {
    condition     = var.auto_suspend_seconds >= 60 && var.auto_suspend_seconds <= 3600 && floor(var.auto_suspend_seconds) == var.auto_suspend_seconds
    error_message = "auto_suspend_seconds must be a whole number of seconds between 60 and 3600."
  }
}

# --- Roles -------------------------------------------------------------------------------------------------

variable "loader_role_name" {
  description = "Role Dagster runs as (Dagster's SNOWFLAKE_ROLE): reads and writes every table in RAW and CORE, and applies the DDL."
  type        = string
  default     = "CRM_TERRITORY_LOADER"

  validation {
    condition     = can(regex("^[A-Z_][A-Z0-9_$]*$", var.loader_role_name))
    error_message = "loader_role_name must be an upper-case unquoted identifier (A-Z, 0-9, _ and $, not starting with a digit)."
  }
}

variable "analyst_role_name" {
  description = "Read-only role for analysts: SELECT on the tables in CORE, nothing in RAW."
  type        = string
  default     = "CRM_TERRITORY_ANALYST"

  validation {
    condition     = can(regex("^[A-Z_][A-Z0-9_$]*$", var.analyst_role_name))
    error_message = "analyst_role_name must be an upper-case unquoted identifier (A-Z, 0-9, _ and $, not starting with a digit)."
  }
}

variable "parent_role" {
  description = "Existing role the loader role is granted to, so that its members keep control of everything crm-territory creates."
  type        = string
  default     = "SYSADMIN"
}

# --- Service user ------------------------------------------------------------------------------------------

variable "dagster_user_name" {
  description = "Service user Dagster logs in as (Dagster's SNOWFLAKE_USER), with key-pair authentication only."
  type        = string
  default     = "CRM_TERRITORY_DAGSTER"

  validation {
    condition     = can(regex("^[A-Z_][A-Z0-9_$]*$", var.dagster_user_name))
    error_message = "dagster_user_name must be an upper-case unquoted identifier (A-Z, 0-9, _ and $, not starting with a digit)."
  }
}

variable "dagster_rsa_public_key" {
  description = "Public half of the Dagster user's RSA key pair: the base64 body of the PEM on one line, without the BEGIN/END lines (see README.md). The private key never reaches Terraform."
  type        = string
  # A public key is not a secret; no default, so it must be supplied.
  sensitive = false

  validation {
    condition     = length(trimspace(var.dagster_rsa_public_key)) > 0 && !strcontains(var.dagster_rsa_public_key, "-----") && !strcontains(var.dagster_rsa_public_key, "\n")
    error_message = "dagster_rsa_public_key must be the key body on one line, without the -----BEGIN/END PUBLIC KEY----- lines."
  }
}
