//! The Flight SQL protocol on top of [`Engine`] and [`metadata`]: which command maps to what.
//! Queries are planned at GetFlightInfo (schema, errors) and executed at DoGet, streaming;
//! plans are kept between requests ([`super::planned`]), so a query is not planned each time.
//! Endpoints carry no location: clients reuse the connection they already have.
//! DoGet does not go through arrow-flight's trait: [`LakeFlightSql::answer`] maps its ticket
//! to batches here, and [`super::do_get`] sends them.

use std::pin::Pin;
use std::sync::Arc;

use arrow_flight::error::FlightError;
use arrow_flight::sql::server::{FlightSqlService, PeekableFlightDataStream};
use arrow_flight::sql::{
    ActionClosePreparedStatementRequest, ActionCreatePreparedStatementRequest,
    ActionCreatePreparedStatementResult, Any, Command, CommandGetCatalogs,
    CommandGetCrossReference, CommandGetDbSchemas, CommandGetExportedKeys, CommandGetImportedKeys,
    CommandGetPrimaryKeys, CommandGetSqlInfo, CommandGetTableTypes, CommandGetTables,
    CommandGetXdbcTypeInfo, CommandPreparedStatementQuery, CommandPreparedStatementUpdate,
    CommandStatementQuery, CommandStatementUpdate, DoPutPreparedStatementResult, ProstMessageExt,
    SqlInfo, TicketStatementQuery,
};
use arrow_flight::{
    Action, FlightDescriptor, FlightEndpoint, FlightInfo, HandshakeRequest, HandshakeResponse,
    IpcMessage, SchemaAsIpc, Ticket,
};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::arrow::ipc::writer::IpcWriteOptions;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt, TryStreamExt};
use prost::Message;
use tonic::{Request, Response, Status, Streaming};

use super::auth::Auth;
use super::metadata::{self, SQL_INFO, TABLE_TYPE, XDBC_TYPES};
use super::statement::{Engine, Handle};
use crate::lake::catalog::CATALOG;
use crate::metrics::metrics;

/// The Flight SQL service of `lake serve`.
pub(crate) struct LakeFlightSql {
    pub(crate) engine: Arc<Engine>,
    pub(crate) auth: Arc<Auth>,
}

/// A FlightInfo answering `command` with `schema`; the ticket is the command itself.
fn info(
    command: &impl ProstMessageExt,
    schema: &Schema,
    descriptor: FlightDescriptor,
) -> Result<Response<FlightInfo>, Status> {
    let ticket = Ticket::new(command.as_any().encode_to_vec());
    let endpoint = FlightEndpoint::new().with_ticket(ticket);
    let info = FlightInfo::new()
        .try_with_schema(schema)
        .map_err(|e| Status::internal(format!("encoding schema: {e}")))?
        .with_endpoint(endpoint)
        .with_descriptor(descriptor);
    Ok(Response::new(info))
}

/// What a DoGet streams back: the schema, then the batches.
pub(crate) struct Answer {
    pub(crate) schema: SchemaRef,
    pub(crate) batches: BoxStream<'static, Result<RecordBatch, Status>>,
}

impl Answer {
    fn new(
        schema: SchemaRef,
        batches: impl Stream<Item = Result<RecordBatch, Status>> + Send + 'static,
    ) -> Self {
        Self {
            schema,
            batches: batches.boxed(),
        }
    }

    /// An answer with no rows (one empty batch, as it always was: no client has to cope with
    /// a schema alone).
    fn empty(schema: SchemaRef) -> Self {
        let batch = RecordBatch::new_empty(schema.clone());
        Self::new(schema, futures::stream::once(async { Ok(batch) }))
    }

    /// One ready batch (metadata an arrow-flight builder made: an error is the server's).
    fn one<E: std::fmt::Display>(batch: Result<RecordBatch, E>) -> Result<Self, Status> {
        let batch = batch.map_err(|e| Status::internal(e.to_string()))?;
        Ok(Self::new(
            batch.schema(),
            futures::stream::once(async { Ok(batch) }),
        ))
    }
}

