//! What a number agreed to receive (`sms_consents`: phone, purpose,
//! revoked, as of when): recording a change ([`set_consent`], from a keyword
//! or from history's `consent.sms.changed`) and the check before each send
//! ([`blocked`]).

use centralino_store::StoreError;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};

use crate::entities::{consent, conversation, outbound};

/// Records the consent of `phone` for `purpose` as of `at`; an older record
/// than the one kept changes nothing (checked in the statement itself, so a
/// late echo racing a fresh keyword cannot undo it).
pub(crate) async fn set_consent(
    txn: &impl ConnectionTrait,
    phone: &str,
    purpose: &str,
    revoked: bool,
    at: i64,
) -> Result<(), StoreError> {
    let update = || {
        consent::Entity::update_many()
            .col_expr(consent::Column::Revoked, Expr::value(revoked))
            .col_expr(consent::Column::At, Expr::value(at))
            .filter(consent::Column::Phone.eq(phone))
            .filter(consent::Column::Purpose.eq(purpose))
            .filter(consent::Column::At.lte(at))
    };
    if update().exec(txn).await?.rows_affected > 0 {
        return Ok(());
    }
    let inserted = consent::Entity::insert(consent::ActiveModel {
        phone: Set(phone.to_owned()),
        purpose: Set(purpose.to_owned()),
        revoked: Set(revoked),
        at: Set(at),
    })
    .on_conflict_do_nothing()
    .exec_without_returning(txn)
    .await?;
    if !matches!(inserted, sea_orm::TryInsertResult::Inserted(n) if n > 0) {
        // Someone inserted meanwhile: apply ours if it is the newer.
        update().exec(txn).await?;
    }
    Ok(())
}

/// Why a queued message must not go now, if it must not: an opt-out.
pub(crate) async fn blocked(
    db: &impl ConnectionTrait,
    row: &outbound::Model,
) -> Result<Option<&'static str>, StoreError> {
    if row.purpose == "transactional" {
        return Ok(None);
    }
    let revoked = |purpose: &str| {
        consent::Entity::find_by_id((row.recipient.clone(), purpose.to_owned())).one(db)
    };
    let all = revoked("all").await?.filter(|c| c.revoked);
    if row.purpose.is_empty() {
        // A reply: held back by an opt-out, unless the customer wrote since.
        let Some(all) = all else { return Ok(None) };
        let wrote_since = conversation::Entity::find_by_id(row.interaction_id.clone())
            .one(db)
            .await?
            .is_some_and(|c| c.last_inbound_at > all.at);
        return Ok((!wrote_since).then_some("the customer opted out of SMS"));
    }
    if all.is_some() || revoked(&row.purpose).await?.is_some_and(|c| c.revoked) {
        return Ok(Some("the customer opted out of this purpose"));
    }
    Ok(None)
}
