use serde_json::{Value, json};

use super::*;

fn config() -> Value {
    json!({
        "version": 3,
        "categories": [{
            "id": "jobs", "label": "Jobs", "icon": "briefcase", "order": 1,
            "types": [
                {"id": "job_failed", "label": "Job failed", "description": "A job ended in error.", "default_enabled": true,
                 "channels": ["in_app", "email"], "severity": "error", "required": false, "icon": "x"},
                {"id": "job.done", "label": "Job done"}
            ]
        }, {
            "name": "Security",
            "types": [{"id": "auth:failed", "label": "Login failed", "required": true, "channels": ["push", "sms", "web_push"]}]
        }],
        "plugins": {
            "backup": {"version": "1.2", "notifications": [
                {"id": "backup_done", "label": "Backup done", "description": "...", "default_enabled": false, "channels": ["email", "push", "sms"]}
            ]}
        }
    })
}

fn templates() -> Value {
    json!({
        "locale": "de",
        "templates": {
            "job_failed": {
                "email": {"subject": "Job {{ job }} fehlgeschlagen", "text_body": "{{ error }}", "html_body": "<p>{{ error }}</p>"},
                "push": {"title": "Job fehlgeschlagen", "body": "{{ job }}"}
            },
            "backup_done": {"sms": {"body": "Backup fertig"}}
        }
    })
}

fn config_err(config: Value) -> ImportError {
    parse(Some(&config), None).expect_err("config should be refused")
}

fn templates_err(templates: Value) -> ImportError {
    parse(None, Some(&templates)).expect_err("templates should be refused")
}

#[test]
fn parses_categories_and_plugins() {
    let catalogue = parse(Some(&config()), None).unwrap();
    assert!(catalogue.templates.is_empty());
    let ids: Vec<_> = catalogue.types.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(ids, ["job_failed", "job.done", "auth:failed", "backup_done"]);

    assert_eq!(
        catalogue.types[0],
        NotificationType {
            id: "job_failed".into(),
            label: "Job failed".into(),
            description: Some("A job ended in error.".into()),
            category: Some("jobs".into()),
            default_enabled: true,
            channels: vec!["in_app".into(), "email".into()],
            severity: Some(Severity::Error),
            required: false,
        }
    );
    // Defaults: enabled, not required, the inbox, no severity.
    let done = &catalogue.types[1];
    assert!(done.default_enabled && !done.required && done.channels == ["in_app"] && done.severity.is_none());
    // A category without an id is named by its `name`; aliases resolve and
    // duplicates collapse.
    let auth = &catalogue.types[2];
    assert_eq!(auth.category.as_deref(), Some("Security"));
    assert!(auth.required);
    assert_eq!(auth.channels, ["web_push", "twilio_sms"]);
    // Plugin notifications belong to the plugin.
    let backup = &catalogue.types[3];
    assert_eq!(backup.category.as_deref(), Some("backup"));
    assert!(!backup.default_enabled);
    assert_eq!(backup.channels, ["email", "web_push", "twilio_sms"]);
}

#[test]
fn parses_templates_with_a_file_locale() {
    let catalogue = parse(None, Some(&templates())).unwrap();
    assert!(catalogue.types.is_empty());
    let keys: Vec<_> = catalogue
        .templates
        .iter()
        .map(|t| (t.notification_type.as_str(), t.channel.as_str(), t.locale.as_deref()))
        .collect();
    assert_eq!(
        keys,
        [
            ("backup_done", "twilio_sms", Some("de")),
            ("job_failed", "email", Some("de")),
            ("job_failed", "web_push", Some("de"))
        ]
    );
    let email = &catalogue.templates[1].set;
    assert_eq!(email.subject.as_deref(), Some("Job {{ job }} fehlgeschlagen"));
    assert_eq!(email.html_body.as_deref(), Some("<p>{{ error }}</p>"));
    assert_eq!(email.title, None);
}

#[test]
fn parses_both_files_at_once() {
    let mut templates = templates();
    templates.as_object_mut().unwrap().remove("locale");
    let catalogue = parse(Some(&config()), Some(&templates)).unwrap();
    assert_eq!(catalogue.types.len(), 4);
    assert_eq!(catalogue.templates.len(), 3);
    assert!(catalogue.templates.iter().all(|t| t.locale.is_none()));
    assert_eq!(parse(None, None), Ok(Catalogue::default()));
}

