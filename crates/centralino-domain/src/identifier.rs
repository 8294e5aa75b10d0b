//! Customer identifiers and their normalization rules.
//!
//! Two identifiers are the same customer key exactly when their normalized
//! forms are equal, so every edge normalizes through [`IdentityRules`] before
//! storing or looking anything up.

use std::fmt;

use phonenumber::country;

use crate::DomainError;

/// The kinds of identifier a customer can be recognised by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IdentifierKind {
    /// A phone number, normalized to E.164 (`+393471234567`).
    Phone,
    /// An email address, lowercased, domain in ASCII (punycode).
    Email,
    /// Italian tax code (codice fiscale), uppercase, checksum verified.
    CodiceFiscale,
    /// A loyalty card number, uppercase alphanumeric.
    LoyaltyCard,
    /// An id in the integrator's CRM, kept verbatim (trimmed).
    ExternalId,
}

impl IdentifierKind {
    pub fn as_str(self) -> &'static str {
        match self {
            IdentifierKind::Phone => "phone",
            IdentifierKind::Email => "email",
            IdentifierKind::CodiceFiscale => "codice_fiscale",
            IdentifierKind::LoyaltyCard => "loyalty_card",
            IdentifierKind::ExternalId => "external_id",
        }
    }
}

impl fmt::Display for IdentifierKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A normalized customer identifier. Construct it through [`IdentityRules::normalize`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CustomerIdentifier {
    kind: IdentifierKind,
    value: String,
}

impl CustomerIdentifier {
    pub fn kind(&self) -> IdentifierKind {
        self.kind
    }

    pub fn value(&self) -> &str {
        &self.value
    }
}

impl fmt::Display for CustomerIdentifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind, self.value)
    }
}

/// Normalization rules, configured per deployment (the default phone region).
#[derive(Debug, Clone)]
pub struct IdentityRules {
    default_region: country::Id,
}

impl Default for IdentityRules {
    /// Italian numbers by default.
    fn default() -> Self {
        Self {
            default_region: country::Id::IT,
        }
    }
}

const MAX_EMAIL_LEN: usize = 254;
const MAX_LOCAL_LEN: usize = 64;
const MAX_EXTERNAL_LEN: usize = 128;

impl IdentityRules {
    /// Rules with `region` (ISO 3166-1 alpha-2, e.g. `IT`, `DE`) as the region of
    /// phone numbers written without an international prefix.
    pub fn with_default_region(region: &str) -> Result<Self, DomainError> {
        let default_region = region
            .trim()
            .to_ascii_uppercase()
            .parse::<country::Id>()
            .map_err(|_| {
                DomainError::invalid("default_region", "is not an ISO 3166-1 alpha-2 region")
            })?;
        Ok(Self { default_region })
    }

    /// Normalizes a raw identifier of `kind`. The error names the kind as the field.
    pub fn normalize(
        &self,
        kind: IdentifierKind,
        raw: &str,
    ) -> Result<CustomerIdentifier, DomainError> {
        let raw = raw.trim();
        let field = match kind {
            IdentifierKind::Phone => "phone",
            IdentifierKind::Email => "email",
            IdentifierKind::CodiceFiscale => "codice_fiscale",
            IdentifierKind::LoyaltyCard => "loyalty_card",
            IdentifierKind::ExternalId => "external_id",
        };
        if raw.is_empty() {
            return Err(DomainError::Missing { field });
        }
        let value = match kind {
            IdentifierKind::Phone => self.phone(raw)?,
            IdentifierKind::Email => email(raw)?,
            IdentifierKind::CodiceFiscale => codice_fiscale(raw)?,
            IdentifierKind::LoyaltyCard => loyalty_card(raw)?,
            IdentifierKind::ExternalId => external_id(raw)?,
        };
        Ok(CustomerIdentifier { kind, value })
    }

