//! A discrete-event simulator that drives the engine with Poisson arrivals and
//! exponential handle times, and the Erlang C formulas it is checked against.
//! Deterministic for a given seed; no IO.

use centralino_domain::{Channel, InteractionId};

use crate::{
    AgentConfig, ChannelMap, Engine, EngineError, EngineSettings, Enqueue, Event, Presence,
    QueueConfig,
};

/// A small, fast, seedable generator (SplitMix64); good enough for simulation.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// Exponentially distributed with the given mean.
    pub fn exp(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.unit()).ln()
    }
}

/// Erlang C: probability of waiting and average speed of answer for `offered`
/// Erlangs on `agents` servers with average handle time `aht_s`.
pub fn erlang_c(offered: f64, agents: u32, aht_s: f64) -> (f64, f64) {
    let n = f64::from(agents);
    if offered >= n {
        return (1.0, f64::INFINITY);
    }
    // Erlang B by the stable recursion, then C from B.
    let mut b = 1.0;
    for k in 1..=agents {
        b = offered * b / (f64::from(k) + offered * b);
    }
    let c = n * b / (n - offered * (1.0 - b));
    (c, c * aht_s / (n - offered))
}

/// What a simulation run measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SimResult {
    pub calls: u64,
    pub waited: u64,
    pub total_wait_ms: f64,
    pub within_20s: u64,
    /// Simulated time covered, in seconds.
    pub simulated_s: f64,
}

impl SimResult {
    pub fn p_wait(&self) -> f64 {
        self.waited as f64 / self.calls as f64
    }
    pub fn asa_s(&self) -> f64 {
        self.total_wait_ms / self.calls as f64 / 1000.0
    }
    pub fn service_level(&self) -> f64 {
        self.within_20s as f64 / self.calls as f64
    }
}

/// Runs `calls` voice calls through one queue served by `agents` agents: arrivals
/// Poisson at `offered / aht_s` per second, handle times exponential with mean
/// `aht_s`, offers accepted at once, no wrap-up. Time runs in microseconds (the
/// engine's unit is abstract), so rounding does not bias short waits.
/// `progress` is called every 10 % of the calls.
pub fn simulate(
    offered: f64,
    agents: u32,
    aht_s: f64,
    calls: u64,
    seed: u64,
    mut progress: impl FnMut(u64),
) -> Result<SimResult, EngineError> {
    const UNIT: f64 = 1_000_000.0; // engine ticks per second
    let settings = EngineSettings {
        offer_timeout_ms: ChannelMap::all(crate::config::MAX_DURATION_MS),
        wrap_up_ms: ChannelMap::all(0),
        max_missed_offers: 0,
        ..EngineSettings::default()
    };
    let mut engine = Engine::new(settings, 0)?;
    engine.upsert_queue(QueueConfig::new("sim", &[Channel::Voice]), 0)?;
    for a in 0..agents {
        let name = format!("agent-{a}");
        engine.upsert_agent(AgentConfig::new(name.clone()), 0)?;
        engine.set_presence(&name, Presence::Available, 0)?;
    }
    engine.drain_events().for_each(drop);
    let mut rng = Rng::new(seed);
    let mean_gap = aht_s / offered * UNIT;
    let mean_handle = aht_s * UNIT;
    let mut arrivals: std::collections::HashMap<InteractionId, u64> = Default::default();
    // (end time, interaction, agent)
    let mut busy: std::collections::BinaryHeap<std::cmp::Reverse<(u64, InteractionId, u32)>> =
        Default::default();
    let mut next_arrival = rng.exp(mean_gap).round() as u64;
    let mut result = SimResult {
        calls: 0,
        waited: 0,
        total_wait_ms: 0.0,
        within_20s: 0,
        simulated_s: 0.0,
    };
    let mut created = 0u64;
    let mut now;
    let step = (calls / 10).max(1);
    while result.calls < calls {
        let next_end = busy.peek().map(|r| r.0.0);
        if created < calls && next_end.is_none_or(|e| next_arrival <= e) {
            now = next_arrival;
            let id = InteractionId::new();
            arrivals.insert(id, now);
            engine.enqueue(
                Enqueue {
                    id,
                    queue: "sim".into(),
                    channel: Channel::Voice,
                    priority: 0,
                    arrived_at: now,
                    preferred_agent: None,
                },
                now,
            )?;
            created += 1;
            next_arrival = now + rng.exp(mean_gap).round().max(1.0) as u64;
        } else if let Some(std::cmp::Reverse((end, id, agent))) = busy.pop() {
            now = end;
            engine.complete(&format!("agent-{agent}"), id, Some(0), now)?;
        } else {
            break;
        }
        let offers: Vec<(InteractionId, String)> = engine
            .drain_events()
            .filter_map(|e| match e {
                Event::Offered {
                    interaction, agent, ..
                } => Some((interaction, agent.to_string())),
                _ => None,
            })
            .collect();
        for (id, agent) in offers {
            engine.accept(&agent, id, now)?;
            let arrived = arrivals.remove(&id).unwrap_or(now);
            let wait = now - arrived;
            result.calls += 1;
            if wait > 0 {
                result.waited += 1;
            }
            result.total_wait_ms += wait as f64 / UNIT * 1000.0;
            if (wait as f64) <= 20.0 * UNIT {
                result.within_20s += 1;
            }
            if result.calls.is_multiple_of(step) {
                progress(result.calls);
            }
            let n: u32 = agent
                .strip_prefix("agent-")
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            let handle = rng.exp(mean_handle).round().max(1.0) as u64;
            busy.push(std::cmp::Reverse((now + handle, id, n)));
        }
        engine.drain_events().for_each(drop);
        result.simulated_s = now as f64 / UNIT;
    }
    Ok(result)
}

