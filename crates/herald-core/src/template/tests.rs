use serde_json::json;

use super::*;

fn body(src: &str) -> TemplateSet {
    TemplateSet { body: Some(src.into()), ..Default::default() }
}

fn ctx(data: serde_json::Value) -> RenderContext {
    RenderContext {
        data,
        recipient: json!({"id": "rcp_1", "name": "Ada", "email": "ada@example.com"}),
        event: json!({"id": "evt_1", "type": "job_failed", "severity": "error", "created_at": "2026-07-01T10:00:00Z"}),
        tenant: json!({"id": "ten_1", "name": "Acme"}),
        timezone: None,
        locale: None,
    }
}

fn in_tz(tz: &str) -> RenderContext {
    RenderContext { timezone: Some(tz.into()), ..ctx(json!({})) }
}

/// Renders `src` as the `body` field.
fn render_with(src: &str, ctx: &RenderContext) -> Result<String, TemplateError> {
    render(&body(src), ctx).map(|r| r.body.unwrap())
}

fn render_body(src: &str, data: serde_json::Value) -> String {
    render_with(src, &ctx(data)).unwrap_or_else(|e| panic!("{src:?}: {e}"))
}

fn render_err(src: &str) -> TemplateError {
    render_with(src, &ctx(json!({"x": 5}))).expect_err(src)
}

#[test]
fn field_names_match_json() {
    for field in Field::ALL {
        assert_eq!(serde_json::to_value(field).unwrap(), json!(field.name()));
        assert_eq!(Field::from_name(field.name()), Some(field));
    }
    assert_eq!(Field::from_name("heading"), None);
    let set: TemplateSet = serde_json::from_value(json!({"subject": "s", "html_body": "h"})).unwrap();
    assert_eq!(set.fields().map(|(f, _)| f).collect::<Vec<_>>(), [Field::Subject, Field::HtmlBody]);
    assert!(serde_json::from_value::<TemplateSet>(json!({"heading": "x"})).is_err());
}

#[test]
fn an_empty_set_checks_and_renders_to_nothing() {
    assert!(TemplateSet::default().is_empty());
    assert_eq!(TemplateSet::default().check(), Ok(()));
    assert_eq!(render(&TemplateSet::default(), &ctx(json!({}))), Ok(Rendered::default()));
}

#[test]
fn compile_errors_carry_their_position() {
    let err = body("Hello {{ name").check().unwrap_err();
    // The column of the last token read, `name`.
    assert_eq!((err.field, err.line, err.column), (Field::Body, 1, 10));
    assert!(err.message.contains("unexpected end of input"), "{err:?}");
    assert_eq!(err.to_string(), format!("line 1, column {}: {}", err.column, err.message));

    let set = TemplateSet {
        subject: Some("ok".into()),
        html_body: Some("one\ntwo\nthree {{ x + }}".into()),
        ..Default::default()
    };
    let err = set.check().unwrap_err();
    assert_eq!((err.field, err.line, err.column), (Field::HtmlBody, 3, 14));

    // Columns count characters, not bytes.
    let err = body("äöü {{ x + }}").check().unwrap_err();
    let ascii = body("aou {{ x + }}").check().unwrap_err();
    assert_eq!((err.line, err.column), (1, 12));
    assert_eq!((err.line, err.column), (ascii.line, ascii.column));

    let err = body("{% if x %}open").check().unwrap_err();
    assert_eq!((err.line, err.column), (1, 11));
    assert_eq!(err.message, "unexpected end of input, expected end of block");
}

#[test]
fn oversized_sources_are_refused() {
    let err = body(&"x".repeat(MAX_SOURCE + 1)).check().unwrap_err();
    assert_eq!((err.line, err.column), (0, 0));
    assert!(err.message.contains("longer than"), "{err:?}");
    assert_eq!(err.to_string(), err.message);
    assert!(body(&"x".repeat(MAX_SOURCE)).check().is_ok());
    assert!(render_with(&"x".repeat(MAX_SOURCE + 1), &ctx(json!({}))).is_err());
}

