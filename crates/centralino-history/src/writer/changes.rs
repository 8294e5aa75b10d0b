//! The writer's API changes: update, merge, unmerge, consent and erase, each
//! in a transaction of its own with its answer stored under the caller's
//! request id (`change`); the fold of bus events stays in the parent module.

use super::*;

impl Writer {
    pub(super) async fn change(
        &self,
        actor: &str,
        request_id: &str,
        change: Change,
    ) -> Result<Changed, ApiError> {
        let method = method_of(&change);
        // A lost database is UNAVAILABLE (retry later); a statement the
        // database refuses is INTERNAL: retrying it cannot help.
        let unavailable = |e: StoreError| {
            tracing::warn!(error = %e, "history change not written");
            ApiError::from(e)
        };
        let txn = self.fence.begin(&self.db).await.map_err(unavailable)?;
        if let Some(previous) =
            request::Entity::find_by_id((actor.to_owned(), request_id.to_owned()))
                .one(&txn)
                .await
                .map_err(|e| unavailable(e.into()))?
        {
            if previous.method == ERASED_ANSWER {
                return Err(ApiError::FailedPrecondition(
                    "request_id: the customer this request was about was erased".into(),
                ));
            }
            if previous.method != method {
                return Err(ApiError::invalid(
                    "request_id",
                    format!("was already used for a {} request", previous.method),
                ));
            }
            return Changed::decode(&previous.method, &previous.response)
                .ok_or_else(|| ApiError::Internal("stored answer does not decode".into()));
        }
        let now = now_ms();
        // The answer and the customers it is about (kept with it, so that
        // erasing one of them erases the stored answer too).
        let result = match change {
            Change::Update(req) => {
                let about = vec![req.customer_id.clone()];
                self.update(&txn, actor, req, now).await.map(|a| (a, about))
            }
            Change::Merge {
                survivor,
                merged,
                reason,
            } => self
                .merge(&txn, &survivor, &merged, actor, &reason, now)
                .await
                .map(|m| (Changed::Merge(m), vec![survivor.clone(), merged.clone()])),
            Change::Unmerge { merge_id, reason } => {
                self.unmerge(&txn, &merge_id, actor, &reason, now).await
            }
            Change::Consent(input) => self.consent(&txn, actor, request_id, input, now).await,
            Change::Erase { customer, reason } => self
                .erase(&txn, &customer, actor, &reason, now)
                .await
                .map(|a| (a, vec![customer.clone()])),
            // A task's answer names no customer (erasing theirs keeps it).
            Change::CreateTask(input) => self
                .create_task(&txn, actor, input, now)
                .await
                .map(|a| (a, Vec::new())),
            Change::CloseTask { task, outcome } => self
                .close_task(&txn, &task, &outcome, now)
                .await
                .map(|a| (a, Vec::new())),
        };
        let (answer, about) = match result {
            Ok(a) => a,
            Err(Fail::Api(e)) => return Err(e),
            Err(Fail::Store(e)) => return Err(unavailable(e)),
        };
        let stored = request::ActiveModel {
            actor: Set(actor.to_owned()),
            request_id: Set(request_id.to_owned()),
            // The change's method, which a retry is compared with (a task's
            // answer is the same kind for a creation and a closing).
            method: Set(method.to_owned()),
            response: Set(answer.encode()),
            at: Set(now),
            customers: Set(Some(about.join(" "))),
        };
        let written = async {
            request::Entity::insert(stored)
                .exec_without_returning(&txn)
                .await?;
            txn.commit().await
        };
        written.await.map_err(|e| unavailable(e.into()))?;
        Ok(answer)
    }

