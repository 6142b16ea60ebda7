//! Small helpers for SQL built at run time: placeholder lists and binds.

use crate::Backend;

/// A value bound to a placeholder of a query built at run time.
#[derive(Debug, Clone)]
pub enum Bind {
    Text(String),
    Int(i64),
}

/// `n` placeholders numbered from `start`: `$start, $start+1, …` on
/// PostgreSQL, plain `?` on SQLite. sqlx looks up every *named* SQLite
/// parameter with a linear scan, which turns a multi-row insert with
/// thousands of `$n` into quadratic work; anonymous `?` bind in order.
/// A statement must use one style throughout.
pub fn placeholders(backend: Backend, start: usize, n: usize) -> String {
    match backend {
        Backend::Postgres => (start..start + n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", "),
        Backend::Sqlite => vec!["?"; n].join(", "),
    }
}

/// `INSERT INTO {head} VALUES (…), (…)` for `rows` rows of `cols` values each.
pub fn insert_rows(backend: Backend, head: &str, rows: usize, cols: usize) -> String {
    let values: Vec<String> = (0..rows).map(|r| format!("({})", placeholders(backend, r * cols + 1, cols))).collect();
    format!("INSERT INTO {head} VALUES {}", values.join(", "))
}

/// Splits `n` items into chunks of power-of-two sizes up to 256, so queries
/// built per chunk reuse nine prepared statements instead of one per length,
/// and a batch below 512 items takes at most nine statements.
pub fn chunk_sizes(mut n: usize) -> Vec<usize> {
    const SIZES: [usize; 9] = [256, 128, 64, 32, 16, 8, 4, 2, 1];
    let mut out = Vec::new();
    for size in SIZES {
        while n >= size {
            out.push(size);
            n -= size;
        }
    }
    out
}

/// Binds every value of `binds` to `$query`, in order.
macro_rules! bind_all {
    ($query:expr, $binds:expr) => {{
        let mut q = $query;
        for b in $binds {
            q = match b {
                $crate::sql::Bind::Text(s) => q.bind(s.clone()),
                $crate::sql::Bind::Int(i) => q.bind(*i),
            };
        }
        q
    }};
}
pub(crate) use bind_all;

/// Accumulates `AND` conditions and their binds for a filtered list query.
#[derive(Debug, Default)]
pub struct Filter {
    pub clauses: Vec<String>,
    pub binds: Vec<Bind>,
}

impl Filter {
    /// Starts with the tenant condition every list query has.
    pub fn for_tenant(column: &str, tenant: &str) -> Self {
        let mut f = Self::default();
        f.push(&format!("{column} = ?"), Bind::Text(tenant.to_owned()));
        f
    }

    /// Adds a condition whose single `?` becomes the next `$n`.
    pub fn push(&mut self, clause: &str, value: Bind) {
        self.binds.push(value);
        self.clauses.push(clause.replace('?', &format!("${}", self.binds.len())));
    }

    pub fn push_opt_text(&mut self, clause: &str, value: Option<&str>) {
        if let Some(v) = value {
            self.push(clause, Bind::Text(v.to_owned()));
        }
    }

    pub fn push_opt_int(&mut self, clause: &str, value: Option<i64>) {
        if let Some(v) = value {
            self.push(clause, Bind::Int(v));
        }
    }

    pub fn where_sql(&self) -> String {
        self.clauses.join(" AND ")
    }

    /// `WHERE … ORDER BY … LIMIT $n`, binding the limit last.
    pub fn finish(&mut self, order_by: &str, limit: i64) -> String {
        self.binds.push(Bind::Int(limit));
        format!("WHERE {} ORDER BY {order_by} LIMIT ${}", self.where_sql(), self.binds.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_exactly() {
        for n in 0..1000 {
            assert_eq!(chunk_sizes(n).iter().sum::<usize>(), n);
        }
        assert_eq!(chunk_sizes(330), vec![256, 64, 8, 2]);
        assert_eq!(chunk_sizes(63).len(), 6);
    }

    #[test]
    fn filter_numbers_placeholders() {
        let mut f = Filter::for_tenant("tenant_id", "t");
        f.push_opt_text("status = ?", Some("sent"));
        f.push_opt_text("channel = ?", None);
        f.push_opt_int("created_at >= ?", Some(5));
        assert_eq!(f.where_sql(), "tenant_id = $1 AND status = $2 AND created_at >= $3");
        assert_eq!(placeholders(Backend::Postgres, 4, 3), "$4, $5, $6");
        assert_eq!(placeholders(Backend::Sqlite, 4, 3), "?, ?, ?");
        assert_eq!(insert_rows(Backend::Postgres, "t (a, b)", 2, 2), "INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4)");
    }
}