#[test]
fn the_context_has_data_recipient_event_and_tenant() {
    let src = "{{ data.host }} {{ recipient.name }} {{ event.type }} {{ event.severity }} {{ tenant.name }}";
    assert_eq!(render_body(src, json!({"host": "db-1"})), "db-1 Ada job_failed error Acme");
}

#[test]
fn top_level_data_keys_are_shortcuts() {
    let data = json!({"title": "Disk full", "host": {"name": "db-1"}, "items": [1, 2, 3]});
    assert_eq!(render_body("{{ title }} on {{ host.name }}: {{ items|length }}", data), "Disk full on db-1: 3");
}

#[test]
fn reserved_names_win_over_data_keys() {
    let data = json!({"event": "spoofed", "tenant": "spoofed", "recipient": "spoofed", "data": "spoofed", "__herald_timezone": "Asia/Tokyo"});
    let out = render_body("{{ event.type }}|{{ tenant.name }}|{{ recipient.name }}|{{ data.event }}", data.clone());
    assert_eq!(out, "job_failed|Acme|Ada|spoofed");
    // A data key cannot move the time into another zone either.
    assert_eq!(render_body(r#"{{ "2026-07-01T10:00:00Z"|datetime }}"#, data), "2026-07-01 10:00 UTC");
}

#[test]
fn a_null_recipient_and_non_object_data_are_fine() {
    let ctx = RenderContext { recipient: serde_json::Value::Null, data: json!([1, 2]), ..ctx(json!(null)) };
    assert_eq!(render_with("{{ recipient.name }}[{{ data|length }}]", &ctx).unwrap(), "[2]");
}

#[test]
fn undefined_values_render_as_nothing() {
    assert_eq!(render_body("a{{ missing }}b{{ data.nope.deeper }}c{{ recipient.phone }}", json!({})), "abc");
    assert_eq!(render_body(r#"{{ missing|default("n/a") }}"#, json!({})), "n/a");
    for filter in ["datetime", "date", "money", "truncate"] {
        assert_eq!(render_body(&format!("[{{{{ missing|{filter} }}}}]"), json!({})), "[]", "{filter}");
        assert_eq!(render_body(&format!("[{{{{ data.nil|{filter} }}}}]"), json!({"nil": null})), "[]", "{filter}");
    }
}

#[test]
fn data_is_never_rendered_as_a_template() {
    assert_eq!(
        render_body("{{ msg }}", json!({"msg": "{{ tenant.name }} {% if 1 %}x{% endif %}"})),
        "{{ tenant.name }} {% if 1 %}x{% endif %}"
    );
}

#[test]
fn only_html_body_is_escaped() {
    let set = TemplateSet {
        subject: Some("{{ v }}".into()),
        text_body: Some("{{ v }}".into()),
        html_body: Some("<p>{{ v }}</p>".into()),
        title: Some("{{ v }}".into()),
        body: Some("{{ v }}".into()),
    };
    let out = render(&set, &ctx(json!({"v": "<b>\"Tom & Jerry\"</b>"}))).unwrap();
    let raw = "<b>\"Tom & Jerry\"</b>";
    assert_eq!(out.html_body.as_deref(), Some("<p>&lt;b&gt;&quot;Tom &amp; Jerry&quot;&lt;&#x2f;b&gt;</p>"));
    for field in [Field::Subject, Field::TextBody, Field::Title, Field::Body] {
        assert_eq!(out.get(field), Some(raw), "{field}");
    }
}

#[test]
fn datetime_converts_into_the_recipients_timezone() {
    let src = r#"{{ "2026-07-01T10:00:00Z"|datetime }}"#;
    assert_eq!(render_with(src, &in_tz("Europe/Berlin")).unwrap(), "2026-07-01 12:00 CEST");
    assert_eq!(render_with(src, &ctx(json!({}))).unwrap(), "2026-07-01 10:00 UTC");
    assert_eq!(render_with(src, &in_tz("Mars/Olympus_Mons")).unwrap(), "2026-07-01 10:00 UTC");
    assert_eq!(render_with(src, &in_tz("America/New_York")).unwrap(), "2026-07-01 06:00 EDT");
    // Winter time, an offset in the input, and the event's own timestamp.
    let berlin = in_tz("Europe/Berlin");
    assert_eq!(render_with(r#"{{ "2026-01-15T23:30:00-05:00"|datetime }}"#, &berlin).unwrap(), "2026-01-16 05:30 CET");
    assert_eq!(render_with("{{ event.created_at|datetime('%H:%M') }}", &berlin).unwrap(), "12:00");
}

#[test]
fn datetime_reads_unix_seconds_and_milliseconds() {
    // 2026-07-01T10:00:00Z
    let secs = 1_782_900_000i64;
    let data = json!({"s": secs, "ms": secs * 1000, "f": secs as f64 + 0.5});
    let out = render_body("{{ s|datetime }}|{{ ms|datetime }}|{{ f|datetime('%H:%M:%S%.3f') }}", data);
    assert_eq!(out, "2026-07-01 10:00 UTC|2026-07-01 10:00 UTC|10:00:00.500");
}

#[test]
fn datetime_formats_and_date() {
    let berlin = in_tz("Europe/Berlin");
    let src = r#"{{ t|datetime("%d.%m.%Y %H:%M") }}|{{ t|date }}|{{ t|date("%A, %B %-d") }}"#;
    let ctx = RenderContext { data: json!({"t": "2026-07-01T23:30:00Z"}), ..berlin.clone() };
    assert_eq!(render_with(src, &ctx).unwrap(), "02.07.2026 01:30|2026-07-02|Thursday, July 2");
    // A bare date is a calendar day, not shifted by the timezone.
    assert_eq!(render_with(r#"{{ "2026-07-01"|date }}"#, &in_tz("America/Los_Angeles")).unwrap(), "2026-07-01");
}

#[test]
fn datetime_refuses_bad_input_and_formats() {
    for src in [
        r#"{{ "yesterday"|datetime }}"#,
        "{{ [1]|datetime }}",
        r#"{{ "2026-07-01T10:00:00Z"|datetime("%Q") }}"#,
        "{{ x|datetime(1, 2) }}",
    ] {
        let err = render_err(src);
        assert_eq!((err.field, err.line), (Field::Body, 1), "{src}: {err:?}");
    }
    assert!(render_err(r#"{{ "nope"|date }}"#).message.contains("date: expected"));
}

#[test]
fn money_formats() {
    let cases = [
        (r#"{{ 12.5|money("EUR") }}"#, "€12.50"),
        (r#"{{ 12.5|money("USD") }}"#, "$12.50"),
        (r#"{{ 12.5|money("GBP") }}"#, "£12.50"),
        (r#"{{ 12.5|money("JPY") }}"#, "¥13"),
        (r#"{{ 12.5|money("CHF") }}"#, "12.50 CHF"),
        (r#"{{ 12.5|money("chf") }}"#, "12.50 CHF"),
        (r#"{{ 1234.5|money("EUR") }}"#, "€1,234.50"),
        (r#"{{ 1234567.891|money("USD") }}"#, "$1,234,567.89"),
        (r#"{{ 1234567|money("KRW") }}"#, "1,234,567 KRW"),
        (r#"{{ 1234.5|money }}"#, "1,234.50"),
        (r#"{{ 0|money("EUR") }}"#, "€0.00"),
        (r#"{{ -1234.5|money("EUR") }}"#, "-€1,234.50"),
        (r#"{{ -0.001|money("EUR") }}"#, "€0.00"),
        (r#"{{ 999.999|money("USD") }}"#, "$1,000.00"),
        (r#"{{ "19.90"|money("EUR") }}"#, "€19.90"),
        (r#"{{ 100|money("EUR") }}"#, "€100.00"),
    ];
    for (src, want) in cases {
        assert_eq!(render_body(src, json!({})), want, "{src}");
    }
}

#[test]
fn money_refuses_bad_arguments() {
    for src in [
        r#"{{ x|money("EURO") }}"#,
        r#"{{ x|money("E1R") }}"#,
        r#"{{ "ten"|money("EUR") }}"#,
        r#"{{ [1]|money }}"#,
        "{{ 1e300|money }}",
    ] {
        let err = render_err(src);
        assert!(err.message.contains("money"), "{src}: {err:?}");
    }
}

#[test]
fn truncate_cuts_on_characters() {
    assert_eq!(render_body("{{ s|truncate(5) }}", json!({"s": "Hello, world"})), "Hello…");
    assert_eq!(render_body("{{ s|truncate(5) }}", json!({"s": "Hello"})), "Hello");
    assert_eq!(render_body("{{ s|truncate(3) }}", json!({"s": "äöüß"})), "äöü…");
    assert_eq!(render_body("{{ s|truncate(2) }}", json!({"s": "👋🏽 hi"})), "👋🏽…");
    assert_eq!(render_body("{{ s|truncate(0) }}", json!({"s": "abc"})), "…");
    assert_eq!(render_body("{{ n|truncate(2) }}", json!({"n": 12345})), "12…");
    let long = "x".repeat(300);
    assert_eq!(render_body("{{ s|truncate }}", json!({"s": long})).chars().count(), 256);
    assert_eq!(render_err("{{ 'abc'|truncate(-1) }}").column, 10);
}

#[test]
fn runaway_templates_run_out_of_fuel() {
    let err = render_err("{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}");
    assert!(err.message.contains("fuel"), "{err:?}");
    let err = render_err("{{ (range(10000)|join(',')) * 100 }}");
    assert!(err.message.contains("fuel"), "{err:?}");
}

#[test]
fn recursion_is_limited() {
    let err = render_err("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}");
    assert!(err.message.contains("recursion") || err.message.contains("fuel"), "{err:?}");
}

#[test]
fn output_is_capped() {
    let err = render_err(&format!("{{{{ 'x' * {} }}}}", MAX_OUTPUT + 1));
    assert_eq!(err.message, format!("output is longer than {MAX_OUTPUT} bytes"));
    let err = render_err("{% for i in range(3000) %}abcdefghijklmnopqrstuvwxyz{% endfor %}");
    assert!(err.message.starts_with("output is longer"), "{err:?}");
    assert_eq!(render_body(&format!("{{{{ 'x' * {MAX_OUTPUT} }}}}",), json!({})).len(), MAX_OUTPUT);
}

#[test]
fn other_templates_cannot_be_loaded() {
    for src in
        [r#"{% include "x" %}"#, r#"{% extends "base" %}"#, r#"{% import "m" as m %}"#, r#"{% from "m" import f %}"#]
    {
        let err = render_err(src);
        assert!(err.message.contains("template not found"), "{src}: {err:?}");
        assert_eq!(err.line, 1, "{src}");
    }
}

#[test]
fn render_errors_name_the_field_and_position() {
    let set =
        TemplateSet { title: Some("fine".into()), body: Some("line one\n{{ x|nosuch }}".into()), ..Default::default() };
    let err = render(&set, &ctx(json!({}))).unwrap_err();
    assert_eq!((err.field, err.line, err.column), (Field::Body, 2, 6));
    assert!(err.message.contains("unknown filter"), "{err:?}");
    let err = render_err("{{ 1 + 'a' }}");
    assert_eq!((err.line, err.column), (1, 4));
}

#[test]
fn a_render_fills_every_present_field() {
    let set = TemplateSet {
        subject: Some("[{{ event.severity }}] {{ title }}".into()),
        text_body: Some("{{ title }}".into()),
        ..Default::default()
    };
    let out = render(&set, &ctx(json!({"title": "Disk full"}))).unwrap();
    assert_eq!(out.subject.as_deref(), Some("[error] Disk full"));
    assert_eq!(out.text_body.as_deref(), Some("Disk full"));
    assert_eq!((out.html_body, out.title, out.body), (None, None, None));
}

#[test]
fn timezones_are_iana_names() {
    for tz in ["UTC", "Europe/Berlin", "America/Argentina/Buenos_Aires", "Asia/Kolkata", "Etc/GMT+5"] {
        assert!(validate_timezone(tz), "{tz}");
    }
    for tz in ["", "Berlin", "europe/berlin", "Europe/Berlin ", "+02:00", "Mars/Olympus_Mons"] {
        assert!(!validate_timezone(tz), "{tz}");
    }
}

#[test]
fn locales_are_bcp47_like() {
    for tag in ["de", "de-DE", "pt-BR", "zh-Hant-TW", "es-419", "gsw", "sr-Latn-RS"] {
        assert!(validate_locale(tag), "{tag}");
    }
    let too_long = format!("de-{}", ["abcdefgh"; 4].join("-"));
    for tag in ["", "d", "deut", "1de", "de_DE", "de-", "-de", "de--DE", "de-DE!", "de-abcdefghi", too_long.as_str()] {
        assert!(!validate_locale(tag), "{tag}");
    }
}

#[test]
fn locale_chain_falls_back_to_the_default() {
    assert_eq!(locale_chain(Some("de-AT")), ["de-at", "de", ""]);
    assert_eq!(locale_chain(Some("zh-Hant-TW")), ["zh-hant-tw", "zh-hant", "zh", ""]);
    assert_eq!(locale_chain(Some("de")), ["de", ""]);
    assert_eq!(locale_chain(Some("pt_BR")), ["pt-br", "pt", ""]);
    assert_eq!(locale_chain(Some("")), [""]);
    assert_eq!(locale_chain(None), [""]);
}

mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn check_never_panics_and_positions_stay_in_the_source(src in "[a-z{}%|(). \n'\"+-]{0,60}") {
            if let Err(err) = body(&src).check() {
                let lines: Vec<&str> = src.split('\n').collect();
                prop_assert!(err.line >= 1 && err.line <= lines.len(), "{err:?}");
                prop_assert!(err.column <= lines[err.line - 1].chars().count() + 1, "{err:?}");
            }
        }

        #[test]
        fn truncate_keeps_a_prefix(s in "\\PC{0,40}", n in 0usize..50) {
            let out = render_body(&format!("{{{{ s|truncate({n}) }}}}"), json!({"s": s}));
            let kept = out.strip_suffix('…').unwrap_or(&out);
            prop_assert!(s.starts_with(kept));
            prop_assert_eq!(kept.chars().count(), s.chars().count().min(n));
        }

        #[test]
        fn money_reads_back_as_the_rounded_amount(cents in -10_000_000_000i64..10_000_000_000) {
            let amount = cents as f64 / 100.0;
            let out = render_body(&format!("{{{{ {amount:?}|money(\"USD\") }}}}"), json!({}));
            let plain: String = out.chars().filter(|c| *c != ',' && *c != '$').collect();
            prop_assert_eq!(plain.parse::<f64>().unwrap(), amount, "{}", out);
        }

        #[test]
        fn locale_chain_ends_in_the_default(tag in "[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8}){0,3}") {
            let chain = locale_chain(Some(&tag));
            prop_assert_eq!(chain.first().unwrap(), &tag.to_ascii_lowercase());
            prop_assert_eq!(chain.last().unwrap(), "");
            prop_assert_eq!(chain.len(), tag.split('-').count() + 1);
            prop_assert!(validate_locale(&tag) || tag.len() > 35);
        }
    }
}
