//! A ticket's life at the counter. Times are milliseconds since the epoch,
//! supplied by the caller.

/// Where a ticket stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum State {
    /// In line for its service.
    Waiting,
    /// Shown on the boards for `counter`; the customer is walking over.
    Called {
        counter: String,
        at: i64,
        recalls: u32,
    },
    /// At the counter.
    Serving { counter: String, since: i64 },
    /// Done, with the counter's disposition.
    Served { disposition: String },
    /// Called and never came.
    NoShow,
    /// Routing ended the wait (a routing step, the site closing).
    Closed,
}

/// How long a called customer has, and how often they are called again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rules {
    /// Recalls allowed; one more makes the ticket a no-show.
    pub max_recalls: u32,
    /// A called ticket not started within this long is a no-show.
    pub no_show_after_ms: i64,
}

impl Default for Rules {
    fn default() -> Self {
        Self {
            max_recalls: 2,
            no_show_after_ms: 5 * 60 * 1000,
        }
    }
}

/// Why a step was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TicketError {
    #[error("the ticket is {0}, not waiting")]
    NotWaiting(&'static str),
    #[error("the ticket is {0}, not called")]
    NotCalled(&'static str),
    #[error("the ticket is {0}, not being served")]
    NotServing(&'static str),
    #[error("the ticket is at counter {0}")]
    OtherCounter(String),
    #[error("the ticket is already {0}")]
    Finished(&'static str),
}

/// One ticket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ticket {
    pub service: String,
    /// When it was taken: its place in line, kept across transfers.
    pub arrived_at: i64,
    pub state: State,
}

/// What a recall did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recall {
    /// Called again (the boards show it again); the count so far.
    Again(u32),
    /// Too many recalls: the ticket is a no-show.
    NoShow,
}

impl State {
    fn name(&self) -> &'static str {
        match self {
            State::Waiting => "waiting",
            State::Called { .. } => "called",
            State::Serving { .. } => "being served",
            State::Served { .. } => "served",
            State::NoShow => "a no-show",
            State::Closed => "closed",
        }
    }
}

impl Ticket {
    pub fn new(service: impl Into<String>, arrived_at: i64) -> Self {
        Self {
            service: service.into(),
            arrived_at,
            state: State::Waiting,
        }
    }

    fn at_counter(&self, counter: &str) -> Result<(), TicketError> {
        match &self.state {
            State::Called { counter: c, .. } | State::Serving { counter: c, .. }
                if c != counter =>
            {
                Err(TicketError::OtherCounter(c.clone()))
            }
            _ => Ok(()),
        }
    }

    /// `counter` calls the ticket (the router chose it).
    pub fn call(&mut self, counter: &str, now: i64) -> Result<(), TicketError> {
        match self.state {
            State::Waiting => {
                self.state = State::Called {
                    counter: counter.to_owned(),
                    at: now,
                    recalls: 0,
                };
                Ok(())
            }
            ref s => Err(TicketError::NotWaiting(s.name())),
        }
    }

    /// The counter calls it again; beyond `rules.max_recalls` it is a no-show.
    pub fn recall(
        &mut self,
        counter: &str,
        rules: &Rules,
        now: i64,
    ) -> Result<Recall, TicketError> {
        self.at_counter(counter)?;
        match &mut self.state {
            State::Called { recalls, at, .. } => {
                if *recalls >= rules.max_recalls {
                    self.state = State::NoShow;
                    return Ok(Recall::NoShow);
                }
                *recalls += 1;
                *at = now;
                Ok(Recall::Again(*recalls))
            }
            s => Err(TicketError::NotCalled(s.name())),
        }
    }

    /// The counter gives up on a called customer.
    pub fn no_show(&mut self, counter: &str) -> Result<(), TicketError> {
        self.at_counter(counter)?;
        match self.state {
            State::Called { .. } => {
                self.state = State::NoShow;
                Ok(())
            }
            ref s => Err(TicketError::NotCalled(s.name())),
        }
    }

    /// A called ticket left unstarted for `rules.no_show_after_ms` (counted
    /// from the last call) becomes a no-show; `true` when that happened now.
    pub fn expire(&mut self, rules: &Rules, now: i64) -> bool {
        match self.state {
            State::Called { at, .. } if now.saturating_sub(at) >= rules.no_show_after_ms => {
                self.state = State::NoShow;
                true
            }
            _ => false,
        }
    }

    /// The customer reached the counter.
    pub fn start(&mut self, counter: &str, now: i64) -> Result<(), TicketError> {
        self.at_counter(counter)?;
        match self.state {
            State::Called { .. } => {
                self.state = State::Serving {
                    counter: counter.to_owned(),
                    since: now,
                };
                Ok(())
            }
            ref s => Err(TicketError::NotCalled(s.name())),
        }
    }

    /// Service done, with the counter's `disposition`.
    pub fn finish(&mut self, counter: &str, disposition: &str) -> Result<(), TicketError> {
        self.at_counter(counter)?;
        match self.state {
            State::Serving { .. } => {
                self.state = State::Served {
                    disposition: disposition.to_owned(),
                };
                Ok(())
            }
            ref s => Err(TicketError::NotServing(s.name())),
        }
    }