    fn phone(&self, raw: &str) -> Result<String, DomainError> {
        // `00` is the international prefix in most of the world, Italy included.
        let cleaned: String = match raw.strip_prefix("00") {
            Some(rest) => format!("+{rest}"),
            None => raw.to_owned(),
        };
        if cleaned.len() > 40
            || !cleaned
                .chars()
                .all(|c| c.is_ascii_digit() || " +-./()".contains(c))
        {
            return Err(DomainError::invalid(
                "phone",
                "contains characters other than digits",
            ));
        }
        let number = phonenumber::parse(Some(self.default_region), &cleaned)
            .map_err(|_| DomainError::invalid("phone", "is not a phone number"))?;
        if !phonenumber::is_valid(&number) {
            return Err(DomainError::invalid("phone", "is not a valid phone number"));
        }
        Ok(number.format().mode(phonenumber::Mode::E164).to_string())
    }
}

fn email(raw: &str) -> Result<String, DomainError> {
    let (local, domain) = raw
        .rsplit_once('@')
        .ok_or_else(|| DomainError::invalid("email", "has no @"))?;
    if local.is_empty() || local.len() > MAX_LOCAL_LEN {
        return Err(DomainError::invalid(
            "email",
            "local part must be 1 to 64 bytes",
        ));
    }
    if local
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '@' || c == '<' || c == '>')
    {
        return Err(DomainError::invalid(
            "email",
            "local part has forbidden characters",
        ));
    }
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return Err(DomainError::invalid(
            "email",
            "local part has misplaced dots",
        ));
    }
    let domain = idna::domain_to_ascii(domain)
        .map_err(|_| DomainError::invalid("email", "domain is not a valid domain name"))?;
    if domain.is_empty()
        || !domain.contains('.')
        || domain.starts_with('.')
        || domain.ends_with('.')
    {
        return Err(DomainError::invalid(
            "email",
            "domain is not a valid domain name",
        ));
    }
    let value = format!("{}@{}", local.to_lowercase(), domain);
    if value.len() > MAX_EMAIL_LEN {
        return Err(DomainError::invalid("email", "is longer than 254 bytes"));
    }
    Ok(value)
}

/// Value of a character in an odd (1st, 3rd, ...) position of a codice fiscale.
fn cf_odd_value(c: u8) -> u32 {
    const ODD: [u32; 26] = [
        1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20, 11, 3, 6, 8, 12, 14, 16, 10, 22, 25, 24,
        23,
    ];
    let idx = if c.is_ascii_digit() {
        c - b'0'
    } else {
        c - b'A'
    };
    ODD[usize::from(idx)]
}

fn cf_even_value(c: u8) -> u32 {
    u32::from(if c.is_ascii_digit() {
        c - b'0'
    } else {
        c - b'A'
    })
}

fn codice_fiscale(raw: &str) -> Result<String, DomainError> {
    const FIELD: &str = "codice_fiscale";
    let cf: String = raw.chars().filter(|c| !c.is_whitespace()).collect();
    let cf = cf.to_ascii_uppercase();
    let b = cf.as_bytes();
    if b.len() != 16 || !b.iter().all(u8::is_ascii_alphanumeric) {
        return Err(DomainError::invalid(FIELD, "must be 16 letters and digits"));
    }
    // Digits may be replaced by letters (omocodia) L M N P Q R S T U V.
    let digit_like = |c: u8| c.is_ascii_digit() || b"LMNPQRSTUV".contains(&c);
    let letters_ok = [0, 1, 2, 3, 4, 5, 8, 11, 15]
        .iter()
        .all(|&i| b[i].is_ascii_uppercase());
    let digits_ok = [6, 7, 9, 10, 12, 13, 14].iter().all(|&i| digit_like(b[i]));
    if !letters_ok || !digits_ok || !b"ABCDEHLMPRST".contains(&b[8]) {
        return Err(DomainError::invalid(
            FIELD,
            "does not have the codice fiscale layout",
        ));
    }
    let sum: u32 = b[..15]
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            if i % 2 == 0 {
                cf_odd_value(c)
            } else {
                cf_even_value(c)
            }
        })
        .sum();
    let expected = b'A' + u8::try_from(sum % 26).unwrap_or(0);
    if b[15] != expected {
        return Err(DomainError::invalid(
            FIELD,
            "check character does not match",
        ));
    }
    Ok(cf)
}

fn loyalty_card(raw: &str) -> Result<String, DomainError> {
    let card: String = raw
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .collect::<String>()
        .to_ascii_uppercase();
    if !(4..=32).contains(&card.len()) || !card.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(DomainError::invalid(
            "loyalty_card",
            "must be 4 to 32 letters and digits",
        ));
    }
    Ok(card)
}

