//! Recipient timezones and locales: what is accepted, and the order in which
//! locale variants of a template are tried.

use chrono_tz::Tz;

/// The longest locale tag accepted.
pub const MAX_LOCALE_LEN: usize = 35;

/// True for an IANA timezone name chrono-tz knows, such as `Europe/Berlin` or `UTC`.
pub fn validate_timezone(name: &str) -> bool {
    name.parse::<Tz>().is_ok()
}

/// True for a BCP 47-like tag: `de`, `de-DE`, `pt-BR`, `zh-Hant-TW`.
///
/// A 2–3 letter language, then `-`-separated subtags of 1–8 letters or
/// digits; at most [`MAX_LOCALE_LEN`] characters.
pub fn validate_locale(tag: &str) -> bool {
    if tag.is_empty() || tag.len() > MAX_LOCALE_LEN {
        return false;
    }
    let mut parts = tag.split('-');
    let language = parts.next().unwrap_or_default();
    (2..=3).contains(&language.len())
        && language.bytes().all(|b| b.is_ascii_alphabetic())
        && parts.all(|p| (1..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// The locale variants to try, most specific first, lowercased, ending in
/// `""` (the template without a locale): `de-AT` gives `["de-at", "de", ""]`.
pub fn locale_chain(locale: Option<&str>) -> Vec<String> {
    let mut chain = Vec::new();
    // `de_AT` (POSIX style) is read as `de-AT`.
    let tag = locale.map(|l| l.trim().to_ascii_lowercase().replace('_', "-")).unwrap_or_default();
    let mut prefix = tag.trim_matches('-');
    while !prefix.is_empty() {
        chain.push(prefix.to_owned());
        prefix = prefix.rfind('-').map_or("", |cut| prefix[..cut].trim_end_matches('-'));
    }
    chain.push(String::new());
    chain
}
