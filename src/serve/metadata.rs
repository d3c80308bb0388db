//! What Flight SQL clients ask about the server and the lake: SqlInfo, XDBC type info, catalogs,
//! schemas, tables (with their Arrow schemas) and table types, answered from the lake folders,
//! not by running SQL. Keys (primary, foreign) do not exist in the lake: those answers are
//! empty, with the schemas the Flight SQL spec gives.

use std::sync::{Arc, LazyLock};

use arrow_flight::sql::metadata::{
    SqlInfoData, SqlInfoDataBuilder, XdbcTypeInfo, XdbcTypeInfoData, XdbcTypeInfoDataBuilder,
};
use arrow_flight::sql::{
    CommandGetDbSchemas, CommandGetTables, Nullable, Searchable, SqlInfo, XdbcDataType,
};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use tonic::Status;

use crate::lake::catalog::CATALOG;
use crate::lake::Lake;

/// The only table type: every lake table is a Delta table.
pub(crate) const TABLE_TYPE: &str = "TABLE";

pub(crate) static SQL_INFO: LazyLock<Option<SqlInfoData>> = LazyLock::new(|| {
    let mut b = SqlInfoDataBuilder::new();
    b.append(SqlInfo::FlightSqlServerName, "lake");
    b.append(SqlInfo::FlightSqlServerVersion, env!("CARGO_PKG_VERSION"));
    b.append(SqlInfo::FlightSqlServerArrowVersion, "1.3");
    b.append(SqlInfo::FlightSqlServerReadOnly, true);
    b.append(SqlInfo::FlightSqlServerSql, true);
    b.append(SqlInfo::FlightSqlServerSubstrait, false);
    b.append(SqlInfo::FlightSqlServerTransaction, 0i32);
    b.append(SqlInfo::FlightSqlServerCancel, false);
    b.append(SqlInfo::FlightSqlServerStatementTimeout, 0i32);
    b.append(SqlInfo::SqlDdlCatalog, false);
    b.append(SqlInfo::SqlDdlSchema, false);
    b.append(SqlInfo::SqlDdlTable, false);
    b.append(SqlInfo::SqlIdentifierCase, 3i32); // case-insensitive: folded unless quoted
    b.append(SqlInfo::SqlIdentifierQuoteChar, "\"");
    b.append(SqlInfo::SqlQuotedIdentifierCase, 1i32); // case-sensitive
    b.append(SqlInfo::SqlAllTablesAreSelectable, true);
    b.append(SqlInfo::SqlNullOrdering, 2i32); // NULLs last by default
    b.append(SqlInfo::SqlSearchStringEscape, "\\");
    b.append(SqlInfo::SqlSchemaTerm, "schema");
    b.append(SqlInfo::SqlCatalogTerm, "catalog");
    b.append(SqlInfo::SqlCatalogAtStart, true);
    b.append(SqlInfo::SqlTransactionsSupported, false);
    b.build().ok()
});

fn xdbc(name: &str, t: XdbcDataType, size: Option<i32>, quote: Option<&str>) -> XdbcTypeInfo {
    XdbcTypeInfo {
        type_name: name.into(),
        data_type: t,
        column_size: size,
        literal_prefix: quote.map(String::from),
        literal_suffix: quote.map(String::from),
        create_params: None,
        nullable: Nullable::NullabilityNullable,
        case_sensitive: quote.is_some(),
        searchable: Searchable::Full,
        unsigned_attribute: size.map(|_| false),
        fixed_prec_scale: false,
        auto_increment: Some(false),
        local_type_name: Some(name.into()),
        minimum_scale: None,
        maximum_scale: None,
        sql_data_type: t,
        datetime_subcode: None,
        num_prec_radix: size.map(|_| 10),
        interval_precision: None,
    }
}

