//! Ticket printers: ESC/POS sent raw over TCP (the printer's port 9100).
//! Printing never holds up a ticket: the kiosk has its answer already, and
//! a printer that is off or jammed is logged.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::AsyncWriteExt as _;

/// What goes on the paper.
pub(crate) struct Printout<'a> {
    pub label: &'a str,
    pub service: &'a str,
    pub site: &'a str,
    pub position: u64,
    pub wait_mins: Option<u64>,
    /// Local date and time of issue.
    pub issued: &'a str,
}

const ESC: u8 = 0x1b;
const GS: u8 = 0x1d;

/// Printable ASCII only: the printer's default code page differs by model,
/// and control bytes would be commands.
fn text(out: &mut Vec<u8>, s: &str) {
    out.extend(s.chars().map(|c| {
        if c.is_ascii() && !c.is_ascii_control() {
            c as u8
        } else {
            b'?'
        }
    }));
    out.push(b'\n');
}

/// The ESC/POS bytes of a ticket: initialize, centred, the number large,
/// the details, feed and cut.
pub(crate) fn render(p: &Printout<'_>) -> Vec<u8> {
    let mut out = vec![ESC, b'@', ESC, b'a', 1];
    text(&mut out, p.site);
    out.extend([GS, b'!', 0x11]);
    text(&mut out, p.label);
    out.extend([GS, b'!', 0x00]);
    text(&mut out, p.service);
    text(&mut out, &format!("Posizione / Position: {}", p.position));
    if let Some(m) = p.wait_mins {
        text(&mut out, &format!("Attesa / Wait: ~{m} min"));
    }
    text(&mut out, p.issued);
    out.extend([ESC, b'd', 4, GS, b'V', 0]);
    out
}

/// Sends `bytes` to the printer in the background.
pub(crate) fn print(addr: SocketAddr, site: String, bytes: Vec<u8>) {
    tokio::spawn(async move {
        let sent = tokio::time::timeout(Duration::from_secs(5), async {
            let mut conn = tokio::net::TcpStream::connect(addr).await?;
            conn.write_all(&bytes).await?;
            conn.shutdown().await
        })
        .await;
        match sent {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(site = %site, printer = %addr, error = %e, "desk: the ticket printer failed");
            }
            Err(_) => {
                tracing::warn!(site = %site, printer = %addr, "desk: the ticket printer did not answer");
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ticket_is_initialized_large_and_cut_with_nothing_but_ascii() {
        let bytes = render(&Printout {
            label: "A007",
            service: "Pagamenti – bollette",
            site: "roma\u{1b}",
            position: 3,
            wait_mins: Some(12),
            issued: "14/01/2026 10:05",
        });
        assert!(bytes.starts_with(&[ESC, b'@']));
        assert!(bytes.ends_with(&[GS, b'V', 0]));
        let s = String::from_utf8_lossy(&bytes);
        assert!(s.contains("\u{1d}!\u{11}A007\n\u{1d}!\u{0}"), "{s:?}");
        assert!(s.contains("Pagamenti ? bollette\n"), "{s:?}");
        assert!(s.contains("roma?\n"), "a control byte is not sent: {s:?}");
        assert!(s.contains("Position: 3") && s.contains("~12 min"));
    }
}