    async fn update(
        &self,
        txn: &impl ConnectionTrait,
        actor: &str,
        req: v1::UpdateCustomerRequest,
        now: i64,
    ) -> Result<Changed, Fail> {
        let c = live_customer(txn, &req.customer_id, "customer_id").await?;
        let mut attributes = parse_map(&c.attributes);
        let mut changed: Vec<String> = Vec::new();
        for (k, v) in &req.attributes {
            if v.is_empty() {
                attributes.remove(k);
            } else {
                attributes.insert(k.clone(), v.clone());
            }
            changed.push(format!("attribute {k}"));
        }
        let mut active = c.clone().into_active_model();
        if let Some(name) = &req.display_name {
            active.display_name = Set(name.clone());
            active.name_key = Set(name.to_lowercase());
            changed.push("display_name".into());
        }
        active.attributes = Set(json_map(&attributes));
        active.updated_at = Set(now);
        active.update(txn).await?;
        for raw in &req.add_identifiers {
            let i = normalize(&self.cfg.rules, raw, "add_identifiers")?;
            match identifier::Entity::find_by_id(key_of(&i)).one(txn).await? {
                Some(owner) if owner.customer_id == c.id => {}
                Some(_) => {
                    return Err(ApiError::FailedPrecondition(format!(
                        "add_identifiers: the {} belongs to another customer; merge the two instead",
                        i.kind()
                    ))
                    .into());
                }
                None => {
                    identifier::ActiveModel {
                        kind: Set(i.kind().as_str().to_owned()),
                        value: Set(i.value().to_owned()),
                        customer_id: Set(c.id.clone()),
                        added_at: Set(now),
                    }
                    .insert(txn)
                    .await?;
                    changed.push(format!("added {}", i.kind()));
                }
            }
        }
        for raw in &req.remove_identifiers {
            let i = normalize(&self.cfg.rules, raw, "remove_identifiers")?;
            let gone = identifier::Entity::delete_many()
                .filter(identifier::Column::Kind.eq(i.kind().as_str()))
                .filter(identifier::Column::Value.eq(i.value()))
                .filter(identifier::Column::CustomerId.eq(c.id.clone()))
                .exec(txn)
                .await?;
            if gone.rows_affected > 0 {
                changed.push(format!("removed {}", i.kind()));
            }
        }
        audit_row(txn, &c.id, "update", actor, "", &changed.join(", "), now).await?;
        Ok(Changed::Customer(
            read::customer(txn, &c.id)
                .await?
                .ok_or_else(|| Fail::Api(ApiError::Internal("updated customer vanished".into())))?,
        ))
    }

    /// Moves everything of `merged` to `survivor`, recording what moved.
    pub(super) async fn merge(
        &self,
        txn: &impl ConnectionTrait,
        survivor: &str,
        merged: &str,
        actor: &str,
        reason: &str,
        now: i64,
    ) -> Result<v1::MergeResult, Fail> {
        if survivor == merged {
            return Err(ApiError::invalid("merged_id", "is the survivor itself").into());
        }
        let s = live_customer(txn, survivor, "survivor_id").await?;
        let m = live_customer(txn, merged, "merged_id").await?;
        let idents = identifier::Entity::find()
            .filter(identifier::Column::CustomerId.eq(merged))
            .all(txn)
            .await?;
        let interactions: Vec<String> = interaction::Entity::find()
            .filter(interaction::Column::CustomerId.eq(merged))
            .all(txn)
            .await?
            .into_iter()
            .map(|r| r.id)
            .collect();
        let consents: Vec<String> = consent::Entity::find()
            .filter(consent::Column::CustomerId.eq(merged))
            .all(txn)
            .await?
            .into_iter()
            .map(|r| r.id)
            .collect();
        identifier::Entity::update_many()
            .col_expr(identifier::Column::CustomerId, Expr::value(survivor))
            .filter(identifier::Column::CustomerId.eq(merged))
            .exec(txn)
            .await?;
        interaction::Entity::update_many()
            .col_expr(interaction::Column::CustomerId, Expr::value(survivor))
            .filter(interaction::Column::CustomerId.eq(merged))
            .exec(txn)
            .await?;
        consent::Entity::update_many()
            .col_expr(consent::Column::CustomerId, Expr::value(survivor))
            .filter(consent::Column::CustomerId.eq(merged))
            .exec(txn)
            .await?;
        // The survivor keeps its own values and gains what only the merged one had.
        let mut attrs = parse_map(&s.attributes);
        let mut copied = Vec::new();
        for (k, v) in parse_map(&m.attributes) {
            if !attrs.contains_key(&k) {
                attrs.insert(k.clone(), v);
                copied.push(k);
            }
        }
        let copy_name = s.display_name.is_empty() && !m.display_name.is_empty();
        let mut sa = s.clone().into_active_model();
        sa.attributes = Set(json_map(&attrs));
        if copy_name {
            sa.display_name = Set(m.display_name.clone());
            sa.name_key = Set(m.name_key.clone());
        }
        sa.updated_at = Set(now);
        sa.update(txn).await?;
        let mut ma = m.into_active_model();
        ma.merged_into = Set(Some(survivor.to_owned()));
        ma.updated_at = Set(now);
        ma.update(txn).await?;
        let (a, b) = if survivor < merged {
            (survivor, merged)
        } else {
            (merged, survivor)
        };
        suggestion::Entity::delete_many()
            .filter(suggestion::Column::CustomerA.eq(a))
            .filter(suggestion::Column::CustomerB.eq(b))
            .exec(txn)
            .await?;
        let detail = serde_json::json!({
            "identifiers": idents.iter().map(|i| [i.kind.clone(), i.value.clone()]).collect::<Vec<_>>(),
            "interactions": interactions,
            "consents": consents,
            "copied_attributes": copied,
            "copied_name": copy_name,
        });
        let merge_id = new_id();
        merge::ActiveModel {
            id: Set(merge_id.clone()),
            survivor_id: Set(survivor.to_owned()),
            merged_id: Set(merged.to_owned()),
            actor: Set(actor.to_owned()),
            reason: Set(reason.to_owned()),
            at: Set(now),
            detail: Set(detail.to_string()),
            undone_at: Set(None),
        }
        .insert(txn)
        .await?;
        let summary = format!(
            "merge {merge_id}: {} identifiers, {} interactions, {} consents moved",
            idents.len(),
            interactions.len(),
            consents.len()
        );
        audit_row(txn, survivor, "merge", actor, reason, &summary, now).await?;
        audit_row(txn, merged, "merge", actor, reason, &summary, now).await?;
        customer_event(
            txn,
            v1::customer_changed::Kind::Merged,
            survivor,
            merged,
            &merge_id,
        )
        .await?;
        Ok(v1::MergeResult {
            merge_id,
            customer: read::customer(txn, survivor).await?,
            identifiers_moved: u32::try_from(idents.len()).unwrap_or(u32::MAX),
            interactions_moved: u32::try_from(interactions.len()).unwrap_or(u32::MAX),
        })
    }

