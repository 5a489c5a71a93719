//! Queueing maths for one replica: an M/M/k queue (Poisson arrivals, `k`
//! workers, exponential service times, first come first served).
//!
//! The simulator models each ready replica as one such queue (a
//! round-robin load balancer splits arrivals evenly, so replicas do not
//! share a queue), and the `cost-aware` policy uses the same formulas to
//! estimate the p95 latency of a candidate replica count. The formulas are
//! the textbook ones (Erlang C; the sojourn time of M/M/k is a mixture of
//! the service time and a hypoexponential, e.g. Harchol-Balter,
//! *Performance Modeling and Design of Computer Systems*, ch. 14).

/// One replica's queue: `workers` concurrent requests, each served at
/// `service_rate` requests per second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Queue {
    /// Requests one replica works on at once (its worker pool). At least 1.
    pub workers: u32,
    /// Requests per second one worker completes (1 / mean service time).
    pub service_rate: f64,
}

impl Queue {
    /// A replica that serves `capacity` requests per second at full use with
    /// `workers` workers.
    pub fn from_capacity(capacity: f64, workers: u32) -> Queue {
        let workers = workers.max(1);
        Queue {
            workers,
            service_rate: capacity / f64::from(workers),
        }
    }

    /// Requests per second the replica serves at full use.
    pub fn capacity(&self) -> f64 {
        self.service_rate * f64::from(self.workers)
    }

    /// Utilisation at `arrivals` requests per second (may exceed 1).
    pub fn utilisation(&self, arrivals: f64) -> f64 {
        arrivals / self.capacity()
    }

    /// Erlang C: the probability that an arriving request waits. 1 when the
    /// queue is unstable (utilisation 1 or more).
    pub fn wait_probability(&self, arrivals: f64) -> f64 {
        let k = self.workers;
        let a = arrivals / self.service_rate;
        let rho = a / f64::from(k);
        if rho.is_nan() || rho >= 1.0 {
            return 1.0;
        }
        if a <= 0.0 {
            return 0.0;
        }
        // Erlang B by its stable recursion, then C from B.
        let mut b = 1.0;
        for n in 1..=k {
            b = a * b / (f64::from(n) + a * b);
        }
        b / (1.0 - rho * (1.0 - b))
    }

    /// Mean number of requests waiting (not yet served). Infinite when
    /// unstable.
    pub fn mean_waiting(&self, arrivals: f64) -> f64 {
        let rho = self.utilisation(arrivals);
        if rho.is_nan() || rho >= 1.0 {
            return f64::INFINITY;
        }
        self.wait_probability(arrivals) * rho / (1.0 - rho)
    }

    /// The `q` quantile (for example 0.95) of the response time (waiting
    /// plus service) in seconds. Infinite when unstable.
    pub fn response_time_quantile(&self, arrivals: f64, q: f64) -> f64 {
        let mu = self.service_rate;
        let theta = self.capacity() - arrivals.max(0.0);
        if theta <= 0.0 {
            return f64::INFINITY;
        }
        let c = self.wait_probability(arrivals);
        let tail = 1.0 - q;
        let exceed = |t: f64| {
            let service = (-mu * t).exp();
            let waited = if (theta - mu).abs() < 1e-9 * mu {
                (1.0 + mu * t) * service
            } else {
                (theta * service - mu * (-theta * t).exp()) / (theta - mu)
            };
            (1.0 - c) * service + c * waited
        };
        // The service time alone is a lower bound; grow an upper bound,
        // then bisect (P(T > t) falls monotonically in t).
        let mut lo = -tail.ln() / mu * (1.0 - c).max(0.0);
        let mut hi = -tail.ln() / mu.min(theta) * 2.0 + 1.0 / mu;
        while exceed(hi) > tail {
            hi *= 2.0;
        }
        if exceed(lo) <= tail {
            return lo;
        }
        for _ in 0..48 {
            let mid = 0.5 * (lo + hi);
            if exceed(mid) > tail {
                lo = mid;
            } else {
                hi = mid;
            }
            if hi - lo < 1e-4 * hi {
                break;
            }
        }
        hi
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_worker_matches_the_mm1_closed_form() {
        // M/M/1: the response time is exponential with rate mu - lambda.
        let q = Queue {
            workers: 1,
            service_rate: 10.0,
        };
        let p95 = q.response_time_quantile(6.0, 0.95);
        let exact = -(0.05f64).ln() / (10.0 - 6.0);
        assert!((p95 - exact).abs() / exact < 1e-3, "{p95} vs {exact}");
        assert!((q.wait_probability(6.0) - 0.6).abs() < 1e-12);
        assert!((q.mean_waiting(6.0) - 0.36 / 0.4).abs() < 1e-9);
    }

    #[test]
    fn erlang_c_matches_a_published_value() {
        // 10 agents, offered load 8 Erlangs: C = 0.4092 (standard tables).
        let q = Queue {
            workers: 10,
            service_rate: 1.0,
        };
        assert!((q.wait_probability(8.0) - 0.4092).abs() < 5e-4);
    }

    #[test]
    fn latency_rises_with_load_and_is_infinite_past_capacity() {
        let q = Queue::from_capacity(100.0, 8);
        let low = q.response_time_quantile(10.0, 0.95);
        let high = q.response_time_quantile(95.0, 0.95);
        assert!(low < high, "{low} {high}");
        // At low load the p95 is the service time's: ln(20) / mu.
        assert!((low - 20f64.ln() / 12.5).abs() < 0.01, "{low}");
        assert!(q.response_time_quantile(100.0, 0.95).is_infinite());
        assert!(q.mean_waiting(120.0).is_infinite());
        assert_eq!(q.wait_probability(0.0), 0.0);
    }
}