fn external_id(raw: &str) -> Result<String, DomainError> {
    if raw.len() > MAX_EXTERNAL_LEN || raw.chars().any(char::is_control) {
        return Err(DomainError::invalid(
            "external_id",
            "must be at most 128 bytes without control characters",
        ));
    }
    Ok(raw.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(kind: IdentifierKind, raw: &str) -> Result<String, DomainError> {
        IdentityRules::default()
            .normalize(kind, raw)
            .map(|i| i.value().to_owned())
    }

    #[test]
    fn phones_normalize_to_e164_with_italy_by_default() {
        for raw in [
            "347 123 4567",
            "+39 347 1234567",
            "0039 347-123-4567",
            "(347) 1234567",
        ] {
            assert_eq!(
                norm(IdentifierKind::Phone, raw).as_deref(),
                Ok("+393471234567"),
                "{raw}"
            );
        }
        // Italian landlines keep their leading zero.
        assert_eq!(
            norm(IdentifierKind::Phone, "06 1234 5678").as_deref(),
            Ok("+390612345678")
        );
    }

    #[test]
    fn phone_default_region_is_configurable() {
        let uk = IdentityRules::with_default_region("gb").expect("gb is a region");
        let id = uk
            .normalize(IdentifierKind::Phone, "020 7946 0018")
            .expect("valid uk number");
        assert_eq!(id.value(), "+442079460018");
        assert!(IdentityRules::with_default_region("XX").is_err());
    }

    #[test]
    fn bad_phones_name_the_field() {
        for raw in ["abc", "12", "+39 347 12345678901234", "347;DROP TABLE"] {
            let err = norm(IdentifierKind::Phone, raw).unwrap_err();
            assert_eq!(err.field(), "phone", "{raw}");
        }
        assert_eq!(
            norm(IdentifierKind::Phone, "  "),
            Err(DomainError::Missing { field: "phone" })
        );
    }

    #[test]
    fn emails_are_lowercased_and_punycoded() {
        assert_eq!(
            norm(IdentifierKind::Email, " Mario.Rossi@Example.IT ").as_deref(),
            Ok("mario.rossi@example.it")
        );
        assert_eq!(
            norm(IdentifierKind::Email, "anna@caffè.it").as_deref(),
            Ok("anna@xn--caff-8oa.it")
        );
        for raw in [
            "no-at",
            "@example.it",
            "a@",
            "a b@example.it",
            "a..b@example.it",
            "a@localhost",
        ] {
            assert_eq!(
                norm(IdentifierKind::Email, raw).unwrap_err().field(),
                "email",
                "{raw}"
            );
        }
    }

    #[test]
    fn codice_fiscale_checksum_is_verified() {
        assert_eq!(
            norm(IdentifierKind::CodiceFiscale, "rssmra85t10a562s").as_deref(),
            Ok("RSSMRA85T10A562S")
        );
        // Omocodia: digits replaced by letters, checksum recomputed.
        assert_eq!(
            norm(IdentifierKind::CodiceFiscale, "RSSMRA85T10A56NH").as_deref(),
            Ok("RSSMRA85T10A56NH")
        );
        for raw in [
            "RSSMRA85T10A562T",
            "RSSMRA85T10A562",
            "RSSMRA85Z10A562S",
            "1SSMRA85T10A562S",
        ] {
            assert_eq!(
                norm(IdentifierKind::CodiceFiscale, raw)
                    .unwrap_err()
                    .field(),
                "codice_fiscale",
                "{raw}"
            );
        }
    }

    #[test]
    fn loyalty_and_external_ids() {
        assert_eq!(
            norm(IdentifierKind::LoyaltyCard, "ab-12 34").as_deref(),
            Ok("AB1234")
        );
        assert!(norm(IdentifierKind::LoyaltyCard, "x").is_err());
        assert_eq!(
            norm(IdentifierKind::ExternalId, " crm:42 ").as_deref(),
            Ok("crm:42")
        );
        assert!(norm(IdentifierKind::ExternalId, "a\u{0}b").is_err());
    }
}