#[test]
fn empty_and_null_sections_are_fine() {
    assert_eq!(parse(Some(&json!({})), None).unwrap().types, []);
    assert_eq!(parse(Some(&json!({"categories": null, "plugins": null})), None).unwrap().types, []);
    assert_eq!(parse(Some(&json!({"categories": [{"id": "c"}], "plugins": {"p": {}}})), None).unwrap().types, []);
    assert_eq!(parse(None, Some(&json!({"templates": {}}))).unwrap().templates, []);
}

#[test]
fn config_errors_name_the_path() {
    let cases = [
        (json!([]), "$"),
        (json!({"categories": {}}), "categories"),
        (json!({"categories": [{"id": "c", "types": [{"label": "No id"}]}]}), "categories[0].types[0].id"),
        (
            json!({"categories": [{"label": "L", "types": [{"id": "a", "label": "A"}, {"id": "b", "label": "B"}, {"id": "a b", "label": "C"}]}]}),
            "categories[0].types[2].id",
        ),
        (json!({"categories": [{"id": "c", "types": [{"id": "", "label": "x"}]}]}), "categories[0].types[0].id"),
        (json!({"categories": [{"id": "c", "types": [{"id": 7, "label": "x"}]}]}), "categories[0].types[0].id"),
        (json!({"categories": [{"id": "c", "types": [{"id": "x"}]}]}), "categories[0].types[0].label"),
        (json!({"categories": [{"id": "c", "types": [{"id": "x", "label": "  "}]}]}), "categories[0].types[0].label"),
        (
            json!({"categories": [{"id": "c", "types": [{"id": "x", "label": "X", "default_enabled": "yes"}]}]}),
            "categories[0].types[0].default_enabled",
        ),
        (
            json!({"categories": [{"id": "c", "types": [{"id": "x", "label": "X", "required": 1}]}]}),
            "categories[0].types[0].required",
        ),
        (
            json!({"categories": [{"id": "c", "types": [{"id": "x", "label": "X", "description": ["d"]}]}]}),
            "categories[0].types[0].description",
        ),
        (
            json!({"categories": [{"id": "c", "types": [{"id": "x", "label": "X", "severity": "fatal"}]}]}),
            "categories[0].types[0].severity",
        ),
        (
            json!({"categories": [{"id": "c", "types": [{"id": "x", "label": "X", "channels": "email"}]}]}),
            "categories[0].types[0].channels",
        ),
        (
            json!({"categories": [{"id": "c", "types": [{"id": "x", "label": "X", "channels": ["email", "E-Mail"]}]}]}),
            "categories[0].types[0].channels[1]",
        ),
        (
            json!({"categories": [{"id": "c", "types": [{"id": "x", "label": "X", "channels": ["email", 3]}]}]}),
            "categories[0].types[0].channels[1]",
        ),
        (json!({"categories": [{"types": []}]}), "categories[0]"),
        (json!({"categories": [{"id": "c", "types": {}}]}), "categories[0].types"),
        (json!({"plugins": []}), "plugins"),
        (
            json!({"plugins": {"my-plugin": {"notifications": [{"id": "x"}]}}}),
            r#"plugins["my-plugin"].notifications[0].label"#,
        ),
        (json!({"plugins": {"p": {"notifications": {}}}}), "plugins.p.notifications"),
        (json!({"plugins": {"p": "x"}}), "plugins.p"),
    ];
    for (config, path) in cases {
        let err = config_err(config.clone());
        assert_eq!(err.path, path, "{config}: {err}");
        assert!(!err.message.is_empty());
    }
}

#[test]
fn type_ids_are_checked() {
    let with_id = |id: &str| json!({"categories": [{"id": "c", "types": [{"id": id, "label": "X"}]}]});
    for id in ["job_failed", "auth.failed", "backup:done", "x-1", "A", &"a".repeat(MAX_TYPE_ID_LEN)] {
        assert!(parse(Some(&with_id(id)), None).is_ok(), "{id}");
    }
    for id in ["", "a b", "ä", "job/failed", &"a".repeat(MAX_TYPE_ID_LEN + 1)] {
        assert_eq!(config_err(with_id(id)).path, "categories[0].types[0].id", "{id}");
    }
}

