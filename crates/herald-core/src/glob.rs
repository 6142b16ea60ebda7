//! Event type patterns of rules: exact names or globs (`auth.*`, `*`, `job_?`).

/// True when `name` matches `pattern`, where `*` matches any run of
/// characters (dots included) and `?` exactly one character.
pub fn matches(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    // Iterative matcher with single-star backtracking: linear in practice and
    // never exponential, whatever the pattern.
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ni));
            pi += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Checks that a rule's pattern is usable: non-empty, at most 128 characters,
/// made of event-type characters and the wildcards `*` and `?`.
pub fn validate(pattern: &str) -> Result<(), String> {
    if pattern.is_empty() {
        return Err("must not be empty".into());
    }
    if pattern.len() > 128 {
        return Err("must be at most 128 characters".into());
    }
    match pattern.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-' | '*' | '?'))) {
        Some(bad) => {
            Err(format!("may only contain letters, digits, `_ . : -` and the wildcards `*` `?` (found {bad:?})"))
        }
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn examples() {
        assert!(matches("*", "anything.at.all"));
        assert!(matches("auth.*", "auth.failed"));
        assert!(matches("auth.*", "auth.login.failed"));
        assert!(!matches("auth.*", "auth"));
        assert!(!matches("auth.*", "oauth.failed"));
        assert!(matches("job_failed", "job_failed"));
        assert!(!matches("job_failed", "job_failed2"));
        assert!(matches("job_?", "job_1"));
        assert!(!matches("job_?", "job_12"));
        assert!(matches("*.failed", "auth.failed"));
        assert!(matches("a*b*c", "axxbyyc"));
        assert!(!matches("a*b*c", "axxbyy"));
        assert!(matches("", ""));
        assert!(!matches("", "a"));
    }

    #[test]
    fn validation() {
        assert!(validate("auth.*").is_ok());
        assert!(validate("").is_err());
        assert!(validate("a b").is_err());
    }

    /// A reference matcher by plain recursion, to check the iterative one.
    fn reference(p: &[char], n: &[char]) -> bool {
        match (p.first(), n.first()) {
            (None, None) => true,
            (None, Some(_)) => false,
            (Some('*'), _) => reference(&p[1..], n) || (!n.is_empty() && reference(p, &n[1..])),
            (Some(_), None) => false,
            (Some(&c), Some(&d)) => (c == '?' || c == d) && reference(&p[1..], &n[1..]),
        }
    }

    proptest! {
        #[test]
        fn agrees_with_reference(pattern in "[ab.*?]{0,8}", name in "[ab.]{0,10}") {
            let p: Vec<char> = pattern.chars().collect();
            let n: Vec<char> = name.chars().collect();
            prop_assert_eq!(matches(&pattern, &name), reference(&p, &n));
        }

        #[test]
        fn exact_names_match_only_themselves(name in "[a-z_.]{1,12}", other in "[a-z_.]{1,12}") {
            prop_assert!(matches(&name, &name));
            prop_assert_eq!(matches(&name, &other), name == other);
        }
    }
}