pub(crate) static XDBC_TYPES: LazyLock<Option<XdbcTypeInfoData>> = LazyLock::new(|| {
    let mut b = XdbcTypeInfoDataBuilder::new();
    b.append(xdbc("BOOLEAN", XdbcDataType::XdbcBit, None, None));
    b.append(xdbc("INTEGER", XdbcDataType::XdbcInteger, Some(10), None));
    b.append(xdbc("BIGINT", XdbcDataType::XdbcBigint, Some(19), None));
    b.append(xdbc("DOUBLE", XdbcDataType::XdbcDouble, Some(15), None));
    b.append(xdbc("VARCHAR", XdbcDataType::XdbcVarchar, None, Some("'")));
    b.append(xdbc("DATE", XdbcDataType::XdbcDate, None, Some("'")));
    b.append(xdbc(
        "TIMESTAMP",
        XdbcDataType::XdbcTimestamp,
        None,
        Some("'"),
    ));
    b.build().ok()
});

/// Every table of the lake as (schema, table), sorted.
async fn tables(lake: &Lake) -> Result<Vec<(String, String)>, Status> {
    let names = lake
        .tables()
        .await
        .map_err(|e| Status::internal(e.to_string()))?;
    Ok(names
        .into_iter()
        .filter_map(|t| {
            t.split_once('.')
                .map(|(s, n)| (s.to_string(), n.to_string()))
        })
        .collect())
}

/// The answer to GetDbSchemas: the lake's folders (the builder applies the client's filters).
pub(crate) async fn db_schemas(
    lake: &Lake,
    query: CommandGetDbSchemas,
) -> Result<RecordBatch, Status> {
    let mut builder = query.into_builder();
    let mut schemas: Vec<String> = tables(lake).await?.into_iter().map(|(s, _)| s).collect();
    schemas.dedup();
    for s in schemas {
        builder.append(CATALOG, s);
    }
    builder.build().map_err(|e| Status::internal(e.to_string()))
}

/// The answer to GetTables, with each table's Arrow schema when asked for.
pub(crate) async fn tables_batch(
    lake: &Lake,
    query: CommandGetTables,
) -> Result<RecordBatch, Status> {
    let include_schema = query.include_schema;
    let mut builder = query.into_builder();
    for (schema, name) in tables(lake).await? {
        let arrow_schema = if include_schema {
            table_schema(lake, &schema, &name).await?
        } else {
            Schema::empty()
        };
        builder
            .append(CATALOG, &schema, &name, TABLE_TYPE, &arrow_schema)
            .map_err(|e| Status::internal(e.to_string()))?;
    }
    builder.build().map_err(|e| Status::internal(e.to_string()))
}

async fn table_schema(lake: &Lake, schema: &str, name: &str) -> Result<Schema, Status> {
    let table = lake
        .open_named(schema, name)
        .await
        .map_err(|e| Status::internal(format!("{schema}.{name}: {e}")))?;
    let provider = table
        .table_provider()
        .await
        .map_err(|e| Status::internal(format!("{schema}.{name}: {e}")))?;
    // As queries return it (view types cast to plain ones).
    Ok(super::statement::plain_schema(provider.schema().as_ref()))
}

/// Schema of GetPrimaryKeys answers.
pub(crate) fn primary_keys_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("catalog_name", DataType::Utf8, true),
        Field::new("db_schema_name", DataType::Utf8, true),
        Field::new("table_name", DataType::Utf8, false),
        Field::new("column_name", DataType::Utf8, false),
        Field::new("key_name", DataType::Utf8, true),
        Field::new("key_sequence", DataType::Int32, false),
    ]))
}

/// Schema of GetExportedKeys, GetImportedKeys and GetCrossReference answers.
pub(crate) fn foreign_keys_schema() -> SchemaRef {
    let s = |n: &str, null: bool| Field::new(n, DataType::Utf8, null);
    Arc::new(Schema::new(vec![
        s("pk_catalog_name", true),
        s("pk_db_schema_name", true),
        s("pk_table_name", false),
        s("pk_column_name", false),
        s("fk_catalog_name", true),
        s("fk_db_schema_name", true),
        s("fk_table_name", false),
        s("fk_column_name", false),
        Field::new("key_sequence", DataType::Int32, false),
        s("fk_key_name", true),
        s("pk_key_name", true),
        Field::new("update_rule", DataType::UInt8, false),
        Field::new("delete_rule", DataType::UInt8, false),
    ]))
}
