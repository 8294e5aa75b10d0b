//! Names of exchanges and queues, and AMQP topic matching.

use crate::Exchange;

/// Names of every exchange and queue, under one prefix (default `centralino`), so
/// that several deployments or test runs can share a broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    prefix: String,
}

impl Default for Topology {
    fn default() -> Self {
        Self::new("centralino")
    }
}

impl Topology {
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Durable topic exchange for `exchange`.
    pub fn exchange(&self, exchange: Exchange) -> String {
        format!("{}.{exchange}", self.prefix)
    }

    /// Fanout exchange collecting events no queue is bound to (the events exchange's
    /// alternate exchange).
    pub fn unrouted_exchange(&self) -> String {
        format!("{}.unrouted", self.prefix)
    }

    /// Queue behind [`unrouted_exchange`](Self::unrouted_exchange).
    pub fn unrouted_queue(&self) -> String {
        format!("{}.unrouted", self.prefix)
    }

    /// Direct exchange receiving dead letters, routed by consumer name.
    pub fn dead_letter_exchange(&self) -> String {
        format!("{}.dead-letter", self.prefix)
    }

    /// The consumer's durable quorum queue.
    pub fn queue(&self, consumer: &str) -> String {
        format!("{}.{consumer}", self.prefix)
    }

    /// The consumer's dead-letter queue.
    pub fn dead_letter_queue(&self, consumer: &str) -> String {
        format!("{}.{consumer}.dead", self.prefix)
    }
}

/// AMQP topic matching: words separated by `.`, `*` matches exactly one word,
/// `#` matches zero or more words.
pub fn topic_matches(pattern: &str, routing_key: &str) -> bool {
    let pattern: Vec<&str> = pattern.split('.').collect();
    let key: Vec<&str> = routing_key.split('.').collect();
    matches(&pattern, &key)
}

fn matches(pattern: &[&str], key: &[&str]) -> bool {
    match pattern.split_first() {
        None => key.is_empty(),
        Some((&"#", rest)) => (0..=key.len()).any(|skip| matches(rest, &key[skip..])),
        Some((&word, rest)) => match key.split_first() {
            Some((&k, key_rest)) => (word == "*" || word == k) && matches(rest, key_rest),
            None => false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_matching_follows_amqp_rules() {
        let cases = [
            ("interaction.*.created", "interaction.sms.created", true),
            ("interaction.*.created", "interaction.sms.queued", false),
            ("interaction.*.created", "interaction.created", false),
            ("interaction.#", "interaction", true),
            ("interaction.#", "interaction.email.message.sent", true),
            ("#", "anything.at.all", true),
            ("#.sent", "email.message.sent", true),
            ("#.sent", "sent", true),
            ("email.send", "email.send", true),
            ("email.send", "email.sends", false),
            ("*", "a.b", false),
            ("a.#.z", "a.z", true),
            ("a.#.z", "a.b.c.z", true),
            ("a.#.z", "a.b.c", false),
        ];
        for (pattern, key, expected) in cases {
            assert_eq!(topic_matches(pattern, key), expected, "{pattern} vs {key}");
        }
    }

    #[test]
    fn names_share_the_prefix() {
        let t = Topology::new("t1");
        assert_eq!(t.exchange(Exchange::Events), "t1.events");
        assert_eq!(t.queue("history"), "t1.history");
        assert_eq!(t.dead_letter_queue("history"), "t1.history.dead");
    }
}
