//! The store against every backend: SQLite always, PostgreSQL from
//! `FINMESH_TEST_POSTGRES_URL` (required under `CI=true`).

// Helpers outside `#[test]` functions unwrap too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Duration, TimeZone, Utc};
use finmesh_core::ErrorKind;
use finmesh_store::testing::{raw_rows, test_stores, test_stores_with};
use finmesh_store::{
    AuditEntry, Backend, ConnectionStatus, NewConnection, NewOAuthState, SecretCipher,
    StateProblem, Store,
};
use secrecy::{ExposeSecret, SecretString};
use sqlx::Row as _;

fn secret(s: &str) -> SecretString {
    SecretString::from(s.to_owned())
}

fn ms(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap()
}

fn new_connection(
    principal: &str,
    provider: &str,
    access: &str,
    refresh: Option<&str>,
) -> NewConnection {
    NewConnection {
        principal: principal.into(),
        provider: provider.into(),
        access_token: secret(access),
        refresh_token: refresh.map(secret),
        expires_at: Some(Utc.with_ymd_and_hms(2030, 1, 2, 3, 4, 5).unwrap()),
        scopes: vec!["SCOPE_APP_WEB".into(), "SCOPE_INVESTMENT_READ".into()],
    }
}

fn key(byte: u8) -> String {
    STANDARD.encode([byte; 32])
}

#[tokio::test]
async fn backends_are_reported_and_ready() {
    let stores = test_stores().await;
    assert!(stores.iter().any(|s| s.backend() == Backend::Sqlite));
    for s in &stores {
        assert_eq!(s.backend().as_str(), s.label);
        s.ping().await.unwrap();
        assert!(s.migrations_applied().await.unwrap(), "{}", s.label);
        if s.backend() == Backend::Sqlite {
            // Concurrent writers wait for each other instead of failing.
            let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
                .fetch_one(s.pool())
                .await
                .unwrap();
            assert_eq!(mode, "wal");
            let busy: i64 = sqlx::query_scalar("PRAGMA busy_timeout")
                .fetch_one(s.pool())
                .await
                .unwrap();
            assert!(busy >= 5000, "{busy}");
        }
    }
}

#[tokio::test]
async fn migrations_are_idempotent() {
    for s in test_stores().await {
        s.migrate().await.unwrap();
        s.migrate().await.unwrap();
        assert!(s.migrations_applied().await.unwrap(), "{}", s.label);
        assert_eq!(
            finmesh_store::embedded_migrations()[0],
            (1, "identity".to_owned())
        );
    }
}

#[tokio::test]
async fn unmigrated_database_is_not_ready() {
    let dir = tempfile::tempdir().unwrap();
    let url = Store::sqlite_url(&dir.path().join("new.db"));
    let store = Store::connect(&url, SecretCipher::generate_for_demo())
        .await
        .unwrap();
    store.ping().await.unwrap();
    assert!(!store.migrations_applied().await.unwrap());
    store.migrate().await.unwrap();
    assert!(store.migrations_applied().await.unwrap());
}

#[tokio::test]
async fn in_memory_sqlite_keeps_its_data() {
    let store = Store::connect("sqlite::memory:", SecretCipher::generate_for_demo())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    store
        .upsert_connection(&new_connection("ann", "zonky", "a", None))
        .await
        .unwrap();
    assert!(store.connection("ann", "zonky").await.unwrap().is_some());
}

