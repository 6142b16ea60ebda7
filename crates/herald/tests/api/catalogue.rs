//! The catalogue: notification types, templates (refused with a line and
//! column when they do not compile), previews as a person would get them
//! (their timezone, their locale's variant), and importing an
//! application's config and templates files all or nothing.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{
    backend_test,
    helpers::{ADMIN, App, Backend, TempDir, TestDb},
    recipients::{delete, field_of, put},
};

async fn spawn_sqlite() -> (App, TestDb, TempDir) {
    let (db, dir) = (TestDb::new(Backend::Sqlite).await, TempDir::new());
    let app = App::spawn(Backend::Sqlite, &db, &dir).await;
    (app, db, dir)
}

async fn preview(app: &App, body: Value) -> Value {
    let (status, out) = app.post("/v1/templates/preview", body.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body} → {out}");
    out
}

backend_test!(notification_types_are_created_listed_and_deleted, |backend: Backend| async move {
    let (db, dir) = (TestDb::new(backend).await, TempDir::new());
    let app = App::spawn(backend, &db, &dir).await;
    let (status, t) = put(&app, "/v1/notification-types/job_failed", json!({"label": "Job failed"})).await;
    assert_eq!(status, StatusCode::CREATED, "{t}");
    assert_eq!(t["type"], "job_failed");
    assert_eq!(
        (&t["channels"], &t["default_enabled"], &t["required"]),
        (&json!(["in_app"]), &json!(true), &json!(false))
    );
    assert_eq!((&t["severity"], &t["category"]), (&Value::Null, &Value::Null));

    let full = json!({"label": "Job failed", "description": "A job ended in error.", "category": "jobs",
        "default_enabled": false, "channels": ["email", "in_app", "email"], "severity": "error", "required": true});
    let (status, t2) = put(&app, "/v1/notification-types/job_failed", full).await;
    assert_eq!(status, StatusCode::OK, "{t2}");
    assert_eq!(t2["channels"], json!(["email", "in_app"]), "deduplicated, in order");
    assert_eq!(
        (&t2["severity"], &t2["required"], &t2["created_at"]),
        (&json!("error"), &json!(true), &t["created_at"])
    );
    assert_eq!(app.get("/v1/notification-types/job_failed").await.1, t2);

    for (kind, category) in [("job.done", "jobs"), ("auth:failed", "security"), ("backup_done", "backup")] {
        let body = json!({"label": kind, "category": category});
        assert_eq!(put(&app, &format!("/v1/notification-types/{kind}"), body).await.0, StatusCode::CREATED);
    }
    let kinds = |page: &Value| -> Vec<String> {
        page["data"].as_array().unwrap().iter().map(|t| t["type"].as_str().unwrap().to_owned()).collect()
    };
    let (_, jobs) = app.get("/v1/notification-types?category=jobs").await;
    assert_eq!(kinds(&jobs), ["job.done", "job_failed"]);
    let (_, first) = app.get("/v1/notification-types?limit=2").await;
    assert_eq!(kinds(&first), ["auth:failed", "backup_done"]);
    let (_, rest) =
        app.get(&format!("/v1/notification-types?limit=2&cursor={}", first["next_cursor"].as_str().unwrap())).await;
    assert_eq!(kinds(&rest), ["job.done", "job_failed"]);

    for (path, body, field) in [
        ("a%20b", json!({"label": "x"}), "type"),
        ("ok", json!({"label": " "}), "label"),
        ("ok", json!({"label": "x", "channels": ["in_app", "fax"]}), "channels[1]"),
        ("ok", json!({"label": "x", "severity": "loud"}), "severity"),
        ("ok", json!({"label": "x", "icon": "bell"}), "icon"),
        ("ok", json!({}), "label"),
    ] {
        assert_eq!(field_of(put(&app, &format!("/v1/notification-types/{path}"), body.clone()).await), field, "{body}");
    }

    // Deleting a type deletes its templates.
    put(&app, "/v1/templates/job_failed/in_app", json!({"title": "Failed"})).await;
    assert_eq!(delete(&app, "/v1/notification-types/job_failed").await, StatusCode::NO_CONTENT);
    assert_eq!(app.get("/v1/notification-types/job_failed").await.0, StatusCode::NOT_FOUND);
    assert_eq!(app.get("/v1/templates/job_failed/in_app").await.0, StatusCode::NOT_FOUND);
    assert_eq!(delete(&app, "/v1/notification-types/job_failed").await, StatusCode::NOT_FOUND);

    // Another tenant has a catalogue of its own.
    app.post("/v1/tenants", json!({"id": "globex", "name": "Globex"})).await;
    let res =
        app.client.get(app.url("/v1/notification-types/job.done")).bearer_auth(ADMIN).header("herald-tenant", "globex");
    assert_eq!(res.send().await.unwrap().status(), StatusCode::NOT_FOUND);
});

