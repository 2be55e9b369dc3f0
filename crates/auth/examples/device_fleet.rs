//! A fleet load generator for `just bench`: registers N devices the way apps do, then keeps one
//! keep-alive connection open per device (plain tokio sockets) and has every device ask once a
//! second — 99 % polling their settings with `If-None-Match` (the 304 path), every hundredth
//! syncing instead — for S seconds. Reports each kind's latency (p50, p99, max), the statuses,
//! socket errors, and the server's resident memory and CPU over the measured seconds (read from
//! `/proc/<pid>`), also per 1,000 devices.
//!
//! `device_fleet <host:port> <api key> <devices> <seconds> <server pid>`

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

#[derive(Default)]
struct Tally {
    polls: Vec<f64>,
    syncs: Vec<f64>,
    statuses: BTreeMap<(&'static str, u16), u64>,
    errors: u64,
    /// Failed requests before the measured seconds (the device reconnected).
    warmup_errors: u64,
}

/// One request on `stream`, its status; the body is read and dropped.
async fn exchange(stream: &mut BufReader<TcpStream>, request: &[u8]) -> std::io::Result<u16> {
    stream.get_mut().write_all(request).await?;
    let mut line = String::new();
    if stream.read_line(&mut line).await? == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let mut length = 0usize;
    loop {
        line.clear();
        if stream.read_line(&mut line).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).await?;
    Ok(status)
}

/// The server's resident memory (KiB) and CPU time (clock ticks) now.
fn server_usage(pid: &str) -> (u64, u64) {
    let rss = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("VmRSS:"))
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|kib| kib.parse().ok())
        })
        .unwrap_or(0);
    let ticks = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            // Fields after the command's closing parenthesis; utime and stime are 14 and 15.
            let rest = stat.rsplit_once(')')?.1;
            let fields: Vec<&str> = rest.split_whitespace().collect();
            Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
        })
        .unwrap_or(0);
    (rss, ticks)
}

