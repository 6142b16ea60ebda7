//! Two Herald nodes on one PostgreSQL database: each delivery is sent once
//! while both run, and a node killed mid-flight loses nothing (the other
//! takes over its claims when their leases run out). PostgreSQL only.

use std::{
    collections::BTreeSet,
    time::{Duration, Instant},
};

use futures::StreamExt;
use serde_json::json;

use crate::{
    crash::{Tally, all_deliveries, wait_until_delivered},
    helpers::{App, Backend, TempDir, TestDb, postgres_available, wait_for},
    sink::{Reply, Sink},
};

/// Nodes sharing a database must share the master key (by default each
/// would make its own key file in its data dir).
fn shared_master_key() -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>())
}

/// Two nodes on one fresh PostgreSQL database, sharing the master key, with
/// `extra` settings; `None` (after saying so) when PostgreSQL is not configured.
/// Bind every field: the database and dirs are removed when dropped.
struct Cluster {
    a: App,
    b: App,
    _db: TestDb,
    _dirs: (TempDir, TempDir),
}

async fn cluster(extra: &[(&str, &str)]) -> Option<Cluster> {
    if !postgres_available() {
        eprintln!("skipped: HERALD_TEST_DATABASE_URL is not set");
        return None;
    }
    let db = TestDb::new(Backend::Postgres).await;
    let dirs = (TempDir::new(), TempDir::new());
    let key = shared_master_key();
    let mut settings = vec![("HERALD_MASTER_KEY", key.as_str())];
    settings.extend_from_slice(extra);
    let a = App::spawn_with(Backend::Postgres, &db, &dirs.0, &settings).await;
    let b = App::spawn_with(Backend::Postgres, &db, &dirs.1, &settings).await;
    Some(Cluster { a, b, _db: db, _dirs: dirs })
}

/// Posts events `{"seq": n}` for `seqs`, alternating between the nodes, a
/// few at a time.
async fn post_spread(nodes: &[&App], seqs: std::ops::Range<u64>) {
    futures::stream::iter(seqs)
        .map(|seq| async move { nodes[seq as usize % nodes.len()].event("cluster.test", json!({"seq": seq})).await })
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await;
}

