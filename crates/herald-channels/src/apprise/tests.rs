//! Every scheme: URLs that work (the exact type and config they make) and
//! URLs that do not (the part the error names).

use proptest::prelude::*;
use serde_json::{Value, json};

use super::{AppriseError, parse};
use crate::{Registry, testing::ctx};

const SID: &str = "AC0123456789abcdef0123456789abcdef";
const MG: &str = "MG0123456789abcdef0123456789abcdef";
/// Pushover keys are 30 letters and digits (these are Pushover's documentation examples).
const PO_USER: &str = "uQiRzpo4DXghDmr9QzzfQu27cmVRsG";
const PO_APP: &str = "azGDORePK8gMaC0QOYAMyEEuzJnyUi";

fn valid_cases() -> Vec<(String, &'static str, Value)> {
    let s = |v: &str| v.to_owned();
    vec![
        // --- email
        (
            s("mailtos://user:pass@example.com"),
            "email",
            json!({"host": "example.com", "port": 587, "tls": "starttls", "username": "user", "password": "pass",
                   "from_email": "user@example.com", "to": ["user@example.com"]}),
        ),
        (
            s("mailto://user:p%40ss%3Aw%2Frd%23%20x@mail.example.com:2525\
               ?to=a@x.com,b@y.com&from=Alerts%20<alerts@example.com>&reply=help@example.com"),
            "email",
            json!({"host": "mail.example.com", "port": 2525, "tls": "none", "username": "user",
                   "password": "p@ss:w/rd# x", "from_email": "alerts@example.com", "from_name": "Alerts",
                   "reply_to": "help@example.com", "to": ["a@x.com", "b@y.com"]}),
        ),
        (
            s("mailtos://me:app-password@gmail.com"),
            "email",
            json!({"host": "smtp.gmail.com", "port": 587, "tls": "starttls", "username": "me@gmail.com",
                   "password": "app-password", "from_email": "me@gmail.com", "to": ["me@gmail.com"]}),
        ),
        (
            s("mailto://me:pw@yahoo.com/friend@example.org"),
            "email",
            json!({"host": "smtp.mail.yahoo.com", "port": 465, "tls": "implicit", "username": "me@yahoo.com",
                   "password": "pw", "from_email": "me@yahoo.com", "to": ["friend@example.org"]}),
        ),
        (
            s("mailtos://me:pw@example.com?smtp=smtp.example.net&mode=ssl&name=Herald%20Alerts"),
            "email",
            json!({"host": "smtp.example.net", "port": 465, "tls": "implicit", "username": "me", "password": "pw",
                   "from_email": "me@example.com", "from_name": "Herald Alerts", "to": ["me@example.com"]}),
        ),
        (
            s("mailto://u:pw@10.0.0.5?from=ops@example.com&mode=starttls&format=html"),
            "email",
            json!({"host": "10.0.0.5", "port": 587, "tls": "starttls", "username": "u", "password": "pw",
                   "from_email": "ops@example.com", "to": ["ops@example.com"]}),
        ),
        (
            s("mailto://alerts@[::1]:2525/ops@example.com,oncall@example.com"),
            "email",
            json!({"host": "::1", "port": 2525, "tls": "none", "from_email": "alerts@[::1]",
                   "to": ["ops@example.com", "oncall@example.com"]}),
        ),
        // --- slack
        (
            s("slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7"),
            "slack",
            json!({"webhook_url": "https://hooks.slack.com/services/T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7"}),
        ),
        (
            s("slack://Herald%20Bot@T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7/#alerts"),
            "slack",
            json!({"webhook_url": "https://hooks.slack.com/services/T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7",
                   "channel": "#alerts", "username": "Herald Bot"}),
        ),
        (
            s("slack://T1/A1/C1/@jane?mode=gov-hook&footer=no"),
            "slack",
            json!({"webhook_url": "https://hooks.slack-gov.com/services/T1/A1/C1", "channel": "@jane"}),
        ),
        (
            s("slack://T1/A1/C1?to=#ops"),
            "slack",
            json!({"webhook_url": "https://hooks.slack.com/services/T1/A1/C1", "channel": "#ops"}),
        ),
        (
            s("slack://T1/A1/C1/general"),
            "slack",
            json!({"webhook_url": "https://hooks.slack.com/services/T1/A1/C1", "channel": "#general"}),
        ),
        // --- discord
        (
            s("discord://123456789012345678/abcDEF_-xyz"),
            "discord",
            json!({"webhook_url": "https://discord.com/api/webhooks/123456789012345678/abcDEF_-xyz"}),
        ),
        (
            s("discord://Bot@123/tok?botname=Herald&avatar_url=https://example.com/a.png&avatar=no&verify=yes"),
            "discord",
            json!({"webhook_url": "https://discord.com/api/webhooks/123/tok", "username": "Herald",
                   "avatar_url": "https://example.com/a.png"}),
        ),
        (
            s("discord://Herald@123/tok/"),
            "discord",
            json!({"webhook_url": "https://discord.com/api/webhooks/123/tok", "username": "Herald"}),
        ),
        // --- teams
        (
            s("msteams://myteam/abcd-ef12@34-56/0123abcd/a1b2-c3d4"),
            "teams",
            json!({"webhook_url": "https://myteam.webhook.office.com/webhookb2/abcd-ef12@34-56/IncomingWebhook/0123abcd/a1b2-c3d4",
                   "format": "message_card"}),
        ),
        (
            s("msteams://myteam/abcd-ef12@34-56/0123abcd/a1b2-c3d4/V2aBc_D-e?image=no"),
            "teams",
            json!({"webhook_url": "https://myteam.webhook.office.com/webhookb2/abcd-ef12@34-56/IncomingWebhook/0123abcd/a1b2-c3d4/V2aBc_D-e",
                   "format": "message_card"}),
        ),
        (
            s("msteams://abcd-ef12@34-56/0123abcd/a1b2-c3d4"),
            "teams",
            json!({"webhook_url": "https://outlook.office.com/webhook/abcd-ef12@34-56/IncomingWebhook/0123abcd/a1b2-c3d4",
                   "format": "message_card"}),
        ),
        (
            s("msteams://abcd-ef12@34-56/0123abcd/a1b2-c3d4?team=other"),
            "teams",
            json!({"webhook_url": "https://other.webhook.office.com/webhookb2/abcd-ef12@34-56/IncomingWebhook/0123abcd/a1b2-c3d4",
                   "format": "message_card"}),
        ),
        (
            s(
                "workflows://prod-161.westeurope.logic.azure.com:443/643e69f83c8944438d68119179a10a64/KODuebWbDGYFr0z0eu-6Rj8aUKz7108W3wrNJZxFE5A",
            ),
            "teams",
            json!({"webhook_url": "https://prod-161.westeurope.logic.azure.com/workflows/643e69f83c8944438d68119179a10a64/triggers/manual/paths/invoke?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=KODuebWbDGYFr0z0eu-6Rj8aUKz7108W3wrNJZxFE5A",
                   "format": "adaptive_card"}),
        ),
        (
            s("workflow://flows.example.com:8443/wf1?sig=abc&pa=yes"),
            "teams",
            json!({"webhook_url": "https://flows.example.com:8443/powerautomate/automations/direct/workflows/wf1/triggers/manual/paths/invoke?api-version=2022-03-01-preview&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=abc",
                   "format": "adaptive_card"}),
        ),
        (
            s(
                "workflows://flows.example.com/wf1/?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=abc&wrap=no",
            ),
            "teams",
            json!({"webhook_url": "https://flows.example.com/workflows/wf1/triggers/manual/paths/invoke?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=abc",
                   "format": "adaptive_card"}),
        ),
        // --- telegram
        (
            s("tgram://123456789:abcdefg_hijklmnop/-1001234567890"),
            "telegram",
            json!({"bot_token": "123456789:abcdefg_hijklmnop", "chat_id": "-1001234567890"}),
        ),
        (
            s("tgram://bot123456789:abc-DEF/%40mychannel?silent=yes&topic=7"),
            "telegram",
            json!({"bot_token": "123456789:abc-DEF", "chat_id": "@mychannel", "silent": true, "message_thread_id": 7}),
        ),
        (
            s("tgram://123456789/abcdef/12345:42?thread=9&preview=no"),
            "telegram",
            json!({"bot_token": "123456789:abcdef", "chat_id": "12345", "message_thread_id": 42}),
        ),
        (
            s("tgram://123456789%3Aabc/mychannel?silent=no"),
            "telegram",
            json!({"bot_token": "123456789:abc", "chat_id": "@mychannel", "silent": false}),
        ),
        (s("tgram://123:abc/?to=555"), "telegram", json!({"bot_token": "123:abc", "chat_id": "555"})),
        // --- matrix
        (
            s("matrixs://syt_abc_123@matrix.example.org/#ops"),
            "matrix",
            json!({"homeserver_url": "https://matrix.example.org", "access_token": "syt_abc_123",
                   "room_id": "#ops:matrix.example.org"}),
        ),
        (
            s("matrix://herald:syt_tok@localhost:8008/!abcDEF:example.org"),
            "matrix",
            json!({"homeserver_url": "http://localhost:8008", "access_token": "syt_tok", "room_id": "!abcDEF:example.org"}),
        ),
        (
            s("matrixs://tok@[2001:db8::1]:8448/%23room:example.org?msgtype=notice"),
            "matrix",
            json!({"homeserver_url": "https://[2001:db8::1]:8448", "access_token": "tok", "room_id": "#room:example.org"}),
        ),
        (
            s("matrixs://matrix.org/?to=#alerts&token=xyz"),
            "matrix",
            json!({"homeserver_url": "https://matrix.org", "access_token": "xyz", "room_id": "#alerts:matrix.org"}),
        ),
        // --- ntfy
        (s("ntfy://alerts"), "ntfy", json!({"topic": "alerts"})),
        (s("ntfys://ntfy.sh/alerts"), "ntfy", json!({"server_url": "https://ntfy.sh", "topic": "alerts"})),
        (
            s("ntfys://user:p%40ss@ntfy.example.com:8443/alerts?priority=high&tags=warning,skull"),
            "ntfy",
            json!({"server_url": "https://ntfy.example.com:8443", "topic": "alerts", "username": "user",
                   "password": "p@ss", "priority": 4, "tags": ["warning", "skull"]}),
        ),
        (
            s("ntfy://tk_abc123@10.0.0.2/alerts?priority=1"),
            "ntfy",
            json!({"server_url": "http://10.0.0.2", "topic": "alerts", "token": "tk_abc123", "priority": 1}),
        ),
        (
            s("ntfys://ntfy.example.com/alerts?token=tk_xyz&priority=max&image=no"),
            "ntfy",
            json!({"server_url": "https://ntfy.example.com", "topic": "alerts", "token": "tk_xyz", "priority": 5}),
        ),
        (
            s("ntfys://ops-alerts?mode=cloud&xtags=rotating_light"),
            "ntfy",
            json!({"topic": "ops-alerts", "tags": ["rotating_light"]}),
        ),
        // --- gotify
        (
            s("gotify://gotify.example.com/AbCdEf.123"),
            "gotify",
            json!({"server_url": "http://gotify.example.com", "app_token": "AbCdEf.123"}),
        ),
        (
            s("gotifys://example.com:8443/gotify/AbCdEf?priority=high"),
            "gotify",
            json!({"server_url": "https://example.com:8443/gotify", "app_token": "AbCdEf", "priority": 8}),
        ),
        (
            s("gotify://[::1]/tok?priority=7"),
            "gotify",
            json!({"server_url": "http://[::1]", "app_token": "tok", "priority": 7}),
        ),
        // --- pushover
        (
            s("pover://uQiRzpo4DXghDmr9QzzfQu27cmVRsG@azGDORePK8gMaC0QOYAMyEEuzJnyUi"),
            "pushover",
            json!({"user_key": "uQiRzpo4DXghDmr9QzzfQu27cmVRsG", "app_token": "azGDORePK8gMaC0QOYAMyEEuzJnyUi"}),
        ),
        (
            s(&format!("pover://{PO_USER}@{PO_APP}/phone?priority=emergency&sound=Siren")),
            "pushover",
            json!({"user_key": PO_USER, "app_token": PO_APP, "device": "phone", "priority": 2, "sound": "siren"}),
        ),
        (
            s(&format!("pover://{PO_USER}@{PO_APP}?to=tablet&priority=-1")),
            "pushover",
            json!({"user_key": PO_USER, "app_token": PO_APP, "device": "tablet", "priority": -1}),
        ),
        // --- json → webhook
        (s("json://127.0.0.1:8080/hook"), "webhook", json!({"url": "http://127.0.0.1:8080/hook"})),
        (s("json://example.com"), "webhook", json!({"url": "http://example.com/"})),
        (
            s("jsons://example.com/a/b/?+X-Token=abc+def%2B&+X-Env=prod&-key=v%20w"),
            "webhook",
            json!({"url": "https://example.com/a/b/?key=v+w", "headers": {"X-Token": "abc+def+", "X-Env": "prod"}}),
        ),
        (s("jsons://[::1]:8443/hook#frag"), "webhook", json!({"url": "https://[::1]:8443/hook%23frag"})),
        // --- twilio
        (
            format!("twilio://{SID}:authtoken0123@15551234567/15557654321/+44%207700%20900123"),
            "twilio_sms",
            json!({"account_sid": SID, "auth_token": "authtoken0123", "from": "+15551234567",
                   "to": ["+15557654321", "+447700900123"]}),
        ),
        (
            format!("twilio://{SID}:tok@{MG}?to=+15557654321,+1%20(555)%20765-4322"),
            "twilio_sms",
            json!({"account_sid": SID, "auth_token": "tok", "messaging_service_sid": MG,
                   "to": ["+15557654321", "+15557654322"]}),
        ),
        (
            format!("twilio://{SID}:tok@+1%20555%20123%204567"),
            "twilio_sms",
            json!({"account_sid": SID, "auth_token": "tok", "from": "+15551234567", "to": ["+15551234567"]}),
        ),
        (
            format!("twilio://{SID}:tok@12345/15557654321"),
            "twilio_sms",
            json!({"account_sid": SID, "auth_token": "tok", "from": "12345", "to": ["+15557654321"]}),
        ),
        // --- mattermost
        (
            s("mmost://mattermost.example.com/abcdefghijklmnopqrstuvwxyz"),
            "mattermost",
            json!({"webhook_url": "http://mattermost.example.com/hooks/abcdefghijklmnopqrstuvwxyz"}),
        ),
        (
            s("mmosts://Herald@chat.example.com:8443/sub/path/hooktoken?channel=%23alerts"),
            "mattermost",
            json!({"webhook_url": "https://chat.example.com:8443/sub/path/hooks/hooktoken", "channel": "alerts",
                   "username": "Herald"}),
        ),
        // --- google chat
        (
            s(
                "gchat://AAAAk6lGXyM/AIzaSyDdI0hCZtE6vySjMm-WEfRq3CPzqKqqsHI/O7b1nyri_waOpLMSzbFILAGRzgtQofPW71fEEXKcyFk%3D",
            ),
            "google_chat",
            json!({"webhook_url": "https://chat.googleapis.com/v1/spaces/AAAAk6lGXyM/messages?key=AIzaSyDdI0hCZtE6vySjMm-WEfRq3CPzqKqqsHI&token=O7b1nyri_waOpLMSzbFILAGRzgtQofPW71fEEXKcyFk%3D"}),
        ),
        (
            s("GCHAT://ws?key=k&token=t"),
            "google_chat",
            json!({"webhook_url": "https://chat.googleapis.com/v1/spaces/ws/messages?key=k&token=t"}),
        ),
    ]
}

