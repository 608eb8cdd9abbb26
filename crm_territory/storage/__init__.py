"""Table storage: CSV files under the data folder or Snowflake tables, behind the same two resource keys."""
