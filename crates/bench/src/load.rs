//! The load generator: closed loops of a fixed number of clients (each sends
//! its next request when the previous answer has arrived), an open loop paced
//! at a fixed rate, and a burst of simultaneous requests. Every run is bounded
//! by a duration and a request count; latencies are kept in full (microseconds)
//! for exact percentiles.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{Barrier, Semaphore};
use tokio::time::Instant;

use crate::queries::{Tally, Verdict};

/// The body of the `n`-th request of a run.
pub type MakeBody = Arc<dyn Fn(u64) -> Bytes + Send + Sync>;
/// Judges an answer (status, body).
pub type Judge = Arc<dyn Fn(u16, &[u8]) -> Verdict + Send + Sync>;

/// The same body every time.
pub fn same_body(body: Bytes) -> MakeBody {
    Arc::new(move |_| body.clone())
}

/// What to send, where, and how to judge it.
#[derive(Clone)]
pub struct Target {
    pub client: reqwest::Client,
    /// The full URL of the POST.
    pub url: String,
    /// Sent as `Authorization: Bearer ...` when set.
    pub bearer: Option<String>,
    pub body: MakeBody,
    pub judge: Judge,
}

/// A closed-loop run.
#[derive(Debug, Clone, Copy)]
pub struct ClosedLoop {
    pub clients: usize,
    /// Unmeasured load first (the same clients).
    pub warmup: Duration,
    pub duration: Duration,
    pub max_requests: u64,
}

/// What a run measured.
#[derive(Debug, Default, Clone)]
pub struct Outcome {
    pub tally: Tally,
    /// From the first request sent to the last answer received.
    pub elapsed: Duration,
    /// Latency of every answered request, microseconds, sorted.
    pub latencies_us: Vec<u32>,
}

impl Outcome {
    /// Good answers per second.
    pub fn throughput(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.tally.ok as f64 / secs
        } else {
            0.0
        }
    }

    /// The `p`-th percentile latency (0 < p <= 100) in milliseconds, nearest rank.
    pub fn percentile_ms(&self, p: f64) -> f64 {
        percentile_ms(&self.latencies_us, p)
    }

    pub fn answered(&self) -> u64 {
        self.latencies_us.len() as u64
    }

    fn absorb(&mut self, worker: Worker) {
        self.tally.merge(worker.tally);
        self.latencies_us.extend(worker.latencies_us);
    }

    fn finish(mut self, elapsed: Duration) -> Outcome {
        self.elapsed = elapsed;
        self.latencies_us.sort_unstable();
        self
    }
}

/// Nearest-rank percentile of sorted microsecond latencies, in milliseconds.
pub fn percentile_ms(sorted_us: &[u32], p: f64) -> f64 {
    if sorted_us.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted_us.len() as f64).ceil() as usize;
    let index = rank.clamp(1, sorted_us.len()) - 1;
    f64::from(sorted_us[index]) / 1000.0
}

#[derive(Default)]
struct Worker {
    tally: Tally,
    latencies_us: Vec<u32>,
}

impl Worker {
    async fn send(&mut self, target: &Target, n: u64) {
        let body = (target.body)(n);
        let started = Instant::now();
        let mut request = target
            .client
            .post(&target.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        if let Some(token) = &target.bearer {
            request = request.bearer_auth(token);
        }
        let answer = async {
            let response = request.send().await?;
            let status = response.status().as_u16();
            let bytes = response.bytes().await?;
            Ok::<_, reqwest::Error>((status, bytes))
        }
        .await;
        let micros = u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX);
        match answer {
            Ok((status, bytes)) => {
                self.latencies_us.push(micros);
                self.tally.add((target.judge)(status, &bytes));
            }
            Err(error) => self.tally.transport_error(format!("transport: {error}")),
        }
    }
}

/// `clients` clients, each sending its next request as soon as the previous
/// answer arrived, until `duration` has passed or `max_requests` were sent.
pub async fn closed_loop(target: &Target, spec: ClosedLoop) -> Outcome {
    if !spec.warmup.is_zero() {
        let _ = closed_phase(target, spec.clients, spec.warmup, spec.max_requests).await;
    }
    closed_phase(target, spec.clients, spec.duration, spec.max_requests).await
}