/// The examples of docs/channels/apprise-urls.md, kept true.
fn documented_cases() -> Vec<(&'static str, &'static str, Value)> {
    vec![
        (
            "mailtos://herald:p%40ss@mail.example.com?mode=ssl&from=Herald%20<noreply@example.com>&reply=help@example.com",
            "email",
            json!({"host": "mail.example.com", "port": 465, "tls": "implicit", "username": "herald", "password": "p@ss",
                   "from_email": "noreply@example.com", "from_name": "Herald", "reply_to": "help@example.com",
                   "to": ["noreply@example.com"]}),
        ),
        (
            "tgram://123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/-1001234567890:42?silent=yes",
            "telegram",
            json!({"bot_token": "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw", "chat_id": "-1001234567890",
                   "message_thread_id": 42, "silent": true}),
        ),
        (
            "ntfys://tk_AgQdq7mVBoFD37zQVN29RhuMzNIz2@ntfy.example.com/deploys?priority=high&tags=rocket",
            "ntfy",
            json!({"server_url": "https://ntfy.example.com", "topic": "deploys",
                   "token": "tk_AgQdq7mVBoFD37zQVN29RhuMzNIz2", "priority": 4, "tags": ["rocket"]}),
        ),
        (
            "pover://uQiRzpo4DXghDmr9QzzfQu27cmVRsG@azGDORePK8gMaC0QOYAMyEEuzJnyUi/phone?priority=high&sound=siren",
            "pushover",
            json!({"user_key": "uQiRzpo4DXghDmr9QzzfQu27cmVRsG", "app_token": "azGDORePK8gMaC0QOYAMyEEuzJnyUi",
                   "device": "phone", "priority": 1, "sound": "siren"}),
        ),
        (
            "jsons://hooks.example.com/herald?+X-Env=prod&-source=alerts",
            "webhook",
            json!({"url": "https://hooks.example.com/herald?source=alerts", "headers": {"X-Env": "prod"}}),
        ),
        (
            "mmosts://Herald@chat.example.com/hooks-prefix/yobjmukpaw3r3urc5h6i369yima?channel=alerts",
            "mattermost",
            json!({"webhook_url": "https://chat.example.com/hooks-prefix/hooks/yobjmukpaw3r3urc5h6i369yima",
                   "channel": "alerts", "username": "Herald"}),
        ),
    ]
}

