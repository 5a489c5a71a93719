//! The test workload: a small static HTTP service that the integration
//! tests run in Docker and scale.
//!
//! ```text
//! workload serve            listen on $PORT (default 8080)
//! workload health [PORT]    exit 0 when /health answers 200 (the image's healthcheck)
//! workload burn MS [THREADS] burn CPU here (for `docker exec`: no shell in the image)
//! workload hold MIB MS       hold memory here
//! ```
//!
//! Endpoints:
//!
//! | path | effect |
//! |------|--------|
//! | `/health` | 200, or 503 when the fail-health file existed at start |
//! | `/metrics` | Prometheus text: queue depth, request durations, errors |
//! | `/burn?ms=1000&threads=1` | burn CPU on `threads` threads for `ms` |
//! | `/hold?mib=64&ms=10000` | allocate and touch `mib` MiB, keep it for `ms` |
//! | `/enqueue?n=10` | add work; a worker drains `$DRAIN_PER_SEC` items a second |
//! | `/drain` | empty the queue at once |
//! | `/sleep?ms=500` | answer after `ms` (raises the latency histogram) |
//! | `/error` | 500, counted in `vedfolnir_errors_total` |
//!
//! A replica that finds the file named by `$FAIL_HEALTH_FILE` (default
//! `/control/fail-health`) when it starts never becomes healthy: the tests
//! use it to make new replicas fail while old ones keep serving.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Upper bounds of the request-duration histogram, in seconds.
const BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

/// Set by the SIGTERM handler.
static TERMINATING: AtomicBool = AtomicBool::new(false);
/// The write end of the pipe the SIGTERM handler wakes the exit thread by.
static WAKE_FD: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(-1);

extern "C" fn on_sigterm(_: libc::c_int) {
    TERMINATING.store(true, Ordering::SeqCst);
    let fd = WAKE_FD.load(Ordering::SeqCst);
    if fd >= 0 {
        // SAFETY: write(2) is async-signal-safe; a one-byte buffer on the
        // stack, to a pipe this process owns.
        unsafe {
            libc::write(fd, [1u8].as_ptr().cast(), 1);
        }
    }
}

#[derive(Default)]
struct Histogram {
    /// Cumulative counts per bucket, then +Inf.
    counts: [u64; BUCKETS.len() + 1],
    sum: f64,
}

struct State {
    healthy: bool,
    queue: AtomicU64,
    errors: AtomicU64,
    requests: AtomicU64,
    durations: Mutex<Histogram>,
    held_mib: AtomicU64,
}

