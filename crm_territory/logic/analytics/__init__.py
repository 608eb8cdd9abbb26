"""The territory analytics app's figures: plain functions over the published tables' DataFrames.

No Streamlit and no Dagster here: the pages (``crm_territory/app``) only draw what these return, the tests
check the figures on small frames, and the bench times them at 100,000 clients. The column names of what they
return are the ones a sales-operations manager reads on the page and in the CSV downloads.
"""
