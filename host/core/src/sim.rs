//! The simulation model behind `vedfolnir-autoscaler simulate`: a load
//! trace, a model of the service it drives, the signal history a policy
//! sees, and the tallies the results table reports. Pure: the virtual clock
//! is an argument everywhere, so a year of trace replays in seconds and the
//! same inputs always give the same table.
//!
//! ```text
//!   trace (req/s) ──> Service::advance(now, step) ──> Observation
//!                         │  ready replicas share arrivals evenly;
//!                         │  each is an M/M/k queue; overload builds a
//!                         │  backlog; waits past the timeout fail
//!                         v
//!   history::History (every recent sample + older 15-minute means, as
//!   the daemon keeps them) ──> policy windows
//! ```

use std::collections::VecDeque;

use crate::model::{Direction, DurationMs, SLO_VIOLATION, SignalId, TimestampMs};
use crate::queueing::Queue;

pub mod foresight;
pub mod web;

/// A load trace: requests per second at a fixed step, from time 0.
#[derive(Debug, Clone, PartialEq)]
pub struct Trace {
    /// Time between two points.
    pub step_ms: DurationMs,
    /// The load at `i * step_ms`, requests per second, finite and >= 0.
    pub values: Vec<f64>,
}

impl Trace {
    /// How long the trace lasts: from its first point to one step after its
    /// last.
    pub fn duration_ms(&self) -> DurationMs {
        self.step_ms * self.values.len() as u64
    }

    /// Multiply every point by `factor`.
    pub fn scaled(mut self, factor: f64) -> Trace {
        for v in &mut self.values {
            *v *= factor;
        }
        self
    }

    fn point(&self, i: usize) -> f64 {
        self.values[i.min(self.values.len() - 1)]
    }

    /// The load at `t` ms: linear between points, the last point held.
    pub fn at(&self, t: u64) -> f64 {
        let i = (t / self.step_ms) as usize;
        let frac = (t % self.step_ms) as f64 / self.step_ms as f64;
        self.point(i) * (1.0 - frac) + self.point(i + 1) * frac
    }

    /// The mean load over `[t0, t1)` of the piecewise-linear curve through
    /// the points: a step shorter than the trace's interpolates (an hourly
    /// trace at a 1-minute step), a longer one averages (a per-second trace
    /// at 15 s).
    pub fn mean(&self, t0: u64, t1: u64) -> f64 {
        if t1 <= t0 {
            return self.at(t0);
        }
        let mut area = 0.0;
        let mut a = t0;
        while a < t1 {
            let seg_end = (a / self.step_ms + 1) * self.step_ms;
            let b = seg_end.min(t1);
            area += 0.5 * (self.at(a) + self.at_left_of(b)) * (b - a) as f64;
            a = b;
        }
        area / (t1 - t0) as f64
    }

    /// The limit from the left at `t` (differs from `at` only at a point).
    fn at_left_of(&self, t: u64) -> f64 {
        if t.is_multiple_of(self.step_ms) && t > 0 {
            // The segment ending at point i approaches point i.
            self.point((t / self.step_ms) as usize)
        } else {
            self.at(t)
        }
    }
}

/// A built-in synthetic load shape, so `simulate` works with no file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// `base` for the first third, then `peak`.
    Step,
    /// `base`, rising linearly to `peak` over the middle third, then held.
    Ramp,
    /// `base`, a jump to `peak` at one third lasting 10 minutes, then an
    /// exponential decay back (half-life 10 minutes).
    FlashCrowd,
    /// A daily sine between `base` (04:00) and `peak` (16:00) with 5%
    /// Gaussian noise.
    Diurnal,
    /// Web traffic as measured: the diurnal sine, self-similar bursts
    /// (Hurst 0.8), quiet periods and Poisson arrivals (see [`web`]).
    Web,
}

/// The diurnal shape's Gaussian noise: its standard deviation, relative
/// to the level.
pub const DIURNAL_NOISE: f64 = 0.05;

/// A shape's noise as a replay asks for it; `None` leaves the shape's own.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Noise {
    /// Its size ([`Shape::default_noise`]).
    pub size: Option<f64>,
    /// The web shape's shortest burst: the ON/OFF sources' shortest
    /// period, ms ([`web::BURST_PERIOD_MS`]).
    pub burst_period_ms: Option<DurationMs>,
}

