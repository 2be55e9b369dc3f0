//! A webhook receiver for `just bench`: a minimal HTTP/1.1 server on loopback (plain tokio, so
//! building it adds no crates to the release build) that answers `204` to every `POST` and
//! keeps, per event, the time from the event (`occurredAt`) to its arrival. `GET /stats`
//! answers the count, duplicates, the rate from the first event to the last arrival and the
//! latency percentiles, as JSON.
//!
//! `cargo run --release -p steward-auth --example webhook_sink -- 18999`

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

#[derive(Default)]
struct Seen {
    latencies_ms: Vec<f64>,
    first_event: Option<DateTime<Utc>>,
    last_arrival: Option<DateTime<Utc>>,
    ids: HashSet<String>,
    duplicates: u64,
}

fn record(seen: &Mutex<Seen>, body: &[u8]) {
    let now = Utc::now();
    let parsed: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let Some(occurred) = parsed["occurredAt"]
        .as_str()
        .and_then(|text| DateTime::parse_from_rfc3339(text).ok())
        .map(|at| at.with_timezone(&Utc))
    else {
        return;
    };
    let Ok(mut seen) = seen.lock() else { return };
    if !seen
        .ids
        .insert(parsed["id"].as_str().unwrap_or_default().to_owned())
    {
        seen.duplicates += 1;
    }
    let micros = (now - occurred).num_microseconds().unwrap_or(i64::MAX);
    seen.latencies_ms.push(micros as f64 / 1000.0);
    seen.first_event = Some(seen.first_event.map_or(occurred, |first| first.min(occurred)));
    seen.last_arrival = Some(now);
}

fn stats(seen: &Mutex<Seen>) -> String {
    let Ok(seen) = seen.lock() else {
        return "{}".to_owned();
    };
    let mut sorted = seen.latencies_ms.clone();
    sorted.sort_by(f64::total_cmp);
    let percentile = |p: f64| match sorted.len() {
        0 => 0.0,
        n => sorted[((n as f64 - 1.0) * p).round() as usize],
    };
    let seconds = match (seen.first_event, seen.last_arrival) {
        (Some(first), Some(last)) => (last - first).num_milliseconds() as f64 / 1000.0,
        _ => 0.0,
    };
    let rate = if seconds > 0.0 {
        sorted.len() as f64 / seconds
    } else {
        0.0
    };
    serde_json::json!({
        "count": sorted.len(), "duplicates": seen.duplicates, "seconds": seconds, "perSecond": rate,
        "p50Ms": percentile(0.50), "p99Ms": percentile(0.99), "maxMs": percentile(1.0),
    })
    .to_string()
}

/// Serves one keep-alive connection.
async fn serve(socket: TcpStream, seen: Arc<Mutex<Seen>>) -> std::io::Result<()> {
    let (read, mut write) = socket.into_split();
    let mut reader = BufReader::new(read);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).await? == 0 {
            return Ok(());
        }
        let mut length = 0usize;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).await? == 0 {
                return Ok(());
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; length.min(1 << 20)];
        reader.read_exact(&mut body).await?;
        if request_line.starts_with("GET /stats") {
            let text = stats(&seen);
            let answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{text}",
                text.len()
            );
            write.write_all(answer.as_bytes()).await?;
        } else {
            record(&seen, &body);
            write.write_all(b"HTTP/1.1 204 No Content\r\n\r\n").await?;
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|port| port.parse().ok())
        .unwrap_or(18999);
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    let seen = Arc::new(Mutex::new(Seen::default()));
    loop {
        let (socket, _) = listener.accept().await?;
        let seen = Arc::clone(&seen);
        tokio::spawn(async move {
            let _ = serve(socket, seen).await;
        });
    }
}
