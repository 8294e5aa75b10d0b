//! The operator's command line over gRPC, for a running deployment:
//! `centralino status` (queues and agents as tables, like `rabbitmqctl
//! list_queues`), `queues|agents|skills list`, `dead-letters list|replay`.
//! Each function asks the server and returns the text to print.

use centralino_proto::v1;
use tonic::transport::Channel;

use crate::RunError;

/// Where to ask and with which token.
pub struct Remote {
    pub channel: Channel,
    pub token: String,
}

impl Remote {
    /// Connects to `addr` (`http://host:port`, or `https://…` trusting the
    /// PEM certificate `ca`).
    pub async fn connect(addr: &str, token: String, ca: Option<Vec<u8>>) -> Result<Self, RunError> {
        let mut endpoint = tonic::transport::Endpoint::from_shared(addr.to_owned())
            .map_err(|e| RunError::Io(format!("--addr {addr}: {e}")))?
            .connect_timeout(std::time::Duration::from_secs(5))
            .timeout(std::time::Duration::from_secs(30));
        if let Some(pem) = ca {
            let tls = tonic::transport::ClientTlsConfig::new()
                .ca_certificate(tonic::transport::Certificate::from_pem(pem));
            endpoint = endpoint
                .tls_config(tls)
                .map_err(|e| RunError::Io(format!("--ca: {e}")))?;
        }
        let channel = endpoint.connect().await.map_err(|e| {
            // The transport's own words are in its sources (a refused
            // connection, a certificate that does not match).
            let mut why = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(inner) = source {
                why = format!("{why}: {inner}");
                source = inner.source();
            }
            RunError::Io(format!(
                "cannot reach Centralino at {addr} ({why}); is it running? (--addr)"
            ))
        })?;
        Ok(Self { channel, token })
    }

    fn request<T>(&self, msg: T) -> Result<tonic::Request<T>, RunError> {
        let mut r = tonic::Request::new(msg);
        let value = format!("Bearer {}", self.token)
            .parse()
            .map_err(|_| RunError::Io("the token is not a valid header value".into()))?;
        r.metadata_mut().insert("authorization", value);
        Ok(r)
    }
}

/// A refused call, said so that the operator knows what to do.
fn refused(what: &str, s: &tonic::Status) -> RunError {
    let hint = match s.code() {
        tonic::Code::Unauthenticated => {
            " (pass --token, minted where Centralino runs: centralino token --role admin --subject you)"
        }
        tonic::Code::PermissionDenied => " (this needs a supervisor or admin token)",
        tonic::Code::Unimplemented => " (that process does not run the service)",
        // The connection failed under the call: among other causes, a TLS
        // listener asked in plain text (which fails in one of these ways).
        tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Cancelled => {
            " (is it running, and does it speak TLS? then an https:// address, with --ca if needed)"
        }
        _ if s.message().contains("h2 protocol error") => {
            " (is it running, and does it speak TLS? then an https:// address, with --ca if needed)"
        }
        _ => "",
    };
    RunError::Io(format!("{what}: {}{hint}", s.message()))
}

/// Columns left-aligned to their widest cell, two spaces apart.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  "));
            }
        }
        out.trim_end().to_owned()
    };
    let mut text = line(header.iter().map(|h| (*h).to_owned()).collect());
    for row in rows {
        text.push('\n');
        text.push_str(&line(row.clone()));
    }
    text
}