#[test]
fn duplicate_type_ids_are_refused_at_the_second() {
    let err = config_err(json!({
        "categories": [{"id": "a", "types": [{"id": "x", "label": "X"}]}, {"id": "b", "types": [{"id": "y", "label": "Y"}, {"id": "x", "label": "X again"}]}]
    }));
    assert_eq!(err.path, "categories[1].types[1].id");
    assert!(err.message.contains("duplicate"), "{err}");

    let err = config_err(json!({
        "categories": [{"id": "a", "types": [{"id": "backup_done", "label": "X"}]}],
        "plugins": {"backup": {"notifications": [{"id": "backup_done", "label": "Backup done"}]}}
    }));
    assert_eq!(err.path, "plugins.backup.notifications[0].id");
    assert_eq!(err.to_string(), format!("{}: {}", err.path, err.message));
}

#[test]
fn channel_names() {
    assert_eq!(channel_name("push"), Some("web_push"));
    assert_eq!(channel_name("sms"), Some("twilio_sms"));
    assert_eq!(channel_name("email"), Some("email"));
    assert_eq!(channel_name("ntfy2"), Some("ntfy2"));
    for bad in ["", "Email", "2fa", "_x", "web-push", "e mail"] {
        assert_eq!(channel_name(bad), None, "{bad}");
    }
}

#[test]
fn template_errors_name_the_path() {
    let cases = [
        (json!([]), "$"),
        (json!({}), "templates"),
        (json!({"templates": []}), "templates"),
        (json!({"templates": {"job_failed": []}}), "templates.job_failed"),
        (json!({"templates": {"job failed": {}}}), r#"templates["job failed"]"#),
        (json!({"templates": {"job_failed": {"Email": {}}}}), "templates.job_failed.Email"),
        (json!({"templates": {"job_failed": {"email": "x"}}}), "templates.job_failed.email"),
        (json!({"templates": {"job_failed": {"email": {"heading": "x"}}}}), "templates.job_failed.email.heading"),
        (json!({"templates": {"job_failed": {"email": {"subject": 1}}}}), "templates.job_failed.email.subject"),
        (json!({"templates": {"job_failed": {"push": {}, "web_push": {}}}}), "templates.job_failed.web_push"),
        (json!({"locale": "deutsch!", "templates": {}}), "locale"),
        (json!({"locale": 1, "templates": {}}), "locale"),
    ];
    for (file, path) in cases {
        let err = templates_err(file.clone());
        assert_eq!(err.path, path, "{file}: {err}");
    }
}

#[test]
fn templates_are_compiled_on_import() {
    let err = templates_err(
        json!({"templates": {"job_failed": {"email": {"subject": "ok", "text_body": "one\ntwo {{ x + }}"}}}}),
    );
    assert_eq!(err.path, "templates.job_failed.email.text_body");
    assert!(err.message.starts_with("line 2, column "), "{err}");

    let err = templates_err(json!({"templates": {"t": {"email": {"subject": "Hello {{ name"}}}}));
    assert_eq!(err.path, "templates.t.email.subject");
    assert!(err.message.starts_with("line 1, column "), "{err}");
}

#[test]
fn null_template_fields_are_absent() {
    let catalogue =
        parse(None, Some(&json!({"templates": {"t": {"email": {"subject": "s", "html_body": null}}}}))).unwrap();
    assert_eq!(catalogue.templates[0].set, TemplateSet { subject: Some("s".into()), ..Default::default() });
}

#[test]
fn import_sizes_are_limited() {
    let types: Vec<Value> = (0..=MAX_TYPES).map(|i| json!({"id": format!("t{i}"), "label": "T"})).collect();
    let err = config_err(json!({"categories": [{"id": "c", "types": types}]}));
    assert_eq!(err.path, format!("categories[0].types[{MAX_TYPES}]"));

    let mut by_type = Map::new();
    for i in 0..=MAX_TEMPLATES {
        by_type.insert(format!("t{i:05}"), json!({"email": {}}));
    }
    let err = templates_err(json!({"templates": by_type}));
    assert_eq!(err.path, format!("templates.t{MAX_TEMPLATES:05}.email"));
    assert!(err.message.contains("more than"), "{err}");
}
