-- crm-territory tables in Snowflake: the seed's layers, RAW and CORE.
--
-- Applied by the deployment, as the loader role, with `python -m crm_territory.cli apply-ddl`
-- (idempotent: CREATE ... IF NOT EXISTS), after Terraform (infra/terraform) created the database and
-- the RAW and CORE schemas: the loader may create tables in them, not schemas. The Pandera models in crm_territory/schemas.py are the
-- source of truth; crm_territory_tests/test_warehouse_ddl.py fails if a column, type or
-- nullability here drifts from them. Keys are documented, not declared: Snowflake does not enforce
-- them, the blocking asset checks do.
-- Types: text VARCHAR, integers NUMBER(38,0), flags BOOLEAN, instants TIMESTAMP_TZ (UTC).

-- The CRM API's client book as last pulled. Grain: one row per CRM client_id.
CREATE TABLE IF NOT EXISTS RAW.CRM_API_CLIENTS (
    CLIENT_ID VARCHAR,
    CLIENT_NAME VARCHAR,
    REGION VARCHAR,
    SEGMENT VARCHAR,
    PARENT_ORG VARCHAR,
    ADVISOR_EMAIL VARCHAR,
    STATUS VARCHAR,
    UPDATED_AT VARCHAR,
    SOURCE_PAGE NUMBER(38, 0) NOT NULL,
    PULLED_AT TIMESTAMP_TZ NOT NULL
);

-- Every usable source row, with provenance. Grain: one row per source row.
CREATE TABLE IF NOT EXISTS RAW.CLIENTS (
    CLIENT_ID VARCHAR NOT NULL,
    CLIENT_NAME VARCHAR NOT NULL,
    REGION VARCHAR,
    SEGMENT VARCHAR,
    PARENT_ORG VARCHAR,
    ADVISOR_EMAIL VARCHAR,
    STATUS VARCHAR,
    SOURCE_SYSTEM VARCHAR NOT NULL,
    SOURCE_RECORD_ID VARCHAR NOT NULL,
    SOURCE_FILE VARCHAR,
    SOURCE_ROW NUMBER(38, 0),
    SOURCE_PAGE NUMBER(38, 0),
    SOURCE_MODIFIED_AT TIMESTAMP_TZ NOT NULL,
    INGESTED_AT TIMESTAMP_TZ NOT NULL
);

-- What was ingested. Grain: one row per source batch (landing file, API snapshot).
CREATE TABLE IF NOT EXISTS RAW.INGEST_MANIFEST (
    SOURCE_SYSTEM VARCHAR NOT NULL,
    BATCH VARCHAR NOT NULL,
    SIZE_BYTES NUMBER(38, 0),
    MODIFIED_AT TIMESTAMP_TZ,
    STATUS VARCHAR NOT NULL,
    ROWS_READ NUMBER(38, 0) NOT NULL,
    ROWS_LOADED NUMBER(38, 0) NOT NULL,
    ROWS_QUARANTINED NUMBER(38, 0) NOT NULL,
    MESSAGE VARCHAR,
    INGESTED_AT TIMESTAMP_TZ NOT NULL
);

-- Source rows that could not be used. Grain: one row per quarantined source row.
CREATE TABLE IF NOT EXISTS RAW.QUARANTINED_CLIENTS (
    SOURCE_SYSTEM VARCHAR NOT NULL,
    SOURCE_FILE VARCHAR,
    SOURCE_ROW NUMBER(38, 0),
    SOURCE_PAGE NUMBER(38, 0),
    SOURCE_RECORD_ID VARCHAR,
    REASON VARCHAR NOT NULL,
    ORIGINAL_VALUES VARCHAR NOT NULL,
    INGESTED_AT TIMESTAMP_TZ NOT NULL
);

-- Client dimension. Grain: one row per client. Key: CLIENT_KEY.
CREATE TABLE IF NOT EXISTS CORE.CLIENT_DIM (
    CLIENT_KEY VARCHAR NOT NULL,
    CLIENT_NAME VARCHAR NOT NULL,
    REGION VARCHAR,
    SEGMENT VARCHAR,
    PARENT_ORG VARCHAR,
    PRIMARY_ADVISOR_EMAIL VARCHAR,
    IS_ACTIVE BOOLEAN NOT NULL,
    SOURCE_SYSTEM VARCHAR NOT NULL,
    SOURCE_RECORD_ID VARCHAR NOT NULL,
    SOURCE_MODIFIED_AT TIMESTAMP_TZ NOT NULL,
    DATA_ISSUES VARCHAR
);

-- Territory dimension. Grain: one row per territory ever issued. Key: TERRITORY_ID.
CREATE TABLE IF NOT EXISTS CORE.TERRITORY_DIM (
    TERRITORY_ID VARCHAR NOT NULL,
    REGION VARCHAR,
    SEGMENT VARCHAR,
    OWNER_ROLE VARCHAR NOT NULL,
    ISSUED_AT TIMESTAMP_TZ NOT NULL
);

-- Assignments fact. Grain: one row per (CLIENT_KEY, TERRITORY_ID, ASSIGNMENT_TYPE).
-- CLIENT_KEY -> CORE.CLIENT_DIM, TERRITORY_ID -> CORE.TERRITORY_DIM.
CREATE TABLE IF NOT EXISTS CORE.ASSIGNMENTS_FACT (
    CLIENT_KEY VARCHAR NOT NULL,
    TERRITORY_ID VARCHAR NOT NULL,
    PRIMARY_ADVISOR_EMAIL VARCHAR,
    ASSIGNMENT_TYPE VARCHAR NOT NULL,
    IS_CURRENT BOOLEAN NOT NULL
);