fn quantile(values: &mut [f64], q: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    values[((values.len() as f64 * q) as usize).min(values.len() - 1)]
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, address, key, devices, seconds, pid] = args.as_slice() else {
        eprintln!("usage: device_fleet <host:port> <api key> <devices> <seconds> <server pid>");
        std::process::exit(2);
    };
    let devices: usize = devices.parse().unwrap_or(10_000);
    let seconds: u64 = seconds.parse().unwrap_or(30);

    // Register the fleet, 32 at a time.
    let client = reqwest::Client::new();
    let registered = Arc::new(Mutex::new(Vec::new()));
    let started = Instant::now();
    let mut pending = tokio::task::JoinSet::new();
    for n in 0..devices {
        if pending.len() >= 32 {
            pending.join_next().await;
        }
        let (client, registered, address, key) =
            (client.clone(), registered.clone(), address.clone(), key.clone());
        pending.spawn(async move {
            let body = serde_json::json!({"deviceId": format!("fleet-{n}"), "displayName": format!("Fleet {n}"),
                "platform": "android", "pushToken": format!("fleet-token-{n}")});
            let answer: serde_json::Value = match client
                .post(format!("http://{address}/api/v1/devices/register"))
                .header("x-api-key", key)
                .json(&body)
                .send()
                .await
            {
                Ok(response) => response.json().await.unwrap_or_default(),
                Err(_) => serde_json::Value::Null,
            };
            let data = &answer["data"];
            if let (Some(id), Some(token)) = (data["id"].as_str(), data["deviceToken"].as_str())
                && let Ok(mut all) = registered.lock()
            {
                all.push((id.to_owned(), token.to_owned()));
            }
        });
    }
    while pending.join_next().await.is_some() {}
    let fleet: Vec<(String, String)> = registered.lock().map(|all| all.clone()).unwrap_or_default();
    println!(
        "   registered {} of {devices} devices in {:.1} s",
        fleet.len(),
        started.elapsed().as_secs_f64()
    );
    if fleet.is_empty() {
        std::process::exit(1);
    }

    // Every device's connection: one first GET for its ETag, then one request a second.
    let tally = Arc::new(Mutex::new(Tally::default()));
    // Devices start asking as soon as they are connected; the measured seconds begin once all
    // have had time to connect and settle.
    let measure_from =
        Instant::now() + Duration::from_secs(5) + Duration::from_millis(fleet.len() as u64 / 2);
    let end = measure_from + Duration::from_secs(seconds);
    let mut connections = tokio::task::JoinSet::new();
    for (n, (id, token)) in fleet.iter().enumerate() {
        let (address, id, token, tally) = (address.clone(), id.clone(), token.clone(), tally.clone());
        connections.spawn(async move {
            let connect = |address: String| async move {
                let socket = TcpStream::connect(&address).await?;
                socket.set_nodelay(true)?;
                Ok::<_, std::io::Error>(BufReader::new(socket))
            };
            let Ok(mut stream) = connect(address.clone()).await else {
                if let Ok(mut tally) = tally.lock() {
                    tally.errors += 1;
                }
                return;
            };
            let syncing = n % 100 == 0;
            let poll_path = format!("/api/v1/devices/{id}/settings");
            // The ETag, read once (every fresh device of one catalog shares it, but ask).
            let head = format!("GET {poll_path} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\n\r\n");
            let etag = {
                let request = head.clone();
                let _ = stream.get_mut().write_all(request.as_bytes()).await;
                let mut etag = String::new();
                let mut line = String::new();
                let mut length = 0usize;
                let _ = stream.read_line(&mut line).await;
                loop {
                    line.clear();
                    if stream.read_line(&mut line).await.unwrap_or(0) == 0 {
                        break;
                    }
                    let header = line.trim_end();
                    if header.is_empty() {
                        break;
                    }
                    if let Some((name, value)) = header.split_once(':') {
                        if name.eq_ignore_ascii_case("etag") {
                            etag = value.trim().to_owned();
                        } else if name.eq_ignore_ascii_case("content-length") {
                            length = value.trim().parse().unwrap_or(0);
                        }
                    }
                }
                let mut body = vec![0u8; length];
                let _ = stream.read_exact(&mut body).await;
                etag
            };
            let poll = format!(
                "GET {poll_path} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\nIf-None-Match: {etag}\r\n\r\n"
            );
            let body = r#"{"baseVersion":0,"changes":{}}"#;
            let sync = format!(
                "POST {poll_path}/sync HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\n\
                 Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            let (kind, request) = if syncing { ("sync", sync) } else { ("poll", poll) };
            // Spread the devices over the second.
            let phase = Duration::from_micros((n as u64 * 7919 * 1000) % 1_000_000);
            let mut next = Instant::now() + phase;
            while next < end {
                tokio::time::sleep_until(next.into()).await;
                let sent = Instant::now();
                let outcome = exchange(&mut stream, request.as_bytes()).await;
                let ms = sent.elapsed().as_secs_f64() * 1000.0;
                let failed = outcome.is_err();
                if let Ok(mut tally) = tally.lock() {
                    match outcome {
                        Ok(status) if sent >= measure_from => {
                            *tally.statuses.entry((kind, status)).or_default() += 1;
                            if syncing {
                                tally.syncs.push(ms);
                            } else {
                                tally.polls.push(ms);
                            }
                        }
                        Ok(_) => {}
                        Err(_) if sent >= measure_from => tally.errors += 1,
                        Err(_) => tally.warmup_errors += 1,
                    }
                }
                if failed {
                    // As a device would: connect again and go on.
                    match connect(address.clone()).await {
                        Ok(again) => stream = again,
                        Err(_) => return,
                    }
                }
                next += Duration::from_secs(1);
            }
        });
    }
    tokio::time::sleep_until(measure_from.into()).await;
    let (rss_start, ticks_start) = server_usage(pid);
    let mut peak = rss_start;
    while Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(500)).await;
        peak = peak.max(server_usage(pid).0);
    }
    let (rss_end, ticks_end) = server_usage(pid);
    while connections.join_next().await.is_some() {}
    let mut tally = tally
        .lock()
        .map(|mut t| std::mem::take(&mut *t))
        .unwrap_or_default();
    let thousands = fleet.len() as f64 / 1000.0;
    // Clock ticks are 1/100 s on Linux.
    let cpu = (ticks_end.saturating_sub(ticks_start)) as f64 / 100.0 / seconds as f64 * 100.0;
    let (polls, syncs) = (tally.polls.len(), tally.syncs.len());
    println!(
        "   polls {polls} ({:.0}/s): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms (target p99 < 50 ms)",
        polls as f64 / seconds as f64,
        quantile(&mut tally.polls, 0.5),
        quantile(&mut tally.polls, 0.99),
        quantile(&mut tally.polls, 1.0)
    );
    println!(
        "   syncs {syncs} ({:.0}/s): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms (target p99 < 200 ms)",
        syncs as f64 / seconds as f64,
        quantile(&mut tally.syncs, 0.5),
        quantile(&mut tally.syncs, 0.99),
        quantile(&mut tally.syncs, 1.0)
    );
    println!(
        "   server RSS {} MiB at start of the measured seconds, {} MiB at the end, {} MiB at most (target < 256 MB); {:.1} MiB per 1,000 devices",
        rss_start / 1024,
        rss_end / 1024,
        peak / 1024,
        peak as f64 / 1024.0 / thousands
    );
    println!(
        "   server CPU {cpu:.0} % of one core ({:.1} % per 1,000 devices)",
        cpu / thousands
    );
    let parts: Vec<String> = tally
        .statuses
        .iter()
        .map(|((kind, status), n)| format!("{kind} {status}={n}"))
        .collect();
    let expected: u64 = tally
        .statuses
        .iter()
        .filter(|((kind, status), _)| {
            (*kind == "poll" && *status == 304) || (*kind == "sync" && *status == 200)
        })
        .map(|(_, n)| n)
        .sum();
    let all: u64 = tally.statuses.values().sum();
    println!(
        "   statuses: {} (socket errors {}; before the measured seconds {})",
        parts.join(" "),
        tally.errors,
        tally.warmup_errors
    );
    if all == 0 || (expected as f64) < all as f64 * 0.999 || tally.errors > 0 || fleet.len() < devices {
        println!("   UNEXPECTED STATUSES OR ERRORS: this run is not a figure");
    }
}