#[test]
fn valid_urls_make_the_documented_config() {
    let documented = documented_cases().into_iter().map(|(u, k, c)| (u.to_owned(), k, c));
    for (url, kind, config) in valid_cases().into_iter().chain(documented) {
        let parsed = parse(&url).unwrap_or_else(|e| panic!("{url}: {e}"));
        assert_eq!((parsed.kind, &parsed.config), (kind, &config), "{url}");
    }
}

/// Every config a URL makes is one its channel accepts as it is.
#[test]
fn every_config_made_passes_its_channel() {
    let registry = Registry::builtin();
    let documented = documented_cases().into_iter().map(|(u, k, c)| (u.to_owned(), k, c));
    let mut refused = Vec::new();
    for (url, kind, config) in valid_cases().into_iter().chain(documented) {
        let channel = registry.get(kind).unwrap_or_else(|| panic!("{url}: no channel `{kind}`"));
        match channel.prepare(config, &ctx(true)) {
            Ok(prepared) if kind == "webhook" => {
                assert!(prepared["secret"].as_str().unwrap().starts_with("whsec_"), "{url}")
            }
            Ok(_) => {}
            Err(e) => refused.push(format!("{url} → {kind}: {e}")),
        }
    }
    assert!(refused.is_empty(), "configs made from URLs refused by their channel:\n{}", refused.join("\n"));
}

