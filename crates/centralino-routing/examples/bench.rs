//! Routing decision benchmark: 2,000 agents, 50 skills, 100 queues, one core.
//!
//! Drives the engine with a steady mix of new interactions (the queue's strategy
//! picks an agent among the ready, eligible ones) and completions (the freed
//! agent gets the highest-priority waiting work across its queues), keeping the
//! contact center nearly full so both kinds of decision do real work. Each call
//! is timed; the same workload runs through a naive router that scans every
//! agent (and every queue) per decision, in the same process.
//!
//! `cargo run --release -p centralino-routing --example bench -- [decisions]` (default 2000000).

use std::collections::VecDeque;
use std::time::Instant;

use centralino_routing::sim::Rng;
use centralino_routing::{
    AgentConfig, Channel, ChannelMap, Engine, EngineSettings, Enqueue, Event, InteractionId,
    Presence, QueueConfig, SkillRequirement, Strategy,
};

const AGENTS: usize = 2_000;
const SKILLS: usize = 50;
const QUEUES: usize = 100;
const SKILLS_PER_AGENT: usize = 8;
const CAPACITY: [u16; 3] = [1, 3, 5]; // voice, email, sms
const CHANNELS: [Channel; 3] = [Channel::Voice, Channel::Email, Channel::Sms];
/// Interactions kept in the system (held, offered or waiting).
const IN_SYSTEM: usize = 2_600;

struct QueueSpec {
    channel: usize,
    reqs: Vec<(usize, u8)>,
    base: i32,
    strategy: Strategy,
}

struct World {
    agents: Vec<[u8; SKILLS]>,
    queues: Vec<QueueSpec>,
}

fn world(rng: &mut Rng) -> World {
    let mut agents = Vec::with_capacity(AGENTS);
    for _ in 0..AGENTS {
        let mut levels = [0u8; SKILLS];
        let mut n = 0;
        while n < SKILLS_PER_AGENT {
            let s = rng.below(SKILLS as u64) as usize;
            if levels[s] == 0 {
                levels[s] = 1 + rng.below(5) as u8;
                n += 1;
            }
        }
        agents.push(levels);
    }
    let queues = (0..QUEUES)
        .map(|q| {
            let nreq = 1 + (q % 3 == 0) as usize;
            // Every queue must be servable: redraw until at least 30 agents qualify.
            let reqs = loop {
                let mut reqs: Vec<(usize, u8)> = Vec::new();
                while reqs.len() < nreq {
                    let s = rng.below(SKILLS as u64) as usize;
                    if reqs.iter().all(|r| r.0 != s) {
                        reqs.push((s, 1 + rng.below(3) as u8));
                    }
                }
                let eligible = agents
                    .iter()
                    .filter(|levels| reqs.iter().all(|&(s, l)| levels[s] >= l))
                    .count();
                if eligible >= 30 {
                    break reqs;
                }
            };
            QueueSpec {
                channel: if q < 70 {
                    0
                } else if q < 90 {
                    1
                } else {
                    2
                },
                reqs,
                base: rng.below(20) as i32,
                strategy: match q % 10 {
                    0..=5 => Strategy::LongestIdle,
                    6 => Strategy::LeastOccupied,
                    7 | 8 => Strategy::BestProficiency,
                    _ => Strategy::RoundRobin,
                },
            }
        })
        .collect();
    World { agents, queues }
}

/// What both routers must do.
trait Router {
    /// Routes a new interaction; returns the offers/assignments made.
    fn enqueue(
        &mut self,
        id: InteractionId,
        queue: usize,
        now: u64,
        out: &mut Vec<(InteractionId, usize)>,
    );
    /// Frees the agent's slot; returns the offers/assignments made.
    fn complete(
        &mut self,
        agent: usize,
        id: InteractionId,
        now: u64,
        out: &mut Vec<(InteractionId, usize)>,
    );
    /// Confirms an offer (not timed: the engine's accept, a no-op for the naive router).
    fn accept(&mut self, agent: usize, id: InteractionId, now: u64);
}

struct Ours {
    engine: Engine,
    names: Vec<String>,
    queue_names: Vec<String>,
    index: std::collections::HashMap<std::sync::Arc<str>, usize>,
}

