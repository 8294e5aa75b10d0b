//! Calls we place: a callback interaction (virtual hold) that routing
//! assigned. The agent's phone rings first; once the agent answers, the
//! customer is dialled through the trunk and the two are bridged. An agent
//! who does not answer hands it back to routing; a customer who does not
//! answer ends it (the agent then completes it with a disposition).

use std::sync::Arc;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::bridge;
use crate::dial::{self, Dialing, Failure};
use crate::entities::call;
use crate::media::CODECS;
use crate::record::{self, Ended};
use crate::{Shared, now_ms};

/// How long the customer's phone may ring.
const CUSTOMER_RING: std::time::Duration = std::time::Duration::from_secs(30);

/// Places the callback `row` for `agent`, to its end.
pub(crate) async fn callback(
    shared: Arc<Shared>,
    row: call::Model,
    agent: String,
    mut stop: watch::Receiver<bool>,
) {
    let id = row.interaction_id.clone();
    let outcome = place(&shared, &row, &agent, &mut stop).await;
    if let Some((outcome, attributes)) = outcome {
        let e = Ended {
            interaction_id: id.clone(),
            outcome,
            started_at: row.created_at,
            at: now_ms(),
            path: Vec::new(),
            abandoned: None,
            attributes,
        };
        if let Err(err) = record::ended(&shared.db, &shared.fence, &e).await {
            tracing::error!(interaction = %id, error = %err, "voice: could not record the callback's end");
        }
        shared.relay.notify_one();
        tracing::info!(interaction = %id, outcome, "voice: callback ended");
    }
    shared.forget(&id);
}

type Record = (&'static str, std::collections::HashMap<String, String>);

/// `None` when the call went back to routing (nothing to record yet).
async fn place(
    shared: &Shared,
    row: &call::Model,
    agent: &str,
    stop: &mut watch::Receiver<bool>,
) -> Option<Record> {
    let id = &row.interaction_id;
    let not_reached = |reason: Failure| async move {
        if let Err(e) =
            record::agent_not_reached(&shared.db, &shared.fence, id, agent, reason).await
        {
            tracing::error!(error = %e, "voice: could not hand the callback back to routing");
        }
        shared.relay.notify_one();
        None
    };
    let Some(agent_uri) = shared.agent_uri(agent) else {
        return not_reached("no-endpoint").await;
    };
    let codec = CODECS[0];
    let mut to_agent = match dial::start(shared, agent_uri, Some(&row.caller), codec).await {
        Ok(d) => d,
        Err(reason) => return not_reached(reason).await,
    };
    if let Err(reason) = ring(&mut to_agent, shared.config.ring_timeout, stop).await {
        return not_reached(reason).await;
    }
    // The agent's phone may ring for a while: the lease is checked again
    // right before the customer is called, so an instance paused meanwhile
    // (and perhaps replaced) does not call them as well as its successor.
    if shared.fence.check_lease().is_err() {
        let _ = to_agent.dialog.hangup().await;
        return not_reached("leadership-lost").await;
    }
    if let Err(e) = record::dialling(&shared.db, &shared.fence, id, agent).await {
        tracing::warn!(error = %e, "voice: could not record the callback's agent");
    }
    let mut attributes = std::collections::HashMap::from([("agent".to_owned(), agent.to_owned())]);
    let Some(customer_uri) = shared.trunk_uri(&row.caller) else {
        let _ = to_agent.dialog.hangup().await;
        return Some(("failed", attributes));
    };
    tracing::info!(interaction = %id, %agent, "voice: agent ready; calling the customer back");
    let mut to_customer =
        match dial::start(shared, customer_uri, Some(&row.dialled), to_agent.leg.codec).await {
            Ok(d) => d,
            Err(reason) => {
                let _ = to_agent.dialog.hangup().await;
                return Some((customer_outcome(reason), attributes));
            }
        };
    // The agent may give up while the customer's phone rings.
    let rang = tokio::select! {
        r = ring(&mut to_customer, CUSTOMER_RING, stop) => r,
        () = async { while bridge::still_up(to_agent.states.recv().await).await {} } => Err("agent-left"),
    };
    if let Err(reason) = rang {
        let _ = to_customer.dialog.hangup().await;
        let _ = to_agent.dialog.hangup().await;
        return Some((customer_outcome(reason), attributes));
    }
    if let Err(e) = record::answered(&shared.db, &shared.fence, id, agent, now_ms()).await {
        tracing::warn!(error = %e, "voice: could not record the answer (the call goes on)");
    }
    let who = bridge::relay(
        &mut to_customer.leg,
        &mut to_customer.states,
        &mut to_agent.leg,
        &mut to_agent.states,
        shared.config.media_timeout,
        stop,
    )
    .await;
    tracing::debug!(?who, "voice: callback conversation over");
    let _ = to_agent.dialog.hangup().await;
    let _ = to_customer.dialog.hangup().await;
    for (leg, stats) in [
        ("customer", to_customer.leg.stats),
        ("agent", to_agent.leg.stats),
    ] {
        attributes.insert(format!("rtp.{leg}.received"), stats.received.to_string());
        attributes.insert(format!("rtp.{leg}.sent"), stats.sent.to_string());
    }
    Some(("answered", attributes))
}

/// The CDR outcome of a customer who could not be reached.
fn customer_outcome(reason: Failure) -> &'static str {
    match reason {
        "busy" => "busy",
        "no-answer" => "no-answer",
        "agent-left" => "abandoned",
        _ => "failed",
    }
}

/// Waits for the far end to answer (CANCEL after `timeout`).
async fn ring(
    dialing: &mut Dialing,
    timeout: std::time::Duration,
    stop: &mut watch::Receiver<bool>,
) -> Result<(), Failure> {
    let until = Instant::now() + timeout;
    let result = tokio::select! {
        r = &mut dialing.answer => r,
        () = tokio::time::sleep_until(until) => {
            let _ = dialing.dialog.hangup().await;
            (&mut dialing.answer).await
        }
        () = async { let _ = stop.wait_for(|s| *s).await; } => {
            let _ = dialing.dialog.hangup().await;
            return Err("unreachable");
        }
    };
    dial::answered(dialing, result).await
}