#[test]
fn invalid_urls_name_the_part() {
    let sid = SID;
    let cases: Vec<(String, &str, &str)> = vec![
        // The URL as a whole, the scheme.
        ("".into(), "the URL", "is empty"),
        ("tgram:/123:abc/1".into(), "the URL", "must start with a scheme"),
        ("foo://bar".into(), "scheme", "unknown scheme `foo`; supported: discord, gchat"),
        ("tgram://123:abc/1\t2".into(), "the URL", "control characters"),
        (format!("json://example.com/{}", "a".repeat(5000)), "the URL", "longer than"),
        // Telegram.
        ("tgram://123456789:abc/".into(), "path segment 1 (chat id)", "is missing"),
        ("tgram://123456789:abc/1/2".into(), "path segment 2 (chat id)", "second chat"),
        ("tgram://123456789:abc/1?to=2".into(), "query parameter `to`", "second chat"),
        ("tgram://123456789:abc/12.5".into(), "path segment 1 (chat id)", "must be a number or @channelname"),
        ("tgram://abc:def/1".into(), "host (bot token)", "digits, a colon"),
        ("tgram://123456789:/1".into(), "host (bot token)", "digits, a colon"),
        ("tgram://123456789".into(), "path segment 1 (bot token, second half)", "is missing"),
        ("tgram://user@123:abc/1".into(), "host (bot token)", "alone"),
        ("tgram://123456789:abc/1?topic=x".into(), "query parameter `topic`", "topic's number"),
        ("tgram://123456789:abc/1?silent=maybe".into(), "query parameter `silent`", "yes or no"),
        (
            "tgram://123456789:abc/1?bogus=1".into(),
            "query parameter `bogus`",
            "not supported by tgram://; it understands",
        ),
        ("tgram://123456789:abc/1?silent=yes&silent=no".into(), "query parameter `silent`", "given twice"),
        // Discord.
        ("discord://abc/def".into(), "host (webhook id)", "number"),
        ("discord://123/".into(), "path segment 1 (webhook token)", "is missing"),
        ("discord://123/tok/extra".into(), "path segment 2", "one too many"),
        ("discord://123/tok?thread=5".into(), "query parameter `thread`", "not supported by discord://"),
        ("discord://123/tok?avatar_url=ftp://x".into(), "query parameter `avatar_url`", "http(s)"),
        // Slack.
        ("slack://xoxb-123-456/abc".into(), "host (token A)", "bot tokens"),
        ("slack://T1/A1".into(), "path segment 2 (token C)", "is missing"),
        ("slack://T1//C1".into(), "path segment 2 (token C)", "is missing"),
        ("slack://T1/A-1/C1".into(), "path segment 1 (token B)", "letters and digits"),
        ("slack://T1/A1/C1/#a/#b".into(), "path segment 4 (channel)", "second channel"),
        ("slack://T1/A1/C1/#a:1234.5".into(), "path segment 3 (channel)", "#channel, @user"),
        ("slack://T1/A1/C1?mode=bot".into(), "query parameter `mode`", "hook or gov-hook"),
        // Teams.
        ("msteams://team/notoken/b/c".into(), "path segment 1 (token A)", "must look like"),
        ("msteams://team/a@b/c".into(), "path segment 3 (token C)", "is missing"),
        ("msteams://team/a@b/bb/cc/notv2".into(), "path segment 4 (token D)", "V2"),
        ("msteams://a@b/bb/cc/dd".into(), "path segment 3", "one too many"),
        ("msteams://te.am/a@b/bb/cc".into(), "host (team)", "team name"),
        ("msteams://team/a@b/bb/cc?version=4".into(), "query parameter `version`", "1, 2 or 3"),
        ("workflows://host.example.com/wf".into(), "path segment 2 (signature)", "is missing"),
        ("workflows://host.example.com/wf/sig?pa=perhaps".into(), "query parameter `pa`", "yes or no"),
        ("workflows://host.example.com:99999/wf/sig".into(), "port", "1 to 65535"),
        ("workflows://host.example.com/w%20f/sig".into(), "path segment 1 (workflow id)", "after /workflows/"),
        // Matrix.
        ("matrixs://matrix.example.org/#room".into(), "user (access token)", "is missing"),
        ("matrixs://tok@matrix.example.org/".into(), "path segment 1 (room)", "is missing"),
        ("matrixs://tok@matrix.example.org/#a/#b".into(), "path segment 2 (room)", "second room"),
        ("matrixs://tok@matrix.example.org/#bad$room".into(), "path segment 1 (room)", "room alias"),
        ("matrix://tok@matrix.example.org/#r?mode=t2bot".into(), "query parameter `mode`", "webhook modes"),
        ("matrixs://tok@::1/#r".into(), "host", "brackets"),
        ("matrixs://tok@[::1/#r".into(), "host", "IP address"),
        ("matrixs://tok@/#r".into(), "host", "is missing"),
        // ntfy.
        ("ntfys://ntfy.example.com/a/b".into(), "path segment 2 (topic)", "second topic"),
        ("ntfy://host.example.com/topic?priority=loud".into(), "query parameter `priority`", "1-5"),
        ("ntfy://host.example.com/top!c".into(), "path segment 1 (topic)", "letters, digits"),
        ("ntfys://".into(), "path segment 1 (topic)", "is missing"),
        ("ntfy://host.example.com/t?click=https://x".into(), "query parameter `click`", "not supported by ntfy://"),
        ("ntfy://host.example.com/t?auth=oauth".into(), "query parameter `auth`", "basic or token"),
        ("ntfy://host.example.com/t?auth=token".into(), "query parameter `auth`", "no token"),
        // Gotify.
        ("gotify://example.com".into(), "path segment 1 (app token)", "is missing"),
        ("gotify://example.com/tok?priority=11".into(), "query parameter `priority`", "0-10"),
        ("gotify://user:pw@example.com/tok".into(), "user", "no user"),
        // Pushover.
        ("pover://atoken".into(), "user (user key)", "is missing"),
        ("pover://u@t/d1/d2".into(), "path segment 2 (device)", "second device"),
        ("pover://u@t/%23group".into(), "path segment 1 (device)", "groups"),
        ("pover://u@t?priority=9".into(), "query parameter `priority`", "-2 to 2"),
        ("pover://u@t?sound=two%20words".into(), "query parameter `sound`", "sound name"),
        ("pover://u@t?url=https://x".into(), "query parameter `url`", "not supported by pover://"),
        // json.
        ("json://user:pw@example.com/hook".into(), "user", "Basic auth"),
        ("json://example.com/hook?:key=v".into(), "query parameter `:key`", "payload fields"),
        ("json://example.com?method=GET".into(), "query parameter `method`", "POST"),
        ("json://exa mple.com".into(), "host", "host name"),
        ("json://example.com:0/x".into(), "port", "1 to 65535"),
        ("json://example.com:abc/x".into(), "port", "1 to 65535"),
        ("jsons://".into(), "host", "is missing"),
        ("json://example.com/x?%ZZ=1&+=2".into(), "query parameter `+`", "header name"),
        // Twilio.
        ("twilio://ACbad:tok@15551234567".into(), "user (account SID)", "AC and 32 hex"),
        (format!("twilio://{sid}:@15551234567"), "password (auth token)", "auth token"),
        (format!("twilio://{sid}:tok@123/15557654321"), "host (from)", "country code"),
        (format!("twilio://{sid}:tok@15551234567/12345"), "path segment 1 (to number)", "country code"),
        (format!("twilio://{sid}:tok@w:15551234567"), "host (from)", "WhatsApp"),
        (format!("twilio://{sid}:tok@15551234567?method=call"), "query parameter `method`", "sms"),
        (format!("twilio://{sid}:tok@15551234567?apikey=SK1"), "query parameter `apikey`", "not supported"),
        // Mattermost and Google Chat.
        ("mmost://host.example.com".into(), "path segment 1 (webhook token)", "is missing"),
        ("mmost://host.example.com/tok?channel=a,b".into(), "query parameter `channel`", "second channel"),
        ("mmost://a:b@host.example.com/tok".into(), "user", "bot name"),
        ("gchat://ws/key".into(), "path segment 2 (webhook token)", "is missing"),
        ("gchat://ws/key/tok/thread".into(), "path segment 3 (thread key)", "threads"),
        ("gchat://w.s/key/tok".into(), "host (workspace)", "space id"),
        // Email.
        ("mailtos://example.com".into(), "user", "?from="),
        ("mailtos://u:p@example.com?to=notanaddress".into(), "query parameter `to`", "email address"),
        ("mailtos://u:p@example.com/bad".into(), "path segment 1 (recipient)", "email address"),
        ("mailtos://u:p@example.com?mode=tls".into(), "query parameter `mode`", "ssl, starttls or insecure"),
        ("mailtos://u:p@example.com?cc=a@b.c".into(), "query parameter `cc`", "To only"),
        ("mailtos://u:p@example.com?name=A%0D%0ABcc:x@y.z".into(), "query parameter `name`", "control characters"),
        ("mailtos://u:p@example.com?verify=no".into(), "query parameter `verify`", "always verifies"),
        ("mailtos://u:p@example.com?reply=a@x.com,b@x.com".into(), "query parameter `reply`", "one address"),
        ("mailtos://u:p@example.com?smtp=bad_host!".into(), "query parameter `smtp`", "host name"),
        ("mailtos://u:p@example.com:65536".into(), "port", "1 to 65535"),
        ("mailtos://:pw@example.com?from=a@b.c".into(), "user", "before the password"),
        ("mailtos://u%FF:p@example.com".into(), "user", "UTF-8"),
    ];
    for (url, part, message) in cases {
        let err: AppriseError = match parse(&url) {
            Ok(p) => panic!("{url}: accepted as {} {}", p.kind, p.config),
            Err(e) => e,
        };
        assert_eq!(err.part, part, "{url}: {err}");
        assert!(err.message.contains(message), "{url}: `{}` lacks `{message}`", err.message);
    }
}