impl Ours {
    fn new(w: &World) -> Self {
        let settings = EngineSettings {
            offer_timeout_ms: ChannelMap::all(centralino_routing::MAX_DURATION_MS),
            wrap_up_ms: ChannelMap::all(0),
            ..EngineSettings::default()
        };
        let mut engine = Engine::new(settings, 0).expect("settings");
        let queue_names: Vec<String> = (0..QUEUES).map(|q| format!("queue-{q}")).collect();
        for (q, spec) in w.queues.iter().enumerate() {
            let mut c = QueueConfig::new(queue_names[q].clone(), &[CHANNELS[spec.channel]]);
            c.skills = spec
                .reqs
                .iter()
                .map(|&(s, l)| SkillRequirement::new(format!("skill-{s}"), l))
                .collect();
            c.base_priority = spec.base;
            c.strategy = spec.strategy;
            engine.upsert_queue(c, 0).expect("queue");
        }
        let mut names = Vec::new();
        let mut index = std::collections::HashMap::new();
        for (a, levels) in w.agents.iter().enumerate() {
            let name = format!("agent-{a}");
            let mut cfg = AgentConfig::new(name.clone());
            cfg.capacity = ChannelMap([CAPACITY[0], CAPACITY[1], CAPACITY[2], 0, 0, 0]);
            for (s, &l) in levels.iter().enumerate() {
                if l > 0 {
                    cfg = cfg.skill(format!("skill-{s}"), l);
                }
            }
            engine.upsert_agent(cfg, 0).expect("agent");
            engine
                .set_presence(&name, Presence::Available, 0)
                .expect("presence");
            index.insert(std::sync::Arc::from(name.as_str()), a);
            names.push(name);
        }
        engine.drain_events().for_each(drop);
        Self {
            engine,
            names,
            queue_names,
            index,
        }
    }

    fn collect(&mut self, out: &mut Vec<(InteractionId, usize)>) {
        for e in self.engine.drain_events() {
            if let Event::Offered {
                interaction, agent, ..
            } = e
            {
                out.push((interaction, self.index[&agent]));
            }
        }
    }
}

impl Router for Ours {
    fn enqueue(
        &mut self,
        id: InteractionId,
        queue: usize,
        now: u64,
        out: &mut Vec<(InteractionId, usize)>,
    ) {
        let channel = self
            .engine
            .queue_config(&self.queue_names[queue])
            .expect("queue")
            .channels[0];
        self.engine
            .enqueue(
                Enqueue {
                    id,
                    queue: self.queue_names[queue].clone(),
                    channel,
                    priority: 0,
                    arrived_at: now,
                    preferred_agent: None,
                },
                now,
            )
            .expect("enqueue");
        self.collect(out);
    }
    fn complete(
        &mut self,
        agent: usize,
        id: InteractionId,
        now: u64,
        out: &mut Vec<(InteractionId, usize)>,
    ) {
        self.engine
            .complete(&self.names[agent], id, Some(0), now)
            .expect("complete");
        self.collect(out);
    }
    fn accept(&mut self, agent: usize, id: InteractionId, now: u64) {
        self.engine
            .accept(&self.names[agent], id, now)
            .expect("accept");
        self.engine.drain_events().for_each(drop);
    }
}

/// The baseline: no index at all. A new interaction scans every agent (skills,
/// state, capacity, idle time); a freed agent scans every queue's waiting line.
struct Naive<'w> {
    world: &'w World,
    load: Vec<[u16; 3]>,
    last: Vec<u64>,
    waiting: Vec<VecDeque<(u64, InteractionId)>>,
    by_id: std::collections::HashMap<InteractionId, usize>,
}

impl<'w> Naive<'w> {
    fn new(world: &'w World) -> Self {
        Self {
            world,
            load: vec![[0; 3]; AGENTS],
            last: vec![0; AGENTS],
            waiting: vec![VecDeque::new(); QUEUES],
            by_id: Default::default(),
        }
    }
    fn ready(&self, a: usize, channel: usize) -> bool {
        self.load[a][0] == 0 && self.load[a][channel] < CAPACITY[channel]
    }
    fn eligible(&self, a: usize, q: usize) -> bool {
        self.world.queues[q]
            .reqs
            .iter()
            .all(|&(s, l)| self.world.agents[a][s] >= l)
    }
}

impl Router for Naive<'_> {
    fn enqueue(
        &mut self,
        id: InteractionId,
        queue: usize,
        now: u64,
        out: &mut Vec<(InteractionId, usize)>,
    ) {
        let channel = self.world.queues[queue].channel;
        let mut best: Option<(u64, usize)> = None;
        for a in 0..AGENTS {
            if self.ready(a, channel)
                && self.eligible(a, queue)
                && best.is_none_or(|b| self.last[a] < b.0)
            {
                best = Some((self.last[a], a));
            }
        }
        match best {
            Some((_, a)) => {
                self.load[a][channel] += 1;
                self.last[a] = now;
                self.by_id.insert(id, queue);
                out.push((id, a));
            }
            None => {
                self.waiting[queue].push_back((now, id));
                self.by_id.insert(id, queue);
            }
        }
    }
    fn complete(
        &mut self,
        a: usize,
        id: InteractionId,
        now: u64,
        out: &mut Vec<(InteractionId, usize)>,
    ) {
        let queue = self.by_id.remove(&id).expect("known");
        self.load[a][self.world.queues[queue].channel] -= 1;
        self.last[a] = now;
        loop {
            let mut best: Option<(i64, usize)> = None;
            for q in 0..QUEUES {
                let spec = &self.world.queues[q];
                if let Some(&(arrived, _)) = self.waiting[q].front()
                    && self.ready(a, spec.channel)
                    && self.eligible(a, q)
                {
                    let eff = i64::from(spec.base) * 1_000_000 + 1_000 * (now - arrived) as i64;
                    if best.is_none_or(|b| eff > b.0) {
                        best = Some((eff, q));
                    }
                }
            }
            let Some((_, q)) = best else { return };
            let (_, next) = self.waiting[q].pop_front().expect("head");
            self.load[a][self.world.queues[q].channel] += 1;
            self.by_id.insert(next, q);
            out.push((next, a));
        }
    }
    fn accept(&mut self, _agent: usize, _id: InteractionId, _now: u64) {}
}