#[tokio::test]
async fn connection_round_trip_decrypts() {
    for s in test_stores().await {
        let label = &s.label;
        s.ensure_principal("ann").await.unwrap();
        s.ensure_principal("ann").await.unwrap();
        assert!(s.connection("ann", "zonky").await.unwrap().is_none());

        let input = new_connection("ann", "zonky", "access-1", Some("refresh-1"));
        let created = s.upsert_connection(&input).await.unwrap();
        assert_eq!(created.version, 1, "{label}");
        assert_eq!(created.status, ConnectionStatus::Active);

        let read = s.connection("ann", "zonky").await.unwrap().unwrap();
        assert_eq!(read.id, created.id);
        assert_eq!(read.principal, "ann");
        assert_eq!(read.provider, "zonky");
        assert_eq!(read.access_token.expose_secret(), "access-1");
        assert_eq!(
            read.refresh_token.as_ref().unwrap().expose_secret(),
            "refresh-1"
        );
        assert_eq!(read.expires_at, input.expires_at);
        assert_eq!(read.scopes, input.scopes);
        assert_eq!(read.version, 1);
        assert_eq!(read.created_at, created.created_at);
        assert_eq!(read.updated_at, created.updated_at);
        let by_id = s.connection_by_id(&created.id).await.unwrap().unwrap();
        assert_eq!(by_id.access_token.expose_secret(), "access-1");

        // Reconnecting replaces the tokens on the same row and bumps the version;
        // Bondora's `expires_in: 0` is stored as "never expires".
        let mut again = new_connection("ann", "zonky", "access-2", None);
        again.expires_at = None;
        let updated = s.upsert_connection(&again).await.unwrap();
        assert_eq!(updated.id, created.id, "{label}");
        assert_eq!(updated.version, 2);
        assert_eq!(updated.created_at, created.created_at);
        let read = s.connection("ann", "zonky").await.unwrap().unwrap();
        assert_eq!(read.access_token.expose_secret(), "access-2");
        assert!(read.refresh_token.is_none());
        assert_eq!(read.expires_at, None);
        assert_eq!(read.version, 2);

        // Another provider and another principal are separate rows.
        s.upsert_connection(&new_connection("ann", "bondora", "b", None))
            .await
            .unwrap();
        s.upsert_connection(&new_connection("bob", "zonky", "c", None))
            .await
            .unwrap();
        let infos = s.connections("ann").await.unwrap();
        assert_eq!(
            infos
                .iter()
                .map(|c| c.provider.as_str())
                .collect::<Vec<_>>(),
            ["bondora", "zonky"]
        );
        assert_eq!(infos[1].scopes, input.scopes);
        assert_eq!(infos[1].expires_at, None);
        assert_eq!(infos[1].status, ConnectionStatus::Active);
        assert_eq!(infos[1].updated_at, read.updated_at);
        assert!(s.connections("nobody").await.unwrap().is_empty());
        assert_eq!(
            s.connection("bob", "zonky")
                .await
                .unwrap()
                .unwrap()
                .access_token
                .expose_secret(),
            "c"
        );
    }
}

#[tokio::test]
async fn concurrent_first_upserts_leave_one_readable_row() {
    for s in test_stores().await {
        let tasks = (0..8).map(|i| {
            let store = s.store.clone();
            tokio::spawn(async move {
                store
                    .upsert_connection(&new_connection("ann", "zonky", &format!("a{i}"), None))
                    .await
            })
        });
        for task in tasks.collect::<Vec<_>>() {
            task.await.unwrap().unwrap();
        }
        let read = s.connection("ann", "zonky").await.unwrap().unwrap();
        assert_eq!(read.version, 8, "{}", s.label);
        assert!(read.access_token.expose_secret().starts_with('a'));
        assert_eq!(raw_rows(&s, "connections").await.unwrap().len(), 1);
    }
}