#[test]
fn errors_and_debug_never_show_a_secret() {
    let bad = [
        "tgram://123456789:s3cr3t/12.5".to_owned(),
        "tgram://123456789:s3cr3t/".to_owned(),
        "tgram://123456789:s3cr3t?bogus=1".to_owned(),
        "json://user:s3cr3t@example.com/hook".to_owned(),
        "mailtos://u:s3cr3t@example.com?mode=tls".to_owned(),
        "mailtos://u:s3cr3t@example.com/not-an-address".to_owned(),
        "slack://T1/A1/s3cr3t-with-dash".to_owned(),
        "discord://123/s3cr3t/extra".to_owned(),
        "matrixs://s3cr3t@matrix.example.org/".to_owned(),
        "ntfys://u:s3cr3t@ntfy.example.com/a/b".to_owned(),
        format!("twilio://{SID}:s3cr3t@123"),
        "gchat://ws/s3cr3t".to_owned(),
        "pover://s3cr3t@t/a/b".to_owned(),
        "gotify://example.com/s3cr3t!".to_owned(),
    ];
    for url in bad {
        let err = parse(&url).expect_err(&url).to_string();
        assert!(!err.contains("s3cr3t"), "{url}: {err}");
    }
    let parsed = parse("tgram://123456789:s3cr3t/1").unwrap();
    assert!(!format!("{parsed:?}").contains("s3cr3t"));
}

