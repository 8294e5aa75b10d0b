//! A small driver around the engine for tests.

use centralino_routing::{
    AgentConfig, Channel, Engine, EngineSettings, Enqueue, Event, InteractionId, Presence,
    QueueConfig,
};

pub struct H {
    pub e: Engine,
    pub now: u64,
    pub log: Vec<Event>,
}

pub const T0: u64 = 1_800_000_000_000;

impl H {
    pub fn new() -> Self {
        Self::with(EngineSettings::default())
    }

    pub fn with(settings: EngineSettings) -> Self {
        Self {
            e: Engine::new(settings, T0).expect("valid settings"),
            now: T0,
            log: Vec::new(),
        }
    }

    pub fn collect(&mut self) {
        let events: Vec<Event> = self.e.drain_events().collect();
        self.log.extend(events);
        self.e.check_invariants().expect("engine invariants");
    }

    pub fn queue(&mut self, q: QueueConfig) {
        self.e.upsert_queue(q, self.now).expect("queue");
        self.collect();
    }

    pub fn agent(&mut self, a: AgentConfig) {
        let name = a.name.clone();
        self.e.upsert_agent(a, self.now).expect("agent");
        self.e
            .set_presence(&name, Presence::Available, self.now)
            .expect("presence");
        self.collect();
    }

    pub fn presence(&mut self, agent: &str, p: Presence) {
        self.e.set_presence(agent, p, self.now).expect("presence");
        self.collect();
    }

    pub fn enqueue_p(&mut self, queue: &str, channel: Channel, priority: u32) -> InteractionId {
        let id = InteractionId::new();
        self.e
            .enqueue(
                Enqueue {
                    id,
                    queue: queue.into(),
                    channel,
                    priority,
                    arrived_at: self.now,
                    preferred_agent: None,
                },
                self.now,
            )
            .expect("enqueue");
        self.collect();
        id
    }

    pub fn enqueue(&mut self, queue: &str, channel: Channel) -> InteractionId {
        self.enqueue_p(queue, channel, 0)
    }

    pub fn advance(&mut self, ms: u64) {
        self.now += ms;
        self.e.tick(self.now);
        self.collect();
    }

    pub fn accept(&mut self, agent: &str, id: InteractionId) {
        self.e.accept(agent, id, self.now).expect("accept");
        self.collect();
    }

    pub fn reject(&mut self, agent: &str, id: InteractionId) {
        self.e.reject(agent, id, self.now).expect("reject");
        self.collect();
    }

    pub fn complete(&mut self, agent: &str, id: InteractionId, wrap: Option<u64>) {
        self.e
            .complete(agent, id, wrap, self.now)
            .expect("complete");
        self.collect();
    }

    pub fn cancel(&mut self, id: InteractionId) -> bool {
        let r = self.e.cancel(id, self.now).expect("cancel");
        self.collect();
        r
    }

    /// Who holds an open offer for `id`, if anyone.
    pub fn offered_to(&self, id: InteractionId) -> Option<String> {
        self.e
            .locate(id)
            .filter(|l| l.state == "offered")
            .and_then(|l| l.agent)
            .map(|a| a.to_string())
    }

    pub fn state(&self, id: InteractionId) -> Option<&'static str> {
        self.e.locate(id).map(|l| l.state)
    }

    pub fn clear(&mut self) {
        self.log.clear();
    }
}
