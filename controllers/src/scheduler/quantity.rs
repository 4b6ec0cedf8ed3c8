//! Kubernetes quantities (`100m`, `1.5`, `128Mi`, `1e3`, `2G`) as whole milli-units,
//! rounded up as the apiserver does when it stores a request.

/// The quantity in thousandths of its unit (millicores for CPU, millibytes for memory),
/// rounded up; `None` if it does not parse, is negative or does not fit in a `u128`.
pub fn milli(q: &str) -> Option<u128> {
    let q = q.trim();
    let q = q.strip_prefix('+').unwrap_or(q);
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(q.len());
    let (number, suffix) = q.split_at(split);
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() || fraction.contains('.') {
        return None;
    }
    let digits: u128 = format!("{whole}{fraction}").parse().ok()?;
    let (binary, decimal): (u32, i64) = match suffix {
        "" => (0, 0),
        "n" => (0, -9),
        "u" => (0, -6),
        "m" => (0, -3),
        "k" => (0, 3),
        "M" => (0, 6),
        "G" => (0, 9),
        "T" => (0, 12),
        "P" => (0, 15),
        "E" => (0, 18),
        "Ki" => (1, 0),
        "Mi" => (2, 0),
        "Gi" => (3, 0),
        "Ti" => (4, 0),
        "Pi" => (5, 0),
        "Ei" => (6, 0),
        s => {
            let exponent = s.strip_prefix(['e', 'E'])?;
            (0, exponent.parse().ok()?)
        }
    };
    let fraction_len = i64::try_from(fraction.len()).ok()?;
    // value = digits * 1024^binary * 10^(decimal - fraction_len), in thousandths.
    let scale = decimal - fraction_len + 3;
    let value = digits.checked_mul(1024u128.checked_pow(binary)?)?;
    if scale >= 0 {
        value.checked_mul(10u128.checked_pow(u32::try_from(scale).ok()?)?)
    } else {
        let divisor = 10u128.checked_pow(u32::try_from(-scale).ok()?);
        // Beyond u128's range the value rounds up to one thousandth (or zero).
        Some(divisor.map_or(u128::from(value > 0), |d| value.div_ceil(d)))
    }
}

/// Millicores of a CPU quantity.
pub fn millicores(q: &str) -> Option<u64> {
    milli(q).map(saturate)
}

/// Whole units (bytes, pods) of a quantity, rounded up.
pub fn units(q: &str) -> Option<u64> {
    milli(q).map(|m| saturate(m.div_ceil(1000)))
}

fn saturate(n: u128) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_forms_kubernetes_writes() {
        assert_eq!(millicores("100m"), Some(100));
        assert_eq!(millicores("1"), Some(1000));
        assert_eq!(millicores("1.5"), Some(1500));
        assert_eq!(millicores("0.1"), Some(100));
        assert_eq!(millicores(".5"), Some(500));
        assert_eq!(millicores("250000u"), Some(250));
        assert_eq!(millicores("1n"), Some(1), "rounded up");
        assert_eq!(units("128Mi"), Some(128 << 20));
        assert_eq!(units("1Gi"), Some(1 << 30));
        assert_eq!(units("2G"), Some(2_000_000_000));
        assert_eq!(units("1e3"), Some(1000));
        assert_eq!(units("1.5Ki"), Some(1536));
        assert_eq!(units("110"), Some(110));
        assert_eq!(units("1E"), Some(1_000_000_000_000_000_000));
    }

    #[test]
    fn refuses_what_is_not_a_quantity() {
        for bad in ["", "m", "-1", "1.2.3", "1x", "Mi", "1e", "..5"] {
            assert_eq!(milli(bad), None, "{bad:?}");
        }
    }
}