/// Percent-encodes every byte but letters and digits.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

proptest! {
    #[test]
    fn any_input_is_answered_without_panic(url in "\\PC{0,80}", scheme in "(mailtos|tgram|matrixs|json|ntfy|slack|twilio|msteams|workflows|gchat|pover|gotify|mmost)") {
        let _ = parse(&url);
        let _ = parse(&format!("{scheme}://{url}"));
    }

    #[test]
    fn percent_encoded_passwords_come_back_exactly(password in "[^\\p{Cc}]{1,40}") {
        let parsed = parse(&format!("mailtos://user:{}@example.com", encode(&password))).unwrap();
        prop_assert_eq!(parsed.config["password"].as_str(), Some(password.as_str()));
        let parsed = parse(&format!("ntfys://user:{}@ntfy.example.com/alerts", encode(&password))).unwrap();
        prop_assert_eq!(parsed.config["password"].as_str(), Some(password.as_str()));
    }

    #[test]
    fn numeric_chat_ids_and_ports_are_kept(chat in -9_999_999_999_999i64..9_999_999_999_999, port in 1u16..) {
        let parsed = parse(&format!("tgram://123:abc/{chat}")).unwrap();
        let chat = chat.to_string();
        prop_assert_eq!(parsed.config["chat_id"].as_str(), Some(chat.as_str()));
        let parsed = parse(&format!("gotifys://example.com:{port}/tok")).unwrap();
        let expected = if port == 443 { "https://example.com".to_owned() } else { format!("https://example.com:{port}") };
        prop_assert_eq!(parsed.config["server_url"].as_str(), Some(expected.as_str()));
    }
}