/// A node's `herald_deliveries_total{outcome="sent"}` (a per-process counter).
async fn sent_by(node: &App) -> u64 {
    let text = node.client.get(node.url("/metrics")).send().await.unwrap().text().await.unwrap();
    text.lines()
        .filter(|l| l.starts_with("herald_deliveries_total{") && l.contains(r#"outcome="sent""#))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_send_each_delivery_once() {
    const N: u64 = 400;
    let Some(Cluster { a, b, _db, _dirs }) = cluster(&[]).await else { return };
    let sink = Sink::start().await;
    let (int, _) = a.webhook(&sink.url()).await;
    a.rule(&["*"], None, &[&int]).await;

    let start = Instant::now();
    post_spread(&[&a, &b], 0..N).await;
    let all: BTreeSet<u64> = (0..N).collect();
    wait_until_delivered(&a, &sink, &all, Duration::from_secs(30)).await;
    // Once every delivery is recorded sent, no further request may come.
    let deliveries = wait_for("every delivery recorded sent", Duration::from_secs(20), || async {
        let all = all_deliveries(&b, "").await;
        (all.len() == N as usize && all.iter().all(|d| d["status"] == json!("sent"))).then_some(all)
    })
    .await;
    let elapsed = start.elapsed();

    let tally = Tally::of(&sink);
    tally.assert_repeats_share_webhook_id();
    let webhook_ids: BTreeSet<String> = sink.received().iter().map(|r| r.header("webhook-id")).collect();
    let delivery_ids: BTreeSet<String> = deliveries.iter().map(|d| d["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(webhook_ids, delivery_ids, "the sink saw exactly the recorded deliveries");
    assert_eq!((webhook_ids.len(), tally.requests), (N as usize, N as usize), "each delivery sent exactly once");
    let (by_a, by_b) = (sent_by(&a).await, sent_by(&b).await);
    assert_eq!(by_a + by_b, N, "the nodes' sent counters add up to one send per delivery");
    assert!(by_a > 0 && by_b > 0, "both nodes took part: A sent {by_a}, B sent {by_b}");
    eprintln!(
        "two nodes: {N} events, {} requests, {} distinct webhook-ids, duplicates {}; sent by A {by_a}, by B {by_b}; \
         {elapsed:?}",
        tally.requests,
        webhook_ids.len(),
        tally.duplicates(),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_node_loses_nothing_the_other_finishes() {
    const N: u64 = 240;
    // A small concurrency and a slow receiver keep both nodes busy for a
    // few seconds, so node A surely holds leases when it is killed.
    let Some(Cluster { mut a, b, _db, _dirs }) = cluster(&[("HERALD_DELIVERY_CONCURRENCY", "8")]).await else { return };
    let sink = Sink::start().await;
    sink.script(std::iter::repeat_n(Reply::status(204).with_delay(Duration::from_millis(300)), 2 * N as usize));
    let (int, _) = a.webhook(&sink.url()).await;
    a.rule(&["*"], None, &[&int]).await;

    post_spread(&[&a, &b], 0..N).await;
    wait_for("a quarter of the deliveries to reach the sink", Duration::from_secs(20), || async {
        (sink.count() >= N as usize / 4).then_some(())
    })
    .await;
    let sent_by_a_before_kill = sent_by(&a).await;
    a.kill();
    let received_at_kill = sink.count();
    assert!(received_at_kill < N as usize, "the work was over before the kill; make it slower");

    let kill = Instant::now();
    let all: BTreeSet<u64> = (0..N).collect();
    wait_until_delivered(&b, &sink, &all, Duration::from_secs(40)).await;
    let all_seen = kill.elapsed();
    let deliveries = wait_for("every delivery recorded sent", Duration::from_secs(20), || async {
        let all = all_deliveries(&b, "").await;
        (all.len() == N as usize && all.iter().all(|d| d["status"] == json!("sent"))).then_some(all)
    })
    .await;
    let finished = kill.elapsed();

    let tally = Tally::of(&sink);
    tally.assert_repeats_share_webhook_id();
    assert_eq!(tally.seqs(), all, "lost: {:?}", all.difference(&tally.seqs()).collect::<Vec<_>>());
    let webhook_ids: BTreeSet<String> = sink.received().iter().map(|r| r.header("webhook-id")).collect();
    let delivery_ids: BTreeSet<String> = deliveries.iter().map(|d| d["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(webhook_ids, delivery_ids, "the sink saw exactly the recorded deliveries");
    let retaken = deliveries.iter().filter(|d| d["attempt_count"].as_i64().unwrap() > 1).count();
    assert!(retaken > 0, "no delivery claimed by A was taken over by B");
    eprintln!(
        "killed node: {N} events, {received_at_kill} requests at the kill (A had sent {sent_by_a_before_kill}), \
         {} requests in all, duplicates {}, {retaken} deliveries claimed twice, lost 0; B finished {finished:?} \
         after the kill (every event seen at the sink after {all_seen:?})",
        tally.requests,
        tally.duplicates(),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_changed_on_one_node_routes_on_the_other() {
    let Some(Cluster { a, b, _db, _dirs }) = cluster(&[]).await else { return };
    let sink = Sink::start().await;
    let (int, _) = a.webhook(&sink.url()).await;
    // Node B routes (and caches) the tenant's config while it has no rule.
    let before = b.event("cache.warm", json!({})).await;
    assert!(b.routed(&before).await.is_empty());
    // A rule made on node A applies to the very next event on node B…
    let rule = a.rule(&["cache.*"], None, &[&int]).await;
    let after = b.event("cache.hot", json!({})).await;
    assert_eq!(b.routed(&after).await.len(), 1, "node B must see the rule committed on node A");
    // …and so does disabling it.
    let (s, _) = a
        .request(
            reqwest::Method::PATCH,
            &format!("/v1/rules/{rule}"),
            crate::helpers::ADMIN,
            Some(&json!({"enabled": false})),
        )
        .await;
    assert_eq!(s, 200);
    let off = b.event("cache.cold", json!({})).await;
    assert!(b.routed(&off).await.is_empty(), "node B must see the rule disabled on node A");
}