fn schema_bytes(schema: &Schema) -> Result<bytes::Bytes, Status> {
    let message: IpcMessage = SchemaAsIpc::new(schema, &IpcWriteOptions::default())
        .try_into()
        .map_err(|e: datafusion::arrow::error::ArrowError| Status::internal(e.to_string()))?;
    Ok(message.0)
}

fn sql_info() -> Result<&'static arrow_flight::sql::metadata::SqlInfoData, Status> {
    SQL_INFO
        .as_ref()
        .ok_or_else(|| Status::internal("server info could not be built"))
}

fn xdbc_types() -> Result<&'static arrow_flight::sql::metadata::XdbcTypeInfoData, Status> {
    XDBC_TYPES
        .as_ref()
        .ok_or_else(|| Status::internal("type info could not be built"))
}

fn read_only() -> Status {
    metrics().flight.refused("read_only");
    Status::invalid_argument("this server is read-only: updates are not accepted")
}

/// The Flight SQL command a ticket holds.
pub(crate) fn command(ticket: &Ticket) -> Result<Command, Status> {
    let any = Any::decode(&*ticket.ticket)
        .map_err(|e| Status::invalid_argument(format!("ticket: {e}")))?;
    Command::try_from(any).map_err(|e| Status::invalid_argument(format!("ticket: {e}")))
}

impl LakeFlightSql {
    /// The answer to a DoGet: its ticket is the command a GetFlightInfo answer put in it
    /// ([`super::do_get`] sends the answer).
    pub(crate) async fn answer(&self, ticket: &Ticket) -> Result<Answer, Status> {
        match command(ticket)? {
            Command::TicketStatementQuery(ticket) => {
                self.execute(&Handle::decode(&ticket.statement_handle)?)
                    .await
            }
            Command::CommandPreparedStatementQuery(cmd) => {
                self.execute(&Handle::decode(&cmd.prepared_statement_handle)?)
                    .await
            }
            Command::CommandGetCatalogs(query) => {
                let mut builder = query.into_builder();
                builder.append(CATALOG);
                Answer::one(builder.build())
            }
            Command::CommandGetDbSchemas(query) => Answer::one(Ok::<_, Status>(
                metadata::db_schemas(self.engine.lake(), query).await?,
            )),
            Command::CommandGetTables(query) => Answer::one(Ok::<_, Status>(
                metadata::tables_batch(self.engine.lake(), query).await?,
            )),
            Command::CommandGetTableTypes(query) => {
                let mut builder = query.into_builder();
                builder.append(TABLE_TYPE);
                Answer::one(builder.build())
            }
            Command::CommandGetSqlInfo(query) => {
                Answer::one(query.into_builder(sql_info()?).build())
            }
            Command::CommandGetXdbcTypeInfo(query) => {
                Answer::one(xdbc_types()?.record_batch(query.data_type))
            }
            Command::CommandGetPrimaryKeys(_) => Ok(Answer::empty(metadata::primary_keys_schema())),
            Command::CommandGetExportedKeys(_)
            | Command::CommandGetImportedKeys(_)
            | Command::CommandGetCrossReference(_) => {
                Ok(Answer::empty(metadata::foreign_keys_schema()))
            }
            other => Err(Status::invalid_argument(format!(
                "unknown ticket type {}",
                other.type_url()
            ))),
        }
    }

    async fn execute(&self, handle: &Handle) -> Result<Answer, Status> {
        let (schema, batches) = self.engine.execute(handle).await?;
        Ok(Answer::new(schema, batches))
    }
}

#[tonic::async_trait]
impl FlightSqlService for LakeFlightSql {
    type FlightService = LakeFlightSql;