backend_test!(templates_are_checked_when_saved, |backend: Backend| async move {
    let (db, dir) = (TestDb::new(backend).await, TempDir::new());
    let app = App::spawn(backend, &db, &dir).await;
    let email = json!({"subject": "Job {{ job }} failed", "html_body": "<p>{{ data.error }}</p>"});
    let (status, saved) = put(&app, "/v1/templates/job_failed/email", email.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{saved}");
    assert_eq!(
        (&saved["type"], &saved["channel"], &saved["locale"]),
        (&json!("job_failed"), &json!("email"), &json!(""))
    );
    assert_eq!((&saved["subject"], &saved["html_body"]), (&email["subject"], &email["html_body"]));
    assert!(saved.get("title").is_none());
    assert_eq!(put(&app, "/v1/templates/job_failed/email", email.clone()).await.0, StatusCode::OK);
    let (status, de) =
        put(&app, "/v1/templates/job_failed/email?locale=de", json!({"subject": "Job {{ job }} fehlgeschlagen"})).await;
    assert_eq!((status, &de["locale"]), (StatusCode::CREATED, &json!("de")));
    put(&app, "/v1/templates/job_failed/slack", json!({"title": "{{ job }}", "body": "{{ error }}"})).await;
    assert_eq!(app.get("/v1/templates/job_failed/email?locale=de").await.1["subject"], "Job {{ job }} fehlgeschlagen");
    assert_eq!(app.get("/v1/templates/job_failed/email").await.1["subject"], email["subject"]);
    assert_eq!(app.get("/v1/templates/job_failed/email?locale=fr").await.0, StatusCode::NOT_FOUND);
    let (_, all) = app.get("/v1/templates/job_failed").await;
    let variants: Vec<(&str, &str)> = all["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["channel"].as_str().unwrap(), t["locale"].as_str().unwrap()))
        .collect();
    assert_eq!(variants, [("email", ""), ("email", "de"), ("slack", "")]);

    // A template that does not compile: the field, line and column.
    let broken = json!({"subject": "fine", "text_body": "Hello,\n{{ data.job }\n"});
    let (status, problem) = put(&app, "/v1/templates/job_failed/email", broken).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    assert_eq!(problem["field"], "text_body");
    assert_eq!(problem["line"], 2, "{problem}");
    assert!(problem["column"].as_u64().unwrap() > 1, "{problem}");
    assert!(problem["detail"].as_str().unwrap().starts_with("line 2, column "), "{problem}");
    let (status, problem) = put(&app, "/v1/templates/job_failed/slack", json!({"body": "{% if x %}open"})).await;
    assert_eq!((status, &problem["field"]), (StatusCode::BAD_REQUEST, &json!("body")), "{problem}");
    assert_eq!(app.get("/v1/templates/job_failed/email").await.1["subject"], email["subject"], "unchanged");

    for (path, body, field) in [
        ("job_failed/email", json!({"title": "x"}), "title"),
        ("job_failed/slack", json!({"subject": "x"}), "subject"),
        ("job_failed/webhook", json!({"body": "x"}), "channel"),
        ("job_failed/fax", json!({"body": "x"}), "channel"),
        ("job%20failed/slack", json!({"body": "x"}), "type"),
        ("job_failed/slack?locale=klingon-", json!({"body": "x"}), "locale"),
        ("job_failed/slack?lang=de", json!({"body": "x"}), "lang"),
        ("job_failed/slack", json!({"footer": "x"}), "footer"),
    ] {
        assert_eq!(field_of(put(&app, &format!("/v1/templates/{path}"), body.clone()).await), field, "{path} {body}");
    }
    let (status, _) = put(&app, "/v1/templates/job_failed/slack", json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    assert_eq!(delete(&app, "/v1/templates/job_failed/email?locale=de").await, StatusCode::NO_CONTENT);
    assert_eq!(delete(&app, "/v1/templates/job_failed/email?locale=de").await, StatusCode::NOT_FOUND);
    assert_eq!(app.get("/v1/templates/job_failed/email").await.0, StatusCode::OK, "the default variant stays");
    // `preview` is a type name like any other.
    assert_eq!(put(&app, "/v1/templates/preview/in_app", json!({"title": "x"})).await.0, StatusCode::CREATED);
    assert_eq!(app.get("/v1/templates/preview").await.1["data"][0]["channel"], "in_app");
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn previews_render_in_the_recipients_timezone() {
    let (app, _db, _dir) = spawn_sqlite().await;
    put(&app, "/v1/recipients/ada", json!({"name": "Ada", "timezone": "Europe/Berlin"})).await;
    let email = json!({"subject": "{{ title }} due {{ data.due_at|datetime }}",
                       "text_body": "Hi {{ recipient.name }}, {{ data.due_at|datetime('%H:%M') }}.",
                       "html_body": "<b>{{ data.title }}</b> & {{ recipient.name }}"});
    put(&app, "/v1/templates/task_due/email", email).await;
    let data = json!({"title": "Report <Q3>", "due_at": "2026-07-01T10:00:00Z"});
    let out = preview(&app, json!({"type": "task_due", "channel": "email", "data": data, "recipient": "ada"})).await;
    assert_eq!(out["subject"], "Report <Q3> due 2026-07-01 12:00 CEST");
    assert!(out["text_body"].as_str().unwrap().contains("Hi Ada, 12:00."), "{out}");
    assert_eq!(out["html_body"], "<b>Report &lt;Q3&gt;</b> & Ada", "values are escaped, the template is not");
    assert_eq!((&out["locale"], &out["source"]), (&json!(""), &json!("stored")));

    // A chat channel, an inline recipient and an unsaved template.
    let template = json!({"title": "Due {{ data.due_at|datetime('%H:%M %Z') }}", "body": "for {{ recipient.name }}"});
    let body = json!({"type": "task_due", "channel": "slack", "data": data, "template": template,
                      "recipient": {"name": "Bo", "timezone": "America/New_York"}});
    let out = preview(&app, body).await;
    assert_eq!((&out["title"], &out["body"]), (&json!("Due 06:00 EDT"), &json!("for Bo")), "{out}");
    assert_eq!((&out["source"], &out["locale"]), (&json!("request"), &Value::Null));
    assert!(out.get("subject").is_none());

    // Nothing stored for the channel: Herald's own rendering.
    let out = preview(&app, json!({"type": "task_due", "channel": "telegram", "data": {"message": "Soon"}})).await;
    assert_eq!((&out["title"], &out["body"], &out["source"]), (&json!("Task due"), &json!("Soon"), &json!("default")));

    // Errors name the field, with the position for a template.
    let bad = json!({"type": "task_due", "channel": "slack", "template": {"body": "{{ recipient.name }"}});
    let (status, problem) = app.post("/v1/templates/preview", bad).await;
    assert_eq!(
        (status, &problem["field"], &problem["line"]),
        (StatusCode::BAD_REQUEST, &json!("template.body"), &json!(1))
    );
    for (body, field) in [
        (json!({"type": "task_due", "channel": "slack", "recipient": "nobody"}), "recipient"),
        (json!({"type": "task_due", "channel": "slack", "recipient": {"timezone": "Moon/Base"}}), "recipient.timezone"),
        (json!({"type": "task_due", "channel": "slack", "recipient": {"nick": "x"}}), "recipient.nick"),
        (json!({"type": "task_due", "channel": "slack", "template": {"subject": "x"}}), "template.subject"),
        (json!({"type": "task_due", "channel": "pigeon"}), "channel"),
        (json!({"type": "task_due", "channel": "slack", "data": [1]}), "data"),
        (json!({"channel": "slack"}), "type"),
    ] {
        assert_eq!(field_of(app.post("/v1/templates/preview", body.clone()).await), field, "{body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn previews_choose_the_locale_variant_with_fallback() {
    let (app, _db, _dir) = spawn_sqlite().await;
    put(&app, "/v1/templates/task_due/in_app", json!({"title": "Due: {{ title }}"})).await;
    put(&app, "/v1/templates/task_due/in_app?locale=de", json!({"title": "Fällig: {{ title }}"})).await;
    put(&app, "/v1/recipients/max", json!({"locale": "de-AT"})).await;
    let title = |locale: Option<&str>, recipient: Option<&str>| {
        let mut body = json!({"type": "task_due", "channel": "in_app", "data": {"title": "Bericht"}});
        if let Some(l) = locale {
            body["locale"] = json!(l);
        }
        if let Some(r) = recipient {
            body["recipient"] = json!(r);
        }
        let app = &app;
        async move {
            let out = preview(app, body).await;
            (out["title"].as_str().unwrap().to_owned(), out["locale"].as_str().unwrap().to_owned())
        }
    };
    assert_eq!(title(Some("de-AT"), None).await, ("Fällig: Bericht".into(), "de".into()));
    assert_eq!(title(Some("fr"), None).await, ("Due: Bericht".into(), "".into()));
    assert_eq!(title(None, None).await, ("Due: Bericht".into(), "".into()));
    assert_eq!(title(None, Some("max")).await, ("Fällig: Bericht".into(), "de".into()), "the recipient's locale");
    assert_eq!(title(Some("en"), Some("max")).await, ("Due: Bericht".into(), "".into()), "`locale` wins");
}

fn notifications_config() -> Value {
    json!({
        "version": 2,
        "categories": [{
            "id": "jobs", "label": "Jobs", "icon": "briefcase",
            "types": [
                {"id": "job_failed", "label": "Job failed", "channels": ["in_app", "email", "push"], "severity": "error"},
                {"id": "job.done", "label": "Job done", "default_enabled": false}
            ]
        }],
        "plugins": {"backup": {"notifications": [
            {"id": "backup_done", "label": "Backup done", "channels": ["sms", "push"], "required": true}
        ]}}
    })
}

fn notification_templates() -> Value {
    json!({
        "locale": "de",
        "templates": {
            "job_failed": {
                "email": {"subject": "Job {{ job }} fehlgeschlagen", "text_body": "{{ error }}"},
                "push": {"title": "Job fehlgeschlagen", "body": "{{ job }}"}
            },
            "backup_done": {"sms": {"body": "Backup fertig"}}
        }
    })
}

backend_test!(a_catalogue_is_imported_all_or_nothing, |backend: Backend| async move {
    let (db, dir) = (TestDb::new(backend).await, TempDir::new());
    let app = App::spawn(backend, &db, &dir).await;
    let body =
        json!({"notifications_config": notifications_config(), "notification_templates": notification_templates()});
    let (status, out) = app.post("/v1/config/import", body).await;
    assert_eq!((status, &out), (StatusCode::OK, &json!({"types": 3, "templates": 3})), "{out}");
    let (_, failed) = app.get("/v1/notification-types/job_failed").await;
    assert_eq!(failed["channels"], json!(["in_app", "email", "web_push"]));
    assert_eq!((&failed["category"], &failed["severity"]), (&json!("jobs"), &json!("error")));
    let (_, backup) = app.get("/v1/notification-types/backup_done").await;
    assert_eq!(
        (&backup["channels"], &backup["category"], &backup["required"]),
        (&json!(["twilio_sms", "web_push"]), &json!("backup"), &json!(true))
    );
    assert_eq!(app.get("/v1/notification-types/job.done").await.1["default_enabled"], false);
    assert_eq!(app.get("/v1/templates/job_failed/web_push?locale=de").await.1["title"], "Job fehlgeschlagen");
    assert_eq!(app.get("/v1/templates/backup_done/twilio_sms?locale=de").await.1["body"], "Backup fertig");
    // Imported `{{ job }}` reads `data.job`.
    let out = preview(&app, json!({"type": "job_failed", "channel": "email", "locale": "de", "data": {"job": "nightly", "error": "disk full"}})).await;
    assert_eq!((&out["subject"], &out["locale"]), (&json!("Job nightly fehlgeschlagen"), &json!("de")));

    // Each file alone; an import again replaces.
    let (status, out) = app.post("/v1/config/import", json!({"notifications_config": {"categories": [{"id": "jobs", "types": [{"id": "job_failed", "label": "Failed!"}]}]}})).await;
    assert_eq!((status, &out), (StatusCode::OK, &json!({"types": 1, "templates": 0})));
    assert_eq!(app.get("/v1/notification-types/job_failed").await.1["label"], "Failed!");
    let templates_only = json!({"notification_templates": {"templates": {"job.done": {"in_app": {"title": "Done"}}}}});
    assert_eq!(app.post("/v1/config/import", templates_only).await.1, json!({"types": 0, "templates": 1}));
    assert_eq!(app.get("/v1/templates/job.done/in_app").await.1["title"], "Done");

    // Errors name the request path, and a bad templates file stores no types either.
    let mut config = notifications_config();
    config["categories"][0]["types"][1]["id"] = json!("");
    let new_type = json!({"categories": [{"id": "x", "types": [{"id": "brand_new", "label": "New"}]}]});
    for (body, field) in [
        (json!({"notifications_config": config}), "notifications_config.categories[0].types[1].id"),
        (
            json!({"notifications_config": new_type.clone(), "notification_templates": {"templates": {"brand_new": {"push": {"title": "{{ x"}}}}}),
            "notification_templates.templates.brand_new.push.title",
        ),
        (
            json!({"notifications_config": new_type.clone(), "notification_templates": {"templates": {"brand_new": {"email": {"title": "x"}}}}}),
            "notification_templates.templates.brand_new.email.title",
        ),
        (
            json!({"notifications_config": {"categories": [{"id": "x", "types": [{"id": "brand_new", "label": "N", "channels": ["fax"]}]}]}}),
            "notifications_config",
        ),
        (json!({"notification_templates": []}), "notification_templates"),
        (json!({"notifications_config": {}, "extra": 1}), "extra"),
    ] {
        assert_eq!(field_of(app.post("/v1/config/import", body.clone()).await), field, "{body}");
    }
    assert_eq!(app.get("/v1/notification-types/brand_new").await.0, StatusCode::NOT_FOUND);
    let (status, _) = app.post("/v1/config/import", json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // A send key may not change the catalogue.
    let (_, key) = app.post("/v1/api-keys", json!({"name": "s", "scope": "send"})).await;
    let key = key["key"].as_str().unwrap();
    let (status, _) =
        app.request(Method::POST, "/v1/config/import", key, Some(&json!({"notifications_config": {}}))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
});

backend_test!(a_types_severity_is_the_default_of_its_events, |backend: Backend| async move {
    let (db, dir) = (TestDb::new(backend).await, TempDir::new());
    let app = App::spawn(backend, &db, &dir).await;
    let (status, t) =
        put(&app, "/v1/notification-types/backup.failed", json!({"label": "Backup failed", "severity": "error"})).await;
    assert_eq!(status, StatusCode::CREATED, "{t}");
    let (hook, _) = app.webhook("http://127.0.0.1:9/hook").await;
    app.rule(&["backup.*"], Some("severity == 'error'"), &[&hook]).await;

    // No severity given: the type's, for storage and for routing.
    let defaulted = app.event("backup.failed", json!({"job": "nightly"})).await;
    let (_, stored) = app.get(&format!("/v1/events/{defaulted}")).await;
    assert_eq!(stored["severity"], "error", "{stored}");
    assert_eq!(app.routed(&defaulted).await.len(), 1, "the rule on severity matched");

    // Given: kept. A type without a severity: `info`.
    let (status, body) =
        app.post("/v1/events", json!({"type": "backup.failed", "severity": "warning", "data": {}})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let given = body["id"].as_str().unwrap();
    let (_, stored) = app.get(&format!("/v1/events/{given}")).await;
    assert_eq!(stored["severity"], "warning");
    assert!(app.routed(given).await.is_empty());
    let other = app.event("backup.done", json!({})).await;
    let (_, stored) = app.get(&format!("/v1/events/{other}")).await;
    assert_eq!(stored["severity"], "info");

    // A changed type applies to the next event.
    put(&app, "/v1/notification-types/backup.failed", json!({"label": "Backup failed", "severity": "critical"})).await;
    let later = app.event("backup.failed", json!({})).await;
    let (_, stored) = app.get(&format!("/v1/events/{later}")).await;
    assert_eq!(stored["severity"], "critical");
});
