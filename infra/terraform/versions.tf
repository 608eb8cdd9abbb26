terraform {
  # strcontains() in the variable validations needs Terraform 1.5.
  required_version = ">= 1.5"

  required_providers {
    snowflake = {
      source = "snowflakedb/snowflake"
      # 2.x is the first officially supported major version; every resource used here is stable in it.
      version = "~> 2.0"
    }
  }
}