#[tokio::test]
async fn no_secret_in_clear_in_the_database() {
    for s in test_stores().await {
        let access = "AT-very-secret-access-7f3a";
        let refresh = "RT-very-secret-refresh-91c2";
        let state = "STATE-secret-value-55d1";
        let c = s
            .upsert_connection(&new_connection("ann", "zonky", access, Some(refresh)))
            .await
            .unwrap();
        s.replace_tokens(
            &c.id,
            c.version,
            &secret("AT2-secret-after-refresh"),
            None,
            None,
        )
        .await
        .unwrap();
        s.create_oauth_state(&NewOAuthState {
            state: secret(state),
            principal: "ann".into(),
            provider: "zonky".into(),
            redirect_to: Some("https://app.example/after".into()),
            expires_at: Utc::now() + Duration::minutes(10),
        })
        .await
        .unwrap();
        s.audit(&AuditEntry {
            principal: "ann".into(),
            action: "connect".into(),
            provider: Some("zonky".into()),
            target: None,
            detail: serde_json::json!({"access_token": access, "scopes": ["a"]}),
        })
        .await
        .unwrap();

        let mut all = String::new();
        for table in ["principals", "connections", "oauth_states", "audit_log"] {
            let rows = raw_rows(&s, table).await.unwrap();
            assert!(!rows.is_empty(), "{table}");
            for row in rows {
                assert!(!row.contains("<unreadable>"), "{row}");
                all.push_str(&row);
                all.push('\n');
            }
        }
        for clear in [access, refresh, state, "AT2-secret-after-refresh"] {
            assert!(
                !all.contains(clear),
                "{}: `{clear}` in clear:\n{all}",
                s.label
            );
        }
        // What is there instead: versioned ciphertexts under the active key, and the
        // state's SHA-256.
        let key_id = s.cipher().active_key_id();
        assert!(all.contains(&format!("access_token=v1.{key_id}.")), "{all}");
        assert!(
            all.contains(&format!("refresh_token=v1.{key_id}.")),
            "{all}"
        );
        assert!(all.contains("state_hash=") && all.contains("https://app.example/after"));
    }
}

#[tokio::test]
async fn ciphertexts_swapped_between_rows_do_not_decrypt() {
    for s in test_stores().await {
        let a = s
            .upsert_connection(&new_connection(
                "ann",
                "zonky",
                "token-a",
                Some("refresh-a"),
            ))
            .await
            .unwrap();
        let b = s
            .upsert_connection(&new_connection(
                "bob",
                "zonky",
                "token-b",
                Some("refresh-b"),
            ))
            .await
            .unwrap();
        let read = |id: &str| {
            let id = id.to_owned();
            let pool = s.pool().clone();
            async move {
                let row = sqlx::query(
                    "SELECT access_token, refresh_token FROM connections WHERE id = $1",
                )
                .bind(id)
                .fetch_one(&pool)
                .await
                .unwrap();
                (
                    row.try_get::<String, _>("access_token").unwrap(),
                    row.try_get::<String, _>("refresh_token").unwrap(),
                )
            }
        };
        let (a_access, a_refresh) = read(&a.id).await;
        let (b_access, _) = read(&b.id).await;

        // Bob's access token ciphertext copied into Ann's row.
        sqlx::query("UPDATE connections SET access_token = $1 WHERE id = $2")
            .bind(&b_access)
            .bind(&a.id)
            .execute(s.pool())
            .await
            .unwrap();
        let err = s.connection("ann", "zonky").await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Internal, "{}", s.label);
        assert!(!err.message.contains("token-"), "{}", err.message);
        assert!(!err.message.contains(&b_access), "{}", err.message);

        // Ann's own refresh ciphertext moved into her access column.
        sqlx::query("UPDATE connections SET access_token = $1 WHERE id = $2")
            .bind(&a_refresh)
            .bind(&a.id)
            .execute(s.pool())
            .await
            .unwrap();
        assert_eq!(
            s.connection("ann", "zonky").await.unwrap_err().kind,
            ErrorKind::Internal
        );

        // Put back, it reads again; Bob was never affected.
        sqlx::query("UPDATE connections SET access_token = $1 WHERE id = $2")
            .bind(&a_access)
            .bind(&a.id)
            .execute(s.pool())
            .await
            .unwrap();
        let ann = s.connection("ann", "zonky").await.unwrap().unwrap();
        assert_eq!(ann.access_token.expose_secret(), "token-a");
        let bob = s.connection("bob", "zonky").await.unwrap().unwrap();
        assert_eq!(bob.access_token.expose_secret(), "token-b");
    }
}

