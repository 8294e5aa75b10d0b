//! IMAP sessions: connect (plain or TLS), log in, and the few commands the
//! importer needs, each bounded by the I/O timeout.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_imap::Session;
use futures::TryStreamExt as _;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::{ImapEndpoint, Security};

/// A byte stream the IMAP client can run on (TCP or TLS over TCP).
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send + fmt::Debug {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + fmt::Debug> Io for T {}

pub(crate) type ImapSession = Session<Box<dyn Io>>;

/// Why an IMAP exchange failed. Every failure ends the session; the importer
/// reconnects.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ImapError {
    #[error("connect: {0}")]
    Connect(std::io::Error),
    #[error("tls: {0}")]
    Tls(String),
    #[error("login refused: {0}")]
    Login(async_imap::error::Error),
    #[error("{0} timed out")]
    Timeout(&'static str),
    #[error("{0}: {1}")]
    Imap(&'static str, async_imap::error::Error),
    #[error("the server did not send {0}")]
    Missing(&'static str),
}

pub(crate) async fn within<T>(
    limit: Duration,
    what: &'static str,
    f: impl Future<Output = Result<T, async_imap::error::Error>>,
) -> Result<T, ImapError> {
    match tokio::time::timeout(limit, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(ImapError::Imap(what, e)),
        Err(_) => Err(ImapError::Timeout(what)),
    }
}

/// Opens a session: TCP (or TLS), greeting, LOGIN.
pub(crate) async fn connect(
    endpoint: &ImapEndpoint,
    limit: Duration,
) -> Result<ImapSession, ImapError> {
    let tcp = tokio::time::timeout(
        limit,
        TcpStream::connect((endpoint.host.as_str(), endpoint.port)),
    )
    .await
    .map_err(|_| ImapError::Timeout("connect"))?
    .map_err(ImapError::Connect)?;
    let _ = tcp.set_nodelay(true);
    let io: Box<dyn Io> = match endpoint.security {
        Security::Plain | Security::StartTls => Box::new(tcp),
        Security::Tls => {
            let mut roots = rustls::RootCertStore::empty();
            match &endpoint.tls_ca_file {
                Some(path) => {
                    use rustls::pki_types::pem::PemObject as _;
                    let certs = rustls::pki_types::CertificateDer::pem_file_iter(path)
                        .map_err(|e| ImapError::Tls(format!("{}: {e}", path.display())))?;
                    for cert in certs {
                        let cert =
                            cert.map_err(|e| ImapError::Tls(format!("{}: {e}", path.display())))?;
                        roots
                            .add(cert)
                            .map_err(|e| ImapError::Tls(format!("{}: {e}", path.display())))?;
                    }
                }
                None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
            }
            let tls = rustls::ClientConfig::builder()
                .with_root_certificates(roots)
                .with_no_client_auth();
            let name = rustls::pki_types::ServerName::try_from(endpoint.host.clone())
                .map_err(|e| ImapError::Tls(e.to_string()))?;
            let stream = tokio::time::timeout(
                limit,
                tokio_rustls::TlsConnector::from(Arc::new(tls)).connect(name, tcp),
            )
            .await
            .map_err(|_| ImapError::Timeout("tls handshake"))?
            .map_err(|e| ImapError::Tls(e.to_string()))?;
            Box::new(stream)
        }
    };
    let mut client = async_imap::Client::new(io);
    match tokio::time::timeout(limit, client.read_response()).await {
        Ok(Ok(Some(_))) => {}
        Ok(Ok(None)) => return Err(ImapError::Missing("a greeting")),
        Ok(Err(e)) => return Err(ImapError::Connect(e)),
        Err(_) => return Err(ImapError::Timeout("greeting")),
    }
    match tokio::time::timeout(limit, client.login(&endpoint.user, &endpoint.password)).await {
        Ok(Ok(session)) => Ok(session),
        Ok(Err((e, _))) => Err(ImapError::Login(e)),
        Err(_) => Err(ImapError::Timeout("login")),
    }
}

/// UIDs above `after` with their sizes, ascending.
pub(crate) async fn list_new(
    session: &mut ImapSession,
    after: u32,
    limit: Duration,
) -> Result<Vec<(u32, u64)>, ImapError> {
    let from = after.saturating_add(1);
    let mut found: Vec<(u32, u64)> = within(limit, "UID FETCH (sizes)", async {
        session
            .uid_fetch(format!("{from}:*"), "(UID RFC822.SIZE)")
            .await?
            .try_collect::<Vec<_>>()
            .await
    })
    .await?
    .into_iter()
    // A size the server did not give is unknown: the message counts as too big.
    .filter_map(|f| Some((f.uid?, f.size.map_or(u64::MAX, u64::from))))
    // `n:*` always names the highest message, even below n.
    .filter(|(uid, _)| *uid > after)
    .collect();
    // An unsolicited FETCH (flags) may name a UID again without its size:
    // sorted by (uid, size), the first of each UID is the size that was given.
    found.sort_unstable();
    found.dedup_by_key(|(uid, _)| *uid);
    Ok(found)
}

/// Whole messages (or only headers) of `uids`, by UID.
pub(crate) async fn fetch(
    session: &mut ImapSession,
    uids: &[u32],
    headers_only: bool,
    limit: Duration,
) -> Result<Vec<(u32, Vec<u8>)>, ImapError> {
    if uids.is_empty() {
        return Ok(Vec::new());
    }
    let set = uid_set(uids);
    let query = if headers_only {
        "(UID BODY.PEEK[HEADER])"
    } else {
        "(UID BODY.PEEK[])"
    };
    let fetched = within(limit, "UID FETCH (bodies)", async {
        session
            .uid_fetch(set, query)
            .await?
            .try_collect::<Vec<_>>()
            .await
    })
    .await?;
    Ok(fetched
        .into_iter()
        .filter_map(|f| {
            let bytes = if headers_only { f.header() } else { f.body() };
            Some((f.uid?, bytes?.to_vec()))
        })
        .collect())
}

/// `1,3,5:9` for a sorted list of UIDs.
pub(crate) fn uid_set(uids: &[u32]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < uids.len() {
        let start = uids[i];
        let mut end = start;
        while i + 1 < uids.len() && uids[i + 1] == end.saturating_add(1) {
            i += 1;
            end = uids[i];
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}:{end}"));
        }
        i += 1;
    }
    out
}

/// What happens to an imported message on the server.
#[derive(Debug, Clone)]
pub(crate) enum Settle {
    Seen,
    Move(String),
    /// For servers without MOVE: COPY, `\Deleted`, UID EXPUNGE (UIDPLUS).
    CopyDelete(String),
}

/// Which of `uids` are still in the selected folder.
pub(crate) async fn present(
    session: &mut ImapSession,
    uids: &[u32],
    limit: Duration,
) -> Result<Vec<u32>, ImapError> {
    if uids.is_empty() {
        return Ok(Vec::new());
    }
    let set = uid_set(uids);
    let found = within(
        limit,
        "UID SEARCH",
        session.uid_search(format!("UID {set}")),
    )
    .await?;
    let mut found: Vec<u32> = found.into_iter().filter(|u| uids.contains(u)).collect();
    found.sort_unstable();
    Ok(found)
}

/// Marks `uids` seen, or moves them away. UIDs already gone (moved before a
/// crash) are skipped.
pub(crate) async fn settle(
    session: &mut ImapSession,
    uids: &[u32],
    how: &Settle,
    limit: Duration,
) -> Result<(), ImapError> {
    let uids = present(session, uids, limit).await?;
    if uids.is_empty() {
        return Ok(());
    }
    let set = uid_set(&uids);
    let store = |flag: &'static str| format!("+FLAGS.SILENT ({flag})");
    match how {
        Settle::Seen => {
            within(limit, "UID STORE", async {
                session
                    .uid_store(set, store("\\Seen"))
                    .await?
                    .try_collect::<Vec<_>>()
                    .await
            })
            .await?;
        }
        Settle::Move(folder) => {
            within(limit, "UID MOVE", session.uid_mv(set, folder)).await?;
        }
        Settle::CopyDelete(folder) => {
            within(limit, "UID COPY", session.uid_copy(&set, folder)).await?;
            within(limit, "UID STORE", async {
                session
                    .uid_store(&set, store("\\Seen \\Deleted"))
                    .await?
                    .try_collect::<Vec<_>>()
                    .await
            })
            .await?;
            within(limit, "UID EXPUNGE", async {
                session
                    .uid_expunge(&set)
                    .await?
                    .try_collect::<Vec<_>>()
                    .await
            })
            .await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn uid_sets_compress_runs() {
        assert_eq!(super::uid_set(&[1, 2, 3, 5, 7, 8]), "1:3,5,7:8");
        assert_eq!(super::uid_set(&[4]), "4");
        assert_eq!(super::uid_set(&[]), "");
    }
}