struct Figures {
    calls: u64,
    offers: u64,
    total_ns: u64,
    p50: u64,
    p99: u64,
    p999: u64,
    max: u64,
    waiting_avg: f64,
}

fn run(router: &mut dyn Router, decisions: u64, seed: u64, label: &str) -> Figures {
    let mut rng = Rng::new(seed);
    // Interaction ids are made up front: making them is not routing.
    let ids: Vec<InteractionId> = (0..decisions + IN_SYSTEM as u64)
        .map(|_| InteractionId::new())
        .collect();
    let mut next_id = 0;
    let mut held: Vec<(InteractionId, usize)> = Vec::with_capacity(IN_SYSTEM);
    let mut in_system = 0usize;
    let mut out = Vec::new();
    let mut times = Vec::with_capacity(decisions as usize);
    let mut offers = 0;
    let mut waiting_sum = 0u64;
    let mut now = 1u64;
    let warmup = (decisions / 10).max(1_000);
    let started = Instant::now();
    for n in 0..decisions + warmup {
        now += 1 + rng.below(3);
        out.clear();
        let t0 = Instant::now();
        if in_system < IN_SYSTEM || held.is_empty() {
            let q = rng.below(QUEUES as u64) as usize;
            let id = ids[next_id % ids.len()];
            next_id += 1;
            in_system += 1;
            router.enqueue(id, q, now, &mut out);
        } else {
            let k = rng.below(held.len() as u64) as usize;
            let (id, a) = held.swap_remove(k);
            in_system -= 1;
            router.complete(a, id, now, &mut out);
        }
        let ns = t0.elapsed().as_nanos() as u64;
        for &(id, a) in &out {
            router.accept(a, id, now);
            held.push((id, a));
        }
        if n >= warmup {
            times.push(ns);
            offers += out.len() as u64;
            waiting_sum += (in_system - held.len()) as u64;
        }
        if n > 0 && n % (decisions / 4).max(1) == 0 {
            eprintln!(
                "  {label}: {n} decisions ({:.1} s)",
                started.elapsed().as_secs_f64()
            );
        }
    }
    let total_ns = times.iter().sum();
    let calls = times.len() as u64;
    times.sort_unstable();
    let pct = |p: f64| times[((times.len() as f64 * p) as usize).min(times.len() - 1)];
    Figures {
        calls,
        offers,
        total_ns,
        p50: pct(0.50),
        p99: pct(0.99),
        p999: pct(0.999),
        max: *times.last().unwrap_or(&0),
        waiting_avg: waiting_sum as f64 / calls.max(1) as f64,
    }
}

fn main() {
    let decisions: u64 = std::env::args()
        .nth(1)
        .map(|s| {
            s.parse().unwrap_or_else(|_| {
                eprintln!("the argument is the number of decisions to time");
                std::process::exit(64)
            })
        })
        .unwrap_or(2_000_000);
    let mut rng = Rng::new(2026);
    let w = world(&mut rng);
    println!(
        "routing decision benchmark: {AGENTS} agents ({SKILLS_PER_AGENT} of {SKILLS} skills each), {QUEUES} queues, \
         {IN_SYSTEM} interactions kept in the system, {decisions} timed decisions, one thread"
    );
    let build = Instant::now();
    let mut ours = Ours::new(&w);
    eprintln!("  engine built in {:.2} s", build.elapsed().as_secs_f64());
    let a = run(&mut ours, decisions, 1, "engine");
    let mut naive = Naive::new(&w);
    let b = run(&mut naive, decisions, 1, "naive");
    println!();
    println!(
        "                    decisions/s     p50        p99        p99.9      max       offers/decision  avg waiting"
    );
    for (name, f) in [("engine", &a), ("naive scan", &b)] {
        println!(
            "{name:<18} {:>12.0}   {:>6.2} µs  {:>6.2} µs  {:>6.2} µs  {:>7.1} µs  {:>10.2}  {:>12.0}",
            f.calls as f64 / (f.total_ns as f64 / 1e9),
            f.p50 as f64 / 1e3,
            f.p99 as f64 / 1e3,
            f.p999 as f64 / 1e3,
            f.max as f64 / 1e3,
            f.offers as f64 / f.calls as f64,
            f.waiting_avg,
        );
    }
    let ratio = (a.calls as f64 / a.total_ns as f64) / (b.calls as f64 / b.total_ns as f64);
    println!();
    println!("engine vs naive: {ratio:.1}× the decisions per second");
    let ok = a.calls as f64 / (a.total_ns as f64 / 1e9) >= 1_000_000.0 && a.p99 < 5_000;
    println!(
        "target (≥ 1,000,000 decisions/s, p99 < 5 µs): {}",
        if ok { "met" } else { "NOT met" }
    );
}