impl Shape {
    /// Every shape, by its command-line name.
    pub const ALL: [(&'static str, Shape); 5] = [
        ("step", Shape::Step),
        ("ramp", Shape::Ramp),
        ("flash-crowd", Shape::FlashCrowd),
        ("diurnal", Shape::Diurnal),
        ("web", Shape::Web),
    ];

    /// The shape called `name`.
    pub fn parse(name: &str) -> Option<Shape> {
        Shape::ALL.iter().find(|(n, _)| *n == name).map(|(_, s)| *s)
    }

    /// How much noise the shape has unless told otherwise: diurnal's
    /// Gaussian standard deviation (5%), web's change of the level per
    /// standard deviation of its bursts ([`web::BURST`]); `None` for the
    /// shapes without noise.
    pub fn default_noise(self) -> Option<f64> {
        match self {
            Shape::Diurnal => Some(DIURNAL_NOISE),
            Shape::Web => Some(web::BURST),
            Shape::Step | Shape::Ramp | Shape::FlashCrowd => None,
        }
    }

    /// Generate `duration_ms` of the shape at `step_ms`, between `base` and
    /// `peak` requests per second. `seed` fixes the noise, `noise` sets
    /// its size and the web shape's burst period (ignored by the shapes
    /// without noise).
    pub fn generate(
        self,
        duration_ms: DurationMs,
        step_ms: DurationMs,
        (base, peak): (f64, f64),
        seed: u64,
        noise: Noise,
    ) -> Trace {
        let n = duration_ms.div_ceil(step_ms).max(2) as usize;
        let period = noise.burst_period_ms.unwrap_or(web::BURST_PERIOD_MS);
        let noise = noise.size.or(self.default_noise()).unwrap_or(0.0);
        if self == Shape::Web {
            let values = web::generate(n, step_ms, (base, peak), seed, (noise, period));
            return Trace { step_ms, values };
        }
        let mut rng = SplitMix(seed);
        let third = duration_ms as f64 / 3.0;
        let values = (0..n)
            .map(|i| {
                let t = (i as u64 * step_ms) as f64;
                let v = match self {
                    Shape::Step => {
                        if t < third {
                            base
                        } else {
                            peak
                        }
                    }
                    Shape::Ramp => {
                        let f = ((t - third) / third).clamp(0.0, 1.0);
                        base + (peak - base) * f
                    }
                    Shape::FlashCrowd => {
                        const TEN_MIN: f64 = 600_000.0;
                        if t < third {
                            base
                        } else if t < third + TEN_MIN {
                            peak
                        } else {
                            let half_lives = (t - third - TEN_MIN) / TEN_MIN;
                            base + (peak - base) * 0.5f64.powf(half_lives)
                        }
                    }
                    Shape::Diurnal => {
                        let day = 86_400_000.0;
                        let phase = (t / day - 4.0 / 24.0) * std::f64::consts::TAU;
                        let mid = base + (peak - base) * (0.5 - 0.5 * phase.cos());
                        mid * (1.0 + noise * rng.gaussian())
                    }
                    Shape::Web => unreachable!("generated above"),
                };
                v.max(0.0)
            })
            .collect();
        Trace { step_ms, values }
    }
}

/// SplitMix64: a small, fixed, dependency-free generator for the noise
/// (the same seed always gives the same trace).
#[derive(Debug, Clone)]
pub struct SplitMix(pub u64);

impl SplitMix {
    /// The next 64 random bits.
    pub fn bits(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform draw in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.bits() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A standard normal draw (Box-Muller).
    pub fn gaussian(&mut self) -> f64 {
        let u1 = self.uniform().max(f64::MIN_POSITIVE);
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

/// The service the trace drives.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceModel {
    /// Requests per second one replica serves at full use. Defaults to 100.
    pub capacity: f64,
    /// Requests one replica works on at once. Defaults to 8.
    pub workers: u32,
    /// From a replica's creation to its first request. Defaults to 60 s.
    pub startup_ms: DurationMs,
    /// A request that waits longer than this fails. Defaults to 10 s.
    pub timeout_ms: DurationMs,
    /// Memory use of an idle replica, as a fraction of its limit. Defaults
    /// to 0.30.
    pub memory_idle: f64,
    /// Memory use added at full CPU, as a fraction of the limit. Defaults
    /// to 0.40.
    pub memory_busy: f64,
}

impl Default for ServiceModel {
    fn default() -> Self {
        ServiceModel {
            capacity: 100.0,
            workers: 8,
            startup_ms: 60_000,
            timeout_ms: 10_000,
            memory_idle: 0.30,
            memory_busy: 0.40,
        }
    }
}

/// What the service looked like over one step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observation {
    /// Arrivals, requests per second.
    pub load: f64,
    /// Replicas that exist (the ones that cost money).
    pub replicas: u32,
    /// Replicas serving requests.
    pub ready: u32,
    /// CPU as a fraction of the limit, averaged over all replicas (starting
    /// ones are idle), as Docker's stats report it.
    pub cpu: f64,
    /// Memory as a fraction of the limit, averaged over all replicas.
    pub memory: f64,
    /// Requests waiting, over all replicas.
    pub queue_depth: f64,
    /// p95 response time in seconds (the timeout when nothing serves).
    pub p95: f64,
    /// Failed requests as a fraction of arrivals.
    pub error_rate: f64,
}

/// A replica's p95 and mean queue as functions of its utilisation, on a
/// grid filled as it is used and read by linear interpolation: a year at a
/// 1-minute step asks for half a million points of one smooth curve, and
/// each exact one is a root search.
#[derive(Debug, Clone)]
struct Curves {
    queue: Queue,
    /// (p95, mean waiting) at utilisation `i / GRID`; NaN until computed.
    points: Vec<(f64, f64)>,
}

/// Grid points per unit of utilisation.
const GRID: f64 = 2000.0;

/// The highest utilisation on the grid: beyond it the service counts as
/// saturated.
const SATURATED: f64 = 0.98;

impl Curves {
    fn new(queue: Queue) -> Curves {
        Curves {
            queue,
            points: vec![(f64::NAN, f64::NAN); (SATURATED * GRID) as usize + 1],
        }
    }

