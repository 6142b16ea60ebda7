//! Crash safety: SIGKILL while events are being accepted, and while
//! deliveries are in flight; after a restart on the same data nothing that
//! was accepted is lost, and repeats carry the same `webhook-id`.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use futures::StreamExt;
use serde_json::{Value, json};

use crate::{
    backend_test,
    helpers::{ADMIN, App, Backend, TempDir, TestDb, wait_for},
    sink::{Reply, Sink},
};

/// What a sink received, keyed by the `data.seq` each event carried.
pub struct Tally {
    /// Every request, repeats included.
    pub requests: usize,
    /// seq → the `webhook-id` of each request that carried it.
    pub by_seq: BTreeMap<u64, Vec<String>>,
}

impl Tally {
    pub fn of(sink: &Sink) -> Tally {
        let received = sink.received();
        let mut by_seq: BTreeMap<u64, Vec<String>> = BTreeMap::new();
        for r in &received {
            let body = r.json();
            let seq = body["data"]["seq"].as_u64().unwrap_or_else(|| panic!("a request without data.seq: {body}"));
            by_seq.entry(seq).or_default().push(r.header("webhook-id"));
        }
        Tally { requests: received.len(), by_seq }
    }

    pub fn seqs(&self) -> BTreeSet<u64> {
        self.by_seq.keys().copied().collect()
    }

    /// Requests beyond the first for each seq.
    pub fn duplicates(&self) -> usize {
        self.requests - self.by_seq.len()
    }

    /// Repeats are allowed only as the same delivery: one `webhook-id` per
    /// seq, and no `webhook-id` shared by two seqs.
    pub fn assert_repeats_share_webhook_id(&self) {
        let mut owner: BTreeMap<&str, u64> = BTreeMap::new();
        for (seq, ids) in &self.by_seq {
            let distinct: BTreeSet<&String> = ids.iter().collect();
            assert_eq!(distinct.len(), 1, "seq {seq} arrived under several webhook-ids: {ids:?}");
            let id = ids[0].as_str();
            assert!(!id.is_empty(), "seq {seq} arrived without a webhook-id");
            if let Some(other) = owner.insert(id, *seq) {
                panic!("webhook-id {id} carried seq {other} and seq {seq}");
            }
        }
    }
}

/// Waits until the sink has received every seq in `expected`; on timeout
/// names the missing ones and shows the server's log.
pub async fn wait_until_delivered(app: &App, sink: &Sink, expected: &BTreeSet<u64>, limit: Duration) -> Tally {
    let start = Instant::now();
    loop {
        let tally = Tally::of(sink);
        let lost: Vec<u64> = expected.iter().copied().filter(|s| !tally.by_seq.contains_key(s)).collect();
        if lost.is_empty() {
            return tally;
        }
        assert!(
            start.elapsed() < limit,
            "after {limit:?}, {} of {} expected events were never delivered (first: {:?}); server log:\n{}",
            lost.len(),
            expected.len(),
            &lost[..lost.len().min(20)],
            app.log.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every delivery, walking the cursor pages.
pub async fn all_deliveries(app: &App, query: &str) -> Vec<Value> {
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/deliveries?limit=500&{query}&cursor={c}"),
            None => format!("/v1/deliveries?limit=500&{query}"),
        };
        let (status, page) = app.get(&path).await;
        assert_eq!(status, 200, "{path}: {page}");
        all.extend(page["data"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return all,
        }
    }
}

/// What one posting client saw.
#[derive(Default)]
struct ClientLog {
    /// Every seq this client put on the wire (answered or not).
    sent: Vec<u64>,
    /// Seqs answered 2xx, with the event id from the body.
    accepted: Vec<(u64, Option<String>)>,
    /// Seqs answered with another status: (seq, status, body).
    refused: Vec<(u64, u16, String)>,
}

const CLIENTS: usize = 16;

backend_test!(sigkill_during_ingest_loses_no_accepted_event, |backend: Backend| async move {
    let (db, dir) = (TestDb::new(backend).await, TempDir::new());
    let mut app = App::spawn(backend, &db, &dir).await;
    let sink = Sink::start().await;
    let (int, _) = app.webhook(&sink.url()).await;
    app.rule(&["*"], None, &[&int]).await;

    let next_seq = Arc::new(AtomicU64::new(0));
    let accepted_so_far = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (client, url) = (app.client.clone(), app.url("/v1/events"));
            let (next_seq, accepted_so_far, stop) = (next_seq.clone(), accepted_so_far.clone(), stop.clone());
            tokio::spawn(async move {
                let mut log = ClientLog::default();
                while !stop.load(Ordering::Relaxed) {
                    let seq = next_seq.fetch_add(1, Ordering::Relaxed);
                    log.sent.push(seq);
                    let body = json!({"type": "crash.ingest", "data": {"seq": seq}});
                    // A connection error means the server is gone: not accepted.
                    let Ok(res) = client.post(&url).bearer_auth(ADMIN).json(&body).send().await else { break };
                    let status = res.status();
                    let text = res.text().await.unwrap_or_default();
                    if status.is_success() {
                        let id =
                            serde_json::from_str::<Value>(&text).ok().and_then(|b| b["id"].as_str().map(str::to_owned));
                        log.accepted.push((seq, id));
                        accepted_so_far.fetch_add(1, Ordering::Relaxed);
                    } else {
                        log.refused.push((seq, status.as_u16(), text));
                        break;
                    }
                }
                log
            })
        })
        .collect();

    // Let the clients run for a second (and get some events through), then
    // kill the server under them.
    let started = Instant::now();
    wait_for("clients to post for a second", Duration::from_secs(30), || async {
        (started.elapsed() >= Duration::from_secs(1) && accepted_so_far.load(Ordering::Relaxed) >= 50).then_some(())
    })
    .await;
    app.kill();
    let received_before_kill = sink.count();
    stop.store(true, Ordering::Relaxed);
    let mut logs = Vec::new();
    for c in clients {
        logs.push(tokio::time::timeout(Duration::from_secs(30), c).await.expect("clients stop").unwrap());
    }
    let refused: Vec<_> = logs.iter().flat_map(|l| l.refused.iter()).collect();
    assert!(refused.is_empty(), "the server refused events before the kill: {refused:?}");
    let sent: BTreeSet<u64> = logs.iter().flat_map(|l| l.sent.iter().copied()).collect();
    let accepted: BTreeMap<u64, Option<String>> = logs.iter().flat_map(|l| l.accepted.iter().cloned()).collect();
    let accepted_seqs: BTreeSet<u64> = accepted.keys().copied().collect();

    let restart = Instant::now();
    app.start().await;
    let tally = wait_until_delivered(&app, &sink, &accepted_seqs, Duration::from_secs(60)).await;
    let catch_up = restart.elapsed();

    let delivered = tally.seqs();
    let lost: Vec<u64> = accepted_seqs.difference(&delivered).copied().collect();
    let unexpected: Vec<u64> = delivered.difference(&sent).copied().collect();
    let unanswered_but_committed = delivered.difference(&accepted_seqs).count();
    assert!(lost.is_empty(), "accepted but never delivered: {lost:?}");
    assert!(unexpected.is_empty(), "delivered but never sent by any client: {unexpected:?}");
    tally.assert_repeats_share_webhook_id();

    // Every accepted event is there after the restart, with its data.
    let with_id: Vec<(u64, String)> = accepted.iter().filter_map(|(seq, id)| id.clone().map(|id| (*seq, id))).collect();
    let app_ref = &app;
    let missing: Vec<String> = futures::stream::iter(with_id.iter())
        .map(|(seq, id)| async move {
            let (status, event) = app_ref.get(&format!("/v1/events/{id}")).await;
            (status != 200 || event["data"]["seq"] != json!(seq)).then(|| format!("{id} (seq {seq}): {status} {event}"))
        })
        .buffer_unordered(16)
        .filter_map(|m| async move { m })
        .collect()
        .await;
    assert!(missing.is_empty(), "accepted events missing after restart: {missing:?}");

    eprintln!(
        "crash during ingest ({backend:?}): sent {}, accepted {} ({} with id), delivered {} distinct \
         ({} committed without the client seeing 2xx), {} requests at the sink ({} before the kill), \
         duplicates {}, lost 0; caught up {catch_up:?} after restart",
        sent.len(),
        accepted.len(),
        with_id.len(),
        delivered.len(),
        unanswered_but_committed,
        tally.requests,
        received_before_kill,
        tally.duplicates(),
    );
});

