//! `lake serve` for the tests, and a Flight SQL client: connect, run a query, read its batches.

use arrow_flight::sql::client::FlightSqlServiceClient;
use arrow_flight::FlightInfo;
use datafusion::arrow::array::{Array, Int64Array, RecordBatch, StringArray};
use futures::TryStreamExt;
use tonic::transport::Channel;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};

use super::lake;

pub async fn client(url: &str) -> FlightSqlServiceClient<Channel> {
    let channel = Channel::from_shared(url.to_string())
        .unwrap()
        .connect()
        .await
        .expect("connect");
    FlightSqlServiceClient::new(channel)
}

pub async fn fetch(
    c: &mut FlightSqlServiceClient<Channel>,
    info: FlightInfo,
) -> Result<Vec<RecordBatch>, String> {
    let mut out = Vec::new();
    for endpoint in info.endpoint {
        let ticket = endpoint.ticket.expect("ticket");
        let stream = c.do_get(ticket).await.map_err(|e| e.to_string())?;
        out.extend(
            stream
                .try_collect::<Vec<_>>()
                .await
                .map_err(|e| e.to_string())?,
        );
    }
    Ok(out)
}

pub async fn query(
    c: &mut FlightSqlServiceClient<Channel>,
    sql: &str,
) -> Result<Vec<RecordBatch>, String> {
    let info = c
        .execute(sql.to_string(), None)
        .await
        .map_err(|e| e.to_string())?;
    fetch(c, info).await
}

pub fn first_i64(batches: &[RecordBatch]) -> i64 {
    let b = batches.iter().find(|b| b.num_rows() > 0).expect("a row");
    b.column(0)
        .as_any()
        .downcast_ref::<Int64Array>()
        .expect("BIGINT")
        .value(0)
}

pub fn strings(batches: &[RecordBatch], column: &str) -> Vec<String> {
    batches
        .iter()
        .flat_map(|b| {
            let c = b.column_by_name(column).expect("column");
            let s = c.as_any().downcast_ref::<StringArray>().expect("strings");
            (0..s.len())
                .map(|i| s.value(i).to_string())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// A running `lake serve`, killed on drop.
pub struct Server {
    pub child: Child,
    pub url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn serve(dir: &Path, extra: &[&str]) -> Server {
    serve_at(dir.to_str().unwrap(), extra)
}

/// [`serve`] of the lake at `location`, a folder or a URL.
pub fn serve_at(location: &str, extra: &[&str]) -> Server {
    let mut child = lake()
        .args(["serve", "--lake", location, "--addr", "127.0.0.1:0"])
        .args(extra)
        .stdout(Stdio::piped())
        .spawn()
        .expect("start lake serve");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read banner");
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("grpc://"))
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .replace("grpc://", "http://");
    Server { child, url }
}