/// The same experiment without the engine: a plain first-come-first-served
/// M/M/c queue (a counter of free agents and a FIFO), drawing the same random
/// numbers in the same order as [`simulate`]. With the same seed both must
/// produce the same waits; what remains between either and Erlang C is the
/// sampling noise of the run.
pub fn simulate_fifo(offered: f64, agents: u32, aht_s: f64, calls: u64, seed: u64) -> SimResult {
    const UNIT: f64 = 1_000_000.0;
    let mut rng = Rng::new(seed);
    let mean_gap = aht_s / offered * UNIT;
    let mean_handle = aht_s * UNIT;
    let mut queue = std::collections::VecDeque::new();
    let mut ends = std::collections::BinaryHeap::new();
    let mut free = agents;
    let mut next_arrival = rng.exp(mean_gap).round() as u64;
    let mut created = 0;
    let mut r = SimResult {
        calls: 0,
        waited: 0,
        total_wait_ms: 0.0,
        within_20s: 0,
        simulated_s: 0.0,
    };
    let mut now;
    while r.calls < calls {
        let next_end = ends.peek().map(|e: &std::cmp::Reverse<u64>| e.0);
        if created < calls && next_end.is_none_or(|e| next_arrival <= e) {
            now = next_arrival;
            queue.push_back(now);
            created += 1;
            next_arrival = now + rng.exp(mean_gap).round().max(1.0) as u64;
        } else if let Some(std::cmp::Reverse(end)) = ends.pop() {
            now = end;
            free += 1;
        } else {
            break;
        }
        while free > 0 {
            let Some(arrived) = queue.pop_front() else {
                break;
            };
            free -= 1;
            let wait = now - arrived;
            r.calls += 1;
            r.waited += u64::from(wait > 0);
            r.total_wait_ms += wait as f64 / UNIT * 1000.0;
            r.within_20s += u64::from(wait as f64 <= 20.0 * UNIT);
            let handle = rng.exp(mean_handle).round().max(1.0) as u64;
            ends.push(std::cmp::Reverse(now + handle));
        }
        r.simulated_s = now as f64 / UNIT;
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erlang_c_matches_the_textbook_figures() {
        // 48 Erlang on 55 agents, AHT 240 s: P(wait) 23.9 %, ASA 8.2 s.
        let (pw, asa) = erlang_c(48.0, 55, 240.0);
        assert!((pw - 0.239).abs() < 0.001, "{pw}");
        assert!((asa - 8.2).abs() < 0.05, "{asa}");
        assert_eq!(erlang_c(10.0, 10, 60.0).0, 1.0);
    }

    #[test]
    fn rng_is_deterministic_and_exp_has_the_right_mean() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        assert_eq!(a.next_u64(), b.next_u64());
        let n = 200_000;
        let mean = (0..n).map(|_| a.exp(3.0)).sum::<f64>() / f64::from(n);
        assert!((mean - 3.0).abs() < 0.05, "{mean}");
    }
}