#[tokio::test]
async fn oauth_state_is_single_use_and_only_hashed() {
    for s in test_stores().await {
        let now = Utc::now();
        let state = NewOAuthState::generate_state();
        s.create_oauth_state(&NewOAuthState {
            state: state.clone(),
            principal: "ann".into(),
            provider: "bondora".into(),
            redirect_to: Some("/settings".into()),
            expires_at: now + Duration::minutes(10),
        })
        .await
        .unwrap();

        let rows = raw_rows(&s, "oauth_states").await.unwrap();
        assert_eq!(rows.len(), 1);
        assert!(!rows[0].contains(state.expose_secret()), "{}", rows[0]);

        let record = s
            .take_oauth_state(state.expose_secret(), now)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(record.principal, "ann");
        assert_eq!(record.provider, "bondora");
        assert_eq!(record.redirect_to.as_deref(), Some("/settings"));
        assert_eq!(record.expires_at, ms(now + Duration::minutes(10)));

        assert_eq!(
            s.take_oauth_state(state.expose_secret(), now)
                .await
                .unwrap(),
            Err(StateProblem::Used),
            "{}",
            s.label
        );
        assert_eq!(
            s.take_oauth_state("never-issued", now).await.unwrap(),
            Err(StateProblem::Unknown)
        );

        s.create_oauth_state(&NewOAuthState {
            state: secret("short-lived"),
            principal: "ann".into(),
            provider: "zonky".into(),
            redirect_to: None,
            expires_at: now + Duration::seconds(1),
        })
        .await
        .unwrap();
        assert_eq!(
            s.take_oauth_state("short-lived", now + Duration::seconds(1))
                .await
                .unwrap(),
            Err(StateProblem::Expired)
        );
        // An expired state stays expired (it was not consumed).
        assert_eq!(
            s.take_oauth_state("short-lived", now + Duration::hours(1))
                .await
                .unwrap(),
            Err(StateProblem::Expired)
        );
        assert_eq!(
            s.purge_oauth_states(now + Duration::hours(1))
                .await
                .unwrap(),
            2
        );
        assert_eq!(
            s.take_oauth_state("short-lived", now).await.unwrap(),
            Err(StateProblem::Unknown)
        );

        // Issuing the same state twice is a conflict, not a silent overwrite.
        let dup = NewOAuthState {
            state: secret("dup"),
            principal: "ann".into(),
            provider: "zonky".into(),
            redirect_to: None,
            expires_at: now + Duration::minutes(1),
        };
        s.create_oauth_state(&dup).await.unwrap();
        assert_eq!(
            s.create_oauth_state(&dup).await.unwrap_err().kind,
            ErrorKind::Conflict
        );
    }
}

#[tokio::test]
async fn concurrent_takes_of_one_state_have_one_winner() {
    for s in test_stores().await {
        let now = Utc::now();
        s.create_oauth_state(&NewOAuthState {
            state: secret("race"),
            principal: "ann".into(),
            provider: "zonky".into(),
            redirect_to: None,
            expires_at: now + Duration::minutes(5),
        })
        .await
        .unwrap();
        let tasks: Vec<_> = (0..10)
            .map(|_| {
                let store = s.store.clone();
                tokio::spawn(async move { store.take_oauth_state("race", now).await.unwrap() })
            })
            .collect();
        let mut won = 0;
        for task in tasks {
            match task.await.unwrap() {
                Ok(_) => won += 1,
                Err(problem) => assert_eq!(problem, StateProblem::Used),
            }
        }
        assert_eq!(won, 1, "{}", s.label);
    }
}