backend_test!(sigkill_with_deliveries_in_flight_sends_all_after_restart, |backend: Backend| async move {
    const N: usize = 20;
    let (db, dir) = (TestDb::new(backend).await, TempDir::new());
    let mut app = App::spawn(backend, &db, &dir).await;
    let sink = Sink::start().await;
    // The first N requests are answered only after 1.5 s (inside the 2 s
    // attempt timeout): the kill comes while all of them wait.
    sink.script(std::iter::repeat_n(Reply::status(204).with_delay(Duration::from_millis(1500)), N));
    let (int, _) = app.webhook(&sink.url()).await;
    app.rule(&["*"], None, &[&int]).await;
    let events: Vec<Value> = (0..N).map(|seq| json!({"type": "crash.flight", "data": {"seq": seq}})).collect();
    let (status, body) = app.post("/v1/events/batch", json!({"events": events})).await;
    assert_eq!(status, 202, "{body}");
    wait_for("every delivery to reach the sink", Duration::from_secs(10), || async {
        (sink.count() >= N).then_some(())
    })
    .await;
    app.kill();
    let received_before_kill = sink.count();

    let restart = Instant::now();
    app.start().await;
    let deliveries = wait_for("every delivery sent after the restart", Duration::from_secs(30), || async {
        let all = all_deliveries(&app, "").await;
        (all.len() == N && all.iter().all(|d| d["status"] == json!("sent"))).then_some(all)
    })
    .await;
    let settled = restart.elapsed();

    let tally = Tally::of(&sink);
    tally.assert_repeats_share_webhook_id();
    assert_eq!(tally.seqs(), (0..N as u64).collect::<BTreeSet<_>>(), "every event reached the sink");
    assert!(
        tally.requests > N,
        "the kill caught no delivery in flight: {} requests for {N} deliveries",
        tally.requests
    );
    let webhook_ids: BTreeSet<String> = tally.by_seq.values().map(|ids| ids[0].clone()).collect();
    let mut attempt_counts = BTreeMap::<i64, usize>::new();
    for d in &deliveries {
        let id = d["id"].as_str().unwrap();
        assert!(webhook_ids.contains(id), "delivery {id} never reached the sink under its id");
        let (_, detail) = app.get(&format!("/v1/deliveries/{id}")).await;
        let attempts = detail["attempts"].as_array().unwrap();
        let last = attempts.last().unwrap_or_else(|| panic!("a sent delivery without attempts: {detail}"));
        assert_eq!((&last["outcome"], &last["status_code"]), (&json!("sent"), &json!(204)), "{detail}");
        *attempt_counts.entry(detail["attempt_count"].as_i64().unwrap()).or_default() += 1;
    }
    eprintln!(
        "crash with deliveries in flight ({backend:?}): {N} deliveries, {received_before_kill} requests before the \
         kill, {} in all (duplicates {}), all sent {settled:?} after restart; attempt_count histogram {attempt_counts:?}",
        tally.requests,
        tally.duplicates(),
    );
});
