//! Queue figures (service level, abandon rate, handle times) and estimates.

use std::sync::Arc;

use centralino_domain::InteractionId;

use crate::agent::AgentStatus;
use crate::config::QueueConfig;

/// Weight of the newest handle time in the moving average.
const AHT_ALPHA: f64 = 0.05;

/// Running counters of one queue since the engine started.
#[derive(Debug, Clone, Default)]
pub(crate) struct QueueCounters {
    pub entered: u64,
    pub answered: u64,
    pub answered_in_sl: u64,
    pub abandoned: u64,
    pub closed: u64,
    pub overflowed: u64,
    pub wait_answered_ms: u64,
    aht: Option<f64>,
}

/// A queue's running figures as kept across a takeover (the service stores
/// them with each batch and gives them back to a new engine): what
/// supervisors read does not start again from zero when another instance
/// takes over.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct QueueFigures {
    pub entered: u64,
    pub answered: u64,
    pub answered_in_sl: u64,
    pub abandoned: u64,
    pub closed: u64,
    pub overflowed: u64,
    pub wait_answered_ms: u64,
    /// The moving average handle time, once something was handled.
    pub aht_ms: Option<f64>,
}

impl QueueCounters {
    pub fn figures(&self) -> QueueFigures {
        QueueFigures {
            entered: self.entered,
            answered: self.answered,
            answered_in_sl: self.answered_in_sl,
            abandoned: self.abandoned,
            closed: self.closed,
            overflowed: self.overflowed,
            wait_answered_ms: self.wait_answered_ms,
            aht_ms: self.aht,
        }
    }

    pub fn from_figures(f: QueueFigures) -> Self {
        Self {
            entered: f.entered,
            answered: f.answered,
            answered_in_sl: f.answered_in_sl.min(f.answered),
            abandoned: f.abandoned,
            closed: f.closed,
            overflowed: f.overflowed,
            wait_answered_ms: f.wait_answered_ms,
            aht: f.aht_ms.filter(|a| a.is_finite() && *a >= 0.0),
        }
    }

    pub fn answered(&mut self, waited_ms: u64, threshold_ms: u64) {
        self.answered += 1;
        self.wait_answered_ms += waited_ms;
        if waited_ms <= threshold_ms {
            self.answered_in_sl += 1;
        }
    }

    pub fn handled(&mut self, handle_ms: u64) {
        let h = handle_ms as f64;
        self.aht = Some(match self.aht {
            None => h,
            Some(a) => a + AHT_ALPHA * (h - a),
        });
    }

    /// Exponentially weighted average handle time (talk + wrap-up).
    pub fn aht_ms(&self) -> Option<f64> {
        self.aht
    }

    pub fn stats(
        &self,
        queue: Arc<str>,
        waiting: u64,
        offered: u64,
        longest_wait_ms: u64,
        agents: AgentCounts,
        config: &QueueConfig,
    ) -> QueueStats {
        let finished = self.answered + self.abandoned;
        QueueStats {
            queue,
            waiting,
            offered,
            longest_wait_ms,
            entered: self.entered,
            answered: self.answered,
            abandoned: self.abandoned,
            closed: self.closed,
            overflowed: self.overflowed,
            service_level_pct: (finished > 0)
                .then(|| 100.0 * self.answered_in_sl as f64 / finished as f64),
            service_level_target_pct: config.service_level.target_pct,
            service_level_threshold_ms: config.service_level.threshold_ms,
            abandon_rate_pct: (finished > 0)
                .then(|| 100.0 * self.abandoned as f64 / finished as f64),
            average_answer_ms: (self.answered > 0)
                .then(|| self.wait_answered_ms as f64 / self.answered as f64),
            average_handle_ms: self.aht,
            agents,
        }
    }
}

/// Agents who could serve a queue, by what they are doing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AgentCounts {
    pub idle: u32,
    pub busy: u32,
    pub wrap_up: u32,
    pub not_ready: u32,
    pub offline: u32,
}

impl AgentCounts {
    pub(crate) fn count(&mut self, s: &AgentStatus) {
        match s {
            AgentStatus::Idle => self.idle += 1,
            AgentStatus::Busy => self.busy += 1,
            AgentStatus::WrapUp => self.wrap_up += 1,
            AgentStatus::NotReady(_) => self.not_ready += 1,
            AgentStatus::Offline => self.offline += 1,
        }
    }
}

/// Live figures of one queue. Service level = answered within the threshold ÷
/// (answered + abandoned); abandon rate = abandoned ÷ (answered + abandoned).
#[derive(Debug, Clone, PartialEq)]
pub struct QueueStats {
    pub queue: Arc<str>,
    pub waiting: u64,
    pub offered: u64,
    pub longest_wait_ms: u64,
    pub entered: u64,
    pub answered: u64,
    pub abandoned: u64,
    pub closed: u64,
    pub overflowed: u64,
    pub service_level_pct: Option<f64>,
    pub service_level_target_pct: f64,
    pub service_level_threshold_ms: u64,
    pub abandon_rate_pct: Option<f64>,
    pub average_answer_ms: Option<f64>,
    pub average_handle_ms: Option<f64>,
    pub agents: AgentCounts,
}

/// Where a waiting interaction stands: 1-based position among the waiting
/// interactions of its queue and channel, and the estimated wait (`None` while
/// nobody who could take it is available).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub interaction: InteractionId,
    pub position: u64,
    pub estimated_wait_ms: Option<u64>,
}