#[tokio::test]
async fn replace_tokens_is_compare_and_swap() {
    for s in test_stores().await {
        let label = &s.label;
        let c = s
            .upsert_connection(&new_connection("ann", "zonky", "a0", Some("r0")))
            .await
            .unwrap();

        // Two refreshes that both read version 1: exactly one wins.
        let attempt = |n: u32| {
            let store = s.store.clone();
            let id = c.id.clone();
            async move {
                store
                    .replace_tokens(
                        &id,
                        c.version,
                        &secret(&format!("a{n}")),
                        Some(&secret(&format!("r{n}"))),
                        Some(Utc::now() + Duration::minutes(5)),
                    )
                    .await
                    .unwrap()
            }
        };
        let (one, two) = tokio::join!(tokio::spawn(attempt(1)), tokio::spawn(attempt(2)));
        let (one, two) = (one.unwrap(), two.unwrap());
        assert!(
            one ^ two,
            "{label}: exactly one refresh must win ({one}, {two})"
        );
        let winner = if one { 1 } else { 2 };
        let read = s.connection_by_id(&c.id).await.unwrap().unwrap();
        assert_eq!(read.version, 2);
        assert_eq!(read.access_token.expose_secret(), format!("a{winner}"));
        assert_eq!(
            read.refresh_token.unwrap().expose_secret(),
            format!("r{winner}")
        );

        // Many at once, same expected version: still exactly one.
        let tasks: Vec<_> = (10..30)
            .map(|n| tokio::spawn(attempt_at(&s, &c.id, 2, n)))
            .collect();
        let mut wins = 0;
        for task in tasks {
            wins += u32::from(task.await.unwrap());
        }
        assert_eq!(wins, 1, "{label}");

        // A stale version loses; an unknown id is not an error, just no swap.
        assert!(
            !s.replace_tokens(&c.id, 1, &secret("x"), None, None)
                .await
                .unwrap()
        );
        assert!(
            !s.replace_tokens("no-such-id", 1, &secret("x"), None, None)
                .await
                .unwrap()
        );

        // `None` keeps the stored refresh token; expiry may become "never".
        let current = s.connection_by_id(&c.id).await.unwrap().unwrap();
        let kept = current.refresh_token.clone().unwrap();
        assert!(
            s.replace_tokens(&c.id, current.version, &secret("a-new"), None, None)
                .await
                .unwrap()
        );
        let read = s.connection_by_id(&c.id).await.unwrap().unwrap();
        assert_eq!(read.access_token.expose_secret(), "a-new");
        assert_eq!(
            read.refresh_token.unwrap().expose_secret(),
            kept.expose_secret()
        );
        assert_eq!(read.expires_at, None);
        assert_eq!(read.version, current.version + 1);
        assert!(read.updated_at >= current.updated_at);
    }
}

