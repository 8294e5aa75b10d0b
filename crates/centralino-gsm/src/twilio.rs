//! Twilio's webhook signature: `X-Twilio-Signature` is
//! base64(HMAC-SHA1(auth token, full URL + every POST parameter sorted by name,
//! each name followed by its value, no separators)).

use base64::Engine as _;
use hmac::{Hmac, Mac as _};
use subtle::ConstantTimeEq as _;

type HmacSha1 = Hmac<sha1::Sha1>;

/// The signature Twilio sends for a POST of `params` to `url`.
pub fn signature(auth_token: &[u8], url: &str, params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    // By name, then by value for repeated names (as Twilio's own libraries do).
    sorted.sort();
    // An HMAC key of any length is accepted; `new_from_slice` cannot fail here.
    let Ok(mut mac) = HmacSha1::new_from_slice(auth_token) else {
        return String::new();
    };
    mac.update(url.as_bytes());
    for (name, value) in sorted {
        mac.update(name.as_bytes());
        mac.update(value.as_bytes());
    }
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Whether `claimed` is the signature of this request, compared in constant time.
pub fn verify(auth_token: &[u8], url: &str, params: &[(String, String)], claimed: &str) -> bool {
    let expected = signature(auth_token, url, params);
    !claimed.is_empty() && bool::from(expected.as_bytes().ct_eq(claimed.trim().as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vector() -> Vec<(String, String)> {
        [
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+12349013030"),
            ("Digits", "1234"),
            ("From", "+12349013030"),
            ("To", "+18005551212"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
    }

    #[test]
    fn twilios_published_vector() {
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        assert_eq!(
            signature(b"12345", url, &vector()),
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        );
        assert!(verify(
            b"12345",
            url,
            &vector(),
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        ));
    }

    #[test]
    fn any_change_breaks_it() {
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        let good = "0/KCTR6DLpKmkAf8muzZqo1nDgQ=";
        assert!(!verify(b"12346", url, &vector(), good), "another token");
        assert!(
            !verify(b"12345", "https://mycompany.com/myapp.php", &vector(), good),
            "another URL"
        );
        let mut tampered = vector();
        tampered[2].1 = "1235".into();
        assert!(
            !verify(b"12345", url, &tampered, good),
            "a changed parameter"
        );
        assert!(!verify(b"12345", url, &vector(), ""), "no signature");
    }
}
