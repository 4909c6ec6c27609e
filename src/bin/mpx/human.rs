//! Formatting for people: sizes, times, aligned tables.

/// "512 B", "4.0 KiB", "1.5 MiB".
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut v = bytes as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// Broken-down local time of `ns` since the epoch, with the UTC offset in seconds.
fn local(ns: u64) -> Option<(libc::tm, i64)> {
    let secs = libc::time_t::try_from(ns / 1_000_000_000).ok()?;
    // SAFETY: tm is plain data (integers and a pointer), valid all zero.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the call; localtime_r only fills `tm`.
    if unsafe { libc::localtime_r(&secs, &mut tm) }.is_null() {
        return None;
    }
    let off = tm.tm_gmtoff;
    Some((tm, off))
}

/// "2026-01-31 14:05:09" in local time, or None for 0 / unrepresentable times.
pub fn local_time(ns: u64) -> Option<String> {
    if ns == 0 {
        return None;
    }
    let (tm, _) = local(ns)?;
    Some(format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec
    ))
}

/// "2026-01-31T14:05:09+01:00": ISO 8601 local time with offset, for JSON.
pub fn iso_time(ns: u64) -> Option<String> {
    if ns == 0 {
        return None;
    }
    let (tm, off) = local(ns)?;
    let sign = if off < 0 { '-' } else { '+' };
    let off = off.unsigned_abs();
    Some(format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{}{:02}:{:02}",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec,
        sign,
        off / 3600,
        off % 3600 / 60
    ))
}

/// "3m 12s ago" for a creation time `ns` (ns since the epoch).
pub fn age(ns: u64, now_ns: u64) -> String {
    if ns > now_ns {
        return "in the future (clock changed?)".into();
    }
    let s = (now_ns - ns) / 1_000_000_000;
    let (d, h, m, sec) = (s / 86400, s % 86400 / 3600, s % 3600 / 60, s % 60);
    let text = if d > 0 {
        format!("{d}d {h}h")
    } else if h > 0 {
        format!("{h}h {m}m")
    } else if m > 0 {
        format!("{m}m {sec}s")
    } else {
        format!("{sec}s")
    };
    format!("{text} ago")
}

/// Column alignment.
#[derive(Clone, Copy)]
pub enum Align {
    Left,
    Right,
}

/// An aligned text table; the last column is never padded (it may be long).
pub fn table(headers: &[(&str, Align)], rows: &[Vec<String>]) -> String {
    let n = headers.len();
    let mut width: Vec<usize> = headers.iter().map(|(h, _)| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate().take(n) {
            width[i] = width[i].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut s = String::new();
        for (i, cell) in cells.enumerate().take(n) {
            if i > 0 {
                s.push_str("  ");
            }
            let pad = width[i].saturating_sub(cell.chars().count());
            match headers[i].1 {
                Align::Right => {
                    s.push_str(&" ".repeat(pad));
                    s.push_str(cell);
                }
                Align::Left => {
                    s.push_str(cell);
                    if i + 1 < n {
                        s.push_str(&" ".repeat(pad));
                    }
                }
            }
        }
        out.push_str(s.trim_end());
        out.push('\n');
    };
    line(&mut headers.iter().map(|(h, _)| *h));
    for row in rows {
        line(&mut row.iter().map(|c| c.as_str()));
    }
    out
}

/// Whether `text` matches a shell-style pattern with `*` (any run) and `?` (one character).
pub fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    // Iterative matcher with one backtrack point: linear-ish, no recursion blow-up.
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(size(0), "0 B");
        assert_eq!(size(1023), "1023 B");
        assert_eq!(size(4096), "4.0 KiB");
        assert_eq!(size(3 << 20 | 1 << 19), "3.5 MiB");
    }

    #[test]
    fn globs() {
        assert!(glob("*", ""));
        assert!(glob("t-*-1", "t-abc-1"));
        assert!(glob("a?c", "abc"));
        assert!(!glob("a?c", "ac"));
        assert!(!glob("t-*", "x-t-1"));
        assert!(glob("exact", "exact"));
        assert!(glob("*a*b*", "xxaxxbxx"));
        assert!(!glob("*a*b", "xxaxxbxx"));
    }

    #[test]
    fn tables() {
        let t = table(
            &[("A", Align::Left), ("N", Align::Right), ("Z", Align::Left)],
            &[vec!["xy".into(), "1".into(), "end".into()]],
        );
        assert_eq!(t, "A   N  Z\nxy  1  end\n");
    }
}