impl State {
    fn new(healthy: bool) -> State {
        State {
            healthy,
            queue: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            durations: Mutex::new(Histogram::default()),
            held_mib: AtomicU64::new(0),
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(8080);
    match args.get(1).map(String::as_str) {
        None | Some("serve") => serve(port),
        Some("health") => {
            let port = args.get(2).and_then(|p| p.parse().ok()).unwrap_or(port);
            std::process::exit(if health_check(port) { 0 } else { 1 })
        }
        Some("burn") => {
            let q = format!(
                "ms={}&threads={}",
                args.get(2).map(String::as_str).unwrap_or("1000"),
                args.get(3).map(String::as_str).unwrap_or("1")
            );
            print!("{}", route("/burn", &q, &State::new(true)).1);
        }
        Some("hold") => {
            let q = format!(
                "mib={}&ms={}",
                args.get(2).map(String::as_str).unwrap_or("64"),
                args.get(3).map(String::as_str).unwrap_or("10000")
            );
            print!("{}", route("/hold", &q, &State::new(true)).1);
        }
        Some(other) => {
            eprintln!(
                "workload: unknown command {other:?} (serve | health [PORT] | burn MS [THREADS] | hold MIB MS)"
            );
            std::process::exit(2)
        }
    }
}

fn health_check(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /health HTTP/1.0\r\n\r\n").is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.") && &head[9..12] == b"200"
}

fn serve(port: u16) {
    // SAFETY: installs an async-signal-safe handler that only stores to an atomic.
    unsafe {
        libc::signal(
            libc::SIGTERM,
            on_sigterm as extern "C" fn(libc::c_int) as libc::sighandler_t,
        );
    }
    // The exit thread sleeps on a pipe the handler writes to (no polling:
    // a thousand idle replicas must not keep the host busy).
    let mut fds = [-1; 2];
    // SAFETY: pipe(2) fills the two-element array it is given.
    let piped = unsafe { libc::pipe(fds.as_mut_ptr()) } == 0;
    if piped {
        WAKE_FD.store(fds[1], Ordering::SeqCst);
    }
    thread::spawn(move || {
        while !TERMINATING.load(Ordering::SeqCst) {
            if piped {
                let mut byte = 0u8;
                // SAFETY: reads at most one byte into a local.
                unsafe { libc::read(fds[0], (&mut byte as *mut u8).cast(), 1) };
            } else {
                thread::sleep(Duration::from_millis(20));
            }
        }
        eprintln!("workload: SIGTERM, exiting");
        std::process::exit(0);
    });

    let fail_file =
        std::env::var("FAIL_HEALTH_FILE").unwrap_or_else(|_| "/control/fail-health".into());
    let healthy = !std::path::Path::new(&fail_file).exists();
    let state = Arc::new(State::new(healthy));
    let drain: u64 = std::env::var("DRAIN_PER_SEC")
        .ok()
        .and_then(|d| d.parse().ok())
        .unwrap_or(5);
    {
        let state = state.clone();
        thread::spawn(move || {
            loop {
                thread::sleep(Duration::from_secs(1));
                let _ = state
                    .queue
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |q| {
                        Some(q.saturating_sub(drain))
                    });
            }
        });
    }

    let listener = match TcpListener::bind(("0.0.0.0", port)) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("workload: cannot listen on port {port}: {e}");
            std::process::exit(1);
        }
    };
    eprintln!("workload: listening on port {port} (healthy: {healthy})");
    for stream in listener.incoming().flatten() {
        let state = state.clone();
        thread::spawn(move || handle(stream, &state));
    }
}

fn query(q: &str, key: &str, default: u64) -> u64 {
    q.split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(default)
}