    /// Moves the ticket to `service`: it waits again there, in the place its
    /// arrival time gives it (not at the end of the line).
    pub fn transfer(&mut self, service: &str) -> Result<(), TicketError> {
        match self.state {
            State::Served { .. } | State::NoShow | State::Closed => {
                Err(TicketError::Finished(self.state.name()))
            }
            _ => {
                service.clone_into(&mut self.service);
                self.state = State::Waiting;
                Ok(())
            }
        }
    }

    /// Whether the ticket still needs a counter.
    pub fn open(&self) -> bool {
        !matches!(
            self.state,
            State::Served { .. } | State::NoShow | State::Closed
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn called_started_and_served() {
        let mut t = Ticket::new("A", 1_000);
        t.call("3", 2_000).expect("call");
        assert_eq!(
            t.start("4", 2_500),
            Err(TicketError::OtherCounter("3".into())),
            "another counter cannot take it"
        );
        t.start("3", 2_500).expect("start");
        assert_eq!(
            t.call("5", 2_600),
            Err(TicketError::NotWaiting("being served"))
        );
        t.finish("3", "payment-done").expect("finish");
        assert_eq!(
            t.state,
            State::Served {
                disposition: "payment-done".into()
            }
        );
        assert!(!t.open());
        assert_eq!(t.transfer("B"), Err(TicketError::Finished("served")));
    }

    #[test]
    fn recalls_then_no_show() {
        let rules = Rules {
            max_recalls: 2,
            no_show_after_ms: 60_000,
        };
        let mut t = Ticket::new("A", 0);
        assert_eq!(
            t.recall("1", &rules, 0),
            Err(TicketError::NotCalled("waiting"))
        );
        t.call("1", 10).expect("call");
        assert_eq!(t.recall("1", &rules, 20), Ok(Recall::Again(1)));
        assert_eq!(t.recall("1", &rules, 30), Ok(Recall::Again(2)));
        assert_eq!(t.recall("1", &rules, 40), Ok(Recall::NoShow));
        assert_eq!(t.state, State::NoShow);
    }

    #[test]
    fn a_called_ticket_expires_counted_from_the_last_call() {
        let rules = Rules {
            max_recalls: 5,
            no_show_after_ms: 60_000,
        };
        let mut t = Ticket::new("A", 0);
        t.call("1", 0).expect("call");
        assert!(!t.expire(&rules, 59_999));
        t.recall("1", &rules, 50_000).expect("recall");
        assert!(!t.expire(&rules, 100_000), "the recall restarted the clock");
        assert!(t.expire(&rules, 110_000));
        assert_eq!(t.state, State::NoShow);
        let mut waiting = Ticket::new("A", 0);
        assert!(
            !waiting.expire(&rules, i64::MAX),
            "only called tickets expire"
        );
        assert_eq!(waiting.no_show("1"), Err(TicketError::NotCalled("waiting")));
    }

    #[test]
    fn a_transfer_keeps_the_place_in_line() {
        let mut t = Ticket::new("A", 1_234);
        t.call("1", 5_000).expect("call");
        t.start("1", 6_000).expect("start");
        t.transfer("B").expect("transfer");
        assert_eq!(t.service, "B");
        assert_eq!(t.arrived_at, 1_234, "its arrival is its place");
        assert_eq!(t.state, State::Waiting);
        t.call("7", 9_000).expect("another counter calls it");
    }

    mod property {
        use super::*;
        use proptest::prelude::*;

        #[derive(Clone, Debug)]
        enum Op {
            Call(u8),
            Recall(u8),
            NoShow(u8),
            Start(u8),
            Finish(u8),
            Transfer(u8),
            Expire(i64),
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                (0u8..3).prop_map(Op::Call),
                (0u8..3).prop_map(Op::Recall),
                (0u8..3).prop_map(Op::NoShow),
                (0u8..3).prop_map(Op::Start),
                (0u8..3).prop_map(Op::Finish),
                (0u8..3).prop_map(Op::Transfer),
                (0i64..200_000).prop_map(Op::Expire),
            ]
        }

        proptest! {
            /// Whatever the counters do: the place in line never changes, a
            /// finished ticket stays finished, and a refused step changes nothing.
            #[test]
            fn finished_is_final_and_the_place_is_kept(ops in proptest::collection::vec(op(), 0..40)) {
                let rules = Rules { max_recalls: 2, no_show_after_ms: 60_000 };
                let mut t = Ticket::new("A", 42);
                let mut now = 0;
                for op in ops {
                    now += 1_000;
                    let before = t.clone();
                    let c = |n: u8| n.to_string();
                    let result = match op {
                        Op::Call(n) => t.call(&c(n), now).map(|_| ()),
                        Op::Recall(n) => t.recall(&c(n), &rules, now).map(|_| ()),
                        Op::NoShow(n) => t.no_show(&c(n)),
                        Op::Start(n) => t.start(&c(n), now),
                        Op::Finish(n) => t.finish(&c(n), "done"),
                        Op::Transfer(n) => t.transfer(&format!("S{n}")),
                        Op::Expire(ms) => { t.expire(&rules, now + ms); Ok(()) }
                    };
                    prop_assert_eq!(t.arrived_at, 42);
                    if result.is_err() {
                        prop_assert_eq!(&t, &before);
                    }
                    if !before.open() {
                        prop_assert_eq!(&t, &before);
                    }
                }
            }
        }
    }
}