async fn closed_phase(
    target: &Target,
    clients: usize,
    duration: Duration,
    max_requests: u64,
) -> Outcome {
    let issued = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + duration;
    let workers: Vec<_> = (0..clients.max(1))
        .map(|_| {
            let target = target.clone();
            let issued = issued.clone();
            tokio::spawn(async move {
                let mut worker = Worker::default();
                while Instant::now() < deadline {
                    let n = issued.fetch_add(1, Ordering::Relaxed);
                    if n >= max_requests {
                        break;
                    }
                    worker.send(&target, n).await;
                }
                worker
            })
        })
        .collect();
    let mut outcome = Outcome::default();
    for worker in workers {
        match worker.await {
            Ok(worker) => outcome.absorb(worker),
            Err(error) => outcome
                .tally
                .transport_error(format!("a load task failed: {error}")),
        }
    }
    outcome.finish(started.elapsed())
}

/// An open loop: `total` requests, the `n`-th sent `n * spacing` after the
/// start whatever happened to the others, at most `max_in_flight` at once (a
/// request that finds no room is not sent and counted in `skipped`). Waits at
/// most `drain` for the last answers.
pub async fn paced(
    target: &Target,
    total: u64,
    spacing: Duration,
    max_in_flight: usize,
    drain: Duration,
) -> (Outcome, u64) {
    let room = Arc::new(Semaphore::new(max_in_flight.max(1)));
    let started = Instant::now();
    let mut skipped = 0;
    let mut tasks = Vec::new();
    for n in 0..total {
        tokio::time::sleep_until(started + spacing.mul_f64(n as f64)).await;
        let Ok(permit) = room.clone().try_acquire_owned() else {
            skipped += 1;
            continue;
        };
        let target = target.clone();
        tasks.push(tokio::spawn(async move {
            let mut worker = Worker::default();
            worker.send(&target, n).await;
            drop(permit);
            worker
        }));
    }
    let collect = async {
        let mut outcome = Outcome::default();
        for task in tasks {
            match task.await {
                Ok(worker) => outcome.absorb(worker),
                Err(error) => outcome
                    .tally
                    .transport_error(format!("a load task failed: {error}")),
            }
        }
        outcome
    };
    let outcome = match tokio::time::timeout(drain + spacing.mul_f64(total as f64), collect).await {
        Ok(outcome) => outcome,
        Err(_) => {
            let mut outcome = Outcome::default();
            outcome
                .tally
                .transport_error("answers still missing after the drain time".to_string());
            outcome
        }
    };
    (outcome.finish(started.elapsed()), skipped)
}

/// `count` requests released together (after every client is ready), each on
/// its own connection. Waits at most `timeout`.
pub async fn burst(target: &Target, count: usize, timeout: Duration) -> Outcome {
    let ready = Arc::new(Barrier::new(count.max(1) + 1));
    let tasks: Vec<_> = (0..count.max(1))
        .map(|n| {
            let target = target.clone();
            let ready = ready.clone();
            tokio::spawn(async move {
                let mut worker = Worker::default();
                ready.wait().await;
                worker.send(&target, n as u64).await;
                worker
            })
        })
        .collect();
    ready.wait().await;
    let started = Instant::now();
    let collect = async {
        let mut outcome = Outcome::default();
        for task in tasks {
            match task.await {
                Ok(worker) => outcome.absorb(worker),
                Err(error) => outcome
                    .tally
                    .transport_error(format!("a load task failed: {error}")),
            }
        }
        outcome
    };
    let outcome = match tokio::time::timeout(timeout, collect).await {
        Ok(outcome) => outcome,
        Err(_) => {
            let mut outcome = Outcome::default();
            outcome
                .tally
                .transport_error(format!("answers still missing after {timeout:?}"));
            outcome
        }
    };
    outcome.finish(started.elapsed())
}

/// Samples a process's resident memory every 100 ms while a run goes on.
pub struct RssSampler {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<u64>,
}

impl RssSampler {
    /// `pid` `None` samples this process. Stops by itself after `limit`.
    pub fn start(pid: Option<u32>, limit: Duration) -> RssSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let task = tokio::spawn(async move {
            let until = Instant::now() + limit;
            let mut max = 0;
            while !flag.load(Ordering::Relaxed) && Instant::now() < until {
                max = max.max(crate::gateway::rss_bytes(pid).unwrap_or(0));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            max.max(crate::gateway::rss_bytes(pid).unwrap_or(0))
        });
        RssSampler { stop, task }
    }

    /// The largest resident size seen, in bytes.
    pub async fn finish(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap_or(0)
    }
}