fn attempt_at(s: &Store, id: &str, version: i64, n: u32) -> impl Future<Output = bool> + use<> {
    let store = s.clone();
    let id = id.to_owned();
    async move {
        store
            .replace_tokens(
                &id,
                version,
                &secret(&format!("a{n}")),
                Some(&secret(&format!("r{n}"))),
                None,
            )
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn reauthorization_and_reconnect() {
    for s in test_stores().await {
        let c = s
            .upsert_connection(&new_connection("ann", "zonky", "a", Some("r")))
            .await
            .unwrap();
        s.mark_reauthorization_required(&c.id).await.unwrap();
        let read = s.connection("ann", "zonky").await.unwrap().unwrap();
        assert_eq!(
            read.status,
            ConnectionStatus::ReauthorizationRequired,
            "{}",
            s.label
        );
        assert_eq!(read.version, c.version + 1);
        assert_eq!(
            s.connections("ann").await.unwrap()[0].status,
            ConnectionStatus::ReauthorizationRequired
        );
        // A refresh that read the connection before it was marked loses.
        assert!(
            !s.replace_tokens(&c.id, c.version, &secret("late"), None, None)
                .await
                .unwrap()
        );
        // Unknown ids are left alone.
        s.mark_reauthorization_required("no-such-id").await.unwrap();

        // Connecting again makes it active.
        let again = s
            .upsert_connection(&new_connection("ann", "zonky", "a2", Some("r2")))
            .await
            .unwrap();
        assert_eq!(again.status, ConnectionStatus::Active);
        assert_eq!(
            s.connection("ann", "zonky").await.unwrap().unwrap().status,
            ConnectionStatus::Active
        );
    }
}

#[tokio::test]
async fn delete_connection() {
    for s in test_stores().await {
        s.upsert_connection(&new_connection("ann", "zonky", "a", None))
            .await
            .unwrap();
        s.upsert_connection(&new_connection("ann", "bondora", "b", None))
            .await
            .unwrap();
        assert!(
            s.delete_connection("ann", "zonky").await.unwrap(),
            "{}",
            s.label
        );
        assert!(!s.delete_connection("ann", "zonky").await.unwrap());
        assert!(!s.delete_connection("bob", "bondora").await.unwrap());
        assert!(s.connection("ann", "zonky").await.unwrap().is_none());
        assert!(s.connection("ann", "bondora").await.unwrap().is_some());
        assert_eq!(s.connections("ann").await.unwrap().len(), 1);
    }
}

#[tokio::test]
async fn audit_log_is_newest_first_and_per_principal() {
    for s in test_stores().await {
        for i in 0..5 {
            s.audit(&AuditEntry {
                principal: "ann".into(),
                action: format!("action-{i}"),
                provider: (i % 2 == 0).then(|| "zonky".to_owned()),
                target: Some(format!("zonky:investment:{i}")),
                detail: serde_json::json!({"n": i, "amount": "100.25", "client_secret": "s3cr3t"}),
            })
            .await
            .unwrap();
        }
        s.audit(&AuditEntry {
            principal: "bob".into(),
            action: "other".into(),
            provider: None,
            target: None,
            detail: serde_json::Value::Null,
        })
        .await
        .unwrap();

        let log = s.audit_log("ann", 10).await.unwrap();
        assert_eq!(
            log.iter().map(|r| r.action.as_str()).collect::<Vec<_>>(),
            ["action-4", "action-3", "action-2", "action-1", "action-0"],
            "{}",
            s.label
        );
        assert!(log.windows(2).all(|w| w[0].at >= w[1].at));
        assert_eq!(log[0].provider.as_deref(), Some("zonky"));
        assert_eq!(log[1].provider, None);
        assert_eq!(log[0].target.as_deref(), Some("zonky:investment:4"));
        assert_eq!(log[0].principal, "ann");
        assert_eq!(
            log[0].detail,
            serde_json::json!({"n": 4, "amount": "100.25", "client_secret": "[REDACTED]"})
        );
        assert!((Utc::now() - log[0].at).num_seconds().abs() < 60);

        let limited = s.audit_log("ann", 2).await.unwrap();
        assert_eq!(limited.len(), 2);
        assert_eq!(limited[0].id, log[0].id);
        let bob = s.audit_log("bob", 10).await.unwrap();
        assert_eq!(bob.len(), 1);
        assert_eq!(bob[0].detail, serde_json::Value::Null);
        assert!(s.audit_log("nobody", 10).await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn rotate_key_reencrypts_under_the_new_key() {
    let old = SecretCipher::from_config(&[("old".into(), key(1))], "old").unwrap();
    let both = SecretCipher::from_config(&[("old".into(), key(1)), ("new".into(), key(2))], "new")
        .unwrap();
    for s in test_stores_with(&old).await {
        let label = &s.label;
        let a = s
            .upsert_connection(&new_connection(
                "ann",
                "zonky",
                "ann-access",
                Some("ann-refresh"),
            ))
            .await
            .unwrap();
        s.upsert_connection(&new_connection("bob", "zonky", "bob-access", None))
            .await
            .unwrap();
        s.upsert_connection(&new_connection(
            "cid",
            "bondora",
            "cid-access",
            Some("cid-refresh"),
        ))
        .await
        .unwrap();
        assert_eq!(
            s.rotate_key().await.unwrap(),
            0,
            "{label}: already under the active key"
        );

        let rotated_store = s.with_cipher(both.clone());
        // Before rotating, the new keyring reads old rows (the old key is still in it).
        assert_eq!(
            rotated_store
                .connection("ann", "zonky")
                .await
                .unwrap()
                .unwrap()
                .access_token
                .expose_secret(),
            "ann-access"
        );
        // A refresh under the new keyring that keeps the refresh token moves the row
        // to the new key without losing it.
        assert!(
            rotated_store
                .replace_tokens(&a.id, a.version, &secret("ann-access-2"), None, None)
                .await
                .unwrap()
        );

        assert_eq!(rotated_store.rotate_key().await.unwrap(), 2, "{label}");
        assert_eq!(rotated_store.rotate_key().await.unwrap(), 0, "{label}");

        let rows = raw_rows(&s, "connections").await.unwrap();
        assert!(
            rows.iter()
                .all(|r| r.contains("key_id=new") && !r.contains("v1.old.")),
            "{rows:?}"
        );

        let ann = rotated_store
            .connection("ann", "zonky")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(ann.access_token.expose_secret(), "ann-access-2");
        assert_eq!(ann.refresh_token.unwrap().expose_secret(), "ann-refresh");
        let bob = rotated_store
            .connection("bob", "zonky")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(bob.access_token.expose_secret(), "bob-access");
        assert!(bob.refresh_token.is_none());
        let cid = rotated_store
            .connection("cid", "bondora")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(cid.refresh_token.unwrap().expose_secret(), "cid-refresh");
        // Rotation is not a token change: versions stay.
        assert_eq!(cid.version, 1);

        // The old key alone can no longer read any row; the error names the key, and
        // the new key alone reads everything (the old one may now be removed).
        let err = s.connection("bob", "zonky").await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Internal, "{label}");
        assert!(err.message.contains("`new`"), "{}", err.message);
        let new_only = SecretCipher::from_config(&[("new".into(), key(2))], "new").unwrap();
        let new_only = s.with_cipher(new_only);
        for (p, provider) in [("ann", "zonky"), ("bob", "zonky"), ("cid", "bondora")] {
            new_only.connection(p, provider).await.unwrap().unwrap();
        }
    }
}

#[tokio::test]
async fn rotation_fails_loudly_without_the_old_key() {
    let old = SecretCipher::from_config(&[("old".into(), key(1))], "old").unwrap();
    for s in test_stores_with(&old).await {
        s.upsert_connection(&new_connection("ann", "zonky", "a", None))
            .await
            .unwrap();
        let new_only = SecretCipher::from_config(&[("new".into(), key(2))], "new").unwrap();
        let err = s.with_cipher(new_only).rotate_key().await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Internal, "{}", s.label);
        assert!(err.message.contains("`old`"), "{}", err.message);
        // Nothing was touched.
        assert_eq!(
            s.connection("ann", "zonky")
                .await
                .unwrap()
                .unwrap()
                .access_token
                .expose_secret(),
            "a"
        );
    }
}

#[tokio::test]
async fn debug_output_hides_secrets() {
    let cipher_key = key(42);
    let cipher = SecretCipher::from_config(&[("k1".into(), cipher_key.clone())], "k1").unwrap();
    for s in test_stores_with(&cipher).await {
        let input = new_connection(
            "ann",
            "zonky",
            "ACCESS-do-not-print",
            Some("REFRESH-do-not-print"),
        );
        let stored = s.upsert_connection(&input).await.unwrap();
        let read = s.connection("ann", "zonky").await.unwrap().unwrap();
        let state = NewOAuthState {
            state: secret("STATE-do-not-print"),
            principal: "ann".into(),
            provider: "zonky".into(),
            redirect_to: None,
            expires_at: Utc::now(),
        };
        for debug in [
            format!("{input:?}"),
            format!("{input:#?}"),
            format!("{stored:?}"),
            format!("{read:#?}"),
            format!("{state:?}"),
            format!("{:?}", s.cipher()),
            format!("{:?}", s.store),
            format!("{s:?}"),
        ] {
            for secret in [
                "ACCESS-do-not-print",
                "REFRESH-do-not-print",
                "STATE-do-not-print",
                cipher_key.as_str(),
            ] {
                assert!(!debug.contains(secret), "{}: {debug}", s.label);
            }
        }
        assert!(format!("{read:?}").contains("REDACTED"));
        assert!(format!("{:?}", s.cipher()).contains("k1"));
    }
}

#[tokio::test]
async fn invalid_input_is_refused() {
    for s in test_stores().await {
        assert_eq!(
            s.ensure_principal("").await.unwrap_err().kind,
            ErrorKind::InvalidInput
        );
        let mut bad = new_connection("ann", "", "a", None);
        assert_eq!(
            s.upsert_connection(&bad).await.unwrap_err().kind,
            ErrorKind::InvalidInput
        );
        bad.provider = "zonky".into();
        bad.principal = "x".repeat(300);
        assert_eq!(
            s.upsert_connection(&bad).await.unwrap_err().kind,
            ErrorKind::InvalidInput
        );
    }
    let err = Store::connect(
        "mysql://root:pw@localhost/db",
        SecretCipher::generate_for_demo(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidInput);
    assert!(!err.message.contains("pw@"));
}

fn new_record(
    key: &str,
    fingerprint: &str,
    lease_secs: i64,
) -> finmesh_store::NewIdempotencyRecord {
    finmesh_store::NewIdempotencyRecord {
        principal: "alice".into(),
        key: key.into(),
        operation: "createTransfer".into(),
        provider: "bongloy".into(),
        fingerprint: fingerprint.into(),
        target: None,
        lease_until: Utc::now() + Duration::seconds(lease_secs),
    }
}

#[tokio::test]
async fn one_idempotency_record_per_principal_and_key() {
    use finmesh_store::IdempotencyState;
    for s in test_stores().await {
        // Ten concurrent first requests: exactly one creates the record.
        let attempts = (0..10).map(|_| {
            let store = (*s).clone();
            tokio::spawn(async move { store.begin_idempotent(&new_record("k1", "f1", 30)).await })
        });
        let results: Vec<_> = futures::future::join_all(attempts)
            .await
            .into_iter()
            .map(|r| r.unwrap().unwrap())
            .collect();
        assert_eq!(
            results.iter().filter(|(_, created)| *created).count(),
            1,
            "{}",
            s.label
        );
        let id = results[0].0.id.clone();
        assert!(results.iter().all(|(r, _)| r.id == id));
        assert_eq!(results[0].0.state, IdempotencyState::InFlight);

        // The lease holds: nobody claims it before it ends.
        let record = s.idempotency_record("alice", "k1").await.unwrap().unwrap();
        assert!(
            !s.claim_idempotent(&id, Utc::now(), Utc::now())
                .await
                .unwrap()
        );
        assert_eq!(record.fingerprint, "f1");

        let answer = serde_json::json!({"transfer": {"id": "bongloy:transfer:x"}});
        s.finish_idempotent(&id, IdempotencyState::Succeeded, Some(&answer))
            .await
            .unwrap();
        let done = s.idempotency_record("alice", "k1").await.unwrap().unwrap();
        assert_eq!(done.state, IdempotencyState::Succeeded);
        assert_eq!(done.result, Some(answer));
        let (again, created) = s
            .begin_idempotent(&new_record("k1", "other", 30))
            .await
            .unwrap();
        assert!(!created);
        assert_eq!(again.state, IdempotencyState::Succeeded);
    }
}

#[tokio::test]
async fn abandoned_and_ambiguous_records_are_found_and_claimed_once() {
    use finmesh_store::IdempotencyState;
    for s in test_stores().await {
        s.begin_idempotent(&new_record("dead", "f", -1))
            .await
            .unwrap();
        let (live, _) = s
            .begin_idempotent(&new_record("live", "f", 60))
            .await
            .unwrap();
        let (unsure, _) = s
            .begin_idempotent(&new_record("unsure", "f", 60))
            .await
            .unwrap();
        s.finish_idempotent(&unsure.id, IdempotencyState::Ambiguous, None)
            .await
            .unwrap();

        let open: Vec<String> = s
            .unfinished_idempotent()
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.key)
            .collect();
        assert!(open.contains(&"dead".to_string()) && open.contains(&"unsure".to_string()));
        assert!(!open.contains(&"live".to_string()), "{}", s.label);

        let dead = s
            .idempotency_record("alice", "dead")
            .await
            .unwrap()
            .unwrap();
        let lease = Utc::now() + Duration::seconds(30);
        assert!(
            s.claim_idempotent(&dead.id, dead.lease_until, lease)
                .await
                .unwrap()
        );
        assert!(
            !s.claim_idempotent(&dead.id, dead.lease_until, lease)
                .await
                .unwrap()
        );

        s.release_idempotent(&live.id).await.unwrap();
        assert!(
            s.idempotency_record("alice", "live")
                .await
                .unwrap()
                .is_none()
        );

        let err = s
            .begin_idempotent(&new_record("", "f", 1))
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidInput);
    }
}
