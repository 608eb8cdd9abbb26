# One small warehouse for the pipeline and the analysts. It costs credits only while it runs: it starts
# suspended, resumes on the first query and suspends again after var.auto_suspend_seconds of inactivity.
resource "snowflake_warehouse" "crm" {
  name                = var.warehouse_name
  warehouse_size      = var.warehouse_size
  auto_suspend        = var.auto_suspend_seconds
  auto_resume         = true
  initially_suspended = true
  comment             = "crm-territory: Dagster runs and analyst queries (managed by Terraform in infra/terraform)."
}