    async fn do_handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<
        Response<Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>>,
        Status,
    > {
        let header = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let peer = request.remote_addr().map(|a| a.ip());
        let token = self.auth.login(header.as_deref(), peer)?;
        let reply = HandshakeResponse {
            protocol_version: 0,
            payload: token.clone().into(),
        };
        let mut response: Response<Pin<Box<dyn Stream<Item = _> + Send>>> =
            Response::new(Box::pin(futures::stream::iter([Ok(reply)])));
        if !token.is_empty() {
            let value = format!("Bearer {token}")
                .parse()
                .map_err(|_| Status::internal("token is not a valid header"))?;
            response.metadata_mut().insert("authorization", value);
        }
        Ok(response)
    }

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let handle = Handle::new(query.query);
        let schema = self.engine.plan(&handle).await?;
        let ticket = TicketStatementQuery {
            statement_handle: handle.encode().into(),
        };
        info(&ticket, &schema, request.into_inner())
    }

    async fn get_flight_info_prepared_statement(
        &self,
        cmd: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let handle = Handle::decode(&cmd.prepared_statement_handle)?;
        let schema = self.engine.plan(&handle).await?;
        info(&cmd, &schema, request.into_inner())
    }

    async fn do_put_prepared_statement_query(
        &self,
        cmd: CommandPreparedStatementQuery,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<DoPutPreparedStatementResult, Status> {
        let handle = Handle::decode(&cmd.prepared_statement_handle)?;
        let data = request.into_inner().map_err(FlightError::from);
        let mut batches = arrow_flight::decode::FlightRecordBatchStream::new_from_flight_data(data);
        // Only the first row binds; the rest of the stream is read (the client sends it all)
        // but not kept, so a long upload costs one message of memory, not all of them.
        let mut first: Option<RecordBatch> = None;
        while let Some(batch) = batches.next().await {
            let batch = batch.map_err(|e| Status::invalid_argument(format!("parameters: {e}")))?;
            if first.is_none() && batch.num_rows() > 0 {
                first = Some(batch.slice(0, 1));
            }
        }
        let handle = match &first {
            Some(batch) => handle.with_params(batch)?,
            None => handle,
        };
        Ok(DoPutPreparedStatementResult {
            prepared_statement_handle: Some(handle.encode().into()),
        })
    }

    async fn do_put_statement_update(
        &self,
        _cmd: CommandStatementUpdate,
        _request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        Err(read_only())
    }

    async fn do_put_prepared_statement_update(
        &self,
        _cmd: CommandPreparedStatementUpdate,
        _request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        Err(read_only())
    }

    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        _request: Request<Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        let handle = Handle::new(query.query);
        // Always the real result schema: JDBC takes an empty one for an update statement.
        let (dataset, parameters) = self.engine.describe(&handle).await?;
        Ok(ActionCreatePreparedStatementResult {
            prepared_statement_handle: handle.encode().into(),
            dataset_schema: schema_bytes(&dataset)?,
            parameter_schema: schema_bytes(&parameters)?,
        })
    }

    async fn do_action_close_prepared_statement(
        &self,
        _query: ActionClosePreparedStatementRequest,
        _request: Request<Action>,
    ) -> Result<(), Status> {
        // Handles are stateless: nothing to free.
        Ok(())
    }

    async fn get_flight_info_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.into_builder().schema();
        info(&query, &schema, request.into_inner())
    }

    async fn get_flight_info_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder().schema();
        info(&query, &schema, request.into_inner())
    }

    async fn get_flight_info_tables(
        &self,
        query: CommandGetTables,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder().schema();
        info(&query, &schema, request.into_inner())
    }

    async fn get_flight_info_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.into_builder().schema();
        info(&query, &schema, request.into_inner())
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder(sql_info()?).schema();
        info(&query, &schema, request.into_inner())
    }

    async fn get_flight_info_xdbc_type_info(
        &self,
        query: CommandGetXdbcTypeInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = xdbc_types()?.schema();
        info(&query, &schema, request.into_inner())
    }

    async fn get_flight_info_primary_keys(
        &self,
        query: CommandGetPrimaryKeys,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = metadata::primary_keys_schema();
        info(&query, &schema, request.into_inner())
    }

    async fn get_flight_info_exported_keys(
        &self,
        query: CommandGetExportedKeys,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = metadata::foreign_keys_schema();
        info(&query, &schema, request.into_inner())
    }

    async fn get_flight_info_imported_keys(
        &self,
        query: CommandGetImportedKeys,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = metadata::foreign_keys_schema();
        info(&query, &schema, request.into_inner())
    }

    async fn get_flight_info_cross_reference(
        &self,
        query: CommandGetCrossReference,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = metadata::foreign_keys_schema();
        info(&query, &schema, request.into_inner())
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}
