//! Which customer an interaction belongs to, from the identifiers it carries.
//!
//! The store looks up who owns each identifier; [`resolve`] decides. It is the
//! whole rule, so it is tested here without a database.

use crate::{CustomerIdentifier, IdentifierKind};

/// What to do when one interaction carries identifiers of two or more customers
/// (a walk-in customer gives a phone the company already knows under another record).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConflictPolicy {
    /// Merge them at once into the strongest identifier's customer (audited, reversible).
    Merge,
    /// Keep them apart, attach the interaction to the strongest identifier's
    /// customer, and raise a merge suggestion for a person to decide.
    #[default]
    Suggest,
}

impl std::str::FromStr for ConflictPolicy {
    type Err = crate::DomainError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "merge" => Ok(Self::Merge),
            "suggest" => Ok(Self::Suggest),
            _ => Err(crate::DomainError::invalid(
                "identity.on_conflict",
                "must be merge or suggest",
            )),
        }
    }
}

/// How strongly an identifier names one person: a tax code beats a CRM id,
/// which beats a loyalty card, an email, then a phone (shared by a household).
pub fn strength(kind: IdentifierKind) -> u8 {
    match kind {
        IdentifierKind::CodiceFiscale => 5,
        IdentifierKind::ExternalId => 4,
        IdentifierKind::LoyaltyCard => 3,
        IdentifierKind::Email => 2,
        IdentifierKind::Phone => 1,
    }
}

/// The decision for one interaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution<C> {
    /// No identifiers: an anonymous interaction.
    Anonymous,
    /// Nobody owns any of them: a new customer with all of them.
    New(Vec<CustomerIdentifier>),
    /// The interaction belongs to `customer`; `add` are identifiers nobody
    /// owned yet, now the customer's; `others` are further customers who own
    /// some of the identifiers: to be merged into `customer` or suggested for
    /// a merge, per `action`.
    Existing {
        customer: C,
        add: Vec<CustomerIdentifier>,
        others: Vec<C>,
        action: ConflictPolicy,
    },
}

/// Decides which customer an interaction with `identifiers` belongs to, given
/// each identifier's current owner. Duplicated identifiers count once.
pub fn resolve<C: Clone + PartialEq>(
    identifiers: &[(CustomerIdentifier, Option<C>)],
    policy: ConflictPolicy,
) -> Resolution<C> {
    if identifiers.is_empty() {
        return Resolution::Anonymous;
    }
    // The owner of the strongest owned identifier (the first of equals) leads.
    let mut lead: Option<(&C, u8)> = None;
    for (id, owner) in identifiers {
        if let Some(c) = owner {
            let s = strength(id.kind());
            if lead.is_none_or(|(_, best)| s > best) {
                lead = Some((c, s));
            }
        }
    }
    let mut add: Vec<CustomerIdentifier> = Vec::new();
    for (id, owner) in identifiers {
        if owner.is_none() && !add.contains(id) {
            add.push(id.clone());
        }
    }
    let Some((customer, _)) = lead else {
        return Resolution::New(add);
    };
    let mut others: Vec<C> = Vec::new();
    for (_, owner) in identifiers {
        if let Some(c) = owner
            && c != customer
            && !others.contains(c)
        {
            others.push(c.clone());
        }
    }
    Resolution::Existing {
        customer: customer.clone(),
        add,
        others,
        action: policy,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::IdentityRules;

    fn id(kind: IdentifierKind, raw: &str) -> CustomerIdentifier {
        IdentityRules::default()
            .normalize(kind, raw)
            .expect("valid identifier")
    }

    #[test]
    fn no_identifiers_is_anonymous_and_unknown_ones_make_a_customer() {
        assert_eq!(
            resolve::<u32>(&[], ConflictPolicy::Suggest),
            Resolution::Anonymous
        );
        let phone = id(IdentifierKind::Phone, "347 123 4567");
        assert_eq!(
            resolve::<u32>(
                &[(phone.clone(), None), (phone.clone(), None)],
                ConflictPolicy::Suggest
            ),
            Resolution::New(vec![phone])
        );
    }

    #[test]
    fn a_known_identifier_attaches_and_adopts_the_unknown_ones() {
        let phone = id(IdentifierKind::Phone, "+39 347 123 4567");
        let email = id(IdentifierKind::Email, "Ada@Example.org");
        assert_eq!(
            resolve(
                &[(phone, Some(7u32)), (email.clone(), None)],
                ConflictPolicy::Merge
            ),
            Resolution::Existing {
                customer: 7,
                add: vec![email],
                others: vec![],
                action: ConflictPolicy::Merge,
            }
        );
    }

    #[test]
    fn two_owners_lead_by_the_strongest_identifier() {
        // A walk-in customer: the tax code is on record 2, the phone on record 1.
        let phone = id(IdentifierKind::Phone, "3471234567");
        let cf = id(IdentifierKind::CodiceFiscale, "RSSMRA85T10A562S");
        let r = resolve(
            &[(phone, Some(1u32)), (cf, Some(2u32))],
            ConflictPolicy::Suggest,
        );
        assert_eq!(
            r,
            Resolution::Existing {
                customer: 2,
                add: vec![],
                others: vec![1],
                action: ConflictPolicy::Suggest,
            }
        );
        assert_eq!("merge".parse(), Ok(ConflictPolicy::Merge));
        assert!("link".parse::<ConflictPolicy>().is_err());
    }

    #[test]
    fn equal_strength_keeps_the_first_and_lists_each_other_once() {
        let a = id(IdentifierKind::Phone, "3471234567");
        let b = id(IdentifierKind::Phone, "3479999999");
        let c = id(IdentifierKind::Phone, "3475555555");
        let r = resolve(
            &[(a, Some(1u32)), (b, Some(2)), (c, Some(2))],
            ConflictPolicy::Suggest,
        );
        let Resolution::Existing {
            customer, others, ..
        } = r
        else {
            panic!("expected an existing customer, got {r:?}")
        };
        assert_eq!((customer, others), (1, vec![2]));
    }
}