fn handle(mut stream: TcpStream, state: &State) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut reader = BufReader::new(match stream.try_clone() {
        Ok(s) => s,
        Err(_) => return,
    });
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    // Skip the headers; no endpoint reads a body.
    let mut header = String::new();
    while reader
        .read_line(&mut header)
        .map(|n| n > 2)
        .unwrap_or(false)
    {
        header.clear();
    }
    let target = line.split_whitespace().nth(1).unwrap_or("/");
    let (path, q) = target.split_once('?').unwrap_or((target, ""));
    let started = Instant::now();
    let (status, body) = route(path, q, state);
    if path != "/metrics" && path != "/health" {
        state.requests.fetch_add(1, Ordering::Relaxed);
        let secs = started.elapsed().as_secs_f64();
        let mut h = state.durations.lock().unwrap();
        for (i, le) in BUCKETS.iter().enumerate() {
            if secs <= *le {
                h.counts[i] += 1;
            }
        }
        h.counts[BUCKETS.len()] += 1;
        h.sum += secs;
    }
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        500 => "Internal Server Error",
        _ => "Service Unavailable",
    };
    let _ = write!(
        stream,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

fn route(path: &str, q: &str, state: &State) -> (u16, String) {
    match path {
        "/" => (200, "vedfolnir test workload\n".into()),
        "/health" if state.healthy => (200, "ok\n".into()),
        "/health" => (
            503,
            "never healthy: the fail-health file existed at start\n".into(),
        ),
        "/metrics" => (200, metrics(state)),
        "/burn" => {
            let ms = query(q, "ms", 1000).min(600_000);
            let threads = query(q, "threads", 1).clamp(1, 64);
            let until = Instant::now() + Duration::from_millis(ms);
            let workers: Vec<_> = (0..threads)
                .map(|_| {
                    thread::spawn(move || {
                        let mut x: u64 = 1;
                        while Instant::now() < until {
                            for _ in 0..10_000 {
                                x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                            }
                            std::hint::black_box(x);
                        }
                    })
                })
                .collect();
            for w in workers {
                let _ = w.join();
            }
            (200, format!("burned {threads} thread(s) for {ms} ms\n"))
        }
        "/hold" => {
            let mib = query(q, "mib", 64).min(16 * 1024);
            let ms = query(q, "ms", 10_000).min(3_600_000);
            let mut block = vec![0u8; (mib as usize) << 20];
            // Touch every page so the memory is resident, not just reserved.
            for i in (0..block.len()).step_by(4096) {
                block[i] = 1;
            }
            state.held_mib.fetch_add(mib, Ordering::SeqCst);
            thread::sleep(Duration::from_millis(ms));
            std::hint::black_box(&block);
            drop(block);
            state.held_mib.fetch_sub(mib, Ordering::SeqCst);
            (200, format!("held {mib} MiB for {ms} ms\n"))
        }
        "/enqueue" => {
            let n = query(q, "n", 1);
            let depth = state.queue.fetch_add(n, Ordering::SeqCst) + n;
            (200, format!("queue depth {depth}\n"))
        }
        "/drain" => {
            state.queue.store(0, Ordering::SeqCst);
            (200, "queue depth 0\n".into())
        }
        "/sleep" => {
            let ms = query(q, "ms", 500).min(60_000);
            thread::sleep(Duration::from_millis(ms));
            (200, format!("slept {ms} ms\n"))
        }
        "/error" => {
            state.errors.fetch_add(1, Ordering::Relaxed);
            (500, "error (as asked)\n".into())
        }
        _ => (404, "not found\n".into()),
    }
}

fn metrics(state: &State) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let h = state.durations.lock().unwrap();
    let _ = writeln!(
        out,
        "# HELP vedfolnir_queue_depth Items waiting in the work queue.\n# TYPE vedfolnir_queue_depth gauge\nvedfolnir_queue_depth {}",
        state.queue.load(Ordering::SeqCst)
    );
    let _ = writeln!(
        out,
        "# HELP vedfolnir_request_duration_seconds Request durations.\n# TYPE vedfolnir_request_duration_seconds histogram"
    );
    for (i, le) in BUCKETS.iter().enumerate() {
        let _ = writeln!(
            out,
            "vedfolnir_request_duration_seconds_bucket{{le=\"{le}\"}} {}",
            h.counts[i]
        );
    }
    let total = h.counts[BUCKETS.len()];
    let _ = writeln!(
        out,
        "vedfolnir_request_duration_seconds_bucket{{le=\"+Inf\"}} {total}\nvedfolnir_request_duration_seconds_sum {}\nvedfolnir_request_duration_seconds_count {total}",
        h.sum
    );
    let _ = writeln!(
        out,
        "# HELP vedfolnir_errors_total Requests answered with an error.\n# TYPE vedfolnir_errors_total counter\nvedfolnir_errors_total {}",
        state.errors.load(Ordering::Relaxed)
    );
    let _ = writeln!(
        out,
        "# HELP vedfolnir_requests_total Requests served (not /metrics or /health).\n# TYPE vedfolnir_requests_total counter\nvedfolnir_requests_total {}",
        state.requests.load(Ordering::Relaxed)
    );
    let _ = writeln!(
        out,
        "# HELP vedfolnir_held_memory_bytes Memory held by /hold.\n# TYPE vedfolnir_held_memory_bytes gauge\nvedfolnir_held_memory_bytes {}",
        state.held_mib.load(Ordering::SeqCst) << 20
    );
    out
}