    fn point(&mut self, i: usize) -> (f64, f64) {
        if self.points[i].0.is_nan() {
            let arrivals = i as f64 / GRID * self.queue.capacity();
            self.points[i] = (
                self.queue.response_time_quantile(arrivals, 0.95),
                self.queue.mean_waiting(arrivals),
            );
        }
        self.points[i]
    }

    /// The lowest utilisation on the grid whose p95 is above `slo` (the
    /// p95 rises with the utilisation), else [`SATURATED`]: no utilisation
    /// from it up meets `slo`.
    fn first_missing(&mut self, slo: f64) -> f64 {
        let (mut lo, mut hi) = (0, self.points.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            if self.point(mid).0 > slo {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        if lo == self.points.len() {
            SATURATED
        } else {
            lo as f64 / GRID
        }
    }

    /// (p95, mean waiting) at utilisation `u`, at most [`SATURATED`].
    fn at(&mut self, u: f64) -> (f64, f64) {
        let x = u.clamp(0.0, SATURATED) * GRID;
        let i = (x.floor() as usize).min(self.points.len() - 1);
        let j = (i + 1).min(self.points.len() - 1);
        let f = x - i as f64;
        let (a, b) = (self.point(i), self.point(j));
        (a.0 + (b.0 - a.0) * f, a.1 + (b.1 - a.1) * f)
    }
}

/// The service's replicas and backlog as time passes.
#[derive(Debug, Clone)]
pub struct Service {
    model: ServiceModel,
    queue: Queue,
    curves: Curves,
    /// When each replica becomes ready, oldest first.
    ready_at: Vec<TimestampMs>,
    /// Requests queued beyond what M/M/k holds, per ready replica (the
    /// fluid backlog of an overload).
    backlog: f64,
}

impl Service {
    /// A service with `replicas` replicas, all ready at `now`.
    pub fn new(model: ServiceModel, replicas: u32, now: TimestampMs) -> Service {
        let queue = Queue::from_capacity(model.capacity, model.workers);
        Service {
            model,
            queue,
            curves: Curves::new(queue),
            ready_at: vec![now; replicas as usize],
            backlog: 0.0,
        }
    }

    /// Replicas that exist.
    pub fn replicas(&self) -> u32 {
        self.ready_at.len() as u32
    }

    /// Replicas ready at `now`.
    pub fn ready(&self, now: TimestampMs) -> u32 {
        self.ready_at.iter().filter(|&&t| t <= now).count() as u32
    }

    /// When the last replica still starting becomes ready (`now` if none).
    pub fn all_ready_at(&self, now: TimestampMs) -> TimestampMs {
        self.ready_at.iter().copied().max().unwrap_or(now).max(now)
    }

    /// Scale to `target` at `now`: new replicas start (ready after the
    /// start-up delay); removal takes the newest first, so replicas still
    /// starting go before serving ones.
    pub fn scale_to(&mut self, target: u32, now: TimestampMs) {
        let target = target as usize;
        while self.ready_at.len() < target {
            self.ready_at.push(now + self.model.startup_ms as i64);
        }
        self.ready_at.truncate(target);
    }

    /// Serve `load` requests per second over `[now, now + step)`.
    pub fn advance(&mut self, now: TimestampMs, step_ms: DurationMs, load: f64) -> Observation {
        let replicas = self.replicas();
        // Readiness is judged at the step's midpoint, so a replica that
        // becomes ready mid-step serves (on average) half of it.
        let ready = self.ready(now + step_ms as i64 / 2);
        let dt = step_ms as f64 / 1000.0;
        let timeout = self.model.timeout_ms as f64 / 1000.0;
        let m = &self.model;
        if ready == 0 {
            self.backlog = 0.0;
            return Observation {
                load,
                replicas,
                ready,
                cpu: 0.0,
                memory: m.memory_idle,
                queue_depth: 0.0,
                p95: timeout,
                error_rate: if load > 0.0 { 1.0 } else { 0.0 },
            };
        }
        let cap = self.queue.capacity();
        let per = load / f64::from(ready);
        // The fluid backlog: grows by the excess over capacity, drains by
        // the spare; what would wait past the timeout fails.
        let mut backlog = self.backlog + (per - cap) * dt;
        let limit = timeout * cap;
        let dropped = (backlog - limit).max(0.0);
        backlog = backlog.clamp(0.0, limit);
        self.backlog = backlog;
        let busy = if backlog > 0.0 {
            1.0
        } else {
            (per / cap).min(1.0)
        };
        let (waiting, p95) = if backlog > 0.0 || per >= SATURATED * cap {
            // Saturated: every worker busy; the p95 is the backlog's wait
            // plus the queue's p95 just below saturation.
            let (p95, waiting) = self.curves.at(SATURATED);
            (backlog + waiting, backlog / cap + p95)
        } else {
            let (p95, waiting) = self.curves.at(per / cap);
            (waiting, p95)
        };
        let share = f64::from(ready) / f64::from(replicas);
        let error_rate = if load > 0.0 {
            (dropped * f64::from(ready) / (load * dt)).min(1.0)
        } else {
            0.0
        };
        Observation {
            load,
            replicas,
            ready,
            cpu: busy * share,
            memory: m.memory_idle + m.memory_busy * busy * share,
            queue_depth: waiting * f64::from(ready),
            p95: p95.min(timeout),
            error_rate,
        }
    }
}

/// The fewest replica-hours any scaler could spend on a load without an
/// SLO-violation step: a yardstick for a policy's replica-hours, not a
/// count any policy can reach. At every step the replicas must include
/// the fewest ready ones whose p95 meets `slo` at that step's load (no
/// fewer than `min_replicas`), and every replica that must be ready
/// within the model's start-up time, since it exists from its start. It
/// is what a scaler would spend that knew the load ahead and could change
/// the count at every step without limits: a step with fewer ready
/// replicas violates, a backlog only adds to the wait, so no policy
/// spends less without a violation. `None` when no count meets the SLO
/// (a p95 below the service time's own).
pub fn least_replica_hours(
    model: &ServiceModel,
    slo: Slo,
    min_replicas: u32,
    loads: &[f64],
    step_ms: DurationMs,
) -> Option<f64> {
    let queue = Queue::from_capacity(model.capacity, model.workers);
    let mut curves = Curves::new(queue);
    if curves.at(0.0).0 > slo.p95 {
        return None;
    }
    let capacity = queue.capacity();
    let missed = curves.first_missing(slo.p95);
    let ready: Vec<u32> = loads
        .iter()
        .map(|&load| {
            let meets = |n: u32, curves: &mut Curves| {
                let u = load / (f64::from(n) * capacity);
                u < SATURATED && curves.at(u).0 <= slo.p95
            };
            // Fewer replicas run at `missed` or above, which misses the
            // SLO: the search starts there, a few counts below the answer
            // however high the load.
            let mut n = ((load / (missed * capacity)).floor() as u32).max(min_replicas.max(1));
            while !meets(n, &mut curves) {
                n += 1;
            }
            n
        })
        .collect();
    Some(paid_replica_hours(model, &ready, step_ms))
}

/// The replica-hours paid for `ready[k]` replicas serving at each step
/// `k`: a replica exists from its creation, a start-up before it serves,
/// so each step pays for the most any step within the start-up ahead
/// needs.
pub fn paid_replica_hours(model: &ServiceModel, ready: &[u32], step_ms: DurationMs) -> f64 {
    let mut paid = Paid::new(model, step_ms);
    for (k, &n) in ready.iter().enumerate().rev() {
        paid.add(k, n);
    }
    paid.replica_hours()
}

/// [`paid_replica_hours`] as the counts come, last step first, so a long
/// run's counts need not be kept.
#[derive(Debug, Clone)]
pub struct Paid {
    ahead: usize,
    step_ms: DurationMs,
    /// The steps (and counts) that can still be a window's highest, their
    /// counts falling, so a long start-up at a short step stays linear.
    highest: VecDeque<(usize, u32)>,
    replica_steps: u64,
}

impl Paid {
    /// Nothing paid yet, for steps of `step_ms`.
    pub fn new(model: &ServiceModel, step_ms: DurationMs) -> Paid {
        // A replica is ready from the middle of a step at the earliest (as
        // `Service::advance` judges it) and exists from its start: the
        // steps it must exist in before it serves.
        let ahead = (model.startup_ms.saturating_sub(step_ms / 2) / step_ms.max(1)) as usize;
        Paid {
            ahead,
            step_ms,
            highest: VecDeque::new(),
            replica_steps: 0,
        }
    }

    /// Step `k` serves with `ready` replicas; `k` falls by one each call.
    pub fn add(&mut self, k: usize, ready: u32) {
        while self.highest.back().is_some_and(|&(_, n)| n <= ready) {
            self.highest.pop_back();
        }
        self.highest.push_back((k, ready));
        if self
            .highest
            .front()
            .is_some_and(|&(j, _)| j > k + self.ahead)
        {
            self.highest.pop_front();
        }
        self.replica_steps += u64::from(self.highest[0].1);
    }

    /// The replica-hours paid for the steps added.
    pub fn replica_hours(&self) -> f64 {
        self.replica_steps as f64 * self.step_ms as f64 / 3_600_000.0
    }
}

/// The signals the simulator provides, in the order [`Observation::values`] gives
/// them: the well-known ones (the replica count last), the load itself
/// as `requests-per-second` (what a Prometheus rate() would give), and
/// whether the step violated the run's SLO as `slo-violation` (1 or 0: its
/// mean over a span is the share of the span in violation).
pub fn signals() -> [SignalId; 8] {
    let [cpu, memory, queue, p95, errors, replicas] = SignalId::WELL_KNOWN;
    [
        cpu,
        memory,
        queue,
        p95,
        errors,
        replicas,
        SignalId::Custom(REQUESTS_PER_SECOND.into()),
        SignalId::Custom(SLO_VIOLATION.into()),
    ]
}

/// The name of the simulator's load signal.
pub const REQUESTS_PER_SECOND: &str = "requests-per-second";

impl Observation {
    /// The values of [`signals`], in order, the violation judged by `slo`.
    pub fn values(&self, slo: Slo) -> [f64; 8] {
        [
            self.cpu,
            self.memory,
            self.queue_depth,
            self.p95,
            self.error_rate,
            f64::from(self.replicas),
            self.load,
            if slo.violated_by(self) { 1.0 } else { 0.0 },
        ]
    }
}

/// What one policy did over a whole run: the results table's row.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tally {
    /// Time the SLO was violated, ms.
    pub violation_ms: u64,
    /// Replica time paid for (starting replicas included), replica-ms.
    pub replica_ms: f64,
    /// Scale actions taken.
    pub actions: u32,
    /// Actions in the opposite direction to the previous one, within
    /// [`REVERSAL_WINDOW_MS`] of it.
    pub reversals: u32,
    /// Replicas created by scale-ups (each a container start).
    pub container_starts: u64,
    /// The first and the last action's time.
    action_span: Option<(TimestampMs, TimestampMs)>,
    /// The largest replica count.
    pub peak_replicas: u32,
    /// Requests that failed, in total.
    pub failed_requests: f64,
    /// Requests that arrived, in total.
    pub requests: f64,
    /// Steps tallied and the sum of their p95s (for the mean).
    steps: u64,
    p95_sum: f64,
    last_action: Option<(TimestampMs, Direction)>,
}

/// A scale in the other direction within this long counts as a reversal.
pub const REVERSAL_WINDOW_MS: u64 = 10 * 60_000;

/// The service level the results are judged by.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Slo {
    /// A step whose p95 response time exceeds this violates. Seconds.
    pub p95: f64,
    /// A step whose error rate exceeds this violates. A fraction.
    pub error_rate: f64,
}

impl Slo {
    /// Whether a step with `obs` violates the SLO.
    pub fn violated_by(&self, obs: &Observation) -> bool {
        obs.p95 > self.p95 || obs.error_rate > self.error_rate
    }
}

impl Tally {
    /// Count one step of `step_ms`.
    pub fn observe(&mut self, obs: &Observation, step_ms: DurationMs, slo: Slo) {
        if slo.violated_by(obs) {
            self.violation_ms += step_ms;
        }
        self.replica_ms += f64::from(obs.replicas) * step_ms as f64;
        self.peak_replicas = self.peak_replicas.max(obs.replicas);
        let secs = step_ms as f64 / 1000.0;
        self.requests += obs.load * secs;
        self.failed_requests += obs.load * secs * obs.error_rate;
        self.steps += 1;
        self.p95_sum += obs.p95;
    }