    /// Undoes a merge: what it moved (and interactions that arrived since
    /// through an identifier it moved) goes back.
    async fn unmerge(
        &self,
        txn: &impl ConnectionTrait,
        merge_id: &str,
        actor: &str,
        reason: &str,
        now: i64,
    ) -> Result<(Changed, Vec<String>), Fail> {
        uuid_arg(merge_id, "merge_id")?;
        let mg = merge::Entity::find_by_id(merge_id.to_owned())
            .one(txn)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("merge {merge_id}")))?;
        if mg.undone_at.is_some() {
            return Err(ApiError::FailedPrecondition("the merge was already undone".into()).into());
        }
        let s = match live_customer(txn, &mg.survivor_id, "merge_id").await {
            Ok(s) => s,
            Err(Fail::Store(e)) => return Err(Fail::Store(e)),
            Err(Fail::Api(_)) => {
                return Err(ApiError::FailedPrecondition(
                    "the surviving customer was merged again or erased since: undo that first"
                        .into(),
                )
                .into());
            }
        };
        let m = customer::Entity::find_by_id(mg.merged_id.clone())
            .one(txn)
            .await?
            .filter(|m| m.erased_at.is_none() && m.merged_into.as_deref() == Some(&s.id))
            .ok_or_else(|| {
                ApiError::FailedPrecondition("the merged customer is no longer merged".into())
            })?;
        let detail: serde_json::Value = serde_json::from_str(&mg.detail).unwrap_or_default();
        let strings = |key: &str| -> Vec<String> {
            detail[key]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        };
        let idents: Vec<(String, String)> = detail["identifiers"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|p| Some((p[0].as_str()?.to_owned(), p[1].as_str()?.to_owned())))
                    .collect()
            })
            .unwrap_or_default();
        for (kind, value) in &idents {
            identifier::Entity::update_many()
                .col_expr(identifier::Column::CustomerId, Expr::value(m.id.clone()))
                .filter(identifier::Column::Kind.eq(kind.clone()))
                .filter(identifier::Column::Value.eq(value.clone()))
                .filter(identifier::Column::CustomerId.eq(s.id.clone()))
                .exec(txn)
                .await?;
        }
        let moved = strings("interactions");
        let by: Vec<String> = idents.iter().map(|(k, v)| format!("{k}:{v}")).collect();
        for chunk in by_size(&moved, 500, |i| i.len() + VALUE_OVERHEAD) {
            interaction::Entity::update_many()
                .col_expr(interaction::Column::CustomerId, Expr::value(m.id.clone()))
                .filter(interaction::Column::CustomerId.eq(s.id.clone()))
                .filter(interaction::Column::Id.is_in(chunk.iter().cloned()))
                .exec(txn)
                .await?;
        }
        for chunk in by_size(&by, 500, |i| i.len() + VALUE_OVERHEAD) {
            interaction::Entity::update_many()
                .col_expr(interaction::Column::CustomerId, Expr::value(m.id.clone()))
                .filter(interaction::Column::CustomerId.eq(s.id.clone()))
                .filter(interaction::Column::ResolvedBy.is_in(chunk.iter().cloned()))
                .exec(txn)
                .await?;
        }
        let consents = strings("consents");
        for chunk in by_size(&consents, 500, |i| i.len() + VALUE_OVERHEAD) {
            consent::Entity::update_many()
                .col_expr(consent::Column::CustomerId, Expr::value(m.id.clone()))
                .filter(consent::Column::Id.is_in(chunk.iter().cloned()))
                .exec(txn)
                .await?;
        }
        let mut attrs = parse_map(&s.attributes);
        let theirs = parse_map(&m.attributes);
        for k in strings("copied_attributes") {
            if attrs.get(&k) == theirs.get(&k) {
                attrs.remove(&k);
            }
        }
        let mut sa = s.clone().into_active_model();
        sa.attributes = Set(json_map(&attrs));
        if detail["copied_name"].as_bool() == Some(true) && s.display_name == m.display_name {
            sa.display_name = Set(String::new());
            sa.name_key = Set(String::new());
        }
        sa.updated_at = Set(now);
        sa.update(txn).await?;
        let mut ma = m.clone().into_active_model();
        ma.merged_into = Set(None);
        ma.updated_at = Set(now);
        ma.update(txn).await?;
        let mut done = mg.into_active_model();
        done.undone_at = Set(Some(now));
        done.update(txn).await?;
        let summary = format!("unmerge {merge_id}");
        audit_row(txn, &s.id, "unmerge", actor, reason, &summary, now).await?;
        audit_row(txn, &m.id, "unmerge", actor, reason, &summary, now).await?;
        customer_event(
            txn,
            v1::customer_changed::Kind::Unmerged,
            &s.id,
            &m.id,
            merge_id,
        )
        .await?;
        Ok((
            Changed::Unmerge(v1::UnmergeResult {
                survivor: read::customer(txn, &s.id).await?,
                restored: read::customer(txn, &m.id).await?,
            }),
            vec![s.id.clone(), m.id.clone()],
        ))
    }

    async fn consent(
        &self,
        txn: &impl ConnectionTrait,
        actor: &str,
        request_id: &str,
        input: ConsentInput,
        now: i64,
    ) -> Result<(Changed, Vec<String>), Fail> {
        let cid = match (&input.customer, &input.identifier) {
            (Some(id), _) => live_customer(txn, id, "customer_id").await?.id,
            (None, Some(i)) => match identifier::Entity::find_by_id(key_of(i)).one(txn).await? {
                Some(owner) => owner.customer_id,
                None => {
                    // An opt-out from a number nobody knew yet still has to hold.
                    let cid = new_id();
                    customer::ActiveModel {
                        id: Set(cid.clone()),
                        display_name: Set(String::new()),
                        name_key: Set(String::new()),
                        attributes: Set("{}".into()),
                        created_at: Set(now),
                        updated_at: Set(now),
                        merged_into: Set(None),
                        erased_at: Set(None),
                    }
                    .insert(txn)
                    .await?;
                    identifier::ActiveModel {
                        kind: Set(i.kind().as_str().to_owned()),
                        value: Set(i.value().to_owned()),
                        customer_id: Set(cid.clone()),
                        added_at: Set(now),
                    }
                    .insert(txn)
                    .await?;
                    cid
                }
            },
            (None, None) => {
                return Err(ApiError::invalid(
                    "customer_id",
                    "give a customer id or an identifier",
                )
                .into());
            }
        };
        let row = consent::Model {
            id: new_id(),
            customer_id: cid.clone(),
            channel: input.channel.to_owned(),
            purpose: input.purpose,
            state: if input.granted { "granted" } else { "revoked" }.to_owned(),
            source: input.source,
            note: input.note,
            at: input.at,
            recorded_by: actor.to_owned(),
        };
        consent::Entity::insert(row.clone().into_active_model().reset_all())
            .exec_without_returning(txn)
            .await?;
        let record = read::consent_record(&row);
        // Senders act on what is current for that channel and purpose, which a
        // back-dated record does not change.
        let ledger = read::consents(txn, &cid, Some(input.channel), Some(&row.purpose)).await?;
        let current = read::current(&ledger)
            .into_iter()
            .next()
            .unwrap_or_else(|| record.clone());
        // Senders block on the identifiers of that channel without asking.
        let idents: Vec<v1::CustomerIdentifier> = identifier::Entity::find()
            .filter(identifier::Column::CustomerId.eq(cid.clone()))
            .all(txn)
            .await?
            .iter()
            .filter(|i| relevant(input.channel, &i.kind))
            .map(read::identifier_wire)
            .collect();
        let changed = v1::ConsentChanged {
            customer_id: cid.clone(),
            consent: Some(current),
            identifiers: idents,
            request_id: request_id.to_owned(),
        };
        outbox::enqueue(
            txn,
            SERVICE,
            &centralino_bus::keys::consent_changed(input.channel),
            &new_envelope(SERVICE, &changed),
        )
        .await?;
        Ok((Changed::Consent(record), vec![cid]))
    }

    /// Removes a customer's personal data; what stays is anonymous (channel,
    /// queue, agent, times, status, outcome) plus opt-outs by identifier hash.
    async fn erase(
        &self,
        txn: &impl ConnectionTrait,
        customer_id: &str,
        actor: &str,
        reason: &str,
        now: i64,
    ) -> Result<Changed, Fail> {
        let c = live_customer(txn, customer_id, "customer_id").await?;
        let idents = identifier::Entity::find()
            .filter(identifier::Column::CustomerId.eq(c.id.clone()))
            .all(txn)
            .await?;
        let consents = consent::Entity::find()
            .filter(consent::Column::CustomerId.eq(c.id.clone()))
            .order_by_asc(consent::Column::At)
            .order_by_asc(consent::Column::Id)
            .all(txn)
            .await?;
        let mut current: HashMap<(String, String), &consent::Model> = HashMap::new();
        for row in &consents {
            current.insert((row.channel.clone(), row.purpose.clone()), row);
        }
        for ((channel, purpose), row) in &current {
            if row.state != "revoked" {
                continue;
            }
            for i in idents.iter().filter(|i| relevant(channel, &i.kind)) {
                suppression::Entity::insert(suppression::ActiveModel {
                    identifier_hash: Set(self.suppression.hash(&i.kind, &i.value)),
                    channel: Set(channel.clone()),
                    purpose: Set(purpose.clone()),
                    at: Set(row.at),
                })
                .on_conflict(
                    OnConflict::columns([
                        suppression::Column::IdentifierHash,
                        suppression::Column::Channel,
                        suppression::Column::Purpose,
                    ])
                    .update_column(suppression::Column::At)
                    .to_owned(),
                )
                .exec_without_returning(txn)
                .await?;
            }
        }
        identifier::Entity::delete_many()
            .filter(identifier::Column::CustomerId.eq(c.id.clone()))
            .exec(txn)
            .await?;
        consent::Entity::delete_many()
            .filter(consent::Column::CustomerId.eq(c.id.clone()))
            .exec(txn)
            .await?;
        // Records merged into this one hold the same person's data.
        let mut absorbed: Vec<String> = Vec::new();
        let mut frontier = vec![c.id.clone()];
        while !frontier.is_empty() {
            // Merged into a record merged into this one, at any depth.
            let next: Vec<String> = customer::Entity::find()
                .filter(customer::Column::MergedInto.is_in(frontier.clone()))
                .all(txn)
                .await?
                .into_iter()
                .map(|m| m.id)
                .filter(|id| !absorbed.contains(id) && *id != c.id)
                .collect();
            absorbed.extend(next.iter().cloned());
            frontier = next;
        }
        let mut people = absorbed.clone();
        people.push(c.id.clone());
        customer::Entity::update_many()
            .col_expr(customer::Column::DisplayName, Expr::value(""))
            .col_expr(customer::Column::NameKey, Expr::value(""))
            .col_expr(customer::Column::Attributes, Expr::value("{}"))
            .col_expr(customer::Column::ErasedAt, Expr::value(now))
            .col_expr(customer::Column::UpdatedAt, Expr::value(now))
            .filter(customer::Column::Id.is_in(people.clone()))
            .exec(txn)
            .await?;
        let interactions: Vec<String> = interaction::Entity::find()
            .filter(interaction::Column::CustomerId.eq(c.id.clone()))
            .all(txn)
            .await?
            .into_iter()
            .map(|r| r.id)
            .collect();
        let mut messages = 0u64;
        for chunk in by_size(&interactions, 500, |i| i.len() + VALUE_OVERHEAD) {
            interaction::Entity::update_many()
                .col_expr(
                    interaction::Column::CustomerId,
                    Expr::value(Option::<String>::None),
                )
                .col_expr(interaction::Column::Subject, Expr::value(""))
                .col_expr(interaction::Column::Notes, Expr::value(""))
                .col_expr(interaction::Column::ConversationId, Expr::value(""))
                .col_expr(interaction::Column::RecordingRef, Expr::value(""))
                .col_expr(interaction::Column::IvrPath, Expr::value("[]"))
                .col_expr(interaction::Column::Attributes, Expr::value("{}"))
                // Marked, so a late event never links it to anybody again.
                .col_expr(interaction::Column::ResolvedBy, Expr::value(ERASED))
                .filter(interaction::Column::Id.is_in(chunk.iter().cloned()))
                .exec(txn)
                .await?;
            messages += message::Entity::update_many()
                .col_expr(message::Column::Subject, Expr::value(""))
                .col_expr(message::Column::Body, Expr::value(""))
                .col_expr(message::Column::Sender, Expr::value(""))
                .col_expr(message::Column::Recipient, Expr::value(""))
                .col_expr(message::Column::Attributes, Expr::value("{}"))
                .filter(message::Column::InteractionId.is_in(chunk.iter().cloned()))
                .exec(txn)
                .await?
                .rows_affected;
        }
        for col in [suggestion::Column::CustomerA, suggestion::Column::CustomerB] {
            suggestion::Entity::delete_many()
                .filter(col.is_in(people.clone()))
                .exec(txn)
                .await?;
        }
        for col in [merge::Column::SurvivorId, merge::Column::MergedId] {
            merge::Entity::update_many()
                .col_expr(merge::Column::Detail, Expr::value("{}"))
                .filter(col.is_in(people.clone()))
                .exec(txn)
                .await?;
        }
        // Answers kept for retries name the customer: their content goes, and
        // a retry is refused rather than run again (a consent by phone number
        // would otherwise create the erased person anew).
        for chunk in people.chunks(50) {
            let mut about = Condition::any();
            for id in chunk {
                about = about.add(request::Column::Customers.contains(id.as_str()));
            }
            request::Entity::update_many()
                .col_expr(request::Column::Method, Expr::value(ERASED_ANSWER))
                .col_expr(request::Column::Response, Expr::value(Vec::<u8>::new()))
                .filter(about)
                .exec(txn)
                .await?;
        }
        let result = v1::EraseResult {
            customer_id: c.id.clone(),
            interactions_anonymized: u32::try_from(interactions.len()).unwrap_or(u32::MAX),
            messages_erased: u32::try_from(messages).unwrap_or(u32::MAX),
            identifiers_removed: u32::try_from(idents.len()).unwrap_or(u32::MAX),
        };
        let summary = format!(
            "{} interactions anonymized, {} messages erased, {} identifiers removed, {} merged records erased",
            result.interactions_anonymized,
            result.messages_erased,
            result.identifiers_removed,
            absorbed.len()
        );
        audit_row(txn, &c.id, "erase", actor, reason, &summary, now).await?;
        customer_event(txn, v1::customer_changed::Kind::Erased, &c.id, "", "").await?;
        Ok(Changed::Erase(result))
    }
}
