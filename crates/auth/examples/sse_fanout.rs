//! A live-stream load generator for `just bench`: opens N server-sent-event streams of one
//! device's events (plain tokio sockets, so building it adds no crates to the release build),
//! posts one event a second as that device for S seconds, and reports how many deliveries
//! arrived and how long each took from the post to its arrival (p50, p99, max).
//!
//! `sse_fanout <host:port> <device id> <device token> <subscribers> <seconds>`

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, address, device, token, subscribers, seconds] = args.as_slice() else {
        eprintln!("usage: sse_fanout <host:port> <device id> <device token> <subscribers> <seconds>");
        std::process::exit(2);
    };
    let subscribers: usize = subscribers.parse().unwrap_or(1000);
    let seconds: u64 = seconds.parse().unwrap_or(30);
    let latencies = Arc::new(Mutex::new(Vec::<f64>::new()));
    let connected = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let request = format!(
        "GET /api/v1/devices/{device}/events/stream?type=custom.bench HTTP/1.1\r\nHost: {address}\r\n\
         Authorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n"
    );
    for batch in 0..subscribers.div_ceil(500) {
        for _ in 0..500.min(subscribers - batch * 500) {
            let (address, request) = (address.clone(), request.clone());
            let (latencies, connected, failed) = (latencies.clone(), connected.clone(), failed.clone());
            tokio::spawn(async move {
                let Ok(mut socket) = TcpStream::connect(&address).await else {
                    failed.fetch_add(1, Ordering::Relaxed);
                    return;
                };
                if socket.write_all(request.as_bytes()).await.is_err() {
                    failed.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                let mut lines = BufReader::new(socket).lines();
                let mut open = false;
                while let Ok(Some(line)) = lines.next_line().await {
                    if !open && line.starts_with("retry:") {
                        open = true;
                        connected.fetch_add(1, Ordering::Relaxed);
                    }
                    // The summary carries the post's time in microseconds.
                    if let Some(data) = line.strip_prefix("data: ") {
                        let event: serde_json::Value = serde_json::from_str(data).unwrap_or_default();
                        if let Some(sent) = event["summary"].as_str().and_then(|s| s.parse::<i64>().ok()) {
                            let ms = (Utc::now().timestamp_micros() - sent) as f64 / 1000.0;
                            if let Ok(mut all) = latencies.lock() {
                                all.push(ms);
                            }
                        }
                    }
                }
                if !open {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for _ in 0..600 {
        if connected.load(Ordering::Relaxed) + failed.load(Ordering::Relaxed) >= subscribers as u64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let open = connected.load(Ordering::Relaxed);
    let client = reqwest::Client::new();
    let url = format!("http://{address}/api/v1/devices/{device}/events");
    let mut posted = 0u64;
    let mut statuses = std::collections::BTreeMap::<u16, u64>::new();
    for _ in 0..seconds {
        let now = Utc::now();
        let body = serde_json::json!({"events": [{"type": "custom.bench", "occurredAt": now.to_rfc3339(),
            "summary": now.timestamp_micros().to_string()}]});
        match client.post(&url).bearer_auth(token).json(&body).send().await {
            Ok(response) => {
                *statuses.entry(response.status().as_u16()).or_default() += 1;
                if response.status().as_u16() == 202 {
                    posted += 1;
                }
            }
            Err(_) => *statuses.entry(0).or_default() += 1,
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut all = latencies.lock().map(|all| all.clone()).unwrap_or_default();
    all.sort_by(f64::total_cmp);
    let at = |q: f64| {
        all.get(((all.len() as f64 * q) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or(f64::NAN)
    };
    let expected = open * posted;
    println!(
        "streams open {open} of {subscribers} (failed {}), events posted {posted} (statuses {statuses:?}), \
         deliveries {} of {expected} expected, latency p50 {:.1} ms p99 {:.1} ms max {:.1} ms",
        failed.load(Ordering::Relaxed),
        all.len(),
        at(0.5),
        at(0.99),
        all.last().copied().unwrap_or(f64::NAN)
    );
    if all.len() as u64 != expected || open != subscribers as u64 {
        println!("   UNEXPECTED: missing deliveries or streams: this run is not a figure");
    }
}