    /// Count one scale action, from `from` to `to` replicas.
    pub fn action(&mut self, at: TimestampMs, from: u32, to: u32) {
        let direction = Direction::between(from, to);
        self.actions += 1;
        self.container_starts += u64::from(to.saturating_sub(from));
        self.action_span = Some(self.action_span.map_or((at, at), |(first, _)| (first, at)));
        if let Some((t, d)) = self.last_action
            && d != direction
            && (at - t) as u64 <= REVERSAL_WINDOW_MS
        {
            self.reversals += 1;
        }
        self.last_action = Some((at, direction));
    }

    /// The mean time between two actions, minutes: `None` with fewer than
    /// two.
    pub fn minutes_between_actions(&self) -> Option<f64> {
        let (first, last) = self.action_span?;
        (self.actions > 1).then(|| (last - first) as f64 / 60_000.0 / f64::from(self.actions - 1))
    }

    /// SLO-violation minutes.
    pub fn violation_minutes(&self) -> f64 {
        self.violation_ms as f64 / 60_000.0
    }

    /// Replica-hours.
    pub fn replica_hours(&self) -> f64 {
        self.replica_ms / 3_600_000.0
    }

    /// The mean p95 over all steps, seconds.
    pub fn mean_p95(&self) -> f64 {
        if self.steps == 0 {
            0.0
        } else {
            self.p95_sum / self.steps as f64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_hourly_trace_is_interpolated_between_points() {
        let t = Trace {
            step_ms: 3_600_000,
            values: vec![100.0, 200.0, 200.0],
        };
        assert_eq!(t.at(1_800_000), 150.0);
        // The mean over the first hour of a line from 100 to 200 is 150.
        assert!((t.mean(0, 3_600_000) - 150.0).abs() < 1e-9);
        // A minute halfway: 149.58..150.42, mean 150.
        assert!((t.mean(1_770_000, 1_830_000) - 150.0).abs() < 1e-9);
    }

    #[test]
    fn a_per_second_trace_is_averaged_over_a_longer_step() {
        let t = Trace {
            step_ms: 1000,
            values: vec![0.0, 10.0, 0.0, 10.0, 0.0],
        };
        // Over [0, 4 s) the piecewise-linear curve averages 5.
        assert!((t.mean(0, 4000) - 5.0).abs() < 1e-9);
    }

    #[test]
    fn shapes_stay_between_base_and_peak_and_are_reproducible() {
        for (name, shape) in Shape::ALL {
            let a = shape.generate(86_400_000, 60_000, (100.0, 500.0), 7, Noise::default());
            let b = shape.generate(86_400_000, 60_000, (100.0, 500.0), 7, Noise::default());
            assert_eq!(a, b, "{name}");
            assert_eq!(a.values.len(), 1440, "{name}");
            let (lo, hi) = a
                .values
                .iter()
                .fold((f64::MAX, f64::MIN), |(l, h), &v| (l.min(v), h.max(v)));
            // Diurnal noise (5%, Gaussian) may cross the bounds a little;
            // web's lulls halve the level and its bursts add to it.
            let (low, high) = if shape == Shape::Web {
                (40.0, 900.0)
            } else {
                (75.0, 600.0)
            };
            assert!(lo >= low && hi <= high, "{name}: {lo}..{hi}");
            assert!(hi - lo > 300.0, "{name} barely moves: {lo}..{hi}");
        }
        let step = Shape::Step.generate(3_000_000, 1000, (1.0, 9.0), 0, Noise::default());
        assert_eq!(step.values[999], 1.0);
        assert_eq!(step.values[1000], 9.0);
    }

    #[test]
    fn a_new_replica_serves_only_after_its_startup() {
        let mut s = Service::new(ServiceModel::default(), 2, 0);
        s.scale_to(3, 0);
        assert_eq!(s.replicas(), 3);
        assert_eq!(s.ready(59_999), 2);
        assert_eq!(s.ready(60_000), 3);
        let o = s.advance(0, 15_000, 150.0);
        assert_eq!((o.replicas, o.ready), (3, 2));
        // Two of three replicas at 75% each: docker's average is 50%.
        assert!((o.cpu - 0.5).abs() < 1e-9, "{}", o.cpu);
        // Scaling down removes the starting replica first.
        s.scale_to(2, 1000);
        assert_eq!(s.ready(1000), 2);
    }

    #[test]
    fn overload_builds_a_backlog_then_fails_requests_past_the_timeout() {
        let mut s = Service::new(ServiceModel::default(), 1, 0);
        let calm = s.advance(0, 15_000, 50.0);
        assert_eq!(calm.error_rate, 0.0);
        assert!(calm.p95 < 0.5, "{}", calm.p95);
        let first = s.advance(15_000, 15_000, 150.0);
        // 50 req/s over capacity for 15 s: 750 waiting, 7.5 s of backlog.
        assert!(first.p95 > 7.0 && first.error_rate == 0.0, "{first:?}");
        let second = s.advance(30_000, 15_000, 150.0);
        assert!(second.error_rate > 0.2, "{second:?}");
        assert_eq!(second.cpu, 1.0);
        // Load falls: the backlog drains.
        let after = s.advance(45_000, 60_000, 20.0);
        assert_eq!(after.error_rate, 0.0);
        assert!(after.p95 < 0.5, "{after:?}");
    }

    #[test]
    fn the_interpolated_curves_stay_within_a_percent_of_the_exact_values() {
        let model = ServiceModel::default();
        let queue = Queue::from_capacity(model.capacity, model.workers);
        let mut curves = Curves::new(queue);
        for k in 0..970 {
            let u = k as f64 / 1000.0 + 0.00037;
            let (p95, waiting) = curves.at(u);
            let exact = queue.response_time_quantile(u * model.capacity, 0.95);
            assert!((p95 - exact).abs() <= 0.01 * exact, "{u}: {p95} vs {exact}");
            let exact = queue.mean_waiting(u * model.capacity);
            assert!(
                (waiting - exact).abs() <= 0.01 * exact + 1e-6,
                "{u}: {waiting} vs {exact}"
            );
        }
    }

    #[test]
    fn no_ready_replica_fails_everything() {
        let mut s = Service::new(ServiceModel::default(), 0, 0);
        let o = s.advance(0, 15_000, 10.0);
        assert_eq!(o.error_rate, 1.0);
        assert_eq!(o.p95, 10.0);
    }

    #[test]
    fn tally_counts_violations_costs_and_reversals() {
        let slo = Slo {
            p95: 1.0,
            error_rate: 0.01,
        };
        let mut t = Tally::default();
        let ok = Observation {
            load: 10.0,
            replicas: 2,
            ready: 2,
            cpu: 0.1,
            memory: 0.3,
            queue_depth: 0.0,
            p95: 0.2,
            error_rate: 0.0,
        };
        t.observe(&ok, 60_000, slo);
        t.observe(&Observation { p95: 2.0, ..ok }, 60_000, slo);
        t.observe(
            &Observation {
                error_rate: 0.5,
                ..ok
            },
            60_000,
            slo,
        );
        assert_eq!(t.violation_minutes(), 2.0);
        assert!((t.replica_hours() - 0.1).abs() < 1e-12);
        assert_eq!(t.minutes_between_actions(), None);
        t.action(0, 2, 4);
        t.action(5 * 60_000, 4, 3); // reversal
        t.action(30 * 60_000, 3, 4); // too late to count
        t.action(31 * 60_000, 4, 5); // same direction
        assert_eq!((t.actions, t.reversals), (4, 1));
        assert_eq!(t.container_starts, 4);
        assert_eq!(t.minutes_between_actions(), Some(31.0 / 3.0));
    }

    #[test]
    fn the_least_replica_hours_start_replicas_ahead_of_the_load_that_needs_them() {
        let model = ServiceModel::default();
        let slo = Slo {
            p95: 0.5,
            error_rate: 0.01,
        };
        // 1000 req/s needs 11 replicas at a 0.5 s p95 (10 would be at
        // 100%); no load needs the minimum.
        let mut loads = vec![0.0; 8];
        loads.extend([1000.0; 8]);
        let hours = |min: u32| least_replica_hours(&model, slo, min, &loads, 15_000).unwrap();
        // The 11 exist 3 steps (45 s of the 60 s start-up, readiness being
        // judged mid-step) before the load: 5 x 1 + 11 x 11 steps.
        assert!(
            (hours(1) - 126.0 * 15.0 / 3600.0).abs() < 1e-9,
            "{}",
            hours(1)
        );
        assert!(
            (hours(2) - 131.0 * 15.0 / 3600.0).abs() < 1e-9,
            "{}",
            hours(2)
        );
        // A replica that starts ready within one step is needed only then.
        let instant = ServiceModel {
            startup_ms: 0,
            ..model.clone()
        };
        let h = least_replica_hours(&instant, slo, 1, &loads, 15_000).unwrap();
        assert!((h - 96.0 * 15.0 / 3600.0).abs() < 1e-9, "{h}");
        // On a noisy load, each step's count (alone, no start-up) and the
        // highest over the 3 steps ahead summed by hand give the same.
        let mut rng = SplitMix(7);
        let noisy: Vec<f64> = (0..500).map(|_| rng.uniform() * 2000.0).collect();
        let alone = |load: f64| {
            let h = least_replica_hours(&instant, slo, 1, &[load], 15_000).unwrap();
            (h * 3600.0 / 15.0).round() as u64
        };
        let counts: Vec<u64> = noisy.iter().map(|&l| alone(l)).collect();
        let by_hand: u64 = (0..counts.len())
            .map(|k| *counts[k..(k + 4).min(counts.len())].iter().max().unwrap())
            .sum();
        let h = least_replica_hours(&model, slo, 1, &noisy, 15_000).unwrap();
        assert_eq!((h * 3600.0 / 15.0).round() as u64, by_hand);
        // An SLO faster than the service itself: no count meets it.
        let strict = Slo { p95: 0.1, ..slo };
        assert_eq!(least_replica_hours(&model, strict, 1, &loads, 15_000), None);
    }

    #[test]
    fn the_least_count_of_a_load_of_hundreds_of_thousands_of_replicas_is_the_smallest_that_meets() {
        let model = ServiceModel {
            startup_ms: 0,
            ..ServiceModel::default()
        };
        let slo = Slo {
            p95: 0.5,
            error_rate: 0.01,
        };
        let queue = Queue::from_capacity(model.capacity, model.workers);
        for load in [1_000.0, 4.2e7, 9.9e7] {
            let h = least_replica_hours(&model, slo, 1, &[load], 3_600_000).unwrap();
            let n = h.round();
            assert_eq!(n, h, "{load}: {h}");
            let p95 = |n: f64| queue.response_time_quantile(load / n, 0.95);
            // The grid's interpolation is within a hair of the exact curve.
            assert!(p95(n) <= slo.p95 + 1e-3, "{load}: {n} gives {}", p95(n));
            assert!(p95(n - 1.0) > slo.p95 - 1e-3, "{load}: {} meets", n - 1.0);
        }
    }
}