/// `1:05`, `12:00:07`.
fn duration(ms: u64) -> String {
    let s = ms / 1_000;
    if s >= 3_600 {
        format!("{}:{:02}:{:02}", s / 3_600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

fn channel_name(raw: i32) -> &'static str {
    centralino_proto::channel_from_i32(raw).map_or("?", |c| c.as_str())
}

/// The queues' board now (`None` when the server sent none).
async fn board(remote: &Remote) -> Result<Option<v1::QueueBoard>, RunError> {
    let mut sup =
        v1::supervisor_service_client::SupervisorServiceClient::new(remote.channel.clone());
    let mut stream = sup
        .watch_queues(remote.request(v1::WatchQueuesRequest {
            queues: Vec::new(),
            interval_ms: 0,
        })?)
        .await
        .map_err(|s| refused("queues", &s))?
        .into_inner();
    stream.message().await.map_err(|s| refused("queues", &s))
}

/// The queue and agent tables of `centralino status`.
pub async fn status(remote: &Remote) -> Result<String, RunError> {
    let board = board(remote)
        .await?
        .ok_or_else(|| RunError::Io("queues: the server sent nothing".into()))?;
    Ok(render_board(&board))
}

/// How many interactions wait, over every queue.
pub async fn waiting(remote: &Remote) -> Result<u64, RunError> {
    Ok(board(remote)
        .await?
        .map_or(0, |b| b.queues.iter().map(|q| q.waiting).sum()))
}

fn render_board(board: &v1::QueueBoard) -> String {
    let rows: Vec<Vec<String>> = board
        .queues
        .iter()
        .map(|q| {
            let sl = match q.service_level_pct {
                Some(p) => format!("{p:.0}%"),
                None => "-".to_owned(),
            };
            let a = q.agents.unwrap_or_default();
            vec![
                q.queue.clone(),
                q.waiting.to_string(),
                duration(q.longest_wait_ms),
                q.offered.to_string(),
                q.answered.to_string(),
                q.abandoned.to_string(),
                format!(
                    "{sl} (target {:.0}% in {} s)",
                    q.service_level_target_pct,
                    q.service_level_threshold_ms / 1_000
                ),
                format!("{}/{}/{}/{}", a.idle, a.busy, a.wrap_up, a.not_ready),
            ]
        })
        .collect();
    let mut text = table(
        &[
            "QUEUE",
            "WAITING",
            "LONGEST",
            "OFFERED",
            "ANSWERED",
            "ABANDONED",
            "SERVICE LEVEL",
            "AGENTS idle/busy/wrap-up/not-ready",
        ],
        &rows,
    );
    if rows.is_empty() {
        text.push_str("\n(no queues defined)");
    }
    let mut by_state = std::collections::BTreeMap::<&str, usize>::new();
    let agents: Vec<Vec<String>> = board
        .agents
        .iter()
        .map(|a| {
            *by_state.entry(a.status.as_str()).or_default() += 1;
            let load: Vec<String> = a
                .load
                .iter()
                .filter(|l| l.capacity > 0)
                .map(|l| format!("{} {}/{}", channel_name(l.channel), l.used, l.capacity))
                .collect();
            vec![
                a.agent.clone(),
                a.status.clone(),
                a.reason.clone(),
                load.join(", "),
            ]
        })
        .collect();
    text.push_str("\n\n");
    text.push_str(&table(&["AGENT", "STATUS", "REASON", "LOAD"], &agents));
    let states: Vec<String> = by_state.iter().map(|(s, n)| format!("{n} {s}")).collect();
    text.push_str(&format!(
        "\n{} agent(s){}{}",
        board.agents.len(),
        if states.is_empty() { "" } else { ": " },
        states.join(", ")
    ));
    text
}

/// What `centralino queues|agents|skills list` lists.
#[derive(Debug, Clone, Copy)]
pub enum Definitions {
    Queues,
    Agents,
    Skills,
}

/// The routing definitions of one kind, as a table.
pub async fn list(remote: &Remote, what: Definitions) -> Result<String, RunError> {
    let mut admin =
        v1::routing_admin_service_client::RoutingAdminServiceClient::new(remote.channel.clone());
    let req = || remote.request(v1::ListRequest {});
    let levels = |skills: &[v1::SkillLevel]| {
        skills
            .iter()
            .map(|s| format!("{}:{}", s.skill, s.level))
            .collect::<Vec<_>>()
            .join(" ")
    };
    Ok(match what {
        Definitions::Queues => {
            let queues = admin
                .list_queues(req()?)
                .await
                .map_err(|s| refused("queues", &s))?
                .into_inner()
                .queues;
            let rows: Vec<Vec<String>> = queues
                .iter()
                .map(|q| {
                    vec![
                        q.name.clone(),
                        q.channels
                            .iter()
                            .map(|c| channel_name(*c))
                            .collect::<Vec<_>>()
                            .join(","),
                        levels(&q.skills),
                        if q.strategy.is_empty() {
                            "longest-idle".to_owned()
                        } else {
                            q.strategy.clone()
                        },
                        q.base_priority.to_string(),
                        q.steps.len().to_string(),
                    ]
                })
                .collect();
            table(
                &[
                    "QUEUE", "CHANNELS", "SKILLS", "STRATEGY", "PRIORITY", "STEPS",
                ],
                &rows,
            )
        }
        Definitions::Agents => {
            let agents = admin
                .list_agents(req()?)
                .await
                .map_err(|s| refused("agents", &s))?
                .into_inner()
                .agents;
            let rows: Vec<Vec<String>> = agents
                .iter()
                .map(|a| {
                    vec![
                        a.name.clone(),
                        a.display_name.clone(),
                        levels(&a.skills),
                        a.capacity
                            .iter()
                            .map(|c| format!("{}={}", channel_name(c.channel), c.capacity))
                            .collect::<Vec<_>>()
                            .join(","),
                    ]
                })
                .collect();
            table(&["AGENT", "NAME", "SKILLS", "CAPACITY"], &rows)
        }
        Definitions::Skills => {
            let skills = admin
                .list_skills(req()?)
                .await
                .map_err(|s| refused("skills", &s))?
                .into_inner()
                .skills;
            let rows: Vec<Vec<String>> = skills
                .iter()
                .map(|s| vec![s.name.clone(), s.description.clone()])
                .collect();
            table(&["SKILL", "DESCRIPTION"], &rows)
        }
    })
}

/// The dead letters of `queues` (every service's consumer queue when
/// called by `centralino dead-letters list` without --queue).
pub async fn dead_letters(remote: &Remote, queues: &[String]) -> Result<String, RunError> {
    let mut ops = v1::ops_service_client::OpsServiceClient::new(remote.channel.clone());
    let mut rows = Vec::new();
    let mut counts = Vec::new();
    for queue in queues {
        let dead = match ops
            .list_dead_letters(remote.request(v1::ListDeadLettersRequest {
                queue: queue.clone(),
                limit: 100,
            })?)
            .await
        {
            Ok(r) => r.into_inner().dead_letters,
            // A service that never ran here has no queue yet.
            Err(s) if s.code() == tonic::Code::NotFound => continue,
            Err(s) => return Err(refused(&format!("dead letters of {queue}"), &s)),
        };
        counts.push(format!(
            "{queue}: {}{}",
            dead.len(),
            if dead.len() >= 100 { "+" } else { "" }
        ));
        for d in dead {
            rows.push(vec![
                queue.clone(),
                d.message_id,
                d.event_type,
                d.routing_key,
                d.delivery_count.to_string(),
            ]);
        }
    }
    let mut text = table(
        &["QUEUE", "MESSAGE", "TYPE", "ROUTING KEY", "DELIVERIES"],
        &rows,
    );
    text.push_str(&format!("\n{}", counts.join(", ")));
    Ok(text)
}

/// Sends up to `max` of `queue`'s dead letters back to it.
pub async fn replay(remote: &Remote, queue: &str, max: u32) -> Result<String, RunError> {
    let mut ops = v1::ops_service_client::OpsServiceClient::new(remote.channel.clone());
    let replayed = ops
        .replay_dead_letters(remote.request(v1::ReplayDeadLettersRequest {
            queue: queue.to_owned(),
            max,
        })?)
        .await
        .map_err(|s| refused(&format!("replay {queue}"), &s))?
        .into_inner()
        .replayed;
    Ok(format!("{queue}: {replayed} dead letter(s) sent back"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_their_columns() {
        let t = table(
            &["A", "LONGER"],
            &[
                vec!["wide cell".into(), "x".into()],
                vec!["b".into(), "y".into()],
            ],
        );
        assert_eq!(t, "A          LONGER\nwide cell  x\nb          y");
    }

    #[test]
    fn durations_read_as_clocks() {
        assert_eq!(duration(0), "0:00");
        assert_eq!(duration(65_000), "1:05");
        assert_eq!(duration(3_600_000 + 7_000), "1:00:07");
    }

    #[test]
    fn the_board_shows_queues_and_agents_by_state() {
        let board = v1::QueueBoard {
            at: None,
            queues: vec![v1::QueueFigures {
                queue: "support".into(),
                waiting: 2,
                longest_wait_ms: 75_000,
                service_level_pct: Some(87.5),
                service_level_target_pct: 80.0,
                service_level_threshold_ms: 20_000,
                agents: Some(v1::AgentCounts {
                    idle: 1,
                    busy: 2,
                    ..Default::default()
                }),
                ..Default::default()
            }],
            agents: vec![
                v1::AgentStatus {
                    agent: "anna".into(),
                    status: "idle".into(),
                    ..Default::default()
                },
                v1::AgentStatus {
                    agent: "marco".into(),
                    status: "offline".into(),
                    ..Default::default()
                },
            ],
        };
        let text = render_board(&board);
        assert!(text.contains("support"), "{text}");
        assert!(
            text.contains("1:15") && text.contains("88% (target 80% in 20 s)"),
            "{text}"
        );
        assert!(text.contains("1/2/0/0"), "{text}");
        assert!(text.contains("2 agent(s): 1 idle, 1 offline"), "{text}");
    }
}
